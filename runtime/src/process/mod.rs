//! Worker processes: the engine under the `loky` backend.
//!
//! A [`WorkerPool`] starts workers by re-executing the current binary with the environment
//! variable `PARJOB_WORKER` set to the numbers of two inherited pipe ends. Every binary that
//! links parjob carries a constructor ([`bootstrap`]) that runs before `main`, sees the
//! variable, and turns the process into a worker ([`worker`]): it never runs `main`. That is
//! what lets any binary, test harness included, host workers without cooperating.
//!
//! Parent and worker speak length-prefixed postcard frames ([`wire`]): a handshake that
//! checks both run the same build, then one batch at a time. A worker exits when its parent
//! dies (pipe end of file, and `PR_SET_PDEATHSIG` on Linux), when told to, or on any
//! protocol error; the pool notices a worker that died, reports the batch it held as
//! [`Error::WorkerDied`](crate::Error::WorkerDied) naming the signal or exit code, reaps it,
//! and starts a replacement when there is work for it.
//!
//! Workers share the parent's stdout and stderr (a `println!` in a task shows up where the
//! parent's output goes) and the parent's process group (Ctrl-C reaches them too, and the
//! default action ends them); their stdin is `/dev/null`.
//!
//! # Caveat
//!
//! The constructor is linked only into binaries that link parjob: a binary that never
//! references parjob (directly or through a dependency that does) does not contain it, and
//! such a binary cannot be a worker — nor does it start pools. Binaries that do link parjob
//! but run as something else (a `cdylib` loaded by Python, a binary started through a
//! loader) re-execute the host instead; their workers fail the handshake, and calls report
//! `WorkerDied` with the worker's exit code.
//!
//! Process backends are Unix-only: everything here is `cfg(unix)`.

#[cfg(unix)]
mod bootstrap;
#[cfg(unix)]
mod child;
#[cfg(unix)]
pub(crate) mod crew;
#[cfg(unix)]
pub(crate) mod fork;
#[cfg(unix)]
mod pool;
#[cfg(unix)]
mod shm;
#[cfg(unix)]
mod sip;
#[cfg(all(unix, test))]
mod tests;
#[cfg(unix)]
mod wire;
#[cfg(unix)]
mod worker;

#[cfg(unix)]
pub(crate) use bootstrap::become_worker_if_asked;

/// Thread-count variables of common libraries (rayon, OpenMP, OpenBLAS, MKL). A worker
/// process gets each set to its inner thread count when the call gave
/// `inner_max_num_threads`, or when the user's environment does not set it already.
pub(crate) const THREAD_VARS: [&str; 4] = [
    "RAYON_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
];

/// The value a worker's environment gives `var` ([`THREAD_VARS`]): `None` keeps what the
/// parent's environment has.
pub(crate) fn thread_var(var: &str, inner: crate::job::InnerThreads) -> Option<String> {
    (inner.explicit || std::env::var_os(var).is_none()).then(|| inner.count.to_string())
}
/// Without `PR_SET_PDEATHSIG` (every Unix but Linux): a thread of a worker process or a
/// forked child that ends it, with `_exit`, once its parent is gone, even in a long task.
/// Checks twice a second.
#[cfg(all(unix, not(target_os = "linux")))]
pub(crate) fn watch_parent(parent_pid: u32) {
    let _ = std::thread::Builder::new()
        .name("parjob-parent-watch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(500));
                // SAFETY: `getppid` cannot fail.
                if unsafe { libc::getppid() } as u32 != parent_pid {
                    // SAFETY: `_exit` ends the process without running the parent's exit
                    // handlers or flushing buffers it copied (a forked child has them).
                    unsafe { libc::_exit(0) };
                }
            }
        });
}

#[cfg(unix)]
pub(crate) use pool::{Events, PoolConfig, PoolEvent, WorkerPool};
#[cfg(all(unix, test))]
pub(crate) use wire::{fuzz_frames, seed_frames};
