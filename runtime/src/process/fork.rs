//! Forked children: the engine under the `multiprocessing` backend.
//!
//! A child is a `fork` of the calling process that runs one batch and exits ([`spawn`]), one
//! that serves a call, running batch after batch of it ([`Server`]), or one of a call's
//! crew, which takes the call's tasks itself ([`crew`](super::crew), made with
//! [`fork_child`], with frames of its own). It sees the caller's memory as it was at the
//! fork, so its tasks need no encoding; it sends back only the encoded outcome of each
//! batch, through a pipe, in frames:
//!
//! - `b'S'`, then a task's position in the batch as a little-endian `u32`: the task
//!   started (sent only for calls with a per-task timeout);
//! - `b'R'`, then the outcome's length as a little-endian `u64`, then the outcome.
//!
//! A one-batch child then leaves with `_exit`: no destructor, `atexit` handler or buffered
//! output of the parent's runs twice; a server waits for its next command. The parent reads
//! until the outcome or end of file, and names the signal or exit code of a child that sent
//! no outcome.

use std::convert::Infallible;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, catch_panic};
use crate::job::{ForkWork, InnerThreads, RunRange};
use crate::sync::Recover;

/// Set in a forked child, right after the fork. Statics are copied by `fork`, and the
/// parent never sets it, so in the parent it is always `false`.
static FORKED: AtomicBool = AtomicBool::new(false);

/// The write end of the child's pipe to its parent.
static CHILD_PIPE: AtomicI32 = AtomicI32::new(-1);

/// See `spawn`.
static FORKING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How long a `fork` takes in the parent lately, in nanoseconds (0 before the first).
static FORK_NANOS: AtomicU64 = AtomicU64::new(0);

/// How long a `fork` of this process takes lately (zero before the first): what a new
/// child costs before it can start a batch. The cost grows with the process's memory (its
/// page tables are copied) and with its other threads running meanwhile (each copy-on-write
/// page is taken from them on every CPU they run on).
pub(crate) fn typical_fork() -> Duration {
    Duration::from_nanos(FORK_NANOS.load(Ordering::Relaxed))
}

/// Counts one fork that took `took`, as a moving average that follows the process's size.
fn count_fork(took: Duration) {
    let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
    let before = FORK_NANOS.load(Ordering::Relaxed);
    let next = match before {
        0 => took,
        _ => before - before / 4 + took / 4,
    };
    FORK_NANOS.store(next, Ordering::Relaxed);
}

/// Whether this process is a child forked by the `multiprocessing` backend. Its other
/// threads did not survive the fork: state that they owned (thread pools, worker pools,
/// locks they held) must not be used.
pub(crate) fn in_forked_child() -> bool {
    FORKED.load(Ordering::Relaxed)
}

const STARTED: u8 = b'S';
const REPLY: u8 = b'R';

/// How often the parent looks whether a child that keeps its pipe open has exited (a
/// sibling forked at the same moment may hold a copy of the pipe's write end).
const POLL: Duration = Duration::from_millis(50);

/// A running child, as the parent sees it.
#[derive(Debug)]
pub(crate) struct Child {
    pid: libc::pid_t,
    pipe: OwnedFd,
    /// Set once `reap` has run: the pid may belong to another process since.
    reaped: bool,
}

/// Forks a child that runs `work` and exits. With `report_starts`, the child reports each
/// task's start.
///
/// # Errors
///
/// The `pipe` or `fork` error.
pub(crate) fn spawn(work: ForkWork, report_starts: bool, inner: InnerThreads) -> io::Result<Child> {
    // The parent's copy of the work is dropped by `fork_with`, before the reply is
    // finished (it may borrow from the caller).
    let (child, _) = fork_with(inner, false, move |_| child_main(work, report_starts))?;
    Ok(child)
}

