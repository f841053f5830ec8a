//! [`WorkerPool`]: a reusable set of worker processes (loky's reusable executor).
//!
//! Each worker has one I/O thread in this process. The thread starts the worker process
//! (on Linux a worker dies with the thread that started it, so the thread outlives its
//! worker), takes batches from the pool's queue, writes each to its worker, forwards what
//! comes back as [`PoolEvent`]s, and reaps the worker when it ends. A worker that died is
//! replaced by the same thread when the next batch comes; one idle for `idle_timeout` is
//! told to exit, and its thread ends.
//!
//! An idle worker waits in its slot, not on its thread's stack: a caller with one batch and
//! nothing else to do may borrow it and run the batch from its own thread
//! ([`WorkerPool::run_here`]), which saves the two thread wake-ups of the queue.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::child::{Launch, WorkerProcess, describe};
use super::wire::{FromWorker, ToWorker, WireError};
use crate::error::Error;
use crate::job::InnerThreads;
use crate::remote::{RemoteBatch, Tell};
use crate::sync::Recover;

/// How a pool is sized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolConfig {
    /// At most this many worker processes, so at most this many batches at once.
    pub(crate) workers: usize,
    /// A worker idle this long exits.
    pub(crate) idle_timeout: Duration,
    /// Threads for nested parallel calls inside a worker (and the `*_NUM_THREADS`
    /// variables of its environment).
    pub(crate) inner: InnerThreads,
}

impl PoolConfig {
    /// `workers` workers, idle for 300 s at most, `cpu_count / workers` inner threads.
    pub(crate) fn new(workers: usize) -> Self {
        let workers = workers.max(1);
        PoolConfig {
            workers,
            idle_timeout: Duration::from_secs(300),
            inner: InnerThreads {
                count: crate::n_jobs::default_inner_threads(workers),
                explicit: false,
            },
        }
    }
}

/// What the pool reports about a submitted batch: any number of `Started`, then exactly one
/// `Done` or `Failed` (none after [`WorkerPool::kill_busy`] named the batch).
#[derive(Debug)]
pub(crate) enum PoolEvent {
    /// Task `task` of the batch (counted within it) started; only with `report_starts`.
    Started {
        batch_id: u64,
        task: u32,
        at: Instant,
    },
    /// The bytes `RemoteBatch::execute` returned in the worker.
    Done { batch_id: u64, outcome: Vec<u8> },
    /// No outcome: `WorkerDied` (the detail names the signal or exit code) or `Transport`.
    Failed { batch_id: u64, error: Error },
}

struct Job {
    reply: Reply,
    batch: RemoteBatch,
    report_starts: bool,
}

/// Where a pool sends a batch's events: a channel, or functions called on the worker's
/// I/O thread (no thread hop: what the loky backend uses), the outcome lent to `done`
/// where it lies (in the worker's shared region, or the buffer the pipe filled).
pub(crate) enum Events {
    Channel(Sender<PoolEvent>),
    Direct {
        event: fn(PoolEvent),
        done: fn(u64, &[u8]),
    },
}

impl From<Sender<PoolEvent>> for Events {
    fn from(tx: Sender<PoolEvent>) -> Self {
        Events::Channel(tx)
    }
}

/// Where a batch's events go.
struct Reply {
    batch_id: u64,
    events: Events,
}

impl Reply {
    fn send(&self, event: PoolEvent) {
        // The caller may have given up on the batch; nobody to tell then.
        match &self.events {
            Events::Channel(tx) => {
                let _ = tx.send(event);
            }
            Events::Direct { event: f, .. } => f(event),
        }
    }

    /// The batch's outcome, the bytes `RemoteBatch::execute` returned.
    fn done(&self, outcome: &[u8]) {
        let batch_id = self.batch_id;
        match &self.events {
            Events::Channel(tx) => {
                let outcome = outcome.to_vec();
                let _ = tx.send(PoolEvent::Done { batch_id, outcome });
            }
            Events::Direct { done, .. } => done(batch_id, outcome),
        }
    }

