//! Each system runs in a child process of its own, so that its memory is its own and its
//! pools stay warm between rounds. The parent drives it over a line protocol on the child's
//! stdin and stdout, the same for this binary (`--serve`) and for `joblib_bench.py`:
//!
//! ```text
//! child:  ready                      | unavailable <why>     (once, at start)
//! parent: run <count> <reps>          child: ok <nanoseconds> <checksum> | err <why>
//!         (the workload `reps` times back to back; the median time)
//! parent: quit                        child: bye <largest ru_maxrss of reaped children, KiB>
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::memory::{self, Memory};
use crate::native::NativeSystem;
use crate::system::System;
use crate::workload::{Spec, Workload};

/// The first argument that makes this binary serve one system.
pub const SERVE_ARG: &str = "--serve";

/// How long the parent waits for one reply before it gives the child up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(600);

/// The child side: `--serve <system> <workload> <spin_us> <jobs>`. Returns the exit code.
pub fn serve(args: &[String]) -> i32 {
    // Under mpirun every rank runs this; ranks other than 0 serve tasks inside `init` and
    // exit there. Rank 0 keeps the session until it quits.
    #[cfg(feature = "mpi")]
    let _session = match args.first().map(String::as_str) {
        Some(id) if System::parse(id) == Some(System::ParjobMpi) => match parjob::mpi::init() {
            Ok(session) => Some(session),
            Err(e) => {
                println!("unavailable cannot start MPI: {}", one_line(&e.to_string()));
                return 0;
            }
        },
        _ => None,
    };
    let mut out = std::io::stdout().lock();
    let setup = parse_serve_args(args).and_then(|(system, spec, jobs)| {
        NativeSystem::new(system, jobs).map(|native| (native, spec))
    });
    let (native, spec) = match setup {
        Ok(ok) => ok,
        Err(why) => {
            let _ = writeln!(out, "unavailable {}", one_line(&why));
            return 0;
        }
    };
    if spec.workload == Workload::W4 {
        crate::native::keep_freed_memory();
    }
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let reply = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["run", count, reps] => match (count.parse::<usize>(), reps.parse::<usize>()) {
                (Ok(count), Ok(reps)) => match repeat(&native, &spec.with_count(count), reps) {
                    Ok((elapsed, checksum)) => format!("ok {} {checksum}", elapsed.as_nanos()),
                    Err(why) => format!("err {}", one_line(&why)),
                },
                _ => format!("err bad request {line:?}"),
            },
            ["quit"] => {
                let (_, reaped) = memory::own_and_reaped_kib();
                let _ = writeln!(out, "bye {reaped}");
                let _ = out.flush();
                return 0;
            }
            _ => format!("err unknown request {line:?}"),
        };
        if writeln!(out, "{reply}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    0
}

/// Runs `spec` `reps` times back to back; the median time, and the checksum, which must be
/// the same every time.
fn repeat(native: &NativeSystem, spec: &Spec, reps: usize) -> Result<(Duration, u64), String> {
    let mut times = Vec::with_capacity(reps);
    let mut checksum = None;
    for _ in 0..reps.max(1) {
        let (t, c) = native.run(spec)?;
        if checksum.is_some_and(|prev| prev != c) {
            return Err(format!("results differ between repetitions ({c:#x})"));
        }
        checksum = Some(c);
        times.push(t.as_secs_f64());
    }
    let median = crate::stats::median(&times);
    Ok((Duration::from_secs_f64(median), checksum.unwrap_or(0)))
}

