//! The physical limits of this machine, measured in the same run: what no backend can beat.
//!
//! - ideal speedup: the cpu count (n_jobs × sequential speed);
//! - a pipe round trip between two processes (1 byte there and back): the least a task
//!   sent to a worker process and answered can cost;
//! - a thread round trip (a message to another thread and back): the same for threads;
//! - a fork round trip (fork a child, read its reply, kill it): the least a call that forks
//!   its workers can cost;
//! - memcpy of 8 MiB, and 8 MiB through a pipe: what moving one W4 input costs in memory
//!   and between processes.

use std::hint::black_box;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::stats::median;
use crate::workload::W4_LEN;

/// Argument that makes this binary echo single bytes on stdin back to stdout.
pub const PIPE_ECHO_ARG: &str = "--pipe-echo";

/// Argument that makes this binary read 8 MiB messages on stdin and ack each with a byte.
pub const PIPE_SINK_ARG: &str = "--pipe-sink";

/// Bytes of one W4 input.
const W4_BYTES: usize = W4_LEN * std::mem::size_of::<f64>();

/// The pipe buffer parjob's worker pipes ask for (`F_SETPIPE_SZ`), used here too.
const PIPE_BUFFER: libc::c_int = 1 << 20;

/// The measured limits, in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Cpus available to this process (affinity and cgroup quota): the ideal speedup.
    pub cores: usize,
    /// Median round trip of one byte between two processes over pipes.
    pub pipe_round_trip: f64,
    /// Median round trip between two threads that spin on an atomic: the cache-line
    /// transfer every hand-off between running threads pays at least.
    pub spin_round_trip: f64,
    /// Median round trip of one message between two threads through a blocking std
    /// channel: a hand-off to a thread that sleeps (futex wake-up) and back.
    pub thread_round_trip: f64,
    /// Median time to fork a child, read an 8-byte reply from it through a pipe and kill it,
    /// reaped by another thread in rounds: what a call on the `multiprocessing` backend
    /// cannot beat.
    pub fork_round_trip: f64,
    /// Median time to copy 8 MiB within memory.
    pub memcpy_8mib: f64,
    /// Median time to send 8 MiB through a pipe to another process (and get a byte back).
    pub pipe_8mib: f64,
}

/// The limits measured at the start and at the end of a run. Blocking hand-offs on a
/// virtual machine vary with the host's load from one minute to the next, so the report
/// shows the lower (the best the machine showed) and both measurements.
#[derive(Debug, Clone, Default)]
pub struct LimitRuns {
    /// Each measurement, in the order taken.
    pub runs: Vec<Limits>,
}

impl LimitRuns {
    /// The lowest figure of each limit over the measurements.
    pub fn best(&self) -> Limits {
        let min = |f: fn(&Limits) -> f64| self.runs.iter().map(f).fold(f64::INFINITY, f64::min);
        Limits {
            cores: self.runs.first().map_or(0, |l| l.cores),
            pipe_round_trip: min(|l| l.pipe_round_trip),
            spin_round_trip: min(|l| l.spin_round_trip),
            thread_round_trip: min(|l| l.thread_round_trip),
            fork_round_trip: min(|l| l.fork_round_trip),
            memcpy_8mib: min(|l| l.memcpy_8mib),
            pipe_8mib: min(|l| l.pipe_8mib),
        }
    }