    fn fail(self, error: Error) {
        let batch_id = self.batch_id;
        self.send(PoolEvent::Failed { batch_id, error });
    }
}

/// A set of worker processes running [`RemoteBatch`]es.
pub(crate) struct WorkerPool {
    shared: Arc<Shared>,
}

struct Shared {
    launch: Launch,
    state: Mutex<State>,
    /// Signalled when a job is queued or the pool changes.
    wake: Condvar,
}

struct State {
    target: usize,
    idle_timeout: Duration,
    /// I/O threads alive (each with or without a worker process).
    live: usize,
    /// I/O threads waiting for a job.
    idle: usize,
    queue: VecDeque<Job>,
    slots: HashMap<u64, Slot>,
    next_slot: u64,
    threads: Vec<JoinHandle<()>>,
    closed: bool,
}

/// What other threads may know about an I/O thread.
#[derive(Default)]
struct Slot {
    /// Its worker process; cleared before the process is reaped, so a pid found here
    /// never names a reused process.
    pid: Option<u32>,
    batch: Option<u64>,
    /// `kill_busy` named its batch before it had a worker to kill.
    cancelled: bool,
    /// `kill_busy` sent its worker `SIGKILL`. Sticky until the I/O thread has reaped that
    /// worker: the batch may have completed just before the signal landed, and the next
    /// batch must not be sent to a process about to die.
    killed: bool,
    /// The worker process, while no thread uses it.
    process: Option<WorkerProcess>,
    /// A caller's thread runs a batch on the worker (see `run_here`): the I/O thread
    /// neither takes jobs nor quits until it is back.
    lent: bool,
    /// When a caller last gave the worker back: it was not idle until then.
    returned: Option<Instant>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("WorkerPool")
            .field("workers", &st.target)
            .field("live", &st.live)
            .field("queued", &st.queue.len())
            .finish()
    }
}

impl WorkerPool {
    /// A new pool; workers start when batches come.
    ///
    /// # Errors
    ///
    /// `WorkerDied` when the executable or the random secret cannot be had.
    pub(crate) fn new(config: &PoolConfig) -> Result<WorkerPool, Error> {
        Ok(WorkerPool::with_launch(config, Launch::new(config.inner)?))
    }

    pub(crate) fn with_launch(config: &PoolConfig, launch: Launch) -> WorkerPool {
        WorkerPool {
            shared: Arc::new(Shared {
                launch,
                state: Mutex::new(State {
                    target: config.workers.max(1),
                    idle_timeout: config.idle_timeout,
                    live: 0,
                    idle: 0,
                    queue: VecDeque::new(),
                    slots: HashMap::new(),
                    next_slot: 0,
                    threads: Vec::new(),
                    closed: false,
                }),
                wake: Condvar::new(),
            }),
        }
    }

    /// The process's pool, kept across calls and resized to `config.workers`. A different
    /// `inner` needs new workers (it is in their environment): the pool is then
    /// replaced, and the old one ends once its last user drops it.
    ///
    /// # Errors
    ///
    /// As [`new`](WorkerPool::new).
    pub(crate) fn global(config: &PoolConfig) -> Result<Arc<WorkerPool>, Error> {
        if super::fork::in_forked_child() {
            // The pool's threads stayed in the parent.
            return Err(Error::config(
                "the `loky` backend cannot be used inside a task of the `multiprocessing` backend (a forked child); use threads there",
            ));
        }
        static GLOBAL: Mutex<Option<Arc<WorkerPool>>> = Mutex::new(None);
        let mut global = GLOBAL.lock().recover();
        if let Some(pool) = &*global
            && pool.shared.launch.inner.count == config.inner.count.max(1)
            && pool.shared.launch.inner.explicit == config.inner.explicit
        {
            pool.resize(config.workers, config.idle_timeout);
            return Ok(Arc::clone(pool));
        }
        let pool = Arc::new(WorkerPool::new(config)?);
        *global = Some(Arc::clone(&pool));
        Ok(pool)
    }

