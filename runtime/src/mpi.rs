//! Running on a cluster: the ranks of an MPI job as workers (feature `mpi`).
//!
//! The program is started by `mpirun` (or Slurm's `srun`) as N identical processes, the
//! ranks. Rank 0 runs `main`'s body with the [`Mpi`](crate::backend::Mpi) backend active;
//! ranks 1 to N-1 never run it: they serve batches of tasks until rank 0 is done, then
//! exit with status 0. A batch crosses to a rank as it crosses to a `loky` worker (an
//! entry function's id and the encoding of its inputs), so the same tasks run on
//! both: comprehensions whose body captures nothing and `delayed!` calls, with inputs and
//! results that implement serde's traits. The binary must be the same on every host.
//!
//! Two ways in: `#[parallel_backend("mpi")]` on `main`, or [`run`]:
//!
//! ```no_run
//! use parjob::parallel;
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn main() -> Result<(), parjob::Error> {
//!     parjob::mpi::run(|| {
//!         let squares = parallel!(square(x) for x in 0..100u64)?;
//!         println!("{}", squares.iter().sum::<u64>());
//!         Ok(())
//!     })
//! }
//! ```
//!
//! Started without `mpirun`, the program is rank 0 of 1: calls run on threads of this
//! process, with the same results.
//!
//! # Scheduling
//!
//! Rank 0 hands a batch to a rank when the rank is idle (one batch per rank at a time), so
//! fast ranks take more batches than slow ones. Batches are sized automatically (aiming at
//! about 10 ms each) unless `batch_size` says otherwise; results come back in input order.
//! `n_jobs = -1` (what `#[parallel_backend("mpi")]` sets) uses every worker rank. Nested
//! calls inside a task use threads: `cpu_count / (ranks on that host)` of them unless
//! `inner_max_num_threads` says otherwise.
//!
//! # Failures
//!
//! A task that panics fails the call with [`Error::TaskPanicked`]
//! and its message, and the rank goes on serving. A rank cannot be interrupted: after a
//! failure or a per-task timeout the call returns at once, but a rank still inside one of
//! its tasks stays busy until the task ends (later calls use the other ranks meanwhile). A
//! rank that dies (a signal, `abort`, `exit`) makes MPI end the whole job, as MPI's default
//! error handling does: `mpirun` kills every rank and reports which one failed, so nothing
//! hangs, but rank 0 gets no error value to handle.

use crate::cluster;
use crate::error::Error;
use crate::n_jobs;
use crate::scope::{self, BackendGuard, BackendScope};

/// This process's rank, once MPI is initialised ([`run`] or `#[parallel_backend("mpi")]`).
pub fn rank() -> Option<usize> {
    cluster::world().map(|w| w.rank)
}

/// The number of ranks in the job, rank 0 included, once MPI is initialised.
pub fn size() -> Option<usize> {
    cluster::world().map(|w| w.size)
}

/// Rank 0's hold on the MPI job: while it lives, the other ranks serve tasks. Dropping it
/// tells them to exit and finalises MPI.
///
/// Made by [`init`]; [`run`] and `#[parallel_backend("mpi")]` manage one for you.
#[derive(Debug)]
pub struct Session {
    _private: (),
}

/// Initialises MPI. On rank 0 it returns the [`Session`]; on every other rank it serves
/// tasks until rank 0's session ends, then exits the process with status 0, and never
/// returns.
///
/// # Errors
///
/// [`Error::InvalidConfig`] when MPI was already initialised, or cannot give the thread
/// support parjob needs (`MPI_THREAD_SERIALIZED`).
pub fn init() -> Result<Session, Error> {
    cluster::init(scope::worker_scope)?;
    Ok(Session { _private: () })
}

impl Drop for Session {
    fn drop(&mut self) {
        cluster::finish();
    }
}

/// Runs `f` on rank 0 with the `mpi` backend active (`n_jobs = -1`: every worker rank),
/// while the other ranks serve its tasks; they exit with status 0 once `f` returns, without
/// running the rest of `main`. Returns what `f` returns, on rank 0.
///
/// # Errors
///
/// When MPI cannot be initialised (see [`init`]); `f` does not run then.
pub fn run<R>(f: impl FnOnce() -> R) -> Result<R, Error> {
    let session = init()?;
    let result = {
        let _scope = scope::parallel_backend("mpi")
            .n_jobs(n_jobs::ALL_CPUS)
            .enter_or_poison();
        f()
    };
    drop(session);
    Ok(result)
}

/// What `#[parallel_backend("mpi")] fn main` holds: the scope, then the session (dropped in
/// that order).
#[derive(Debug)]
pub struct MainGuard {
    _scope: BackendGuard,
    _session: Option<Session>,
}

/// `#[parallel_backend("mpi")]` on `main`: initialises MPI (other ranks serve and exit
/// here), then enters `scope` on rank 0. If MPI cannot start, every call in `main` returns
/// an error that says why.
pub(crate) fn main_entry(scope: BackendScope) -> MainGuard {
    let session = match init() {
        Ok(session) => Some(session),
        Err(e) => {
            cluster::record_init_error(e.to_string());
            None
        }
    };
    MainGuard {
        _scope: scope.enter_or_poison(),
        _session: session,
    }
}
