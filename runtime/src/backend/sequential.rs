//! The `sequential` backend: every task on the calling thread.

use super::{Backend, Workers};
use crate::error::Error;
use crate::job::{Job, PoolRequest};
use crate::n_jobs;

/// Runs every task in order on the calling thread, as a plain loop.
///
/// Nested calls inside its tasks see the enclosing scope unchanged. Useful to debug a
/// program (panics and breakpoints in tasks behave as in ordinary code), or to switch
/// parallelism off in a block of code whose calls cannot be changed.
///
/// # Examples
///
/// ```
/// use parjob::{backend::Sequential, parallel_backend, Parallel};
///
/// let main_thread = std::thread::current().id();
/// let ids = parallel_backend(Sequential::new())
///     .run(|| Parallel::new().map(0..3, |_| std::thread::current().id()))??;
/// assert!(ids.iter().all(|&id| id == main_thread));
/// # Ok::<(), parjob::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Sequential;

impl Sequential {
    /// The sequential backend.
    pub fn new() -> Self {
        Sequential
    }
}

impl Backend for Sequential {
    fn name(&self) -> &str {
        "sequential"
    }

    fn workers(&self) -> Workers {
        Workers::CallingThread
    }

    fn spawn(&self, _request: PoolRequest, job: Job) {
        job.run();
    }

    fn effective_n_jobs(&self, n_jobs: i32) -> Result<usize, Error> {
        n_jobs::check(n_jobs).map(|_| 1)
    }
}
