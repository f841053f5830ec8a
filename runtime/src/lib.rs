//! # parjob
//!
//! joblib's `Parallel`, `delayed` and `parallel_backend` for Rust. A parallel call says
//! *what* to run; the backend scope active around it says *where*: on threads, in worker
//! processes, or nowhere but the calling thread. Library code makes plain `Parallel` calls,
//! and its callers choose the backend for all of them with one scope.
//!
//! ```
//! use parjob::{parallel_backend, Parallel};
//!
//! fn neg(x: i64) -> i64 {
//!     -x
//! }
//!
//! // `with parallel_backend('threading'):` — a scope guard.
//! let _scope = parallel_backend("threading").enter()?;
//! let out = Parallel::new().run((0..5).map(|i| move || neg(i + 1)))?;
//! assert_eq!(out, [-1, -2, -3, -4, -5]);
//! # Ok::<(), parjob::Error>(())
//! ```
//!
//! ## Concepts
//!
//! - [`Parallel`] configures one call: `map` a function over items, `run` tasks, their
//!   fallible `try_*` forms, and streaming forms that yield results as they come.
//! - [`parallel_backend`](fn@parallel_backend) and [`parallel_config`] make
//!   [`BackendScope`]s: thread-local settings (backend, `n_jobs`, verbosity, hints) that
//!   every call inside inherits.
//! - The macros [`parallel!`](parallel), [`delayed!`](delayed) and
//!   [`#[parallel_backend]`](macro@parallel_backend) write the same with joblib's look, and
//!   check at compile time what can be checked then.
//! - A [`Backend`] runs batches of tasks. Built in: [`backend::Sequential`],
//!   [`backend::Threading`] (rayon thread pools, the default) and, on Unix,
//!   `backend::Loky` (worker processes of this same binary), `backend::Multiprocessing`
//!   (forked children) and, with the feature `mpi`, `backend::Mpi` (the ranks of an MPI
//!   job). Register your own with [`register_parallel_backend`].
//!
//! ```
//! use parjob::{delayed, parallel, parallel_backend, Parallel};
//!
//! fn neg(x: i64) -> i64 {
//!     -x
//! }
//!
//! // Every parallel call in this function runs on 4 threads, chosen at compile time.
//! #[parallel_backend("threading", n_jobs = 4)]
//! fn negate_all(xs: &[i64]) -> Result<Vec<i64>, parjob::Error> {
//!     parallel!(neg(x) for x in xs.iter().copied())
//! }
//!
//! assert_eq!(parallel!(neg(i + 1) for i in 0..5)?, [-1, -2, -3, -4, -5]);
//! assert_eq!(Parallel::new().run((0..3).map(|i| delayed!(neg(i))))?, [0, -1, -2]);
//! assert_eq!(negate_all(&[1, 2])?, [-1, -2]);
//! # Ok::<(), parjob::Error>(())
//! ```
//!
//! ## Defaults
//!
//! With no scope at all, calls use the `threading` backend with `n_jobs = -1` (every cpu):
//! Rust has no global interpreter lock, so threads are the fast default. The environment
//! variables `PARJOB_BACKEND` and `PARJOB_N_JOBS` replace these root defaults; a bad value is
//! reported by every call as [`Error::InvalidConfig`].
//!
//! Where a process backend cannot take a call's tasks (a captured value without serde, a
//! `loky` call inside a `multiprocessing` child), the call runs on threads and says why
//! (`tracing`, and stderr at `verbose > 0`). With `PARJOB_STRICT=1` in the environment it
//! fails with [`Error::WouldRunOnThreads`] instead.
//!
//! ## Nesting
//!
//! Scopes are per thread; a thread you spawn starts from the root defaults. Inside a task
//! run by a worker thread, calls see the threading backend with `n_jobs` unset (one
//! thread, unless they ask for more); one level further down, sequential. This is joblib's
//! ladder, and it keeps nested calls from multiplying threads.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_op_in_unsafe_fn)]

// The modules, bottom layer first: each uses only those above it. README.md ("Inside the
// runtime") says what each layer holds; `python3 ../shared/tools/layers.py runtime/src
// --files` checks the order.
mod cpu;
mod error;
mod n_jobs;
mod sync;

pub mod remote;

mod job;

#[cfg(all(unix, feature = "mpi"))]
mod cluster;
mod process;

pub mod backend;

mod registry;

mod scope;

mod parallel;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
mod host;
#[cfg(all(unix, feature = "mpi"))]
#[cfg_attr(docsrs, doc(cfg(all(unix, feature = "mpi"))))]
pub mod mpi;

#[cfg(test)]
mod fuzz;

#[doc(inline)]
pub use parjob_macros::{delayed, parallel, parallel_backend};

pub use backend::{Backend, BackendSpec, NestedScope, ParamValue};
pub use cpu::cpu_count;
pub use error::Error;
/// The progress-bar crate of [`Parallel::progress_bar`], re-exported so that a program
/// names the very version parjob draws with.
pub use indicatif;
pub use job::{ForkJob, ForkWork, Job, LocalJob, PoolRequest, RemoteJob, RemoteReply};
pub use parallel::{BatchSize, Delayed, KeepGoing, Parallel, PreDispatch, Progress, Task};
pub use registry::{register_parallel_backend, registered};
pub use remote::Shared;
pub use scope::{
    ActiveBackend, BackendGuard, BackendScope, Prefer, Require, effective_n_jobs,
    get_active_backend, parallel_backend, parallel_config,
};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;
