//! `BackendScope` (the builder) and `BackendGuard` (what keeps a scope active).

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use super::settings::{Giver, Prefer, Require, Settings};
use super::{Frame, ScopeError};
use crate::backend::{BackendSpec, ParamValue};
use crate::error::Error;
use crate::n_jobs;

/// Chooses `backend` for every parallel call on this thread while the scope is active, with
/// `n_jobs = -1` unless set: joblib's `parallel_backend`.
///
/// Nothing changes until [`enter`](BackendScope::enter) or [`run`](BackendScope::run).
/// Settings left unset are inherited from the enclosing scope.
///
/// # Examples
///
/// ```
/// use parjob::{get_active_backend, parallel_backend, Parallel};
///
/// fn library_code() -> Vec<i32> {
///     // No backend argument here: the caller's scope decides.
///     Parallel::new().map(0..4, |i| i * i).unwrap()
/// }
///
/// let squares = parallel_backend("sequential").run(library_code)?;
/// assert_eq!(squares, [0, 1, 4, 9]);
///
/// {
///     let _scope = parallel_backend("threading").n_jobs(2).enter()?;
///     assert_eq!(get_active_backend().n_jobs(), Some(2));
/// }
/// assert_eq!(get_active_backend().n_jobs(), Some(-1)); // the root default again
/// # Ok::<(), parjob::Error>(())
/// ```
pub fn parallel_backend(backend: impl Into<BackendSpec>) -> BackendScope {
    parallel_config().backend(backend).n_jobs(n_jobs::ALL_CPUS)
}

/// A scope that sets nothing yet: every field inherits from the enclosing scope until set
/// with the builder methods (joblib's `parallel_config`).
///
/// # Examples
///
/// ```
/// use parjob::{get_active_backend, parallel_backend, parallel_config};
///
/// let _outer = parallel_backend("sequential").enter()?;
/// let _inner = parallel_config().n_jobs(3).enter()?;
/// let active = get_active_backend();
/// assert_eq!(active.name(), "sequential"); // inherited
/// assert_eq!(active.n_jobs(), Some(3));
/// # Ok::<(), parjob::Error>(())
/// ```
pub fn parallel_config() -> BackendScope {
    BackendScope {
        settings: Settings::default(),
    }
}

/// The settings of a scope, before it is entered. Made by [`parallel_backend`](fn@crate::parallel_backend) or
/// [`parallel_config`].
///
/// ```
/// use parjob::{get_active_backend, parallel_backend};
///
/// let scope = parallel_backend("threading").n_jobs(2).verbose(0);
/// let (name, n_jobs) = scope.run(|| {
///     let active = get_active_backend();
///     (active.name().to_owned(), active.n_jobs())
/// })?;
/// assert_eq!((name.as_str(), n_jobs), ("threading", Some(2)));
/// # Ok::<(), parjob::Error>(())
/// ```
#[must_use = "a scope does nothing until `.enter()` or `.run(..)`"]
#[derive(Clone)]
pub struct BackendScope {
    settings: Settings,
}

impl BackendScope {
    /// Sets the backend: a name, [`registered(name)`](crate::registered) or an instance.
    ///
    /// ```
    /// let _s = parjob::parallel_config().backend("sequential").enter()?;
    /// assert_eq!(parjob::get_active_backend().name(), "sequential");
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn backend(mut self, backend: impl Into<BackendSpec>) -> Self {
        self.settings.backend = Some(backend.into());
        self
    }

    /// Sets `n_jobs`: `k > 0` workers, `-1` every cpu, `-k` all but `k - 1`. 0 is reported
    /// as [`Error::InvalidNJobs`] by the calls that run inside the scope.
    ///
    /// ```
    /// let _s = parjob::parallel_config().n_jobs(-2).enter()?;
    /// assert_eq!(parjob::get_active_backend().n_jobs(), Some(-2));
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn n_jobs(mut self, n_jobs: i32) -> Self {
        self.settings.n_jobs = Some(n_jobs);
        self
    }

    /// Sets the progress verbosity of calls inside the scope (see
    /// [`Parallel::verbose`](crate::Parallel::verbose)).
    ///
    /// ```
    /// let quiet = parjob::parallel_config().verbose(0).run(|| 1)?;
    /// assert_eq!(quiet, 1);
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn verbose(mut self, verbose: u32) -> Self {
        self.settings.verbose = Some(verbose);
        self
    }

    /// Sets the soft hint about the kind of workers (see [`Prefer`]).
    ///
    /// ```
    /// use parjob::{parallel_config, Prefer};
    /// let _s = parallel_config().prefer(Prefer::Threads).enter()?;
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn prefer(mut self, prefer: Prefer) -> Self {
        self.settings.prefer = Some(prefer);
        self
    }

    /// Sets the hard constraint on the workers (see [`Require`]).
    ///
    /// ```
    /// use parjob::{parallel_config, Require};
    /// let _s = parallel_config().require(Require::SharedMem).enter()?;
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn require(mut self, require: Require) -> Self {
        self.settings.require = Some(require);
        self
    }

