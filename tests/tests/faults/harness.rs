//! The harness of the fault matrix, no fault of its own: the lock that runs cells one at a
//! time, the watchdog that turns a hang into a failure, the checks that a pool healed and
//! that nothing is left behind (read from `/proc`), and the child processes — this test
//! binary run again on one cell — for faults that end the process they happen in.

use crate::tasks::square;
use parjob_tests::procfs::{children_of, stat_of};
use parjob_tests::{par, run_on};
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One at a time: tests on process backends (they kill workers of the process's one loky
/// pool and count child processes), and tests that panic on threads of this process (a
/// `multiprocessing` fork while another thread prints a panic inherits std's panic lock
/// held; see `panics::a_forked_task_panic_while_another_thread_prints_a_panic`).
static SERIAL: Mutex<()> = Mutex::new(());

pub(crate) fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The lock for a test on `backend`: held by tests on process backends only.
pub(crate) fn serial_for(backend: &str) -> Option<MutexGuard<'static, ()>> {
    is_process_backend(backend).then(serial)
}

pub(crate) fn is_process_backend(backend: &str) -> bool {
    matches!(backend, "loky" | "multiprocessing")
}

/// Runs `f` on another thread and waits at most `limit` for it: a hang fails the test
/// instead of stalling the run. A panic in `f` is resumed here.
pub(crate) fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => resume_unwind(payload),
        Err(_) => panic!("{what}: no answer within {limit:?} (the call hangs)"),
    }
}

pub(crate) const CALL_LIMIT: Duration = Duration::from_secs(20);

/// The text of a panic payload.
pub(crate) fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string payload>".to_owned()
    }
}

/// A healthy call on `backend` after a failure: the pool healed.
pub(crate) fn assert_healthy(backend: &'static str) {
    let out = within(CALL_LIMIT, "the call after the fault", move || {
        run_on(par(backend), square, 0..10u64)
    });
    assert_eq!(
        out.unwrap_or_else(|e| panic!("{backend}: the call after the fault failed: {e}")),
        (0..10u64).map(|x| x * x).collect::<Vec<_>>()
    );
}

// ----- processes --------------------------------------------------------------------------

/// Whether `pid` names a process that still runs (a zombie has ended).
pub(crate) fn alive(pid: u32) -> bool {
    stat_of(pid).is_some_and(|(state, _)| !matches!(state, 'Z' | 'X' | 'x'))
}

fn cmdline(pid: u32) -> Option<Vec<u8>> {
    std::fs::read(format!("/proc/{pid}/cmdline")).ok()
}

/// Children of this process forked by the `multiprocessing` backend (their command line is
/// ours: they never `exec`), and zombies of any kind.
fn forked_children_and_zombies() -> Vec<(u32, char)> {
    let me = std::process::id();
    let my_cmdline = cmdline(me);
    children_of(me)
        .into_iter()
        .filter(|&(pid, state)| state == 'Z' || cmdline(pid) == my_cmdline)
        .collect()
}

/// Loky workers of this process (their first argument is `--parjob-worker`), zombies too.
fn loky_workers() -> Vec<(u32, char)> {
    children_of(std::process::id())
        .into_iter()
        .filter(|&(pid, _)| {
            cmdline(pid).is_some_and(|c| {
                c.split(|&b| b == 0)
                    .any(|arg| arg == b"--parjob-worker".as_slice())
            })
        })
        .collect()
}

/// Polls `what` for up to `limit` until it is empty; returns what is left.
pub(crate) fn settles<T>(limit: Duration, what: impl Fn() -> Vec<T>) -> Vec<T> {
    let deadline = Instant::now() + limit;
    loop {
        let left = what();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// After a failing call: no forked child left running, no zombie left unreaped, and the loky
/// pool no larger than its two workers.
pub(crate) fn assert_nothing_left_behind(backend: &str) {
    let left = settles(Duration::from_secs(2), forked_children_and_zombies);
    assert!(
        left.is_empty(),
        "{backend}: forked children or zombies left behind: {left:?}"
    );
    let workers = settles(Duration::from_secs(2), || {
        let w = loky_workers();
        if w.len() > 2 { w } else { Vec::new() }
    });
    assert!(
        workers.is_empty(),
        "{backend}: more loky workers than n_jobs: {workers:?}"
    );
}

// ----- child processes ----------------------------------------------------------------------

/// This test binary again, on test `test` of module `module` (the caller's
/// `module_path!()`) only, marked as a child.
pub(crate) fn child_command(module: &str, test: &str) -> Command {
    // libtest names a test by its path without the crate (`panics::panic_loky`), and
    // `--exact` selects that one test: a bare name would select none.
    let path = match module.split_once("::") {
        Some((_crate, family)) => format!("{family}::{test}"),
        None => test.to_owned(),
    };
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([path.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env("PARJOB_TEST_CHILD", "1")
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to its end (killed after `limit`), and returns how it ended and its output.
pub(crate) fn run_child(mut cmd: Command, limit: Duration) -> (ExitStatus, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the child");
    let drain = |mut r: Box<dyn Read + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
        });
        rx
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = err.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
            panic!("the child did not end within {limit:?}; its stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // The pipes close when every process holding them is gone.
    let out = out
        .recv_timeout(Duration::from_secs(5))
        .expect("the child's stdout stays open after it ended: a worker survived it");
    let err = err
        .recv_timeout(Duration::from_secs(5))
        .expect("the child's stderr stays open after it ended: a worker survived it");
    (status, out, err)
}

/// Kills a child process when dropped, in case a test fails half way.
pub(crate) struct KillOnDrop(pub(crate) std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
