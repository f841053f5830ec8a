//! Per-task timeouts, counted from the task's own start.
//!
//! Each test uses its own `n_jobs`, so its own thread pool: tests run concurrently, and a
//! task stuck in one call holds a thread of its pool until it ends, which would delay the
//! tasks of another call queued on that pool.

use parjob::{Error, Parallel};
use std::time::{Duration, Instant};

#[test]
fn a_late_task_fails_the_call_promptly() {
    let t0 = Instant::now();
    let r = Parallel::new()
        .n_jobs(3)
        .timeout(Duration::from_millis(100))
        .run((0..4).map(|i| {
            move || {
                if i == 2 {
                    std::thread::sleep(Duration::from_secs(3));
                }
                i
            }
        }));
    let waited = t0.elapsed();
    match r {
        Err(Error::Timeout { index, timeout }) => {
            assert_eq!(index, 2);
            assert_eq!(timeout, Duration::from_millis(100));
        }
        other => panic!("{other:?}"),
    }
    assert!(waited < Duration::from_millis(1500), "waited {waited:?}");
}

#[test]
fn the_clock_starts_with_each_task_not_with_the_call() {
    // Eighteen tasks of 150 ms on five workers take 600 ms in all, but none takes 300 ms.
    let out = Parallel::new()
        .n_jobs(5)
        .batch_size(1)
        .timeout(Duration::from_millis(300))
        .run((0..18).map(|i| {
            move || {
                std::thread::sleep(Duration::from_millis(150));
                i
            }
        }))
        .unwrap();
    assert_eq!(out, (0..18).collect::<Vec<_>>());
}

#[test]
fn a_stuck_task_does_not_block_later_calls() {
    let r = Parallel::new()
        .n_jobs(2)
        .timeout(Duration::from_millis(50))
        .run((0..2).map(|_| || std::thread::sleep(Duration::from_secs(5))));
    assert!(matches!(r, Err(Error::Timeout { .. })));
    let t0 = Instant::now();
    let out = Parallel::new().n_jobs(2).map(0..100, |i| i + 1).unwrap();
    assert_eq!(out.len(), 100);
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "the next call queued behind stuck threads"
    );
}

#[test]
fn timeouts_apply_to_streams_too() {
    let mut s = Parallel::new()
        .n_jobs(4)
        .timeout(Duration::from_millis(50))
        .map_iter(0..3u64, |i| {
            std::thread::sleep(Duration::from_millis(if i == 1 { 2000 } else { 0 }))
        })
        .unwrap();
    assert!(matches!(s.next(), Some(Ok(()))));
    assert!(matches!(
        s.next(),
        Some(Err(Error::Timeout { index: 1, .. }))
    ));
    assert!(s.next().is_none(), "a failed stream ends");
}
