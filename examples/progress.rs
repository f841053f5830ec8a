//! Progress of a long call: joblib's `verbose` lines on stderr, a callback of your own (to
//! drive a log or a UI), or a bar of your own among others (indicatif's `MultiProgress`).
//!
//! Run with `cargo run -p parjob-examples --example progress`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parjob::indicatif::{MultiProgress, ProgressBar};
use parjob::{Parallel, Progress};

fn work(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(5));
    x + 1
}

fn main() -> Result<(), parjob::Error> {
    // joblib's lines: "[Parallel(n_jobs=2)]: Using backend threading with 2 concurrent
    // workers." then "Done N tasks | elapsed: ...", more often with higher values.
    let out = Parallel::new()
        .backend("threading")
        .n_jobs(2)
        .verbose(5)
        .map(0..200u64, work)?;
    assert_eq!(out.len(), 200);

    // A callback, called after each completed batch with the tasks done so far.
    let calls = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(AtomicUsize::new(0));
    let out = Parallel::new()
        .backend("threading")
        .n_jobs(2)
        .on_progress({
            let (calls, last) = (Arc::clone(&calls), Arc::clone(&last));
            move |p: Progress| {
                calls.fetch_add(1, Ordering::Relaxed);
                last.store(p.done, Ordering::Relaxed);
                if let Some(total) = p.total {
                    eprintln!("{:>3}/{total} after {:?}", p.done, p.elapsed);
                }
            }
        })
        .map(0..100u64, work)?;
    assert_eq!(out.len(), 100);
    // The last report counts every task.
    assert_eq!(last.load(Ordering::Relaxed), 100);
    println!(
        "{} progress reports, the last at {} tasks",
        calls.load(Ordering::Relaxed),
        last.load(Ordering::Relaxed)
    );

    // Bars of the program's own, one per stage, drawn together (on a terminal): parjob
    // sets each one's length and position; the program keeps its style and its end.
    let multi = MultiProgress::new();
    let stages: Vec<ProgressBar> = ["load", "fit"]
        .iter()
        .map(|name| {
            let bar = multi.add(ProgressBar::new(0));
            bar.set_message(*name);
            bar
        })
        .collect();
    for (stage, bar) in stages.iter().enumerate() {
        let n = 60 * (stage as u64 + 1);
        Parallel::new()
            .backend("threading")
            .n_jobs(2)
            .progress_bar(bar.clone())
            .map(0..n, work)?;
        assert_eq!((bar.position(), bar.length()), (n, Some(n)));
        bar.finish();
    }
    println!("stages done: {}", stages.len());
    Ok(())
}
