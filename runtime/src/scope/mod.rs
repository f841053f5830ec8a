//! The backend stack: thread-local scopes that say which backend and settings parallel calls
//! use, like joblib's `parallel_config` / `parallel_backend` context managers.

mod guard;
mod settings;

use std::any::Any;
use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

pub use guard::{BackendGuard, BackendScope, parallel_backend, parallel_config};
pub(crate) use settings::{Giver, Settings};
pub use settings::{Prefer, Require};

use crate::backend::{Backend, Threading};
use crate::error::Error;
use crate::{n_jobs, registry};

/// One level of the stack: every setting as seen at that level (inherited fields already
/// filled in), or the error that entering the level produced.
#[derive(Clone)]
pub(crate) struct Frame {
    /// `None`: the root default backend, resolved by name when a call runs.
    pub(crate) backend: Option<Arc<dyn Backend>>,
    pub(crate) n_jobs: Option<i32>,
    pub(crate) verbose: Option<u32>,
    pub(crate) prefer: Option<Prefer>,
    pub(crate) require: Option<Require>,
    pub(crate) inner_max_num_threads: Option<usize>,
    pub(crate) nesting_level: usize,
    /// Set on a scope entered by the macros whose backend could not be resolved: every call
    /// inside it reports this error.
    pub(crate) error: Option<ScopeError>,
}

/// The errors a scope can hold; cloned into each call that runs inside it.
#[derive(Clone, Debug)]
pub(crate) enum ScopeError {
    Config(String),
    UnknownBackend { name: String, known: Vec<String> },
    InvalidNJobs,
}

impl ScopeError {
    pub(crate) fn from_error(e: &Error) -> Self {
        match e {
            Error::UnknownBackend { name, known } => ScopeError::UnknownBackend {
                name: name.clone(),
                known: known.clone(),
            },
            Error::InvalidNJobs => ScopeError::InvalidNJobs,
            other => ScopeError::Config(other.to_string()),
        }
    }

    pub(crate) fn to_error(&self) -> Error {
        match self {
            ScopeError::Config(m) => Error::config(m.clone()),
            ScopeError::UnknownBackend { name, known } => Error::UnknownBackend {
                name: name.clone(),
                known: known.clone(),
            },
            ScopeError::InvalidNJobs => Error::InvalidNJobs,
        }
    }
}

impl Frame {
    fn root() -> Frame {
        let mut frame = Frame {
            backend: None,
            n_jobs: Some(n_jobs::ALL_CPUS),
            verbose: None,
            prefer: None,
            require: None,
            inner_max_num_threads: None,
            nesting_level: 0,
            error: None,
        };
        match env_n_jobs() {
            Ok(Some(n)) => frame.n_jobs = Some(n),
            Ok(None) => {}
            Err(e) => frame.error = Some(e),
        }
        frame
    }

    /// The backend of this level, or the root default resolved now.
    pub(crate) fn backend(&self) -> Result<Arc<dyn Backend>, Error> {
        if let Some(e) = &self.error {
            return Err(e.to_error());
        }
        match &self.backend {
            Some(b) => Ok(Arc::clone(b)),
            None => registry::instantiate(&registry::default_name(), &[]),
        }
    }

    fn backend_name(&self) -> String {
        match &self.backend {
            Some(b) => b.name().to_owned(),
            // Like a scope, report the instance's own name; an unknown default keeps its name.
            None => match self.backend() {
                Ok(b) => b.name().to_owned(),
                Err(_) => registry::default_name(),
            },
        }
    }
}

thread_local! {
    static STACK: RefCell<Vec<(u64, Arc<Frame>)>> = const { RefCell::new(Vec::new()) };
}

fn root_frame() -> Arc<Frame> {
    static ROOT: OnceLock<Arc<Frame>> = OnceLock::new();
    Arc::clone(ROOT.get_or_init(|| Arc::new(Frame::root())))
}

/// The frame in force on this thread.
pub(crate) fn current() -> Arc<Frame> {
    STACK
        .try_with(|s| s.borrow().last().map(|(_, f)| Arc::clone(f)))
        .ok()
        .flatten()
        .unwrap_or_else(root_frame)
}

/// Pushes `frame`; returns the id its guard removes.
pub(crate) fn push(frame: Arc<Frame>) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    // During thread teardown the stack may be gone; the frame then simply is not installed.
    let _ = STACK.try_with(|s| s.borrow_mut().push((id, frame)));
    id
}

/// Removes the frame pushed with `id`, wherever it is in the stack: guards dropped out of
/// order leave the frames of the guards still alive in place.
pub(crate) fn remove(id: u64) {
    let removed = STACK.try_with(|s| {
        let mut stack = s.borrow_mut();
        let pos = stack.iter().rposition(|(i, _)| *i == id)?;
        Some(stack.remove(pos))
    });
    // Dropped once the stack is no longer borrowed: the last handle on a frame may own a
    // backend whose `Drop` makes parallel calls of its own, which read the stack.
    drop(removed);
}

