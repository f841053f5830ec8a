//! The `mpi` backend: batches on the ranks of an MPI job (feature `mpi`).

use std::time::Duration;

use super::{Backend, Threading, Workers};
use crate::cluster::{self, driver};
use crate::error::Error;
use crate::job::{Job, PoolRequest};
use crate::n_jobs;

/// Runs tasks on the other ranks of an MPI job: for work bigger than one machine. See the
/// [`mpi`](crate::mpi) module for how a program becomes an MPI job (`#[parallel_backend("mpi")]`
/// on `main`, or [`mpi::run`](crate::mpi::run)) and what happens when something fails.
///
/// Tasks cross to ranks as they cross to `loky` workers, so the same ones can: bodies that
/// capture nothing, with serde inputs and results; other work of a call runs on threads of
/// rank 0, with one `tracing` warning per call. `n_jobs = -1` means every worker rank; a
/// larger `n_jobs` than there are worker ranks only queues more batches. Run alone (rank 0
/// of 1), every call runs on threads of this process.
///
/// # Examples
///
/// ```no_run
/// use parjob::parallel;
///
/// fn area(r: f64) -> f64 {
///     std::f64::consts::PI * r * r
/// }
///
/// #[parjob::parallel_backend("mpi")]
/// fn main() -> Result<(), parjob::Error> {
///     let areas = parallel!(area(r) for r in [1.0, 2.0, 3.0])?;
///     println!("{areas:?}");
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Mpi;

impl Mpi {
    /// The MPI backend.
    pub fn new() -> Self {
        Mpi
    }

    /// Worker ranks of the job: `None` before MPI is initialised, 0 when this is the only
    /// rank.
    fn worker_ranks() -> Option<usize> {
        cluster::world().map(|w| w.size.saturating_sub(1))
    }
}

impl Backend for Mpi {
    fn name(&self) -> &str {
        "mpi"
    }

    fn workers(&self) -> Workers {
        // Alone, the job is this process: its calls run on threads.
        if Self::worker_ranks() == Some(0) {
            Workers::Threads
        } else {
            Workers::Processes
        }
    }

    fn unavailable_here(&self) -> Option<String> {
        crate::process::fork::in_forked_child().then(|| {
            "its driver thread cannot run inside a forked child of `multiprocessing`".into()
        })
    }

    fn spawn(&self, request: PoolRequest, job: Job) {
        match job {
            Job::Remote(job) => {
                if let Err(job) = driver::submit(job) {
                    (*job).finish(Err(cluster::unavailable()));
                }
            }
            // Every call of a job of one rank runs on threads.
            other => Threading::new().spawn(request, other),
        }
    }

    fn effective_n_jobs(&self, n_jobs: i32) -> Result<usize, Error> {
        match Self::worker_ranks() {
            None => Err(cluster::unavailable()),
            Some(0) => n_jobs::resolve(n_jobs),
            // At least 2: a worker count of 1 makes a call run on rank 0 itself, which
            // would leave a job's only worker rank idle. (An explicit `n_jobs = 1` still
            // runs there, as on every backend.)
            Some(ranks) => n_jobs::resolve_against(n_jobs, ranks, 2),
        }
    }

    fn abort(&self, _request: PoolRequest) {
        driver::abort();
    }

    fn ideal_batch_duration(&self) -> Duration {
        // A round trip to a rank costs tens of microseconds on one host, more across a
        // network: 10 ms batches amortise it and keep the tail short.
        Duration::from_millis(10)
    }
}
