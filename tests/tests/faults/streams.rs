//! Fault 13 of the matrix, a streaming iterator is dropped half way: the drop returns at
//! once and no task starts after it; on threads the running tasks finish, on the process
//! backends the workers running them are killed.

use crate::harness::{CALL_LIMIT, assert_healthy, assert_nothing_left_behind, serial, within};
use crate::tasks::marked;
use parjob::{Error, Parallel};
use parjob_tests::par;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

type BoxedStream = Box<dyn Iterator<Item = Result<u32, Error>>>;

/// In-process backends: all four streaming methods. Dropping returns at once, no task
/// starts after the drop, and the tasks running at the drop finish (threads cannot be
/// stopped), leaving no thread busy.
fn check_stream_drop_in_process(_test: &str, backend: &'static str) {
    type Open = fn(Parallel, Arc<(AtomicUsize, AtomicUsize)>) -> BoxedStream;
    let methods: [(&str, Open); 4] = [
        ("map_iter", |p, c| {
            Box::new(
                p.map_iter(0..200u32, move |i| counted(&c, i))
                    .expect("open the stream"),
            )
        }),
        ("map_unordered", |p, c| {
            Box::new(
                p.map_unordered(0..200u32, move |i| counted(&c, i))
                    .expect("open the stream"),
            )
        }),
        ("run_iter", |p, c| {
            Box::new(
                p.run_iter((0..200u32).map(move |i| {
                    let c = Arc::clone(&c);
                    move || counted(&c, i)
                }))
                .expect("open the stream"),
            )
        }),
        ("run_unordered", |p, c| {
            Box::new(
                p.run_unordered((0..200u32).map(move |i| {
                    let c = Arc::clone(&c);
                    move || counted(&c, i)
                }))
                .expect("open the stream"),
            )
        }),
    ];
    for (method, open) in methods {
        let counts = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let c = Arc::clone(&counts);
        let dropped_in = within(CALL_LIMIT, backend, move || {
            let mut stream = open(par(backend).batch_size(1), c);
            for _ in 0..3 {
                stream.next().expect("a result").expect("a good result");
            }
            let t0 = Instant::now();
            drop(stream);
            t0.elapsed()
        });
        assert!(
            dropped_in < Duration::from_millis(100),
            "{backend} {method}: the drop took {dropped_in:?}"
        );
        std::thread::sleep(Duration::from_millis(60));
        let started = counts.0.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(200));
        let (started_later, finished) = (
            counts.0.load(Ordering::SeqCst),
            counts.1.load(Ordering::SeqCst),
        );
        assert_eq!(
            started_later, started,
            "{backend} {method}: tasks kept starting after the drop"
        );
        assert!(
            started < 200,
            "{backend} {method}: every task ran ({started})"
        );
        assert_eq!(
            finished, started,
            "{backend} {method}: tasks still busy 260 ms after the drop"
        );
    }
}

fn counted(counts: &(AtomicUsize, AtomicUsize), i: u32) -> u32 {
    counts.0.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(20));
    counts.1.fetch_add(1, Ordering::SeqCst);
    i
}

/// Process backends: `run_iter` and `run_unordered` with tasks that travel. Dropping
/// returns at once, no task starts after the drop, and the workers busy with the stream's
/// tasks are killed: those tasks never finish.
fn check_stream_drop_in_processes(test: &str, backend: &'static str) {
    let _serial = serial();
    let root = std::env::temp_dir().join(format!("parjob-{test}-{}", std::process::id()));
    for ordered in [true, false] {
        let dir = root.join(if ordered { "ordered" } else { "unordered" });
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let d = dir.to_string_lossy().into_owned();
        let dropped_in = within(CALL_LIMIT, backend, move || {
            // Task 0 is quick, so it is the first result of either order; the others take
            // long enough to be mid-run at the drop.
            let tasks = (0..20u32).map(move |i| {
                let ms = if i == 0 { 100 } else { 900 };
                parjob::Delayed::remote(marked, (d.clone(), i, ms))
            });
            let p = par(backend).batch_size(1);
            let mut stream: BoxedStream = if ordered {
                Box::new(p.run_iter(tasks).expect("open the stream"))
            } else {
                Box::new(p.run_unordered(tasks).expect("open the stream"))
            };
            stream.next().expect("a result").expect("a good result");
            let t0 = Instant::now();
            drop(stream);
            t0.elapsed()
        });
        assert!(
            dropped_in < Duration::from_millis(100),
            "{backend} ordered={ordered}: the drop took {dropped_in:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
        let started = marks(&dir, "start-");
        let unfinished: Vec<u32> = started
            .iter()
            .copied()
            .filter(|i| !marks(&dir, "end-").contains(i))
            .collect();
        assert!(
            !unfinished.is_empty(),
            "{backend} ordered={ordered}: no task was running at the drop: {started:?}"
        );
        // Longer than a task: a task still running would finish by then.
        std::thread::sleep(Duration::from_millis(1000));
        assert_eq!(
            marks(&dir, "start-"),
            started,
            "{backend} ordered={ordered}: tasks started after the drop"
        );
        assert!(started.len() < 20, "{backend}: every task ran");
        let finished_after = marks(&dir, "end-");
        let finished_late: Vec<u32> = unfinished
            .iter()
            .copied()
            .filter(|i| finished_after.contains(i))
            .collect();
        assert!(
            finished_late.is_empty(),
            "{backend} ordered={ordered}: tasks {finished_late:?} of the dropped stream kept running (started {started:?})"
        );
        assert_healthy(backend);
    }
    let _ = std::fs::remove_dir_all(&root);
    assert_nothing_left_behind(backend);
}

/// The task numbers of the files `<prefix><i>` in `dir`, sorted.
fn marks(dir: &Path, prefix: &str) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix(prefix)?.parse().ok())
        .collect();
    out.sort_unstable();
    out
}

cells!(check_stream_drop_in_process => {
    stream_drop_sequential: "sequential",
    stream_drop_threading: "threading",
});
cells!(check_stream_drop_in_processes => {
    stream_drop_loky: "loky",
    stream_drop_multiprocessing: "multiprocessing",
});
