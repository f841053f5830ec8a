//! Calls that keep going past failures: one outcome per task.

use super::Parallel;
use super::apply::{Keeping, MapFn, Remote, RunTask, TaskError, TryMapFn, TryRunTask};
use super::plan::Plan;
use super::stream::Stream;
use super::task::Task;
use crate::error::Error;

/// A [`Parallel`] call that keeps going past failures, made by
/// [`Parallel::keep_going`]: every task runs (unless the call itself cannot), and the call
/// returns one `Result` per task, in input order.
///
/// A task that panics, returns `Err` (`try_map`, `try_run`) or runs past the
/// [`timeout`](Parallel::timeout) gets its own error, which names its index
/// ([`Error::task_index`]). On a process backend a worker that dies costs the tasks of the
/// batch it was running, which get [`Error::WorkerDied`] (or [`Error::Lost`] for the
/// batch's other tasks when the failure names one task): use `batch_size(1)` to make that
/// one task. A task that panics in a worker process costs that task only.
///
/// A task past its timeout gives up its batch alone: a worker process running it is killed;
/// a thread cannot be stopped, so it finishes that task and skips the rest of its batch
/// (a call whose tasks borrow from the caller, `map` and `try_map`, still waits for it
/// before it returns). The batch's other tasks get [`Error::Lost`].
///
/// The outer `Result` is `Err` only when the call cannot run at all: a configuration error
/// before any task runs, or a backend that lost every batch.
///
/// Results of `map` and `try_map` own their data here (`R: 'static`).
///
/// # Examples
///
/// ```
/// use parjob::{Error, Parallel};
///
/// let outcomes = Parallel::new()
///     .n_jobs(2)
///     .keep_going()
///     .try_map(["1", "x", "3"], |s| s.parse::<i32>())?;
/// assert_eq!(outcomes.len(), 3);
/// assert_eq!(outcomes[0].as_ref().ok(), Some(&1));
/// assert!(matches!(outcomes[1], Err(Error::TaskFailed { index: 1, .. })));
/// assert_eq!(outcomes[2].as_ref().ok(), Some(&3));
/// # Ok::<(), parjob::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
#[must_use = "a `KeepGoing` does nothing until one of its call methods runs"]
pub struct KeepGoing<'p> {
    call: &'p Parallel,
}

/// Each task's outcome, as the keep-going calls return them.
type Outcomes<R> = Vec<Result<R, Error>>;

impl Parallel {
    /// The same call, going on past failing tasks: its methods return one `Result` per
    /// task instead of failing at the first (see [`KeepGoing`]).
    ///
    /// ```
    /// use parjob::Parallel;
    ///
    /// let out = Parallel::new().n_jobs(2).keep_going().map(0..4, |i| {
    ///     assert!(i != 2, "two is not allowed");
    ///     i * 10
    /// })?;
    /// assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 3);
    /// assert_eq!(out[2].as_ref().unwrap_err().to_string(), "task 2 panicked: two is not allowed");
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn keep_going(&self) -> KeepGoing<'_> {
        KeepGoing { call: self }
    }

    fn keeping_plan(&self) -> Result<Plan, Error> {
        let mut plan = Plan::settle(self)?;
        plan.keep_going = true;
        Ok(plan)
    }
}

