//! The `loky` backend: a reusable pool of worker processes re-executed from this binary.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::{Backend, ParamValue, Threading, Workers};
use crate::error::Error;
use crate::job::{InnerThreads, Job, PoolRequest, RemoteJob, RemoteReply};
use crate::process::{Events, PoolConfig, PoolEvent, WorkerPool};
use crate::sync::Recover;

/// Runs tasks in worker processes: joblib's default backend, for work that must be isolated
/// from the caller (a crash in a task cannot take the program down) or is not thread-safe.
///
/// Workers are the current executable started again; they become workers before `main`
/// runs, so any binary or test that links parjob can host them. The pool is kept across
/// calls and resized to each call's `n_jobs`; a worker idle for `idle_worker_timeout`
/// (default 300 s) exits. Workers die with their parent.
///
/// Only tasks that can cross a process boundary go to workers: comprehensions (the
/// variables their body uses travel too, once per call and worker) and `delayed!` calls of
/// plain functions, with inputs, results and captured values that implement serde's traits
/// (or [`Delayed::remote`](crate::Delayed::remote) without the macros). Other work of a call on this backend (closures, borrowed data) runs on threads,
/// with one `tracing` warning per call. Nested calls inside a worker use threads: as many
/// as `inner_max_num_threads`, by default `cpu_count / n_jobs`.
///
/// A task that panics fails the call with [`Error::TaskPanicked`]; a worker that dies (a
/// signal, `abort`, `exit`) fails it with [`Error::WorkerDied`] naming the signal or exit
/// code. The first failure or a timeout kills the workers still running the call's tasks,
/// and later calls get fresh ones.
///
/// # Examples
///
/// ```
/// use parjob::{parallel, Parallel, Delayed};
///
/// fn pid_of(_: u32) -> u32 {
///     std::process::id()
/// }
///
/// // A process backend named at compile time: the body must be able to travel.
/// let pids = parallel!("loky", n_jobs = 2; pid_of(i) for i in 0..4)?;
/// assert!(pids.iter().all(|&pid| pid != std::process::id()));
///
/// // The same without the macros.
/// let tasks = (0..4).map(|i| Delayed::remote(pid_of, i));
/// let pids = Parallel::new().backend("loky").n_jobs(2).run(tasks)?;
/// assert!(pids.iter().all(|&pid| pid != std::process::id()));
/// # Ok::<(), parjob::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Loky {
    idle_worker_timeout: Duration,
}

impl Default for Loky {
    fn default() -> Self {
        Loky {
            idle_worker_timeout: Duration::from_secs(300),
        }
    }
}

impl Loky {
    /// The loky backend, with workers that exit after 300 s without work.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how long an idle worker waits for work before it exits.
    pub fn idle_worker_timeout(mut self, timeout: Duration) -> Self {
        self.idle_worker_timeout = timeout;
        self
    }
}

/// The replies of the batches in flight, by batch id, with the pool running each. Pools
/// report a batch's events by calling [`route`] on the thread that talks to its worker.
type Live = Mutex<HashMap<u64, (RemoteReply, Arc<WorkerPool>)>>;

fn live() -> &'static Live {
    static LIVE: OnceLock<Live> = OnceLock::new();
    LIVE.get_or_init(Default::default)
}

fn route(event: PoolEvent) {
    let live = live();
    match event {
        PoolEvent::Started { batch_id, task, at } => {
            let live = live.lock().recover();
            if let Some((reply, _)) = live.get(&batch_id) {
                reply.task_started_at(task as usize, at);
            }
        }
        PoolEvent::Done { batch_id, outcome } => done(batch_id, &outcome),
        PoolEvent::Failed { batch_id, error } => {
            let entry = live.lock().recover().remove(&batch_id);
            if let Some((reply, _)) = entry {
                reply.finish(Err(error));
            }
        }
    }
}

/// A batch's outcome, decoded where it lies (see [`Events::Direct`]).
fn done(batch_id: u64, outcome: &[u8]) {
    let entry = live().lock().recover().remove(&batch_id);
    if let Some((reply, _)) = entry {
        reply.finish_lent(Ok(outcome));
    }
}