fn parse_serve_args(args: &[String]) -> Result<(System, Spec, usize), String> {
    let [system, workload, spin_us, jobs] = args else {
        return Err(format!(
            "usage: {SERVE_ARG} <system> <workload> <spin_us> <jobs>, got {args:?}"
        ));
    };
    let system = System::parse(system).ok_or_else(|| format!("unknown system {system:?}"))?;
    let workload =
        Workload::parse(workload).ok_or_else(|| format!("unknown workload {workload:?}"))?;
    let spin_us = spin_us.parse().map_err(|_| "bad spin_us".to_string())?;
    let jobs = jobs.parse().map_err(|_| "bad jobs".to_string())?;
    let spec = Spec {
        spin_us,
        ..workload.spec(false)
    };
    Ok((system, spec, jobs))
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// The parent side: a child process serving one system for one workload.
pub struct ChildSystem {
    child: Child,
    stdin: ChildStdin,
    replies: Receiver<String>,
    stderr_tail: Arc<Mutex<String>>,
}

/// How a child answered its start.
pub enum Started {
    /// It is ready for `run` requests.
    Ready(ChildSystem),
    /// It cannot run this system here, and says why.
    Unavailable(String),
}

impl ChildSystem {
    /// Starts `cmd` (which must speak the protocol) and waits for its first line.
    pub fn start(mut cmd: Command) -> Result<Started, String> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, replies) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr_tail = Arc::new(Mutex::new(String::new()));
        let tail = Arc::clone(&stderr_tail);
        std::thread::spawn(move || keep_tail(stderr, &tail));
        let mut me = ChildSystem {
            child,
            stdin,
            replies,
            stderr_tail,
        };
        let first = me.reply()?;
        if first == "ready" {
            Ok(Started::Ready(me))
        } else if let Some(why) = first.strip_prefix("unavailable ") {
            let why = why.to_string();
            me.kill();
            Ok(Started::Unavailable(why))
        } else {
            let err = me.protocol_error(&first);
            me.kill();
            Err(err)
        }
    }

    /// Runs the workload `reps` times with `count` tasks (calls for W5); the median time.
    pub fn run(&mut self, count: usize, reps: usize) -> Result<(Duration, u64), String> {
        self.send(&format!("run {count} {reps}"))?;
        let line = self.reply()?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["ok", nanos, checksum] => {
                let nanos: u64 = nanos.parse().map_err(|_| self.protocol_error(&line))?;
                let checksum: u64 = checksum.parse().map_err(|_| self.protocol_error(&line))?;
                Ok((Duration::from_nanos(nanos), checksum))
            }
            _ => match line.strip_prefix("err ") {
                Some(why) => Err(why.to_string()),
                None => Err(self.protocol_error(&line)),
            },
        }
    }

    /// Reads the peak memory of the child and its workers, then ends it.
    pub fn quit(mut self) -> Memory {
        let pid = self.child.id();
        // Read before `quit`: the workers are still alive, so their peaks can be read.
        let before = memory::of_tree(pid, 0);
        let reaped = self
            .send("quit")
            .and_then(|()| self.reply())
            .ok()
            .and_then(|l| l.strip_prefix("bye ")?.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let _ = self.child.wait();
        Memory {
            workers_kib: if before.workers == 0 {
                reaped
            } else {
                before.workers_kib
            },
            ..before
        }
    }

    /// Ends the child at once.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn send(&mut self, line: &str) -> Result<(), String> {
        writeln!(self.stdin, "{line}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("the child stopped listening ({e}){}", self.tail()))
    }

    fn reply(&mut self) -> Result<String, String> {
        match self.replies.recv_timeout(REPLY_TIMEOUT) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                Err(format!(
                    "no reply within {} s; the child was killed{}",
                    REPLY_TIMEOUT.as_secs(),
                    self.tail()
                ))
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                // Give the stderr reader a moment to take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                Err(format!("the child ended ({status}){}", self.tail()))
            }
        }
    }

    fn protocol_error(&self, line: &str) -> String {
        format!("unexpected reply {line:?}{}", self.tail())
    }

    fn tail(&self) -> String {
        let tail = self
            .stderr_tail
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default();
        let tail = tail.trim();
        if tail.is_empty() {
            String::new()
        } else {
            format!("; its stderr ends with: {}", one_line(tail))
        }
    }
}

impl Drop for ChildSystem {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// Keeps the last 2 KiB of a child's stderr, for error messages.
fn keep_tail(mut stderr: impl Read, tail: &Mutex<String>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = stderr.read(&mut buf) {
        if n == 0 {
            break;
        }
        let Ok(mut t) = tail.lock() else { break };
        t.push_str(&String::from_utf8_lossy(&buf[..n]));
        if t.len() > 2048 {
            let mut cut = t.len() - 2048;
            while !t.is_char_boundary(cut) {
                cut += 1;
            }
            t.drain(..cut);
        }
    }
}
