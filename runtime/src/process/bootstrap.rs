//! What turns a process started by a [`WorkerPool`](super::WorkerPool) into a worker, before
//! `main`: [`become_worker_if_asked`], which the crate's constructor calls.
//!
//! It runs in every process of every binary that links parjob, so the common case — the
//! variable is not set — costs one environment lookup. When `PARJOB_WORKER` is set, the
//! process serves batches and exits; `main` never runs, so a test harness, for instance,
//! neither parses its arguments nor runs a test.
//!
//! Setting the variable by hand does nothing harmful: unless its value names two pipe ends
//! over which a parjob pool completes the handshake, the process prints one line to stderr
//! and exits with code 2 (see [`NOT_FROM_POOL`]).
//!
//! Only binaries that link parjob contain this constructor: a binary that never references
//! parjob does not, and cannot be a worker.

use std::ffi::OsStr;
use std::os::fd::RawFd;

use super::worker::{self, not_from_pool};
use crate::error::catch_panic;
use crate::job::WorkerScope;

/// `"<read fd>,<write fd>"`: the worker's ends of its two pipes.
pub(crate) const WORKER_ENV: &str = "PARJOB_WORKER";

/// The thread count nested parallel calls in the worker get.
pub(crate) const INNER_ENV: &str = "PARJOB_WORKER_INNER";

/// The worker's memory file for large batch inputs, a descriptor number (Linux).
pub(crate) const SHM_ENV: &str = "PARJOB_WORKER_SHM";

/// The first argument of every worker, so that `ps` shows what the process is.
pub(crate) const MARKER_ARG: &str = "--parjob-worker";

/// Serves as a worker and exits if `PARJOB_WORKER` is set; returns at once otherwise.
/// Batches run inside the scope `worker_scope` installs. Called before `main` only.
pub(crate) fn become_worker_if_asked(worker_scope: WorkerScope) {
    let Some(value) = std::env::var_os(WORKER_ENV) else {
        return;
    };
    let inner = std::env::var_os(INNER_ENV);
    let shm = std::env::var_os(SHM_ENV);
    // SAFETY: this runs before `main`, from the loader's constructor list, so no thread of
    // ours reads the environment concurrently. Removed so that processes the tasks start do
    // not take themselves for workers.
    unsafe {
        std::env::remove_var(WORKER_ENV);
        std::env::remove_var(INNER_ENV);
        std::env::remove_var(SHM_ENV);
    }
    let inner = inner
        .and_then(|v| v.to_str()?.trim().parse::<usize>().ok())
        .filter(|&k| k > 0)
        .unwrap_or(1);
    // A descriptor that is not one of the pipe ends (checked again in `serve`).
    let shm = shm
        .and_then(|v| v.to_str()?.trim().parse::<RawFd>().ok())
        .filter(|&fd| fd > 2);
    let code = match parse_ends(&value) {
        Some(ends) if shm.is_none_or(|fd| fd != ends.0 && fd != ends.1) => {
            // A panic must not unwind out of a constructor; report it as Rust would.
            catch_panic(|| worker::serve(ends, inner, shm, worker_scope)).unwrap_or(101)
        }
        Some(_) => not_from_pool(),
        None => not_from_pool(),
    };
    std::process::exit(code);
}

/// Parses `"3,4"`: two distinct descriptors above the standard ones.
pub(crate) fn parse_ends(value: &OsStr) -> Option<(RawFd, RawFd)> {
    let (r, w) = value.to_str()?.trim().split_once(',')?;
    let r: RawFd = r.trim().parse().ok()?;
    let w: RawFd = w.trim().parse().ok()?;
    (r > 2 && w > 2 && r != w).then_some((r, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_two_distinct_non_standard_descriptors_parse() {
        let parse = |s: &str| parse_ends(OsStr::new(s));
        assert_eq!(parse("3,4"), Some((3, 4)));
        assert_eq!(parse(" 10 , 7 "), Some((10, 7)));
        for bad in [
            "", "3", "3,", "3,3", "0,1", "1,4", "a,b", "3,4,5", "-3,4", "1",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
