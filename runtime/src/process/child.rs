//! One worker process as its pool sees it: starting it, talking to it, and reaping it.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::bootstrap::{INNER_ENV, MARKER_ARG, SHM_ENV, WORKER_ENV};
use super::wire::{self, FromWorker, PipeIn, ToWorker, WireError};
use crate::error::Error;
use crate::job::InnerThreads;
use crate::remote::EntryId;

/// How long a new worker has to answer the handshake.
const HANDSHAKE: Duration = Duration::from_secs(30);

/// What every worker of a pool is started with.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    program: PathBuf,
    arg0: PathBuf,
    pub(crate) secret: [u8; 32],
    pub(crate) inner: InnerThreads,
}

impl Launch {
    pub(crate) fn new(inner: InnerThreads) -> Result<Launch, Error> {
        let exe = std::env::current_exe().map_err(|e| {
            spawn_error(format!(
                "cannot find the current executable to re-run it: {e}"
            ))
        })?;
        // `/proc/self/exe` is the very file this process runs, even if the path now names a
        // rebuilt binary (which would fail the handshake) or nothing at all.
        let program = if cfg!(target_os = "linux") && std::fs::metadata("/proc/self/exe").is_ok() {
            PathBuf::from("/proc/self/exe")
        } else {
            exe.clone()
        };
        Ok(Launch {
            program,
            arg0: exe,
            secret: random_secret()?,
            inner: InnerThreads {
                count: inner.count.max(1),
                ..inner
            },
        })
    }
}

#[cfg(test)]
impl Launch {
    /// Workers that run `program` instead: for tests of failed handshakes.
    pub(crate) fn with_program(mut self, program: &str) -> Launch {
        self.program = PathBuf::from(program);
        self
    }
}

fn random_secret() -> Result<[u8; 32], Error> {
    use std::io::Read;
    let mut secret = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .map_err(|e| spawn_error(format!("cannot read /dev/urandom for the pool secret: {e}")))?;
    Ok(secret)
}

fn spawn_error(detail: String) -> Error {
    Error::WorkerDied {
        index: None,
        detail,
    }
}

/// A started worker that completed the handshake.
#[derive(Debug)]
pub(crate) struct WorkerProcess {
    child: Child,
    to_worker: File,
    from_worker: PipeIn,
    /// The worker's memory file for large inputs, if the system gave one.
    pub(crate) shm: Option<super::shm::Region>,
    /// The attachments the worker holds.
    pub(crate) held: crate::remote::Held,
}

