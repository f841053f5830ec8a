//! The worker side: handshake, then batches one at a time until the parent says stop or
//! goes away.

use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::wire::{self, FromWorker, PipeIn, ToWorker, WireError};
use crate::job::WorkerScope;
use crate::remote::{EntryId, RemoteBatch};

/// How long a worker waits for the `Hello` its parent writes right after starting it.
const HELLO_WAIT: Duration = Duration::from_secs(20);

/// The pipe to the parent, for the task start hook (one worker per process).
static OUTPUT: OnceLock<File> = OnceLock::new();

/// The batch being run, for the task start hook.
static CURRENT_BATCH: AtomicU64 = AtomicU64::new(0);

/// The line a process prints when the variable is set but no pool started it.
pub(crate) const NOT_FROM_POOL: &str =
    "parjob: PARJOB_WORKER is set but this process was not started by a parjob pool; exiting";

/// Exit code for a process that cannot be a worker (bad variable, failed handshake).
pub(crate) const EXIT_NOT_A_WORKER: i32 = 2;

/// Prints [`NOT_FROM_POOL`] and returns the exit code.
pub(crate) fn not_from_pool() -> i32 {
    eprintln!("{NOT_FROM_POOL}");
    EXIT_NOT_A_WORKER
}

/// Serves the parent at the other end of `ends`; returns the exit code. Every batch runs
/// inside the scope `worker_scope` installs for `inner_threads`.
pub(crate) fn serve(
    (read_fd, write_fd): (RawFd, RawFd),
    inner_threads: usize,
    shm_fd: Option<RawFd>,
    worker_scope: WorkerScope,
) -> i32 {
    let (input, output) = match connect(read_fd, write_fd) {
        Ok(ends) => ends,
        Err(code) => return code,
    };
    let mut region = shared_region(shm_fd);
    keep_freed_memory();
    let mut input = PipeIn::new(input);
    let mut output = File::from(output);
    let (parent_pid, secret) = match handshake(&mut input, &mut output) {
        Ok(hello) => hello,
        Err(code) => return code,
    };
    #[cfg(not(target_os = "linux"))]
    super::watch_parent(parent_pid);
    let _ = parent_pid;

    let output = OUTPUT.get_or_init(|| output);
    let _scope = worker_scope(inner_threads);
    // Whether memory freed by the last batches may still be held (see `keep_freed_memory`).
    let mut holding = false;
    loop {
        // The next batch of a caller that runs one at a time follows within microseconds:
        // look for it before sleeping.
        if holding && !input.ready_spinning(wire::SPIN) && !input.ready_within(GIVE_BACK_AFTER) {
            give_back_freed_memory();
        }
        holding = true;
        match wire::recv::<ToWorker, _>(&mut input, wire::MAX_FRAME, None) {
            // The parent is gone, or closed the pool.
            Ok(None) | Ok(Some((ToWorker::Shutdown, _))) => return 0,
            Ok(Some((
                ToWorker::Run {
                    batch_id,
                    report_starts,
                    entry,
                    callee,
                    binary,
                    shared,
                    tag,
                },
                payload,
            ))) => {
                if tag != wire::batch_tag(&secret, batch_id, entry, callee, binary) {
                    return protocol_error("a batch whose authentication tag does not match");
                }
                let batch = RemoteBatch {
                    entry,
                    callee,
                    payload,
                    binary,
                    attachments: Vec::new(),
                };
                let shared = match shared.map(usize::try_from) {
                    None => None,
                    Some(Ok(len)) if region.is_some() => Some(len),
                    Some(_) => return protocol_error("a shared batch without a shared region"),
                };
                let region = region.as_mut();
                if let Err(code) =
                    run_batch(output, batch_id, report_starts, &batch, region, shared)
                {
                    return code;
                }
            }
            Ok(Some((ToWorker::Attach { id }, bytes))) => {
                crate::remote::attach::keep(id, std::sync::Arc::new(bytes));
            }
            Ok(Some((ToWorker::AttachFile { id, fd, len }, _))) => {
                keep_file(parent_pid, id, fd, len);
            }
            Ok(Some((ToWorker::Forget { ids }, _))) => crate::remote::attach::forget(&ids),
            Ok(Some((ToWorker::Hello { .. }, _))) => {
                return protocol_error("a second handshake");
            }
            // The parent died, perhaps in the middle of a frame.
            Err(WireError::Io(_) | WireError::Truncated { .. }) => return 0,
            Err(e) => return protocol_error(e),
        }
    }
}

