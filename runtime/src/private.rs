//! What the macros' generated code names, as `::parjob::__private::…`. Not part of the API:
//! it changes without notice.

use std::fmt;
use std::marker::PhantomData;

pub use crate::backend::{BackendSpec, ParamValue};
pub use crate::error::Error;
pub use crate::parallel::{Applied, BatchSize, Callable, Delayed, Parallel, PreDispatch, Thunk};
pub use crate::remote::probe::{
    Filtered, Plain, RemoteMap, RemoteProbe, ResultCodec, ResultsLocal, ResultsViaRef,
    ResultsViaSerde, Shape, Transferable, ViaRefItem, ViaRefResult, ViaSerde, ViaShared,
};
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

/// How many `Shared` values this process keeps for its parent now, and how many its parent
/// sent it in all: what tests ask a worker.
pub fn kept_shared() -> (usize, u64) {
    crate::remote::attach::kept()
}

/// A backend name the macro already checked against the built-in ones.
pub fn builtin(name: &'static str) -> BackendSpec {
    crate::registry::registered(name)
}

/// Enters a scope for the macros: a scope that cannot be entered makes every call inside
/// it return the error, since the annotated function may have no `Result` to return.
pub fn enter_scope(scope: BackendScope) -> BackendGuard {
    scope.enter_or_poison()
}

/// `parallel!(EXPR for PAT in ITER if COND)` on a shared-memory backend named at compile
/// time: the body returns `None` for items the condition filters out.
pub fn comprehension<It, I, R, F>(parallel: Parallel, items: It, f: F) -> Result<Vec<R>, Error>
where
    It: IntoIterator<Item = I>,
    I: Send,
    R: Send,
    F: Fn(I) -> Option<R> + Sync,
{
    Ok(parallel.map(items, f)?.into_iter().flatten().collect())
}

/// `parallel!(EXPR for PAT in ITER)` on a shared-memory backend named at compile time: a
/// plain `map`.
pub fn map_comprehension<It, I, R, F>(parallel: Parallel, items: It, f: F) -> Result<Vec<R>, Error>
where
    It: IntoIterator<Item = I>,
    I: Send,
    R: Send,
    F: Fn(I) -> R + Sync,
{
    parallel.map(items, f)
}

/// A comprehension whose types are now fixed, so that the probes can ask whether its tasks
/// can run in another process. `K` is its shape: [`Plain`] (one result per item, run as a
/// plain `map`) or [`Filtered`] (an `Option` per item, flattened).
pub struct Comprehension<It, F, K> {
    items: It,
    body: F,
    shape: PhantomData<K>,
}

impl<It, F, K> fmt::Debug for Comprehension<It, F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Comprehension")
    }
}

/// Builds a [`Comprehension`] without a condition; the body's parameter type is inferred
/// from `items`.
pub fn map_job<It, R, F>(items: It, body: F) -> Comprehension<It, F, Plain>
where
    It: IntoIterator,
    F: Fn(It::Item) -> R,
{
    Comprehension {
        items,
        body,
        shape: PhantomData,
    }
}

/// Builds a [`Comprehension`] with a condition; the body's parameter type is inferred from
/// `items`.
pub fn comprehension_job<It, R, F>(items: It, body: F) -> Comprehension<It, F, Filtered>
where
    It: IntoIterator,
    F: Fn(It::Item) -> Option<R>,
{
    Comprehension {
        items,
        body,
        shape: PhantomData,
    }
}

impl<It: IntoIterator, F, K> Comprehension<It, F, K> {
    /// The body, for checks on its types.
    pub fn body_ref(&self) -> &F {
        &self.body
    }

    /// Runs the comprehension; `remote` lets a process backend take it, `results` lets a
    /// forking one (the body may then capture anything).
    pub fn run<R>(
        self,
        parallel: Parallel,
        remote: Option<RemoteMap<It::Item, K::Out>>,
        results: Option<ResultCodec<K::Out>>,
    ) -> Result<Vec<R>, Error>
    where
        K: Collect<R>,
        It::Item: Send,
        K::Out: Send,
        F: Fn(It::Item) -> K::Out + Sync,
    {
        let outs = parallel.map_maybe_remote(self.items, self.body, remote, results)?;
        Ok(K::collect(outs))
    }
}

impl<It: IntoIterator, R, F: Fn(It::Item) -> R> Comprehension<It, F, Plain> {
    /// The probe for `(&probe).remote_map()` and `(&probe).result_codec()`.
    pub fn probe(&self) -> RemoteProbe<It::Item, R, F, Plain> {
        RemoteProbe::plain(&self.body)
    }
}

impl<It: IntoIterator, R, F: Fn(It::Item) -> Option<R>> Comprehension<It, F, Filtered> {
    /// The probe for `(&probe).remote_map()` and `(&probe).result_codec()`.
    pub fn probe(&self) -> RemoteProbe<It::Item, R, F, Filtered> {
        RemoteProbe::filtered(&self.body)
    }
}

/// How a comprehension of shape `Self` turns its tasks' outputs into its results.
pub trait Collect<R>: Shape<R> {
    /// The results, in input order.
    fn collect(outs: Vec<Self::Out>) -> Vec<R>;
}

impl<R> Collect<R> for Plain {
    fn collect(outs: Vec<R>) -> Vec<R> {
        outs
    }
}

impl<R> Collect<R> for Filtered {
    fn collect(outs: Vec<Option<R>>) -> Vec<R> {
        outs.into_iter().flatten().collect()
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

impl<A, F> fmt::Debug for DelayedCall<A, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DelayedCall")
    }
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
    pub fn finish<R>(self, remote: Option<RemoteMap<A, R>>) -> Delayed<Applied<F>, A>
    where
        F: FnOnce(A) -> R,
    {
        Delayed::__with_args(self.args, self.call, remote)
    }
}
