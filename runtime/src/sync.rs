//! Locks that outlive a panic elsewhere.

use std::sync::{LockResult, PoisonError};

/// Takes a lock's guard even when a thread panicked while holding it. parjob's locks guard
/// state that each critical section leaves whole (one insert, remove or swap), so a panic
/// elsewhere does not make it wrong; refusing the lock would turn one failed task into
/// failed calls ever after.
pub(crate) trait Recover<G> {
    /// The guard, poisoned or not.
    fn recover(self) -> G;
}

impl<G> Recover<G> for LockResult<G> {
    fn recover(self) -> G {
        self.unwrap_or_else(PoisonError::into_inner)
    }
}
