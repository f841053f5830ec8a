//! Worker pool tests. The test binary is its own worker: the pool re-executes it, and the
//! bootstrap constructor turns the copy into a worker before the harness's `main`.
//!
//! Each test makes its own pool (tests run in parallel and some kill workers); only
//! `the_global_pool_is_reused_and_resized` touches the process-wide one.

mod processes;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, unbounded};

use super::bootstrap::WORKER_ENV;
use super::child::Launch;
use super::pool::{PoolConfig, PoolEvent, WorkerPool};
use super::worker;
use crate::job::InnerThreads;
use crate::remote::{FailureKind, RemoteMap, Transferable};
use crate::{Error, get_active_backend};

/// Longer than any test should take, short enough that a hang fails the test.
const WAIT: Duration = Duration::from_secs(60);

/// One inner thread, the default of a pool on one cpu.
const ONE: InnerThreads = InnerThreads {
    count: 1,
    explicit: false,
};

fn pool(workers: usize) -> WorkerPool {
    WorkerPool::new(&PoolConfig {
        workers,
        idle_timeout: Duration::from_secs(60),
        inner: InnerThreads {
            count: 3,
            explicit: true,
        },
    })
    .expect("pool")
}

fn submit<I: Transferable, R: Transferable>(
    pool: &WorkerPool,
    f: fn(I) -> R,
    items: Vec<I>,
    report_starts: bool,
) -> (u64, Receiver<PoolEvent>, RemoteMap<I, R>) {
    let map = RemoteMap::pointer(f);
    let (tx, rx) = unbounded();
    let id = pool.submit(map.batch(items).expect("encodes"), report_starts, tx);
    (id, rx, map)
}

/// A batch's results, or the failure that stopped it (task, kind, message), or the
/// pool's error.
type Outcome<R> = Result<Result<Vec<R>, (usize, FailureKind, String)>, Error>;

/// Waits for the batch's end, skipping `Started` events; every event is about one batch.
fn outcome<I, R>(rx: &Receiver<PoolEvent>, map: &RemoteMap<I, R>) -> Outcome<R> {
    let mut id = None;
    let mut same = |batch_id: u64| assert_eq!(*id.get_or_insert(batch_id), batch_id);
    loop {
        match rx.recv_timeout(WAIT).expect("an event in time") {
            PoolEvent::Started { batch_id, .. } => same(batch_id),
            PoolEvent::Done { batch_id, outcome } => {
                same(batch_id);
                let decoded = map.outcome(&outcome).expect("decodes");
                return Ok(decoded.map_err(|f| (f.index, f.kind, f.message)));
            }
            PoolEvent::Failed { batch_id, error } => {
                same(batch_id);
                return Err(error);
            }
        }
    }
}

fn run<I: Transferable, R: Transferable>(
    pool: &WorkerPool,
    f: fn(I) -> R,
    items: Vec<I>,
) -> Outcome<R> {
    let (_, rx, map) = submit(pool, f, items, false);
    outcome(&rx, &map)
}

fn wait_started(rx: &Receiver<PoolEvent>) -> (u64, u32, Instant) {
    match rx.recv_timeout(WAIT).expect("an event in time") {
        PoolEvent::Started { batch_id, task, at } => (batch_id, task, at),
        other => panic!("expected Started, got {other:?}"),
    }
}

/// Alive: exists and is not a zombie. A dead, unreaped child would be a zombie.
fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn pid(_: u32) -> u32 {
    std::process::id()
}

fn double(x: u64) -> u64 {
    x * 2
}

fn sleep_then_pid(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

fn picky(x: u32) -> u32 {
    assert!(x != 1, "task one refuses");
    x
}

fn aborts(_: u32) -> u32 {
    std::process::abort()
}

fn exits(code: i32) -> u32 {
    std::process::exit(code)
}

fn corrupts(kind: u8) -> u32 {
    let garbage: &[u8] = match kind {
        0 => &[0xff, 0xff, 0xff, 0xff],
        _ => &[5, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff],
    };
    assert!(worker::write_raw_to_parent(garbage), "runs in a worker");
    // Let the parent see the garbage before the real reply follows it.
    std::thread::sleep(Duration::from_millis(200));
    0
}

fn nested_view(_: u32) -> (String, Option<i32>, usize, Option<String>, bool) {
    let active = get_active_backend();
    (
        active.name().to_owned(),
        active.n_jobs(),
        active.nesting_level(),
        std::env::var("RAYON_NUM_THREADS").ok(),
        std::env::var_os(WORKER_ENV).is_some(),
    )
}

/// The kernel's (major, minor) version.
fn uname_release() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (next(), next())
}