    /// Changes the worker count and idle timeout; surplus workers exit when idle.
    pub(crate) fn resize(&self, workers: usize, idle_timeout: Duration) {
        let mut st = self.shared.lock();
        if st.target == workers.max(1) && st.idle_timeout == idle_timeout {
            // Every batch asks; waking every idle I/O thread each time would cost more
            // than the batch.
            return;
        }
        st.target = workers.max(1);
        st.idle_timeout = idle_timeout;
        self.shared.wake.notify_all();
        let mut unserved = st.queue.len().saturating_sub(st.idle);
        while unserved > 0 && st.live < st.target && spawn_thread(&self.shared, &mut st) {
            unserved -= 1;
        }
    }

    /// A fresh batch id, for [`submit_as`](WorkerPool::submit_as). Ids are unique in the
    /// process, not only in one pool: events of pools that replaced one another may meet.
    pub(crate) fn reserve_id() -> u64 {
        static NEXT_BATCH: AtomicU64 = AtomicU64::new(1);
        NEXT_BATCH.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues `batch`; returns its id, which every event about it carries. Never blocks:
    /// the batch waits in the queue while every worker is busy.
    #[cfg(test)]
    pub(crate) fn submit(
        &self,
        batch: RemoteBatch,
        report_starts: bool,
        events: impl Into<Events>,
    ) -> u64 {
        let batch_id = Self::reserve_id();
        self.submit_as(batch_id, batch, report_starts, events);
        batch_id
    }

    /// [`submit`](WorkerPool::submit) under an id from [`reserve_id`](WorkerPool::reserve_id),
    /// so that the caller can get ready for the batch's events first (they may be sent
    /// before this returns, on this very thread if the pool is shut down).
    pub(crate) fn submit_as(
        &self,
        batch_id: u64,
        batch: RemoteBatch,
        report_starts: bool,
        events: impl Into<Events>,
    ) {
        let job = Job {
            reply: Reply {
                batch_id,
                events: events.into(),
            },
            batch,
            report_starts,
        };
        let mut st = self.shared.lock();
        if st.closed {
            drop(st);
            job.reply.fail(Error::Transport {
                index: None,
                message: "the worker pool is shut down".into(),
            });
            return;
        }
        st.queue.push_back(job);
        if st.queue.len() <= st.idle {
            self.shared.wake.notify_one();
        } else if st.live < st.target {
            spawn_thread(&self.shared, &mut st);
        }
    }

    /// Runs `batch` on an idle worker from the calling thread, which blocks until the
    /// events are sent (on this thread, to `events`), if a worker is idle and no batch
    /// waits in the queue; the batch back otherwise. `kill_busy` works on it as on any.
    ///
    /// The calling thread writes to the worker's pipe: `SIGPIPE` must be ignored (a worker
    /// that died would otherwise kill the process).
    pub(crate) fn run_here(
        &self,
        batch_id: u64,
        batch: RemoteBatch,
        report_starts: bool,
        events: Events,
    ) -> Result<(), (RemoteBatch, Events)> {
        let lent = {
            let mut st = self.shared.lock();
            if st.closed || !st.queue.is_empty() {
                None
            } else {
                st.slots
                    .iter_mut()
                    .find(|(_, s)| s.process.is_some() && !s.lent && !s.killed)
                    .map(|(&slot, s)| {
                        s.lent = true;
                        s.batch = Some(batch_id);
                        s.cancelled = false;
                        (slot, s.process.take())
                    })
            }
        };
        let Some((slot, mut process)) = lent else {
            return Err((batch, events));
        };
        let reply = Reply { batch_id, events };
        match process.as_mut().filter(|p| !p.has_exited()) {
            Some(worker) => {
                let secret = &self.shared.launch.secret;
                let end = run(worker, &reply, batch, report_starts, secret, true);
                settle(&self.shared, slot, &mut process, reply, end);
            }
            None => {
                // Died while idle: its I/O thread reaps it and starts another for the
                // batch, queued.
                self.shared.job_finished(slot);
                self.shared.give_back(slot, process);
                return Err((batch, reply.events));
            }
        }
        self.shared.give_back(slot, process);
        Ok(())
    }

    /// Gives up on these batches: queued ones are dropped, running ones have their worker
    /// killed (`SIGKILL`); replacements start when the next batches come. Events may or may
    /// not still arrive for them.
    pub(crate) fn kill_busy(&self, batch_ids: &[u64]) {
        let mut st = self.shared.lock();
        st.queue
            .retain(|job| !batch_ids.contains(&job.reply.batch_id));
        for slot in st.slots.values_mut() {
            if slot.batch.is_some_and(|b| batch_ids.contains(&b)) {
                slot.cancelled = true;
                if let Some(pid) = slot.pid {
                    slot.killed = true;
                    // SAFETY: `kill` takes plain integers. The pid is our unreaped child:
                    // I/O threads clear it under this lock before reaping.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                }
            }
        }
    }

    /// Stops taking batches; workers finish the queue, then exit. Does not wait.
    pub(crate) fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_all();
    }

    /// [`close`](WorkerPool::close), then waits until every worker is reaped.
    #[cfg(test)]
    pub(crate) fn shutdown(&self) {
        self.close();
        let threads = std::mem::take(&mut self.shared.lock().threads);
        for t in threads {
            let _ = t.join();
        }
    }

    /// The pids of the worker processes alive now.
    #[cfg(test)]
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.shared
            .lock()
            .slots
            .values()
            .filter_map(|s| s.pid)
            .collect()
    }

