//! Work in worker processes with the `loky` backend: tasks run in other processes of this
//! same program, a crash in one is an error rather than the end of the program, and the
//! workers are reused by the next call. Then the legacy `multiprocessing` backend, whose
//! forked children see the caller's data without serialising it.
//!
//! Run it with `cargo run -p parjob-examples --example processes`.

use parjob::{Delayed, Error, Parallel, delayed, parallel, parallel_backend};

fn collatz_steps(mut n: u64) -> u32 {
    let mut steps = 0;
    while n != 1 {
        n = if n.is_multiple_of(2) {
            n / 2
        } else {
            3 * n + 1
        };
        steps += 1;
    }
    steps
}

fn worker_pid(_: u32) -> u32 {
    std::process::id()
}

fn crash_on(x: u32) -> u32 {
    if x == 3 {
        std::process::abort();
    }
    x
}

// Every header-less `parallel!` in here runs on loky; the compiler checks that its body can
// travel (captures nothing, serde types).
#[parallel_backend("loky", n_jobs = 2)]
fn longest_chains(limit: u64) -> Result<Vec<u32>, Error> {
    parallel!(collatz_steps(n) for n in 1..=limit)
}

fn main() -> Result<(), Error> {
    println!("parent pid {}", std::process::id());
    let pids = parallel!("loky", n_jobs = 2; worker_pid(i) for i in 0..8)?;
    println!("tasks ran in worker pids {pids:?}");

    let steps = longest_chains(100_000)?;
    let (n, most) = steps
        .iter()
        .enumerate()
        .max_by_key(|(_, s)| **s)
        .map(|(i, s)| (i + 1, *s))
        .unwrap_or_default();
    println!("below 100,000, {n} takes the most Collatz steps: {most}");

    // A task that crashes its worker fails the call, not the program.
    let crashed = Parallel::new()
        .backend("loky")
        .n_jobs(2)
        .run((0..5).map(|i| Delayed::remote(crash_on, i)));
    println!("a crashing task: {}", crashed.unwrap_err());

    // The pool healed. A body that uses the caller's variables takes them along: they reach
    // each worker once per call.
    let scale = 10;
    let scaled = parallel_backend("loky")
        .n_jobs(2)
        .run(|| parallel!((x * scale, worker_pid(x)) for x in 0..4))??;
    println!("captured data, in workers: {scaled:?}");
    let again = Parallel::new()
        .backend("loky")
        .n_jobs(2)
        .run((0..4).map(|i| delayed!(worker_pid(i))))?;
    println!("the next call runs in workers {again:?}");

    // multiprocessing: a child is forked per batch, so the body may capture (here a table
    // built by the parent); only the results travel back.
    let table: Vec<u64> = (1..=1_000).map(|n| n * n).collect();
    let sums = parallel!("multiprocessing", n_jobs = 2;
        (table[..k].iter().sum::<u64>(), std::process::id()) for k in [10, 100, 1_000])?;
    for (k, (sum, pid)) in [10, 100, 1_000].iter().zip(&sums) {
        println!("sum of the first {k} squares: {sum} (forked child {pid})");
    }
    Ok(())
}
