//! Fault 3 of the matrix, a task exceeds the per-task timeout: `Timeout` at the task's
//! index soon after the limit, except on `sequential`, where the timeout is not enforced.

use crate::harness::{
    CALL_LIMIT, assert_healthy, assert_nothing_left_behind, is_process_backend, serial_for, within,
};
use crate::tasks::sleeps;
use parjob::Error;
use parjob_tests::{par, run_on};
use std::time::{Duration, Instant};

fn check_timeout(_test: &str, backend: &'static str) {
    let _serial = serial_for(backend);
    let limit = Duration::from_millis(200);
    let t0 = Instant::now();
    let r = within(CALL_LIMIT, backend, move || {
        run_on(
            par(backend).batch_size(1).timeout(limit),
            sleeps,
            [0, 3_000, 0, 0],
        )
    });
    let waited = t0.elapsed();
    match r {
        Err(Error::Timeout { index, timeout }) => {
            assert_eq!(index, 1, "{backend}");
            assert_eq!(timeout, limit, "{backend}");
        }
        other => panic!("{backend}: expected Timeout at 1, got {other:?}"),
    }
    assert!(
        waited < Duration::from_millis(1500),
        "{backend}: waited {waited:?} for a 200 ms timeout"
    );
    assert_healthy(backend);
    if is_process_backend(backend) {
        assert_nothing_left_behind(backend);
    }
}

/// The sequential backend runs on the calling thread, which cannot be interrupted: the
/// timeout is not enforced (documented on `Parallel::timeout`), and the call completes.
fn check_timeout_not_enforced(_test: &str, backend: &'static str) {
    let t0 = Instant::now();
    let r = within(CALL_LIMIT, backend, move || {
        run_on(
            par(backend).timeout(Duration::from_millis(50)),
            sleeps,
            [0, 300],
        )
    });
    assert_eq!(r.unwrap(), [0, 300]);
    assert!(t0.elapsed() >= Duration::from_millis(300));
}

cells!(check_timeout_not_enforced => { timeout_sequential: "sequential" });
cells!(check_timeout => {
    timeout_threading: "threading",
    timeout_loky: "loky",
    timeout_multiprocessing: "multiprocessing",
});
