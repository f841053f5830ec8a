//! Calls that keep going past failures: one outcome per task, in input order, on every
//! backend; a dead worker costs its batch only.

use parjob::{Error, Parallel, delayed};
use serde::{Deserialize, Serialize};
use std::time::Duration;

const PANICS: [u32; 7] = [3, 11, 29, 47, 48, 70, 99];
const ERRS: [u32; 3] = [0, 52, 88];
const ABORTS: u32 = 64;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Refused(u32);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is refused", self.0)
    }
}

impl std::error::Error for Refused {}

/// Task `i` of 100: 7 panic, 3 return `Err`, and one aborts the worker process it runs in
/// (`caller` is the test's process id; in that process, where aborting would end the test,
/// it panics instead).
fn flaky(i: u32, caller: u32) -> Result<u32, Refused> {
    if PANICS.contains(&i) {
        panic!("task {i} panics");
    }
    if ERRS.contains(&i) {
        return Err(Refused(i));
    }
    if i == ABORTS {
        if std::process::id() != caller {
            std::process::abort();
        }
        panic!("task {i} would abort its worker");
    }
    Ok(i * 2)
}

fn run_flaky(backend: &str, pre_dispatch: usize) -> Vec<Result<u32, Error>> {
    let caller = std::process::id();
    Parallel::new()
        .backend(backend)
        .n_jobs(2)
        .batch_size(1)
        .pre_dispatch(pre_dispatch)
        .keep_going()
        .try_run((0..100u32).map(|i| delayed!(flaky(i, caller))))
        .unwrap_or_else(|e| panic!("{backend}: the call failed as a whole: {e}"))
}

/// Checks every outcome of `run_flaky`: `in_worker` says whether the aborting task ran in
/// a process of its own.
fn check(backend: &str, out: &[Result<u32, Error>], in_worker: bool) {
    assert_eq!(out.len(), 100, "{backend}");
    for (i, outcome) in (0u32..).zip(out) {
        let index = i as usize;
        match outcome {
            Ok(v) => {
                assert!(!PANICS.contains(&i) && !ERRS.contains(&i) && i != ABORTS);
                assert_eq!(*v, i * 2, "{backend}: task {i}");
            }
            Err(Error::TaskFailed { index: at, .. }) if ERRS.contains(&i) => {
                assert_eq!(*at, index, "{backend}");
                let err = outcome.as_ref().unwrap_err();
                assert_eq!(err.task_error::<Refused>(), Some(&Refused(i)), "{backend}");
            }
            Err(Error::TaskPanicked { index: at, message }) if PANICS.contains(&i) => {
                assert_eq!(*at, index, "{backend}");
                assert_eq!(message, &format!("task {i} panics"), "{backend}");
            }
            Err(Error::TaskPanicked { index: at, .. }) if i == ABORTS && !in_worker => {
                assert_eq!(*at, index, "{backend}");
            }
            Err(Error::WorkerDied { index: at, detail }) if i == ABORTS && in_worker => {
                assert_eq!(*at, Some(index), "{backend}");
                assert!(detail.contains("SIGABRT"), "{backend}: {detail}");
            }
            Err(e) => panic!("{backend}: task {i}: unexpected {e:?}"),
        }
    }
    let oks = out.iter().filter(|r| r.is_ok()).count();
    assert_eq!((oks, out.len() - oks), (89, 11), "{backend}");
}

#[test]
fn every_task_gets_its_own_outcome_on_every_local_backend() {
    for backend in ["sequential", "threading"] {
        check(backend, &run_flaky(backend, 4), false);
    }
}

#[test]
fn an_aborted_worker_costs_only_its_own_task() {
    for backend in ["loky", "multiprocessing"] {
        check(backend, &run_flaky(backend, 4), true);
        // One batch at a time: a loky call then runs each batch from its own thread.
        check(backend, &run_flaky(backend, 1), true);
    }
}

#[test]
fn a_panic_in_a_worker_costs_only_that_task_of_its_batch() {
    let caller = std::process::id();
    for backend in ["loky", "multiprocessing"] {
        // Batches of 10: the panics and `Err`s share batches with tasks that succeed.
        let out = Parallel::new()
            .backend(backend)
            .n_jobs(2)
            .batch_size(10)
            .keep_going()
            .try_run(
                (0..100u32)
                    .filter(|&i| i != ABORTS)
                    .map(|i| delayed!(flaky(i, caller))),
            )
            .unwrap();
        let failed: Vec<usize> = out
            .iter()
            .filter_map(|r| r.as_ref().err()?.task_index())
            .collect();
        // Indices are positions in this call's input (99 tasks: the abort left out).
        let mut expected: Vec<usize> = PANICS
            .iter()
            .chain(&ERRS)
            .map(|&i| if i > ABORTS { i - 1 } else { i } as usize)
            .collect();
        expected.sort_unstable();
        assert_eq!(failed, expected, "{backend}");
        assert_eq!(out.len(), 99, "{backend}");
    }
}