/// Forks a child that runs `body` and never comes back (it ends with [`exit`]), writing to
/// its parent with [`send_frame`].
///
/// # Errors
///
/// The `pipe` or `fork` error.
pub(crate) fn fork_child(
    inner: InnerThreads,
    body: impl FnOnce() -> Infallible,
) -> io::Result<Child> {
    let (child, _) = fork_with(inner, false, |_| body())?;
    Ok(child)
}

/// Ends a forked child at once: nothing of the parent's (destructors, `atexit` handlers,
/// buffered output) runs twice.
pub(crate) fn exit(code: libc::c_int) -> ! {
    // SAFETY: `_exit` ends the process without running anything of the parent's.
    unsafe { libc::_exit(code) }
}

/// Writes a frame to the parent, from a forked child: `tag`, then `words` as little-endian
/// `u64`s, then `bytes`.
pub(crate) fn send_frame(tag: &[u8], words: &[u64], bytes: &[u8]) -> io::Result<()> {
    let fd = CHILD_PIPE.load(Ordering::Relaxed);
    let mut frame = Vec::with_capacity(tag.len() + 8 * words.len() + bytes.len().min(1 << 16));
    frame.extend_from_slice(tag);
    for w in words {
        frame.extend_from_slice(&w.to_le_bytes());
    }
    // A small frame goes in one write, so that the parent reads it whole.
    if bytes.len() <= 1 << 16 {
        frame.extend_from_slice(bytes);
        return write_all(fd, &frame);
    }
    write_all(fd, &frame)?;
    write_all(fd, bytes)
}

/// Forks a child that runs `body` and never comes back: `body` gets the read end of a
/// command pipe when `commands` asks for one, whose write end the parent gets with the
/// child. The parent drops its copy of `body` before returning.
fn fork_with(
    inner: InnerThreads,
    commands: bool,
    body: impl FnOnce(Option<OwnedFd>) -> Infallible,
) -> io::Result<(Child, Option<OwnedFd>)> {
    install_panic_hook();
    let env = ChildEnv::for_threads(inner);
    // Held from the pipes' creation until the parent has closed the child's ends, so that
    // no other child forked meanwhile (by another thread of this backend) inherits them: it
    // would keep a pipe open after this child exits. (Close-on-exec does not help: a forked
    // child does not exec.)
    let forking = FORKING.lock().recover();
    let (read, write) = pipe()?;
    let command_pipe = if commands { Some(pipe()?) } else { None };
    // A larger pipe buffer lets a child write a big outcome in fewer wake-ups; a kernel
    // that refuses keeps the default. (Only Linux can resize a pipe.)
    #[cfg(target_os = "linux")]
    // SAFETY: `fcntl` on a descriptor this function owns.
    let _ = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    // SAFETY: `getpid` has no preconditions.
    let parent = unsafe { libc::getpid() };
    let (commands_in, commands_out) = command_pipe.unzip();
    let start = Instant::now();
    // SAFETY: the child runs only `body`, which never returns: it leaves with `_exit`. What
    // it may touch after a fork in a multithreaded process is the backend's documented
    // caveat (tasks run as on a thread of the parent, without the parent's other threads).
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            // The guard was taken by this very thread: releasing the child's copy of the
            // lock is a plain store, and lets this child fork children of its own.
            drop(forking);
            drop((read, commands_out));
            enter_child(write, parent, env);
            // `body` never returns (its type says so), so neither does this arm.
            #[allow(unreachable_code)]
            match body(commands_in) {}
        }
        pid => {
            count_fork(start.elapsed());
            drop((write, commands_in));
            drop(forking);
            drop(body);
            let child = Child {
                pid,
                pipe: read,
                reaped: false,
            };
            Ok((child, commands_out))
        }
    }
}

/// A new pipe, both ends close-on-exec (std sets the flag atomically where the system
/// can): (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = io::pipe()?;
    Ok((read.into(), write.into()))
}

