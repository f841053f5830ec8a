//! The [`Backend`] trait and the built-in backends.
//!
//! A backend decides where a call's work runs. The runtime does everything else: it pulls
//! tasks from the input, cuts them into batches, keeps results in order, enforces timeouts,
//! stops on the first failure and reports progress. A backend only has to run the
//! [`Job`]s it is handed on `workers` workers.

#[cfg(unix)]
mod loky;
#[cfg(all(unix, feature = "mpi"))]
mod mpi;
#[cfg(unix)]
mod multiprocessing;
mod sequential;
mod spec;
pub(crate) mod threading;

use std::sync::{Arc, OnceLock};

#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub use loky::Loky;
#[cfg(all(unix, feature = "mpi"))]
#[cfg_attr(docsrs, doc(cfg(all(unix, feature = "mpi"))))]
pub use mpi::Mpi;
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub use multiprocessing::Multiprocessing;
pub use sequential::Sequential;
pub use spec::BackendSpec;
pub use threading::Threading;

use crate::error::Error;
use crate::job::{Job, PoolRequest};
use crate::n_jobs;

/// What nested calls inside a task see: the backend and `n_jobs` of the scope installed
/// around every batch on a worker.
///
/// ```
/// use parjob::{backend::Threading, Backend};
///
/// // joblib's ladder: threading with n_jobs unset one level down, then sequential.
/// assert_eq!(Threading::new().nested(0).backend.name(), "threading");
/// assert_eq!(Threading::new().nested(0).n_jobs, None);
/// assert_eq!(Threading::new().nested(1).backend.name(), "sequential");
/// ```
#[derive(Debug, Clone)]
pub struct NestedScope {
    /// Backend for calls made inside a task.
    pub backend: BackendSpec,
    /// `n_jobs` for calls made inside a task; `None` leaves it unset, which means 1.
    pub n_jobs: Option<i32>,
}

/// A value for a backend's own parameter, set with
/// [`BackendScope::param`](crate::BackendScope::param).
///
/// ```
/// use parjob::ParamValue;
/// use std::time::Duration;
///
/// assert_eq!(ParamValue::from(3), ParamValue::Int(3));
/// assert_eq!(ParamValue::from("x"), ParamValue::Str("x".into()));
/// assert_eq!(ParamValue::from(Duration::from_secs(1)).as_duration(), Some(Duration::from_secs(1)));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ParamValue {
    /// A flag.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// Text.
    Str(String),
    /// A length of time.
    Duration(std::time::Duration),
}

impl ParamValue {
    /// The value as a duration: a [`Duration`](ParamValue::Duration), or a number of
    /// seconds.
    pub fn as_duration(&self) -> Option<std::time::Duration> {
        match *self {
            ParamValue::Duration(d) => Some(d),
            ParamValue::Int(s) if s >= 0 => Some(std::time::Duration::from_secs(s as u64)),
            ParamValue::Float(s) => std::time::Duration::try_from_secs_f64(s).ok(),
            _ => None,
        }
    }
}

macro_rules! param_from {
    ($($t:ty => $variant:ident as $conv:ty),* $(,)?) => {$(
        impl From<$t> for ParamValue {
            fn from(v: $t) -> Self { ParamValue::$variant(<$conv>::from(v)) }
        }
    )*};
}

param_from! {
    bool => Bool as bool,
    i32 => Int as i64, i64 => Int as i64, u32 => Int as i64, u16 => Int as i64, u8 => Int as i64,
    f64 => Float as f64, f32 => Float as f64,
    &str => Str as String, String => Str as String,
    std::time::Duration => Duration as std::time::Duration,
}

