//! Faults 10-11 of the matrix, the parent of a call is killed (`SIGKILL`) or interrupted
//! (`SIGINT`, to it alone or to its process group) while its tasks run: the parent, a child
//! process, ends by the signal, and no process it started outlives it by 1 s.

use crate::harness::{KillOnDrop, alive, child_command, is_process_backend, settles};
use crate::tasks::announce_and_sleep;
use parjob_tests::procfs::children_of;
use parjob_tests::{is_child, par, run_on};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
    let mut cmd = child_command(module_path!(), test);
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
