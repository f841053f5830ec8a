//! The fault matrix: every built-in backend (`sequential`, `threading`, `loky`,
//! `multiprocessing`) against every fault a parallel call can meet. Each cell is one test,
//! named `<fault>_<backend>` in the module of its fault family (`panics::panic_loky`);
//! `docs/RELIABILITY.md` lists the cells, what each expects and what was measured.
//!
//! Faults that end the process they happen in (a signal, `abort`, `exit`, running out of
//! memory) are tested in a child process — this test binary run again on one test — for
//! the backends whose tasks run in the caller's process, and the test asserts how that
//! child ended. Calls that might hang run under a watchdog, so that a hang fails its test.
//! The watchdog, the child processes and the process listings are in `harness`, the tasks
//! in `tasks`, and each fault family in a module of its own, numbered as in the docs.
#![cfg(unix)]

/// Generates one `#[test]` per cell of a row: `check(test_name, backend)`, where
/// `test_name` is the cell's name without its module (callers that start a child process
/// on the cell add their `module_path!()`, see `harness::child_command`).
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

mod harness;
mod tasks;

mod errors; // 2. A task returns `Err`
mod flood; // 9. A task floods stdout and stderr
mod input; // 8. The input iterator panics part-way
mod memory; // 12. A task runs out of memory
mod panics; // 1. A task panics
mod parent_death; // 10-11. The parent is killed or interrupted
mod serialisation; // 7. A result fails to serialise
mod streams; // 13. A streaming iterator is dropped half way
mod timeouts; // 3. A task exceeds the per-task timeout
mod worker_death; // 4-6. The worker process is killed, aborts or exits

use harness::{is_process_backend, serial};
use parjob_tests::{par, run_on};
use tasks::pid;

// Where the tasks run: the matrix tests what it says.
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
