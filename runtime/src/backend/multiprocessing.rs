//! The `multiprocessing` backend: every batch in a child forked for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crossbeam_channel::Sender;

use super::{Backend, Threading, Workers};
use crate::error::Error;
use crate::job::{ForkJob, ForkSession, ForkWork, InnerThreads, Job, PoolRequest, RemoteReply};
use crate::process::fork;
use crate::sync::Recover;

/// Runs tasks in child processes forked from the caller: joblib's legacy
/// `multiprocessing` backend, Unix only.
///
/// A forked child starts as a copy of the caller, so a task may capture and borrow
/// anything, as on threads; only its result travels back, so results must implement
/// serde's traits. Writes a task makes to captured data stay in the child. Tasks whose
/// results cannot travel (no serde, or a reference) run on threads, with one `tracing`
/// warning per call. At most `n_jobs` children run at once; a call with `n_jobs = 1` runs
/// in the caller, as joblib does.
///
/// When the input's length is known (a `Vec`, a slice, a range, or adapters that keep the
/// length; up to 256 MiB of items) and the tasks are a `parallel!` comprehension, the call
/// pulls its whole input first and forks at most one child per worker. A call that
/// collects its results (no timeout, not keeping going) forks them from the calling
/// thread, and the children take ranges of task indices themselves from a counter in
/// memory they share with the caller, run them and send back their results, until none is
/// left: ranges start at one task and grow while they take under 5 ms (`batch_size` fixes
/// them), and the caller forks another child, up to `n_jobs`, whenever tasks stay untaken
/// as long as a fork of this process takes lately. A call of a few tiny tasks forks once;
/// the second child of a call of long tasks starts a fork's time later. Streams, calls
/// with a timeout and calls that keep going feed their children batch after batch, told
/// only which tasks to run (a batch that finds every child busy waits for one as long as
/// a fork takes, then forks). The children are killed when the call returns, and reaped
/// right after by a thread of the backend. Otherwise (an input of unknown length,
/// `delayed!` tasks) each batch gets a child of its own, forked when the batch is made,
/// and the call's `pre_dispatch` bounds how much of the input is pulled ahead.
///
/// A task that panics fails the call with [`Error::TaskPanicked`]; a child that dies fails
/// it with [`Error::WorkerDied`] naming the signal or exit code. The first failure or a
/// timeout kills the children still running the call's tasks.
///
/// # Fork's caveats
///
/// `fork` copies only the thread that calls it. A task runs without the parent's other
/// threads, so it must not wait on anything they would have done:
///
/// - rayon's global pool, if the parent used it, has no threads in the child: a task that
///   calls `rayon::join` or a parallel iterator directly hangs. Nested parjob calls are
///   safe: they get fresh thread pools in the child (`cpu_count / n_jobs` threads unless
///   `inner_max_num_threads` says otherwise);
/// - a lock that another parent thread held at the moment of the fork stays locked in the
///   child (for example stdout's, if another thread was printing);
/// - std's panic hook takes locks too: on first use the backend wraps the hook so that a
///   panic in a child prints with one plain `write` to stderr (the hook the program had
///   before still runs everywhere else). A hook the program installs later replaces the
///   wrapper, and a task panicking in a child may then wait on a lock held at the fork;
/// - buffered output of the parent not yet flushed is copied into the child, and may
///   appear twice if the task prints; children leave with `_exit`, so output a task
///   printed without a newline may be lost.
///
/// A child costs a fork, a few hundred microseconds for a small process and more for a
/// large one (and its first reads of the caller's memory fault pages in), so batches fed
/// to children aim at 50 ms. Prefer `loky` (worker processes reused across calls) for anything long-lived;
/// `multiprocessing` is for tasks that need the caller's state without serialising it.
///
/// # Examples
///
/// ```
/// use parjob::{parallel, Parallel};
///
/// let table: Vec<u64> = (0..100).collect(); // captured, never serialised
/// let sums = parallel!("multiprocessing", n_jobs = 2;
///     table[..=i].iter().sum::<u64>() for i in 0..4usize)?;
/// assert_eq!(sums, [0, 1, 3, 6]);
///
/// fn pid(_: u32) -> u32 {
///     std::process::id()
/// }
/// let pids = parallel!("multiprocessing", n_jobs = 2; pid(i) for i in 0..2)?;
/// assert!(pids.iter().all(|&p| p != std::process::id()));
/// # Ok::<(), parjob::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Multiprocessing;

