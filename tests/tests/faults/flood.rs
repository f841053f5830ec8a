//! Fault 9 of the matrix, tasks flood stdout and stderr: the call completes and every
//! byte comes out, tested in a child process so that the flood stays out of this run.

use crate::harness::{CALL_LIMIT, child_command, run_child, within};
use crate::tasks::{FLOOD, flood};
use parjob_tests::{is_child, par, run_on};
use std::time::Duration;

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
    let (status, out, err) =
        run_child(child_command(module_path!(), test), Duration::from_secs(60));
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