/// Maps attachment `id` from the parent's memory file `fd`, and keeps it.
fn keep_file(parent_pid: u32, id: u64, fd: i32, len: u64) {
    let mapped = usize::try_from(len)
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|len| crate::remote::memfile::Mapping::open(parent_pid, fd, len));
    match mapped {
        Ok(mapping) => crate::remote::attach::keep_mapping(id, mapping),
        // The batches that need it fail with an error that says it was not received.
        Err(e) => eprintln!(
            "parjob: worker {} cannot map a shared value from its parent ({e}){}",
            std::process::id(),
            if cfg!(target_os = "linux") {
                "; is /proc mounted?"
            } else {
                "; do both processes see the same temporary directory?"
            }
        ),
    }
}

/// Takes the two inherited pipe ends as this process's channel to its parent, dying with the
/// parent where the system allows; the exit code if they are not pipe ends.
fn connect(read_fd: RawFd, write_fd: RawFd) -> Result<(OwnedFd, OwnedFd), i32> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `prctl` with integer arguments only changes this process's death signal.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    }
    if !is_pipe(read_fd, libc::O_RDONLY) || !is_pipe(write_fd, libc::O_WRONLY) {
        return Err(not_from_pool());
    }
    // SAFETY: both descriptors are open pipe ends (checked above) that this process
    // inherited and nothing else in it owns: only this function reads `PARJOB_WORKER`,
    // once, before `main`.
    let (input, output) = unsafe {
        (
            OwnedFd::from_raw_fd(read_fd),
            OwnedFd::from_raw_fd(write_fd),
        )
    };
    // Processes the tasks start must not inherit them (it would hide end-of-file).
    set_cloexec(read_fd);
    set_cloexec(write_fd);
    // As in `main`: writes to a closed pipe fail with `EPIPE` instead of killing us.
    // SAFETY: `signal` with a standard disposition.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    Ok((input, output))
}

/// An idle worker returns the memory its batches freed after this long without work.
const GIVE_BACK_AFTER: Duration = Duration::from_secs(1);

/// Keeps memory freed between batches in the allocator instead of returning it to the
/// system at once: a worker that decodes a large input per batch would otherwise fault in
/// fresh pages for every one (glibc trims the heap top and maps large blocks afresh). The
/// memory goes back once the worker is idle (`give_back_freed_memory`). Only glibc's
/// allocator is concerned; with another one these calls change nothing.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes allocator parameters. Setting one turns glibc's dynamic
    // thresholds off, so both are set: blocks up to 32 MiB come from the heap, and the heap
    // is not trimmed when they are freed.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
    }
}

fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free memory of the heap to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs one batch (its inputs in the first `shared` bytes of `region`, or in its payload)
/// and sends the outcome: a large one through `region`, which the inputs no longer need;
/// the exit code if the worker must stop.
fn run_batch(
    output: &File,
    batch_id: u64,
    report_starts: bool,
    batch: &RemoteBatch,
    mut region: Option<&mut super::shm::Region>,
    shared: Option<usize>,
) -> Result<(), i32> {
    CURRENT_BATCH.store(batch_id, Ordering::Relaxed);
    let on_start = report_starts.then_some(report_start as fn(usize));
    let outcome = {
        let input = match (shared, region.as_deref_mut()) {
            (Some(len), Some(region)) => match region.read(len) {
                Ok(payload) => Some(payload),
                Err(e) => return Err(protocol_error(format!("a shared batch: {e}"))),
            },
            _ => None,
        };
        // SAFETY: the handshake checked that the parent runs this very build (equal
        // fingerprints), and batches come only from that parent's pool.
        unsafe { batch.execute_reporting(input, on_start) }
    };
    let in_region = outcome.len() >= super::shm::MIN_SHARED
        && region.is_some_and(|region| region.write(&outcome).is_ok());
    let sent = if in_region {
        let len = outcome.len() as u64;
        wire::send(
            &mut &*output,
            &FromWorker::DoneShared { batch_id, len },
            &[],
        )
    } else {
        wire::send(&mut &*output, &FromWorker::Done { batch_id }, &outcome)
    };
    match sent {
        Ok(()) => Ok(()),
        // The parent is gone.
        Err(WireError::Io(_)) => Err(0),
        Err(e) => {
            // The parent sees the exit code; this line says why.
            eprintln!(
                "parjob: worker {} cannot send the results of a batch ({e}); exiting",
                std::process::id()
            );
            Err(1)
        }
    }
}

