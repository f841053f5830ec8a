//! A backend of your own: implement `Backend` (a name, and how to run the jobs it is
//! handed), register it under a name, and every `Parallel` call inside its scope uses it,
//! library code included, as with a built-in backend.
//!
//! This one runs each batch on a thread of its own and counts the batches, which is what a
//! scheduler, a tracer or a test double would build on.
//!
//! Run with `cargo run -p parjob-examples --example custom_backend`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parjob::{
    Backend, Job, Parallel, PoolRequest, get_active_backend, parallel_backend,
    register_parallel_backend,
};

/// Runs every batch on a fresh thread, and counts them.
#[derive(Clone, Default)]
struct Counting {
    batches: Arc<AtomicUsize>,
}

impl Backend for Counting {
    fn name(&self) -> &str {
        "counting"
    }

    fn spawn(&self, _request: PoolRequest, job: Job) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        // `Job::run` runs any job on the current thread; it never panics (task panics are
        // caught inside). A job that is dropped instead is reported by its call as lost.
        std::thread::spawn(move || job.run());
    }
}

/// Library code: no backend argument.
fn sum_of_squares(n: u64) -> Result<u64, parjob::Error> {
    Ok(Parallel::new().map(0..n, |x| x * x)?.iter().sum())
}

fn main() -> Result<(), parjob::Error> {
    let counting = Counting::default();
    let batches = Arc::clone(&counting.batches);

    // Used directly, as an instance.
    let sum = parallel_backend(counting.clone())
        .n_jobs(2)
        .run(|| sum_of_squares(1_000))??;
    assert_eq!(sum, (0..1_000u64).map(|x| x * x).sum::<u64>());
    println!("{} batches on `counting`", batches.load(Ordering::Relaxed));
    assert!(batches.load(Ordering::Relaxed) > 0);

    // Registered under a name, like joblib's `register_parallel_backend`: then a name is
    // enough, in a scope, a call or `PARJOB_BACKEND`.
    let factory = counting.clone();
    register_parallel_backend("counting", move || factory.clone(), false)?;
    let before = batches.load(Ordering::Relaxed);
    let name = parallel_backend(parjob::registered("counting"))
        .n_jobs(2)
        .run(|| {
            sum_of_squares(100)?;
            Ok::<_, parjob::Error>(get_active_backend().name().to_owned())
        })??;
    assert_eq!(name, "counting");
    assert!(batches.load(Ordering::Relaxed) > before);
    println!("{} batches in all", batches.load(Ordering::Relaxed));
    Ok(())
}
