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
//! - [`parallel_backend`](fn@parallel_backend) and [`parallel_config`] make [`BackendScope`]s: thread-local
//!   settings (backend, `n_jobs`, verbosity, hints) that every call inside inherits.
//! - A [`Backend`] runs batches of tasks. Built in: [`backend::Sequential`] and
//!   [`backend::Threading`] (rayon thread pools, the default). Register your own with
//!   [`register_parallel_backend`].
//!
//! ## Defaults
//!
//! With no scope at all, calls use the `threading` backend with `n_jobs = -1` (every cpu):
//! Rust has no global interpreter lock, so threads are the fast default. The environment
//! variables `PARJOB_BACKEND` and `PARJOB_N_JOBS` replace these root defaults; a bad value is
//! reported by every call as [`Error::InvalidConfig`].
//!
//! ## Nesting
//!
//! Scopes are per thread; a thread you spawn starts from the root defaults. Inside a task
//! run by a worker thread, calls see the threading backend with `n_jobs` unset (one
//! thread, unless they ask for more); one level further down, sequential. This is joblib's
//! ladder, and it keeps nested calls from multiplying threads.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod backend;
mod cpu;
mod error;
mod parallel;
mod registry;
mod remote;
mod scope;

#[doc(inline)]
pub use parjob_macros::{delayed, parallel, parallel_backend};

pub use backend::{Backend, Job, NestedScope, ParamValue, PoolRequest};
pub use cpu::cpu_count;
pub use error::Error;
pub use parallel::{BatchSize, Delayed, Parallel, PreDispatch, Progress, Task};
pub use registry::{BackendSpec, register_parallel_backend, registered};
pub use scope::{
    ActiveBackend, BackendGuard, BackendScope, Prefer, Require, effective_n_jobs,
    get_active_backend, parallel_backend, parallel_config,
};

/// What the macros' generated code names. Not part of the API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::Error;
    pub use crate::backend::ParamValue;
    pub use crate::parallel::{BatchSize, Delayed, Parallel, PreDispatch};
    pub use crate::registry::BackendSpec;
    pub use crate::scope::{
        BackendGuard, BackendScope, Prefer, Require, parallel_backend, parallel_config,
    };
    pub use core::time::Duration;

    /// A backend name the macro already checked against the built-in ones.
    pub fn builtin(name: &'static str) -> BackendSpec {
        crate::registered(name)
    }

    /// Enters a scope for the macros: a scope that cannot be entered makes every call inside
    /// it return the error, since the annotated function may have no `Result` to return.
    pub fn enter_scope(scope: BackendScope) -> BackendGuard {
        scope.enter_or_poison()
    }

    /// `parallel!(EXPR for PAT in ITER [if COND])`: the body returns `None` for items the
    /// condition filters out.
    pub fn comprehension<It, I, R, F>(parallel: Parallel, items: It, f: F) -> Result<Vec<R>, Error>
    where
        It: IntoIterator<Item = I>,
        I: Send,
        R: Send,
        F: Fn(I) -> Option<R> + Sync,
    {
        Ok(parallel.map(items, f)?.into_iter().flatten().collect())
    }
}
