//! The loky backend end to end: tasks run in worker processes that are reused, failures in
//! workers are clear errors, and the pool heals.

use parjob::{Delayed, Error, Parallel, delayed, parallel, parallel_backend};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests of this file share the process's one worker pool and kill workers: one at a
/// time, so that a test counting workers does not see another's replacements.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn pid(_: u32) -> u32 {
    std::process::id()
}

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn tasks_run_in_other_processes_that_are_reused() {
    let _serial = serial();
    let me = std::process::id();
    let first = parallel!("loky", n_jobs = 2; pid(i) for i in 0..20).unwrap();
    assert!(first.iter().all(|&p| p != me), "{first:?}");
    let second = parallel!("loky", n_jobs = 2; pid(i) for i in 0..20).unwrap();
    let mut workers: Vec<u32> = first.iter().chain(&second).copied().collect();
    workers.sort_unstable();
    workers.dedup();
    assert!(
        workers.len() <= 2,
        "a second call started new workers: {workers:?}"
    );
}

#[test]
fn results_keep_input_order() {
    let _serial = serial();
    let out = parallel!("loky", n_jobs = 2; square(x) for x in 0..2000u64).unwrap();
    assert_eq!(out, (0..2000u64).map(|x| x * x).collect::<Vec<_>>());
    let out = Parallel::new()
        .backend("loky")
        .n_jobs(2)
        .run((0..500u64).map(|x| delayed!(square(x))))
        .unwrap();
    assert_eq!(out, (0..500u64).map(|x| x * x).collect::<Vec<_>>());
}

#[test]
fn a_runtime_loky_scope_sends_what_can_travel_and_keeps_the_rest_on_threads() {
    let _serial = serial();
    let me = std::process::id();
    let offset = 1;
    // No serde: a value of this type cannot leave the process.
    struct Opaque(u32);
    let opaque = Opaque(1);
    let (travelled, captured, stayed) = parallel_backend("loky")
        .n_jobs(2)
        .run(|| {
            let travelled = parallel!(pid(i) for i in 0..4)?;
            let captured = parallel!(pid(i) + offset - 1 for i in 0..4)?;
            let stayed = parallel!(pid(i) + opaque.0 - 1 for i in 0..4)?;
            Ok::<_, Error>((travelled, captured, stayed))
        })
        .unwrap()
        .unwrap();
    assert!(travelled.iter().all(|&p| p != me));
    assert!(
        captured.iter().all(|&p| p != me),
        "a body whose captures travel runs in workers"
    );
    assert!(
        stayed.iter().all(|&p| p == me),
        "a body with a capture that cannot travel runs on threads"
    );
}

fn panics_on_three(x: u32) -> u32 {
    assert!(x != 3, "three is not welcome");
    x
}

#[test]
fn a_panic_in_a_worker_is_task_panicked_with_its_message() {
    let _serial = serial();
    let r = Parallel::new()
        .backend("loky")
        .n_jobs(2)
        .run((0..10).map(|i| Delayed::remote(panics_on_three, i)));
    match r {
        Err(Error::TaskPanicked { index, message }) => {
            assert_eq!(index, 3);
            assert_eq!(message, "three is not welcome");
        }
        other => panic!("{other:?}"),
    }
}

fn aborts(x: u32) -> u32 {
    if x == 2 {
        std::process::abort();
    }
    x
}

fn exits(x: u32) -> u32 {
    if x == 1 {
        std::process::exit(3);
    }
    x
}

fn kills_itself(x: u32) -> u32 {
    if x == 0 {
        let _ = std::process::Command::new("kill")
            .args(["-9", &std::process::id().to_string()])
            .status();
        std::thread::sleep(Duration::from_secs(10));
    }
    x
}

#[test]
fn a_dying_worker_is_worker_died_naming_how_and_the_pool_heals() {
    let _serial = serial();
    type Case = (fn(u32) -> u32, &'static str, usize);
    let cases: [Case; 3] = [
        (aborts, "SIGABRT", 2),
        (exits, "code 3", 1),
        (kills_itself, "SIGKILL", 0),
    ];
    for (task, detail_has, at) in cases {
        let r = Parallel::new()
            .backend("loky")
            .n_jobs(2)
            .batch_size(1)
            .run((0..4).map(|i| Delayed::remote(task, i)));
        match r {
            Err(Error::WorkerDied { index, detail }) => {
                assert!(detail.contains(detail_has), "{detail}");
                assert_eq!(index, Some(at));
            }
            other => panic!("expected WorkerDied ({detail_has}), got {other:?}"),
        }
        let healthy = parallel!("loky", n_jobs = 2; square(x) for x in 0..10u64).unwrap();
        assert_eq!(healthy[9], 81);
    }
}

fn sleeps(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn a_timeout_kills_the_late_worker_promptly() {
    let _serial = serial();
    let t0 = Instant::now();
    let r = Parallel::new()
        .backend("loky")
        .n_jobs(2)
        .batch_size(1)
        .timeout(Duration::from_millis(300))
        .run([0, 5_000, 0, 0].map(|ms| Delayed::remote(sleeps, ms)));
    let waited = t0.elapsed();
    assert!(matches!(r, Err(Error::Timeout { index: 1, .. })), "{r:?}");
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
    let healthy = parallel!("loky", n_jobs = 2; square(x) for x in 0..10u64).unwrap();
    assert_eq!(healthy.len(), 10);
}

#[test]
fn the_first_failure_kills_the_busy_workers() {
    let _serial = serial();
    let t0 = Instant::now();
    let r = Parallel::new().backend("loky").n_jobs(2).batch_size(1).run(
        [(5_000, false), (50, true)].map(|(ms, fail)| {
            Delayed::remote(
                |(ms, fail): (u64, bool)| {
                    std::thread::sleep(Duration::from_millis(ms));
                    assert!(!fail, "late failure");
                },
                (ms, fail),
            )
        }),
    );
    assert!(
        matches!(r, Err(Error::TaskPanicked { index: 1, .. })),
        "{r:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "waited {:?}",
        t0.elapsed()
    );
}

fn checksum(v: Vec<f64>) -> (usize, f64) {
    (
        v.len(),
        v.iter().enumerate().map(|(i, x)| x * (i % 7) as f64).sum(),
    )
}

#[test]
fn large_inputs_arrive_intact_whatever_their_size() {
    let _serial = serial();
    // Around and well above the size from which inputs go through shared memory, growing
    // and shrinking, so that a worker's region is grown and reused.
    let lens = [
        10usize, 30_000, 33_000, 200_000, 1_000, 1_100_000, 50, 400_000,
    ];
    let inputs: Vec<Vec<f64>> = lens
        .iter()
        .map(|&n| (0..n).map(|i| (i as f64).sin()).collect())
        .collect();
    let expected: Vec<(usize, f64)> = inputs.iter().cloned().map(checksum).collect();
    for batch_size in [1, 3] {
        let out = parallel!("loky", n_jobs = 2, batch_size = batch_size;
            checksum(v) for v in inputs.clone())
        .unwrap();
        assert_eq!(out, expected, "batch_size {batch_size}");
    }
}