    /// The pid of the worker running `batch_id`, if one is.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn pid_running(&self, batch_id: u64) -> Option<u32> {
        let st = self.shared.lock();
        st.slots
            .values()
            .find(|s| s.batch == Some(batch_id))
            .and_then(|s| s.pid)
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().recover()
    }

    /// What I/O thread `slot`, idle since `idle_since`, does next, with its worker process
    /// taken out of the slot. With a worker, it is woken at least every [`IDLE_CHECK`] to
    /// look after it.
    fn next_job(&self, slot: u64, idle_since: Instant) -> Next {
        let mut st = self.lock();
        loop {
            let surplus = st.live > st.target;
            let (lent, idle_worker, returned) =
                st.slots.get(&slot).map_or((false, false, None), |s| {
                    (s.lent, s.process.is_some(), s.returned)
                });
            let idle_since = returned.map_or(idle_since, |r| r.max(idle_since));
            if !surplus
                && !lent
                && let Some(job) = st.queue.pop_front()
            {
                let process = st.slots.get_mut(&slot).and_then(|s| {
                    s.batch = Some(job.reply.batch_id);
                    s.cancelled = false;
                    s.process.take()
                });
                return Next::Job(job, process);
            }
            let waited = idle_since.elapsed();
            if !lent && (surplus || st.closed || waited >= st.idle_timeout) {
                st.live -= 1;
                let process = st.slots.get_mut(&slot).and_then(|s| s.process.take());
                return Next::Quit(process);
            }
            let remaining = st.idle_timeout.saturating_sub(waited);
            // A lent worker comes back with a wake-up when a job waits or the pool closes.
            let wait = if lent {
                IDLE_CHECK
            } else if idle_worker {
                IDLE_CHECK.min(remaining)
            } else {
                remaining
            };
            st.idle += 1;
            let (guard, timeout) = self.wake.wait_timeout(st, wait).recover();
            st = guard;
            st.idle -= 1;
            let queue_empty = st.queue.is_empty();
            let idle_worker = st.slots.get_mut(&slot).filter(|s| !s.lent);
            if timeout.timed_out()
                && wait < remaining
                && queue_empty
                && let Some(s) = idle_worker
                && let Some(process) = s.process.take()
            {
                return Next::Tick(process);
            }
        }
    }

    /// Puts `slot`'s worker process back (a batch ended or a look at it), and wakes the
    /// I/O threads if a job waits (one may have waited for this worker) or the pool closed.
    fn give_back(&self, slot: u64, process: Option<WorkerProcess>) {
        let mut st = self.lock();
        match st.slots.get_mut(&slot) {
            Some(s) => {
                if s.lent {
                    s.returned = Some(Instant::now());
                }
                s.process = process;
                s.lent = false;
            }
            None => {
                drop(st);
                if let Some(p) = process {
                    p.shut_down();
                }
                return;
            }
        }
        let wake = !st.queue.is_empty() || st.closed;
        drop(st);
        if wake {
            self.wake.notify_all();
        }
    }

    /// Whether `kill_busy` killed this slot's worker since the last look; clears the mark.
    fn take_killed(&self, slot: u64) -> bool {
        self.lock()
            .slots
            .get_mut(&slot)
            .is_some_and(|s| std::mem::take(&mut s.killed))
    }

    fn set_pid(&self, slot: u64, pid: Option<u32>) {
        if let Some(s) = self.lock().slots.get_mut(&slot) {
            s.pid = pid;
        }
    }

    /// Whether the job just taken by `slot` is still wanted.
    fn wanted(&self, slot: u64) -> bool {
        self.lock().slots.get(&slot).is_some_and(|s| !s.cancelled)
    }

    fn job_finished(&self, slot: u64) {
        if let Some(s) = self.lock().slots.get_mut(&slot) {
            s.batch = None;
            s.cancelled = false;
        }
    }
}

