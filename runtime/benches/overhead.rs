//! Per-call and per-task overheads of parjob, as criterion micro-benchmarks.
//!
//! `cargo bench -p parjob --bench overhead` runs them; CI only compiles them
//! (`cargo bench --workspace --no-run`): timings belong in benchmarks, never in tests. The
//! side-by-side comparison with rayon and joblib is `cargo run --release -p parjob-bench`
//! (see `docs/PERFORMANCE.md`).
//!
//! - `call/*`: one call with 2 empty tasks: what a program that makes many small parallel
//!   calls pays per call (workload W5 of the benchmark).
//! - `tasks/*`: one call with 1,000 tiny tasks: what each task costs once batching has
//!   amortised the call (workload W1 at a smaller size).
//! - `inline/*`: `Parallel::map` with `n_jobs = 1`, a plain loop on the calling thread,
//!   against the loop itself.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parjob::{Delayed, Parallel};

fn noop(x: u64) -> u64 {
    x
}

fn per_call(c: &mut Criterion) {
    let mut g = c.benchmark_group("call");
    g.throughput(Throughput::Elements(1));
    for backend in ["sequential", "threading"] {
        let p = Parallel::new().backend(backend).n_jobs(2);
        g.bench_function(format!("{backend}/2 tasks (run)"), |b| {
            b.iter(|| p.run((0..2u64).map(|i| move || noop(black_box(i)))))
        });
        g.bench_function(format!("{backend}/2 tasks (map)"), |b| {
            b.iter(|| p.map(0..2u64, |i| noop(black_box(i))))
        });
    }
    // Workers are this bench binary started again; the first call starts them.
    let loky = Parallel::new().backend("loky").n_jobs(2);
    g.bench_function("loky/2 tasks (Delayed::remote)", |b| {
        b.iter(|| loky.run((0..2u64).map(|i| Delayed::remote(noop, black_box(i)))))
    });
    g.finish();
}

fn per_task(c: &mut Criterion) {
    const TASKS: u64 = 1_000;
    let mut g = c.benchmark_group("tasks");
    g.throughput(Throughput::Elements(TASKS));
    let threading = Parallel::new().backend("threading").n_jobs(2);
    g.bench_function("threading/map 1000", |b| {
        b.iter(|| threading.map(0..TASKS, |i| noop(black_box(i))))
    });
    g.bench_function("threading/run 1000 closures", |b| {
        b.iter(|| threading.run((0..TASKS).map(|i| move || noop(black_box(i)))))
    });
    g.bench_function("threading/map 1000, batch_size 1", |b| {
        let p = threading.clone().batch_size(1);
        b.iter(|| p.map(0..TASKS, |i| noop(black_box(i))))
    });
    let loky = Parallel::new().backend("loky").n_jobs(2);
    g.bench_function("loky/run 1000 Delayed::remote", |b| {
        b.iter(|| loky.run((0..TASKS).map(|i| Delayed::remote(noop, black_box(i)))))
    });
    g.finish();
}

fn inline(c: &mut Criterion) {
    const TASKS: u64 = 1_000;
    let mut g = c.benchmark_group("inline");
    g.throughput(Throughput::Elements(TASKS));
    g.bench_function("plain loop", |b| {
        b.iter(|| (0..TASKS).map(|i| noop(black_box(i))).collect::<Vec<_>>())
    });
    let one = Parallel::new().n_jobs(1);
    g.bench_function("Parallel::map n_jobs=1", |b| {
        b.iter(|| one.map(0..TASKS, |i| noop(black_box(i))))
    });
    g.finish();
}

criterion_group!(benches, per_call, per_task, inline);
criterion_main!(benches);
