//! Faults 4-6 of the matrix, the process running a task is killed (`SIGKILL`), aborts or
//! exits mid-task: `WorkerDied` naming how on the process backends, where the pool heals;
//! on the others the caller's own process ends so, tested in a child process.

use crate::harness::{
    CALL_LIMIT, assert_healthy, assert_nothing_left_behind, child_command, run_child, serial,
    within,
};
use crate::tasks::{Death, dies};
use parjob::Error;
use parjob_tests::{is_child, par, run_on};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

fn death_of(test: &str) -> Death {
    if test.starts_with("sigkill") {
        Death::Kill
    } else if test.starts_with("abort") {
        Death::Abort
    } else {
        Death::Exit3
    }
}

/// On a process backend: `WorkerDied` at the task, naming how, and the pool heals.
fn check_worker_death(test: &str, backend: &'static str) {
    let how = death_of(test);
    let _serial = serial();
    let r = within(CALL_LIMIT, backend, move || {
        run_on(
            par(backend).batch_size(1),
            dies,
            (0..4u32).map(|x| (how, x)),
        )
    });
    let expect = match how {
        Death::Kill => "SIGKILL",
        Death::Abort => "SIGABRT",
        Death::Exit3 => "code 3",
    };
    match r {
        Err(Error::WorkerDied { index, detail }) => {
            assert_eq!(index, Some(2), "{backend}: {detail}");
            assert!(detail.contains(expect), "{backend}: {detail}");
        }
        other => panic!("{backend}: expected WorkerDied ({expect}), got {other:?}"),
    }
    assert_healthy(backend);
    assert_nothing_left_behind(backend);
}

/// On a backend whose tasks run in the caller's process, the fault ends that process: run
/// in a child, which must end exactly so, without the call returning.
fn check_caller_death(test: &str, backend: &'static str) {
    let how = death_of(test);
    if is_child() {
        let r = run_on(
            par(backend).batch_size(1),
            dies,
            (0..4u32).map(|x| (how, x)),
        );
        println!("THE CALL RETURNED {r:?}");
        return;
    }
    let (status, out, err) =
        run_child(child_command(module_path!(), test), Duration::from_secs(30));
    let ok = match how {
        Death::Kill => status.signal() == Some(libc::SIGKILL),
        Death::Abort => status.signal() == Some(libc::SIGABRT),
        Death::Exit3 => status.code() == Some(3),
    };
    assert!(
        ok,
        "{backend} {how:?}: the child ended with {status:?}\n{out}\n{err}"
    );
    assert!(!out.contains("THE CALL RETURNED"), "{out}");
}

cells!(check_caller_death => {
    sigkill_sequential: "sequential",
    sigkill_threading: "threading",
    abort_sequential: "sequential",
    abort_threading: "threading",
    exit_sequential: "sequential",
    exit_threading: "threading",
});
cells!(check_worker_death => {
    sigkill_loky: "loky",
    sigkill_multiprocessing: "multiprocessing",
    abort_loky: "loky",
    abort_multiprocessing: "multiprocessing",
    exit_loky: "loky",
    exit_multiprocessing: "multiprocessing",
});