/// Ends a batch that `run` did not complete: reports why, and reaps (or kills) a worker
/// that died or broke the protocol.
fn settle(
    shared: &Shared,
    slot: u64,
    process: &mut Option<WorkerProcess>,
    reply: Reply,
    end: Result<(), RunEnd>,
) {
    match end {
        Ok(()) => {}
        Err(RunEnd::Refused(e)) => reply.fail(e.into_error()),
        Err(RunEnd::Died) => {
            shared.set_pid(slot, None);
            if let Some(p) = process.take() {
                let detail = describe(p.reap());
                reply.fail(Error::WorkerDied {
                    index: None,
                    detail,
                });
            }
        }
        Err(RunEnd::Broken(e)) => {
            shared.set_pid(slot, None);
            if let Some(mut p) = process.take() {
                let _ = p.kill_and_reap();
            }
            reply.fail(e.into_error());
        }
    }
    shared.job_finished(slot);
}

/// Starts one more I/O thread; `false` if the system refused.
fn spawn_thread(shared: &Arc<Shared>, st: &mut State) -> bool {
    let slot = st.next_slot;
    st.next_slot += 1;
    st.threads.retain(|t| !t.is_finished());
    let for_thread = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name(format!("parjob-worker-io-{slot}"))
        .stack_size(256 << 10)
        .spawn(move || serve_slot(&for_thread, slot));
    match spawned {
        Ok(handle) => {
            st.slots.insert(slot, Slot::default());
            st.live += 1;
            st.threads.push(handle);
            true
        }
        Err(e) => {
            // Nobody else will run the queue: fail it rather than leave it waiting.
            if st.live == 0 {
                for job in st.queue.drain(..) {
                    job.reply.fail(Error::WorkerDied {
                        index: None,
                        detail: format!("cannot start a thread for a worker process: {e}"),
                    });
                }
            }
            false
        }
    }
}

/// What an I/O thread does next, with its worker process if it has one.
enum Next {
    Job(Job, Option<WorkerProcess>),
    /// Look after the idle worker, then ask again.
    Tick(WorkerProcess),
    Quit(Option<WorkerProcess>),
}

