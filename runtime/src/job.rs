//! The work a backend is handed: one batch of one call, in the form its workers take.
//!
//! These types sit below the engines (`process/`, `mpi/`) and the backends: an engine runs
//! [`RemoteJob`]s and [`ForkJob`]s without knowing the call that made them, and reports back
//! through the [`RemoteReply`] inside.

use std::any::Any;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::remote::RemoteBatch;
use crate::sync::Recover;

/// A unit of work handed to a backend: one batch of tasks of one call.
///
/// Which variant a backend receives follows from its [`Workers`](crate::backend::Workers):
/// thread backends get [`Job::Local`], process backends [`Job::Remote`], forking backends
/// [`Job::Forked`]. [`run`](Job::run) runs any of them on the current thread.
///
/// A backend must eventually either run every job it receives or drop it; the call that
/// produced a job waits for that before it returns when its tasks borrow from the caller.
/// Running a job never panics: task panics are caught inside it.
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
#[derive(Debug)]
pub enum Job {
    /// A batch for a thread of this process; its tasks may borrow from the caller.
    Local(LocalJob),
    /// A batch encoded for a worker process running this binary.
    Remote(RemoteJob),
    /// A batch for a forked copy of this process.
    Forked(ForkJob),
}

impl Job {
    /// Runs the batch on the current thread, whatever its form: a remote or forked batch
    /// then runs here as a worker would run it (without per-task start reports).
    pub fn run(self) {
        match self {
            Job::Local(job) => job.run(),
            Job::Remote(job) => {
                let (batch, reply) = job.into_parts();
                // SAFETY: a `RemoteJob` is made only by this process's dispatcher, from a
                // batch it encoded itself, so its entry function is one of this binary.
                let outcome = unsafe { batch.execute() };
                reply.finish(Ok(outcome));
            }
            Job::Forked(job) => {
                let (work, reply) = job.into_parts();
                reply.finish(Ok(work.run(None)));
            }
        }
    }
}

/// A batch for a thread of this process (see [`Job::Local`]).
///
/// ```
/// use parjob::{Backend, Job, Parallel, PoolRequest};
///
/// struct Inline;
///
/// impl Backend for Inline {
///     fn name(&self) -> &str { "inline" }
///     fn spawn(&self, _request: PoolRequest, job: Job) {
///         match job {
///             // What a thread backend receives: run it on a thread of yours.
///             Job::Local(local) => local.run(),
///             other => other.run(),
///         }
///     }
/// }
///
/// assert_eq!(Parallel::new().backend(Inline).n_jobs(2).map(1..4, |x| x * 10)?, [10, 20, 30]);
/// # Ok::<(), parjob::Error>(())
/// ```
pub struct LocalJob {
    work: Box<dyn FnOnce() + Send + 'static>,
}

impl LocalJob {
    pub(crate) fn new(work: Box<dyn FnOnce() + Send + 'static>) -> Self {
        LocalJob { work }
    }

    /// Runs the batch on the current thread.
    pub fn run(self) {
        (self.work)();
    }
}

impl fmt::Debug for LocalJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalJob")
    }
}

/// A batch bound for a worker process: the encoded batch, and where its outcome goes.
///
/// A backend sends [`batch`](RemoteJob::batch) to a worker (running the same binary), which
/// runs it with [`RemoteBatch::execute`]; the bytes that come back go to
/// [`finish`](RemoteJob::finish). If the call asked for per-task timeouts
/// ([`wants_task_starts`](RemoteJob::wants_task_starts)), the backend reports each task's
/// start with [`task_started`](RemoteJob::task_started). Dropping a job unfinished reports
/// it as lost.
///
/// # Examples
///
/// A process backend in miniature: each batch crosses a byte boundary, as it would cross a
/// pipe, and runs on a thread that stands in for the worker process.
///
/// ```
/// use parjob::backend::Workers;
/// use parjob::remote::RemoteBatch;
/// use parjob::{Backend, Delayed, Job, Parallel, PoolRequest};
///
/// struct Loopback;
///
/// impl Backend for Loopback {
///     fn name(&self) -> &str { "loopback" }
///     fn workers(&self) -> Workers { Workers::Processes }
///     fn spawn(&self, _request: PoolRequest, job: Job) {
///         let Job::Remote(job) = job else { return job.run() };
///         let bytes = postcard::to_allocvec(job.batch()).expect("a batch encodes");
///         std::thread::spawn(move || {
///             // In the worker process:
///             let batch: RemoteBatch = postcard::from_bytes(&bytes).expect("a batch decodes");
///             // SAFETY: the batch was made by this very binary.
///             let outcome = unsafe { batch.execute() };
///             // Back in the caller:
///             job.finish(Ok(outcome));
///         });
///     }
/// }
///
/// fn square(x: u64) -> u64 { x * x }
///
/// let tasks = (1..=3).map(|x| Delayed::remote(square, x));
/// assert_eq!(Parallel::new().backend(Loopback).n_jobs(2).run(tasks)?, [1, 4, 9]);
/// # Ok::<(), parjob::Error>(())
/// ```
pub struct RemoteJob {
    batch: RemoteBatch,
    reply: RemoteReply,
    inner_threads: Option<usize>,
    /// The call has nothing else to do until this batch ends (see `waits_alone`).
    alone: bool,
}