/// A child's environment, made in the parent before the fork: the parent's, with the
/// thread-count variables of common libraries set for the child's inner threads, as a loky
/// worker's environment has them. The child only points `environ` at it: changing the
/// environment there through `std::env` would wait for a lock that another thread of the
/// parent may have held at the fork (spawning a process holds it), forever.
struct ChildEnv {
    _strings: Vec<CString>,
    pointers: Vec<*mut libc::c_char>,
}

unsafe extern "C" {
    /// The process's environment, as libc and `std::env` read it.
    static mut environ: *mut *mut libc::c_char;
}

impl ChildEnv {
    /// `None` when the child's environment would be the parent's as it is.
    fn for_threads(inner: InnerThreads) -> Option<ChildEnv> {
        let set: Vec<(&str, String)> = super::THREAD_VARS
            .iter()
            .filter_map(|&var| super::thread_var(var, inner).map(|v| (var, v)))
            .collect();
        if set.is_empty() {
            return None;
        }
        let mut strings: Vec<CString> = Vec::new();
        for (key, value) in std::env::vars_os() {
            if set.iter().any(|(var, _)| key.as_os_str() == *var) {
                continue;
            }
            let mut entry = key.into_vec();
            entry.push(b'=');
            entry.extend(value.into_vec());
            strings.extend(CString::new(entry).ok());
        }
        for (var, value) in set {
            strings.extend(CString::new(format!("{var}={value}")).ok());
        }
        let mut pointers: Vec<*mut libc::c_char> =
            strings.iter().map(|s| s.as_ptr().cast_mut()).collect();
        pointers.push(std::ptr::null_mut());
        Some(ChildEnv {
            _strings: strings,
            pointers,
        })
    }

    /// Makes this the process's environment, for good. For a child right after the fork.
    fn install(self) {
        // SAFETY: the child has one thread, so nothing reads `environ` meanwhile; the
        // strings and the null-terminated array of pointers to them are never freed (the
        // value is forgotten), and nothing writes through them.
        unsafe { environ = self.pointers.as_ptr().cast_mut() };
        std::mem::forget(self);
    }
}

/// What every child does first: dies with its parent, takes its environment (see
/// [`ChildEnv`]), marks itself forked and keeps `pipe` (to its parent) open for good.
fn enter_child(pipe: OwnedFd, parent: libc::pid_t, env: Option<ChildEnv>) {
    // First, so that a child that goes wrong later still dies with its parent.
    #[cfg(target_os = "linux")]
    // SAFETY: `prctl` with integer arguments only sets this process's death signal.
    let _ = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    // SAFETY: `getppid` has no preconditions.
    if unsafe { libc::getppid() } != parent {
        // The parent died before the death signal was set (or before the watch starts).
        // SAFETY: `_exit` ends this process without running anything of the parent's.
        unsafe { libc::_exit(1) };
    }
    #[cfg(not(target_os = "linux"))]
    super::watch_parent(parent as u32);
    if let Some(env) = env {
        env.install();
    }
    FORKED.store(true, Ordering::Relaxed);
    let fd = pipe.as_raw_fd();
    std::mem::forget(pipe);
    CHILD_PIPE.store(fd, Ordering::Relaxed);
}

fn child_main(work: ForkWork, report_starts: bool) -> ! {
    let hook = report_starts.then_some(report_start as fn(usize));
    let code = match catch_panic(|| work.run(hook)) {
        Ok(bytes) => match send_reply(&bytes) {
            Ok(()) => 0,
            // The parent is gone or stopped reading.
            Err(_) => 1,
        },
        // `run` catches task panics; a panic here came from the runtime itself.
        Err(_) => 70,
    };
    // SAFETY: `_exit` ends the process at once; nothing of the parent's runs twice.
    unsafe { libc::_exit(code) }
}

/// Writes an outcome to the parent, as a `REPLY` frame.
fn send_reply(bytes: &[u8]) -> io::Result<()> {
    let fd = CHILD_PIPE.load(Ordering::Relaxed);
    let mut frame = Vec::with_capacity(9);
    frame.push(REPLY);
    frame.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    write_all(fd, &frame)?;
    write_all(fd, bytes)
}

