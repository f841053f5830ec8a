//! `Parallel`: one configured parallel call, joblib's `Parallel(...)`.

mod apply;
mod batch;
mod collect;
mod dispatch;
mod keep;
mod plan;
mod progress;
mod split;
mod stream;
mod task;
mod work;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use batch::{BatchSize, PreDispatch};
pub use keep::KeepGoing;
pub use progress::Progress;
#[doc(hidden)]
pub use task::{Applied, Callable, Thunk};
pub use task::{Delayed, Task};

use apply::{MapFn, Remote, RemoteMapFn, RunTask, TaskError, TryMapFn, TryRunTask};
use collect::collect_ordered;
use dispatch::Dispatcher;
use plan::Plan;
use progress::ProgressFn;
use stream::Stream;

use crate::backend::{BackendSpec, ParamValue, Workers};
use crate::error::Error;
use crate::scope::{Prefer, Require, Settings};

/// A parallel call: how to run a collection of tasks, and the methods that run them.
///
/// Every setting left unset is taken from the active scope ([`parallel_backend`],
/// [`parallel_config`]) when the call runs, else from the root defaults (threading backend,
/// `n_jobs = -1`). A `Parallel` can be reused for any number of calls.
///
/// Results always come back in input order, except from the `*_unordered` methods. The
/// input is consumed lazily: at most [`pre_dispatch`](Parallel::pre_dispatch) batches are
/// pulled ahead of completion. When the effective `n_jobs` is 1, a call is a plain loop on
/// the calling thread.
///
/// # Failures
///
/// The first task that panics (or returns `Err`, in `try_map` / `try_run`) stops dispatch:
/// tasks not yet started never start, and the call returns that error. A call whose tasks
/// own their data (`run`, `try_run` and the streaming methods) returns at once, while tasks
/// already running finish in the background and their results are dropped. `map` and
/// `try_map` may borrow from the caller, so they return as soon as the tasks already running
/// (at most `n_jobs`) have let go of the caller's data.
///
/// [`parallel_backend`]: fn@crate::parallel_backend
/// [`parallel_config`]: crate::parallel_config
///
/// # Examples
///
/// ```
/// use parjob::Parallel;
///
/// let words = ["alpha", "beta", "gamma"];
/// let lengths = Parallel::new().n_jobs(2).map(words, |w| w.len())?;
/// assert_eq!(lengths, [5, 4, 5]);
/// # Ok::<(), parjob::Error>(())
/// ```
#[derive(Clone, Default)]
#[must_use = "a `Parallel` does nothing until one of its call methods runs"]
pub struct Parallel {
    /// What a scope could give too, resolved with the same rules.
    settings: Settings,
    batch_size: BatchSize,
    pre_dispatch: Option<PreDispatch>,
    timeout: Option<Duration>,
    on_progress: Option<ProgressFn>,
    progress_bar: Option<indicatif::ProgressBar>,
}

impl Parallel {
    /// A call with every setting inherited from the active scope.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of workers: `k > 0` is `k` (more than the cpu count is allowed), `-1`
    /// every cpu, `k < -1` is `max(cpus + 1 + k, 1)`. 0 is [`Error::InvalidNJobs`] when the
    /// call runs.
    ///
    /// ```
    /// let peak = std::sync::atomic::AtomicUsize::new(0);
    /// let out = parjob::Parallel::new().n_jobs(3).map(0..6, |i| i * 2)?;
    /// assert_eq!(out, [0, 2, 4, 6, 8, 10]);
    /// # let _ = peak;
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn n_jobs(mut self, n_jobs: i32) -> Self {
        self.settings.n_jobs = Some(n_jobs);
        self
    }

    /// The backend for this call only: a name, [`registered(name)`](crate::registered) or
    /// an instance. Overrides the active scope (and its `prefer` hint).
    ///
    /// ```
    /// use parjob::Parallel;
    ///
    /// let caller = std::thread::current().id();
    /// let ids = Parallel::new().backend("sequential").map(0..2, |_| std::thread::current().id())?;
    /// assert_eq!(ids, [caller, caller]);
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn backend(mut self, backend: impl Into<BackendSpec>) -> Self {
        self.settings.backend = Some(backend.into());
        self
    }