/// What a backend's workers are, and so which [`Job`] variant the runtime hands to
/// [`Backend::spawn`]: the one capability the dispatcher asks a backend about.
///
/// ```
/// use parjob::backend::{Loky, Sequential, Threading, Workers};
/// use parjob::Backend;
///
/// assert_eq!(Sequential::new().workers(), Workers::CallingThread);
/// assert_eq!(Threading::new().workers(), Workers::Threads);
/// assert!(Threading::new().workers().shares_memory());
/// # #[cfg(unix)]
/// assert!(!Loky::new().workers().shares_memory());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Workers {
    /// None: every call runs as a plain loop on the calling thread, and
    /// [`spawn`](Backend::spawn) is never called. `inner_max_num_threads` means nothing here.
    CallingThread,
    /// Threads of this process: [`Job::Local`] batches, whose tasks may borrow from the
    /// caller.
    Threads,
    /// Processes running this same binary: [`Job::Remote`] batches, whose tasks, inputs and
    /// results were encoded. Work that cannot be encoded runs on threads instead.
    Processes,
    /// Forked copies of this process: [`Job::Forked`] batches, whose tasks see the caller's
    /// memory as it was at the fork; only results are encoded. Work whose results cannot be
    /// encoded runs on threads instead.
    Forks,
}

impl Workers {
    /// Whether tasks run in this process and may share memory with the caller.
    pub fn shares_memory(self) -> bool {
        matches!(self, Workers::CallingThread | Workers::Threads)
    }

    /// Whether the backend has workers of its own, so that `inner_max_num_threads` (a
    /// limit for nested calls inside them) means something.
    pub fn has_workers(self) -> bool {
        !matches!(self, Workers::CallingThread)
    }
}

/// Where the tasks of a parallel call run.
///
/// The built-in backends are [`Sequential`], [`Threading`], and on Unix [`Loky`],
/// [`Multiprocessing`] and (feature `mpi`) `Mpi`; any type implementing this trait can be
/// registered under a name with
/// [`register_parallel_backend`](crate::register_parallel_backend) or passed as an
/// instance wherever a backend is taken.
///
/// The runtime drives every call: it consumes the input lazily, cuts it into batches,
/// installs the [`nested`](Backend::nested) scope around each batch, orders the results,
/// enforces timeouts and fails fast. A backend says what its [`workers`](Backend::workers)
/// are, receives finished [`Job`]s of the matching kind through [`spawn`](Backend::spawn),
/// and only has to run each of them on one of `request.workers` workers. When the effective
/// worker count is 1, the runtime runs a plain loop on the calling thread and the backend is
/// not asked at all.
///
/// # Examples
///
/// A backend that runs every batch on a fresh thread of its own (not a good idea for speed,
/// but it shows the whole contract):
///
/// ```
/// use parjob::{register_parallel_backend, parallel_backend, Backend, Job, Parallel, PoolRequest};
///
/// struct ThreadPerBatch;
///
/// impl Backend for ThreadPerBatch {
///     fn name(&self) -> &str {
///         "thread-per-batch"
///     }
///     fn spawn(&self, _request: PoolRequest, job: Job) {
///         std::thread::spawn(move || job.run());
///     }
/// }
///
/// register_parallel_backend("thread-per-batch", || ThreadPerBatch, false)?;
/// let squares = parallel_backend("thread-per-batch")
///     .n_jobs(2)
///     .run(|| Parallel::new().map(1..=4, |x: u64| x * x))??;
/// assert_eq!(squares, [1, 4, 9, 16]);
/// # Ok::<(), parjob::Error>(())
/// ```
///
/// This example does not bound concurrency to `request.workers`; a real backend keeps a pool
/// of exactly that many workers, as [`Threading`] does.
pub trait Backend: std::any::Any + Send + Sync {
    /// The name the backend is known by, as [`ActiveBackend::name`](crate::ActiveBackend::name)
    /// reports it.
    fn name(&self) -> &str;

    /// What the backend's workers are: which [`Job`] variant [`spawn`](Backend::spawn)
    /// receives. The default, [`Workers::Threads`], sends it [`Job::Local`] only.
    fn workers(&self) -> Workers {
        Workers::Threads
    }

    /// Runs `job` on one of `request.workers` workers (the call's effective `n_jobs`, at least
    /// 2), at most that many of the call's jobs at once. The job is of the variant that
    /// [`workers`](Backend::workers) names.
    fn spawn(&self, request: PoolRequest, job: Job);

