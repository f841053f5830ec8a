//! What the macros' generated code names, as `::parjob::__private::…`. Not part of the API:
//! it changes without notice.

use std::fmt;
use std::marker::PhantomData;

use crate::remote::capture::{self, Number, Serde};

pub use crate::backend::{BackendSpec, ParamValue};
pub use crate::error::Error;
pub use crate::parallel::{Applied, BatchSize, Callable, Delayed, Parallel, PreDispatch, Thunk};
pub use crate::remote::capture::{
    CaptureKinds, CaptureNumberVec, CaptureNumberVecRef, CaptureNumbers, CaptureOwned,
    CaptureProbe, CaptureRef, CaptureSlice, CaptureStays, CaptureStr, CaptureZeroSized,
};
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

/// Lets go of the large captures kept after their call for a next call over the same data:
/// workers forget them when next told what the caller dropped. For tests that count what
/// workers keep.
pub fn forget_recent_captures() {
    crate::remote::recent::forget_kept();
}

/// Whether this build maps a large `Shared` vector of numbers in place in a worker (where
/// the pages line up) rather than copying it: what tests expect of a worker.
pub fn maps_shared_vectors() -> bool {
    cfg!(target_os = "linux")
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
        let outs = parallel.map_maybe_remote(self.items, self.body, || remote, results, None)?;
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

/// A comprehension whose body uses variables of the caller (`captures`, a tuple of
/// references): the body takes them as its first argument, so that it captures nothing
/// itself and a worker process can make its own, with the captures sent once per call.
pub struct Captured<It, C, F, K> {
    items: It,
    captures: C,
    body: F,
    shape: PhantomData<K>,
}

impl<It, C, F, K> fmt::Debug for Captured<It, C, F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Captured")
    }
}

/// Builds a [`Captured`] comprehension without a condition.
pub fn captured_map_job<It, C, R, F>(items: It, captures: C, body: F) -> Captured<It, C, F, Plain>
where
    It: IntoIterator,
    F: Fn(&C, It::Item) -> R,
{
    Captured {
        items,
        captures,
        body,
        shape: PhantomData,
    }
}

/// Builds a [`Captured`] comprehension with a condition.
pub fn captured_comprehension_job<It, C, R, F>(
    items: It,
    captures: C,
    body: F,
) -> Captured<It, C, F, Filtered>
where
    It: IntoIterator,
    F: Fn(&C, It::Item) -> Option<R>,
{
    Captured {
        items,
        captures,
        body,
        shape: PhantomData,
    }
}

impl<It: IntoIterator, C, F, K> Captured<It, C, F, K> {
    /// The captures, for the probe that builds the remote form.
    pub fn captures(&self) -> &C {
        &self.captures
    }

    /// Runs the comprehension; `remote` makes the form a process backend takes (it encodes
    /// the captures, so it runs only for such a backend), `results` lets a forking one.
    pub fn run<R>(
        self,
        parallel: Parallel,
        remote: impl FnOnce(&C) -> Option<RemoteMap<It::Item, K::Out>>,
        results: Option<ResultCodec<K::Out>>,
        stays_because: Option<String>,
    ) -> Result<Vec<R>, Error>
    where
        K: Collect<R>,
        It::Item: Send,
        K::Out: Send,
        C: Sync,
        F: Fn(&C, It::Item) -> K::Out + Sync,
    {
        let Captured {
            items,
            captures,
            body,
            ..
        } = self;
        let call = |item| body(&captures, item);
        let remote = || remote(&captures);
        let outs = parallel.map_maybe_remote(items, call, remote, results, stays_because)?;
        Ok(K::collect(outs))
    }
}

impl<It: IntoIterator, C, R, F: Fn(&C, It::Item) -> R> Captured<It, C, F, Plain> {
    /// The probe for `(&&&&probe).remote_map(captures, kinds)`.
    pub fn probe(&self) -> CapturedProbe<C, It::Item, R, F, Plain> {
        CapturedProbe(PhantomData)
    }

    /// The probe for `(&&&probe).result_codec()`.
    pub fn results_probe(&self) -> RemoteProbe<It::Item, R, F, Plain> {
        RemoteProbe::of_types()
    }
}

impl<It: IntoIterator, C, R, F: Fn(&C, It::Item) -> Option<R>> Captured<It, C, F, Filtered> {
    /// The probe for `(&&&&probe).remote_map(captures, kinds)`.
    pub fn probe(&self) -> CapturedProbe<C, It::Item, R, F, Filtered> {
        CapturedProbe(PhantomData)
    }

