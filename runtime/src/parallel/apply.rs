//! How a call turns one input item into one result: the four call shapes share the engine
//! through this trait.

use super::task::Task;
use std::marker::PhantomData;
use std::mem::MaybeUninit;

use crate::remote::{
    ErasedDecode, Failure, FailureKind, Outcome, RemoteBatch, RemoteForm, RemoteMap, ResultCodec,
};

pub(crate) type TaskError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) trait Apply<I> {
    type Out: Send;
    fn apply(&self, item: I) -> Result<Self::Out, TaskError>;

    /// Runs the next `n` items, appending their results to `out`, and stops at the first
    /// failure: the failing item is then the `out.len()`-th of the batch.
    #[inline]
    fn apply_chunk(
        &self,
        items: &mut std::vec::IntoIter<I>,
        n: usize,
        out: &mut Vec<Self::Out>,
    ) -> Result<(), TaskError> {
        for item in items.by_ref().take(n) {
            out.push(self.apply(item)?);
        }
        Ok(())
    }

    /// Runs every remaining item, as [`apply_chunk`](Apply::apply_chunk) does.
    #[inline]
    fn apply_rest(
        &self,
        items: impl Iterator<Item = I>,
        out: &mut Vec<Self::Out>,
    ) -> Result<(), TaskError> {
        for item in items {
            out.push(self.apply(item)?);
        }
        Ok(())
    }

    /// Runs `items`, writing the results to `dest` one after another;
    /// `written` counts the values written, also when a task fails or panics.
    ///
    /// # Safety
    ///
    /// `dest` must have room for every item.
    #[inline]
    unsafe fn apply_into(
        &self,
        items: impl Iterator<Item = I>,
        dest: *mut Self::Out,
        written: &mut usize,
    ) -> Result<(), TaskError> {
        for item in items {
            let r = self.apply(item)?;
            // SAFETY: the caller gives room for every item.
            unsafe { dest.add(*written).write(r) };
            *written += 1;
        }
        Ok(())
    }
}

/// `map`: a function of the item.
pub(crate) struct MapFn<F>(pub(crate) F);

impl<I, R: Send, F: Fn(I) -> R> Apply<I> for MapFn<F> {
    type Out = R;
    #[inline]
    fn apply(&self, item: I) -> Result<R, TaskError> {
        Ok((self.0)(item))
    }

    #[inline]
    fn apply_chunk(
        &self,
        items: &mut std::vec::IntoIter<I>,
        n: usize,
        out: &mut Vec<R>,
    ) -> Result<(), TaskError> {
        out.extend(items.by_ref().take(n).map(&self.0));
        Ok(())
    }

    #[inline]
    fn apply_rest(
        &self,
        items: impl Iterator<Item = I>,
        out: &mut Vec<R>,
    ) -> Result<(), TaskError> {
        // By value: a `Vec` iterator or a range mapped into a `Vec` is one tight loop.
        out.extend(items.map(&self.0));
        Ok(())
    }

    #[inline]
    unsafe fn apply_into(
        &self,
        items: impl Iterator<Item = I>,
        dest: *mut R,
        written: &mut usize,
    ) -> Result<(), TaskError> {
        for item in items {
            let r = (self.0)(item);
            // SAFETY: the caller gives room for every item.
            unsafe { dest.add(*written).write(r) };
            *written += 1;
        }
        Ok(())
    }
}

/// `try_map`: a fallible function of the item; `Err` fails the call.
pub(crate) struct TryMapFn<F>(pub(crate) F);

impl<I, R: Send, E, F> Apply<I> for TryMapFn<F>
where
    F: Fn(I) -> Result<R, E>,
    E: Into<TaskError>,
{
    type Out = R;
    #[inline]
    fn apply(&self, item: I) -> Result<R, TaskError> {
        (self.0)(item).map_err(Into::into)
    }
}

/// `run`: the item is a task.
pub(crate) struct RunTask;

impl<T: Task> Apply<T> for RunTask {
    type Out = T::Output;
    #[inline]
    fn apply(&self, task: T) -> Result<T::Output, TaskError> {
        Ok(task.call())
    }
}