    /// Turns an `n_jobs` setting into a worker count. The default is joblib's arithmetic:
    /// `k > 0` is `k`, `-1` every cpu, `k < -1` is `max(cpus + 1 + k, 1)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidNJobs`] for 0.
    fn effective_n_jobs(&self, n_jobs: i32) -> Result<usize, Error> {
        n_jobs::resolve(n_jobs)
    }

    /// Why this backend cannot run jobs in this process, if it cannot: a call then runs on
    /// threads, with a note that says why (or fails with [`Error::WouldRunOnThreads`] under
    /// `PARJOB_STRICT`). The default is `None`: it always can.
    ///
    /// ```
    /// use parjob::backend::{Backend, Sequential};
    ///
    /// assert_eq!(Sequential::new().unavailable_here(), None);
    /// ```
    fn unavailable_here(&self) -> Option<String> {
        None
    }

    /// The scope nested calls inside a task see, given this backend's own nesting level (0 at
    /// the top). The default is joblib's ladder: threading with `n_jobs` unset one level
    /// down, sequential below that.
    fn nested(&self, nesting_level: usize) -> NestedScope {
        default_nested(nesting_level)
    }

    /// How long a batch should last when `batch_size` is automatic: long enough that handing
    /// a batch over costs little next to running it, short enough to balance the load. The
    /// default, 1 ms, suits workers in this process.
    fn ideal_batch_duration(&self) -> std::time::Duration {
        std::time::Duration::from_millis(1)
    }

    /// Sets one of the backend's own parameters (`BackendScope::param`), before first use.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a parameter the backend does not take or a bad value;
    /// the default takes none.
    fn set_param(&mut self, name: &str, value: &ParamValue) -> Result<(), Error> {
        let _ = value;
        Err(Error::config(format!(
            "backend `{}` takes no parameter `{name}`",
            self.name()
        )))
    }

    /// Called when a call gives up on jobs it already handed over (first failure, timeout, a
    /// dropped stream). Jobs not yet started skip their tasks by themselves; a backend whose
    /// workers may still be stuck in a task should replace them, so that the next call gets
    /// `workers` free workers. The default does nothing.
    fn abort(&self, request: PoolRequest) {
        let _ = request;
    }
}

pub(crate) fn default_nested(nesting_level: usize) -> NestedScope {
    static THREADING: OnceLock<Arc<dyn Backend>> = OnceLock::new();
    static SEQUENTIAL: OnceLock<Arc<dyn Backend>> = OnceLock::new();
    let backend = if nesting_level == 0 {
        THREADING.get_or_init(|| Arc::new(Threading::new()))
    } else {
        SEQUENTIAL.get_or_init(|| Arc::new(Sequential::new()))
    };
    NestedScope {
        backend: BackendSpec::from(Arc::clone(backend)),
        n_jobs: None,
    }
}

/// Whether the environment variable `PARJOB_STRICT` is set to anything but `0`, `false`,
/// `no` or nothing; read once per process.
pub(crate) fn strict() -> bool {
    static STRICT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *STRICT.get_or_init(|| {
        std::env::var("PARJOB_STRICT").is_ok_and(|v| {
            !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "" | "0" | "false" | "no"
            )
        })
    })
}

/// A backend that cannot run here (`why`) gives way to threads, saying so; under
/// `PARJOB_STRICT` the call fails instead.
pub(crate) fn instead_of(
    backend: &dyn Backend,
    why: String,
    verbose: u32,
) -> Result<Arc<dyn Backend>, Error> {
    if strict() {
        return Err(Error::WouldRunOnThreads {
            backend: backend.name().to_owned(),
            reason: why,
        });
    }
    let message = format!(
        "parjob: backend `{}` cannot run here ({why}); running the call on threads",
        backend.name()
    );
    tracing::warn!("{message}");
    if verbose > 0 {
        eprintln!("{message}");
    }
    Ok(Arc::new(Threading::new()))
}
