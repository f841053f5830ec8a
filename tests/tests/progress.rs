//! Progress: the on_progress callback and joblib-format lines on stderr.

use parjob::Parallel;
use parjob_tests::{is_child, rerun_test};
use std::sync::{Arc, Mutex};

#[test]
fn on_progress_counts_every_task_once_and_ends_at_the_total() {
    for n_jobs in [1, 2, 4] {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        Parallel::new()
            .n_jobs(n_jobs)
            .on_progress(move |p| log.lock().unwrap().push((p.done, p.total)))
            .map(0..300, |i| i)
            .unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.last(), Some(&(300, Some(300))), "n_jobs={n_jobs}");
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "done only grows");
    }
}

#[test]
fn total_is_learned_when_the_input_ends() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    Parallel::new()
        .n_jobs(2)
        .batch_size(1)
        .on_progress(move |p| log.lock().unwrap().push((p.done, p.total)))
        .map((0..20).filter(|_| true), |i| i)
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.first().map(|s| s.1),
        Some(None),
        "unknown at first: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&(20, Some(20))));
}

#[test]
fn verbose_prints_joblib_lines() {
    if is_child() {
        Parallel::new()
            .n_jobs(2)
            .verbose(11)
            .map(0..20, |i| i)
            .unwrap();
        return;
    }
    let (ok, _, stderr) = rerun_test("verbose_prints_joblib_lines", &[]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("[Parallel(n_jobs=2)]: "))
        .collect();
    assert_eq!(
        lines.first().copied(),
        Some("[Parallel(n_jobs=2)]: Using backend threading with 2 concurrent workers.")
    );
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("[Parallel(n_jobs=2)]: Done 20 out of 20 | elapsed: ")
            && last.ends_with("s finished"),
        "{last}"
    );
    assert!(lines.len() >= 3, "{lines:?}");
    for l in &lines[1..lines.len() - 1] {
        let rest = l.strip_prefix("[Parallel(n_jobs=2)]: Done ").unwrap();
        assert!(rest.contains(" out of 20 | elapsed: "), "{l}");
    }
}

#[test]
fn verbose_zero_prints_nothing() {
    if is_child() {
        Parallel::new().n_jobs(2).map(0..20, |i| i).unwrap();
        return;
    }
    let (ok, _, stderr) = rerun_test("verbose_zero_prints_nothing", &[]);
    assert!(ok);
    assert!(!stderr.contains("[Parallel("), "{stderr}");
}

#[test]
fn a_callers_bar_follows_the_call_on_every_path() {
    use parjob::indicatif::ProgressBar;
    // Workers, the calling thread, and an input whose length is learned at its end.
    for n_jobs in [2, 1] {
        let bar = ProgressBar::hidden();
        let out = Parallel::new()
            .backend("threading")
            .n_jobs(n_jobs)
            .progress_bar(bar.clone())
            .map(0..50u32, |x| x + 1)
            .unwrap();
        assert_eq!(out.len(), 50);
        assert_eq!(
            (bar.position(), bar.length()),
            (50, Some(50)),
            "n_jobs={n_jobs}"
        );
    }
    let bar = ProgressBar::hidden();
    let evens = (0..50u32).filter(|x| x % 2 == 0);
    Parallel::new()
        .n_jobs(2)
        .progress_bar(bar.clone())
        .map(evens, |x| x)
        .unwrap();
    assert_eq!((bar.position(), bar.length()), (25, Some(25)));
    // A stream moves it as results are produced.
    let bar = ProgressBar::hidden();
    let taken: Vec<u32> = Parallel::new()
        .n_jobs(2)
        .progress_bar(bar.clone())
        .map_iter(0..10u32, |x| x)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(taken.len(), 10);
    assert_eq!(bar.position(), 10);
}
