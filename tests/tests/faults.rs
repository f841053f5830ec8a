//! The fault matrix: every built-in backend (`sequential`, `threading`, `loky`,
//! `multiprocessing`) against every fault a parallel call can meet. Each cell is one test,
//! named `<fault>_<backend>`; `docs/RELIABILITY.md` lists the cells, what each expects and
//! what was measured.
//!
//! Faults that end the process they happen in (a signal, `abort`, `exit`, running out of
//! memory) are tested in a child process — this test binary run again on one test — for
//! the backends whose tasks run in the caller's process, and the test asserts how that
//! child ended. Calls that might hang run under a watchdog, so that a hang fails its test.
#![cfg(unix)]

use parjob::{Error, Parallel, delayed, parallel};
use parjob_tests::procfs::{children_of, stat_of};
use parjob_tests::{is_child, par, run_on};
use serde::{Deserialize, Serialize, Serializer};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// One at a time: tests on process backends (they kill workers of the process's one loky
/// pool and count child processes), and tests that panic on threads of this process (a
/// `multiprocessing` fork while another thread prints a panic inherits std's panic lock
/// held; see `a_forked_task_panic_while_another_thread_prints_a_panic`).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The lock for a test on `backend`: held by tests on process backends only.
fn serial_for(backend: &str) -> Option<MutexGuard<'static, ()>> {
    is_process_backend(backend).then(serial)
}

fn is_process_backend(backend: &str) -> bool {
    matches!(backend, "loky" | "multiprocessing")
}

