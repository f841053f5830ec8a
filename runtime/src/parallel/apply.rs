//! How a call turns one input item into one result: the four call shapes share the engine
//! through this trait.

use super::task::Task;

pub(crate) type TaskError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) trait Apply<I> {
    type Out: Send;
    fn apply(&self, item: I) -> Result<Self::Out, TaskError>;
}

/// `map`: a function of the item.
pub(crate) struct MapFn<F>(pub(crate) F);

impl<I, R: Send, F: Fn(I) -> R> Apply<I> for MapFn<F> {
    type Out = R;
    #[inline]
    fn apply(&self, item: I) -> Result<R, TaskError> {
        Ok((self.0)(item))
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
