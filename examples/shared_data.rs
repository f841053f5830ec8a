//! A cross-validated grid search over one data set, the way scikit-learn users run it with
//! joblib: library code that makes plain parallel calls over the caller's data, and a
//! caller that picks threads or worker processes for all of them with one scope.
//!
//! The data set reaches worker processes once per call and worker (a captured slice), or
//! once per worker for every call (a `Shared` value), never once per task.
//!
//! Run it with `cargo run --release -p parjob-examples --example shared_data`.

use std::time::Instant;

use parjob::{Error, Shared, parallel, parallel_backend};

/// A toy model: predicts label 1 when feature 0 exceeds `threshold`.
fn accuracy(x: &[f64], y: &[u8], rows: std::ops::Range<usize>, threshold: f64) -> f64 {
    let hits = rows
        .clone()
        .filter(|&r| u8::from(x[r * FEATURES] > threshold) == y[r])
        .count();
    hits as f64 / rows.len() as f64
}

const FEATURES: usize = 8;
const FOLDS: usize = 5;

/// Library code: the mean accuracy of each threshold over `FOLDS` folds. It never names a
/// backend; `x`, `y` and `grid` are the body's captures.
fn cross_val_scores(x: &[f64], y: &[u8], grid: &[f64]) -> Result<Vec<f64>, Error> {
    let rows = y.len();
    let fold = rows / FOLDS;
    // One task per (threshold, fold): the data set is read by every task.
    let per_fold = parallel!(
        accuracy(x, y, (k % FOLDS) * fold..(k % FOLDS + 1) * fold, grid[k / FOLDS])
        for k in 0..grid.len() * FOLDS
    )?;
    Ok(mean_per_threshold(&per_fold))
}

/// The mean over the folds of each threshold's accuracies.
fn mean_per_threshold(per_fold: &[f64]) -> Vec<f64> {
    per_fold
        .chunks(FOLDS)
        .map(|c| c.iter().sum::<f64>() / FOLDS as f64)
        .collect()
}

/// The same search over a `Shared` data set: workers keep it across calls.
fn shared_scores(data: &Shared<(Vec<f64>, Vec<u8>)>, grid: &[f64]) -> Result<Vec<f64>, Error> {
    let rows = data.1.len();
    let fold = rows / FOLDS;
    let per_fold = parallel!(
        accuracy(&data.0, &data.1, (k % FOLDS) * fold..(k % FOLDS + 1) * fold, grid[k / FOLDS])
        for k in 0..grid.len() * FOLDS
    )?;
    Ok(mean_per_threshold(&per_fold))
}

fn main() -> Result<(), Error> {
    let rows = 200_000;
    let x: Vec<f64> = (0..rows * FEATURES)
        .map(|i| ((i * 7919) % 1000) as f64 / 1000.0)
        .collect();
    let y: Vec<u8> = (0..rows)
        .map(|r| u8::from(x[r * FEATURES] > 0.42))
        .collect();
    let grid: Vec<f64> = (0..16).map(|i| f64::from(i) / 16.0).collect();
    println!(
        "{rows} rows × {FEATURES} features ({} MiB), {} thresholds × {FOLDS} folds",
        (x.len() * 8) >> 20,
        grid.len()
    );

    let mut reference = None;
    for backend in ["threading", "loky", "multiprocessing"] {
        let started = Instant::now();
        let scores = parallel_backend(backend)
            .n_jobs(2)
            .run(|| cross_val_scores(&x, &y, &grid))??;
        let best = scores
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, s)| (grid[i], *s))
            .expect("a non-empty grid");
        println!(
            "{backend:>16}: best threshold {:.4} (accuracy {:.3}) in {:.0?}",
            best.0,
            best.1,
            started.elapsed()
        );
        // Every backend computes the same scores.
        assert_eq!(*reference.get_or_insert_with(|| scores.clone()), scores);
    }

    // Many calls over one data set: a `Shared` value is sent to each worker once.
    let data = Shared::new((x, y));
    let started = Instant::now();
    let _scope = parallel_backend("loky").n_jobs(2).enter()?;
    for _ in 0..5 {
        let scores = shared_scores(&data, &grid)?;
        assert_eq!(Some(&scores), reference.as_ref());
    }
    println!(
        "{:>16}: 5 searches over one Shared data set in {:.0?}",
        "loky",
        started.elapsed()
    );
    Ok(())
}
