//! The [`Backend`] trait and the built-in backends.
//!
//! A backend decides where a call's work runs. The runtime does everything else: it pulls
//! tasks from the input, cuts them into batches, keeps results in order, enforces timeouts,
//! stops on the first failure and reports progress. A backend only has to run the
//! [`Job`]s it is handed on `workers` workers.

#[cfg(unix)]
mod loky;
#[cfg(all(unix, feature = "mpi"))]
mod mpi;
#[cfg(unix)]
mod multiprocessing;
mod sequential;
mod threading;

use std::fmt;
use std::sync::{Arc, OnceLock};

#[cfg(unix)]
pub use loky::Loky;
#[cfg(all(unix, feature = "mpi"))]
pub use mpi::Mpi;
#[cfg(unix)]
pub use multiprocessing::Multiprocessing;
pub use sequential::Sequential;
pub use threading::Threading;

use crate::registry::BackendSpec;
use crate::{Error, cpu};

/// A unit of work handed to a backend: one batch of tasks of one call.
///
/// A backend must eventually either [`run`](Job::run) every job it receives or drop it;
/// the call that produced a job waits for that before it returns when its tasks borrow
/// from the caller. Running a job never panics: task panics are caught inside it.
///
/// # Examples
///
/// A backend that queues jobs and runs them on one thread of its own:
///
/// ```
/// use parjob::{Backend, Job, Parallel, PoolRequest};
/// use std::sync::{mpsc, Mutex};
///
/// struct OneThread(Mutex<mpsc::Sender<Job>>);
///
/// impl OneThread {
///     fn new() -> Self {
///         let (tx, rx) = mpsc::channel::<Job>();
///         std::thread::spawn(move || rx.into_iter().for_each(Job::run));
///         OneThread(Mutex::new(tx))
///     }
/// }
///
/// impl Backend for OneThread {
///     fn name(&self) -> &str { "one-thread" }
///     fn spawn(&self, _request: PoolRequest, job: Job) {
///         // If the thread is gone the job is dropped, and the call reports it.
///         let _ = self.0.lock().unwrap().send(job);
///     }
/// }
///
/// let out = Parallel::new().backend(OneThread::new()).n_jobs(2).map(0..5, |i| i + 1)?;
/// assert_eq!(out, [1, 2, 3, 4, 5]);
/// # Ok::<(), parjob::Error>(())
/// ```
pub struct Job {
    work: Box<dyn FnOnce() + Send + 'static>,
}

impl Job {
    pub(crate) fn new(work: Box<dyn FnOnce() + Send + 'static>) -> Self {
        Job { work }
    }

    /// Runs the batch on the current thread.
    pub fn run(self) {
        (self.work)();
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Job")
    }
}

/// A batch bound for a worker process: the encoded batch, and where its outcome goes.
///
/// A backend sends [`batch`](RemoteJob::batch) to a worker (running the same binary), which
/// runs it with [`RemoteBatch::execute`](crate::remote::RemoteBatch::execute); the bytes that
/// come back go to [`finish`](RemoteJob::finish). If the call asked for per-task timeouts
/// ([`wants_task_starts`](RemoteJob::wants_task_starts)), the backend reports each task's
/// start with [`task_started`](RemoteJob::task_started). Dropping a job unfinished reports
/// it as lost.
pub struct RemoteJob {
    batch: crate::remote::RemoteBatch,
    reply: RemoteReply,
    inner_threads: Option<usize>,
}

/// The receiving end of a [`RemoteJob`]: where the worker's events about the batch go.
pub struct RemoteReply {
    wants_starts: bool,
    sink: Box<dyn RemoteSink>,
}

/// Where a remote batch's events go: implemented by the dispatcher.
pub(crate) trait RemoteSink: Send {
    fn started(&self, task: usize, at: std::time::Instant);
    fn finish(self: Box<Self>, outcome: Result<Vec<u8>, Error>);
    fn abandoned(&self) -> bool;
    /// The flag behind [`abandoned`](RemoteSink::abandoned), for a backend that checks it
    /// after giving the reply away.
    fn abandon_flag(&self) -> Option<Arc<std::sync::atomic::AtomicBool>> {
        None
    }
}

impl RemoteReply {
    pub(crate) fn new(wants_starts: bool, sink: Box<dyn RemoteSink>) -> Self {
        RemoteReply { wants_starts, sink }
    }

    /// Whether the call measures each task's own duration (it has a timeout).
    pub fn wants_task_starts(&self) -> bool {
        self.wants_starts
    }

    /// The worker started task `task` (counted within the batch).
    pub fn task_started(&self, task: usize) {
        self.sink.started(task, std::time::Instant::now());
    }