    /// Each measurement of one limit, formatted: `5.1 µs, 44 µs`.
    pub fn each(&self, f: fn(&Limits) -> f64) -> String {
        self.runs
            .iter()
            .map(|l| crate::stats::fmt_secs(f(l)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Limits {
    /// Measures everything; `quick` takes fewer samples.
    pub fn measure(quick: bool) -> Result<Limits, String> {
        let scale = if quick { 4 } else { 1 };
        Ok(Limits {
            cores: parjob::cpu_count(),
            pipe_round_trip: pipe_round_trip(20_000 / scale)?,
            spin_round_trip: spin_round_trip(200_000 / scale),
            thread_round_trip: thread_round_trip(20_000 / scale),
            fork_round_trip: fork_round_trip(2_000 / scale)?,
            memcpy_8mib: memcpy_8mib(40 / scale),
            pipe_8mib: pipe_8mib(24 / scale)?,
        })
    }
}

fn self_command(arg: &str) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg(arg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    Ok(cmd)
}

fn pipe_round_trip(samples: usize) -> Result<f64, String> {
    let mut child = self_command(PIPE_ECHO_ARG)?
        .spawn()
        .map_err(|e| format!("cannot start the echo child: {e}"))?;
    let mut to = child.stdin.take().ok_or("no stdin")?;
    let mut from = child.stdout.take().ok_or("no stdout")?;
    let mut byte = [7u8];
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples + 1000 {
        let start = Instant::now();
        to.write_all(&byte).map_err(|e| e.to_string())?;
        from.read_exact(&mut byte).map_err(|e| e.to_string())?;
        if i >= 1000 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    drop(to);
    let _ = child.wait();
    Ok(median(&times))
}

/// The echo child: bytes in, the same bytes out, until EOF.
pub fn pipe_echo() -> i32 {
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: plain reads and writes of a buffer we own on the standard descriptors.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return 0;
        }
        // SAFETY: as above; `n` bytes of the buffer were just read into.
        let w = unsafe { libc::write(1, buf.as_ptr().cast(), n as usize) };
        if w != n {
            return 1;
        }
    }
}

fn thread_round_trip(samples: usize) -> f64 {
    let (ping_tx, ping_rx) = std::sync::mpsc::sync_channel::<u64>(1);
    let (pong_tx, pong_rx) = std::sync::mpsc::sync_channel::<u64>(1);
    let echo = std::thread::spawn(move || {
        for v in ping_rx {
            if pong_tx.send(v).is_err() {
                break;
            }
        }
    });
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples + 1000 {
        let start = Instant::now();
        if ping_tx.send(i as u64).is_err() || pong_rx.recv().is_err() {
            break;
        }
        if i >= 1000 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    drop(ping_tx);
    let _ = echo.join();
    median(&times)
}

fn fork_round_trip(samples: usize) -> Result<f64, String> {
    let (reap_tx, reap_rx) = std::sync::mpsc::channel::<libc::pid_t>();
    // Reaped in rounds, as parjob's reaper does, so that the reaping thread seldom runs
    // while the next fork copies the caller's pages.
    let reaper = std::thread::spawn(move || {
        let reap = |pid: libc::pid_t| {
            let mut status = 0;
            // SAFETY: waits for a child of this process, with a status to fill in.
            unsafe { libc::waitpid(pid, &mut status, 0) };
        };
        while let Ok(first) = reap_rx.recv() {
            std::thread::sleep(std::time::Duration::from_millis(20));
            reap(first);
            reap_rx.try_iter().for_each(reap);
        }
    });
    let mut times = Vec::with_capacity(samples);
    let mut failed = None;
    for i in 0..samples + 50 {
        let start = Instant::now();
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `pipe` fills the two descriptors.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            failed = Some(format!("pipe: {}", std::io::Error::last_os_error()));
            break;
        }
        // SAFETY: the child only writes to the pipe and leaves with `_exit`, both
        // async-signal-safe.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let reply = [7u8; 8];
            // SAFETY: as above.
            unsafe {
                libc::write(fds[1], reply.as_ptr().cast(), reply.len());
                libc::_exit(0);
            }
        }
        // SAFETY: closes descriptors this loop made.
        unsafe { libc::close(fds[1]) };
        if pid < 0 {
            failed = Some(format!("fork: {}", std::io::Error::last_os_error()));
            // SAFETY: as above.
            unsafe { libc::close(fds[0]) };
            break;
        }
        let mut reply = [0u8; 8];
        let mut got = 0;
        while got < reply.len() {
            // SAFETY: reads into the rest of `reply`.
            let n =
                unsafe { libc::read(fds[0], reply[got..].as_mut_ptr().cast(), reply.len() - got) };
            if n <= 0 {
                break;
            }
            got += n as usize;
        }
        // SAFETY: as above; `pid` is an unreaped child of this process.
        unsafe {
            libc::close(fds[0]);
            libc::kill(pid, libc::SIGKILL);
        }
        let _ = reap_tx.send(pid);
        if i >= 50 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    drop(reap_tx);
    let _ = reaper.join();
    match failed {
        Some(e) => Err(e),
        None => Ok(median(&times)),
    }
}

fn spin_round_trip(samples: usize) -> f64 {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    // Even values are the caller's turn, odd ones the echo thread's.
    let turn = Arc::new(AtomicU64::new(0));
    let echo_turn = Arc::clone(&turn);
    let total = (samples + 1000) as u64;
    let echo = std::thread::spawn(move || {
        for i in 0..total {
            while echo_turn.load(Ordering::Acquire) != 2 * i + 1 {
                std::hint::spin_loop();
            }
            echo_turn.store(2 * i + 2, Ordering::Release);
        }
    });
    // Timed in batches of 100: one hand-off is shorter than the clock's resolution allows
    // to time alone.
    let mut times = Vec::with_capacity(samples / 100);
    let mut i = 0u64;
    while i < total {
        let start = Instant::now();
        let batch = 100.min(total - i);
        for _ in 0..batch {
            turn.store(2 * i + 1, Ordering::Release);
            while turn.load(Ordering::Acquire) != 2 * i + 2 {
                std::hint::spin_loop();
            }
            i += 1;
        }
        if i > 1000 {
            times.push(start.elapsed().as_secs_f64() / batch as f64);
        }
    }
    let _ = echo.join();
    median(&times)
}

fn memcpy_8mib(samples: usize) -> f64 {
    let src: Vec<f64> = (0..W4_LEN).map(|j| j as f64).collect();
    let mut dst = vec![1.0f64; W4_LEN];
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples + 3 {
        let start = Instant::now();
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
        if i >= 3 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    median(&times)
}

fn pipe_8mib(samples: usize) -> Result<f64, String> {
    let mut child = self_command(PIPE_SINK_ARG)?
        .spawn()
        .map_err(|e| format!("cannot start the sink child: {e}"))?;
    let mut to = child.stdin.take().ok_or("no stdin")?;
    let mut from = child.stdout.take().ok_or("no stdout")?;
    // SAFETY: `fcntl` on a descriptor we own; a failure leaves the default size.
    unsafe { libc::fcntl(to.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BUFFER) };
    let data: Vec<u8> = (0..W4_BYTES).map(|i| i as u8).collect();
    let mut ack = [0u8];
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples + 2 {
        let start = Instant::now();
        to.write_all(&data).map_err(|e| e.to_string())?;
        from.read_exact(&mut ack).map_err(|e| e.to_string())?;
        if i >= 2 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    drop(to);
    let _ = child.wait();
    Ok(median(&times))
}

/// The sink child: reads 8 MiB messages and acknowledges each with one byte, until EOF.
pub fn pipe_sink() -> i32 {
    // SAFETY: `fcntl` on our own stdout; a failure leaves the default size.
    unsafe { libc::fcntl(1, libc::F_SETPIPE_SZ, PIPE_BUFFER) };
    let mut buf = vec![0u8; PIPE_BUFFER as usize];
    let mut got = 0usize;
    loop {
        // SAFETY: reads into a buffer we own.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return 0;
        }
        got += n as usize;
        while got >= W4_BYTES {
            got -= W4_BYTES;
            // SAFETY: writes one byte we own.
            if unsafe { libc::write(1, [1u8].as_ptr().cast(), 1) } != 1 {
                return 1;
            }
        }
    }
}
