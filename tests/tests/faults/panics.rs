//! Fault 1 of the matrix, a task panics: `TaskPanicked` at the task's index with its
//! message, in `run` and in a batched comprehension, and the pool heals; plus the case of a
//! forked task panicking while another thread of the caller is printing a panic.

use crate::harness::{
    CALL_LIMIT, KillOnDrop, assert_healthy, assert_nothing_left_behind, child_command,
    is_process_backend, serial, within,
};
use crate::tasks::panics_on_three;
use parjob::{Error, parallel};
use parjob_tests::{is_child, par, run_on};
use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
        child_command(
            module_path!(),
            "a_forked_task_panic_while_another_thread_prints_a_panic",
        )
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