/// How often an idle I/O thread checks that its worker still lives, so that a worker
/// killed while idle does not stay a zombie until the next batch.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The body of an I/O thread.
fn serve_slot(shared: &Shared, slot: u64) {
    block_sigpipe();
    let mut idle_since = Instant::now();
    loop {
        let (job, mut process) = match shared.next_job(slot, idle_since) {
            Next::Job(job, process) => (job, process),
            Next::Tick(process) => {
                let mut process = Some(process);
                reap_if_exited(shared, slot, &mut process);
                if let Some(p) = process.as_mut() {
                    // An idle worker lets go of what the caller dropped; a worker that
                    // cannot be told is found dead at the next tick.
                    let _ = forget_dropped(p);
                }
                shared.give_back(slot, process);
                continue;
            }
            Next::Quit(process) => {
                shared.set_pid(slot, None);
                if let Some(p) = process {
                    p.shut_down();
                }
                break;
            }
        };
        let Job {
            reply,
            batch,
            report_starts,
        } = job;
        // A worker that died while idle is not this batch's fault: replace it first.
        reap_if_exited(shared, slot, &mut process);
        let worker = match &mut process {
            Some(p) => p,
            None => match WorkerProcess::spawn(&shared.launch) {
                Ok(p) => {
                    shared.set_pid(slot, Some(p.pid()));
                    process.insert(p)
                }
                Err(error) => {
                    shared.job_finished(slot);
                    reply.fail(error);
                    idle_since = Instant::now();
                    continue;
                }
            },
        };
        if shared.wanted(slot) {
            let end = run(
                worker,
                &reply,
                batch,
                report_starts,
                &shared.launch.secret,
                false,
            );
            settle(shared, slot, &mut process, reply, end);
        } else {
            shared.job_finished(slot);
        }
        shared.give_back(slot, process);
        idle_since = Instant::now();
    }
    shared.lock().slots.remove(&slot);
}

fn reap_if_exited(shared: &Shared, slot: u64, process: &mut Option<WorkerProcess>) {
    if shared.take_killed(slot) {
        // Killed by `kill_busy`: wait for it to be gone rather than race the signal.
        shared.set_pid(slot, None);
        if let Some(mut p) = process.take() {
            let _ = p.kill_and_reap();
        }
        return;
    }
    if let Some(p) = process.take_if(|p| p.has_exited()) {
        shared.set_pid(slot, None);
        let _ = p.reap();
    }
}

/// Why a batch ended without an outcome.
enum RunEnd {
    /// It could not be encoded; nothing was sent, the worker is fine.
    Refused(WireError),
    /// The worker closed its pipe: it died.
    Died,
    /// The worker broke the protocol: it must be killed.
    Broken(WireError),
}

