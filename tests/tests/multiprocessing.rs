//! The multiprocessing backend end to end: batches run in forked children that see the
//! caller's data (one child per worker and call when the input's length is known), results
//! come back in order, and failures in children are clear errors.
#![cfg(unix)]

use parjob::{Error, Parallel, delayed, parallel, parallel_backend};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

fn pid(_: u32) -> u32 {
    std::process::id()
}

fn square(x: u64) -> u64 {
    x * x
}

/// Children of this process that are zombies (ended, not reaped).
fn zombie_children() -> Vec<u32> {
    let me = std::process::id();
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut fields = after.split_whitespace();
        let state = fields.next();
        let ppid: Option<u32> = fields.next().and_then(|p| p.parse().ok());
        if state == Some("Z") && ppid == Some(me) {
            zombies.extend(
                entry
                    .file_name()
                    .to_str()
                    .and_then(|p| p.parse::<u32>().ok()),
            );
        }
    }
    zombies
}

/// Children killed when a call gives up are reaped by the backend's threads as they end,
/// a moment after the call returns (longer on a loaded machine, and other tests of this
/// file fork meanwhile): zombies must be gone within a few seconds, not at once.
fn assert_no_zombies_soon() {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let zombies = zombie_children();
        if zombies.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "children left unreaped for 10 s: {zombies:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn tasks_run_in_forked_children_and_see_captured_data() {
    let me = std::process::id();
    let table: Vec<u64> = (0..1000).collect();
    let sums = parallel!("multiprocessing", n_jobs = 2;
        table[..i].iter().sum::<u64>() for i in 0..200usize)
    .unwrap();
    let expected: Vec<u64> = (0..200usize).map(|i| table[..i].iter().sum()).collect();
    assert_eq!(sums, expected);
    let pids = parallel!("multiprocessing", n_jobs = 2; pid(i) for i in 0..8).unwrap();
    assert!(pids.iter().all(|&p| p != me), "{pids:?}");
}

#[test]
fn results_keep_input_order_across_many_batches() {
    let out = Parallel::new()
        .backend("multiprocessing")
        .n_jobs(2)
        .batch_size(7)
        .run((0..500u64).map(|x| delayed!(square(x))))
        .unwrap();
    assert_eq!(out, (0..500u64).map(|x| x * x).collect::<Vec<_>>());
    let filtered =
        parallel!("multiprocessing", n_jobs = 2; x * 3 for x in 0..300u64 if x % 7 == 0).unwrap();
    assert_eq!(
        filtered,
        (0..300u64)
            .filter(|x| x % 7 == 0)
            .map(|x| x * 3)
            .collect::<Vec<_>>()
    );
}

/// Whether process `pid` exists as a child of this process (running or a zombie).
fn is_my_child(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let ppid = stat
        .rfind(')')
        .and_then(|i| stat[i + 2..].split_whitespace().nth(1))
        .and_then(|p| p.parse::<u32>().ok());
    ppid == Some(std::process::id())
}