impl Multiprocessing {
    /// The multiprocessing backend.
    pub fn new() -> Self {
        Multiprocessing
    }
}

/// The children running now, by batch id: their pid, and the flag that tells whether their
/// call gave up on them. An entry leaves the map before its child is reaped, so a pid in it
/// is always still the child's own.
type Running = Mutex<HashMap<u64, (libc::pid_t, Option<Arc<AtomicBool>>)>>;

fn running() -> &'static Running {
    static RUNNING: OnceLock<Running> = OnceLock::new();
    RUNNING.get_or_init(Default::default)
}

/// Threads that fork and wait, `workers` of them per worker count: at most that many
/// children of calls with that count run at once.
fn slots(workers: usize) -> Option<Sender<ForkJob>> {
    static SLOTS: OnceLock<Mutex<HashMap<usize, Sender<ForkJob>>>> = OnceLock::new();
    let mut map = SLOTS.get_or_init(Default::default).lock().recover();
    if let Some(tx) = map.get(&workers) {
        return Some(tx.clone());
    }
    let (tx, rx) = crossbeam_channel::unbounded::<ForkJob>();
    for i in 0..workers {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("parjob-fork-{i}"))
            .spawn(move || {
                for job in rx {
                    run(job);
                }
            });
        if let Err(e) = spawned {
            tracing::error!("parjob: cannot start a thread to fork children: {e}");
            if i == 0 {
                return None;
            }
            break;
        }
    }
    map.insert(workers, tx.clone());
    Some(tx)
}

/// Forks a child for `job`, waits for it and hands its outcome to the call.
fn run(job: ForkJob) {
    let inner = job.inner();
    let (work, reply) = job.into_parts();
    if reply.is_abandoned() {
        // The call gave up while the batch waited for a slot.
        drop(work);
        return drop(reply);
    }
    let work = match work.into_range() {
        Ok((session, first, len)) if !fork::in_forked_child() => {
            return serve(session, first, len, reply, inner);
        }
        // Inside a child, batches fork from threads that end with them, and a child dies
        // with the thread that forked it: one child per batch there.
        Ok((session, first, len)) => ForkWork::range(session, first, len),
        Err(work) => work,
    };
    let child = match fork::spawn(work, reply.wants_task_starts(), inner) {
        Ok(child) => child,
        Err(e) => return reply.finish(Err(cannot_fork(&e))),
    };
    let id = register(child.pid(), &reply);
    let outcome = wait(child, id, &reply);
    reply.finish(outcome);
}

fn wait(child: fork::Child, id: u64, reply: &RemoteReply) -> Result<Vec<u8>, Error> {
    let starts = reply.wants_task_starts();
    // `wait` reaps the child; leave the map first, so that `abort` never kills a pid that
    // may have been reused. The read loop only ends once the child closed its pipe, so a
    // late `kill` finds it still unreaped.
    struct Leave(u64);
    impl Drop for Leave {
        fn drop(&mut self) {
            running().lock().recover().remove(&self.0);
        }
    }
    let leave = Leave(id);
    child.wait_with(
        |task, at| {
            if starts {
                reply.task_started_at(task, at);
            }
        },
        move || drop(leave),
    )
}