/// This process's open descriptors and what they are.
fn open_fds(_: u32) -> Vec<(i32, String)> {
    let mut fds: Vec<(i32, String)> = std::fs::read_dir("/proc/self/fd")
        .expect("procfs")
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((
                e.file_name().to_str()?.parse().ok()?,
                target.display().to_string(),
            ))
        })
        .collect();
    fds.sort_unstable();
    fds
}

fn prints(marker: String) -> u32 {
    println!("{marker}");
    0
}

#[test]
fn batches_run_in_worker_processes_with_results_in_order() {
    let pool = pool(2);
    let pids = run(&pool, pid, vec![0; 4]).unwrap().unwrap();
    assert_eq!(pids.len(), 4);
    assert!(pids.iter().all(|&p| p != std::process::id()), "{pids:?}");
    let doubled = run(&pool, double, (0..1000).collect()).unwrap().unwrap();
    assert_eq!(doubled, (0..1000).map(|x| x * 2).collect::<Vec<_>>());
    pool.shutdown();
}

#[test]
fn workers_are_reused_across_calls() {
    let pool = pool(1);
    let first = run(&pool, pid, vec![0]).unwrap().unwrap();
    let second = run(&pool, pid, vec![0]).unwrap().unwrap();
    assert_eq!(first, second);
    assert_eq!(pool.pids(), first);
    pool.shutdown();
    wait_until("the worker is reaped", || state_of(first[0]).is_none());
}

#[test]
fn at_most_workers_batches_run_at_once() {
    let pool = pool(2);
    let batches: Vec<_> = (0..6)
        .map(|_| submit(&pool, sleep_then_pid, vec![50], false))
        .collect();
    let mut pids = HashSet::new();
    for (_, rx, map) in &batches {
        assert!(pool.pids().len() <= 2);
        pids.extend(outcome(rx, map).unwrap().unwrap());
    }
    assert!(pids.len() <= 2, "{pids:?}");
    pool.shutdown();
}

#[test]
fn the_global_pool_is_reused_and_resized() {
    let config = PoolConfig::new(2);
    let a = WorkerPool::global(&config).unwrap();
    let b = WorkerPool::global(&PoolConfig {
        workers: 3,
        ..config.clone()
    })
    .unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert_eq!(run(&b, double, vec![21]).unwrap().unwrap(), [42]);
    let c = WorkerPool::global(&PoolConfig {
        inner: InnerThreads {
            count: config.inner.count + 1,
            ..config.inner
        },
        ..config
    })
    .unwrap();
    assert!(
        !std::sync::Arc::ptr_eq(&a, &c),
        "new inner threads, new workers"
    );
}

#[test]
fn task_starts_are_reported_only_when_asked() {
    let pool = pool(1);
    let (id, rx, map) = submit(&pool, sleep_then_pid, vec![1, 1, 1], true);
    let mut last = None;
    for expected in 0..3 {
        let (batch_id, task, at) = wait_started(&rx);
        assert_eq!((batch_id, task), (id, expected));
        assert!(last.is_none_or(|l| l <= at));
        last = Some(at);
    }
    outcome(&rx, &map).unwrap().unwrap();
    let (_, rx, _) = submit(&pool, sleep_then_pid, vec![1, 1], false);
    assert!(matches!(rx.recv_timeout(WAIT), Ok(PoolEvent::Done { .. })));
    pool.shutdown();
}

#[test]
fn a_panicking_task_comes_back_as_a_failure() {
    let pool = pool(1);
    let failure = run(&pool, picky, vec![0, 1, 2]).unwrap().unwrap_err();
    assert_eq!(
        failure,
        (1, FailureKind::Panicked, "task one refuses".to_owned())
    );
    assert_eq!(
        run(&pool, picky, vec![2]).unwrap().unwrap(),
        [2],
        "the worker survives"
    );
    pool.shutdown();
}