    /// The probe for `(&&&probe).result_codec()`.
    pub fn results_probe(&self) -> RemoteProbe<It::Item, R, F, Filtered> {
        RemoteProbe::of_types()
    }
}

/// The question the probes answer for a comprehension with captures: can its tasks, with
/// the captures' kinds, go to another process?
pub struct CapturedProbe<C, I, R, F, K>(PhantomData<CapturedTypes<C, I, R, F, K>>);

type CapturedTypes<C, I, R, F, K> = (fn(&C, I) -> R, fn() -> F, K);

impl<C, I, R, F, K> fmt::Debug for CapturedProbe<C, I, R, F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CapturedProbe")
    }
}

/// The result of the captured probes: the remote form, or why there is none.
pub type CapturedRemote<I, O> = Result<Option<RemoteMap<I, O>>, String>;

/// First answer: inputs that are references stay here.
pub trait CapturedRefItem<C, I, O> {
    /// No remote form.
    fn remote_map<KS: CaptureKinds<C>>(&self, _captures: &C, _kinds: KS) -> CapturedRemote<I, O> {
        Ok(None)
    }
}

impl<C, T: ?Sized, R, F, K: Shape<R>> CapturedRefItem<C, &T, K::Out>
    for &&&CapturedProbe<C, &T, R, F, K>
{
}

/// Second answer: results that are references stay here.
pub trait CapturedRefResult<C, I, O> {
    /// No remote form.
    fn remote_map<KS: CaptureKinds<C>>(&self, _captures: &C, _kinds: KS) -> CapturedRemote<I, O> {
        Ok(None)
    }
}

impl<'a, C, I, T: ?Sized, F, K: Shape<&'a T>> CapturedRefResult<C, I, K::Out>
    for &&CapturedProbe<C, I, &'a T, F, K>
{
}

/// Third answer: serde inputs and results, and a body that captures nothing else.
pub trait CapturedSerde<C, I, O> {
    /// The remote form, if every capture can travel.
    fn remote_map<KS: CaptureKinds<C>>(&self, captures: &C, kinds: KS) -> CapturedRemote<I, O>;
}

impl<C, I: Transferable, R: Transferable, F: Fn(&C, I) -> R + Copy> CapturedSerde<C, I, R>
    for &CapturedProbe<C, I, R, F, Plain>
{
    fn remote_map<KS: CaptureKinds<C>>(&self, captures: &C, _kinds: KS) -> CapturedRemote<I, R> {
        RemoteMap::with_captures::<C, KS, F>(captures)
    }
}

impl<C, I: Transferable, R: Transferable, F: Fn(&C, I) -> Option<R> + Copy>
    CapturedSerde<C, I, Option<R>> for &CapturedProbe<C, I, R, F, Filtered>
{
    fn remote_map<KS: CaptureKinds<C>>(
        &self,
        captures: &C,
        _kinds: KS,
    ) -> CapturedRemote<I, Option<R>> {
        RemoteMap::with_captures::<C, KS, F>(captures)
    }
}

/// Last answer: shared memory only.
pub trait CapturedShared<C, I, O> {
    /// No remote form.
    fn remote_map<KS: CaptureKinds<C>>(&self, _captures: &C, _kinds: KS) -> CapturedRemote<I, O> {
        Ok(None)
    }
}

impl<C, I, R, F, K: Shape<R>> CapturedShared<C, I, K::Out> for CapturedProbe<C, I, R, F, K> {}

/// Names the captures that cannot travel (`names` in the order of `kinds`), for the
/// warning a call that then runs on threads gives.
pub fn captures_stay<C, KS: CaptureKinds<C>>(
    _captures: &C,
    _kinds: &KS,
    names: &[&str],
) -> Option<String> {
    let stay: Vec<String> = KS::staying()
        .into_iter()
        .map(|(i, type_name)| format!("`{}` (a `{type_name}`)", names.get(i).unwrap_or(&"?")))
        .collect();
    (!stay.is_empty()).then(|| {
        format!(
            "the captured {} cannot be sent there: {} without serde's traits",
            if stay.len() == 1 {
                "variable"
            } else {
                "variables"
            },
            stay.join(", ")
        )
    })
}