    /// Limits nested parallelism inside the backend's workers: calls made inside a task use
    /// at most this many threads (process backends also export it as `RAYON_NUM_THREADS`,
    /// `OMP_NUM_THREADS` and the BLAS thread variables). Needs a backend with workers.
    ///
    /// ```
    /// use parjob::{parallel_backend, get_active_backend, Parallel};
    ///
    /// let inner = parallel_backend("threading").n_jobs(2).inner_max_num_threads(3).run(|| {
    ///     Parallel::new().map(0..2, |_| get_active_backend().n_jobs())
    /// })??;
    /// assert_eq!(inner, [Some(3), Some(3)]);
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn inner_max_num_threads(mut self, threads: usize) -> Self {
        self.settings.inner_max_num_threads = Some(threads);
        self
    }

    /// Sets one of the backend's own parameters (joblib's `backend_params`), checked when the
    /// scope is entered.
    ///
    /// ```
    /// use parjob::{parallel_backend, Error};
    ///
    /// let err = parallel_backend("threading").param("colour", "blue").enter();
    /// assert!(matches!(err, Err(Error::InvalidConfig { .. })));
    /// ```
    pub fn param(mut self, name: &str, value: impl Into<ParamValue>) -> Self {
        self.settings.params.push((name.to_owned(), value.into()));
        self
    }

    /// Makes the scope active on this thread until the returned guard is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownBackend`] for a name nobody registered; [`Error::InvalidConfig`] for a
    /// parameter the backend does not take, for parameters or `inner_max_num_threads` without
    /// a backend, for `inner_max_num_threads` on a backend without workers, and for
    /// `prefer = processes` with `require = sharedmem`.
    ///
    /// # Examples
    ///
    /// ```
    /// use parjob::{get_active_backend, parallel_backend};
    ///
    /// let guard = parallel_backend("sequential").enter()?;
    /// assert_eq!(get_active_backend().name(), "sequential");
    /// drop(guard);
    /// assert_eq!(get_active_backend().name(), "threading");
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn enter(self) -> Result<BackendGuard, Error> {
        let frame = self.frame(&super::current())?;
        Ok(BackendGuard::install(frame))
    }

    /// Runs `f` with the scope active and returns its value; the previous scope is back
    /// afterwards, also when `f` panics.
    ///
    /// # Errors
    ///
    /// As [`enter`](BackendScope::enter); `f` is not called then.
    ///
    /// # Examples
    ///
    /// ```
    /// use parjob::{parallel_backend, Parallel};
    ///
    /// let total: u64 = parallel_backend("threading")
    ///     .n_jobs(2)
    ///     .run(|| Parallel::new().map(1..=100u64, |x| x * x))??
    ///     .into_iter()
    ///     .sum();
    /// assert_eq!(total, 338_350);
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn run<R>(self, f: impl FnOnce() -> R) -> Result<R, Error> {
        let _guard = self.enter()?;
        Ok(f())
    }

    /// The frame this scope installs on top of `parent`.
    fn frame(self, parent: &Frame) -> Result<Frame, Error> {
        self.settings.over(parent, Giver::Scope)
    }

    /// Enters the scope; if that fails, enters a scope in which every call reports the error
    /// instead (the macros' form, where there is no `Result` to return).
    pub(crate) fn enter_or_poison(self) -> BackendGuard {
        let parent = super::current();
        let frame = self.frame(&parent).unwrap_or_else(|e| Frame {
            error: Some(ScopeError::from_error(&e)),
            ..(*parent).clone()
        });
        BackendGuard::install(frame)
    }
}

impl fmt::Debug for BackendScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BackendScope").field(&self.settings).finish()
    }
}

/// Keeps a scope active on the thread that entered it; dropping it restores the enclosing
/// scope, also while unwinding from a panic.
///
/// Guards may be dropped in any order: dropping one removes exactly its own scope, and the
/// scopes of the guards still alive stay in force. A guard cannot be sent to another thread
/// (scopes are thread-local).
///
/// ```compile_fail
/// let guard = parjob::parallel_backend("sequential").enter().unwrap();
/// std::thread::spawn(move || drop(guard)); // a guard is not `Send`
/// ```
#[must_use = "the scope ends when the guard is dropped: bind it with `let _guard = ...`"]
pub struct BackendGuard {
    id: u64,
    _not_send: PhantomData<*const ()>,
}

impl BackendGuard {
    fn install(frame: Frame) -> Self {
        BackendGuard {
            id: super::push(Arc::new(frame)),
            _not_send: PhantomData,
        }
    }
}

impl Drop for BackendGuard {
    fn drop(&mut self) {
        super::remove(self.id);
    }
}

impl fmt::Debug for BackendGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendGuard")
            .field("id", &self.id)
            .finish()
    }
}