impl Loky {
    /// Hands `job` to the process-wide pool of `request.workers` workers.
    fn submit(&self, request: PoolRequest, job: RemoteJob) {
        let workers = request.workers.max(1);
        let mut config = PoolConfig::new(workers);
        config.idle_timeout = self.idle_worker_timeout;
        if let Some(inner) = job.inner_threads() {
            config.inner = InnerThreads {
                count: inner.max(1),
                explicit: true,
            };
        }
        let pool = match WorkerPool::global(&config) {
            Ok(pool) => pool,
            Err(e) => return job.finish(Err(e)),
        };
        let alone = job.waits_alone();
        let (batch, reply) = job.into_parts();
        let id = WorkerPool::reserve_id();
        let starts = reply.wants_task_starts();
        // Registered before the pool can answer, which `route` looks up.
        live()
            .lock()
            .recover()
            .insert(id, (reply, Arc::clone(&pool)));
        let events = Events::Direct { event: route, done };
        // A call that would only wait runs the batch itself on an idle worker: no thread
        // hand-off either way (the queue's I/O thread, and back). Its writes to a dead
        // worker must fail with `EPIPE` rather than raise `SIGPIPE` (Rust ignores it by
        // default; a program that restored it keeps the queue).
        let (batch, events) = if alone && sigpipe_ignored() {
            match pool.run_here(id, batch, starts, events) {
                Ok(()) => return,
                Err(back) => back,
            }
        } else {
            (batch, events)
        };
        pool.submit_as(id, batch, starts, events);
    }
}

/// Whether `SIGPIPE` is ignored in this process.
fn sigpipe_ignored() -> bool {
    // SAFETY: `sigaction` with a null new action only reads the current one into a zeroed
    // struct of ours.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_IGN
    }
}

impl Backend for Loky {
    fn name(&self) -> &str {
        "loky"
    }

    fn workers(&self) -> Workers {
        Workers::Processes
    }

    fn unavailable_here(&self) -> Option<String> {
        crate::process::fork::in_forked_child().then(|| {
            "its worker pool cannot start inside a forked child of `multiprocessing`".into()
        })
    }

    fn spawn(&self, request: PoolRequest, job: Job) {
        match job {
            Job::Remote(job) => self.submit(request, job),
            // The runtime sends other work of a call on this backend to threads itself.
            other => Threading::new().spawn(request, other),
        }
    }

    fn abort(&self, _request: PoolRequest) {
        // Kill the workers of every batch whose call gave up; their replies are dropped,
        // which the calls read as lost batches (they are failing already).
        let abandoned: Vec<(u64, RemoteReply, Arc<WorkerPool>)> = {
            let mut live = live().lock().recover();
            let ids: Vec<u64> = live
                .iter()
                .filter(|(_, (reply, _))| reply.is_abandoned())
                .map(|(&id, _)| id)
                .collect();
            ids.into_iter()
                .filter_map(|id| live.remove(&id).map(|(reply, pool)| (id, reply, pool)))
                .collect()
        };
        for (id, reply, pool) in abandoned {
            pool.kill_busy(&[id]);
            drop(reply);
        }
    }

    fn ideal_batch_duration(&self) -> Duration {
        // A round trip to a worker costs tens of microseconds, so batches of ~10 ms amortise
        // it while keeping the tail short (joblib aims at 0.2-2 s: its round trips cost more).
        Duration::from_millis(10)
    }

    fn set_param(&mut self, name: &str, value: &ParamValue) -> Result<(), Error> {
        match name {
            "idle_worker_timeout" => {
                self.idle_worker_timeout = value.as_duration().ok_or_else(|| {
                    Error::config(format!(
                        "`idle_worker_timeout` takes a duration or a number of seconds, got {value:?}"
                    ))
                })?;
                Ok(())
            }
            other => Err(Error::config(format!(
                "backend `loky` takes no parameter `{other}`, expected `idle_worker_timeout`"
            ))),
        }
    }
}