/// The remote form of a comprehension with captures, or none if a capture would not encode
/// (reported once, and the call runs on threads).
pub fn captured_remote<I, O>(remote: CapturedRemote<I, O>) -> Option<RemoteMap<I, O>> {
    remote.unwrap_or_else(|why| {
        tracing::warn!("parjob: a captured value cannot be sent to a worker process ({why}); running the call on threads");
        None
    })
}

/// Where a process backend is named at compile time: the body of a comprehension with
/// captures as a `fn` pointer, which it coerces to only if it captures nothing else (rustc
/// names what it captures).
pub fn captured_remote_body<It: IntoIterator, C, O>(
    _items: &It,
    _captures: &C,
    body: fn(&C, It::Item) -> O,
) -> fn(&C, It::Item) -> O {
    body
}

/// Checks that the results of a comprehension with captures can come back from a worker.
pub fn require_transferable_captured_results<C, I, R: Transferable, F: Fn(&C, I) -> R>(_body: &F) {}

/// As [`require_transferable_captured_results`], for a comprehension with a condition.
pub fn require_transferable_captured_filtered_results<C, I, R, F>(_body: &F)
where
    R: Transferable,
    F: Fn(&C, I) -> Option<R>,
{
}

/// A captured value that can be sent to a worker process: what its kind says.
#[diagnostic::on_unimplemented(
    message = "`{T}` cannot be sent to a worker process",
    label = "captured here; its type does not implement serde's `Serialize` and `DeserializeOwned`",
    note = "process backends (`loky`, `mpi`) send the variables a task uses to their workers with serde; derive `serde::Serialize` and `serde::Deserialize` for the type, wrap the value in `parjob::Shared`, or use the `threading` backend (or `multiprocessing`, whose forked children see it without serde)"
)]
pub trait Travels<T> {
    /// Rejects, when the capture is instantiated, a `Copy` value that has bytes and no
    /// serde: it could not be sent after all.
    const CHECKED: () = ();
}

impl<N: Number> Travels<&[N]> for capture::NumbersKind<N> {}
impl<N: Number> Travels<Vec<N>> for capture::NumberVecKind<N> {}
impl<N: Number> Travels<&Vec<N>> for capture::NumberVecRefKind<N> {}
impl Travels<&str> for capture::StrKind {}
impl<E: Serde> Travels<&[E]> for capture::SliceKind<E> {}
impl<T: Serde> Travels<&T> for capture::RefKind<T> {}
impl<T: Serde> Travels<T> for capture::OwnedKind {}
impl<T: Copy> Travels<T> for capture::ZeroSizedKind {
    const CHECKED: () = assert!(
        size_of::<T>() == 0,
        "a captured `Copy` value without serde's traits cannot be sent to a worker process: derive `serde::Serialize` and `serde::Deserialize` for its type"
    );
}

/// Checks, where a process backend is named at compile time, that a captured variable can
/// travel.
pub fn require_travels<T, K: Travels<T>>(_value: &T, _kind: &K) {
    #[allow(clippy::let_unit_value)]
    let () = K::CHECKED;
}

/// A `fn` pointer body with captures, for a process backend named at compile time (see
/// [`PointerProbe`]).
#[derive(Debug)]
pub struct CapturedPointerProbe<F>(pub F);

/// The remote form of a `fn` pointer body whose types can travel.
pub trait CapturedPointerSerde<C, I, O> {
    /// The remote form.
    fn remote_map<KS: CaptureKinds<C>>(&self, captures: &C, kinds: KS) -> CapturedRemote<I, O>;
}

impl<C, I: Transferable, O: Transferable> CapturedPointerSerde<C, I, O>
    for CapturedPointerProbe<fn(&C, I) -> O>
{
    fn remote_map<KS: CaptureKinds<C>>(&self, captures: &C, _kinds: KS) -> CapturedRemote<I, O> {
        RemoteMap::with_captures_pointer::<C, KS>(captures, self.0)
    }
}

/// No remote form: a type check already failed, and says why.
pub trait CapturedPointerNone<C, I, O> {
    /// None.
    fn remote_map<KS: CaptureKinds<C>>(&self, _captures: &C, _kinds: KS) -> CapturedRemote<I, O> {
        Ok(None)
    }
}

impl<C, I, O> CapturedPointerNone<C, I, O> for &CapturedPointerProbe<fn(&C, I) -> O> {}
