//! Many calls with failures among them (panics, timeouts, dying workers) leave the thread,
//! descriptor and child-process counts flat, and every healthy call after a failing one
//! succeeds. Its own test binary: it counts the whole process.

use parjob::{Delayed, Error, Parallel};
use std::time::Duration;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Live child processes of this process (zombies included: they count as leaks).
fn children() -> usize {
    let me = std::process::id().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    procs
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_to_string(e.path().join("stat")).is_ok_and(|stat| {
                // The parent pid is the second field after the parenthesised name.
                stat.rsplit(')')
                    .next()
                    .and_then(|rest| rest.split_whitespace().nth(1))
                    == Some(me.as_str())
            })
        })
        .count()
}

fn panics_on_one(x: u32) -> u32 {
    assert!(x != 1, "one");
    x
}

fn aborts_on_one(x: u32) -> u32 {
    if x == 1 {
        std::process::abort();
    }
    x
}

#[test]
fn failures_leave_no_threads_descriptors_or_processes_behind() {
    let rounds = if std::env::var_os("PARJOB_SOAK_LONG").is_some() {
        10_000
    } else {
        150
    };
    let loky = Parallel::new().backend("loky").n_jobs(2);
    // Warm up every pool the rounds use, so the baseline includes them.
    Parallel::new().n_jobs(2).map(0..10, |i| i).unwrap();
    loky.run((0..4).map(|i| Delayed::remote(panics_on_one, i + 2)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let before = (threads(), fds(), children());

    for round in 0..rounds {
        let r = Parallel::new().n_jobs(2).run((0..6).map(|i| {
            move || {
                assert!(i != 1, "task one");
                std::thread::sleep(Duration::from_millis(if i == 0 { 20 } else { 0 }));
                i
            }
        }));
        assert!(
            matches!(r, Err(Error::TaskPanicked { index: 1, .. })),
            "{r:?}"
        );

        let r = Parallel::new()
            .n_jobs(2)
            .timeout(Duration::from_millis(5))
            .run((0..2).map(|_| || std::thread::sleep(Duration::from_millis(30))));
        assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");

        let r = loky.run((0..4).map(|i| Delayed::remote(panics_on_one, i)));
        assert!(
            matches!(r, Err(Error::TaskPanicked { index: 1, .. })),
            "{r:?}"
        );
        if round % 10 == 0 {
            let r = loky.run((0..4).map(|i| Delayed::remote(aborts_on_one, i)));
            assert!(matches!(r, Err(Error::WorkerDied { .. })), "{r:?}");
        }
        // The call right after a failure gets healthy workers.
        let ok = loky
            .run((0..4).map(|i| Delayed::remote(panics_on_one, i + 2)))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(ok, [2, 3, 4, 5]);
    }
    // Threads of abandoned tasks finish their sleep and exit.
    std::thread::sleep(Duration::from_millis(500));
    let after = (threads(), fds(), children());
    println!("rounds {rounds}: (threads, fds, children) before {before:?}, after {after:?}");
    assert!(
        after.0 <= before.0 + 2,
        "threads grew: {before:?} -> {after:?}"
    );
    assert_eq!(after.1, before.1, "descriptors leaked");
    assert!(
        after.2 <= before.2,
        "child processes leaked: {before:?} -> {after:?}"
    );
}