/// Generates one `#[test]` per cell of a row: `check(test_name, backend)`.
macro_rules! cells {
    ($check:path => { $($(#[$attr:meta])* $name:ident: $backend:literal),* $(,)? }) => {
        $(
            $(#[$attr])*
            #[test]
            fn $name() {
                $check(stringify!($name), $backend);
            }
        )*
    };
}

/// Runs `f` on another thread and waits at most `limit` for it: a hang fails the test
/// instead of stalling the run. A panic in `f` is resumed here.
fn within<T: Send + 'static>(
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

const CALL_LIMIT: Duration = Duration::from_secs(20);

/// The text of a panic payload.
fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string payload>".to_owned()
    }
}

/// A healthy call on `backend` after a failure: the pool healed.
fn assert_healthy(backend: &'static str) {
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
fn alive(pid: u32) -> bool {
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
fn settles<T>(limit: Duration, what: impl Fn() -> Vec<T>) -> Vec<T> {
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
fn assert_nothing_left_behind(backend: &str) {
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

/// This test binary again, on test `test` only, marked as a child.
fn child_command(test: &str) -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("PARJOB_TEST_CHILD", "1")
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to its end (killed after `limit`), and returns how it ended and its output.
fn run_child(mut cmd: Command, limit: Duration) -> (ExitStatus, String, String) {
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
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Tasks: plain functions with serde arguments and results, so that they travel
// ---------------------------------------------------------------------------------------

fn square(x: u64) -> u64 {
    x * x
}

fn pid(_: u32) -> u32 {
    std::process::id()
}

fn panics_on_three(x: u32) -> u32 {
    assert!(x != 3, "three is not welcome");
    x
}

fn checked(x: u32) -> Result<u32, String> {
    if x == 6 {
        Err("six is refused".into())
    } else {
        Ok(x)
    }
}

fn checked_pid(x: u32) -> Result<u32, String> {
    if x == 6 {
        Err("six is refused".into())
    } else {
        Ok(std::process::id())
    }
}

fn sleeps(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// How [`dies`] ends its process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Death {
    Kill,
    Abort,
    Exit3,
}

/// Ends its process at item 2.
fn dies((how, x): (Death, u32)) -> u32 {
    if x == 2 {
        match how {
            Death::Kill => {
                // SAFETY: `raise` takes a plain signal number; SIGKILL ends this process.
                unsafe { libc::raise(libc::SIGKILL) };
            }
            Death::Abort => std::process::abort(),
            Death::Exit3 => std::process::exit(3),
        }
        // SIGKILL is delivered before `raise` returns; never reached.
        std::thread::sleep(Duration::from_secs(10));
    }
    x
}

/// A value whose serialisation fails for 2.
#[derive(Debug, PartialEq, Eq, Deserialize)]
struct Unserialisable(u32);

impl Serialize for Unserialisable {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 2 {
            Err(serde::ser::Error::custom(
                "Unserialisable(2) refuses to serialise",
            ))
        } else {
            s.serialize_u32(self.0)
        }
    }
}

fn make_unserialisable(x: u32) -> Unserialisable {
    Unserialisable(x)
}

/// Bytes each flooding task writes to stdout, and again to stderr.
const FLOOD: usize = 1 << 20;

fn flood(x: u32) -> u32 {
    let line = format!("flood {x} {}\n", "x".repeat(100));
    let text = line.repeat(FLOOD / line.len() + 1);
    std::io::stdout().write_all(text.as_bytes()).unwrap();
    std::io::stderr().write_all(text.as_bytes()).unwrap();
    std::io::stdout().flush().unwrap();
    x
}

/// Announces its process on stdout, then sleeps.
fn announce_and_sleep(ms: u64) -> u32 {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "TASK-PID {}", std::process::id());
    let _ = out.flush();
    drop(out);
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// Reserves address space 64 MiB at a time until the allocator fails (Rust then aborts
/// with "memory allocation of N bytes failed"). Returns only without a limit.
fn hog(x: u32) -> u32 {
    if x == 1 {
        let mut held: Vec<Vec<u8>> = Vec::new();
        for _ in 0..(1usize << 14) {
            held.push(Vec::with_capacity(64 << 20));
            std::hint::black_box(&held);
        }
    }
    x
}

/// Marks its start and its end with files in `dir`, sleeping `ms` between them.
fn marked((dir, i, ms): (String, u32, u64)) -> u32 {
    let dir = Path::new(&dir);
    let _ = std::fs::write(dir.join(format!("start-{i}")), b"");
    std::thread::sleep(Duration::from_millis(ms));
    let _ = std::fs::write(dir.join(format!("end-{i}")), b"");
    i
}

// ---------------------------------------------------------------------------------------
// Where the tasks run: the matrix tests what it says
// ---------------------------------------------------------------------------------------

#[test]
fn the_matrix_tasks_run_where_each_backend_says() {
    let _serial = serial();
    let me = std::process::id();
    for backend in ["sequential", "threading", "loky", "multiprocessing"] {
        let pids = run_on(par(backend), pid, 0..4u32).unwrap();
        if is_process_backend(backend) {
            assert!(pids.iter().all(|&p| p != me), "{backend}: {pids:?}");
        } else {
            assert_eq!(pids, [me; 4], "{backend}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 1. A task panics
// ---------------------------------------------------------------------------------------

fn check_panic(_test: &str, backend: &'static str) {
    // Serialised on every backend: a thread of this process printing a panic while the
    // multiprocessing backend forks hangs the fork's own panic (see
    // `a_forked_task_panic_while_another_thread_prints_a_panic`).
    let _serial = serial();
    let r = within(CALL_LIMIT, backend, move || {
        run_on(par(backend).batch_size(1), panics_on_three, 0..8u32)
    });
    match r {
        Err(Error::TaskPanicked { index, message }) => {
            assert_eq!(index, 3, "{backend}");
            assert!(
                message.contains("three is not welcome"),
                "{backend}: {message}"
            );
        }
        other => panic!("{backend}: expected TaskPanicked at 3, got {other:?}"),
    }
    assert_healthy(backend);
    // A comprehension in batches of 4: the panicking item is the second of the second batch.
    let r = within(CALL_LIMIT, backend, move || {
        let items = (0..8u32).map(|x| (x + 6) % 8);
        parallel!(backend, n_jobs = 2, batch_size = 4; panics_on_three(x) for x in items)
    });
    assert!(
        matches!(&r, Err(Error::TaskPanicked { index: 5, message }) if message.contains("three is not welcome")),
        "{backend}: {r:?}"
    );
    assert_healthy(backend);
    if is_process_backend(backend) {
        assert_nothing_left_behind(backend);
    }
}

/// Fills this process's stderr pipe, so that the next write to it blocks until the reader
/// at the other end reads.
fn fill_stderr() {
    // SAFETY: `fcntl` on descriptor 2 with integer arguments only changes its flags; `write`
    // reads from a live buffer of the given length.
    unsafe {
        let flags = libc::fcntl(2, libc::F_GETFL);
        assert!(flags >= 0);
        libc::fcntl(2, libc::F_SETFL, flags | libc::O_NONBLOCK);
        let junk = [b'.'; 4096];
        while libc::write(2, junk.as_ptr().cast(), junk.len()) > 0 {}
        libc::fcntl(2, libc::F_SETFL, flags);
    }
}

/// A task panic in a forked child while another thread of the parent is printing a panic:
/// std's panic hook holds a global lock while it writes, the fork copies that lock held,
/// and the child's own panic hook waits for it forever. Made deterministic by a full stderr
/// pipe that keeps the other thread inside the hook during the fork.
#[test]
fn a_forked_task_panic_while_another_thread_prints_a_panic() {
    if is_child() {
        fill_stderr();
        // Blocks in the panic hook, holding std's backtrace lock, until stderr is read.
        let printer = std::thread::spawn(|| panic!("a panic whose message waits for stderr"));
        std::thread::sleep(Duration::from_millis(200));
        println!("FORKING");
        let r = within(Duration::from_secs(5), "multiprocessing", || {
            run_on(
                par("multiprocessing").batch_size(1),
                panics_on_three,
                0..4u32,
            )
        });
        assert!(
            matches!(&r, Err(Error::TaskPanicked { index: 3, .. })),
            "{r:?}"
        );
        println!("REPORTED");
        let _ = printer.join();
        return;
    }
    let mut child = KillOnDrop(
        child_command("a_forked_task_panic_while_another_thread_prints_a_panic")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the child"),
    );
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.0.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("FORKING")) {
        lines.push(
            rx.recv_timeout(Duration::from_secs(20))
                .expect("the child did not get to the call"),
        );
    }
    // The call has forked by now: let the printing thread finish.
    std::thread::sleep(Duration::from_millis(500));
    let mut stderr = child.0.stderr.take().expect("stderr");
    let drain = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    });
    let t0 = Instant::now();
    while child.0.try_wait().expect("wait").is_none() {
        assert!(t0.elapsed() < Duration::from_secs(30), "the child hangs");
        std::thread::sleep(Duration::from_millis(10));
    }
    lines.extend(rx.try_iter());
    let err = drain.join().unwrap_or_default();
    let tail = &err[err.rfind("...").map_or(0, |i| i + 3)..];
    assert!(
        lines.iter().any(|l| l.contains("REPORTED")),
        "{lines:?}\n{tail}"
    );
}

cells!(check_panic => {
    panic_sequential: "sequential",
    panic_threading: "threading",
    panic_loky: "loky",
    panic_multiprocessing: "multiprocessing",
});

// ---------------------------------------------------------------------------------------
// 2. A task returns `Err` (`try_run`, `try_map`)
// ---------------------------------------------------------------------------------------

fn check_err(_test: &str, backend: &'static str) {
    let _serial = serial_for(backend);
    let r = within(CALL_LIMIT, backend, move || {
        par(backend)
            .batch_size(1)
            .try_run((0..10u32).map(|x| delayed!(checked(x))))
    });
    match r {
        Err(Error::TaskFailed { index, source }) => {
            assert_eq!(index, 6, "{backend}");
            assert!(source.to_string().contains("six is refused"), "{source}");
        }
        other => panic!("{backend}: expected TaskFailed at 6, got {other:?}"),
    }
    let r = within(CALL_LIMIT, backend, move || {
        par(backend).try_map(0..10u32, checked)
    });
    assert!(
        matches!(&r, Err(Error::TaskFailed { index: 6, .. })),
        "{backend}: try_map gave {r:?}"
    );
    assert_healthy(backend);
}

cells!(check_err => {
    err_sequential: "sequential",
    err_threading: "threading",
    err_loky: "loky",
    err_multiprocessing: "multiprocessing",
});

/// `try_run` on a process backend with tasks that can travel runs them in worker processes.
fn check_err_runs_out_of_process(_test: &str, backend: &'static str) {
    let _serial = serial_for(backend);
    let me = std::process::id();
    let pids = within(CALL_LIMIT, backend, move || {
        par(backend).try_run((0..4u32).map(|x| delayed!(checked_pid(x))))
    })
    .unwrap();
    assert!(
        pids.iter().all(|&p| p != me),
        "{backend}: try_run ran travelling tasks in the caller: {pids:?}"
    );
}

cells!(check_err_runs_out_of_process => {
    err_in_worker_loky: "loky",
    err_in_worker_multiprocessing: "multiprocessing",
});

// ---------------------------------------------------------------------------------------
// 3. A task exceeds the per-task timeout
// ---------------------------------------------------------------------------------------

fn check_timeout(_test: &str, backend: &'static str) {
    let _serial = serial_for(backend);
    let limit = Duration::from_millis(200);
    let t0 = Instant::now();
    let r = within(CALL_LIMIT, backend, move || {
        run_on(
            par(backend).batch_size(1).timeout(limit),
            sleeps,
            [0, 3_000, 0, 0],
        )
    });
    let waited = t0.elapsed();
    match r {
        Err(Error::Timeout { index, timeout }) => {
            assert_eq!(index, 1, "{backend}");
            assert_eq!(timeout, limit, "{backend}");
        }
        other => panic!("{backend}: expected Timeout at 1, got {other:?}"),
    }
    assert!(
        waited < Duration::from_millis(1500),
        "{backend}: waited {waited:?} for a 200 ms timeout"
    );
    assert_healthy(backend);
    if is_process_backend(backend) {
        assert_nothing_left_behind(backend);
    }
}

/// The sequential backend runs on the calling thread, which cannot be interrupted: the
/// timeout is not enforced (documented on `Parallel::timeout`), and the call completes.
fn check_timeout_not_enforced(_test: &str, backend: &'static str) {
    let t0 = Instant::now();
    let r = within(CALL_LIMIT, backend, move || {
        run_on(
            par(backend).timeout(Duration::from_millis(50)),
            sleeps,
            [0, 300],
        )
    });
    assert_eq!(r.unwrap(), [0, 300]);
    assert!(t0.elapsed() >= Duration::from_millis(300));
}

cells!(check_timeout_not_enforced => { timeout_sequential: "sequential" });
cells!(check_timeout => {
    timeout_threading: "threading",
    timeout_loky: "loky",
    timeout_multiprocessing: "multiprocessing",
});

// ---------------------------------------------------------------------------------------
// 4-6. The worker process is killed (SIGKILL), aborts, or exits mid-task
// ---------------------------------------------------------------------------------------

fn death_of(test: &str) -> Death {
    if test.starts_with("sigkill") {
        Death::Kill
    } else if test.starts_with("abort") {
        Death::Abort
    } else {
        Death::Exit3
    }
}

/// On a process backend: `WorkerDied` at the task, naming how, and the pool heals.
fn check_worker_death(test: &str, backend: &'static str) {
    let how = death_of(test);
    let _serial = serial();
    let r = within(CALL_LIMIT, backend, move || {
        run_on(
            par(backend).batch_size(1),
            dies,
            (0..4u32).map(|x| (how, x)),
        )
    });
    let expect = match how {
        Death::Kill => "SIGKILL",
        Death::Abort => "SIGABRT",
        Death::Exit3 => "code 3",
    };
    match r {
        Err(Error::WorkerDied { index, detail }) => {
            assert_eq!(index, Some(2), "{backend}: {detail}");
            assert!(detail.contains(expect), "{backend}: {detail}");
        }
        other => panic!("{backend}: expected WorkerDied ({expect}), got {other:?}"),
    }
    assert_healthy(backend);
    assert_nothing_left_behind(backend);
}

/// On a backend whose tasks run in the caller's process, the fault ends that process: run
/// in a child, which must end exactly so, without the call returning.
fn check_caller_death(test: &str, backend: &'static str) {
    let how = death_of(test);
    if is_child() {
        let r = run_on(
            par(backend).batch_size(1),
            dies,
            (0..4u32).map(|x| (how, x)),
        );
        println!("THE CALL RETURNED {r:?}");
        return;
    }
    let (status, out, err) = run_child(child_command(test), Duration::from_secs(30));
    let ok = match how {
        Death::Kill => status.signal() == Some(libc::SIGKILL),
        Death::Abort => status.signal() == Some(libc::SIGABRT),
        Death::Exit3 => status.code() == Some(3),
    };
    assert!(
        ok,
        "{backend} {how:?}: the child ended with {status:?}\n{out}\n{err}"
    );
    assert!(!out.contains("THE CALL RETURNED"), "{out}");
}

cells!(check_caller_death => {
    sigkill_sequential: "sequential",
    sigkill_threading: "threading",
    abort_sequential: "sequential",
    abort_threading: "threading",
    exit_sequential: "sequential",
    exit_threading: "threading",
});
cells!(check_worker_death => {
    sigkill_loky: "loky",
    sigkill_multiprocessing: "multiprocessing",
    abort_loky: "loky",
    abort_multiprocessing: "multiprocessing",
    exit_loky: "loky",
    exit_multiprocessing: "multiprocessing",
});

// ---------------------------------------------------------------------------------------
// 7. A result fails to serialise
// ---------------------------------------------------------------------------------------

fn check_unserialisable(_test: &str, backend: &'static str) {
    let _serial = serial_for(backend);
    let run = within(CALL_LIMIT, backend, move || {
        run_on(par(backend).batch_size(1), make_unserialisable, 0..4u32)
    });
    // A comprehension in batches of 4: the refusing result is the second of the second batch.
    let comprehension = within(CALL_LIMIT, backend, move || {
        let items = (0..8u32).map(|x| (x + 5) % 8);
        parallel!(backend, n_jobs = 2, batch_size = 4; make_unserialisable(x) for x in items)
    });
    if is_process_backend(backend) {
        for (r, at) in [(run, 2), (comprehension, 5)] {
            match r {
                Err(e @ Error::Transport { .. }) => {
                    // The `Serialize` impl's own words reach the caller.
                    assert_eq!(
                        e.to_string(),
                        format!(
                            "transport failed at task {at}: Unserialisable(2) refuses to serialise"
                        ),
                        "{backend}"
                    );
                    assert_eq!(e.task_index(), Some(at));
                }
                other => panic!("{backend}: expected Transport at {at}, got {other:?}"),
            }
        }
        assert_healthy(backend);
        assert_nothing_left_behind(backend);
    } else {
        // Nothing is serialised on threads.
        let out = run.unwrap_or_else(|e| panic!("{backend}: {e}"));
        assert_eq!(out, (0..4).map(Unserialisable).collect::<Vec<_>>());
        let out = comprehension.unwrap_or_else(|e| panic!("{backend}: {e}"));
        let expected: Vec<_> = (0..8u32).map(|x| Unserialisable((x + 5) % 8)).collect();
        assert_eq!(out, expected);
    }
}

cells!(check_unserialisable => {
    unserialisable_sequential: "sequential",
    unserialisable_threading: "threading",
    unserialisable_loky: "loky",
    unserialisable_multiprocessing: "multiprocessing",
});

// ---------------------------------------------------------------------------------------
// 8. The input iterator panics part-way
// ---------------------------------------------------------------------------------------

/// The panic reaches the caller, as in rayon, for both call shapes (`run`, whose tasks own
/// their data, and a comprehension, which is a `map`); the call does not hang, and the
/// next one works.
fn check_input_panic(_test: &str, backend: &'static str) {
    // Serialised on every backend, as `check_panic`.
    let _serial = serial();
    type Call = fn(&'static str) -> Result<Vec<u64>, Error>;
    let shapes: [(&str, Call); 2] = [
        ("run", |backend| {
            par(backend).batch_size(1).run((0..10u64).map(|x| {
                assert!(x != 5, "the input broke at 5");
                delayed!(square(x))
            }))
        }),
        ("comprehension", |backend| {
            let items = (0..10u64).inspect(|&x| assert!(x != 5, "the input broke at 5"));
            parallel!(backend, n_jobs = 2, batch_size = 1; square(x) for x in items)
        }),
    ];
    for (shape, call) in shapes {
        let caught = within(CALL_LIMIT, backend, move || {
            catch_unwind(AssertUnwindSafe(|| call(backend))).map_err(|p| payload_text(&*p))
        });
        match caught {
            Err(message) => assert!(
                message.contains("the input broke at 5"),
                "{backend} {shape}: {message}"
            ),
            Ok(r) => panic!("{backend} {shape}: the input's panic was swallowed: {r:?}"),
        }
        assert_healthy(backend);
    }
    if is_process_backend(backend) {
        assert_nothing_left_behind(backend);
    }
}

cells!(check_input_panic => {
    input_panic_sequential: "sequential",
    input_panic_threading: "threading",
    input_panic_loky: "loky",
    input_panic_multiprocessing: "multiprocessing",
});

// ---------------------------------------------------------------------------------------
// 9. A task floods stdout and stderr
// ---------------------------------------------------------------------------------------

/// Four tasks write 1 MiB each to stdout and to stderr; the call completes. Run in a child
/// so that the flood does not reach this run's output.
fn check_flood(test: &str, backend: &'static str) {
    if is_child() {
        let r = within(CALL_LIMIT, backend, move || {
            run_on(par(backend).batch_size(1), flood, 0..4u32)
        });
        assert_eq!(r.unwrap(), [0, 1, 2, 3]);
        println!("FLOOD DONE");
        return;
    }
    let (status, out, err) = run_child(child_command(test), Duration::from_secs(60));
    assert!(
        status.success(),
        "{backend}: {status:?}\n{}",
        &err[err.len().saturating_sub(2000)..]
    );
    assert!(out.contains("FLOOD DONE"), "{backend}");
    for (name, text) in [("stdout", &out), ("stderr", &err)] {
        assert!(
            text.len() >= 4 * FLOOD,
            "{backend}: {} bytes on {name}",
            text.len()
        );
    }
}

cells!(check_flood => {
    flood_sequential: "sequential",
    flood_threading: "threading",
    flood_loky: "loky",
    flood_multiprocessing: "multiprocessing",
});

// ---------------------------------------------------------------------------------------
// 10-11. The parent is killed (SIGKILL) or interrupted (SIGINT) during a call
// ---------------------------------------------------------------------------------------

/// In the child: a call of two long tasks that announce their process on stdout.
fn long_call(backend: &'static str) {
    let r = run_on(
        par(backend).batch_size(1),
        announce_and_sleep,
        [30_000, 30_000],
    );
    println!("THE CALL RETURNED {r:?}");
}

/// How the parent of a call is stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// `signal` to the parent process only.
    Parent(libc::c_int),
    /// `signal` to the parent's whole process group, as Ctrl-C in a terminal does.
    Group(libc::c_int),
}

/// Starts the child, waits until both tasks run, stops it, and checks that it ended by the
/// signal and that no process it started (a worker, a forked child) outlives it by 1 s.
fn stop_the_parent(test: &str, backend: &'static str, stop: Stop) {
    let mut cmd = child_command(test);
    if let Stop::Group(_) = stop {
        cmd.process_group(0);
    }
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the child");
    let mut child = KillOnDrop(child);
    let child_pid = child.0.id();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.0.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut stderr = child.0.stderr.take().expect("stderr");
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    // The tasks started: their processes (or, in process, the caller) announced them. On
    // the sequential backend the second waits for the first.
    let expected = if backend == "sequential" { 1 } else { 2 };
    let mut announced: Vec<u32> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while announced.len() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                // libtest may print `test <name> ... ` on the same line first.
                if let Some((_, p)) = line.split_once("TASK-PID ") {
                    announced.push(p.trim().parse().expect("a pid"));
                }
            }
            Err(_) => panic!("{backend}: the tasks did not start; announced {announced:?}"),
        }
    }
    // Every process the child started, announced or not.
    let mut started: Vec<u32> = children_of(child_pid).into_iter().map(|(p, _)| p).collect();
    started.extend(announced.iter().filter(|&&p| p != child_pid));
    started.sort_unstable();
    started.dedup();
    if is_process_backend(backend) {
        assert!(
            announced.iter().all(|&p| p != child_pid),
            "{backend}: the tasks ran in the parent: {announced:?}"
        );
        assert!(started.len() >= 2, "{backend}: {started:?}");
    }

    let (sig, target) = match stop {
        Stop::Parent(sig) => (sig, child_pid as libc::pid_t),
        Stop::Group(sig) => (sig, -(child_pid as libc::pid_t)),
    };
    // SAFETY: `kill` takes plain integers; the target is our unreaped child (or its own
    // process group, which it leads).
    assert_eq!(unsafe { libc::kill(target, sig) }, 0);
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait for the child") {
            break status;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{backend} {stop:?}: the parent did not die"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let survivors = settles(Duration::from_secs(1), || {
        started.iter().copied().filter(|&p| alive(p)).collect()
    });
    assert!(
        survivors.is_empty(),
        "{backend} {stop:?}: processes outlived their parent by 1 s: {survivors:?}"
    );
    let stderr = err.join().unwrap_or_default();
    assert_eq!(
        status.signal(),
        Some(sig),
        "{backend} {stop:?}: the parent ended with {status:?}\n{stderr}"
    );
}

fn check_parent_sigkill(test: &str, backend: &'static str) {
    if is_child() {
        return long_call(backend);
    }
    stop_the_parent(test, backend, Stop::Parent(libc::SIGKILL));
}

fn check_parent_sigint(test: &str, backend: &'static str) {
    if is_child() {
        return long_call(backend);
    }
    stop_the_parent(test, backend, Stop::Parent(libc::SIGINT));
    stop_the_parent(test, backend, Stop::Group(libc::SIGINT));
}

cells!(check_parent_sigkill => {
    parent_sigkill_loky: "loky",
    parent_sigkill_multiprocessing: "multiprocessing",
});
cells!(check_parent_sigint => {
    parent_sigint_sequential: "sequential",
    parent_sigint_threading: "threading",
    parent_sigint_loky: "loky",
    parent_sigint_multiprocessing: "multiprocessing",
});

// ---------------------------------------------------------------------------------------
// 12. A task allocates until the OS refuses, under a memory limit
// ---------------------------------------------------------------------------------------

/// Limits this process's address space (and that of every process it starts later) to its
/// current size plus `extra` bytes.
fn limit_address_space(extra: u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let vm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize");
    let limit = vm_kb * 1024 + extra;
    let rlim = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: `setrlimit` reads the `rlimit` we own; lowering a limit needs no privilege.
    let r = unsafe { libc::setrlimit(libc::RLIMIT_AS, &rlim) };
    assert_eq!(r, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

const HOG_HEADROOM: u64 = 1 << 30;

/// On a process backend, the worker aborts ("memory allocation of N bytes failed") and the
/// call reports `WorkerDied` (SIGABRT) at the task; the parent survives and calls again.
fn check_oom_in_worker(test: &str, backend: &'static str) {
    if is_child() {
        limit_address_space(HOG_HEADROOM);
        let r = within(CALL_LIMIT, backend, move || {
            run_on(par(backend).batch_size(1), hog, 0..3u32)
        });
        match r {
            Err(Error::WorkerDied { index, detail }) => {
                assert_eq!(index, Some(1), "{detail}");
                assert!(detail.contains("SIGABRT"), "{detail}");
            }
            other => panic!("{backend}: expected WorkerDied (SIGABRT), got {other:?}"),
        }
        assert_healthy(backend);
        println!("THE PARENT SURVIVED");
        return;
    }
    let (status, out, err) = run_child(child_command(test), Duration::from_secs(60));
    assert!(status.success(), "{backend}: {status:?}\n{out}\n{err}");
    assert!(out.contains("THE PARENT SURVIVED"), "{out}");
    assert!(err.contains("memory allocation of"), "{err}");
}

/// On a backend whose tasks run in the caller, the caller itself aborts, as any Rust
/// program that runs out of memory.
fn check_oom_in_caller(test: &str, backend: &'static str) {
    if is_child() {
        limit_address_space(HOG_HEADROOM);
        let r = run_on(par(backend).batch_size(1), hog, 0..3u32);
        println!("THE CALL RETURNED {r:?}");
        return;
    }
    let (status, out, err) = run_child(child_command(test), Duration::from_secs(60));
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "{status:?}\n{out}\n{err}"
    );
    assert!(err.contains("memory allocation of"), "{err}");
    assert!(!out.contains("THE CALL RETURNED"), "{out}");
}

cells!(check_oom_in_caller => {
    oom_sequential: "sequential",
    oom_threading: "threading",
});
cells!(check_oom_in_worker => {
    oom_loky: "loky",
    oom_multiprocessing: "multiprocessing",
});

// ---------------------------------------------------------------------------------------
// 13. A streaming iterator is dropped half way
// ---------------------------------------------------------------------------------------

type BoxedStream = Box<dyn Iterator<Item = Result<u32, Error>>>;

/// In-process backends: all four streaming methods. Dropping returns at once, no task
/// starts after the drop, and the tasks running at the drop finish (threads cannot be
/// stopped), leaving no thread busy.
fn check_stream_drop_in_process(_test: &str, backend: &'static str) {
    type Open = fn(Parallel, Arc<(AtomicUsize, AtomicUsize)>) -> BoxedStream;
    let methods: [(&str, Open); 4] = [
        ("map_iter", |p, c| {
            Box::new(
                p.map_iter(0..200u32, move |i| counted(&c, i))
                    .expect("open the stream"),
            )
        }),
        ("map_unordered", |p, c| {
            Box::new(
                p.map_unordered(0..200u32, move |i| counted(&c, i))
                    .expect("open the stream"),
            )
        }),
        ("run_iter", |p, c| {
            Box::new(
                p.run_iter((0..200u32).map(move |i| {
                    let c = Arc::clone(&c);
                    move || counted(&c, i)
                }))
                .expect("open the stream"),
            )
        }),
        ("run_unordered", |p, c| {
            Box::new(
                p.run_unordered((0..200u32).map(move |i| {
                    let c = Arc::clone(&c);
                    move || counted(&c, i)
                }))
                .expect("open the stream"),
            )
        }),
    ];
    for (method, open) in methods {
        let counts = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let c = Arc::clone(&counts);
        let dropped_in = within(CALL_LIMIT, backend, move || {
            let mut stream = open(par(backend).batch_size(1), c);
            for _ in 0..3 {
                stream.next().expect("a result").expect("a good result");
            }
            let t0 = Instant::now();
            drop(stream);
            t0.elapsed()
        });
        assert!(
            dropped_in < Duration::from_millis(100),
            "{backend} {method}: the drop took {dropped_in:?}"
        );
        std::thread::sleep(Duration::from_millis(60));
        let started = counts.0.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(200));
        let (started_later, finished) = (
            counts.0.load(Ordering::SeqCst),
            counts.1.load(Ordering::SeqCst),
        );
        assert_eq!(
            started_later, started,
            "{backend} {method}: tasks kept starting after the drop"
        );
        assert!(
            started < 200,
            "{backend} {method}: every task ran ({started})"
        );
        assert_eq!(
            finished, started,
            "{backend} {method}: tasks still busy 260 ms after the drop"
        );
    }
}

fn counted(counts: &(AtomicUsize, AtomicUsize), i: u32) -> u32 {
    counts.0.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(20));
    counts.1.fetch_add(1, Ordering::SeqCst);
    i
}

/// Process backends: `run_iter` and `run_unordered` with tasks that travel. Dropping
/// returns at once, no task starts after the drop, and the workers busy with the stream's
/// tasks are killed: those tasks never finish.
fn check_stream_drop_in_processes(test: &str, backend: &'static str) {
    let _serial = serial();
    let root = std::env::temp_dir().join(format!("parjob-{test}-{}", std::process::id()));
    for ordered in [true, false] {
        let dir = root.join(if ordered { "ordered" } else { "unordered" });
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let d = dir.to_string_lossy().into_owned();
        let dropped_in = within(CALL_LIMIT, backend, move || {
            // Task 0 is quick, so it is the first result of either order; the others take
            // long enough to be mid-run at the drop.
            let tasks = (0..20u32).map(move |i| {
                let ms = if i == 0 { 100 } else { 900 };
                parjob::Delayed::remote(marked, (d.clone(), i, ms))
            });
            let p = par(backend).batch_size(1);
            let mut stream: BoxedStream = if ordered {
                Box::new(p.run_iter(tasks).expect("open the stream"))
            } else {
                Box::new(p.run_unordered(tasks).expect("open the stream"))
            };
            stream.next().expect("a result").expect("a good result");
            let t0 = Instant::now();
            drop(stream);
            t0.elapsed()
        });
        assert!(
            dropped_in < Duration::from_millis(100),
            "{backend} ordered={ordered}: the drop took {dropped_in:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
        let started = marks(&dir, "start-");
        let unfinished: Vec<u32> = started
            .iter()
            .copied()
            .filter(|i| !marks(&dir, "end-").contains(i))
            .collect();
        assert!(
            !unfinished.is_empty(),
            "{backend} ordered={ordered}: no task was running at the drop: {started:?}"
        );
        // Longer than a task: a task still running would finish by then.
        std::thread::sleep(Duration::from_millis(1000));
        assert_eq!(
            marks(&dir, "start-"),
            started,
            "{backend} ordered={ordered}: tasks started after the drop"
        );
        assert!(started.len() < 20, "{backend}: every task ran");
        let finished_after = marks(&dir, "end-");
        let finished_late: Vec<u32> = unfinished
            .iter()
            .copied()
            .filter(|i| finished_after.contains(i))
            .collect();
        assert!(
            finished_late.is_empty(),
            "{backend} ordered={ordered}: tasks {finished_late:?} of the dropped stream kept running (started {started:?})"
        );
        assert_healthy(backend);
    }
    let _ = std::fs::remove_dir_all(&root);
    assert_nothing_left_behind(backend);
}

/// The task numbers of the files `<prefix><i>` in `dir`, sorted.
fn marks(dir: &Path, prefix: &str) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix(prefix)?.parse().ok())
        .collect();
    out.sort_unstable();
    out
}

cells!(check_stream_drop_in_process => {
    stream_drop_sequential: "sequential",
    stream_drop_threading: "threading",
});
cells!(check_stream_drop_in_processes => {
    stream_drop_loky: "loky",
    stream_drop_multiprocessing: "multiprocessing",
});