    /// Tasks per batch: [`BatchSize::Auto`] (the default) or a fixed count.
    ///
    /// ```
    /// let out = parjob::Parallel::new().n_jobs(2).batch_size(4).map(0..10, |i| i)?;
    /// assert_eq!(out.len(), 10);
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn batch_size(mut self, batch_size: impl Into<BatchSize>) -> Self {
        self.batch_size = batch_size.into();
        self
    }

    /// How many batches may be dispatched ahead of completion (default `"2*n_jobs"`); see
    /// [`PreDispatch`].
    ///
    /// ```
    /// let out = parjob::Parallel::new().n_jobs(2).pre_dispatch("all").map(0..10, |i| i)?;
    /// assert_eq!(out.len(), 10);
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn pre_dispatch(mut self, pre_dispatch: impl Into<PreDispatch>) -> Self {
        self.pre_dispatch = Some(pre_dispatch.into());
        self
    }

    /// The longest a single task may run, counted from that task's own start. A task that
    /// runs longer fails the call with [`Error::Timeout`].
    ///
    /// On the threading backend the late task's thread cannot be stopped: it finishes in the
    /// background, and later calls use fresh threads. (Tasks of other calls already queued on
    /// the same pool at that moment still wait for its threads, as with any shared pool.) A call that runs on the calling
    /// thread (effective `n_jobs` of 1) cannot interrupt its task and does not enforce the
    /// limit (a warning is logged once).
    ///
    /// ```
    /// use parjob::{Error, Parallel};
    /// use std::time::Duration;
    ///
    /// let r = Parallel::new()
    ///     .n_jobs(2)
    ///     .timeout(Duration::from_millis(50))
    ///     .run((0..2).map(|i| move || std::thread::sleep(Duration::from_millis(i * 400))));
    /// assert!(matches!(r, Err(Error::Timeout { index: 1, .. })));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Progress output on stderr: 0 (default) prints nothing; higher values print more
    /// often, every completion above 10. On a terminal a progress bar is drawn instead of
    /// joblib's lines (`[Parallel(n_jobs=2)]: Done  10 out of 100 | elapsed:    1.2s`).
    ///
    /// ```
    /// let out = parjob::Parallel::new().n_jobs(2).verbose(5).map(0..4, |i| i)?;
    /// assert_eq!(out.len(), 4);
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn verbose(mut self, verbose: u32) -> Self {
        self.settings.verbose = Some(verbose);
        self
    }

    /// A soft hint about the kind of workers, used when no backend is chosen (see [`Prefer`]).
    ///
    /// ```
    /// use parjob::{Parallel, Prefer};
    /// let out = Parallel::new().prefer(Prefer::Threads).map(0..3, |i| i)?;
    /// assert_eq!(out, [0, 1, 2]);
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn prefer(mut self, prefer: Prefer) -> Self {
        self.settings.prefer = Some(prefer);
        self
    }

    /// A hard constraint on the workers (see [`Require`]).
    ///
    /// ```
    /// use parjob::{Parallel, Require};
    /// let out = Parallel::new().require(Require::SharedMem).map(0..3, |i| i)?;
    /// assert_eq!(out, [0, 1, 2]);
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn require(mut self, require: Require) -> Self {
        self.settings.require = Some(require);
        self
    }

    /// Limits nested parallelism inside this call's workers: a call made inside a task uses
    /// at most this many threads unless it sets `n_jobs` itself.
    ///
    /// ```
    /// use parjob::{get_active_backend, Parallel};
    /// let inner = Parallel::new().n_jobs(2).inner_max_num_threads(4)
    ///     .map(0..2, |_| get_active_backend().n_jobs())?;
    /// assert_eq!(inner, [Some(4), Some(4)]);
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn inner_max_num_threads(mut self, threads: usize) -> Self {
        self.settings.inner_max_num_threads = Some(threads);
        self
    }

    /// A parameter of the call's own backend (needs [`backend`](Parallel::backend)).
    ///
    /// ```
    /// use parjob::{Error, Parallel};
    /// let r = Parallel::new().backend("threading").param("colour", 1).map(0..1, |i| i);
    /// assert!(matches!(r, Err(Error::InvalidConfig { .. })));
    /// ```
    pub fn param(mut self, name: &str, value: impl Into<ParamValue>) -> Self {
        self.settings.params.push((name.to_owned(), value.into()));
        self
    }

