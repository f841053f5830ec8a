//! Entry functions: what a worker process calls to run one batch.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::capture::CaptureKinds;
use super::{attach, format};
use crate::error::catch_panic;

/// The signature every entry function has: the callee's address (0 for a zero-sized
/// closure) and the encoded inputs in, the encoded [`BatchOutcome`] out.
pub(crate) type EntryFn = fn(usize, &[u8]) -> Vec<u8>;

/// How a batch ended, as the worker encodes it: tag 0 then the encoded `Vec` of results,
/// or tag 1 then a [`Failure`]. A batch run to the end past failing tasks (a call that
/// keeps going) that had any is tag 2, the failures (see [`split_kept`]), then the outcome
/// of the other tasks as tag 0 or 1 encodes it.
pub(crate) enum BatchOutcome<R> {
    Done(Vec<R>),
    Failed(Failure),
}

/// Why a remote batch stopped, and at which of its tasks.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Failure {
    /// Position of the task within the batch.
    pub(crate) index: usize,
    pub(crate) kind: FailureKind,
    pub(crate) message: String,
    /// The task's own error, when the caller decoded it (the `Err` of a fallible task
    /// travels as a value): the call's `TaskFailed` then holds it as itself. Never sent.
    #[serde(skip)]
    pub(crate) source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Failure {
    /// The call's error for this failure of the task at `index` in the input.
    pub(crate) fn into_error(self, index: usize) -> crate::Error {
        use crate::Error;
        match self.kind {
            FailureKind::Panicked => Error::TaskPanicked {
                index,
                message: self.message,
            },
            FailureKind::Failed => Error::TaskFailed {
                index,
                source: self.source.unwrap_or_else(|| self.message.into()),
            },
            FailureKind::Decode | FailureKind::Encode => Error::Transport {
                index: Some(index),
                message: self.message,
            },
        }
    }
}

impl PartialEq for Failure {
    fn eq(&self, other: &Self) -> bool {
        (self.index, self.kind, &self.message) == (other.index, other.kind, &other.message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum FailureKind {
    /// The task panicked.
    Panicked,
    /// The inputs could not be decoded in the worker.
    Decode,
    /// A result could not be encoded in the worker.
    Encode,
    /// The task returned an error (`try_map` in a forked child); the message is its
    /// `Display`.
    Failed,
}

const DONE: u8 = 0;
const FAILED: u8 = 1;
const KEPT: u8 = 2;

pub(crate) fn failed(index: usize, kind: FailureKind, message: String) -> Vec<u8> {
    let failure = Failure {
        index,
        kind,
        message,
        source: None,
    };
    let mut out = vec![FAILED];
    // Encoding a struct of integers and a string into a Vec cannot fail.
    let _ = format::encode_into(&failure, &mut out);
    out
}

/// Runs `call` on every decoded input, stopping at the first panic; with `KEEP`, going on
/// past panics, each recorded as the failure of its task.
fn run_batch<I, R, const KEEP: bool>(input: &[u8], call: impl Fn(I) -> R) -> Vec<u8>
where
    I: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    let items: Vec<I> = match format::decode_seq(input) {
        Ok(items) => items,
        Err(e) => return failed(0, FailureKind::Decode, e.to_string()),
    };
    let mut results = Vec::with_capacity(items.len());
    let mut failures = Vec::new();
    // Set in worker processes that report task starts (per-task timeouts).
    let on_start = super::task_start_hook();
    for (index, item) in items.into_iter().enumerate() {
        if let Some(hook) = on_start {
            hook(index);
        }
        match catch_panic(|| call(item)) {
            Ok(r) => results.push(r),
            Err(message) if KEEP => failures.push(Failure {
                index,
                kind: FailureKind::Panicked,
                message,
                source: None,
            }),
            Err(message) => return failed(index, FailureKind::Panicked, message),
        }
    }
    encode_kept(&failures, encode_done(results))
}

/// The outcome of a batch that went on past `failures` (in task order): `rest`, the
/// outcome of its other tasks, as it is when there were none.
pub(crate) fn encode_kept(failures: &[Failure], rest: Vec<u8>) -> Vec<u8> {
    if failures.is_empty() {
        return rest;
    }
    let mut out = vec![KEPT];
    // Integers and strings into a Vec: cannot fail.
    let _ = format::encode_into(&failures, &mut out);
    out.extend_from_slice(&rest);
    out
}

/// Splits a reply into the tasks that failed in a batch that went on past them, and the
/// outcome of the others (the whole reply when no task failed so).
pub(crate) fn split_kept(bytes: &[u8]) -> Result<(Vec<Failure>, &[u8]), String> {
    match bytes.split_first() {
        Some((&KEPT, rest)) => {
            let mut rest = rest;
            let failures = format::decode_borrowed::<Vec<Failure>>(&mut rest)
                .map_err(|e| format!("cannot decode the failed tasks: {e}"))?;
            let ordered = failures.windows(2).all(|w| w[0].index < w[1].index);
            if !ordered {
                return Err("the failed tasks are not in task order".into());
            }
            Ok((failures, rest))
        }
        _ => Ok((Vec::new(), bytes)),
    }
}

/// Encodes a batch's results as a worker sends them back.
pub(crate) fn encode_done<R: Serialize + 'static>(results: Vec<R>) -> Vec<u8> {
    // Sized up front (see `encode_vec`): results of megabytes are common.
    let mut out = Vec::with_capacity(size_of_val(results.as_slice()).saturating_add(16));
    out.push(DONE);
    match format::encode_seq(&results, &mut out) {
        Ok(()) => out,
        Err(e) => {
            // Find which result refused, for the error message.
            let index = results
                .iter()
                .position(|r| format::encode_into(r, &mut Vec::new()).is_err())
                .unwrap_or(0);
            failed(index, FailureKind::Encode, e.to_string())
        }
    }
}

/// Entry for a zero-sized `Copy` closure type `F`: the worker makes its own `F`.
pub(crate) fn zero_sized_entry<I, R, F, const KEEP: bool>(_callee: usize, input: &[u8]) -> Vec<u8>
where
    I: DeserializeOwned + 'static,
    R: Serialize + 'static,
    F: Fn(I) -> R + Copy,
{
    if size_of::<F>() != 0 {
        return failed(
            0,
            FailureKind::Decode,
            "the task's closure captures data and cannot run in another process".into(),
        );
    }
    // SAFETY: `F` is zero-sized, so a value of it has no bytes to be invalid. It is `Copy`,
    // so it has no destructor and no ownership to duplicate; a closure type of size 0
    // captures nothing but zero-sized `Copy` values, which the parent process also had.
    let f: F = unsafe { std::mem::zeroed() };
    run_batch::<I, R, KEEP>(input, f)
}

/// Entry for a zero-sized `Copy` closure type `F` over captured variables `C` of kinds `K`:
/// the payload starts with the id of the call's captures, which the worker received as an
/// attachment and decodes once.
pub(crate) fn captured_entry<C, K, I, R, F, const KEEP: bool>(
    _callee: usize,
    input: &[u8],
) -> Vec<u8>
where
    K: CaptureKinds<C>,
    I: DeserializeOwned + 'static,
    R: Serialize + 'static,
    F: Fn(&C, I) -> R + Copy,
{
    if size_of::<F>() != 0 {
        return failed(
            0,
            FailureKind::Decode,
            "the task's closure captures data and cannot run in another process".into(),
        );
    }
    // SAFETY: as in `zero_sized_entry`.
    let f: F = unsafe { std::mem::zeroed() };
    run_captured::<C, K, I, R, KEEP>(input, f)
}

/// As [`captured_entry`], for a `fn(&C, I) -> R` pointer sent along as the callee.
pub(crate) fn captured_pointer_entry<C, K, I, R, const KEEP: bool>(
    callee: usize,
    input: &[u8],
) -> Vec<u8>
where
    K: CaptureKinds<C>,
    I: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    if callee == 0 {
        return no_callee();
    }
    // SAFETY: the batch names this entry only together with the id of a `fn(&C, I) -> R`
    // of the same binary (`RemoteMap::with_captures_pointer`), and the worker handshake
    // checked the binary.
    let f: fn(&C, I) -> R = unsafe { std::mem::transmute_copy::<usize, fn(&C, I) -> R>(&callee) };
    run_captured::<C, K, I, R, KEEP>(input, f)
}

