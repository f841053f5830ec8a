//! Rank 0's side: one thread that owns every MPI call of this process, hands batches to
//! idle ranks and routes what comes back to the calls waiting for it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use ::mpi::point_to_point::MatchedReceiveVec;
use ::mpi::topology::{Process, SimpleCommunicator};
use ::mpi::traits::{Communicator, Destination, Source};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use super::{World, tag, wire};
use crate::job::{RemoteJob, RemoteReply};
use crate::remote::{Attachment, Held, Tell};
use crate::sync::Recover;

pub(super) enum Command {
    Submit(RemoteJob),
    /// A call gave up: drop its batches, queued or running.
    Abort,
    Stop,
}

static DRIVER: Mutex<Option<(Sender<Command>, JoinHandle<()>)>> = Mutex::new(None);

pub(super) fn start(world: World) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let handle = std::thread::Builder::new()
        .name("parjob-mpi".into())
        .spawn(move || drive(world, &rx));
    match handle {
        Ok(handle) => *DRIVER.lock().recover() = Some((tx, handle)),
        Err(e) => tracing::error!("parjob: cannot start the MPI driver thread: {e}"),
    }
}

/// Ends the session: the driver waits for the batches still running, then tells every rank
/// to exit.
pub(super) fn stop() {
    let driver = DRIVER.lock().recover().take();
    if let Some((tx, handle)) = driver {
        let _ = tx.send(Command::Stop);
        let _ = handle.join();
    }
}

/// Hands `job` to the driver; gives it back when there is none (no MPI job, or it ended).
pub(crate) fn submit(job: RemoteJob) -> Result<(), Box<RemoteJob>> {
    let driver = DRIVER.lock().recover();
    match &*driver {
        Some((tx, _)) => tx.send(Command::Submit(job)).map_err(|e| match e.0 {
            Command::Submit(job) => Box::new(job),
            _ => unreachable!("the command sent was a submission"),
        }),
        None => Err(Box::new(job)),
    }
}

pub(crate) fn abort() {
    if let Some((tx, _)) = &*DRIVER.lock().recover() {
        let _ = tx.send(Command::Abort);
    }
}

/// A batch running on a rank. `reply` is `None` once its call gave up: the outcome is
/// then read and dropped, and the rank is free again.
struct Running {
    id: u64,
    reply: Option<RemoteReply>,
}

/// Sends attachment `a` to `rank`: as the place of its memory file if the rank can map it
/// (one file for every such rank), else as a message of its own, sent from where the bytes
/// lie.
fn send_attachment(target: &Process<'_>, rank: i32, a: &Attachment) {
    if a.bytes().len() >= crate::remote::memfile::MIN_FILE
        && usize::try_from(rank).is_ok_and(super::maps_files)
        && let Some(file) = crate::remote::attach::shared_file(a)
    {
        let message =
            wire::attach_file_message(a.id(), std::process::id(), file.raw_fd(), file.len());
        target.send_with_tag(&message[..], tag::ATTACH_FILE);
        return;
    }
    target.send_with_tag(&wire::attach_id_message(a)[..], tag::ATTACH_ID);
    target.send_with_tag(a.bytes(), tag::ATTACH);
}

/// Polls without sleeping this many times after the last event: a task that takes tens of
/// microseconds comes back while the driver still looks.
const SPIN: u32 = 200;

/// The longest the driver sleeps between two looks while batches run.
const MAX_NAP: Duration = Duration::from_millis(1);

fn nap(quiet: u32) -> Duration {
    let exp = quiet.saturating_sub(SPIN).min(10);
    Duration::from_micros(1u64 << exp).min(MAX_NAP)
}

fn drive(world: World, rx: &Receiver<Command>) {
    let comm = SimpleCommunicator::world();
    let size = i32::try_from(world.size).unwrap_or(i32::MAX);
    let mut driver = Driver {
        idle: (1..size).collect(),
        queue: VecDeque::new(),
        running: HashMap::new(),
        held: HashMap::new(),
        next_id: 0,
        stopping: false,
    };
    let mut quiet = 0u32;
    loop {
        // Nothing running and nothing queued: only a command can change that. Otherwise
        // look at MPI between commands, sleeping longer the longer nothing happens.
        let command = if driver.running.is_empty() && driver.queue.is_empty() {
            if driver.stopping {
                break;
            }
            Some(rx.recv().unwrap_or(Command::Stop))
        } else if quiet < SPIN {
            match rx.try_recv() {
                Ok(c) => Some(c),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => Some(Command::Stop),
            }
        } else {
            match rx.recv_timeout(nap(quiet)) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Command::Stop),
            }
        };
        let mut progressed = command.is_some();
        if let Some(command) = command {
            driver.obey(command);
        }
        progressed |= driver.hand_out(&comm);
        progressed |= driver.collect(&comm);
        quiet = if progressed {
            0
        } else {
            quiet.saturating_add(1)
        };
    }
    for rank in 1..size {
        comm.process_at_rank(rank)
            .send_with_tag(&[0u8][..], tag::SHUTDOWN);
    }
}

