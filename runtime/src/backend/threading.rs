//! The `threading` backend: rayon thread pools, one per worker count and nesting level.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::Backend;
use crate::job::{Job, PoolRequest};
use crate::sync::Recover;

/// Runs tasks on threads of this process, in rayon thread pools.
///
/// parjob keeps one pool per distinct worker count (and nesting level, so that a task that
/// makes a parallel call of its own never waits on the pool it occupies). A pool is created
/// at its first use and reused by every later call; a call with `n_jobs = k` runs exactly `k`
/// tasks at once, even when `k` exceeds the cpu count. Tasks only need to be `Send`, and may
/// borrow from the caller in [`Parallel::map`](crate::Parallel::map).
///
/// This is the default backend: Rust has no global interpreter lock, so threads give
/// parallel speed without copying data between processes.
///
/// # Examples
///
/// ```
/// use parjob::{backend::Threading, parallel_backend, Parallel};
///
/// let data = vec![1.0_f64, 2.0, 3.0];
/// let scaled = parallel_backend(Threading::new())
///     .n_jobs(2)
///     .run(|| Parallel::new().map(&data, |x| x * 10.0))??;
/// assert_eq!(scaled, [10.0, 20.0, 30.0]);
/// # Ok::<(), parjob::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Threading;

impl Threading {
    /// The threading backend.
    pub fn new() -> Self {
        Threading
    }
}

type PoolKey = (usize, usize);

type Pools = Mutex<HashMap<PoolKey, Arc<rayon::ThreadPool>>>;

fn pools() -> &'static Pools {
    static POOLS: OnceLock<Pools> = OnceLock::new();
    // A child forked by the `multiprocessing` backend has none of its parent's threads, so
    // the parent's pools would never run a job there (and their lock may be held): it
    // keeps pools of its own, in a map the parent never touched.
    #[cfg(unix)]
    if crate::process::fork::in_forked_child() {
        static FORKED: OnceLock<Pools> = OnceLock::new();
        return FORKED.get_or_init(Default::default);
    }
    POOLS.get_or_init(Default::default)
}

thread_local! {
    /// Whether this thread belongs to one of parjob's pools.
    static OWN_POOL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is a worker of a rayon pool that is not one of parjob's (rayon's
/// global pool, or one the program built). Never in a forked child: a child forked from a
/// pool's thread keeps that thread's rayon state, but none of the pool's other threads.
pub(crate) fn on_foreign_rayon_thread() -> bool {
    #[cfg(unix)]
    if crate::process::fork::in_forked_child() {
        return false;
    }
    rayon::current_thread_index().is_some() && !OWN_POOL.with(std::cell::Cell::get)
}

/// The pool of `request.workers` threads at `request.nesting_level`, started at its first
/// use; `None` if no thread could be started.
pub(crate) fn pool_for(request: PoolRequest) -> Option<Arc<rayon::ThreadPool>> {
    let key = (request.workers, request.nesting_level);
    let mut map = pools().lock().recover();
    if let Some(pool) = map.get(&key) {
        return Some(Arc::clone(pool));
    }
    let level = request.nesting_level;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(request.workers)
        .thread_name(move |i| format!("parjob-l{level}-{i}"))
        .start_handler(|_| OWN_POOL.with(|own| own.set(true)))
        // Jobs catch task panics themselves; this only keeps rayon from aborting the process
        // if a panic ever escaped one.
        .panic_handler(|_| {})
        .build();
    match pool {
        Ok(pool) => {
            let pool = Arc::new(pool);
            map.insert(key, Arc::clone(&pool));
            Some(pool)
        }
        Err(e) => {
            tracing::error!(
                "parjob: cannot start a thread pool of {}: {e}",
                request.workers
            );
            None
        }
    }
}

impl Backend for Threading {
    fn name(&self) -> &str {
        "threading"
    }

    fn spawn(&self, request: PoolRequest, job: Job) {
        // A call made inside a rayon pool of the program's runs on that pool (its waits
        // run the pool's work meanwhile: see the dispatcher).
        if on_foreign_rayon_thread() {
            return rayon::spawn(move || job.run());
        }
        match pool_for(request) {
            Some(pool) => pool.spawn(move || job.run()),
            // No thread could be started: dropping the job reports it to its call, which then
            // fails with a clear error instead of waiting forever.
            None => drop(job),
        }
    }

    fn abort(&self, request: PoolRequest) {
        // Threads cannot be stopped from outside. Threads still inside a task of the aborted
        // call keep their pool until they finish; later calls get a fresh pool, so they never
        // queue behind a task that may not end. The old threads exit once they are idle.
        let key = (request.workers, request.nesting_level);
        pools().lock().recover().remove(&key);
    }
}
