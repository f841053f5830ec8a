//! Many parallel calls at once, from many threads, against the pools a process shares: one
//! loky pool of two workers, one threading pool per size, forked children. Every call gets
//! exactly its own results, a panic in one call fails that call only, the loky pool never
//! grows beyond its two workers, and no child process or zombie is left behind. Its own
//! test binary: it counts the whole process's children.
#![cfg(unix)]

use parjob::{Error, Parallel, delayed, parallel};
use parjob_tests::Watchdog;
use parjob_tests::procfs::{self, Child};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One test at a time: each counts this process's children at its end.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Tasks per call.
const TASKS: u64 = 24;

/// The input of task `i` of round `round` on thread `t`: distinct for every triple, so a
/// result delivered to the wrong call (or the wrong position) cannot go unnoticed.
fn input(t: u64, round: u64, i: u64) -> u64 {
    t * 1_000_000 + round * 1_000 + i
}

fn inputs(t: u64, round: u64) -> Vec<u64> {
    (0..TASKS).map(|i| input(t, round, i)).collect()
}

/// The call of a designated thread panics at this index (distinct across threads).
fn panic_index(t: u64) -> u64 {
    3 + t % 17
}

/// A cheap, bijective scramble of `x`.
fn mix(x: u64) -> u64 {
    let y = (x ^ 0x5bd1_e995).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    y ^ (y >> 29)
}

/// `mix(x)` and the process that computed it.
fn mix_in(x: u64) -> (u64, u32) {
    (mix(x), std::process::id())
}

/// As `mix_in`, but the task at `panic_index` of its thread panics with a message naming
/// its input.
fn picky(x: u64) -> (u64, u32) {
    let (t, i) = (x / 1_000_000, x % 1_000);
    if i == panic_index(t) {
        panic!("task {x} refuses");
    }
    mix_in(x)
}

/// What a thread expects of its calls, and where their tasks must run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// In this process.
    Here,
    /// In another process.
    Elsewhere,
}

/// Checks a healthy call's results against the sequential computation for its inputs.
fn check_results(
    what: &str,
    xs: &[u64],
    out: Result<Vec<(u64, u32)>, Error>,
    place: Place,
) -> Result<(), String> {
    let out = out.map_err(|e| format!("{what}: the call failed: {e:?}"))?;
    let values: Vec<u64> = out.iter().map(|&(v, _)| v).collect();
    let expected: Vec<u64> = xs.iter().copied().map(mix).collect();
    if values != expected {
        return Err(format!(
            "{what}: wrong results\n  got      {values:?}\n  expected {expected:?}"
        ));
    }
    let me = std::process::id();
    let misplaced: Vec<u32> = out
        .iter()
        .map(|&(_, pid)| pid)
        .filter(|&pid| (pid == me) != (place == Place::Here))
        .collect();
    if !misplaced.is_empty() {
        return Err(format!(
            "{what}: tasks ran in the wrong process (expected {place:?}): {misplaced:?}"
        ));
    }
    Ok(())
}

/// Checks that a call with a panicking task failed with exactly that task's panic.
fn check_panicked(
    what: &str,
    t: u64,
    round: u64,
    out: Result<Vec<(u64, u32)>, Error>,
) -> Result<(), String> {
    let at = panic_index(t);
    let expected_message = format!("task {} refuses", input(t, round, at));
    match out {
        Err(Error::TaskPanicked { index, message })
            if index as u64 == at && message == expected_message =>
        {
            Ok(())
        }
        other => Err(format!(
            "{what}: expected TaskPanicked {{ index: {at}, message: {expected_message:?} }}, got {other:?}"
        )),
    }
}

/// What each thread did.
#[derive(Debug, Default)]
struct Tally {
    healthy: usize,
    panicked: usize,
}

/// Runs `threads` threads at once (they wait on a barrier), each calling `body(t)`, and
/// returns every thread's outcome, in thread order. A thread that panics (a bug in a
/// check, or a panic escaping a call) is an `Err` too.
fn run_threads(
    threads: u64,
    body: impl Fn(u64) -> Result<Tally, String> + Sync,
) -> Vec<Result<Tally, String>> {
    let barrier = Barrier::new(threads as usize);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, body) = (&barrier, &body);
                s.spawn(move || {
                    barrier.wait();
                    body(t)
                })
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(t, h)| {
                h.join()
                    .unwrap_or_else(|_| Err(format!("thread {t} panicked outside its calls")))
            })
            .collect()
    })
}