impl KeepGoing<'_> {
    /// [`Parallel::map`], with one outcome per task.
    ///
    /// # Errors
    ///
    /// A configuration error, as [`Parallel::map`]; task failures are in the outcomes.
    ///
    /// # Examples
    ///
    /// ```
    /// use parjob::Parallel;
    ///
    /// let data = vec![4.0_f64, 0.0, 1.0];
    /// let out = Parallel::new().keep_going().map(0..3, |i| {
    ///     assert!(data[i] != 0.0, "division by zero");
    ///     1.0 / data[i]
    /// })?;
    /// assert_eq!(out[0].as_ref().ok(), Some(&0.25));
    /// assert!(out[1].is_err());
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn map<It, F, R>(&self, items: It, f: F) -> Result<Outcomes<R>, Error>
    where
        It: IntoIterator,
        It::Item: Send,
        F: Fn(It::Item) -> R + Sync,
        R: Send + 'static,
    {
        self.collect_scoped(items, MapFn(f))
    }

    /// [`Parallel::try_map`], with one outcome per task: an `Err` is that task's
    /// [`Error::TaskFailed`].
    ///
    /// # Errors
    ///
    /// As [`map`](KeepGoing::map).
    ///
    /// # Examples
    ///
    /// ```
    /// use parjob::Parallel;
    ///
    /// let out = Parallel::new().keep_going().try_map(["7", "seven"], |s| s.parse::<u8>())?;
    /// assert_eq!(out[0].as_ref().ok(), Some(&7));
    /// let err = out[1].as_ref().unwrap_err();
    /// assert!(err.task_error::<std::num::ParseIntError>().is_some());
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn try_map<It, F, R, E>(&self, items: It, f: F) -> Result<Outcomes<R>, Error>
    where
        It: IntoIterator,
        It::Item: Send,
        F: Fn(It::Item) -> Result<R, E> + Sync,
        R: Send + 'static,
        E: Into<TaskError>,
    {
        self.collect_scoped(items, TryMapFn(f))
    }

    /// [`Parallel::run`], with one outcome per task.
    ///
    /// # Errors
    ///
    /// As [`map`](KeepGoing::map).
    ///
    /// # Examples
    ///
    /// ```
    /// use parjob::Parallel;
    ///
    /// let tasks = (0..3).map(|i| move || if i == 1 { panic!("no") } else { i });
    /// let out = Parallel::new().n_jobs(2).keep_going().run(tasks)?;
    /// assert_eq!(out.iter().map(|r| r.is_ok()).collect::<Vec<_>>(), [true, false, true]);
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn run<It>(&self, tasks: It) -> Result<Outcomes<<It::Item as Task>::Output>, Error>
    where
        It: IntoIterator,
        It::Item: Task + 'static,
        <It::Item as Task>::Output: 'static,
    {
        self.collect_owned(tasks, RunTask)
    }

    /// [`Parallel::try_run`], with one outcome per task.
    ///
    /// # Errors
    ///
    /// As [`map`](KeepGoing::map).
    ///
    /// # Examples
    ///
    /// ```
    /// use parjob::Parallel;
    ///
    /// let tasks = (1..4).map(|i| move || u8::try_from(i * 100));
    /// let out = Parallel::new().keep_going().try_run(tasks)?;
    /// assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 2);
    /// assert_eq!(out[2].as_ref().unwrap_err().task_index(), Some(2));
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn try_run<It, R, E>(&self, tasks: It) -> Result<Outcomes<R>, Error>
    where
        It: IntoIterator,
        It::Item: Task<Output = Result<R, E>> + 'static,
        R: Send + 'static,
        E: Into<TaskError> + 'static,
    {
        self.collect_owned(tasks, TryRunTask)
    }

    /// [`Parallel::map_iter`], going on past failures: an `Err` item is one task's, and
    /// the items after it still come.
    ///
    /// # Errors
    ///
    /// A configuration error before anything runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use parjob::Parallel;
    ///
    /// let stream = Parallel::new().n_jobs(2).keep_going().map_iter(0..4, |i| {
    ///     assert!(i % 2 == 0, "odd");
    ///     i
    /// })?;
    /// let oks: Vec<i32> = stream.filter_map(Result::ok).collect();
    /// assert_eq!(oks, [0, 2]);
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn map_iter<It, F, R>(
        &self,
        items: It,
        f: F,
    ) -> Result<impl Iterator<Item = Result<R, Error>> + 'static + use<It, F, R>, Error>
    where
        It: IntoIterator,
        It::IntoIter: 'static,
        It::Item: Send + 'static,
        F: Fn(It::Item) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        self.stream(items, MapFn(f), true)
    }

    /// [`Parallel::map_unordered`], going on past failures: items come in completion
    /// order, and an `Err` names its task's index.
    ///
    /// # Errors
    ///
    /// As [`map_iter`](KeepGoing::map_iter).
    ///
    /// # Examples
    ///
    /// ```
    /// use parjob::Parallel;
    ///
    /// let stream = Parallel::new().n_jobs(2).keep_going().map_unordered(0..4, |i| {
    ///     assert!(i != 3, "three");
    ///     i
    /// })?;
    /// let failed: Vec<_> = stream.filter_map(|r| r.err()?.task_index()).collect();
    /// assert_eq!(failed, [3]);
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn map_unordered<It, F, R>(
        &self,
        items: It,
        f: F,
    ) -> Result<impl Iterator<Item = Result<R, Error>> + 'static + use<It, F, R>, Error>
    where
        It: IntoIterator,
        It::IntoIter: 'static,
        It::Item: Send + 'static,
        F: Fn(It::Item) -> R + Send + Sync + 'static,
        R: Send + 'static,
    {
        self.stream(items, MapFn(f), false)
    }

    /// [`Parallel::run_iter`], going on past failures.
    ///
    /// # Errors
    ///
    /// As [`map_iter`](KeepGoing::map_iter).
    ///
    /// # Examples
    ///
    /// ```
    /// use parjob::Parallel;
    ///
    /// let tasks = (0..3).map(|i| move || if i == 0 { panic!("first") } else { i });
    /// let out: Vec<_> = Parallel::new().keep_going().run_iter(tasks)?.collect();
    /// assert!(out[0].is_err());
    /// assert_eq!(out[1..].iter().map(|r| *r.as_ref().unwrap()).collect::<Vec<_>>(), [1, 2]);
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn run_iter<It>(
        &self,
        tasks: It,
    ) -> Result<
        impl Iterator<Item = Result<<It::Item as Task>::Output, Error>> + 'static + use<It>,
        Error,
    >
    where
        It: IntoIterator,
        It::IntoIter: 'static,
        It::Item: Task + 'static,
        <It::Item as Task>::Output: 'static,
    {
        self.stream(tasks, RunTask, true)
    }

    /// [`Parallel::run_unordered`], going on past failures.
    ///
    /// # Errors
    ///
    /// As [`map_iter`](KeepGoing::map_iter).
    ///
    /// # Examples
    ///
    /// ```
    /// use parjob::Parallel;
    ///
    /// let tasks = (0..3).map(|i| move || if i == 1 { panic!("one") } else { i });
    /// let mut oks: Vec<i32> = Parallel::new()
    ///     .n_jobs(2)
    ///     .keep_going()
    ///     .run_unordered(tasks)?
    ///     .filter_map(Result::ok)
    ///     .collect();
    /// oks.sort();
    /// assert_eq!(oks, [0, 2]);
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn run_unordered<It>(
        &self,
        tasks: It,
    ) -> Result<
        impl Iterator<Item = Result<<It::Item as Task>::Output, Error>> + 'static + use<It>,
        Error,
    >
    where
        It: IntoIterator,
        It::IntoIter: 'static,
        It::Item: Task + 'static,
        <It::Item as Task>::Output: 'static,
    {
        self.stream(tasks, RunTask, false)
    }

    fn collect_scoped<It, A>(&self, items: It, apply: A) -> Result<Outcomes<A::Out>, Error>
    where
        It: IntoIterator,
        It::Item: Send,
        A: Remote<It::Item> + Sync,
        A::Out: 'static,
    {
        let plan = self.call.keeping_plan()?;
        Parallel::collect_planned(items.into_iter().enumerate(), &Keeping(apply), plan)
    }

    fn collect_owned<It, A>(&self, items: It, apply: A) -> Result<Outcomes<A::Out>, Error>
    where
        It: IntoIterator,
        It::Item: Send + 'static,
        A: Remote<It::Item> + Send + Sync + 'static,
        A::Out: 'static,
    {
        let plan = self.call.keeping_plan()?;
        Parallel::collect_owned_planned(items.into_iter().enumerate(), Keeping(apply), plan)
    }

    fn stream<It, A>(
        &self,
        items: It,
        apply: A,
        ordered: bool,
    ) -> Result<impl Iterator<Item = Result<A::Out, Error>> + 'static + use<It, A>, Error>
    where
        It: IntoIterator,
        It::IntoIter: 'static,
        It::Item: Send + 'static,
        A: Remote<It::Item> + Send + Sync + 'static,
        A::Out: 'static,
    {
        let plan = self.call.keeping_plan()?;
        let outcomes = Stream::new(items.into_iter().enumerate(), Keeping(apply), plan, ordered)?;
        // The stream's own `Err` (the call cannot go on) ends it; a task's is an item.
        Ok(outcomes.map(|outcome| outcome.and_then(|task| task)))
    }
}