/// `try_run`: the item is a task returning `Result`.
pub(crate) struct TryRunTask;

impl<T, R, E> Apply<T> for TryRunTask
where
    T: Task<Output = Result<R, E>>,
    R: Send,
    E: Into<TaskError>,
{
    type Out = R;
    #[inline]
    fn apply(&self, task: T) -> Result<R, TaskError> {
        task.call().map_err(Into::into)
    }
}

/// A batch's form for a process backend.
pub(crate) enum Encoded<I, R> {
    /// The tasks cannot leave this process: run them on threads.
    Local(Vec<I>),
    /// Ready for a worker process.
    Remote {
        batch: RemoteBatch,
        decode: RemoteDecoder<R>,
    },
    /// The tasks could travel, but encoding one of them failed.
    Unencodable(String),
}

/// Decodes a worker's reply into the batch's results.
pub(crate) enum RemoteDecoder<R> {
    Typed(fn(&[u8]) -> Outcome<R>),
    /// Kept by the tasks themselves; made for their output type `R`.
    Erased(ErasedDecode, PhantomData<fn() -> R>),
    /// Kept by tasks returning `Result<R, E>`, whose first `Err` fails the batch: the
    /// erased decoder made for that output, and the function that unwraps the results.
    Fallible(ErasedDecode, fn(ErasedDecode, &[u8]) -> Outcome<R>),
}

impl<R> RemoteDecoder<R> {
    pub(crate) fn decode(&self, bytes: &[u8]) -> Outcome<R> {
        match self {
            RemoteDecoder::Typed(decode) => decode(bytes),
            RemoteDecoder::Erased(decode, _) => {
                let mut slot = MaybeUninit::<Outcome<R>>::uninit();
                // SAFETY: `Erased` is only built from a task's `__remote_form`, whose decoder
                // was made for that task's `Output`, which is `R`; it initialises the slot.
                unsafe {
                    decode(bytes, slot.as_mut_ptr().cast());
                    slot.assume_init()
                }
            }
            RemoteDecoder::Fallible(decode, unwrap) => unwrap(*decode, bytes),
        }
    }
}

/// Decodes the outcome of tasks returning `Result<R, E>` and turns the first `Err` into the
/// batch's failure, at that task: the error came back as a value of its own type, which the
/// call's `TaskFailed` keeps (`Error::task_error::<E>()` finds it).
fn unwrap_fallible<R, E: Into<TaskError>>(decode: ErasedDecode, bytes: &[u8]) -> Outcome<R> {
    let outcome = RemoteDecoder::<Result<R, E>>::Erased(decode, PhantomData).decode(bytes)?;
    Ok(outcome.and_then(|results| {
        let mut out = Vec::with_capacity(results.len());
        for (index, result) in results.into_iter().enumerate() {
            match result {
                Ok(r) => out.push(r),
                Err(e) => {
                    let source = e.into();
                    return Err(Failure {
                        index,
                        kind: FailureKind::Failed,
                        message: source.to_string(),
                        source: Some(source),
                    });
                }
            }
        }
        Ok(out)
    }))
}

/// The process-crossing form of a call shape, where it has one.
pub(crate) trait Remote<I>: Apply<I> {
    fn encode(&self, items: Vec<I>) -> Encoded<I, Self::Out> {
        Encoded::Local(items)
    }

    /// How results alone travel back from a forked child, which has the inputs already.
    fn fork_codec(&self) -> Option<ResultCodec<Self::Out>> {
        None
    }

    /// Why the tasks cannot leave this process, when the macros could name it (a captured
    /// variable whose type lacks serde).
    fn stays_because(&self) -> Option<&str> {
        None
    }
}

impl<I, R: Send, F: Fn(I) -> R> Remote<I> for MapFn<F> {}
impl<I, R: Send, E, F> Remote<I> for TryMapFn<F>
where
    F: Fn(I) -> Result<R, E>,
    E: Into<TaskError>,
{
}

