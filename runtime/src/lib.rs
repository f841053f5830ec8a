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
//!   `backend::Loky` (worker processes of this same binary). Register your own with
//!   [`register_parallel_backend`].
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
#[cfg(test)]
mod fuzz;
#[cfg(all(unix, feature = "mpi"))]
pub mod mpi;
mod parallel;
mod process;
mod registry;
pub mod remote;
mod scope;

#[doc(inline)]
pub use parjob_macros::{delayed, parallel, parallel_backend};

pub use backend::{
    Backend, ForkJob, ForkWork, Job, NestedScope, ParamValue, PoolRequest, RemoteJob, RemoteReply,
};
pub use cpu::cpu_count;
pub use error::Error;
#[doc(hidden)]
pub use parallel::{Applied, Callable, Thunk};
pub use parallel::{BatchSize, Delayed, Parallel, PreDispatch, Progress, Task};
pub use registry::{BackendSpec, register_parallel_backend, registered};
pub use scope::{
    ActiveBackend, BackendGuard, BackendScope, Prefer, Require, effective_n_jobs,
    get_active_backend, parallel_backend, parallel_config,
};

/// What the macros' generated code names. Not part of the API: it changes without notice.
/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;

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

    /// `#[parallel_backend("mpi")]` on `main`: MPI starts here; ranks other than 0 serve
    /// tasks and exit without running the body.
    #[cfg(all(unix, feature = "mpi"))]
    pub fn mpi_main(scope: BackendScope) -> crate::mpi::MainGuard {
        crate::mpi::main_entry(scope)
    }

    /// A backend name the macro already checked against the built-in ones.
    pub fn builtin(name: &'static str) -> BackendSpec {
        crate::registered(name)
    }

    /// Enters a scope for the macros: a scope that cannot be entered makes every call inside
    /// it return the error, since the annotated function may have no `Result` to return.
    pub fn enter_scope(scope: BackendScope) -> BackendGuard {
        scope.enter_or_poison()
    }

    pub use crate::remote::{
        Filtered, Plain, RemoteMap, RemoteProbe, ResultCodec, ResultsLocal, ResultsViaRef,
        ResultsViaSerde, Transferable, ViaRefItem, ViaRefResult, ViaSerde, ViaShared,
    };

    /// `parallel!(EXPR for PAT in ITER [if COND])` without a remote form: the body returns
    /// `None` for items the condition filters out.
    pub fn comprehension<It, I, R, F>(parallel: Parallel, items: It, f: F) -> Result<Vec<R>, Error>
    where
        It: IntoIterator<Item = I>,
        I: Send,
        R: Send,
        F: Fn(I) -> Option<R> + Sync,
    {
        Ok(parallel.map(items, f)?.into_iter().flatten().collect())
    }

    impl<It, F> std::fmt::Debug for Comprehension<It, F> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Comprehension")
        }
    }

    impl<A, F> std::fmt::Debug for DelayedCall<A, F> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("DelayedCall")
        }
    }

    /// A comprehension whose types are now fixed, so that a probe can ask whether its tasks
    /// can run in another process.
    pub struct Comprehension<It, F> {
        items: It,
        body: F,
    }

    /// Builds a [`Comprehension`]; the body's parameter type is inferred from `items`.
    pub fn comprehension_job<It, R, F>(items: It, body: F) -> Comprehension<It, F>
    where
        It: IntoIterator,
        F: Fn(It::Item) -> Option<R>,
    {
        Comprehension { items, body }
    }

    impl<It, R, F> Comprehension<It, F>
    where
        It: IntoIterator,
        F: Fn(It::Item) -> Option<R>,
    {
        /// The body, for checks on its types.
        pub fn body_ref(&self) -> &F {
            &self.body
        }

        /// The probe for `(&probe).remote_map()`.
        pub fn probe(&self) -> RemoteProbe<It::Item, R, F, Filtered> {
            RemoteProbe::filtered(&self.body)
        }

        /// Runs the comprehension; `remote` lets a process backend take it, `results` lets
        /// a forking one (the body may then capture anything).
        pub fn run(
            self,
            parallel: Parallel,
            remote: Option<RemoteMap<It::Item, Option<R>>>,
            results: Option<ResultCodec<Option<R>>>,
        ) -> Result<Vec<R>, Error>
        where
            It::Item: Send,
            R: Send,
            F: Sync,
        {
            Ok(parallel
                .map_maybe_remote(self.items, self.body, remote, results)?
                .into_iter()
                .flatten()
                .collect())
        }
    }

    /// `parallel!(EXPR for PAT in ITER)` (no condition) without a remote form: a plain `map`.
    pub fn map_comprehension<It, I, R, F>(
        parallel: Parallel,
        items: It,
        f: F,
    ) -> Result<Vec<R>, Error>
    where
        It: IntoIterator<Item = I>,
        I: Send,
        R: Send,
        F: Fn(I) -> R + Sync,
    {
        parallel.map(items, f)
    }

    impl<It, F> std::fmt::Debug for MapComprehension<It, F> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("MapComprehension")
        }
    }

    /// A comprehension without a condition, its types fixed for the probes: every item
    /// gives one result, so it runs as a plain `map` (no `Option` per result).
    pub struct MapComprehension<It, F> {
        items: It,
        body: F,
    }

    /// Builds a [`MapComprehension`]; the body's parameter type is inferred from `items`.
    pub fn map_job<It, R, F>(items: It, body: F) -> MapComprehension<It, F>
    where
        It: IntoIterator,
        F: Fn(It::Item) -> R,
    {
        MapComprehension { items, body }
    }

    impl<It, R, F> MapComprehension<It, F>
    where
        It: IntoIterator,
        F: Fn(It::Item) -> R,
    {
        /// The body, for checks on its types.
        pub fn body_ref(&self) -> &F {
            &self.body
        }

        /// The probe for `(&probe).remote_map()` and `(&probe).result_codec()`.
        pub fn probe(&self) -> RemoteProbe<It::Item, R, F, Plain> {
            RemoteProbe::plain(&self.body)
        }

        /// Runs the comprehension; `remote` lets a process backend take it, `results` lets
        /// a forking one.
        pub fn run(
            self,
            parallel: Parallel,
            remote: Option<RemoteMap<It::Item, R>>,
            results: Option<ResultCodec<R>>,
        ) -> Result<Vec<R>, Error>
        where
            It::Item: Send,
            R: Send,
            F: Sync,
        {
            parallel.map_maybe_remote(self.items, self.body, remote, results)
        }
    }

    /// As [`remote_body`], for a comprehension without a condition.
    pub fn remote_map_body<It: IntoIterator, R>(
        _items: &It,
        body: fn(It::Item) -> R,
    ) -> fn(It::Item) -> R {
        body
    }

    /// As [`require_transferable_results`], for a comprehension without a condition.
    pub fn require_transferable_map_results<I, R: Transferable, F: Fn(I) -> R>(_body: &F) {}

    /// Checks, where a process backend is named at compile time, that the body captures
    /// nothing: a closure coerces to a `fn` pointer only then, and rustc names the capture.
    pub fn remote_body<It: IntoIterator, R>(
        _items: &It,
        body: fn(It::Item) -> Option<R>,
    ) -> fn(It::Item) -> Option<R> {
        body
    }

    /// Checks that the items of a comprehension can be sent to a worker process.
    pub fn require_transferable_items<It>(_items: &It)
    where
        It: IntoIterator,
        It::Item: Transferable,
    {
    }

    /// Checks that the results of a comprehension can come back from a worker process.
    pub fn require_transferable_results<I, R: Transferable, F: Fn(I) -> Option<R>>(_body: &F) {}

    /// A `fn` pointer body, for a process backend named at compile time. Its types were
    /// checked where they are written (`require_transferable_*`), so the probe only builds the
    /// remote form, and adds no second error when a check failed.
    #[derive(Debug)]
    pub struct PointerProbe<F>(pub F);

    impl<I: Transferable, R: Transferable> ViaSerde<I, R> for PointerProbe<fn(I) -> R> {
        fn remote_map(&self) -> Option<RemoteMap<I, R>> {
            Some(RemoteMap::pointer(self.0))
        }
    }

    impl<I, R> ViaShared<I, R> for &PointerProbe<fn(I) -> R> {}

    /// `delayed!(f(a, b))` before its probe: the arguments, evaluated, and the call.
    pub struct DelayedCall<A, F> {
        args: A,
        call: F,
    }

    impl<A, F> DelayedCall<A, F> {
        /// Fixes the types; `call` receives the arguments as one tuple. (`Fn`, not
        /// `FnOnce`: the bound decides the closure's kind, and the probe needs `Fn`.)
        pub fn new<R>(args: A, call: F) -> Self
        where
            F: Fn(A) -> R,
        {
            DelayedCall { args, call }
        }

        /// The probe for `(&probe).remote_map()`.
        pub fn probe<R>(&self) -> RemoteProbe<A, R, F, Plain>
        where
            F: Fn(A) -> R,
        {
            RemoteProbe::plain(&self.call)
        }

        /// The task, able to run in another process when `remote` is `Some`.
        pub fn finish<R>(
            self,
            remote: Option<RemoteMap<A, R>>,
        ) -> Delayed<crate::parallel::Applied<F>, A>
        where
            F: FnOnce(A) -> R,
        {
            Delayed::__with_args(self.args, self.call, remote)
        }
    }
}
