//! The side of ranks 1 to N-1: wait for batches from rank 0, run them, send the outcomes
//! back, until told to stop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::mpi::point_to_point::MatchedReceiveVec;
use ::mpi::topology::SimpleCommunicator;
use ::mpi::traits::{Communicator, Destination, Source};

use super::{World, tag, wire};
use crate::job::WorkerScope;
use crate::n_jobs;

/// The batch running now, for task-start messages.
static CURRENT_BATCH: AtomicU64 = AtomicU64::new(0);

/// Polls without sleeping this many times after the last message.
const SPIN: u32 = 2000;

/// The longest a rank sleeps between two looks for work.
const MAX_NAP: Duration = Duration::from_millis(1);

pub(super) fn serve(world: World, worker_scope: WorkerScope) {
    let comm = SimpleCommunicator::world();
    let root = comm.process_at_rank(0);
    let default_inner = n_jobs::default_inner_threads(world.local_size);
    let mut quiet = 0u32;
    // The id of the attachment whose bytes come next (messages from one rank arrive in
    // the order they were sent).
    let mut attaching: Option<u64> = None;
    loop {
        let Some(probed) = root.immediate_matched_probe() else {
            quiet = quiet.saturating_add(1);
            if quiet > SPIN {
                let exp = (quiet - SPIN).min(10);
                std::thread::sleep(Duration::from_micros(1u64 << exp).min(MAX_NAP));
            }
            continue;
        };
        quiet = 0;
        let (bytes, status) = probed.matched_receive_vec::<u8>();
        match status.tag() {
            tag::SHUTDOWN => return,
            tag::BATCH => {
                let Some(received) = wire::parse_batch(bytes) else {
                    tracing::error!("parjob: rank {} received a malformed batch", world.rank);
                    continue;
                };
                let inner = received.inner_threads.unwrap_or(default_inner);
                let _scope = worker_scope(inner);
                CURRENT_BATCH.store(received.id, Ordering::Relaxed);
                let on_start = received.report_starts.then_some(report_start as fn(usize));
                // SAFETY: batches come only from rank 0 of this MPI job, which runs the same
                // executable (what `mpirun` starts); `execute` also compares the binary's
                // fingerprint and refuses a batch from another build.
                let outcome = unsafe { received.batch.execute_reporting(None, on_start) };
                let message = wire::done_message(outcome, received.id);
                root.send_with_tag(&message[..], tag::DONE);
            }
            tag::ATTACH_ID => attaching = wire::attach_id(&bytes),
            tag::ATTACH_FILE => attach_file(&bytes, world.rank),
            tag::ATTACH => match attaching.take() {
                Some(id) => crate::remote::attach::keep(id, std::sync::Arc::new(bytes)),
                None => tracing::error!(
                    "parjob: rank {} received an attachment without its id",
                    world.rank
                ),
            },
            tag::FORGET => crate::remote::attach::forget(&wire::forgotten(&bytes)),
            other => tracing::warn!(
                "parjob: rank {} ignores an MPI message with tag {other}",
                world.rank
            ),
        }
    }
}

/// Maps the memory file an `ATTACH_FILE` message names and keeps the attachment in it.
fn attach_file(message: &[u8], rank: usize) {
    let Some((id, pid, fd, len)) = wire::attached_file(message) else {
        return tracing::error!("parjob: rank {rank} received a malformed attachment");
    };
    match crate::remote::memfile::Mapping::open(pid, fd, len) {
        Ok(mapping) => crate::remote::attach::keep_mapping(id, mapping),
        // The batch that needs it fails, saying it was not sent.
        Err(e) => tracing::error!("parjob: rank {rank} cannot map attachment {id}: {e}"),
    }
}

fn report_start(task: usize) {
    let message = wire::started_message(CURRENT_BATCH.load(Ordering::Relaxed), task);
    SimpleCommunicator::world()
        .process_at_rank(0)
        .send_with_tag(&message[..], tag::STARTED);
}