/// A child that serves one call: forked once, it runs batch after batch of the call's
/// [`ForkSession`](crate::job::ForkSession), each named by its tasks' range, until it is
/// dropped (which kills and reaps it).
///
/// Commands reach it through a pipe of their own, as `first` and `len` (little-endian
/// `u64`s) and a byte that asks for task-start reports; it answers each with frames as a
/// one-batch child does, and waits for the next command. End of file on its command pipe,
/// or a parent that died, ends it.
#[derive(Debug)]
pub(crate) struct Server {
    child: Child,
    commands: OwnedFd,
}

/// The length of one command to a [`Server`].
const COMMAND: usize = 17;

impl Server {
    /// Forks a server for `run`, which the child calls for each batch (it sees the caller's
    /// memory as it is now, so `run` must hold every task the server will be asked for).
    ///
    /// # Errors
    ///
    /// The `pipe` or `fork` error.
    pub(crate) fn spawn(run: &RunRange<'_>, inner: InnerThreads) -> io::Result<Server> {
        let (child, commands) = fork_with(inner, true, |commands| match commands {
            Some(commands) => serve(run, commands),
            // SAFETY: as in `child_main`; `fork_with` always gives the pipe it was asked for.
            None => unsafe { libc::_exit(70) },
        })?;
        let commands = commands.ok_or_else(|| io::Error::other("no command pipe"))?;
        Ok(Server { child, commands })
    }

    /// The child's process id.
    pub(crate) fn pid(&self) -> libc::pid_t {
        self.child.pid
    }

    /// Runs tasks `first..first + len` in the server and returns their outcome, calling
    /// `on_start` for each task start when `report_starts`. `leave` runs once, when the
    /// batch is over and before a server that ended is reaped (after which its pid may be
    /// reused). An `Err` means the server is gone (it died, or made no sense and was killed):
    /// drop it.
    pub(crate) fn run(
        &mut self,
        first: usize,
        len: usize,
        report_starts: bool,
        on_start: impl FnMut(usize, Instant),
        leave: impl FnOnce(),
    ) -> Result<Vec<u8>, Error> {
        let mut command = [0u8; COMMAND];
        command[..8].copy_from_slice(&(first as u64).to_le_bytes());
        command[8..16].copy_from_slice(&(len as u64).to_le_bytes());
        command[16] = u8::from(report_starts);
        let (reply, broken) = match write_all(self.commands.as_raw_fd(), &command) {
            Ok(()) => self.child.read_reply(on_start),
            // Gone already (a broken pipe): say how it ended.
            Err(_) => (None, None),
        };
        if broken.is_some() {
            self.child.kill();
        }
        leave();
        match (reply, broken) {
            (Some(bytes), None) => Ok(bytes),
            (_, Some(message)) => {
                self.child.reap();
                Err(Error::Transport {
                    index: None,
                    message,
                })
            }
            (None, None) => Err(died(self.child.reap())),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // An idle server waits for a command: end it at once rather than by end of file,
        // which a copy of the command pipe in another child would hold back. Its exit
        // (taking down its copy of the address space) need not hold up the call.
        if !self.child.reaped {
            self.child.kill();
            self.child.reap_later();
        }
    }
}

/// The server's side: reads commands until end of file, runs each and writes its outcome.
fn serve(run: &RunRange<'_>, commands: OwnedFd) -> ! {
    let fd = commands.as_raw_fd();
    let mut command = [0u8; COMMAND];
    loop {
        match read_exact(fd, &mut command) {
            Ok(true) => {}
            // End of file: the parent is done with this server. An error means the same.
            Ok(false) | Err(_) => {
                // SAFETY: as in `child_main`.
                unsafe { libc::_exit(0) }
            }
        }
        let word = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&command[at..at + 8]);
            usize::try_from(u64::from_le_bytes(bytes)).unwrap_or(usize::MAX)
        };
        let (first, len) = (word(0), word(8));
        let hook = (command[16] != 0).then_some(report_start as fn(usize));
        let code = match catch_panic(|| run(first, len, hook)) {
            Ok(bytes) => match send_reply(&bytes) {
                Ok(()) => continue,
                Err(_) => 1,
            },
            Err(_) => 70,
        };
        // SAFETY: as in `child_main`.
        unsafe { libc::_exit(code) }
    }
}

