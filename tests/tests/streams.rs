//! Streaming results: ordered and unordered, lazy, with backpressure, and safe to drop.

use parjob::{Error, Parallel};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[test]
fn ordered_stream_yields_in_input_order_despite_uneven_durations() {
    let out: Vec<u64> = Parallel::new()
        .n_jobs(3)
        .batch_size(1)
        .map_iter(0..30u64, |i| {
            std::thread::sleep(Duration::from_millis((30 - i) % 7));
            i
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(out, (0..30).collect::<Vec<_>>());
}

#[test]
fn unordered_stream_yields_in_completion_order() {
    let tasks = [400u64, 200, 0].map(|ms| {
        move || {
            std::thread::sleep(Duration::from_millis(ms));
            ms
        }
    });
    let out: Vec<u64> = Parallel::new()
        .n_jobs(3)
        .run_unordered(tasks)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(out, [0, 200, 400]);
}

#[test]
fn the_stream_does_not_borrow_the_parallel_and_can_move_threads() {
    let stream = {
        let p = Parallel::new().n_jobs(2);
        p.map_iter(0..10, |i| i * 3).unwrap()
    };
    let out = std::thread::spawn(move || stream.collect::<Result<Vec<_>, _>>())
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(out, (0..10).map(|i| i * 3).collect::<Vec<_>>());
}

#[test]
fn an_unconsumed_stream_stops_pulling_an_infinite_input() {
    for ordered in [true, false] {
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&pulled);
        let input = (0u64..).inspect(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let p = Parallel::new().n_jobs(2).batch_size(1);
        let f = |x: u64| x + 1;
        let mut stream: Box<dyn Iterator<Item = Result<u64, Error>>> = if ordered {
            Box::new(p.map_iter(input, f).unwrap())
        } else {
            Box::new(p.map_unordered(input, f).unwrap())
        };
        for _ in 0..5 {
            stream.next().unwrap().unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
        let seen = pulled.load(Ordering::SeqCst);
        // 5 consumed plus at most pre_dispatch (2 * n_jobs = 4) batches of one task ahead.
        assert!(seen <= 5 + 4 + 1, "ordered={ordered}: pulled {seen}");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            pulled.load(Ordering::SeqCst),
            seen,
            "input pulled while nobody consumed"
        );
    }
}

#[test]
fn dropping_a_stream_half_way_skips_the_rest() {
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ran);
    let mut stream = Parallel::new()
        .n_jobs(2)
        .batch_size(1)
        .pre_dispatch("all")
        .map_iter(0..200u64, move |i| {
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            i
        })
        .unwrap();
    assert_eq!(stream.next().unwrap().unwrap(), 0);
    drop(stream);
    let at_drop = ran.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(150));
    let later = ran.load(Ordering::SeqCst);
    assert!(
        later <= at_drop + 2,
        "tasks kept starting after the drop: {at_drop} -> {later}"
    );
    assert!(later < 200);
}

#[test]
fn a_failing_stream_reports_the_error_then_ends() {
    let mut s = Parallel::new()
        .n_jobs(2)
        .run_iter((0..10).map(|i| {
            move || {
                if i == 4 {
                    panic!("four");
                }
                i
            }
        }))
        .unwrap();
    for expect in 0..4 {
        assert_eq!(s.next().unwrap().unwrap(), expect);
    }
    assert!(matches!(
        s.next(),
        Some(Err(Error::TaskPanicked { index: 4, .. }))
    ));
    assert!(s.next().is_none());
}

#[test]
fn with_one_worker_a_stream_is_pulled_lazily() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&pulled);
    let mut s = Parallel::new()
        .n_jobs(1)
        .map_iter(
            (0..10).inspect(move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
            }),
            |i| i,
        )
        .unwrap();
    assert_eq!(
        pulled.load(Ordering::SeqCst),
        0,
        "nothing before the first next"
    );
    assert_eq!(s.next().unwrap().unwrap(), 0);
    assert_eq!(pulled.load(Ordering::SeqCst), 1);
}