/// `map` with a remote form found by the macros' probe; on threads it is a plain `map`.
pub(crate) struct RemoteMapFn<F, I, R> {
    pub(crate) map: MapFn<F>,
    pub(crate) remote: Option<RemoteMap<I, R>>,
    /// Set when the results implement serde's traits, whatever the inputs and the closure.
    pub(crate) results: Option<ResultCodec<R>>,
    /// Why there is no remote form, when the macros could name it.
    pub(crate) stays_because: Option<String>,
}

impl<I, R: Send, F: Fn(I) -> R> Apply<I> for RemoteMapFn<F, I, R> {
    type Out = R;
    #[inline]
    fn apply(&self, item: I) -> Result<R, TaskError> {
        self.map.apply(item)
    }

    #[inline]
    fn apply_chunk(
        &self,
        items: &mut std::vec::IntoIter<I>,
        n: usize,
        out: &mut Vec<R>,
    ) -> Result<(), TaskError> {
        self.map.apply_chunk(items, n, out)
    }

    #[inline]
    fn apply_rest(
        &self,
        items: impl Iterator<Item = I>,
        out: &mut Vec<R>,
    ) -> Result<(), TaskError> {
        self.map.apply_rest(items, out)
    }

    #[inline]
    unsafe fn apply_into(
        &self,
        items: impl Iterator<Item = I>,
        dest: *mut R,
        written: &mut usize,
    ) -> Result<(), TaskError> {
        // SAFETY: the caller's guarantee, passed on.
        unsafe { self.map.apply_into(items, dest, written) }
    }
}

impl<I, R: Send, F: Fn(I) -> R> Remote<I> for RemoteMapFn<F, I, R> {
    fn encode(&self, items: Vec<I>) -> Encoded<I, R> {
        match &self.remote {
            None => Encoded::Local(items),
            Some(map) => match map.batch(items) {
                Ok(batch) => Encoded::Remote {
                    batch,
                    decode: RemoteDecoder::Typed(map.decoder()),
                },
                Err(e) => Encoded::Unencodable(e),
            },
        }
    }

    fn fork_codec(&self) -> Option<ResultCodec<R>> {
        self.results.or(self.remote.as_ref().map(|m| m.results()))
    }

    fn stays_because(&self) -> Option<&str> {
        self.stays_because.as_deref()
    }
}

impl<T: Task> Remote<T> for RunTask {
    fn encode(&self, tasks: Vec<T>) -> Encoded<T, T::Output> {
        let (form, decode) = match tasks.first().map(Task::__remote_form) {
            Some(Some(form)) if tasks.iter().all(|t| t.__remote_form().is_some()) => form,
            _ => return Encoded::Local(tasks),
        };
        encode_tasks(
            form,
            RemoteDecoder::Erased(decode, PhantomData),
            tasks,
            Task::__encode_input,
        )
    }
}

impl<T, R, E> Remote<T> for TryRunTask
where
    T: Task<Output = Result<R, E>>,
    R: Send,
    E: Into<TaskError>,
{
    fn encode(&self, tasks: Vec<T>) -> Encoded<T, R> {
        let (form, decode) = match tasks.first().map(Task::__remote_form) {
            Some(Some(form)) if tasks.iter().all(|t| t.__remote_form().is_some()) => form,
            _ => return Encoded::Local(tasks),
        };
        encode_tasks(
            form,
            RemoteDecoder::Fallible(decode, unwrap_fallible::<R, E>),
            tasks,
            Task::__encode_input,
        )
    }
}

fn encode_tasks<T, R>(
    form: RemoteForm,
    decode: RemoteDecoder<R>,
    tasks: Vec<T>,
    encode: fn(T, &mut Vec<u8>) -> Result<(), String>,
) -> Encoded<T, R> {
    let (payload, attachments) = crate::remote::attach::collect(|| {
        // A `Vec` in the task encoding: the count as a `u64`, then each element.
        let mut payload = (tasks.len() as u64).to_le_bytes().to_vec();
        for task in tasks {
            encode(task, &mut payload)?;
        }
        Ok::<_, String>(payload)
    });
    match payload {
        Ok(payload) => Encoded::Remote {
            batch: form.batch(payload, attachments),
            decode,
        },
        Err(e) => Encoded::Unencodable(e),
    }
}