/// Runs a batch whose payload starts with the id of its call's captures: `f` gets them,
/// seen again from what this worker keeps, with each input.
fn run_captured<C, K, I, R, const KEEP: bool>(input: &[u8], f: impl Fn(&C, I) -> R) -> Vec<u8>
where
    K: CaptureKinds<C>,
    I: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    let Some((id, items)) = input.split_first_chunk::<8>() else {
        return failed(
            0,
            FailureKind::Decode,
            "a batch without its captures".into(),
        );
    };
    let (_keep, owned) =
        match attach::resolve_borrowing::<K::Owned>(u64::from_le_bytes(*id), K::decode) {
            // SAFETY: the value stays valid while `_keep` lives, to the end of this function.
            Ok((keep, owned)) => (keep, unsafe { &*owned }),
            Err(e) => return failed(0, FailureKind::Decode, format!("the captured values: {e}")),
        };
    K::with(owned, |captures| {
        run_batch::<I, R, KEEP>(items, |item| f(captures, item))
    })
}

/// The failure of a batch that names a `fn` pointer entry but no function.
fn no_callee() -> Vec<u8> {
    failed(
        0,
        FailureKind::Decode,
        "no function was sent with the batch".into(),
    )
}

/// Entry for a `fn(I) -> R` pointer sent along as the callee.
pub(crate) fn pointer_entry<I, R, const KEEP: bool>(callee: usize, input: &[u8]) -> Vec<u8>
where
    I: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    if callee == 0 {
        return no_callee();
    }
    // SAFETY: the batch names this entry only together with the id of a `fn(I) -> R` of the
    // same binary (`RemoteMap::pointer`), and the worker handshake checked the binary.
    let f: fn(I) -> R = unsafe { std::mem::transmute::<usize, fn(I) -> R>(callee) };
    run_batch::<I, R, KEEP>(input, f)
}

/// Decodes what a worker sent back.
pub(crate) fn decode_outcome<R: DeserializeOwned + 'static>(
    bytes: &[u8],
) -> Result<BatchOutcome<R>, String> {
    match bytes.split_first() {
        Some((&DONE, rest)) => format::decode_seq(rest)
            .map(BatchOutcome::Done)
            .map_err(|e| format!("cannot decode the results: {e}")),
        Some((&FAILED, rest)) => format::decode(rest)
            .map(BatchOutcome::Failed)
            .map_err(|e| format!("cannot decode a failure report: {e}")),
        Some((tag, _)) => Err(format!("unknown outcome tag {tag}")),
        None => Err("empty outcome".into()),
    }
}

/// The message of a failure report, if `bytes` is one (used to fingerprint the binary too).
pub(crate) fn decode_failure(bytes: &[u8]) -> Option<String> {
    match bytes.split_first() {
        Some((&FAILED, rest)) => format::decode::<Failure>(rest).ok().map(|f| f.message),
        _ => None,
    }
}