#[test]
fn a_dead_worker_costs_the_tasks_of_its_batch() {
    let caller = std::process::id();
    for backend in ["loky", "multiprocessing"] {
        let out = Parallel::new()
            .backend(backend)
            .n_jobs(2)
            .batch_size(8)
            .keep_going()
            .try_run(
                (60..80u32)
                    .filter(|i| !PANICS.contains(i) && !ERRS.contains(i))
                    .map(|i| delayed!(flaky(i, caller))),
            )
            .unwrap();
        // Tasks 60..80 but 70: ABORTS (64) is the 5th, in the first batch of 8.
        assert_eq!(out.len(), 19, "{backend}");
        let worker_died = out
            .iter()
            .filter(|r| matches!(r, Err(Error::WorkerDied { .. })))
            .count();
        assert_eq!(
            worker_died, 0,
            "{backend}: a batch of 8 names no task alone"
        );
        for (k, r) in out.iter().enumerate() {
            match r {
                Err(Error::Lost { index, cause }) if k < 8 => {
                    assert_eq!(*index, k, "{backend}");
                    assert!(matches!(**cause, Error::WorkerDied { .. }), "{backend}");
                    let source = std::error::Error::source(r.as_ref().unwrap_err());
                    assert!(source.is_some(), "{backend}");
                }
                Ok(_) if k >= 8 => {}
                other => panic!("{backend}: task {k}: {other:?}"),
            }
        }
    }
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn a_task_past_its_timeout_costs_only_itself() {
    for backend in ["threading", "loky", "multiprocessing"] {
        let naps = [5u64, 5, 3000, 5, 5, 5];
        let started = std::time::Instant::now();
        let out = Parallel::new()
            .backend(backend)
            .n_jobs(2)
            .batch_size(1)
            .timeout(Duration::from_millis(300))
            .keep_going()
            .run(naps.map(|ms| delayed!(nap(ms))))
            .unwrap();
        for (i, r) in out.iter().enumerate() {
            match r {
                Err(Error::Timeout { index: 2, timeout }) if i == 2 => {
                    assert_eq!(*timeout, Duration::from_millis(300));
                }
                Ok(ms) if i != 2 => assert_eq!(*ms, naps[i], "{backend}"),
                other => panic!("{backend}: task {i}: {other:?}"),
            }
        }
        // `run` owns its tasks: the call does not wait for the late one.
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "{backend}: {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn borrowing_calls_keep_going_and_fill_every_slot() {
    let data: Vec<u32> = (0..1000).collect();
    for n_jobs in [1, 2, 3] {
        let out = Parallel::new()
            .n_jobs(n_jobs)
            .keep_going()
            .map(0..data.len(), |i| {
                assert!(data[i] % 97 != 5, "item {i}");
                data[i] + 1
            })
            .unwrap();
        assert_eq!(out.len(), 1000);
        for (i, r) in out.iter().enumerate() {
            if i % 97 == 5 {
                assert!(
                    matches!(r, Err(Error::TaskPanicked { index, .. }) if *index == i),
                    "n_jobs={n_jobs}: {r:?}"
                );
            } else {
                assert_eq!(r.as_ref().ok(), Some(&(i as u32 + 1)), "n_jobs={n_jobs}");
            }
        }
    }
}

#[test]
fn streams_go_on_past_a_failed_task() {
    for n_jobs in [1, 2] {
        let ordered: Vec<Result<u32, Error>> = Parallel::new()
            .n_jobs(n_jobs)
            .batch_size(3)
            .keep_going()
            .map_iter(0..20u32, |i| {
                assert!(i % 6 != 1, "six");
                i
            })
            .unwrap()
            .collect();
        assert_eq!(ordered.len(), 20, "n_jobs={n_jobs}");
        for (i, r) in ordered.iter().enumerate() {
            assert_eq!(r.is_err(), i % 6 == 1, "n_jobs={n_jobs}: {r:?}");
            if let Err(e) = r {
                assert_eq!(e.task_index(), Some(i));
            }
        }
        let mut failed: Vec<usize> = Parallel::new()
            .n_jobs(n_jobs)
            .keep_going()
            .map_unordered(0..20u32, |i| {
                assert!(i % 6 != 1, "six");
                i
            })
            .unwrap()
            .filter_map(|r| r.err()?.task_index())
            .collect();
        failed.sort_unstable();
        assert_eq!(failed, [1, 7, 13, 19], "n_jobs={n_jobs}");
    }
}

#[test]
fn a_configuration_error_still_fails_the_whole_call() {
    let r = Parallel::new().n_jobs(0).keep_going().map(0..3, |i| i);
    assert!(matches!(r, Err(Error::InvalidNJobs)));
    let r = Parallel::new()
        .backend("lokyy")
        .keep_going()
        .map(0..3, |i| i);
    assert!(matches!(r, Err(Error::UnknownBackend { .. })));
}