    /// Calls `callback` on the calling thread each time tasks complete, with the counts so
    /// far: the hook for progress bars and dashboards of your own.
    ///
    /// ```
    /// use parjob::Parallel;
    /// use std::sync::{Arc, Mutex};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// Parallel::new()
    ///     .n_jobs(2)
    ///     .on_progress(move |p| log.lock().unwrap().push((p.done, p.total)))
    ///     .map(0..10, |i| i)?;
    /// let seen = seen.lock().unwrap();
    /// assert_eq!(seen.last(), Some(&(10, Some(10))));
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn on_progress(mut self, callback: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.on_progress = Some(Arc::new(callback));
        self
    }

    /// Draws the call's progress in the caller's own bar (an [`indicatif`] bar, for a
    /// program that shows several in a `MultiProgress`): parjob sets its length when the
    /// number of tasks is known and its position as tasks complete; its style, message and
    /// end stay the caller's, so one bar can follow several calls. parjob's own bar and
    /// `verbose` lines give way to it.
    ///
    /// ```
    /// use parjob::Parallel;
    /// use parjob::indicatif::ProgressBar;
    ///
    /// let bar = ProgressBar::hidden(); // in a program: `multi.add(ProgressBar::new(0))`
    /// Parallel::new().n_jobs(2).progress_bar(bar.clone()).map(0..40, |i| i + 1)?;
    /// assert_eq!((bar.position(), bar.length()), (40, Some(40)));
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn progress_bar(mut self, bar: indicatif::ProgressBar) -> Self {
        self.progress_bar = Some(bar);
        self
    }

    /// Calls `f` on every item, in parallel, and returns the results in input order.
    ///
    /// Items and `f` may borrow from the caller. The items are pulled from `items` on the
    /// calling thread, so the iterator itself needs to be neither `Send` nor `Sync`.
    ///
    /// # Errors
    ///
    /// [`Error::TaskPanicked`] for the first task that panicked, [`Error::Timeout`],
    /// or a configuration error ([`Error::InvalidNJobs`], [`Error::InvalidConfig`],
    /// [`Error::UnknownBackend`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use parjob::Parallel;
    ///
    /// let table = vec![10, 20, 30];
    /// let offset = 1;
    /// let out = Parallel::new().map(0..3, |i| table[i] + offset)?;
    /// assert_eq!(out, [11, 21, 31]);
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn map<It, F, R>(&self, items: It, f: F) -> Result<Vec<R>, Error>
    where
        It: IntoIterator,
        It::Item: Send,
        F: Fn(It::Item) -> R + Sync,
        R: Send,
    {
        self.collect_scoped(items.into_iter(), &MapFn(f))
    }

    /// Like [`map`](Parallel::map) for a function returning `Result`: the first `Err` stops
    /// the call as [`Error::TaskFailed`] with the task's index and error.
    ///
    /// # Errors
    ///
    /// As [`map`](Parallel::map), plus [`Error::TaskFailed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use parjob::{Error, Parallel};
    ///
    /// let parsed = Parallel::new().try_map(["1", "2", "x"], |s| s.parse::<i32>());
    /// assert!(matches!(parsed, Err(Error::TaskFailed { index: 2, .. })));
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn try_map<It, F, R, E>(&self, items: It, f: F) -> Result<Vec<R>, Error>
    where
        It: IntoIterator,
        It::Item: Send,
        F: Fn(It::Item) -> Result<R, E> + Sync,
        R: Send,
        E: Into<TaskError>,
    {
        self.collect_scoped(items.into_iter(), &TryMapFn(f))
    }

    /// Runs every task (closures, [`Delayed`] calls, any [`Task`]) and returns their outputs
    /// in input order. Tasks own what they use, so a failing call returns at once.
    ///
    /// # Errors
    ///
    /// As [`map`](Parallel::map).
    ///
    /// # Examples
    ///
    /// ```
    /// use parjob::Parallel;
    ///
    /// fn neg(x: i64) -> i64 { -x }
    ///
    /// let out = Parallel::new().run((0..5).map(|i| move || neg(i + 1)))?;
    /// assert_eq!(out, [-1, -2, -3, -4, -5]);
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn run<It>(&self, tasks: It) -> Result<Vec<<It::Item as Task>::Output>, Error>
    where
        It: IntoIterator,
        It::Item: Task + 'static,
        <It::Item as Task>::Output: 'static,
    {
        self.collect_owned(tasks.into_iter(), RunTask)
    }