/// Runs tasks `first..first + len` of `session` in one of the call's children, forking it
/// if none is idle, and keeps the child for the call's next batch.
fn serve(
    session: Arc<ForkSession>,
    first: usize,
    len: usize,
    reply: RemoteReply,
    inner: InnerThreads,
) {
    // A child of the call that is busy now may well be free sooner than a new one could
    // be forked (tiny batches): wait for it as long as a fork takes, then fork.
    let idle = session
        .take(fork::typical_fork())
        .and_then(|child| child.downcast::<fork::Server>().ok());
    let mut server = match idle {
        Some(server) => *server,
        None => {
            match fork::Server::spawn(
                &|first, len, on_start| session.run(first, len, on_start),
                inner,
            ) {
                Ok(server) => server,
                Err(e) => {
                    session.retire();
                    drop(session);
                    return reply.finish(Err(cannot_fork(&e)));
                }
            }
        }
    };
    let id = register(server.pid(), &reply);
    let starts = reply.wants_task_starts();
    let outcome = server.run(
        first,
        len,
        starts,
        |task, at| {
            if starts {
                reply.task_started_at(task, at);
            }
        },
        // Out of the map before a server that ended is reaped, as in `wait`.
        || drop(running().lock().recover().remove(&id)),
    );
    if outcome.is_ok() {
        session.park(Box::new(server));
    } else {
        // Reaps it.
        drop(server);
        session.retire();
    }
    // The session may borrow from the caller: gone before the reply is finished.
    drop(session);
    reply.finish(outcome);
}

/// Enters child `pid`, running a batch of `reply`'s call, in [`running`]; kills it if the
/// call gave up before (`abort` may have missed it). The entry's id.
fn register(pid: libc::pid_t, reply: &RemoteReply) -> u64 {
    let id = next_id();
    running()
        .lock()
        .recover()
        .insert(id, (pid, reply.abandon_flag()));
    if reply.is_abandoned() {
        fork::kill(pid);
    }
    id
}

fn cannot_fork(e: &std::io::Error) -> Error {
    Error::WorkerDied {
        index: None,
        detail: format!("cannot fork a child: {e}"),
    }
}

fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Runs `job` in a forked child, from one of the slot threads of `request.workers`.
fn fork_batch(request: PoolRequest, job: ForkJob) {
    if fork::in_forked_child() {
        // The slot threads of the parent did not survive the fork, and its locks may be
        // held: a call inside a child forks from a thread of its own per batch (the
        // call's `pre_dispatch` bounds how many).
        let spawned = std::thread::Builder::new()
            .name("parjob-fork".into())
            .spawn(move || run(job));
        if let Err(e) = spawned {
            tracing::error!("parjob: cannot start a thread to fork a child: {e}");
        }
        return;
    }
    match slots(request.workers.max(1)) {
        Some(tx) => {
            // The receiving threads live as long as the process; if they are gone the
            // job is dropped, which its call reports as a lost batch.
            let _ = tx.send(job);
        }
        None => drop(job),
    }
}

impl Backend for Multiprocessing {
    fn name(&self) -> &str {
        "multiprocessing"
    }

    fn workers(&self) -> Workers {
        // Children see the caller's memory, but what they write stays with them.
        Workers::Forks
    }

    fn spawn(&self, request: PoolRequest, job: Job) {
        match job {
            Job::Forked(job) => fork_batch(request, job),
            // The runtime sends work whose results cannot travel to threads itself.
            other => Threading::new().spawn(request, other),
        }
    }

    fn abort(&self, _request: PoolRequest) {
        let running = running().lock().recover();
        for (pid, flag) in running.values() {
            if flag.as_ref().is_some_and(|f| f.load(Ordering::Relaxed)) {
                fork::kill(*pid);
            }
        }
    }

    fn ideal_batch_duration(&self) -> Duration {
        // A fork and its reply cost a few hundred microseconds (more for a large
        // process): batches of ~50 ms keep that near 1 %.
        Duration::from_millis(50)
    }
}