/// Fills `buf` from `fd`; `Ok(false)` at end of file before the first byte.
fn read_exact(fd: RawFd, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the rest of `buf` is writable memory of that many bytes.
        let n = unsafe { libc::read(fd, buf[filled..].as_mut_ptr().cast(), buf.len() - filled) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            if filled == 0 {
                return Ok(false);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += n as usize;
    }
    Ok(true)
}

/// The error for a child that ended without an outcome, given its wait status.
pub(crate) fn died(status: libc::c_int) -> Error {
    Error::WorkerDied {
        index: None,
        detail: format!(
            "a forked child {}",
            super::child::describe(Ok(ExitStatus::from_raw(status)))
        ),
    }
}

/// Wraps the panic hook, once, so that a panic in a forked child prints with one raw
/// `write` to stderr instead of through the standard hook: that one takes locks (stderr's,
/// the backtrace printer's) that a thread of the parent may have held at the moment of the
/// fork, and in the child nobody would ever release them. Elsewhere the previous hook runs
/// as before.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !in_forked_child() {
                return previous(info);
            }
            let thread = std::thread::current();
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            let message = format!(
                "thread '{}' (forked child {}) panicked at {location}:\n{}\n",
                thread.name().unwrap_or("<unnamed>"),
                std::process::id(),
                info.payload_as_str().unwrap_or("Box<dyn Any>"),
            );
            let _ = write_all(libc::STDERR_FILENO, message.as_bytes());
        }));
    });
}

fn report_start(task: usize) {
    let fd = CHILD_PIPE.load(Ordering::Relaxed);
    let mut frame = [0u8; 5];
    frame[0] = STARTED;
    frame[1..].copy_from_slice(&u32::try_from(task).unwrap_or(u32::MAX).to_le_bytes());
    if write_all(fd, &frame).is_err() {
        // SAFETY: as in `child_main`: the parent is gone, and the child must not go on.
        unsafe { libc::_exit(1) }
    }
}