    /// Like [`run`](Parallel::run) for tasks returning `Result`: the first `Err` stops the
    /// call as [`Error::TaskFailed`].
    ///
    /// # Errors
    ///
    /// As [`run`](Parallel::run), plus [`Error::TaskFailed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use parjob::{Error, Parallel};
    ///
    /// let ok = Parallel::new().try_run((1..3).map(|i| move || u8::try_from(i * 100)))?;
    /// assert_eq!(ok, [100, 200]);
    /// let overflow = Parallel::new().try_run((1..4).map(|i| move || u8::try_from(i * 100)));
    /// assert!(matches!(overflow, Err(Error::TaskFailed { index: 2, .. })));
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn try_run<It, R, E>(&self, tasks: It) -> Result<Vec<R>, Error>
    where
        It: IntoIterator,
        It::Item: Task<Output = Result<R, E>> + 'static,
        R: Send + 'static,
        E: Into<TaskError> + 'static,
    {
        self.collect_owned(tasks.into_iter(), TryRunTask)
    }

    /// Calls `f` on every item and yields the results in input order as they become
    /// available (joblib's `return_as="generator"`).
    ///
    /// Work starts before the first `next`. The stream owns its inputs and workers (it does
    /// not borrow the `Parallel`), and it applies backpressure: results waiting to be taken
    /// count against [`pre_dispatch`](Parallel::pre_dispatch), so a consumer that stops
    /// asking stops the input from being pulled. After an `Err` the stream ends; dropping it
    /// early skips the tasks not yet started.
    ///
    /// # Errors
    ///
    /// A configuration error before anything runs; task failures come as `Err` items.
    ///
    /// # Examples
    ///
    /// ```
    /// use parjob::Parallel;
    ///
    /// // An endless input: only what is consumed (plus a bounded look-ahead) is computed.
    /// let squares = Parallel::new().n_jobs(2).map_iter(0u64.., |x| x * x)?;
    /// let first: Vec<u64> = squares.take(5).collect::<Result<_, _>>()?;
    /// assert_eq!(first, [0, 1, 4, 9, 16]);
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
        Stream::new(items.into_iter(), MapFn(f), Plan::settle(self)?, true)
    }

    /// Like [`map_iter`](Parallel::map_iter), yielding results in completion order
    /// (joblib's `return_as="generator_unordered"`).
    ///
    /// # Errors
    ///
    /// As [`map_iter`](Parallel::map_iter).
    ///
    /// # Examples
    ///
    /// ```
    /// use parjob::Parallel;
    ///
    /// let mut out: Vec<i32> = Parallel::new()
    ///     .n_jobs(2)
    ///     .map_unordered(0..6, |i| i * 10)?
    ///     .collect::<Result<_, _>>()?;
    /// out.sort();
    /// assert_eq!(out, [0, 10, 20, 30, 40, 50]);
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
        Stream::new(items.into_iter(), MapFn(f), Plan::settle(self)?, false)
    }

    /// Runs tasks and yields their outputs in input order as they become available; see
    /// [`map_iter`](Parallel::map_iter).
    ///
    /// # Errors
    ///
    /// As [`map_iter`](Parallel::map_iter).
    ///
    /// # Examples
    ///
    /// ```
    /// use parjob::Parallel;
    ///
    /// let mut stream = Parallel::new().n_jobs(2).run_iter((0..3).map(|i| move || i + 1))?;
    /// assert_eq!(stream.next().transpose()?, Some(1));
    /// assert_eq!(stream.collect::<Result<Vec<_>, _>>()?, [2, 3]);
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
        Stream::new(tasks.into_iter(), RunTask, Plan::settle(self)?, true)
    }

    /// Runs tasks and yields their outputs in completion order; see
    /// [`map_unordered`](Parallel::map_unordered).
    ///
    /// # Errors
    ///
    /// As [`map_iter`](Parallel::map_iter).
    ///
    /// # Examples
    ///
    /// ```
    /// use parjob::Parallel;
    /// use std::time::Duration;
    ///
    /// let tasks = [300u64, 0].map(|ms| move || { std::thread::sleep(Duration::from_millis(ms)); ms });
    /// let order: Vec<u64> = Parallel::new().n_jobs(2).run_unordered(tasks)?.collect::<Result<_, _>>()?;
    /// assert_eq!(order, [0, 300]); // the quick task comes first
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
        Stream::new(tasks.into_iter(), RunTask, Plan::settle(self)?, false)
    }

    /// `map` for the macros: with a remote form, a process backend can take the tasks.
    /// `remote` makes that form (encoding the call's captures), and runs only when the
    /// backend's workers are other processes and the call does not run inline.
    pub(crate) fn map_maybe_remote<It, F, R>(
        &self,
        items: It,
        f: F,
        remote: impl FnOnce() -> Option<crate::remote::RemoteMap<It::Item, R>>,
        results: Option<crate::remote::ResultCodec<R>>,
        stays_because: Option<String>,
    ) -> Result<Vec<R>, Error>
    where
        It: IntoIterator,
        It::Item: Send,
        F: Fn(It::Item) -> R + Sync,
        R: Send,
    {
        let plan = Plan::settle(self)?;
        let remote = match plan.backend.workers() {
            Workers::Processes if !plan.runs_inline() => remote(),
            _ => None,
        };
        Self::collect_planned(
            items.into_iter(),
            &RemoteMapFn {
                map: MapFn(f),
                remote,
                results,
                stays_because,
            },
            plan,
        )
    }

    fn collect_scoped<It: Iterator, A: Remote<It::Item> + Sync>(
        &self,
        input: It,
        apply: &A,
    ) -> Result<Vec<A::Out>, Error>
    where
        It::Item: Send,
    {
        Self::collect_planned(input, apply, Plan::settle(self)?)
    }

    fn collect_planned<It: Iterator, A: Remote<It::Item> + Sync>(
        input: It,
        apply: &A,
        mut plan: Plan,
    ) -> Result<Vec<A::Out>, Error>
    where
        It::Item: Send,
    {
        if plan.runs_inline() {
            return stream::collect_inline(input, apply, &mut plan);
        }
        let input = match split::try_split(input, apply, &plan) {
            Ok(result) => return result,
            Err(input) => input,
        };
        // With a known length, workers write results straight into the output. The buffer
        // is made before the dispatcher, so that it is dropped after it: the dispatcher's
        // drop waits for every job that may still write.
        let (lo, hi) = input.size_hint();
        let mut out: Vec<A::Out> = Vec::new();
        // A call that keeps going past a timeout gives up a batch that may still write:
        // its results come back in messages instead.
        let may_give_up = plan.keep_going && plan.timeout.is_some();
        let in_place = !may_give_up && Some(lo) == hi && out.try_reserve_exact(lo).is_ok();
        let mut d = Dispatcher::scoped(input, apply, plan)?;
        if in_place {
            // SAFETY: `d` was made by `scoped`, so it waits for its jobs when dropped; `out`
            // has room for the `lo` tasks the input announced and outlives `d`, which is
            // moved into `collect_ordered` and dropped there; `collect_ordered` is the only
            // other user of the buffer.
            unsafe { d.write_into(out.as_mut_ptr()) };
        }
        collect_ordered(d, &mut out)?;
        Ok(out)
    }

    fn collect_owned<It, A>(&self, input: It, apply: A) -> Result<Vec<A::Out>, Error>
    where
        It: Iterator,
        It::Item: Send + 'static,
        A: Remote<It::Item> + Send + Sync + 'static,
        A::Out: 'static,
    {
        Self::collect_owned_planned(input, apply, Plan::settle(self)?)
    }

    fn collect_owned_planned<It, A>(
        input: It,
        apply: A,
        mut plan: Plan,
    ) -> Result<Vec<A::Out>, Error>
    where
        It: Iterator,
        It::Item: Send + 'static,
        A: Remote<It::Item> + Send + Sync + 'static,
        A::Out: 'static,
    {
        if plan.runs_inline() {
            return stream::collect_inline(input, &apply, &mut plan);
        }
        let mut out = Vec::new();
        collect_ordered(Dispatcher::owned(input, Arc::new(apply), plan)?, &mut out)?;
        Ok(out)
    }
}

impl fmt::Debug for Parallel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parallel")
            .field("settings", &self.settings)
            .field("batch_size", &self.batch_size)
            .field("pre_dispatch", &self.pre_dispatch)
            .field("timeout", &self.timeout)
            .field(
                "on_progress",
                &self.on_progress.as_ref().map(|_| "<callback>"),
            )
            .field("progress_bar", &self.progress_bar.is_some())
            .finish()
    }
}
