//! The MPI engine under the `mpi` backend: rank 0's driver thread ([`driver`]), the worker
//! ranks' loop ([`worker`]) and the messages between them ([`wire`]). The public entry
//! points (`parjob::mpi`) sit on top of it; they are documented there.

pub(crate) mod driver;
mod wire;
mod worker;

use std::sync::{Mutex, OnceLock};

use ::mpi::environment::Universe;
use ::mpi::traits::Communicator;

use crate::error::Error;
use crate::job::WorkerScope;
use crate::sync::Recover;

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
    /// Rank 0 to a worker rank: keep an attachment (a `Shared` value, a call's captures),
    /// whose bytes are the message; its id came just before, tagged `ATTACH_ID`.
    pub(super) const ATTACH: i32 = 0x7061_0005;
    /// Rank 0 to a worker rank: forget attachments.
    pub(super) const FORGET: i32 = 0x7061_0006;
    /// Rank 0 to a worker rank: the id of the attachment that follows (sent apart, so that
    /// the attachment goes from where its bytes lie, without a copy).
    pub(super) const ATTACH_ID: i32 = 0x7061_0007;
    /// Rank 0 to a worker rank on its host: keep an attachment that lies in a memory file
    /// of rank 0's, which the rank maps (see `wire::attach_file_message`).
    pub(super) const ATTACH_FILE: i32 = 0x7061_0008;
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

/// Initialises MPI. Returns on rank 0, with the driver started; every other rank serves
/// batches (each inside the scope `worker_scope` installs) until rank 0 ends its session,
/// then exits the process with status 0.
///
/// # Errors
///
/// [`Error::InvalidConfig`] when MPI was already initialised, or cannot give the thread
/// support parjob needs (`MPI_THREAD_SERIALIZED`).
pub(crate) fn init(worker_scope: WorkerScope) -> Result<(), Error> {
    let mut slot = UNIVERSE.lock().recover();
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
    let mappable = mappable_ranks(&comm);
    if rank == 0 {
        let _ = MAPPABLE.set(mappable);
    }
    let world = World {
        rank,
        size,
        local_size,
    };
    let _ = WORLD.set(world);
    if rank != 0 {
        drop(slot);
        worker::serve(world, worker_scope);
        // Finalise, then leave without running the rest of `main`.
        drop(universe);
        std::process::exit(0);
    }
    *slot = Some(universe);
    if size > 1 {
        driver::start(world);
    }
    Ok(())
}

/// On rank 0: which ranks can map rank 0's memory files (see [`mappable_ranks`]).
static MAPPABLE: OnceLock<Vec<bool>> = OnceLock::new();

/// Whether `rank` can map rank 0's memory files, so that large attachments reach it as one
/// (written once for all such ranks) instead of as a message of their own.
pub(super) fn maps_files(rank: usize) -> bool {
    MAPPABLE
        .get()
        .and_then(|m| m.get(rank).copied())
        .unwrap_or(false)
}

/// Finds, with every rank taking part, which ranks can open a memory file of rank 0's
/// (those on its host, in its pid namespace on Linux, with its temporary directory
/// elsewhere): rank 0 makes a small one
/// and tells everyone where it is, each rank looks, and rank 0 gathers the answers. Empty
/// on the other ranks.
fn mappable_ranks(comm: &::mpi::topology::SimpleCommunicator) -> Vec<bool> {
    use ::mpi::traits::Root;
    let root = comm.process_at_rank(0);
    let is_root = comm.rank() == 0;
    // Where the file is: pid, descriptor, device and inode (all zero when there is none).
    let mut place = [0u64; 4];
    let probe = is_root
        .then(|| crate::remote::memfile::MemFile::write([&b"parjob"[..]]).ok())
        .flatten();
    if let Some(file) = &probe
        && let Ok((dev, ino)) = file.identity()
    {
        place = [
            u64::from(std::process::id()),
            u64::try_from(file.raw_fd()).unwrap_or(0),
            dev,
            ino,
        ];
    }
    root.broadcast_into(&mut place[..]);
    let reaches = place[0] != 0
        && crate::remote::memfile::reaches(
            u32::try_from(place[0]).unwrap_or(0),
            i32::try_from(place[1]).unwrap_or(-1),
            (place[2], place[3]),
        );
    let answer = u8::from(reaches);
    if is_root {
        let mut answers = vec![0u8; usize::try_from(comm.size()).unwrap_or(1)];
        root.gather_into_root(&answer, &mut answers[..]);
        answers.into_iter().map(|a| a == 1).collect()
    } else {
        root.gather_into(&answer);
        Vec::new()
    }
}

/// Ends rank 0's session: the other ranks are told to exit, and MPI is finalised.
pub(crate) fn finish() {
    driver::stop();
    let universe = UNIVERSE.lock().recover().take();
    drop(universe);
}

/// Why [`init`] failed, for the errors of the calls that then find no MPI.
static INIT_ERROR: OnceLock<String> = OnceLock::new();

/// Remembers why MPI could not start, for [`unavailable`].
pub(crate) fn record_init_error(why: String) {
    let _ = INIT_ERROR.set(why);
}

/// Why the `mpi` backend cannot run here.
pub(crate) fn unavailable() -> Error {
    match INIT_ERROR.get() {
        Some(why) => Error::config(format!("the `mpi` backend has no MPI job: {why}")),
        None => Error::config(
            "the `mpi` backend needs MPI initialised first: put `#[parallel_backend(\"mpi\")]` on `main`, or call `parjob::mpi::run`",
        ),
    }
}