/// The receiving end of a [`RemoteJob`] or [`ForkJob`]: where the worker's events about the
/// batch go. A backend that sends the batch away keeps the reply (from
/// [`RemoteJob::into_parts`]) to hand the outcome back when it arrives.
///
/// ```
/// use parjob::backend::Workers;
/// use parjob::{Backend, Delayed, Job, Parallel, PoolRequest};
///
/// struct Split;
///
/// impl Backend for Split {
///     fn name(&self) -> &str { "split" }
///     fn workers(&self) -> Workers { Workers::Processes }
///     fn spawn(&self, _request: PoolRequest, job: Job) {
///         let Job::Remote(job) = job else { return job.run() };
///         let (batch, reply) = job.into_parts();
///         assert!(!reply.is_abandoned());
///         // SAFETY: the batch was made by this very binary.
///         reply.finish(Ok(unsafe { batch.execute() }));
///     }
/// }
///
/// fn neg(x: i32) -> i32 { -x }
///
/// let out = Parallel::new().backend(Split).n_jobs(2).run((0..3).map(|x| Delayed::remote(neg, x)))?;
/// assert_eq!(out, [0, -1, -2]);
/// # Ok::<(), parjob::Error>(())
/// ```
pub struct RemoteReply {
    wants_starts: bool,
    sink: Box<dyn RemoteSink>,
}

/// Where a remote batch's events go: implemented by the dispatcher.
pub(crate) trait RemoteSink: Send {
    fn started(&self, task: usize, at: Instant);
    fn finish(self: Box<Self>, outcome: Result<&[u8], Error>);
    fn abandoned(&self) -> bool;
    /// The flag behind [`abandoned`](RemoteSink::abandoned), for a backend that checks it
    /// after giving the reply away.
    fn abandon_flag(&self) -> Option<Arc<AtomicBool>> {
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
        self.sink.started(task, Instant::now());
    }

    /// The worker started task `task` at `at`.
    pub(crate) fn task_started_at(&self, task: usize, at: Instant) {
        self.sink.started(task, at);
    }

    /// The worker's reply (the bytes `execute` returned), or why there is none.
    pub fn finish(self, outcome: Result<Vec<u8>, Error>) {
        match outcome {
            Ok(bytes) => self.sink.finish(Ok(&bytes)),
            Err(e) => self.sink.finish(Err(e)),
        }
    }

    /// [`finish`](RemoteReply::finish) with the reply read where it lies.
    pub(crate) fn finish_lent(self, outcome: Result<&[u8], Error>) {
        self.sink.finish(outcome);
    }

    /// Whether the call gave up on the batch (another task failed, a timeout, a dropped
    /// stream): a backend may then kill the worker running it.
    pub fn is_abandoned(&self) -> bool {
        self.sink.abandoned()
    }

    /// The flag [`is_abandoned`](RemoteReply::is_abandoned) reads, if it is one.
    pub(crate) fn abandon_flag(&self) -> Option<Arc<AtomicBool>> {
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
        batch: RemoteBatch,
        reply: RemoteReply,
        inner_threads: Option<usize>,
    ) -> Self {
        RemoteJob {
            batch,
            reply,
            inner_threads,
            alone: false,
        }
    }

    /// Marks the job as the only one its call has in flight, with no timeout to watch
    /// and nothing more to dispatch before it ends: the calling thread would only wait, so
    /// a backend may run the batch on it.
    pub(crate) fn alone(mut self, alone: bool) -> Self {
        self.alone = alone;
        self
    }

    /// Whether the call only waits for this batch (see [`alone`](RemoteJob::alone)).
    pub(crate) fn waits_alone(&self) -> bool {
        self.alone
    }

