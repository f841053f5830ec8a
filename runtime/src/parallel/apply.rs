//! How a call turns one input item into one result: the four call shapes share the engine
//! through this trait.

use super::task::Task;
use std::marker::PhantomData;
use std::mem::MaybeUninit;

use crate::error::{Error, catch_panic};
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
    /// Kept by tasks returning `Result<R, E>`: the erased decoder made for that output, and
    /// the function that decodes through it into each task's `R` or its error.
    Fallible(ErasedDecode, FallibleDecode<R>),
    /// Made around another decoder (a call that keeps going past failures).
    Boxed(BoxedDecode<R>),
}

/// A decoder made around another one.
pub(crate) type BoxedDecode<R> = Box<dyn Fn(&[u8]) -> Outcome<R> + Send + Sync>;

/// Decodes the outcome of a batch of fallible tasks through their erased decoder.
pub(crate) type FallibleDecode<R> = fn(ErasedDecode, &[u8]) -> Outcome<Result<R, TaskError>>;

impl<R> RemoteDecoder<R> {
    /// The batch's results, or the failure that stopped it: for fallible tasks, the first
    /// `Err`, at that task (its error came back as a value of its own type, which the
    /// call's `TaskFailed` keeps: `Error::task_error::<E>()` finds it).
    pub(crate) fn decode(&self, bytes: &[u8]) -> Outcome<R> {
        match self {
            RemoteDecoder::Typed(decode) => decode(bytes),
            RemoteDecoder::Erased(decode, _) => decode_erased(*decode, bytes),
            RemoteDecoder::Fallible(decode, values) => {
                Ok(values(*decode, bytes)?.and_then(|values| {
                    let mut out = Vec::with_capacity(values.len());
                    for (index, value) in values.into_iter().enumerate() {
                        match value {
                            Ok(r) => out.push(r),
                            Err(source) => return Err(failure_of(index, source)),
                        }
                    }
                    Ok(out)
                }))
            }
            RemoteDecoder::Boxed(decode) => decode(bytes),
        }
    }

    /// Each task's result, or the error it returned (fallible tasks), or the failure that
    /// stopped the batch.
    fn decode_values(&self, bytes: &[u8]) -> Outcome<Result<R, TaskError>> {
        match self {
            RemoteDecoder::Fallible(decode, values) => values(*decode, bytes),
            other => Ok(other
                .decode(bytes)?
                .map(|rs| rs.into_iter().map(Ok).collect())),
        }
    }
}

/// Decodes through a decoder made for `R` by a task's `__remote_form`.
fn decode_erased<R>(decode: ErasedDecode, bytes: &[u8]) -> Outcome<R> {
    let mut slot = MaybeUninit::<Outcome<R>>::uninit();
    // SAFETY: `Erased` and `Fallible` are only built from a task's `__remote_form`, whose
    // decoder was made for that task's `Output`, which is `R` here; it initialises the slot.
    unsafe {
        decode(bytes, slot.as_mut_ptr().cast());
        slot.assume_init()
    }
}

/// The failure of the task at `index` of a batch that returned `Err(source)`.
fn failure_of(index: usize, source: TaskError) -> Failure {
    Failure {
        index,
        kind: FailureKind::Failed,
        message: source.to_string(),
        source: Some(source),
    }
}

/// Decodes the outcome of tasks returning `Result<R, E>` into each task's `R` or error.
fn fallible_values<R, E: Into<TaskError>>(
    decode: ErasedDecode,
    bytes: &[u8],
) -> Outcome<Result<R, TaskError>> {
    let outcome = decode_erased::<Result<R, E>>(decode, bytes)?;
    Ok(outcome.map(|results| results.into_iter().map(|r| r.map_err(Into::into)).collect()))
}