/// Installs a frame for the duration of a batch on a worker thread.
pub(crate) struct Installed(u64);

impl Installed {
    pub(crate) fn new(frame: Arc<Frame>) -> Self {
        Installed(push(frame))
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        remove(self.0);
    }
}

/// The scope around the batches of a worker process or MPI rank
/// ([`WorkerScope`](crate::job::WorkerScope)): threading with `inner_threads` threads, one
/// level down, as joblib gives its workers.
pub(crate) fn worker_scope(inner_threads: usize) -> Box<dyn Any> {
    let frame = Frame {
        backend: Some(Arc::new(Threading::new())),
        n_jobs: Some(i32::try_from(inner_threads.max(1)).unwrap_or(i32::MAX)),
        verbose: None,
        prefer: None,
        require: None,
        inner_max_num_threads: None,
        nesting_level: 1,
        error: None,
    };
    Box::new(Installed::new(Arc::new(frame)))
}

/// `PARJOB_N_JOBS`, read once per process; a bad value is an error at every call.
fn env_n_jobs() -> Result<Option<i32>, ScopeError> {
    match std::env::var("PARJOB_N_JOBS") {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(ScopeError::Config(format!(
            "PARJOB_N_JOBS={v:?} is not an integer"
        ))),
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => match v.trim().parse::<i32>() {
            Ok(n) => match n_jobs::check(n) {
                Ok(n) => Ok(Some(n)),
                Err(e) => Err(ScopeError::Config(format!("PARJOB_N_JOBS={n}: {e}"))),
            },
            Err(_) => Err(ScopeError::Config(format!(
                "PARJOB_N_JOBS={v:?} is not an integer (expected e.g. 4, -1 or -2)"
            ))),
        },
    }
}

/// The backend and settings in force on this thread, as [`get_active_backend`] reports them.
///
/// ```
/// let active = parjob::parallel_backend("sequential").n_jobs(2).run(parjob::get_active_backend)?;
/// assert_eq!(active.name(), "sequential");
/// assert_eq!(active.n_jobs(), Some(2));
/// assert_eq!(active.nesting_level(), 0);
/// # Ok::<(), parjob::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ActiveBackend {
    name: String,
    n_jobs: Option<i32>,
    nesting_level: usize,
}

impl ActiveBackend {
    /// The active backend's name (`"threading"` with no scope at all).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `n_jobs` of the active scope; `None` when unset (inside a worker, for instance),
    /// which a call reads as 1.
    pub fn n_jobs(&self) -> Option<i32> {
        self.n_jobs
    }

    /// 0 at the top level, 1 inside a task of a parallel call, 2 inside a task of a call made
    /// by such a task, and so on.
    pub fn nesting_level(&self) -> usize {
        self.nesting_level
    }
}

/// The backend that a `Parallel` call with no backend of its own would use here, with the
/// scope's `n_jobs` and nesting level.
///
/// # Examples
///
/// ```
/// use parjob::{get_active_backend, parallel_backend, Parallel};
///
/// assert_eq!(get_active_backend().name(), "threading");
/// assert_eq!(get_active_backend().nesting_level(), 0);
///
/// let _scope = parallel_backend("sequential").n_jobs(3).enter()?;
/// let active = get_active_backend();
/// assert_eq!((active.name(), active.n_jobs()), ("sequential", Some(3)));
///
/// // Inside a threading task: threading, n_jobs unset, one level down.
/// let inner = Parallel::new().backend("threading").n_jobs(2).map(0..2, |_| {
///     let a = get_active_backend();
///     (a.name().to_owned(), a.n_jobs(), a.nesting_level())
/// })?;
/// assert_eq!(inner[0], ("threading".to_owned(), None, 1));
/// # Ok::<(), parjob::Error>(())
/// ```
pub fn get_active_backend() -> ActiveBackend {
    let frame = current();
    ActiveBackend {
        name: frame.backend_name(),
        n_jobs: frame.n_jobs,
        nesting_level: frame.nesting_level,
    }
}

/// How many workers a call with `n_jobs` would get from the active backend: joblib's
/// arithmetic (`-1` every cpu, `-k` all but `k - 1`, at least 1), or 1 for a backend without
/// workers.
///
/// # Errors
///
/// [`Error::InvalidNJobs`] for 0; the active scope's error if it has one.
///
/// # Examples
///
/// ```
/// use parjob::{cpu_count, effective_n_jobs, Error};
///
/// assert_eq!(effective_n_jobs(-1)?, cpu_count());
/// assert_eq!(effective_n_jobs(5)?, 5);
/// assert_eq!(effective_n_jobs(-1000)?, 1);
/// assert!(matches!(effective_n_jobs(0), Err(Error::InvalidNJobs)));
/// # Ok::<(), Error>(())
/// ```
pub fn effective_n_jobs(n_jobs: i32) -> Result<usize, Error> {
    n_jobs::workers(n_jobs, |k| current().backend()?.effective_n_jobs(k))
}