    /// The worker started task `task` at `at`.
    pub(crate) fn task_started_at(&self, task: usize, at: std::time::Instant) {
        self.sink.started(task, at);
    }

    /// The worker's reply (the bytes `execute` returned), or why there is none.
    pub fn finish(self, outcome: Result<Vec<u8>, Error>) {
        self.sink.finish(outcome);
    }

    /// Whether the call gave up on the batch (another task failed, a timeout, a dropped
    /// stream): a backend may then kill the worker running it.
    pub fn is_abandoned(&self) -> bool {
        self.sink.abandoned()
    }

    /// The flag [`is_abandoned`](RemoteReply::is_abandoned) reads, if it is one.
    pub(crate) fn abandon_flag(&self) -> Option<Arc<std::sync::atomic::AtomicBool>> {
        self.sink.abandon_flag()
    }
}

impl fmt::Debug for RemoteReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteReply")
            .field("wants_task_starts", &self.wants_starts)
            .finish()
    }
}

impl RemoteJob {
    pub(crate) fn new(
        batch: crate::remote::RemoteBatch,
        wants_starts: bool,
        sink: Box<dyn RemoteSink>,
        inner_threads: Option<usize>,
    ) -> Self {
        RemoteJob {
            batch,
            reply: RemoteReply { wants_starts, sink },
            inner_threads,
        }
    }

    /// The batch, to move to a worker, and where its events go.
    pub fn into_parts(self) -> (crate::remote::RemoteBatch, RemoteReply) {
        (self.batch, self.reply)
    }

    /// The `inner_max_num_threads` of the call, if set: threads for nested calls inside
    /// the worker.
    pub fn inner_threads(&self) -> Option<usize> {
        self.inner_threads
    }

    /// Whether the call gave up on the batch (see [`RemoteReply::is_abandoned`]).
    pub fn is_abandoned(&self) -> bool {
        self.reply.is_abandoned()
    }

    /// The encoded batch to send to a worker.
    pub fn batch(&self) -> &crate::remote::RemoteBatch {
        &self.batch
    }

    /// Whether the call measures each task's own duration (it has a timeout).
    pub fn wants_task_starts(&self) -> bool {
        self.reply.wants_starts
    }

    /// The worker started task `task` (counted within the batch).
    pub fn task_started(&self, task: usize) {
        self.reply.task_started(task);
    }

    /// The worker's reply (the bytes `execute` returned), or why there is none.
    pub fn finish(self, outcome: Result<Vec<u8>, Error>) {
        self.reply.finish(outcome);
    }
}

impl fmt::Debug for RemoteJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJob")
            .field("batch", &self.batch)
            .field("reply", &self.reply)
            .finish()
    }
}

/// A batch bound for a forked copy of this process: the work to run there, and where its
/// outcome goes.
///
/// A forking backend forks, runs [`work`](ForkJob::into_parts) in the child, sends the bytes
/// it returns back to the parent, and hands them to [`RemoteReply::finish`]. The child sees
/// the caller's memory as it was at the fork, so the batch's tasks may capture anything;
/// only their results are encoded.
pub struct ForkJob {
    work: ForkWork,
    reply: RemoteReply,
}

/// The part of a [`ForkJob`] that runs in the child.
pub struct ForkWork(ForkFn);

/// A batch's work in a child: given the task-start hook, returns the encoded outcome.
pub(crate) type ForkFn = Box<dyn FnOnce(Option<fn(usize)>) -> Vec<u8> + Send>;

impl ForkWork {
    pub(crate) fn new(work: ForkFn) -> Self {
        ForkWork(work)
    }

    /// Runs the batch and returns its encoded outcome, for [`RemoteReply::finish`]. With
    /// `on_start`, it is called with each task's position in the batch before the task
    /// runs (per-task timeouts). Task panics are caught and reported in the outcome.
    ///
    /// Meant for a forked child; in the parent it would run the tasks there.
    pub fn run(self, on_start: Option<fn(usize)>) -> Vec<u8> {
        (self.0)(on_start)
    }
}

impl fmt::Debug for ForkWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ForkWork")
    }
}

impl ForkJob {
    pub(crate) fn new(work: ForkWork, reply: RemoteReply) -> Self {
        ForkJob { work, reply }
    }

    /// The work, to run in the child, and where its events go. In the parent, drop the
    /// work before finishing the reply: it may borrow from the caller.
    pub fn into_parts(self) -> (ForkWork, RemoteReply) {
        (self.work, self.reply)
    }
}

impl fmt::Debug for ForkJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForkJob")
            .field("reply", &self.reply)
            .finish()
    }
}