/// Runs `batch` on `worker`, forwarding its events; on success `Done` was sent.
fn run(
    worker: &mut WorkerProcess,
    reply: &Reply,
    batch: RemoteBatch,
    report_starts: bool,
    secret: &[u8; 32],
    spin: bool,
) -> Result<(), RunEnd> {
    let batch_id = reply.batch_id;
    let (batch, attachments) = batch.without_attachments();
    let synced = {
        let mut held = std::mem::take(&mut worker.held);
        let synced = held.sync(&attachments, |step| tell(worker, step));
        worker.held = held;
        synced
    };
    match synced {
        Ok(()) => {}
        Err(e @ (WireError::TooLarge { .. } | WireError::Malformed(_))) => {
            return Err(RunEnd::Refused(e));
        }
        Err(_) => return Err(RunEnd::Died),
    }
    let shared = shared_region(worker, &batch);
    let tail: &[u8] = if shared { &[] } else { &batch.payload };
    match worker.send(
        &ToWorker::run(batch_id, report_starts, &batch, secret, shared),
        tail,
    ) {
        Ok(()) => {}
        // Refused before a byte was written (too large): the worker is fine.
        Err(e @ (WireError::TooLarge { .. } | WireError::Malformed(_))) => {
            return Err(RunEnd::Refused(e));
        }
        Err(_) => return Err(RunEnd::Died),
    }
    drop(batch);
    loop {
        if spin {
            // A caller that runs its only batch: the reply of a short batch comes sooner
            // than this thread would wake.
            worker.await_spinning();
        }
        match worker.recv() {
            Ok(Some((FromWorker::Started { batch_id: b, task }, _))) if b == batch_id => {
                let at = Instant::now();
                reply.send(PoolEvent::Started { batch_id, task, at });
            }
            Ok(Some((FromWorker::Done { batch_id: b }, outcome))) if b == batch_id => {
                reply.done(&outcome);
                return Ok(());
            }
            Ok(Some((FromWorker::DoneShared { batch_id: b, len }, _))) if b == batch_id => {
                let read = match (worker.shm.as_mut(), usize::try_from(len)) {
                    (Some(region), Ok(len)) => region.read(len),
                    _ => Err(std::io::Error::other("no shared region of that size")),
                };
                return match read {
                    Ok(outcome) => {
                        reply.done(outcome);
                        Ok(())
                    }
                    Err(e) => Err(RunEnd::Broken(WireError::Malformed(format!(
                        "an outcome in the shared region: {e}"
                    )))),
                };
            }
            Ok(Some((other, _))) => {
                return Err(RunEnd::Broken(WireError::Malformed(format!(
                    "unexpected message from the worker while it ran batch {batch_id}: {other:?}"
                ))));
            }
            Ok(None) | Err(WireError::Truncated { .. }) => return Err(RunEnd::Died),
            Err(e) => return Err(RunEnd::Broken(e)),
        }
    }
}

/// Sends `worker` what [`Held::sync`](crate::remote::Held::sync) tells it: a large
/// attachment as a memory file every worker maps, a small one through the pipe.
fn tell(worker: &mut WorkerProcess, step: Tell<'_>) -> Result<(), WireError> {
    match step {
        Tell::Forget(ids) => worker.send(&ToWorker::Forget { ids: ids.to_vec() }, &[]),
        Tell::Keep(a) => {
            if a.bytes().len() >= crate::remote::memfile::MIN_FILE
                && let Some(file) = crate::remote::attach::shared_file(a)
            {
                let msg = ToWorker::AttachFile {
                    id: a.id(),
                    fd: file.raw_fd(),
                    len: file.len() as u64,
                };
                return worker.send(&msg, &[]);
            }
            worker.send(&ToWorker::Attach { id: a.id() }, a.bytes())
        }
    }
}

/// Tells `worker` to forget the attachments the caller dropped, if it holds any.
fn forget_dropped(worker: &mut WorkerProcess) -> Result<(), WireError> {
    crate::remote::attach::prune_files();
    if !worker.held.holds_dropped() {
        return Ok(());
    }
    let mut held = std::mem::take(&mut worker.held);
    let done = held.sync(&[], |step| tell(worker, step));
    worker.held = held;
    done
}

/// Puts a large batch's inputs in the worker's shared region: `true` if they are there,
/// `false` if the batch is small or the worker has no region (or it failed), so that the
/// inputs go through the pipe.
fn shared_region(worker: &mut WorkerProcess, batch: &RemoteBatch) -> bool {
    if batch.payload.len() < super::shm::MIN_SHARED {
        return false;
    }
    let Some(region) = worker.shm.as_mut() else {
        return false;
    };
    match region.write(&batch.payload) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!("parjob: shared memory refused a batch ({e}); using the pipe");
            false
        }
    }
}

/// Writes to a worker that died fail with `EPIPE` instead of raising `SIGPIPE`, even in
/// programs that did not ignore it. The worker's own mask is reset before `exec`.
fn block_sigpipe() {
    // SAFETY: the set is initialised by `sigemptyset` before use; `pthread_sigmask` only
    // changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}