/// The process-crossing form of a call shape, where it has one.
pub(crate) trait Remote<I>: Apply<I> {
    /// The batch of `items` for a worker process; with `keep_going`, the worker runs every
    /// task of it whichever fail.
    fn encode(&self, items: Vec<I>, keep_going: bool) -> Encoded<I, Self::Out> {
        let _ = keep_going;
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

    /// The outcomes of the tasks `first..first + len` of a batch that failed as a whole
    /// (`error`), for a call that goes on past it; `Err(error)` fails the call.
    fn lost(&self, error: Error, first: usize, len: usize) -> Result<Vec<Self::Out>, Error> {
        let _ = (first, len);
        Err(error)
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
    fn encode(&self, items: Vec<I>, keep_going: bool) -> Encoded<I, R> {
        match &self.remote {
            None => Encoded::Local(items),
            Some(map) => match map.batch_for(items, keep_going) {
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
    fn encode(&self, tasks: Vec<T>, keep_going: bool) -> Encoded<T, T::Output> {
        let (form, decode) = match tasks.first().map(Task::__remote_form) {
            Some(Some(form)) if tasks.iter().all(|t| t.__remote_form().is_some()) => form,
            _ => return Encoded::Local(tasks),
        };
        encode_tasks(
            form,
            RemoteDecoder::Erased(decode, PhantomData),
            tasks,
            Task::__encode_input,
            keep_going,
        )
    }
}

impl<T, R, E> Remote<T> for TryRunTask
where
    T: Task<Output = Result<R, E>>,
    R: Send,
    E: Into<TaskError>,
{
    fn encode(&self, tasks: Vec<T>, keep_going: bool) -> Encoded<T, R> {
        let (form, decode) = match tasks.first().map(Task::__remote_form) {
            Some(Some(form)) if tasks.iter().all(|t| t.__remote_form().is_some()) => form,
            _ => return Encoded::Local(tasks),
        };
        encode_tasks(
            form,
            RemoteDecoder::Fallible(decode, fallible_values::<R, E>),
            tasks,
            Task::__encode_input,
            keep_going,
        )
    }
}

fn encode_tasks<T, R>(
    form: RemoteForm,
    decode: RemoteDecoder<R>,
    tasks: Vec<T>,
    encode: fn(T, &mut Vec<u8>) -> Result<(), String>,
    keep_going: bool,
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
            batch: form.batch(payload, attachments, keep_going),
            decode,
        },
        Err(e) => Encoded::Unencodable(e),
    }
}

/// A call that keeps going past failures: each task's outcome is its result or how it
/// failed, and no task's failure fails its batch. Items carry their position in the input,
/// which the errors name.
pub(crate) struct Keeping<A>(pub(crate) A);

impl<I, A: Apply<I>> Apply<(usize, I)> for Keeping<A> {
    type Out = Result<A::Out, Error>;

    #[inline]
    fn apply(&self, (index, item): (usize, I)) -> Result<Self::Out, TaskError> {
        Ok(match catch_panic(|| self.0.apply(item)) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(source)) => Err(Error::TaskFailed { index, source }),
            Err(message) => Err(Error::TaskPanicked { index, message }),
        })
    }
}

impl<I, A: Remote<I>> Remote<(usize, I)> for Keeping<A>
where
    A::Out: 'static,
{
    fn encode(&self, items: Vec<(usize, I)>, _keep_going: bool) -> Encoded<(usize, I), Self::Out> {
        let Some(&(first, _)) = items.first() else {
            return Encoded::Local(items);
        };
        // A batch holds consecutive tasks: the first index names them all.
        let inner = items.into_iter().map(|(_, item)| item).collect();
        match self.0.encode(inner, true) {
            Encoded::Local(back) => Encoded::Local((first..).zip(back).collect()),
            Encoded::Unencodable(message) => Encoded::Unencodable(message),
            Encoded::Remote { batch, decode } => Encoded::Remote {
                batch,
                decode: RemoteDecoder::Boxed(Box::new(move |bytes| {
                    decode_kept(&decode, bytes, first)
                })),
            },
        }
    }

    fn stays_because(&self) -> Option<&str> {
        self.0.stays_because()
    }

    fn lost(&self, error: Error, first: usize, len: usize) -> Result<Vec<Self::Out>, Error> {
        Ok(error.spread(first, len).into_iter().map(Err).collect())
    }
}

/// Decodes the reply to a batch that went on past its failing tasks (see
/// [`split_kept`](crate::remote::split_kept)) into one outcome per task; the batch's tasks
/// start at `first` in the input.
fn decode_kept<R>(
    decode: &RemoteDecoder<R>,
    bytes: &[u8],
    first: usize,
) -> Outcome<Result<R, Error>> {
    let (failures, rest) = crate::remote::split_kept(bytes)?;
    let values = match decode.decode_values(rest)? {
        Ok(values) => values,
        Err(failure) => return Ok(Err(failure)),
    };
    let len = values.len() + failures.len();
    let mut values = values.into_iter();
    let mut failures = failures.into_iter().peekable();
    let mut out = Vec::with_capacity(len);
    for position in 0..len {
        let index = first + position;
        let outcome = match failures.next_if(|f| f.index == position) {
            Some(failure) => Err(failure.into_error(index)),
            None => match values.next() {
                Some(value) => value.map_err(|source| Error::TaskFailed { index, source }),
                None => return Err("a failed task lies beyond the batch".into()),
            },
        };
        out.push(outcome);
    }
    Ok(Ok(out))
}