/// What a call asks of a backend: how many workers, at which nesting level.
///
/// Jobs of calls with different requests must not share workers when one request is nested
/// below another: a task waiting on its own nested call would otherwise wait on itself.
///
/// ```
/// use parjob::PoolRequest;
///
/// let top = PoolRequest { workers: 4, nesting_level: 0 };
/// let inside_a_task = PoolRequest { nesting_level: 1, ..top };
/// assert_ne!(top, inside_a_task); // a pool per request keeps nested calls apart
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolRequest {
    /// The call's effective `n_jobs`: at most this many of its jobs run at once.
    pub workers: usize,
    /// The nesting level of the calling scope: 0 at the top, 1 inside a task, and so on.
    pub nesting_level: usize,
}

/// What nested calls inside a task see: the backend and `n_jobs` of the scope installed
/// around every batch on a worker.
///
/// ```
/// use parjob::{backend::Threading, Backend};
///
/// // joblib's ladder: threading with n_jobs unset one level down, then sequential.
/// assert_eq!(Threading::new().nested(0).backend.name(), "threading");
/// assert_eq!(Threading::new().nested(0).n_jobs, None);
/// assert_eq!(Threading::new().nested(1).backend.name(), "sequential");
/// ```
#[derive(Debug, Clone)]
pub struct NestedScope {
    /// Backend for calls made inside a task.
    pub backend: BackendSpec,
    /// `n_jobs` for calls made inside a task; `None` leaves it unset, which means 1.
    pub n_jobs: Option<i32>,
}

/// A value for a backend's own parameter, set with
/// [`BackendScope::param`](crate::BackendScope::param).
///
/// ```
/// use parjob::ParamValue;
/// use std::time::Duration;
///
/// assert_eq!(ParamValue::from(3), ParamValue::Int(3));
/// assert_eq!(ParamValue::from("x"), ParamValue::Str("x".into()));
/// assert_eq!(ParamValue::from(Duration::from_secs(1)).as_duration(), Some(Duration::from_secs(1)));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ParamValue {
    /// A flag.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// Text.
    Str(String),
    /// A length of time.
    Duration(std::time::Duration),
}

impl ParamValue {
    /// The value as a duration: a [`Duration`](ParamValue::Duration), or a number of
    /// seconds.
    pub fn as_duration(&self) -> Option<std::time::Duration> {
        match *self {
            ParamValue::Duration(d) => Some(d),
            ParamValue::Int(s) if s >= 0 => Some(std::time::Duration::from_secs(s as u64)),
            ParamValue::Float(s) => std::time::Duration::try_from_secs_f64(s).ok(),
            _ => None,
        }
    }
}

macro_rules! param_from {
    ($($t:ty => $variant:ident as $conv:ty),* $(,)?) => {$(
        impl From<$t> for ParamValue {
            fn from(v: $t) -> Self { ParamValue::$variant(<$conv>::from(v)) }
        }
    )*};
}

param_from! {
    bool => Bool as bool,
    i32 => Int as i64, i64 => Int as i64, u32 => Int as i64, u16 => Int as i64, u8 => Int as i64,
    f64 => Float as f64, f32 => Float as f64,
    &str => Str as String, String => Str as String,
    std::time::Duration => Duration as std::time::Duration,
}