/// The memory file the pool gave this worker, if `fd` is one: an open regular file (what a
/// memory file looks like to `fstat`).
fn shared_region(fd: Option<RawFd>) -> Option<super::shm::Region> {
    let fd = fd?;
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct; `fstat` fills it
    // for any descriptor (a bad one is an error return).
    let regular = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFREG
    };
    if !regular {
        return None;
    }
    set_cloexec(fd);
    // SAFETY: the descriptor is open (checked), this process inherited it from its pool,
    // and only this function takes it, once, before any batch.
    Some(unsafe { super::shm::Region::inherited(fd) })
}

/// Checks the parent's `Hello` and answers `Ready`; the parent's pid and the pool's secret,
/// or the exit code.
fn handshake(input: &mut PipeIn, output: &mut File) -> Result<(u32, [u8; 32]), i32> {
    let hello = wire::recv::<ToWorker, _>(input, wire::MAX_HELLO, Some(HELLO_WAIT));
    let Ok(Some((
        ToWorker::Hello {
            version,
            secret,
            fingerprint,
            parent_pid,
        },
        _,
    ))) = hello
    else {
        return Err(not_from_pool());
    };
    if version != wire::PROTOCOL_VERSION {
        eprintln!(
            "parjob: worker speaks protocol {} but its parent speaks {version}; exiting",
            wire::PROTOCOL_VERSION
        );
        return Err(EXIT_NOT_A_WORKER);
    }
    if fingerprint != EntryId::fingerprint() {
        eprintln!(
            "parjob: this worker runs a different build of the executable than its parent (was it rebuilt while the parent ran?); exiting"
        );
        return Err(EXIT_NOT_A_WORKER);
    }
    // SAFETY: `getppid` cannot fail.
    if unsafe { libc::getppid() } as u32 != parent_pid {
        // The parent died before the death signal was armed; nobody to serve.
        return Err(0);
    }
    let ready = FromWorker::Ready {
        pid: std::process::id(),
        secret,
    };
    wire::send(output, &ready, &[]).map_err(|_| 0)?;
    Ok((parent_pid, secret))
}

fn protocol_error(problem: impl std::fmt::Display) -> i32 {
    eprintln!(
        "parjob: worker {} received {problem} from its parent; exiting",
        std::process::id()
    );
    EXIT_NOT_A_WORKER
}

/// The task start hook: tells the parent which task of the current batch starts now.
fn report_start(task: usize) {
    let Some(output) = OUTPUT.get() else { return };
    let started = FromWorker::Started {
        batch_id: CURRENT_BATCH.load(Ordering::Relaxed),
        task: u32::try_from(task).unwrap_or(u32::MAX),
    };
    if wire::send(&mut &*output, &started, &[]).is_err() {
        // The parent is gone: nobody wants the rest of the batch.
        std::process::exit(0);
    }
}

/// Whether `fd` is an open pipe end opened with access mode `mode`.
fn is_pipe(fd: RawFd, mode: libc::c_int) -> bool {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fstat` writes into the `stat` we own (a bad `fd` is an error return);
    // `fcntl(F_GETFL)` only reads flags.
    let (stat_ok, flags) = unsafe {
        (
            libc::fstat(fd, &mut st) == 0,
            libc::fcntl(fd, libc::F_GETFL),
        )
    };
    stat_ok
        && (st.st_mode & libc::S_IFMT) == libc::S_IFIFO
        && flags >= 0
        && (flags & libc::O_ACCMODE) == mode
}

fn set_cloexec(fd: RawFd) {
    // SAFETY: `fcntl` with `F_GETFD`/`F_SETFD` only changes this descriptor's flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

/// Writes raw bytes to the parent, bypassing framing: lets tests corrupt the stream.
#[cfg(test)]
pub(crate) fn write_raw_to_parent(bytes: &[u8]) -> bool {
    OUTPUT
        .get()
        .is_some_and(|mut out| std::io::Write::write_all(&mut out, bytes).is_ok())
}