    /// The batch, to move to a worker, and where its events go.
    pub fn into_parts(self) -> (RemoteBatch, RemoteReply) {
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
    pub fn batch(&self) -> &RemoteBatch {
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
///
/// # Examples
///
/// A stand-in for a forking backend, which runs the child's part on a thread instead of in
/// a forked child (the `multiprocessing` backend forks for real):
///
/// ```
/// use parjob::backend::Workers;
/// use parjob::{Backend, Job, Parallel, PoolRequest};
///
/// struct NoFork;
///
/// impl Backend for NoFork {
///     fn name(&self) -> &str { "no-fork" }
///     fn workers(&self) -> Workers { Workers::Forks }
///     fn spawn(&self, _request: PoolRequest, job: Job) {
///         let Job::Forked(job) = job else { return job.run() };
///         let (work, reply) = job.into_parts();
///         // In a real child: run the work, write the bytes to the parent, exit.
///         let outcome = work.run(None);
///         reply.finish(Ok(outcome));
///     }
/// }
///
/// let offset = 100; // a capture: forked children see it without serde
/// let out = Parallel::new().backend(NoFork).n_jobs(2).map(0..3u64, |x| x + offset)?;
/// assert_eq!(out, [100, 101, 102]);
/// # Ok::<(), parjob::Error>(())
/// ```
pub struct ForkJob {
    work: ForkWork,
    reply: RemoteReply,
    inner: InnerThreads,
}

/// Threads for nested parallel work in a worker process: how many, and whether the call
/// asked for them (`inner_max_num_threads`) rather than taking the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InnerThreads {
    pub(crate) count: usize,
    pub(crate) explicit: bool,
}

/// The part of a [`ForkJob`] that runs in the child (see the example there).
pub struct ForkWork(Work);

enum Work {
    /// A batch of its own: the work owns its tasks.
    Once(ForkFn),
    /// Tasks `first..first + len` of a call whose tasks all sit in `session`.
    Range {
        session: Arc<ForkSession>,
        first: usize,
        len: usize,
    },
}

/// A batch's work in a child: given the task-start hook, returns the encoded outcome.
pub(crate) type ForkFn = Box<dyn FnOnce(Option<fn(usize)>) -> Vec<u8> + Send>;

/// Runs tasks `first..first + len` of a [`ForkSession`] and returns their encoded outcome,
/// given the task-start hook. Each task runs at most once per process: a task asked for
/// twice in one process fails its batch.
pub(crate) type RangeFn = Box<RunRange<'static>>;

/// What a [`RangeFn`] holds, borrowing for `'a`.
pub(crate) type RunRange<'a> =
    dyn Fn(usize, usize, Option<fn(usize)>) -> Vec<u8> + Send + Sync + 'a;

/// The tasks of one call, all pulled from its input before the first fork: a child forked
/// while the call runs holds every task already, so one child per worker can run batch
/// after batch of the call, told only which tasks to run (`multiprocessing` forks once per
/// worker and call instead of once per batch).
///
/// A backend keeps its children of the call in the session ([`take`](Self::take),
/// [`park`](Self::park)): they go when the session goes, which is when the last batch of
/// the call is gone.
pub(crate) struct ForkSession {
    children: Mutex<Children>,
    /// Signalled when a child is parked or a busy one is given up.
    freed: Condvar,
    run: RangeFn,
}

/// The children of one call, as the backend left them.
#[derive(Default)]
struct Children {
    /// Waiting for their next batch.
    parked: Vec<Box<dyn Any + Send>>,
    /// Running a batch (or being forked for one).
    busy: usize,
}

impl ForkSession {
    pub(crate) fn new(run: RangeFn) -> Self {
        ForkSession {
            children: Default::default(),
            freed: Condvar::new(),
            run,
        }
    }

    /// Runs tasks `first..first + len` here (in a child forked after the session was made,
    /// or on this thread), as [`RangeFn`] says.
    pub(crate) fn run(&self, first: usize, len: usize, on_start: Option<fn(usize)>) -> Vec<u8> {
        (self.run)(first, len, on_start)
    }

    /// A child of this call for the next batch: a parked one, or one that a busy child
    /// becomes within `patience` (a fork that would take longer is not worth it). `None`
    /// when there is none: the caller forks one. Either way the caller now has a busy
    /// child, which it ends with [`park`](Self::park) or [`retire`](Self::retire).
    pub(crate) fn take(&self, patience: Duration) -> Option<Box<dyn Any + Send>> {
        let deadline = Instant::now() + patience;
        let mut children = self.children.lock().recover();
        loop {
            if let Some(child) = children.parked.pop() {
                children.busy += 1;
                return Some(child);
            }
            let now = Instant::now();
            if children.busy == 0 || now >= deadline {
                children.busy += 1;
                return None;
            }
            children = self
                .freed
                .wait_timeout(children, deadline - now)
                .recover()
                .0;
        }
    }

    /// Keeps a child taken with [`take`](Self::take) for a later batch of the call.
    pub(crate) fn park(&self, child: Box<dyn Any + Send>) {
        let mut children = self.children.lock().recover();
        children.parked.push(child);
        children.busy = children.busy.saturating_sub(1);
        self.freed.notify_one();
    }

    /// Says that the busy child given by [`take`](Self::take) is gone (or was never
    /// forked): a batch waiting for it forks instead.
    pub(crate) fn retire(&self) {
        let mut children = self.children.lock().recover();
        children.busy = children.busy.saturating_sub(1);
        self.freed.notify_all();
    }
}

impl ForkWork {
    pub(crate) fn new(work: ForkFn) -> Self {
        ForkWork(Work::Once(work))
    }

    /// Tasks `first..first + len` of `session`; each range goes into one work only.
    pub(crate) fn range(session: Arc<ForkSession>, first: usize, len: usize) -> Self {
        ForkWork(Work::Range {
            session,
            first,
            len,
        })
    }

    /// The session and the tasks of a work made by [`range`](Self::range); the work back
    /// otherwise.
    pub(crate) fn into_range(self) -> Result<(Arc<ForkSession>, usize, usize), Self> {
        match self.0 {
            Work::Range {
                session,
                first,
                len,
            } => Ok((session, first, len)),
            once => Err(ForkWork(once)),
        }
    }

    /// Runs the batch and returns its encoded outcome, for [`RemoteReply::finish`]. With
    /// `on_start`, it is called with each task's position in the batch before the task
    /// runs (per-task timeouts). Task panics are caught and reported in the outcome.
    ///
    /// Meant for a forked child; in the parent it would run the tasks there.
    pub fn run(self, on_start: Option<fn(usize)>) -> Vec<u8> {
        match self.0 {
            Work::Once(work) => work(on_start),
            Work::Range {
                session,
                first,
                len,
            } => session.run(first, len, on_start),
        }
    }
}

impl fmt::Debug for ForkWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Work::Once(_) => f.write_str("ForkWork"),
            Work::Range { first, len, .. } => f
                .debug_struct("ForkWork")
                .field("tasks", &(*first..*first + *len))
                .finish(),
        }
    }
}