/// What the worker's process does between `fork` and `exec`: keep exactly the descriptors
/// in `keep` (negative ones are absent), die with its parent, start with no signal blocked,
/// and give up if the parent `parent_pid` is already gone.
fn in_child_before_exec(cmd: &mut Command, keep: [RawFd; 3], parent_pid: u32) {
    // SAFETY: the closure runs in the forked child before `exec` and only makes
    // async-signal-safe calls (`fcntl`, `close_range`, `prctl`, `sigemptyset`,
    // `sigprocmask`, `getppid`) on integers and a stack `sigset_t`; it allocates
    // nothing (`io::Error::from_raw_os_error` and `last_os_error` do not allocate).
    unsafe {
        cmd.pre_exec(move || {
            close_others_on_exec(keep);
            for fd in keep.into_iter().filter(|&fd| fd >= 0) {
                inherit(fd)?;
            }
            #[cfg(target_os = "linux")]
            {
                // Set here, before `exec`, so no instant exists where the worker could
                // outlive its parent unnoticed; the worker sets it again itself.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            // Whatever mask the spawning thread had (I/O threads block `SIGPIPE`), the
            // worker starts with none.
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            if libc::getppid() as u32 != parent_pid {
                // The parent died since `fork`: no worker wanted. (`ESRCH`, since a
                // custom error would allocate.)
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

impl WorkerProcess {
    /// Starts a worker and waits for its `Ready`.
    ///
    /// Must be called on a thread that outlives the worker: on Linux the worker gets
    /// `SIGKILL` when the thread that started it ends (`PR_SET_PDEATHSIG` follows threads).
    pub(crate) fn spawn(launch: &Launch) -> Result<WorkerProcess, Error> {
        let (parent_in, child_out) = pipe()?;
        let (child_in, parent_out) = pipe()?;
        let (child_in_fd, child_out_fd) = (child_in.as_raw_fd(), child_out.as_raw_fd());
        let parent_pid = std::process::id();
        // Without one, large inputs go through the pipe like small ones.
        let shm = super::shm::Region::create().ok();
        let shm_fd = shm.as_ref().map_or(-1, super::shm::Region::raw_fd);

        let mut cmd = Command::new(&launch.program);
        cmd.arg0(&launch.arg0)
            .arg(MARKER_ARG)
            .env(WORKER_ENV, format!("{child_in_fd},{child_out_fd}"))
            .env(INNER_ENV, launch.inner.count.to_string())
            .stdin(Stdio::null());
        if shm_fd >= 0 {
            cmd.env(SHM_ENV, shm_fd.to_string());
        }
        for var in super::THREAD_VARS {
            if let Some(value) = super::thread_var(var, launch.inner) {
                cmd.env(var, value);
            }
        }
        in_child_before_exec(&mut cmd, [child_in_fd, child_out_fd, shm_fd], parent_pid);
        let child = cmd
            .spawn()
            .map_err(|e| spawn_error(format!("cannot start a worker process: {e}")))?;
        // Only the child keeps its ends: the parent holding them would hide end-of-file.
        drop((child_in, child_out));

        let mut worker = WorkerProcess {
            child,
            to_worker: File::from(parent_out),
            from_worker: PipeIn::new(parent_in),
            shm,
            held: Default::default(),
        };
        match worker.handshake(launch, parent_pid) {
            Ok(()) => Ok(worker),
            Err(problem) => {
                let pid = worker.pid();
                let status = worker.kill_and_reap();
                Err(spawn_error(format!(
                    "worker process {pid} failed the handshake: {problem} (then {}). Is `{}` a binary that links parjob, unchanged since this process started?",
                    describe(status),
                    launch.arg0.display()
                )))
            }
        }
    }

    fn handshake(&mut self, launch: &Launch, parent_pid: u32) -> Result<(), String> {
        let hello = ToWorker::Hello {
            version: wire::PROTOCOL_VERSION,
            secret: launch.secret,
            fingerprint: EntryId::fingerprint(),
            parent_pid,
        };
        self.send(&hello, &[]).map_err(|e| e.to_string())?;
        let started = Instant::now();
        // Poll in slices so that a worker that exits is noticed without its pipe closing
        // (a grandchild might hold it open).
        loop {
            match wire::recv::<FromWorker, _>(
                &mut self.from_worker,
                wire::MAX_HELLO,
                Some(Duration::from_millis(100)),
            ) {
                Ok(Some((FromWorker::Ready { pid, secret }, _)))
                    if pid == self.pid() && secret == launch.secret =>
                {
                    return Ok(());
                }
                Ok(Some((other, _))) => return Err(format!("unexpected reply {other:?}")),
                Ok(None) => return Err("no reply".into()),
                Err(WireError::TimedOut { .. }) => {
                    if let Ok(Some(_)) = self.child.try_wait() {
                        return Err("no reply".into());
                    }
                    if started.elapsed() > HANDSHAKE {
                        return Err(format!("no reply within {HANDSHAKE:?}"));
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes `msg` and its tail (the payload of a `Run`).
    pub(crate) fn send(&mut self, msg: &ToWorker, tail: &[u8]) -> Result<(), WireError> {
        wire::send(&mut self.to_worker, msg, tail)
    }

    /// The next message and its tail; `Ok(None)` when the worker closed its pipe (it died).
    pub(crate) fn recv(&mut self) -> Result<Option<(FromWorker, Vec<u8>)>, WireError> {
        wire::recv(&mut self.from_worker, wire::MAX_FRAME, None)
    }

    /// Looks for the worker's next message for [`SPIN`](wire::SPIN) without sleeping
    /// (see `PipeIn::ready_spinning`).
    pub(crate) fn await_spinning(&self) {
        self.from_worker.ready_spinning(wire::SPIN);
    }

    /// Whether the process already ended. It is not reaped, so its pid stays ours.
    pub(crate) fn has_exited(&self) -> bool {
        // SAFETY: an all-zero `siginfo_t` is a valid value of this plain C struct.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `waitid` writes into the `siginfo_t` we own; `WNOWAIT` leaves the child
        // waitable, `WNOHANG` returns at once.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                self.child.id() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // With `WNOHANG`, `si_pid` stays 0 while the child runs. (libc gives `si_pid` as a
        // method on Linux, macOS and the BSDs alike.)
        // SAFETY: `waitid` filled `info` for a `SIGCHLD`-style event (or left it zeroed),
        // so the field `si_pid` reads is the one written.
        let exited = unsafe { info.si_pid() } != 0;
        // An error means it is not our waitable child any more: treat it as gone.
        r != 0 || exited
    }

    /// Waits for a worker that closed its pipe; kills it if it does not exit soon.
    pub(crate) fn reap(self) -> io::Result<ExitStatus> {
        let WorkerProcess {
            mut child,
            to_worker,
            from_worker,
            ..
        } = self;
        drop((to_worker, from_worker));
        wait_briefly(&mut child)
    }

    /// `SIGKILL`, then wait.
    pub(crate) fn kill_and_reap(&mut self) -> io::Result<ExitStatus> {
        // Fails only if it was reaped already; `wait` then returns the stored status.
        let _ = self.child.kill();
        self.child.wait()
    }

    /// Asks the worker to exit, closes the pipes and reaps it.
    pub(crate) fn shut_down(mut self) {
        let _ = self.send(&ToWorker::Shutdown, &[]);
        let _ = self.reap();
    }
}

/// Waits up to 2 s for `child` to exit, then kills it.
fn wait_briefly(child: &mut Child) -> io::Result<ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match child.try_wait()? {
            Some(status) => return Ok(status),
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    let _ = child.kill();
    child.wait()
}

/// A pipe, both ends close-on-exec.
fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    let (r, w) = std::io::pipe().map_err(|e| spawn_error(format!("cannot make a pipe: {e}")))?;
    let (r, w) = (OwnedFd::from(r), OwnedFd::from(w));
    #[cfg(target_os = "linux")]
    {
        // Bigger pipes move large batches with fewer wake-ups; the default (64 KiB) is
        // kept if the system refuses.
        // SAFETY: `fcntl` on a descriptor we own, with an integer argument.
        unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    }
    Ok((r, w))
}

/// Clears close-on-exec on `fd`, in the child between `fork` and `exec`.
fn inherit(fd: RawFd) -> io::Result<()> {
    // SAFETY: `fcntl` with `F_GETFD`/`F_SETFD` reads and writes descriptor flags only.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Marks every descriptor but the standard ones and those in `keep` (negative entries are
/// ignored) close-on-exec, in the child between `fork` and `exec`: even descriptors this
/// process inherited without the flag (a jobserver's, a shell's) do not reach workers. Best
/// effort: kernels before 5.11 lack `CLOSE_RANGE_CLOEXEC`, and such descriptors then pass
/// as they would to any child. Allocates nothing.
#[cfg(target_os = "linux")]
fn close_others_on_exec(mut keep: [RawFd; 3]) {
    keep.sort_unstable();
    // The first descriptor not yet covered.
    let mut next: libc::c_uint = 3;
    for fd in keep {
        if fd < 3 {
            continue;
        }
        let fd = fd as libc::c_uint;
        if fd > next {
            cloexec_range(next, fd - 1);
        }
        next = next.max(fd + 1);
    }
    cloexec_range(next, libc::c_uint::MAX);
}

/// Without `close_range` (macOS, the BSDs): one `fcntl` per descriptor number up to the
/// process's limit (at most 65,536 of them), skipping those already flagged.
#[cfg(not(target_os = "linux"))]
fn close_others_on_exec(keep: [RawFd; 3]) {
    // SAFETY: `sysconf` with a valid name has no preconditions.
    let limit = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) };
    let last = RawFd::try_from(limit).map_or(1 << 16, |n| n.clamp(3, 1 << 16));
    for fd in (3..last).filter(|fd| !keep.contains(fd)) {
        // SAFETY: `fcntl` with `F_GETFD`/`F_SETFD` reads and writes descriptor flags only;
        // a number that is not an open descriptor is an error return.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn cloexec_range(first: libc::c_uint, last: libc::c_uint) {
    // SAFETY: `close_range` with `CLOSE_RANGE_CLOEXEC` only sets descriptor flags; an
    // unsupported flag is an error return, ignored.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            last,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
}

/// How a worker ended, as `WorkerDied::detail` says it: "killed by signal 9 (SIGKILL)",
/// "exited with code 3".
pub(crate) fn describe(status: io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(sig)) => {
                let core = if status.core_dumped() {
                    ", core dumped"
                } else {
                    ""
                };
                format!("killed by signal {sig} ({}){core}", signal_name(sig))
            }
            (None, None) => format!("ended ({status})"),
        },
        Err(e) => format!("ended, but its exit status is unknown ({e})"),
    }
}

fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("signal {sig}"),
    };
    name.to_owned()
}