fn write_all(fd: RawFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid buffer of `bytes.len()` bytes.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

impl Child {
    /// The child's process id.
    pub(crate) fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Reads the child's frames until it exits, calling `on_start` for each task start, and
    /// reaps it. Returns the outcome, or why there is none: `WorkerDied` naming the signal or
    /// exit code, or `Transport` for frames that make no sense (the child is killed then).
    /// `before_reap` runs once the child is known to be done, before it is reaped (after
    /// which its pid may be reused).
    pub(crate) fn wait_with(
        mut self,
        on_start: impl FnMut(usize, Instant),
        before_reap: impl FnOnce(),
    ) -> Result<Vec<u8>, Error> {
        let (reply, broken) = self.read_reply(on_start);
        if broken.is_some() {
            self.kill();
        }
        before_reap();
        let status = self.reap();
        match (reply, broken) {
            (_, Some(message)) => Err(Error::Transport {
                index: None,
                message,
            }),
            (Some(bytes), None) => Ok(bytes),
            (None, None) => Err(died(status)),
        }
    }

    /// Reads the child's frames until its outcome or end of file, calling `on_start` for
    /// each task start: the outcome, if it came, and why the pipe is unusable, if it is.
    fn read_reply(
        &self,
        mut on_start: impl FnMut(usize, Instant),
    ) -> (Option<Vec<u8>>, Option<String>) {
        let fd = self.pipe.as_raw_fd();
        let mut reader = Reader::default();
        // Set once the child has ended: what it wrote is in the pipe, so the reader only
        // drains what is there, without waiting.
        let mut ended = false;
        let broken = loop {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let wait = if ended {
                0
            } else {
                POLL.as_millis() as libc::c_int
            };
            // SAFETY: one valid `pollfd`.
            let ready = unsafe { libc::poll(&mut pfd, 1, wait) };
            if ready < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break Some(format!("poll: {}", io::Error::last_os_error()));
            }
            if ready == 0 {
                if ended {
                    // Drained: everything the child wrote has been read.
                    break None;
                }
                // Still running, or gone while a copy of the pipe lives elsewhere (a
                // process the task started). It may have written its outcome and exited
                // since the poll: look once more before giving up on it.
                ended = self.exited();
                continue;
            }
            match reader.read(fd, &mut on_start) {
                Ok(Read::More) => {}
                Ok(Read::Interrupted) => continue,
                // End of file, or the outcome, which is the child's last word on this
                // batch. Reaping a one-batch child after it does not wait for end of
                // file, which a copy of the pipe held elsewhere could delay.
                Ok(Read::Done) => break None,
                Err(message) => break Some(message),
            }
        };
        (reader.reply, broken)
    }

    /// Kills the child (it is reaped by `wait`).
    pub(crate) fn kill(&self) {
        kill(self.pid);
    }

    /// The read end of the child's pipe.
    pub(crate) fn pipe_fd(&self) -> RawFd {
        self.pipe.as_raw_fd()
    }

    /// Kills the child unless it was reaped, and has it reaped off this thread.
    pub(crate) fn end(&mut self) {
        if !self.reaped {
            self.kill();
            self.reap_later();
        }
    }

    /// Whether the child has ended, without reaping it.
    pub(crate) fn exited(&self) -> bool {
        // SAFETY: `waitid` on our own child, with a zeroed `siginfo_t` to fill in.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let r = libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
            r == 0 && info.si_pid() == self.pid
        }
    }

    /// Reaps the killed child on the reaper thread, or here if there is none (in a forked
    /// child, whose parent's threads did not survive the fork).
    fn reap_later(&mut self) {
        if !in_forked_child()
            && let Some(reaper) = reaper()
            && reaper.send(self.pid).is_ok()
        {
            self.reaped = true;
            return;
        }
        self.reap();
    }

    /// Waits for the child to end and reaps it; its wait status.
    pub(crate) fn reap(&mut self) -> libc::c_int {
        self.reaped = true;
        wait_for(self.pid)
    }
}

/// Waits for unreaped child `pid` to end and reaps it; its wait status.
fn wait_for(pid: libc::pid_t) -> libc::c_int {
    loop {
        let mut status = 0;
        // SAFETY: `waitpid` on our own child, with a status to fill in.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return status;
        }
        if r < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // Not our child any more (reaped elsewhere): no status to give.
            return 0;
        }
    }
}

