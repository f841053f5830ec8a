//! Work that can run in another process of the same binary.
//!
//! A batch crosses a process boundary as an [`EntryId`] — the position of a monomorphised
//! entry function in the binary, relative to an anchor function — and bytes: the
//! encoding of the batch's inputs. The worker, running the same executable, turns the id back
//! into the function, which decodes the inputs, runs each task with panics caught, and
//! encodes an outcome. Nothing but plain data crosses; code never does. Inputs and results
//! use parjob's own serde encoding ([`format`]): fixed-width numbers, so that a large
//! numeric payload costs little more than a copy.
//!
//! The function a task runs is either a `fn` pointer, sent along as a second id
//! ([`Callee::Pointer`]), or a zero-sized `Copy` closure type baked into the entry function
//! itself ([`Callee::ZeroSized`]): such a closure captures nothing but zero-sized values, so
//! the worker can make its own.

pub(crate) mod attach;
pub(crate) mod capture;
mod entry;
pub(crate) mod format;
// What worker processes hold: for the process backends, which are Unix-only.
#[cfg(unix)]
mod held;
#[cfg(unix)]
pub(crate) mod memfile;
pub(crate) mod probe;
pub(crate) mod recent;
mod shared;

use std::cell::Cell;

use serde::{Deserialize, Serialize};

pub(crate) use entry::{EntryFn, Failure, FailureKind, failed, split_kept};

/// The outcome decoder, for the fuzz targets.
#[cfg(test)]
pub(crate) fn decode_outcome_for_fuzzing<R: serde::de::DeserializeOwned + 'static>(
    bytes: &[u8],
) -> bool {
    entry::decode_outcome::<R>(bytes).is_ok()
}

/// The outcome encoder, for the fuzz seeds.
#[cfg(test)]
pub(crate) fn encode_done_for_fuzzing<R: Serialize + 'static>(results: Vec<R>) -> Vec<u8> {
    entry::encode_done(results)
}

/// The outcome of a batch that went on past a panic of its task 1, for the fuzz seeds.
#[cfg(test)]
pub(crate) fn encode_kept_for_fuzzing(results: Vec<u64>) -> Vec<u8> {
    let failure = Failure {
        index: 1,
        kind: FailureKind::Panicked,
        message: "boom".into(),
        source: None,
    };
    entry::encode_kept(&[failure], entry::encode_done(results))
}
pub use attach::Attachment;
#[cfg(unix)]
pub(crate) use held::{Held, Tell};
pub use probe::Transferable;
pub(crate) use probe::{ErasedDecode, Outcome};
pub(crate) use probe::{RemoteForm, RemoteMap, ResultCodec};
pub use shared::Shared;

/// Identity of a function of this binary, valid in every process running the same binary.
///
/// ```
/// use parjob::remote::EntryId;
///
/// // Every process running this build computes the same fingerprint; a batch from another
/// // build is refused by `RemoteBatch::execute`.
/// assert_eq!(EntryId::fingerprint(), EntryId::fingerprint());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EntryId(i64);

/// The fixed point ids are measured from. Never inlined, and its body is unique, so that no
/// pass folds it into another function.
#[inline(never)]
fn anchor() -> u64 {
    std::hint::black_box(0x7061_726a_6f62_0001)
}

impl EntryId {
    /// The id of `f`, a function of this binary.
    pub(crate) fn of_addr(addr: usize) -> EntryId {
        let base = anchor as fn() -> u64 as usize;
        EntryId((addr as i64).wrapping_sub(base as i64))
    }

    /// The id as a number, for transports that frame batches themselves.
    pub(crate) fn raw(self) -> i64 {
        self.0
    }

    /// The id [`raw`](EntryId::raw) gave.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) fn from_raw(raw: i64) -> EntryId {
        EntryId(raw)
    }

    /// The address the id stands for in this process.
    ///
    /// Only meaningful for an id made by [`of_addr`](EntryId::of_addr) in a process running
    /// the same binary; the worker handshake checks that before any id is used.
    pub(crate) fn addr(self) -> usize {
        let base = anchor as fn() -> u64 as usize;
        (base as i64).wrapping_add(self.0) as usize
    }

    /// A number that differs between builds with high likelihood: the distance between two
    /// functions of parjob. Batches carry it, and workers compare it in their handshake.
    pub fn fingerprint() -> i64 {
        // The distance between two functions of parjob: the same binary gives the same value.
        let a = entry::decode_failure as fn(&[u8]) -> Option<String> as usize as i64;
        a.wrapping_sub(anchor as fn() -> u64 as usize as i64)
    }
}

/// How a remote batch names the function its tasks run.
///
/// `delayed!(f(..))` and comprehensions of the macros name a closure type that captures
/// nothing ([`ZeroSized`](Callee::ZeroSized)); [`Delayed::remote`](crate::Delayed::remote)
/// names a `fn` pointer ([`Pointer`](Callee::Pointer)). See [`RemoteJob`](crate::RemoteJob)
/// for a backend that moves batches.
///
/// ```
/// use parjob::remote::Callee;
///
/// let callee = Callee::ZeroSized;
/// assert!(matches!(callee, Callee::ZeroSized | Callee::Pointer(_)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Callee {
    /// A zero-sized closure type that the entry function makes itself.
    ZeroSized,
    /// A `fn` pointer of this binary.
    Pointer(EntryId),
}