/// The driver's view of the job: which ranks are idle, the batches waiting for one, and
/// what each busy rank runs.
struct Driver {
    idle: VecDeque<i32>,
    queue: VecDeque<RemoteJob>,
    running: HashMap<i32, Running>,
    /// What each rank holds of the caller's `Shared` values.
    held: HashMap<i32, Held>,
    next_id: u64,
    stopping: bool,
}

impl Driver {
    fn obey(&mut self, command: Command) {
        match command {
            Command::Submit(job) => self.queue.push_back(job),
            Command::Abort => {
                self.queue.retain(|job| !job.is_abandoned());
                for r in self.running.values_mut() {
                    if r.reply.as_ref().is_some_and(RemoteReply::is_abandoned) {
                        // Dropped unfinished: the call reads it as lost (it is failing).
                        r.reply = None;
                    }
                }
            }
            // Batches still running are waited for (a rank busy sending its outcome would
            // otherwise never see the shutdown); queued ones belong to calls that are gone.
            Command::Stop => self.stopping = true,
        }
        if self.stopping {
            self.queue.clear();
        }
    }

    /// Hands queued batches to idle ranks; whether it sent any.
    fn hand_out(&mut self, comm: &SimpleCommunicator) -> bool {
        let mut sent = false;
        while !self.idle.is_empty() {
            let Some(job) = self.queue.pop_front() else {
                break;
            };
            if job.is_abandoned() {
                continue;
            }
            // The rank that became idle last: it is still polling without sleeping.
            let rank = self.idle.pop_back().unwrap_or(1);
            let id = self.next_id;
            self.next_id += 1;
            let inner_threads = job.inner_threads();
            let (batch, reply) = job.into_parts();
            let (batch, attachments) = batch.without_attachments();
            let target = comm.process_at_rank(rank);
            let held = self.held.entry(rank).or_default();
            let _ = held.sync(&attachments, |step| {
                match step {
                    Tell::Forget(ids) => {
                        target.send_with_tag(&wire::forget_message(ids)[..], tag::FORGET);
                        // Files of attachments nobody holds any more close now.
                        crate::remote::attach::prune_files();
                    }
                    Tell::Keep(a) => send_attachment(&target, rank, a),
                }
                Ok::<(), ()>(())
            });
            let message = wire::batch_message(id, &batch, &reply, inner_threads);
            target.send_with_tag(&message[..], tag::BATCH);
            self.running.insert(
                rank,
                Running {
                    id,
                    reply: Some(reply),
                },
            );
            sent = true;
        }
        sent
    }

    /// Takes everything the ranks sent; whether there was anything.
    fn collect(&mut self, comm: &SimpleCommunicator) -> bool {
        let mut received = false;
        while let Some(probed) = comm.any_process().immediate_matched_probe() {
            received = true;
            let (mut bytes, status) = probed.matched_receive_vec::<u8>();
            let rank = status.source_rank();
            match status.tag() {
                tag::STARTED => {
                    if let (Some((id, task)), Some(r)) =
                        (wire::started(&bytes), self.running.get(&rank))
                        && r.id == id
                        && let Some(reply) = &r.reply
                    {
                        reply.task_started(task);
                    }
                }
                tag::DONE => {
                    let id = wire::take_id(&mut bytes);
                    if self.running.get(&rank).is_some_and(|r| Some(r.id) == id) {
                        let r = self.running.remove(&rank).map(|r| r.reply);
                        self.idle.push_back(rank);
                        if let Some(Some(reply)) = r {
                            reply.finish(Ok(bytes));
                        }
                    }
                }
                other => {
                    tracing::warn!("parjob: unexpected MPI message (tag {other}) from rank {rank}")
                }
            }
        }
        received
    }
}