/// Asserts that every thread succeeded, that the designated threads saw their panic, and
/// that every call was made.
fn assert_outcomes(
    outcomes: &[Result<Tally, String>],
    rounds: usize,
    panicking: impl Fn(u64) -> bool,
) {
    let failures: Vec<String> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(t, o)| o.as_ref().err().map(|e| format!("thread {t}: {e}")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} threads failed:\n{}",
        failures.len(),
        outcomes.len(),
        failures.join("\n")
    );
    for (t, tally) in outcomes.iter().flatten().enumerate() {
        let expected_panics = usize::from(panicking(t as u64));
        assert_eq!(
            (tally.healthy, tally.panicked),
            (rounds - expected_panics, expected_panics),
            "thread {t}: (healthy, panicked) calls"
        );
    }
}

/// Samples the number of live loky workers every 5 ms while it lives; the most seen.
struct WorkerSampler {
    stop: AtomicBool,
    peak: AtomicUsize,
}

impl WorkerSampler {
    fn new() -> Self {
        WorkerSampler {
            stop: AtomicBool::new(false),
            peak: AtomicUsize::new(0),
        }
    }

    fn run(&self) {
        while !self.stop.load(Ordering::SeqCst) {
            let live = procfs::children()
                .iter()
                .filter(|c| c.loky_worker && !c.ended())
                .count();
            self.peak.fetch_max(live, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// After the calls: at most `workers` live loky workers, and no other child (a forked
/// child still running, a zombie) once the pools have had a few seconds to reap.
fn assert_nothing_left_behind(workers: usize) {
    let stray = procfs::settle(
        Duration::from_secs(5),
        || procfs::stray_children(workers),
        Vec::is_empty,
    );
    assert_eq!(
        stray,
        Vec::<Child>::new(),
        "children left behind (all children: {:?})",
        procfs::children()
    );
}

const LOKY_THREADS: u64 = 64;
const LOKY_ROUNDS: u64 = 8;

/// Threads of the loky-and-threading test whose round `PANIC_ROUND` has a panicking task:
/// four on loky (even) and four on threading (odd).
fn panics_loky_test(t: u64) -> bool {
    matches!(t % 16, 5 | 10)
}

const PANIC_ROUND: u64 = 1;

#[test]
fn sixty_four_threads_share_the_loky_and_threading_pools() {
    let _serial = serial();
    let _watchdog = Watchdog::start(
        "sixty_four_threads_share_the_loky_and_threading_pools",
        Duration::from_secs(120),
    );
    let t0 = Instant::now();
    let sampler = WorkerSampler::new();
    let outcomes = std::thread::scope(|s| {
        s.spawn(|| sampler.run());
        let outcomes = run_threads(LOKY_THREADS, |t| {
            let mut tally = Tally::default();
            // Thread-local data borrowed by the threading calls' closures.
            let salt = mix(t);
            for round in 0..LOKY_ROUNDS {
                let xs = inputs(t, round);
                let panics = panics_loky_test(t) && round == PANIC_ROUND;
                let on_loky = t % 2 == 0;
                let what = format!(
                    "thread {t} round {round} on {}",
                    if on_loky { "loky" } else { "threading" }
                );
                let out = match (on_loky, panics, round % 2 == 0) {
                    // loky: the comprehension form and `delayed!` tasks, in turn.
                    (true, false, true) => {
                        parallel!("loky", n_jobs = 2; mix_in(x) for x in xs.iter().copied())
                    }
                    (true, false, false) => Parallel::new()
                        .backend("loky")
                        .n_jobs(2)
                        .run(xs.iter().map(|&x| delayed!(mix_in(x)))),
                    (true, true, _) => {
                        parallel!("loky", n_jobs = 2; picky(x) for x in xs.iter().copied())
                    }
                    // threading: `map` with a closure that borrows, and closure tasks.
                    (false, false, true) => {
                        Parallel::new()
                            .backend("threading")
                            .n_jobs(2)
                            .map(&xs, |&x| {
                                let (v, pid) = mix_in(x ^ salt);
                                (mix(x) ^ v ^ mix(x ^ salt), pid)
                            })
                    }
                    (false, false, false) => Parallel::new()
                        .backend("threading")
                        .n_jobs(2)
                        .run(xs.iter().map(|&x| move || mix_in(x))),
                    (false, true, _) => Parallel::new()
                        .backend("threading")
                        .n_jobs(2)
                        .map(&xs, |&x| picky(x)),
                };
                if panics {
                    check_panicked(&what, t, round, out)?;
                    tally.panicked += 1;
                } else {
                    let place = if on_loky {
                        Place::Elsewhere
                    } else {
                        Place::Here
                    };
                    check_results(&what, &xs, out, place)?;
                    tally.healthy += 1;
                }
            }
            Ok(tally)
        });
        sampler.stop.store(true, Ordering::SeqCst);
        outcomes
    });
    let elapsed = t0.elapsed();
    println!(
        "{LOKY_THREADS} threads x {LOKY_ROUNDS} calls of {TASKS} tasks in {elapsed:?}; \
         at most {} live loky workers seen",
        sampler.peak.load(Ordering::SeqCst)
    );
    assert_outcomes(&outcomes, LOKY_ROUNDS as usize, panics_loky_test);
    assert!(
        (1..=2).contains(&sampler.peak.load(Ordering::SeqCst)),
        "the loky pool of 2 workers had {} live workers at once",
        sampler.peak.load(Ordering::SeqCst)
    );
    assert_nothing_left_behind(2);
    // The pools still work after the storm.
    let after = parallel!("loky", n_jobs = 2; mix_in(x) for x in 0..10u64);
    check_results(
        "after",
        &(0..10).collect::<Vec<_>>(),
        after,
        Place::Elsewhere,
    )
    .unwrap();
}

const FORK_THREADS: u64 = 16;
const FORK_ROUNDS: u64 = 4;

/// Threads of the multiprocessing test whose round `PANIC_ROUND` has a panicking task.
fn panics_fork_test(t: u64) -> bool {
    matches!(t, 5 | 10)
}

#[test]
fn sixteen_threads_fork_children_at_once() {
    let _serial = serial();
    let _watchdog = Watchdog::start(
        "sixteen_threads_fork_children_at_once",
        Duration::from_secs(120),
    );
    let t0 = Instant::now();
    let outcomes = run_threads(FORK_THREADS, |t| {
        let mut tally = Tally::default();
        // Thread-local data captured by the forked children.
        let salt = mix(t);
        for round in 0..FORK_ROUNDS {
            let xs = inputs(t, round);
            let panics = panics_fork_test(t) && round == PANIC_ROUND;
            let what = format!("thread {t} round {round} on multiprocessing");
            let out = match (panics, round % 3) {
                (true, _) => parallel!("multiprocessing", n_jobs = 2;
                    picky(x) for x in xs.iter().copied()),
                (false, 0) => parallel!("multiprocessing", n_jobs = 2;
                    mix_in(x) for x in xs.iter().copied()),
                (false, 1) => Parallel::new()
                    .backend("multiprocessing")
                    .n_jobs(2)
                    .run(xs.iter().map(|&x| delayed!(mix_in(x)))),
                // A body that captures: it forks all the same.
                (false, _) => parallel!("multiprocessing", n_jobs = 2;
                    (mix(x ^ salt) ^ mix(x ^ salt) ^ mix(x), std::process::id())
                        for x in xs.iter().copied()),
            };
            if panics {
                check_panicked(&what, t, round, out)?;
                tally.panicked += 1;
            } else {
                check_results(&what, &xs, out, Place::Elsewhere)?;
                tally.healthy += 1;
            }
        }
        Ok(tally)
    });
    println!(
        "{FORK_THREADS} threads x {FORK_ROUNDS} multiprocessing calls of {TASKS} tasks in {:?}",
        t0.elapsed()
    );
    assert_outcomes(&outcomes, FORK_ROUNDS as usize, panics_fork_test);
    // No forked child survives, none stays a zombie (loky workers of the other test may
    // remain: at most its two).
    assert_nothing_left_behind(2);
}

fn sleeps(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Two threads make `multiprocessing` calls at once: one forks children that sleep 100 ms,
/// the other forks children for instant tasks under a 50 ms timeout. No task of the second
/// thread overruns its timeout, so every one of its calls succeeds.
#[test]
fn a_quick_forked_task_is_not_timed_out_by_another_calls_child() {
    let _serial = serial();
    let _watchdog = Watchdog::start(
        "a_quick_forked_task_is_not_timed_out_by_another_calls_child",
        Duration::from_secs(120),
    );
    // Each call waits for a slot the other thread's children hold, up to 100 ms.
    const CALLS: usize = 60;
    let stop = AtomicBool::new(false);
    let failures = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let out = parallel!("multiprocessing", n_jobs = 2, batch_size = 1;
                    sleeps(ms) for ms in [100u64, 100]);
                assert_eq!(out.unwrap(), [100, 100]);
            }
        });
        let mut failures = Vec::new();
        let t0 = Instant::now();
        for _ in 0..CALLS {
            let out = Parallel::new()
                .backend("multiprocessing")
                .n_jobs(2)
                .batch_size(1)
                .timeout(Duration::from_millis(50))
                .run([0u64; 4].map(|ms| delayed!(sleeps(ms))));
            match out {
                Ok(v) if v == [0; 4] => {}
                other => failures.push(format!("{other:?}")),
            }
        }
        stop.store(true, Ordering::SeqCst);
        println!("{CALLS} calls of 4 instant tasks in {:?}", t0.elapsed());
        failures
    });
    assert!(
        failures.is_empty(),
        "{} of {CALLS} calls of instant tasks failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}
