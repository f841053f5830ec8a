//! Fault 2 of the matrix, a task returns `Err` (`try_run`, `try_map`): `TaskFailed` at the
//! task's index carrying the error's message, and on the process backends `try_run` runs
//! tasks that can travel in worker processes.

use crate::harness::{CALL_LIMIT, assert_healthy, serial_for, within};
use crate::tasks::{checked, checked_pid};
use parjob::{Error, delayed};
use parjob_tests::par;

fn check_err(_test: &str, backend: &'static str) {
    let _serial = serial_for(backend);
    let r = within(CALL_LIMIT, backend, move || {
        par(backend)
            .batch_size(1)
            .try_run((0..10u32).map(|x| delayed!(checked(x))))
    });
    match r {
        Err(Error::TaskFailed { index, source }) => {
            assert_eq!(index, 6, "{backend}");
            assert!(source.to_string().contains("six is refused"), "{source}");
        }
        other => panic!("{backend}: expected TaskFailed at 6, got {other:?}"),
    }
    let r = within(CALL_LIMIT, backend, move || {
        par(backend).try_map(0..10u32, checked)
    });
    assert!(
        matches!(&r, Err(Error::TaskFailed { index: 6, .. })),
        "{backend}: try_map gave {r:?}"
    );
    assert_healthy(backend);
}

cells!(check_err => {
    err_sequential: "sequential",
    err_threading: "threading",
    err_loky: "loky",
    err_multiprocessing: "multiprocessing",
});

/// `try_run` on a process backend with tasks that can travel runs them in worker processes.
fn check_err_runs_out_of_process(_test: &str, backend: &'static str) {
    let _serial = serial_for(backend);
    let me = std::process::id();
    let pids = within(CALL_LIMIT, backend, move || {
        par(backend).try_run((0..4u32).map(|x| delayed!(checked_pid(x))))
    })
    .unwrap();
    assert!(
        pids.iter().all(|&p| p != me),
        "{backend}: try_run ran travelling tasks in the caller: {pids:?}"
    );
}

cells!(check_err_runs_out_of_process => {
    err_in_worker_loky: "loky",
    err_in_worker_multiprocessing: "multiprocessing",
});
