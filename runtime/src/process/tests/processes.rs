//! Tests that start copies of the test binary: as a program with `PARJOB_WORKER` set by
//! hand, or as a helper process (the `helper_process` test, selected by an environment
//! variable) that hosts a pool of its own.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use crossbeam_channel::unbounded;

use super::*;
use crate::process::wire::{self, ToWorker};
use crate::process::worker::NOT_FROM_POOL;

#[test]
fn a_hand_set_variable_exits_2_and_runs_no_test() {
    let exe = std::env::current_exe().unwrap();
    let check = |cmd: &mut Command, case: &str| {
        let out = cmd.arg("--list").stdin(Stdio::null()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
        assert!(out.stdout.is_empty(), "{case}: main ran");
        assert_eq!(stderr.lines().count(), 1, "{case}: {stderr}");
        stderr.into_owned()
    };
    for value in ["", "yes", "3,4", "0,1", "3,3", "1,2,3", "100,101"] {
        let stderr = check(Command::new(&exe).env(WORKER_ENV, value), value);
        assert!(stderr.contains(NOT_FROM_POOL), "{value}: {stderr}");
    }
    // Real pipes, but what comes through them is no handshake.
    let hello = |fingerprint| {
        let mut bytes = Vec::new();
        let hello = ToWorker::Hello {
            version: wire::PROTOCOL_VERSION,
            secret: [0; 32],
            fingerprint,
            parent_pid: std::process::id(),
        };
        wire::send(&mut bytes, &hello, &[]).unwrap();
        bytes
    };
    let wrong_build = crate::remote::EntryId::fingerprint().wrapping_add(1);
    let cases: [(&str, Option<Vec<u8>>, &str); 3] = [
        ("nothing", None, NOT_FROM_POOL),
        ("text", Some(b"hello, worker\n".to_vec()), NOT_FROM_POOL),
        ("other build", Some(hello(wrong_build)), "different build"),
    ];
    for (case, input, expected) in cases {
        let (to_child_r, mut to_child_w) = std::io::pipe().unwrap();
        let (from_child_r, from_child_w) = std::io::pipe().unwrap();
        if let Some(bytes) = &input {
            to_child_w.write_all(bytes).unwrap();
        }
        drop(to_child_w);
        let (r, w) = (to_child_r.as_raw_fd(), from_child_w.as_raw_fd());
        let mut cmd = Command::new(&exe);
        cmd.env(WORKER_ENV, "10,11");
        // SAFETY: `dup2` is async-signal-safe; the copies it makes have no close-on-exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(r, 10) < 0 || libc::dup2(w, 11) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let stderr = check(&mut cmd, case);
        assert!(stderr.contains(expected), "{case}: {stderr}");
        drop((to_child_r, from_child_w, from_child_r));
    }
}

/// Runs this test binary as a helper: `role` selects what `helper_process` does.
fn spawn_helper(role: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "process::tests::processes::helper_process",
            "--exact",
            "--nocapture",
        ])
        .env("PARJOB_TEST_HELPER", role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Panic messages of its workers' tasks would clutter this harness's output.
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Not a test by itself: the body of helper processes the tests below start.
#[test]
fn helper_process() {
    let Ok(role) = std::env::var("PARJOB_TEST_HELPER") else {
        return;
    };
    let pool = pool(2);
    match role.as_str() {
        "orphan" => {
            let a = submit(&pool, sleep_then_pid, vec![300], false);
            let b = submit(&pool, sleep_then_pid, vec![300], false);
            let pids = [outcome(&a.1, &a.2), outcome(&b.1, &b.2)].map(|p| p.unwrap().unwrap()[0]);
            println!("PIDS {} {}", pids[0], pids[1]);
            std::io::stdout().flush().unwrap();
            std::thread::sleep(WAIT);
        }
        "churn" => churn(&pool),
        "print" => {
            run(
                &pool,
                prints,
                vec!["PARJOB-MARKER-FROM-A-WORKER".to_owned()],
            )
            .unwrap()
            .unwrap();
        }
        other => panic!("unknown helper role {other}"),
    }
}

/// Children of this process: (pid, state).
fn children() -> Vec<(u32, char)> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .expect("procfs")
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let mut fields = stat.rsplit_once(") ")?.1.split(' ');
            let state = fields.next()?.chars().next()?;
            (fields.next()? == me).then_some((pid, state))
        })
        .collect()
}

fn resource_counts() -> (usize, usize) {
    let count = |dir: &str| std::fs::read_dir(dir).expect("procfs").count();
    (count("/proc/self/fd"), count("/proc/self/task"))
}

/// Both workers busy at once, so both slots have a live worker afterwards.
fn use_both_workers(pool: &WorkerPool) {
    let a = submit(pool, sleep_then_pid, vec![50], false);
    let b = submit(pool, sleep_then_pid, vec![50], false);
    assert!(outcome(&a.1, &a.2).unwrap().is_ok() && outcome(&b.1, &b.2).unwrap().is_ok());
}

/// A thousand calls with panics, aborts and kills among them, alone in a helper process
/// so that no other test moves the counts.
fn churn(pool: &WorkerPool) {
    use_both_workers(pool);
    let before = resource_counts();
    for i in 0..1000u64 {
        match i % 50 {
            10 | 30 => assert!(run(pool, picky, vec![1]).unwrap().is_err()),
            20 => assert_died(run(pool, aborts, vec![0]), "SIGABRT"),
            40 => {
                let (id, rx, map) = submit(pool, sleep_then_pid, vec![30_000], true);
                wait_started(&rx);
                pool.kill_busy(&[id]);
                assert_died(outcome(&rx, &map), "SIGKILL");
            }
            _ => assert_eq!(run(pool, double, vec![i]).unwrap().unwrap(), [2 * i]),
        }
    }
    use_both_workers(pool);
    let after = resource_counts();
    let kids = children();
    assert_eq!(kids.len(), 2, "two workers, no zombies: {kids:?}");
    assert!(kids.iter().all(|&(_, state)| state != 'Z'), "{kids:?}");
    assert_eq!(before, after, "(fds, threads) before and after");
    println!("CHURN OK {before:?}");
}

#[test]
fn many_calls_with_failures_leave_fds_threads_and_processes_flat() {
    let out = spawn_helper("churn").wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("CHURN OK"),
        "{stdout}\n{stderr}"
    );
}

#[test]
fn a_killed_parent_leaves_no_worker_alive() {
    let mut parent = spawn_helper("orphan");
    let stdout = parent.stdout.take().unwrap();
    let (tx, rx) = unbounded();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(pids) = line.strip_prefix("PIDS ") {
                let _ = tx.send(pids.to_owned());
                return;
            }
        }
    });
    let pids: Vec<u32> = rx
        .recv_timeout(WAIT)
        .expect("the helper reports its workers")
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&p| state_of(p).is_some_and(|s| s != 'Z')));
    parent.kill().unwrap();
    parent.wait().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    for p in pids {
        // Gone, or dead and waiting for init (a container's pid 1 may not reap).
        assert!(
            matches!(state_of(p), None | Some('Z')),
            "worker {p} outlived its parent"
        );
    }
}

#[test]
fn println_in_a_task_reaches_the_parents_stdout() {
    let out = spawn_helper("print").wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("PARJOB-MARKER-FROM-A-WORKER"), "{stdout}");
}
