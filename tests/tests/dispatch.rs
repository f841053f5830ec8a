//! How input is consumed: lockstep with one worker, bounded by pre_dispatch with several,
//! and exactly n_jobs tasks at once.

use parjob::{Error, Parallel};
use parjob_tests::{EventLog, PeakCounter};
use std::time::Duration;

#[test]
fn one_worker_consumes_in_lockstep() {
    let log = EventLog::default();
    let input = (0..4).inspect(|i| log.push(format!("P{i}")));
    Parallel::new()
        .n_jobs(1)
        .map(input, |i| log.push(format!("C{i}")))
        .unwrap();
    assert_eq!(
        log.events(),
        ["P0", "C0", "P1", "C1", "P2", "C2", "P3", "C3"]
    );
}

#[test]
fn one_worker_runs_on_the_calling_thread() {
    let me = std::thread::current().id();
    let ids = Parallel::new()
        .n_jobs(1)
        .map(0..3, |_| std::thread::current().id())
        .unwrap();
    assert!(ids.iter().all(|&id| id == me));
    let ids = Parallel::new()
        .n_jobs(2)
        .map(0..3, |_| std::thread::current().id())
        .unwrap();
    assert!(
        ids.iter().all(|&id| id != me),
        "with workers, tasks leave the caller"
    );
}

#[test]
fn pre_dispatch_bounds_what_is_pulled_before_the_first_completion() {
    let log = EventLog::default();
    let input = (0..8).inspect(|i| log.push(format!("P{i}")));
    Parallel::new()
        .n_jobs(2)
        .pre_dispatch(3)
        .map(input, |i| {
            std::thread::sleep(Duration::from_millis(30));
            log.push(format!("C{i}"));
        })
        .unwrap();
    let events = log.events();
    let first_completion = events.iter().position(|e| e.starts_with('C')).unwrap();
    let p3 = log.position("P3").unwrap();
    assert!(
        p3 > first_completion,
        "P3 pulled before any task completed: {events:?}"
    );
    assert!(log.position("P2").unwrap() < first_completion, "{events:?}");
}

#[test]
fn pre_dispatch_expressions_and_all() {
    let log = EventLog::default();
    let input = (0..6).inspect(|i| log.push(format!("P{i}")));
    Parallel::new()
        .n_jobs(2)
        .pre_dispatch("all")
        .map(input, |i| {
            std::thread::sleep(Duration::from_millis(20));
            log.push(format!("C{i}"));
        })
        .unwrap();
    let events = log.events();
    let first_completion = events.iter().position(|e| e.starts_with('C')).unwrap();
    assert!(log.position("P5").unwrap() < first_completion, "{events:?}");

    let bad = Parallel::new()
        .n_jobs(2)
        .pre_dispatch("2*jobs")
        .map(0..3, |i| i);
    assert!(matches!(bad, Err(Error::InvalidConfig { .. })));
    let bad = Parallel::new().n_jobs(2).batch_size(0).map(0..3, |i| i);
    assert!(matches!(bad, Err(Error::InvalidConfig { .. })));
    let bad = Parallel::new().n_jobs(1).batch_size(0).map(0..3, |i| i);
    assert!(
        matches!(bad, Err(Error::InvalidConfig { .. })),
        "checked on the one-worker path too"
    );
}

fn peak_with(n_jobs: i32) -> usize {
    let peak = PeakCounter::default();
    Parallel::new()
        .n_jobs(n_jobs)
        .map(0..(3 * n_jobs as usize), |_| {
            let _g = peak.enter();
            std::thread::sleep(Duration::from_millis(40));
        })
        .unwrap();
    peak.peak()
}

#[test]
fn exactly_n_jobs_tasks_run_at_once() {
    assert_eq!(peak_with(2), 2);
    assert_eq!(peak_with(3), 3);
    assert_eq!(peak_with(7), 7, "more workers than cpus when asked");
}

#[test]
fn pools_are_reused_across_calls() {
    let names = |_: usize| std::thread::current().name().map(str::to_owned);
    let first: std::collections::BTreeSet<_> = Parallel::new()
        .n_jobs(3)
        .map(0..60, names)
        .unwrap()
        .into_iter()
        .collect();
    let second: std::collections::BTreeSet<_> = Parallel::new()
        .n_jobs(3)
        .map(0..60, names)
        .unwrap()
        .into_iter()
        .collect();
    // Each call may use any of the pool's threads; together they are still one pool's.
    assert!(first.union(&second).count() <= 3, "{first:?} vs {second:?}");
    let ids_a: std::collections::BTreeSet<String> = Parallel::new()
        .n_jobs(3)
        .map(0..60, |_| format!("{:?}", std::thread::current().id()))
        .unwrap()
        .into_iter()
        .collect();
    let ids_b: std::collections::BTreeSet<String> = Parallel::new()
        .n_jobs(3)
        .map(0..60, |_| format!("{:?}", std::thread::current().id()))
        .unwrap()
        .into_iter()
        .collect();
    assert!(
        ids_a.union(&ids_b).count() <= 3,
        "a second call started new threads"
    );
}