#[test]
fn a_call_forks_one_child_per_worker_and_feeds_it_batch_after_batch() {
    let me = std::process::id();
    let data: Vec<u64> = (0..10_000).collect();
    // 60 batches of one task: one child per worker runs them all.
    let out = parallel!("multiprocessing", n_jobs = 2, batch_size = 1;
        (pid(i), data[i as usize * 100]) for i in 0..60u32)
    .unwrap();
    let values: Vec<u64> = out.iter().map(|&(_, v)| v).collect();
    assert_eq!(values, (0..60u64).map(|i| i * 100).collect::<Vec<_>>());
    let pids: std::collections::BTreeSet<u32> = out.iter().map(|&(p, _)| p).collect();
    assert!(!pids.contains(&me), "{pids:?}");
    assert!(pids.len() <= 2, "60 batches forked {} children", pids.len());
    // The call's children end with it: killed when it returns, reaped right after.
    let deadline = Instant::now() + Duration::from_secs(5);
    let left = loop {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| is_my_child(p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        left.is_empty(),
        "children still there 5 s after the call: {left:?}"
    );
}

static DROPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// An input without serde whose drops in this process are counted.
struct Counted(u64);

impl Drop for Counted {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A forking backend that runs each batch's work in the caller's process, on a thread.
struct InPlaceFork;

impl parjob::Backend for InPlaceFork {
    fn name(&self) -> &str {
        "in-place-fork"
    }
    fn workers(&self) -> parjob::backend::Workers {
        parjob::backend::Workers::Forks
    }
    fn spawn(&self, _request: parjob::PoolRequest, job: parjob::Job) {
        std::thread::spawn(move || {
            let parjob::Job::Forked(job) = job else {
                return job.run();
            };
            let (work, reply) = job.into_parts();
            let outcome = work.run(None);
            reply.finish(Ok(outcome));
        });
    }
}

#[test]
fn each_input_is_dropped_once_in_the_caller_whether_a_child_or_the_caller_ran_it() {
    // One test, so that the counter sees one call at a time.
    DROPPED.store(0, std::sync::atomic::Ordering::SeqCst);
    let items: Vec<Counted> = (0..30).map(Counted).collect();
    let out =
        parallel!("multiprocessing", n_jobs = 2, batch_size = 4; c.0 * 2 for c in items).unwrap();
    assert_eq!(out, (0..30).map(|x| x * 2).collect::<Vec<u64>>());
    // Children took their inputs from their own copies; the caller drops every one of its.
    assert_eq!(DROPPED.load(std::sync::atomic::Ordering::SeqCst), 30);

    // A backend that runs the children's part in the caller takes the inputs out of the
    // caller's own table: still one drop each.
    DROPPED.store(0, std::sync::atomic::Ordering::SeqCst);
    let items: Vec<Counted> = (0..30).map(Counted).collect();
    let out = parallel_backend(InPlaceFork)
        .n_jobs(2)
        .run(|| parallel!(c.0 + 1 for c in items))
        .unwrap()
        .unwrap();
    assert_eq!(out, (1..31).collect::<Vec<u64>>());
    assert_eq!(DROPPED.load(std::sync::atomic::Ordering::SeqCst), 30);
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Summary {
    name: String,
    values: Vec<f64>,
}

#[test]
fn borrowed_inputs_and_structured_results_travel_back() {
    let names = ["a".to_string(), "bb".into(), "ccc".into()];
    let out = parallel!("multiprocessing", n_jobs = 2;
        Summary { name: n.clone(), values: vec![n.len() as f64; n.len()] } for n in &names)
    .unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(out[2].name, "ccc");
    assert_eq!(out[2].values, [3.0, 3.0, 3.0]);
}

#[test]
fn a_runtime_scope_forks_what_returns_serde_and_keeps_the_rest_on_threads() {
    let me = std::process::id();
    let words = ["x", "y"];
    let (forked, stayed) = parallel_backend("multiprocessing")
        .n_jobs(2)
        .run(|| {
            let offset = 1u32;
            let forked = parallel!(pid(i) + offset - 1 for i in 0..4)?;
            // A result that is a reference cannot come back from a child.
            let stayed = parallel!(&words[i] for i in 0..2usize)?;
            Ok::<_, Error>((forked, stayed))
        })
        .unwrap()
        .unwrap();
    assert!(
        forked.iter().all(|&p| p != me),
        "capturing bodies fork: {forked:?}"
    );
    assert_eq!(stayed, [&"x", &"y"]);
}

fn panics_on_three(x: u32) -> u32 {
    assert!(x != 3, "three is not welcome");
    x
}

#[test]
fn a_panic_in_a_child_is_task_panicked_with_its_message() {
    let err =
        parallel!("multiprocessing", n_jobs = 2; panics_on_three(x) for x in 0..8).unwrap_err();
    match err {
        Error::TaskPanicked { index, message } => {
            assert_eq!(index, 3);
            assert!(message.contains("three is not welcome"), "{message}");
        }
        other => panic!("expected TaskPanicked, got {other:?}"),
    }
}

#[test]
fn an_err_in_a_child_is_task_failed_at_its_index() {
    let err = Parallel::new()
        .backend("multiprocessing")
        .n_jobs(2)
        .batch_size(4)
        .try_run((0..10u32).map(|x| delayed!(checked(x))))
        .unwrap_err();
    match err {
        Error::TaskFailed { index, source } => {
            assert_eq!(index, 6);
            assert!(source.to_string().contains("six"), "{source}");
        }
        other => panic!("expected TaskFailed, got {other:?}"),
    }
}

fn checked(x: u32) -> Result<u32, String> {
    if x == 6 {
        Err("six is refused".into())
    } else {
        Ok(x)
    }
}

fn dies(x: u32) -> u32 {
    if x == 2 {
        // SAFETY: raising a signal on our own process.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    if x == 5 {
        std::process::exit(3);
    }
    x
}

#[test]
fn a_dying_child_is_worker_died_naming_how_and_leaves_no_zombie() {
    let err = Parallel::new()
        .backend("multiprocessing")
        .n_jobs(2)
        .batch_size(1)
        .run((0..3u32).map(|x| delayed!(dies(x))))
        .unwrap_err();
    match err {
        Error::WorkerDied { index, detail } => {
            assert_eq!(index, Some(2));
            assert!(detail.contains("SIGKILL"), "{detail}");
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    let err = parallel!("multiprocessing", n_jobs = 2, batch_size = 1; dies(x) for x in 4..6)
        .unwrap_err();
    match err {
        Error::WorkerDied { detail, .. } => assert!(detail.contains("code 3"), "{detail}"),
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    // The next call is healthy.
    let ok = parallel!("multiprocessing", n_jobs = 2; square(x) for x in 0..10u64).unwrap();
    assert_eq!(ok[9], 81);
    assert_no_zombies_soon();
}

fn dies_at_37(x: u32) -> u32 {
    if x == 37 {
        // SAFETY: raising a signal on our own process.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    x
}

#[test]
fn a_child_that_dies_in_the_tasks_it_took_fails_the_call_there() {
    // Children size their own ranges here: the error names the first task of the range
    // the child had taken, which holds task 37.
    let err =
        parallel!("multiprocessing", n_jobs = 2; dies_at_37(x) for x in 0..100u32).unwrap_err();
    match err {
        Error::WorkerDied {
            index: Some(index),
            detail,
        } => {
            assert!(index <= 37, "{index}: {detail}");
            assert!(detail.contains("SIGKILL"), "{detail}");
        }
        other => panic!("expected WorkerDied at a task, got {other:?}"),
    }
    // With ranges of one task, the very task.
    let err = parallel!("multiprocessing", n_jobs = 2, batch_size = 1;
        dies_at_37(x) for x in 30..40u32)
    .unwrap_err();
    assert!(
        matches!(err, Error::WorkerDied { index: Some(7), .. }),
        "{err:?}"
    );
    assert_no_zombies_soon();
}

fn sleeps_or_panics(dir: &std::path::Path, x: u32) -> u32 {
    if x == 0 {
        std::fs::write(dir.join("sleeper"), std::process::id().to_string()).unwrap();
        std::thread::sleep(Duration::from_secs(30));
    } else {
        std::thread::sleep(Duration::from_millis(100));
        panic!("task {x} gives up");
    }
    x
}

#[test]
fn the_first_failure_ends_the_call_and_the_children_still_running() {
    let dir = std::env::temp_dir().join(format!("parjob-sleeper-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.as_path();
    let started = Instant::now();
    let err = parallel!("multiprocessing", n_jobs = 2, batch_size = 1;
        sleeps_or_panics(path, x) for x in 0..2u32)
    .unwrap_err();
    assert!(
        matches!(err, Error::TaskPanicked { index: 1, .. }),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the call waited for the sleeping task: {:?}",
        started.elapsed()
    );
    // The child running the other task is gone too, and reaped.
    let sleeper: u32 = std::fs::read_to_string(path.join("sleeper"))
        .unwrap()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{sleeper}")).exists() {
        assert!(Instant::now() < deadline, "child {sleeper} still there");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn many_short_tasks_fork_at_most_one_child_per_worker() {
    let out = parallel!("multiprocessing", n_jobs = 2; (x, pid(0)) for x in 0..20_000u32).unwrap();
    assert!(out.iter().enumerate().all(|(i, r)| r.0 as usize == i));
    let mut pids: Vec<u32> = out.iter().map(|r| r.1).collect();
    pids.sort_unstable();
    pids.dedup();
    assert!(
        (1..=2).contains(&pids.len()),
        "{} children for one call",
        pids.len()
    );
    assert!(!pids.contains(&std::process::id()));
}

fn sleeps(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn a_timeout_kills_the_late_child_promptly() {
    let started = Instant::now();
    let err = parallel!("multiprocessing", n_jobs = 2, timeout = 0.2, batch_size = 1;
        sleeps(ms) for ms in [10, 30_000, 10, 10])
    .unwrap_err();
    assert!(
        matches!(err, Error::Timeout { index: 1, .. }),
        "expected a timeout of task 1, got {err:?}"
    );
    // Well under the 30 s the task would take: the child was killed, not waited for.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_no_zombies_soon();
}

#[test]
fn nested_calls_in_a_child_run_on_threads_of_their_own() {
    // The parent's thread pools have no threads in a child: a nested call there must get
    // fresh ones instead of hanging.
    let warm = Parallel::new().n_jobs(2).map(0..100u64, |x| x + 1).unwrap();
    assert_eq!(warm.len(), 100);
    let out = parallel!("multiprocessing", n_jobs = 2, inner_max_num_threads = 2;
        Parallel::new().backend("threading").map(0..50u64, |y| y * x).unwrap().iter().sum::<u64>()
            for x in 0..4u64)
    .unwrap();
    assert_eq!(
        out,
        (0..4u64)
            .map(|x| (0..50).map(|y| y * x).sum())
            .collect::<Vec<u64>>()
    );
}

#[test]
fn loky_inside_a_forked_child_runs_on_threads_there() {
    // loky's pool cannot start in a forked child: the nested call runs on the child's
    // threads, as joblib runs any nested pair of backends (PARJOB_STRICT makes it an error,
    // see env_defaults.rs).
    let out = parallel!("multiprocessing", n_jobs = 2;
        (pid(0), parallel!("loky", n_jobs = 2; pid(y) for y in 0..4).map_err(|e| e.to_string()))
        for _x in 0..2)
    .unwrap();
    for (child, pids) in out {
        assert_ne!(child, std::process::id());
        assert_eq!(pids.unwrap(), [child; 4], "ran in the child itself");
    }
}

#[test]
fn n_jobs_1_runs_in_the_caller() {
    let me = std::process::id();
    let pids = parallel!("multiprocessing", n_jobs = 1; pid(i) for i in 0..3).unwrap();
    assert_eq!(pids, [me, me, me]);
}

const THREAD_VARS: [&str; 4] = [
    "RAYON_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
];

fn thread_vars(_: u32) -> Vec<Option<String>> {
    THREAD_VARS.iter().map(|v| std::env::var(v).ok()).collect()
}

#[test]
fn forked_children_get_the_inner_thread_variables_as_loky_workers_do() {
    let here = thread_vars(0);
    // Named by the call: the count wins over this process's environment, in children that
    // serve a whole call and in children of one batch (`delayed!` tasks).
    let three = vec![Some("3".to_owned()); THREAD_VARS.len()];
    let served = parallel!("multiprocessing", n_jobs = 2, inner_max_num_threads = 3;
        thread_vars(i) for i in 0..4)
    .unwrap();
    assert!(served.iter().all(|v| *v == three), "{served:?}");
    let one_batch = Parallel::new()
        .backend("multiprocessing")
        .n_jobs(2)
        .inner_max_num_threads(3)
        .run((0..4u32).map(|i| delayed!(thread_vars(i))))
        .unwrap();
    assert!(one_batch.iter().all(|v| *v == three), "{one_batch:?}");
    // Not named: cpu_count / n_jobs, where this process's environment sets nothing.
    let default = (parjob::cpu_count() / 2).max(1).to_string();
    let expected: Vec<Option<String>> = here
        .iter()
        .map(|v| Some(v.clone().unwrap_or_else(|| default.clone())))
        .collect();
    let out = parallel!("multiprocessing", n_jobs = 2; thread_vars(i) for i in 0..4).unwrap();
    assert!(out.iter().all(|v| *v == expected), "{out:?}");
    // The caller's own environment is left as it was.
    assert_eq!(thread_vars(0), here);
}

#[test]
fn forks_while_another_thread_starts_processes_do_not_hang() {
    // Starting a process holds std's environment lock for a moment; a child forked in that
    // moment must not wait for it (it once did, setting its thread variables).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spawner = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::process::Command::new("true").output();
            }
        })
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for round in 0..4u64 {
            let out = Parallel::new()
                .backend("multiprocessing")
                .n_jobs(2)
                .batch_size(1)
                .inner_max_num_threads(2)
                .run((0..50u64).map(|x| delayed!(square(x + round))))
                .map(|v| v.len());
            let served = parallel!("multiprocessing", n_jobs = 2, batch_size = 1,
                inner_max_num_threads = 2; square(x) for x in 0..50u64)
            .map(|v| v.len());
            let _ = tx.send((out, served));
        }
    });
    for _ in 0..4 {
        let got = rx.recv_timeout(Duration::from_secs(120));
        assert!(
            matches!(got, Ok((Ok(50), Ok(50)))),
            "a round did not finish within 120 s: {got:?}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    spawner.join().unwrap();
}

#[test]
fn an_input_too_long_to_hold_forks_per_batch_and_pulls_as_it_goes() {
    // 2^40 items of 8 bytes cannot all be pulled first: the call forks a child per batch,
    // pulling batches as they go, and stops at the first failure as any call does.
    let err = parallel!("multiprocessing", n_jobs = 2, batch_size = 4;
        checked_u64(x) for x in 0..1u64 << 40)
    .unwrap_err();
    assert!(
        matches!(err, Error::TaskPanicked { index: 10, .. }),
        "{err:?}"
    );
}

fn checked_u64(x: u64) -> u64 {
    assert!(x < 10, "ten is the end");
    x
}

/// Marks task `i` of the pair as started in `dir`, then waits (up to 20 s) for the other
/// task to start too: true if it did.
fn meet(dir: &std::path::Path, i: u32) -> (u32, bool) {
    std::fs::write(dir.join(i.to_string()), b"").unwrap();
    let other = dir.join((1 - i).to_string());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !other.exists() {
        if Instant::now() >= deadline {
            return (std::process::id(), false);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    (std::process::id(), true)
}

#[test]
fn a_batch_that_finds_the_child_busy_still_gets_a_child_of_its_own() {
    // Each task waits for the other to start: they meet only if the second batch, which
    // finds the first child busy, forks a second one instead of waiting for it.
    let dir = std::env::temp_dir().join(format!("parjob-meet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = parallel!("multiprocessing", n_jobs = 2, batch_size = 1;
        meet(&dir, i) for i in 0..2u32)
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.iter().all(|&(_, met)| met), "{out:?}");
    assert_ne!(out[0].0, out[1].0, "both tasks in one child: {out:?}");
}