/// A batch ready to cross into a worker process: what to call and the encoded inputs. It
/// implements serde's traits, so a backend can move it in any format; the worker runs it
/// with [`execute`](RemoteBatch::execute). [`RemoteJob`](crate::RemoteJob) shows a whole
/// backend.
///
/// ```
/// use parjob::remote::{EntryId, RemoteBatch};
///
/// fn made_here(batch: &RemoteBatch) -> bool {
///     batch.binary == EntryId::fingerprint()
/// }
/// # let _ = made_here;
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteBatch {
    /// The monomorphised entry function that decodes, runs and encodes.
    pub entry: EntryId,
    /// The function each task calls.
    pub callee: Callee,
    /// The encoding of the batch's inputs (a `Vec` of them; see [`format`]).
    pub payload: Vec<u8>,
    /// [`EntryId::fingerprint`] of the binary that made the batch.
    pub binary: i64,
    /// The [`Shared`] values the inputs name by id. A backend that keeps its workers may send
    /// each worker an attachment once, and afterwards batches without it (see
    /// [`without_attachments`](RemoteBatch::without_attachments)).
    pub attachments: Vec<Attachment>,
}

impl RemoteBatch {
    /// Runs the batch in this process and returns the encoded outcome: what a
    /// worker does with a batch it received.
    ///
    /// # Safety
    ///
    /// `self` must come from this binary: made in this process, or received from a process
    /// running the same executable (checked by the worker handshake). Otherwise `entry` and
    /// `callee` name arbitrary addresses.
    pub unsafe fn execute(&self) -> Vec<u8> {
        // SAFETY: the caller's guarantee, passed on.
        unsafe { self.execute_on(&self.payload) }
    }

    /// The batch, its attachments taken out: for a worker that already has them.
    ///
    /// ```
    /// # fn f(batch: parjob::remote::RemoteBatch) {
    /// let (batch, attachments) = batch.without_attachments();
    /// assert!(batch.attachments.is_empty());
    /// # let _ = attachments;
    /// # }
    /// ```
    pub fn without_attachments(mut self) -> (RemoteBatch, Vec<Attachment>) {
        let attachments = std::mem::take(&mut self.attachments);
        (self, attachments)
    }

    /// [`execute`](RemoteBatch::execute) with the encoded inputs given apart (the batch's
    /// own `payload` is ignored): for inputs that arrived in shared memory.
    ///
    /// # Safety
    ///
    /// As for `execute`.
    pub(crate) unsafe fn execute_on(&self, payload: &[u8]) -> Vec<u8> {
        attach::keep_from_batch(&self.attachments);
        if self.binary != EntryId::fingerprint() {
            // A different build: its ids mean nothing here.
            return entry::failed(
                0,
                FailureKind::Decode,
                "the batch was made by a different binary".into(),
            );
        }
        // SAFETY: the caller guarantees the ids were made from functions of this binary with
        // the `EntryFn` signature (entries) and from `fn` pointers of the entry's callee type.
        let entry: EntryFn = unsafe { std::mem::transmute::<usize, EntryFn>(self.entry.addr()) };
        let callee = match self.callee {
            Callee::ZeroSized => 0,
            Callee::Pointer(id) => id.addr(),
        };
        entry(callee, payload)
    }

    /// Runs the batch as a worker does: its inputs in `shared` if given (else its own
    /// payload), with `on_start` called before each task (per-task timeouts).
    ///
    /// # Safety
    ///
    /// As for `execute`.
    pub(crate) unsafe fn execute_reporting(
        &self,
        shared: Option<&[u8]>,
        on_start: Option<fn(usize)>,
    ) -> Vec<u8> {
        let previous = set_task_start_hook(on_start);
        // SAFETY: the caller's guarantee, passed on.
        let out = unsafe { self.execute_on(shared.unwrap_or(&self.payload)) };
        set_task_start_hook(previous);
        out
    }
}

thread_local! {
    /// Called with a task's position in its batch just before the task runs, on the thread
    /// running a remote batch: how a worker reports task starts for per-task timeouts.
    static TASK_START_HOOK: Cell<Option<fn(usize)>> = const { Cell::new(None) };
}

/// The hook entry functions call before each task, if one is set on this thread.
pub(crate) fn task_start_hook() -> Option<fn(usize)> {
    TASK_START_HOOK.try_with(Cell::get).ok().flatten()
}

/// Sets this thread's task start hook; returns the previous one.
fn set_task_start_hook(hook: Option<fn(usize)>) -> Option<fn(usize)> {
    TASK_START_HOOK.try_with(|h| h.replace(hook)).ok().flatten()
}