/// Where the tasks of a parallel call run.
///
/// parjob's built-in backends are [`Sequential`] and [`Threading`]; any type implementing
/// this trait can be registered under a name with
/// [`register_parallel_backend`](crate::register_parallel_backend) or passed as an
/// instance wherever a backend is taken.
///
/// The runtime drives every call: it consumes the input lazily, cuts it into batches,
/// installs the [`nested`](Backend::nested) scope around each batch, orders the results,
/// enforces timeouts and fails fast. A backend receives finished [`Job`]s through
/// [`spawn`](Backend::spawn) and only has to run each of them on one of
/// `request.workers` workers. When the effective worker count is 1, the runtime runs
/// a plain loop on the calling thread and the backend is not asked at all.
///
/// # Examples
///
/// A backend that runs every batch on a fresh thread of its own (not a good idea for speed,
/// but it shows the whole contract):
///
/// ```
/// use parjob::{register_parallel_backend, parallel_backend, Backend, Job, Parallel, PoolRequest};
///
/// struct ThreadPerBatch;
///
/// impl Backend for ThreadPerBatch {
///     fn name(&self) -> &str {
///         "thread-per-batch"
///     }
///     fn spawn(&self, _request: PoolRequest, job: Job) {
///         std::thread::spawn(move || job.run());
///     }
/// }
///
/// register_parallel_backend("thread-per-batch", || ThreadPerBatch, false)?;
/// let squares = parallel_backend("thread-per-batch")
///     .n_jobs(2)
///     .run(|| Parallel::new().map(1..=4, |x: u64| x * x))??;
/// assert_eq!(squares, [1, 4, 9, 16]);
/// # Ok::<(), parjob::Error>(())
/// ```
///
/// This example does not bound concurrency to `request.workers`; a real backend keeps a pool
/// of exactly that many workers, as [`Threading`] does.
pub trait Backend: Send + Sync + 'static {
    /// The name the backend is known by, as [`ActiveBackend::name`](crate::ActiveBackend::name)
    /// reports it.
    fn name(&self) -> &str;

    /// Runs `job` on one of `request.workers` workers (the call's effective `n_jobs`, at least
    /// 2), at most that many of the call's jobs at once.
    fn spawn(&self, request: PoolRequest, job: Job);

    /// Turns an `n_jobs` setting into a worker count. The default is joblib's arithmetic:
    /// `k > 0` is `k`, `-1` every cpu, `k < -1` is `max(cpus + 1 + k, 1)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidNJobs`] for 0.
    fn effective_n_jobs(&self, n_jobs: i32) -> Result<usize, Error> {
        cpu::resolve_n_jobs(n_jobs)
    }

    /// The scope nested calls inside a task see, given this backend's own nesting level (0 at
    /// the top). The default is joblib's ladder: threading with `n_jobs` unset one level
    /// down, sequential below that.
    fn nested(&self, nesting_level: usize) -> NestedScope {
        default_nested(nesting_level)
    }

    /// How long a batch should last when `batch_size` is automatic: long enough that handing
    /// a batch over costs little next to running it, short enough to balance the load. The
    /// default, 1 ms, suits workers in this process.
    fn ideal_batch_duration(&self) -> std::time::Duration {
        std::time::Duration::from_millis(1)
    }

    /// Whether tasks that share memory with the caller (closures, borrowed data) can run
    /// here. A backend that returns `false` only receives tasks that can cross a process
    /// boundary; other work falls back to threading.
    fn supports_shared_memory(&self) -> bool {
        true
    }

    /// Runs a batch in a worker process. Called instead of [`spawn`](Backend::spawn), for
    /// batches whose tasks can cross a process boundary, on backends whose
    /// [`supports_shared_memory`](Backend::supports_shared_memory) is `false`. The default
    /// reports that the backend cannot.
    fn spawn_remote(&self, request: PoolRequest, job: RemoteJob) {
        let _ = request;
        job.finish(Err(Error::Transport {
            index: None,
            message: format!(
                "backend `{}` cannot run tasks in other processes",
                self.name()
            ),
        }));
    }

    /// Whether the backend runs batches in forked copies of this process: then
    /// [`spawn_forked`](Backend::spawn_forked) receives the batches of tasks whose results
    /// implement serde's traits (or that can travel whole) instead of
    /// [`spawn_remote`](Backend::spawn_remote). Needs
    /// [`supports_shared_memory`](Backend::supports_shared_memory) `false`. Default `false`.
    fn forks(&self) -> bool {
        false
    }

    /// Runs a batch in a forked child (see [`forks`](Backend::forks)). The default reports
    /// that the backend cannot.
    fn spawn_forked(&self, request: PoolRequest, job: ForkJob) {
        let _ = request;
        let (work, reply) = job.into_parts();
        drop(work);
        reply.finish(Err(Error::Transport {
            index: None,
            message: format!("backend `{}` cannot fork", self.name()),
        }));
    }

    /// Whether the backend has workers of its own, so that `inner_max_num_threads` (a limit
    /// for nested calls inside those workers) means something.
    fn has_workers(&self) -> bool {
        true
    }

    /// Sets one of the backend's own parameters (`BackendScope::param`), before first use.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a parameter the backend does not take or a bad value;
    /// the default takes none.
    fn set_param(&mut self, name: &str, value: &ParamValue) -> Result<(), Error> {
        let _ = value;
        Err(Error::config(format!(
            "backend `{}` takes no parameter `{name}`",
            self.name()
        )))
    }

    /// Called when a call gives up on jobs it already handed over (first failure, timeout, a
    /// dropped stream). Jobs not yet started skip their tasks by themselves; a backend whose
    /// workers may still be stuck in a task should replace them, so that the next call gets
    /// `workers` free workers. The default does nothing.
    fn abort(&self, request: PoolRequest) {
        let _ = request;
    }
}

pub(crate) fn default_nested(nesting_level: usize) -> NestedScope {
    static THREADING: OnceLock<Arc<dyn Backend>> = OnceLock::new();
    static SEQUENTIAL: OnceLock<Arc<dyn Backend>> = OnceLock::new();
    let backend = if nesting_level == 0 {
        THREADING.get_or_init(|| Arc::new(Threading::new()))
    } else {
        SEQUENTIAL.get_or_init(|| Arc::new(Sequential::new()))
    };
    NestedScope {
        backend: BackendSpec::from(Arc::clone(backend)),
        n_jobs: None,
    }
}
