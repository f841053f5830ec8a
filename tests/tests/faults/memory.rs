//! Fault 12 of the matrix, a task allocates until the OS refuses, under an address-space
//! limit in a child process: the worker aborts and the call reports `WorkerDied` on the
//! process backends; elsewhere the caller itself aborts, as any Rust program would.

use crate::harness::{CALL_LIMIT, assert_healthy, child_command, run_child, within};
use crate::tasks::hog;
use parjob::Error;
use parjob_tests::{is_child, par, run_on};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

/// Limits this process's address space (and that of every process it starts later) to its
/// current size plus `extra` bytes.
fn limit_address_space(extra: u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let vm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize");
    let limit = vm_kb * 1024 + extra;
    let rlim = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: `setrlimit` reads the `rlimit` we own; lowering a limit needs no privilege.
    let r = unsafe { libc::setrlimit(libc::RLIMIT_AS, &rlim) };
    assert_eq!(r, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

const HOG_HEADROOM: u64 = 1 << 30;

/// On a process backend, the worker aborts ("memory allocation of N bytes failed") and the
/// call reports `WorkerDied` (SIGABRT) at the task; the parent survives and calls again.
fn check_oom_in_worker(test: &str, backend: &'static str) {
    if is_child() {
        limit_address_space(HOG_HEADROOM);
        let r = within(CALL_LIMIT, backend, move || {
            run_on(par(backend).batch_size(1), hog, 0..3u32)
        });
        match r {
            Err(Error::WorkerDied { index, detail }) => {
                assert_eq!(index, Some(1), "{detail}");
                assert!(detail.contains("SIGABRT"), "{detail}");
            }
            other => panic!("{backend}: expected WorkerDied (SIGABRT), got {other:?}"),
        }
        assert_healthy(backend);
        println!("THE PARENT SURVIVED");
        return;
    }
    let (status, out, err) =
        run_child(child_command(module_path!(), test), Duration::from_secs(60));
    assert!(status.success(), "{backend}: {status:?}\n{out}\n{err}");
    assert!(out.contains("THE PARENT SURVIVED"), "{out}");
    assert!(err.contains("memory allocation of"), "{err}");
}

/// On a backend whose tasks run in the caller, the caller itself aborts, as any Rust
/// program that runs out of memory.
fn check_oom_in_caller(test: &str, backend: &'static str) {
    if is_child() {
        limit_address_space(HOG_HEADROOM);
        let r = run_on(par(backend).batch_size(1), hog, 0..3u32);
        println!("THE CALL RETURNED {r:?}");
        return;
    }
    let (status, out, err) =
        run_child(child_command(module_path!(), test), Duration::from_secs(60));
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "{status:?}\n{out}\n{err}"
    );
    assert!(err.contains("memory allocation of"), "{err}");
    assert!(!out.contains("THE CALL RETURNED"), "{out}");
}

cells!(check_oom_in_caller => {
    oom_sequential: "sequential",
    oom_threading: "threading",
});
cells!(check_oom_in_worker => {
    oom_loky: "loky",
    oom_multiprocessing: "multiprocessing",
});