fn assert_died(outcome: Outcome<u32>, detail_has: &str) {
    match outcome {
        Err(Error::WorkerDied {
            index: None,
            detail,
        }) => {
            assert!(
                detail.contains(detail_has),
                "{detail:?} lacks {detail_has:?}"
            );
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
}

#[test]
fn a_worker_killed_mid_batch_is_reported_reaped_and_replaced() {
    let pool = pool(1);
    let (id, rx, map) = submit(&pool, sleep_then_pid, vec![30_000], true);
    wait_started(&rx);
    let victim = pool.pid_running(id).expect("a worker runs the batch");
    // SAFETY: `kill` with plain integers; the pid is a live child of this process.
    unsafe { libc::kill(victim as libc::pid_t, libc::SIGKILL) };
    assert_died(outcome(&rx, &map), "killed by signal 9 (SIGKILL)");
    assert_eq!(state_of(victim), None, "reaped before the event, no zombie");
    let healed = run(&pool, pid, vec![0]).unwrap().unwrap();
    assert_ne!(healed, [victim]);
    pool.shutdown();
}

#[test]
fn sigint_ends_a_worker() {
    let pool = pool(1);
    let (id, rx, map) = submit(&pool, sleep_then_pid, vec![30_000], true);
    wait_started(&rx);
    let victim = pool.pid_running(id).expect("a worker runs the batch");
    // SAFETY: as above.
    unsafe { libc::kill(victim as libc::pid_t, libc::SIGINT) };
    assert_died(outcome(&rx, &map), "(SIGINT)");
    pool.shutdown();
}

#[test]
fn abort_and_exit_in_a_task_are_reported() {
    let pool = pool(1);
    assert_died(run(&pool, aborts, vec![0]), "(SIGABRT)");
    assert_died(run(&pool, exits, vec![3]), "exited with code 3");
    assert_died(run(&pool, exits, vec![0]), "exited with code 0");
    assert_eq!(run(&pool, double, vec![4]).unwrap().unwrap(), [8]);
    pool.shutdown();
}

#[test]
fn corrupted_frames_are_transport_errors_and_the_pool_heals() {
    let pool = pool(1);
    for kind in [0u8, 1] {
        let (_, rx, map) = submit(&pool, corrupts, vec![kind], false);
        match outcome(&rx, &map) {
            Err(Error::Transport {
                index: None,
                message,
            }) => {
                let expected = if kind == 0 {
                    "exceeds the limit"
                } else {
                    "malformed"
                };
                assert!(message.contains(expected), "{message}");
            }
            other => panic!("expected Transport, got {other:?}"),
        }
        assert_eq!(run(&pool, double, vec![1]).unwrap().unwrap(), [2]);
    }
    pool.shutdown();
}

#[test]
fn kill_busy_stops_running_and_queued_batches() {
    let pool = pool(2);
    let (stuck, stuck_rx, _) = submit(&pool, sleep_then_pid, vec![30_000], true);
    let (fine, fine_rx, fine_map) = submit(&pool, sleep_then_pid, vec![300], true);
    wait_started(&stuck_rx);
    wait_started(&fine_rx);
    let victim = pool.pid_running(stuck).expect("running");
    let (queued, queued_rx, _) = submit(&pool, sleep_then_pid, vec![0], false);
    pool.kill_busy(&[stuck, queued]);
    wait_until("the killed worker is reaped", || state_of(victim).is_none());
    let fine_pid = outcome(&fine_rx, &fine_map).unwrap().unwrap();
    assert_ne!(fine_pid, [victim]);
    assert!(
        !matches!(
            queued_rx.recv_timeout(Duration::from_millis(300)),
            Ok(PoolEvent::Done { .. })
        ),
        "the queued batch never runs"
    );
    let _ = fine;
    // Both slots work again: one with a fresh worker.
    let (_, a_rx, a_map) = submit(&pool, sleep_then_pid, vec![100], false);
    let (_, b_rx, b_map) = submit(&pool, sleep_then_pid, vec![100], false);
    let pids = [outcome(&a_rx, &a_map), outcome(&b_rx, &b_map)];
    assert!(
        pids.iter()
            .all(|p| matches!(p, Ok(Ok(v)) if v[0] != victim))
    );
    pool.shutdown();
}

#[test]
fn a_program_that_is_no_worker_fails_the_handshake() {
    let config = PoolConfig::new(1);
    let launch = Launch::new(ONE).unwrap().with_program("/bin/true");
    let pool = WorkerPool::with_launch(&config, launch);
    for _ in 0..2 {
        let Err(Error::WorkerDied { detail, .. }) = run(&pool, double, vec![1]) else {
            panic!("expected WorkerDied");
        };
        assert!(detail.contains("failed the handshake"), "{detail}");
        assert!(detail.contains("exited with code 0"), "{detail}");
    }
    assert!(pool.pids().is_empty());
}

#[test]
fn idle_workers_exit_after_the_timeout() {
    let pool = WorkerPool::new(&PoolConfig {
        workers: 2,
        idle_timeout: Duration::from_millis(200),
        inner: ONE,
    })
    .unwrap();
    let pids = run(&pool, pid, vec![0]).unwrap().unwrap();
    wait_until("the idle worker exits", || pool.pids().is_empty());
    wait_until("it is reaped", || state_of(pids[0]).is_none());
    assert_eq!(
        run(&pool, double, vec![5]).unwrap().unwrap(),
        [10],
        "restarts on demand"
    );
}

#[test]
fn nested_calls_in_a_worker_see_threading_with_the_inner_thread_count() {
    let pool = pool(1);
    let view = run(&pool, nested_view, vec![0]).unwrap().unwrap();
    // `inner_max_num_threads` given: it wins over the environment.
    let expected_rayon = "3".to_owned();
    assert_eq!(
        view,
        [(
            "threading".to_owned(),
            Some(3),
            1,
            Some(expected_rayon),
            false
        )]
    );
    pool.shutdown();
}

#[test]
fn a_caller_runs_its_only_batch_on_an_idle_worker_itself() {
    let pool = pool(1);
    // No worker yet: the batch comes back, for the queue.
    let map = RemoteMap::pointer(double as fn(u64) -> u64);
    let (tx, rx) = unbounded();
    let id = WorkerPool::reserve_id();
    let back = pool.run_here(id, map.batch(vec![1]).unwrap(), false, tx.clone().into());
    assert!(back.is_err());
    assert!(rx.try_recv().is_err());
    // A first batch through the queue starts the worker; then the caller runs one itself,
    // and the outcome was sent, on this thread, before `run_here` returned.
    assert_eq!(run(&pool, double, vec![1]).unwrap().unwrap(), [2]);
    let id = WorkerPool::reserve_id();
    let batch = map.batch(vec![20, 21]).unwrap();
    assert!(pool.run_here(id, batch, false, tx.clone().into()).is_ok());
    match rx.try_recv() {
        Ok(PoolEvent::Done { batch_id, outcome }) => {
            assert_eq!(batch_id, id);
            assert_eq!(map.outcome(&outcome), Ok(Ok(vec![40, 42])));
        }
        other => panic!("{other:?}"),
    }
    // `kill_busy` reaches a worker lent to a caller: the batch fails as `WorkerDied`, and
    // the pool starts another worker for the next batch.
    let slow = RemoteMap::pointer(sleep_then_pid as fn(u64) -> u32);
    let id = WorkerPool::reserve_id();
    std::thread::scope(|s| {
        s.spawn(|| {
            wait_until("the lent worker runs the batch", || {
                pool.pid_running(id).is_some()
            });
            pool.kill_busy(&[id]);
        });
        let batch = slow.batch(vec![30_000]).unwrap();
        assert!(pool.run_here(id, batch, false, tx.clone().into()).is_ok());
    });
    match rx.try_recv() {
        Ok(PoolEvent::Failed {
            batch_id,
            error: Error::WorkerDied { .. },
        }) => assert_eq!(batch_id, id),
        other => panic!("{other:?}"),
    }
    assert_eq!(run(&pool, double, vec![2]).unwrap().unwrap(), [4]);
    pool.shutdown();
}

#[test]
fn a_worker_that_callers_keep_busy_is_not_idle() {
    let pool = WorkerPool::new(&PoolConfig {
        workers: 1,
        idle_timeout: Duration::from_millis(300),
        inner: ONE,
    })
    .expect("pool");
    assert_eq!(run(&pool, double, vec![1]).unwrap().unwrap(), [2]);
    let pids = pool.pids();
    let map = RemoteMap::pointer(double as fn(u64) -> u64);
    let (tx, rx) = unbounded();
    // Past the idle timeout, measured from the last batch of the queue: the worker served
    // callers all along, so it is still there.
    let until = Instant::now() + Duration::from_millis(700);
    while Instant::now() < until {
        let id = WorkerPool::reserve_id();
        let batch = map.batch(vec![4]).unwrap();
        assert!(pool.run_here(id, batch, false, tx.clone().into()).is_ok());
        assert!(matches!(rx.try_recv(), Ok(PoolEvent::Done { .. })));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(pool.pids(), pids);
    pool.shutdown();
}

fn count_to(n: u32) -> Vec<u32> {
    (0..n).collect()
}

#[test]
fn large_outcomes_come_back_through_the_region_inputs_use() {
    let pool = pool(1);
    let check = |n: u32| {
        let out = run(&pool, count_to, vec![n]).unwrap().unwrap();
        assert!(out[0].iter().copied().eq(0..n), "{n}");
    };
    // 4 MiB back: the worker grows the region and writes the outcome there.
    check(1 << 20);
    // Large inputs then: the pool writes them where the outcome was, without shrinking
    // the file; the 4 MiB outcome of the same batch follows.
    let inputs: Vec<u64> = (0..1 << 19).collect();
    let doubled = run(&pool, double, inputs.clone()).unwrap().unwrap();
    assert!(doubled.iter().copied().eq(inputs.iter().map(|x| x * 2)));
    // Small outcomes go through the pipe as before; a larger one grows the region again.
    assert_eq!(run(&pool, double, vec![3]).unwrap().unwrap(), [6]);
    check(3 << 20);
    check(5);
}

#[test]
fn workers_inherit_only_their_pipe_ends_and_memory_file() {
    let pool = pool(1);
    let fds = run(&pool, open_fds, vec![0]).unwrap().unwrap().remove(0);
    // Kernels before 5.11 cannot mark descriptors close-on-exec wholesale: there, those this
    // test process itself inherited without the flag pass to every child.
    let old_kernel = uname_release() < (5, 11);
    let inherited: Vec<i32> = open_fds(0)
        .into_iter()
        .map(|(fd, _)| fd)
        // SAFETY: `fcntl(F_GETFD)` only reads a descriptor's flags.
        .filter(|&fd| old_kernel && fd > 2 && unsafe { libc::fcntl(fd, libc::F_GETFD) } == 0)
        .collect();
    let own: Vec<&(i32, String)> = fds
        .iter()
        .filter(|(fd, _)| !inherited.contains(fd))
        .collect();
    // stdin, stdout, stderr, two pipe ends, the memory file for large batches (a `memfd`
    // on Linux, a file already removed from its directory elsewhere), and the directory
    // `read_dir` holds open.
    let memory_files = own
        .iter()
        .filter(|(fd, what)| *fd > 2 && what.contains("parjob-batch"))
        .count();
    assert_eq!(memory_files, 1, "{fds:?}");
    assert_eq!(own.len(), 7, "{fds:?}");
    // Beyond the standard three (which may be pipes, files or terminals), exactly the two
    // pipe ends to the parent.
    assert_eq!(
        own.iter()
            .filter(|(fd, what)| *fd > 2 && what.starts_with("pipe:"))
            .count(),
        2,
        "{fds:?}"
    );
    assert_eq!(own[..3].iter().map(|f| f.0).collect::<Vec<_>>(), [0, 1, 2]);
    pool.shutdown();
}

#[test]
fn a_worker_killed_while_idle_is_reaped_and_replaced() {
    let pool = pool(1);
    let first = run(&pool, pid, vec![0]).unwrap().unwrap()[0];
    // SAFETY: `kill` with plain integers; the pid is a live child of this process.
    unsafe { libc::kill(first as libc::pid_t, libc::SIGKILL) };
    wait_until("the idle worker is reaped", || state_of(first).is_none());
    assert!(pool.pids().is_empty());
    let second = run(&pool, pid, vec![0]).unwrap().unwrap()[0];
    assert_ne!(first, second);
    pool.shutdown();
}

/// Not a timed assertion: prints the median round trip of a 1-task batch.
#[test]
fn round_trip_of_a_one_task_batch() {
    let pool = pool(1);
    let map = RemoteMap::pointer(double as fn(u64) -> u64);
    let (tx, rx) = unbounded();
    let mut times = Vec::with_capacity(1000);
    for i in 0..1020 {
        let started = Instant::now();
        pool.submit(map.batch(vec![i]).unwrap(), false, tx.clone());
        match rx.recv_timeout(WAIT) {
            Ok(PoolEvent::Done { outcome, .. }) => {
                assert_eq!(map.outcome(&outcome).unwrap().unwrap(), [i * 2]);
            }
            other => panic!("unexpected {other:?}"),
        }
        if i >= 20 {
            times.push(started.elapsed());
        }
    }
    times.sort_unstable();
    eprintln!(
        "parjob pool round trip, 1-task batch: median {:?}, p90 {:?} (1,000 calls, warm pool)",
        times[times.len() / 2],
        times[times.len() * 9 / 10]
    );
    pool.shutdown();
}

fn sum(xs: Vec<f64>) -> f64 {
    xs.iter().sum()
}

/// Not a timed assertion: prints the round trip of one 8 MB task (encoding included).
#[test]
fn round_trip_of_an_8_mb_task() {
    let pool = pool(1);
    let data: Vec<f64> = (0..1 << 20).map(f64::from).collect();
    let expected: f64 = data.iter().sum();
    let mut times = Vec::new();
    for _ in 0..12 {
        let started = Instant::now();
        let got = run(&pool, sum, vec![data.clone()]).unwrap().unwrap();
        times.push(started.elapsed());
        assert_eq!(got, [expected]);
    }
    times.sort_unstable();
    eprintln!(
        "parjob pool round trip, one 8 MB task: median {:?} (encode, pipe, decode, sum)",
        times[times.len() / 2]
    );
    pool.shutdown();
}

#[test]
fn a_batch_whose_tag_does_not_match_is_refused_and_the_worker_exits() {
    use super::child::WorkerProcess;
    use super::wire::{FromWorker, ToWorker};
    let launch = Launch::new(ONE).unwrap();
    let map = RemoteMap::pointer(double as fn(u64) -> u64);
    let batch = map.batch(vec![21]).unwrap();

    // The right tag: the worker runs the batch.
    let mut worker = WorkerProcess::spawn(&launch).unwrap();
    worker
        .send(
            &ToWorker::run(1, false, &batch, &launch.secret, false),
            &batch.payload,
        )
        .unwrap();
    match worker.recv() {
        Ok(Some((FromWorker::Done { batch_id: 1 }, outcome))) => {
            assert_eq!(map.outcome(&outcome).unwrap().unwrap(), [42]);
        }
        other => panic!("expected Done, got {other:?}"),
    }
    worker.shut_down();

    // One bit off, or a tag made with another secret: nothing runs, the worker leaves.
    for wrong in [1u64, 0] {
        let mut worker = WorkerProcess::spawn(&launch).unwrap();
        let mut msg = ToWorker::run(2, false, &batch, &launch.secret, false);
        if let ToWorker::Run { tag, .. } = &mut msg {
            *tag = if wrong == 1 {
                *tag ^ 1
            } else {
                super::wire::batch_tag(&[9; 32], 2, batch.entry, batch.callee, batch.binary)
            };
        }
        worker.send(&msg, &batch.payload).unwrap();
        assert!(matches!(worker.recv(), Ok(None)), "the worker answered");
        let status = worker.reap().unwrap();
        assert_eq!(status.code(), Some(super::worker::EXIT_NOT_A_WORKER));
    }
}
