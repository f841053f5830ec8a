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

pub(crate) mod driver;
mod wire;
mod worker;

use std::sync::{Mutex, OnceLock};

use ::mpi::environment::Universe;
use ::mpi::traits::Communicator;

use crate::Error;
use crate::scope::{BackendGuard, BackendScope};

/// Message tags of parjob's traffic on `MPI_COMM_WORLD`.
mod tag {
    /// Rank 0 to a worker rank: a batch.
    pub(super) const BATCH: i32 = 0x7061_0001;
    /// A worker rank to rank 0: a task of its batch started (per-task timeouts).
    pub(super) const STARTED: i32 = 0x7061_0002;
    /// A worker rank to rank 0: the outcome of its batch.
    pub(super) const DONE: i32 = 0x7061_0003;
    /// Rank 0 to a worker rank: no more work, finalise and exit.
    pub(super) const SHUTDOWN: i32 = 0x7061_0004;
}

/// What this process knows about the MPI job, once initialised.
#[derive(Debug, Clone, Copy)]
pub(crate) struct World {
    pub(crate) rank: usize,
    pub(crate) size: usize,
    /// Ranks on this host, this one included.
    pub(crate) local_size: usize,
}

static WORLD: OnceLock<World> = OnceLock::new();

/// The universe, kept until rank 0's session ends (dropping it finalises MPI).
static UNIVERSE: Mutex<Option<Universe>> = Mutex::new(None);

/// The MPI job this process belongs to, if MPI was initialised by parjob.
pub(crate) fn world() -> Option<World> {
    WORLD.get().copied()
}

/// This process's rank, once MPI is initialised ([`run`] or `#[parallel_backend("mpi")]`).
pub fn rank() -> Option<usize> {
    world().map(|w| w.rank)
}

/// The number of ranks in the job, rank 0 included, once MPI is initialised.
pub fn size() -> Option<usize> {
    world().map(|w| w.size)
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
    let mut slot = UNIVERSE.lock().unwrap_or_else(|e| e.into_inner());
    if WORLD.get().is_some() {
        return Err(Error::config(
            "MPI was already initialised by parjob: one session per process",
        ));
    }
    let Some((universe, threading)) = ::mpi::initialize_with_threading(::mpi::Threading::Multiple)
    else {
        return Err(Error::config(
            "MPI was already initialised (by something other than parjob)",
        ));
    };
    if threading < ::mpi::Threading::Serialized {
        return Err(Error::config(format!(
            "the MPI library gives thread support {threading:?}; parjob needs at least Serialized"
        )));
    }
    let comm = universe.world();
    let rank = usize::try_from(comm.rank()).unwrap_or(0);
    let size = usize::try_from(comm.size()).unwrap_or(1);
    let local_size = usize::try_from(comm.split_shared(0).size()).unwrap_or(1);
    let world = World {
        rank,
        size,
        local_size,
    };
    let _ = WORLD.set(world);
    if rank != 0 {
        drop(slot);
        worker::serve(world);
        // Finalise, then leave without running the rest of `main`.
        drop(universe);
        std::process::exit(0);
    }
    *slot = Some(universe);
    if size > 1 {
        driver::start(world);
    }
    Ok(Session { _private: () })
}

impl Drop for Session {
    fn drop(&mut self) {
        driver::stop();
        let universe = UNIVERSE.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(universe);
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
        let _scope = crate::scope::parallel_backend("mpi")
            .n_jobs(-1)
            .enter_or_poison();
        f()
    };
    drop(session);
    Ok(result)
}

/// Why [`init`] failed, for the errors of the calls that then find no MPI.
static INIT_ERROR: OnceLock<String> = OnceLock::new();

/// Why the `mpi` backend cannot run here.
pub(crate) fn unavailable() -> Error {
    match INIT_ERROR.get() {
        Some(why) => Error::config(format!("the `mpi` backend has no MPI job: {why}")),
        None => Error::config(
            "the `mpi` backend needs MPI initialised first: put `#[parallel_backend(\"mpi\")]` on `main`, or call `parjob::mpi::run`",
        ),
    }
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
            let _ = INIT_ERROR.set(e.to_string());
            None
        }
    };
    MainGuard {
        _scope: scope.enter_or_poison(),
        _session: session,
    }
}
