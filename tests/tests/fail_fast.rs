//! The first failure stops the call: queued tasks never start, the error names the task.

use parjob::{Error, Parallel};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[test]
fn a_panic_is_reported_with_its_index_and_message() {
    for n_jobs in [1, 2, 4] {
        let err = Parallel::new()
            .n_jobs(n_jobs)
            .map(0..50, |i| {
                if i == 17 {
                    panic!("bad item {i}");
                }
                i
            })
            .unwrap_err();
        match err {
            Error::TaskPanicked { index, message } => {
                assert_eq!(index, 17);
                assert_eq!(message, "bad item 17");
            }
            other => panic!("n_jobs={n_jobs}: {other:?}"),
        }
    }
}

#[test]
fn an_err_is_reported_as_task_failed_with_its_source() {
    let err = Parallel::new()
        .n_jobs(2)
        .try_map(["1", "2", "three", "4"], |s| s.parse::<u32>())
        .unwrap_err();
    match &err {
        Error::TaskFailed { index, source } => {
            assert_eq!(*index, 2);
            assert!(source.downcast_ref::<std::num::ParseIntError>().is_some());
        }
        other => panic!("{other:?}"),
    }
    assert!(std::error::Error::source(&err).is_some());
    // The cause is the source, not part of the message: a reporter that walks the chain
    // prints it once.
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert_eq!(err.to_string(), "task 2 failed");
    assert!(!err.to_string().contains(&cause));
    assert!(err.task_error::<std::num::ParseIntError>().is_some());
    assert!(err.task_error::<std::fmt::Error>().is_none());
}

#[test]
fn queued_tasks_never_start_after_a_failure() {
    let started = AtomicUsize::new(0);
    let r = Parallel::new().n_jobs(2).batch_size(1).map(0..1000, |i| {
        started.fetch_add(1, Ordering::SeqCst);
        if i == 0 {
            panic!("first");
        }
        std::thread::sleep(Duration::from_millis(20));
    });
    assert!(matches!(r, Err(Error::TaskPanicked { index: 0, .. })));
    // The panic hook (printing a backtrace, maybe) delays the report of the failure a little;
    // the other 990-odd tasks must never start.
    assert!(
        started.load(Ordering::SeqCst) < 100,
        "{} started",
        started.load(Ordering::SeqCst)
    );
}

#[test]
fn owned_tasks_fail_without_waiting_for_running_siblings() {
    let finished = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let tasks = (0..4).map(|i| {
        let finished = Arc::clone(&finished);
        move || {
            if i == 1 {
                std::thread::sleep(Duration::from_millis(50));
                panic!("late failure");
            }
            std::thread::sleep(Duration::from_secs(3));
            finished.fetch_add(1, Ordering::SeqCst);
        }
    });
    let r = Parallel::new().n_jobs(4).run(tasks);
    let waited = t0.elapsed();
    assert!(
        matches!(r, Err(Error::TaskPanicked { index: 1, .. })),
        "{r:?}"
    );
    // The siblings sleep 3 s; returning well before that shows the call did not wait.
    assert!(waited < Duration::from_millis(1500), "waited {waited:?}");
    assert_eq!(finished.load(Ordering::SeqCst), 0);
}

#[test]
fn the_first_failure_in_time_wins_over_earlier_indices() {
    let r = Parallel::new().n_jobs(2).run((0..2).map(|i| {
        move || {
            if i == 0 {
                std::thread::sleep(Duration::from_millis(600));
                panic!("slow failure");
            }
            std::thread::sleep(Duration::from_millis(20));
            panic!("quick failure");
        }
    }));
    assert!(
        matches!(r, Err(Error::TaskPanicked { index: 1, .. })),
        "{r:?}"
    );
}

#[test]
fn borrowing_calls_wait_only_for_running_tasks() {
    let data = vec![1u64; 64];
    let done = AtomicUsize::new(0);
    let r = Parallel::new().n_jobs(2).batch_size(1).try_map(0..64, |i| {
        if i == 0 {
            return Err("boom");
        }
        std::thread::sleep(Duration::from_millis(10));
        done.fetch_add(data[i] as usize, Ordering::SeqCst);
        Ok(())
    });
    assert!(matches!(r, Err(Error::TaskFailed { index: 0, .. })));
    // When `map` returns, no task may still be touching `data` or `done`.
    let after_return = done.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(done.load(Ordering::SeqCst), after_return);
    assert!(
        after_return < 8,
        "{after_return} tasks ran after the failure"
    );
}

#[test]
fn the_pool_is_healthy_after_failures() {
    for round in 0..20 {
        let r = Parallel::new().n_jobs(2).map(0..10, |i| {
            if i == round % 10 {
                panic!("round {round}");
            }
            i
        });
        assert!(r.is_err());
        assert_eq!(
            Parallel::new().n_jobs(2).map(0..10, |i| i).unwrap().len(),
            10
        );
    }
}

/// An error type with serde's traits, returned by a task that runs in another process.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Refused {
    value: u32,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is refused", self.value)
    }
}

impl std::error::Error for Refused {}

fn refuse_six(x: u32) -> Result<u32, Refused> {
    if x == 6 {
        Err(Refused { value: x })
    } else {
        Ok(x)
    }
}

/// As joblib re-raises a worker's exception with its type, a task's error that crossed
/// back from a worker process comes back as a value of its own type, on every backend.
#[test]
fn a_worker_s_error_comes_back_as_itself() {
    for backend in ["sequential", "threading", "loky", "multiprocessing"] {
        let err = Parallel::new()
            .backend(backend)
            .n_jobs(2)
            .batch_size(2)
            .try_run((0..10u32).map(|x| parjob::delayed!(refuse_six(x))))
            .unwrap_err();
        assert!(
            matches!(err, Error::TaskFailed { index: 6, .. }),
            "{backend}: {err:?}"
        );
        assert_eq!(
            err.task_error::<Refused>(),
            Some(&Refused { value: 6 }),
            "{backend}: {err:?}"
        );
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("6 is refused"), "{backend}");
    }
}
