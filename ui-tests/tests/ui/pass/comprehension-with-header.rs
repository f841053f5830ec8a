use parjob::{BatchSize, Parallel, PreDispatch, Prefer, parallel};
use std::time::Duration;

fn main() -> Result<(), parjob::Error> {
    let caller = std::thread::current().id();
    // A backend and keys, for this call only.
    let ids = parallel!("sequential", n_jobs = 2; std::thread::current().id() for _ in 0..3)?;
    assert!(ids.iter().all(|&id| id == caller));

    // Keys only: the backend is inherited.
    assert_eq!(parallel!(n_jobs = 2; i * 2 for i in 0..4)?, [0, 2, 4, 6]);

    // Every per-call key, with literal values.
    let out = parallel!(
        "threading",
        n_jobs = -1,
        batch_size = 2,
        pre_dispatch = "2*n_jobs",
        timeout = 30,
        verbose = 0,
        prefer = "threads",
        require = "sharedmem",
        inner_max_num_threads = 1;
        i + 1 for i in 0..4
    )?;
    assert_eq!(out, [1, 2, 3, 4]);
    assert_eq!(
        parallel!(batch_size = "auto", pre_dispatch = 8, timeout = 2.5; i for i in 0..2)?,
        [0, 1]
    );

    // Values may be any expression of the right type, and the backend any `Into<BackendSpec>`.
    let n = 2;
    let backend = String::from("threading");
    let out = parallel!(
        backend, n_jobs = n, batch_size = BatchSize::Fixed(1), pre_dispatch = PreDispatch::from(4),
        timeout = Duration::from_secs(5), prefer = Prefer::Threads;
        i for i in 0..3
    )?;
    assert_eq!(out, [0, 1, 2]);

    // The same call without the macro, for comparison.
    assert_eq!(Parallel::new().n_jobs(2).map(0..3, |i| i)?, [0, 1, 2]);
    Ok(())
}