impl ForkJob {
    pub(crate) fn new(work: ForkWork, reply: RemoteReply, inner: InnerThreads) -> Self {
        ForkJob { work, reply, inner }
    }

    /// The threads a child gives nested work.
    pub(crate) fn inner(&self) -> InnerThreads {
        self.inner
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

/// Installs, around the batches a worker process or rank runs, the scope that nested calls
/// inside its tasks see (threading with `inner_threads` threads, one level down); the scope
/// ends when the returned value is dropped. The scope stack lives above the engines, so it
/// hands them this function.
pub(crate) type WorkerScope = fn(inner_threads: usize) -> Box<dyn Any>;

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> ForkSession {
        ForkSession::new(Box::new(|_, _, _| Vec::new()))
    }

    #[test]
    fn the_first_batch_forks_at_once_and_a_parked_child_is_reused() {
        let s = session();
        let start = Instant::now();
        // No child yet: fork, however patient.
        assert!(s.take(Duration::from_secs(10)).is_none());
        assert!(start.elapsed() < Duration::from_secs(5));
        s.park(Box::new(7u32));
        let child = s.take(Duration::ZERO).expect("the parked child");
        assert_eq!(child.downcast_ref::<u32>(), Some(&7));
    }

    #[test]
    fn a_batch_waits_for_a_busy_child_until_its_patience_runs_out() {
        let s = session();
        assert!(s.take(Duration::ZERO).is_none()); // one busy child
        let start = Instant::now();
        assert!(s.take(Duration::from_millis(30)).is_none());
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    /// A session with one busy child, and a thread running `wait` on it, which has had
    /// time to start waiting.
    fn waiting<T: Send + 'static>(
        wait: impl FnOnce(&ForkSession) -> T + Send + 'static,
    ) -> (Arc<ForkSession>, std::thread::JoinHandle<T>) {
        let s = Arc::new(session());
        assert!(s.take(Duration::ZERO).is_none()); // one busy child
        let waiter = {
            let s = Arc::clone(&s);
            std::thread::spawn(move || wait(&s))
        };
        std::thread::sleep(Duration::from_millis(20));
        (s, waiter)
    }

    #[test]
    fn a_child_parked_meanwhile_goes_to_the_waiting_batch() {
        let (s, waiter) = waiting(|s| s.take(Duration::from_secs(30)));
        s.park(Box::new(1u8));
        let got = waiter
            .join()
            .unwrap()
            .expect("the child parked while it waited");
        assert_eq!(got.downcast_ref::<u8>(), Some(&1));
    }

    #[test]
    fn a_retired_child_sends_the_waiting_batch_to_fork() {
        let (s, waiter) = waiting(|s| {
            let start = Instant::now();
            (s.take(Duration::from_secs(30)).is_none(), start.elapsed())
        });
        s.retire();
        let (forks, waited) = waiter.join().unwrap();
        assert!(forks);
        assert!(waited < Duration::from_secs(20), "waited {waited:?}");
    }
}