/// Reads what `fd` holds into `buf`'s spare capacity: the bytes read, 0 at end of file.
pub(crate) fn read_spare(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<usize> {
    let spare = buf.capacity() - buf.len();
    // SAFETY: the spare capacity is writable memory of `spare` bytes; `read` writes at most
    // that, and the length grows only by what it wrote.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().add(buf.len()).cast(), spare) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `read` initialised `n` more bytes.
    unsafe { buf.set_len(buf.len() + n as usize) };
    Ok(n as usize)
}

/// What a forked child wrote back, as it arrives: task starts, then its outcome.
#[derive(Default)]
struct Reader {
    buf: Vec<u8>,
    /// Where the first frame not yet taken starts.
    pos: usize,
    reply: Option<Vec<u8>>,
}

/// What one [`Reader::read`] found.
enum Read {
    /// Frames may follow.
    More,
    /// A signal interrupted the read; nothing was read.
    Interrupted,
    /// The outcome arrived, or the pipe ended.
    Done,
}

impl Reader {
    /// Reads what the pipe holds and takes every complete frame, reporting task starts to
    /// `on_start`. `Err` says why the pipe is unusable.
    fn read(
        &mut self,
        fd: RawFd,
        on_start: &mut impl FnMut(usize, Instant),
    ) -> Result<Read, String> {
        // Read straight into the buffer's spare room, reserved from the outcome's
        // announced length: no intermediate chunk buffer, and no regrowth.
        let want = match (self.reply.is_none(), expected_len(&self.buf[self.pos..])) {
            (true, Some(len)) => len.saturating_sub(self.buf.len() - self.pos).max(4096),
            _ => 64 * 1024,
        };
        if self.buf.try_reserve(want).is_err() {
            return Err(format!("a child announced an outcome of {want} bytes"));
        }
        match read_spare(fd, &mut self.buf) {
            Ok(0) => return Ok(Read::Done),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Read::Interrupted),
            Err(e) => return Err(format!("read: {e}")),
        }
        self.take_frames(on_start)?;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        Ok(if self.reply.is_some() {
            Read::Done
        } else {
            Read::More
        })
    }

    /// Takes every complete frame in the buffer.
    fn take_frames(&mut self, on_start: &mut impl FnMut(usize, Instant)) -> Result<(), String> {
        loop {
            let rest = &self.buf[self.pos..];
            match rest.first() {
                None => return Ok(()),
                Some(&STARTED) if rest.len() >= 5 => {
                    let mut task = [0u8; 4];
                    task.copy_from_slice(&rest[1..5]);
                    on_start(u32::from_le_bytes(task) as usize, Instant::now());
                    self.pos += 5;
                }
                Some(&REPLY) if self.reply.is_none() => match expected_len(rest) {
                    Some(len) if rest.len() >= 9 + len => {
                        self.reply = Some(rest[9..9 + len].to_vec());
                        self.pos += 9 + len;
                    }
                    _ => return Ok(()),
                },
                Some(&STARTED) => return Ok(()),
                Some(&other) => return Err(format!("unexpected frame tag {other} from a child")),
            }
        }
    }
}

/// How long the reaper lets killed children gather before it reaps them.
const REAP_ROUND: Duration = Duration::from_millis(20);

/// A thread that reaps the children sent to it, which must be unreaped children of this
/// process that have been killed (so each ends soon). `None` if it cannot start.
fn reaper() -> Option<&'static crossbeam_channel::Sender<libc::pid_t>> {
    static REAPER: OnceLock<Option<crossbeam_channel::Sender<libc::pid_t>>> = OnceLock::new();
    REAPER
        .get_or_init(|| {
            let (tx, rx) = crossbeam_channel::unbounded::<libc::pid_t>();
            let spawned = std::thread::Builder::new()
                .name("parjob-reaper".into())
                .spawn(move || {
                    while let Ok(first) = rx.recv() {
                        // Reaps in rounds: a call that kills its children wakes this
                        // thread once per round, not once per child, so that it seldom
                        // runs while the caller forks again (each page the caller then
                        // writes would be flushed from this thread's cpu too).
                        std::thread::sleep(REAP_ROUND);
                        wait_for(first);
                        for pid in rx.try_iter() {
                            wait_for(pid);
                        }
                    }
                });
            match spawned {
                Ok(_) => Some(tx),
                Err(e) => {
                    tracing::warn!("parjob: cannot start a thread to reap children: {e}");
                    None
                }
            }
        })
        .as_ref()
}

/// Sends `SIGKILL` to a child that has not been reaped yet (so its pid is still its own).
pub(crate) fn kill(pid: libc::pid_t) {
    // SAFETY: `kill` has no memory preconditions; the caller guarantees the pid is still
    // our unreaped child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// The outcome length in a `REPLY` frame that starts `bytes`, once its header is complete.
fn expected_len(bytes: &[u8]) -> Option<usize> {
    if bytes.first() != Some(&REPLY) || bytes.len() < 9 {
        return None;
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[1..9]);
    usize::try_from(u64::from_le_bytes(len)).ok()
}
