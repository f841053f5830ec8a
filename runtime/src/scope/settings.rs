//! The settings a scope or a call gives, the one resolver that turns them into the frame
//! they make on top of the enclosing one, and joblib's soft and hard hints about the kind of
//! workers.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::Frame;
use crate::backend::{Backend, BackendSpec, ParamValue, Threading};
use crate::error::Error;
use crate::registry;

/// The settings a [`BackendScope`](super::BackendScope) or a
/// [`Parallel`](crate::Parallel) gives; each field left `None` inherits.
#[derive(Clone, Debug, Default)]
pub(crate) struct Settings {
    pub(crate) backend: Option<BackendSpec>,
    pub(crate) n_jobs: Option<i32>,
    pub(crate) verbose: Option<u32>,
    pub(crate) prefer: Option<Prefer>,
    pub(crate) require: Option<Require>,
    pub(crate) inner_max_num_threads: Option<usize>,
    pub(crate) params: Vec<(String, ParamValue)>,
}

/// Who gives the settings: where a scope and a call differ, they differ in [`Settings::over`]
/// and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Giver {
    /// A scope: its frame stays on the stack, and may leave the backend to the root default.
    Scope,
    /// One call: its frame names the backend the call runs on, after joblib's `prefer` and
    /// `require` rules.
    Call,
}

impl Settings {
    /// The frame these settings make on top of `parent`.
    ///
    /// # Errors
    ///
    /// `parent`'s error (for a call); contradictory hints; an unknown backend or parameter;
    /// parameters without a backend; `inner_max_num_threads` of 0, on a backend without
    /// workers, or (for a scope) without a backend it belongs to.
    pub(crate) fn over(&self, parent: &Frame, giver: Giver) -> Result<Frame, Error> {
        if let (Giver::Call, Some(e)) = (giver, &parent.error) {
            return Err(e.to_error());
        }
        let prefer = self.prefer.or(parent.prefer);
        let require = self.require.or(parent.require);
        check_hints(prefer, require)?;
        let chosen = match &self.backend {
            Some(spec) => Some(registry::resolve(spec, &self.params)?),
            None if !self.params.is_empty() => {
                return Err(Error::config(
                    "backend parameters need a backend: name one with `parallel_backend(name)` or `.backend(name)`",
                ));
            }
            None => None,
        };
        let (backend, inner) = match giver {
            // The limit belongs to the backend it was given with.
            Giver::Scope => match chosen {
                Some(b) => (Some(b), self.inner_max_num_threads),
                None if self.inner_max_num_threads.is_some() => {
                    return Err(Error::config(
                        "`inner_max_num_threads` needs a backend: name one with `parallel_backend(name)` or `.backend(name)`",
                    ));
                }
                None => (parent.backend.clone(), parent.inner_max_num_threads),
            },
            Giver::Call => (
                Some(select(
                    chosen,
                    parent,
                    prefer,
                    require,
                    self.verbose.or(parent.verbose).unwrap_or(0),
                )?),
                self.inner_max_num_threads.or(parent.inner_max_num_threads),
            ),
        };
        if let Some(k) = self.inner_max_num_threads {
            if k == 0 {
                return Err(Error::config("`inner_max_num_threads` must be at least 1"));
            }
            if let Some(b) = backend.as_ref().filter(|b| !b.workers().has_workers()) {
                return Err(Error::config(format!(
                    "backend `{}` has no workers of its own, so `inner_max_num_threads` means nothing for it",
                    b.name()
                )));
            }
        }
        Ok(Frame {
            backend,
            n_jobs: self.n_jobs.or(parent.n_jobs),
            verbose: self.verbose.or(parent.verbose),
            prefer,
            require,
            inner_max_num_threads: inner,
            nesting_level: parent.nesting_level,
            error: None,
        })
    }
}

/// joblib's backend selection for one call: the call's own backend, else the scope's (or
/// the root default), then `require = sharedmem` and `prefer` applied.
fn select(
    chosen: Option<Arc<dyn Backend>>,
    parent: &Frame,
    prefer: Option<Prefer>,
    require: Option<Require>,
    verbose: u32,
) -> Result<Arc<dyn Backend>, Error> {
    let chosen_by_call = chosen.is_some();
    let backend = match chosen {
        Some(b) => b,
        None => parent.backend()?,
    };
    let shares_memory = backend.workers().shares_memory();
    if require == Some(Require::SharedMem) && !shares_memory {
        if chosen_by_call {
            return Err(Error::config(format!(
                "backend `{}` does not share memory with the caller, but the call requires `sharedmem`",
                backend.name()
            )));
        }
        // joblib switches to threads here; parjob says so (at `verbose > 0`), and fails
        // under `PARJOB_STRICT`.
        let why = "its workers do not share memory, and the call requires `sharedmem`";
        return crate::backend::instead_of(&*backend, why.to_owned(), verbose);
    }
    // A hint only moves calls whose backend nobody chose.
    if chosen_by_call || parent.backend.is_some() {
        return Ok(backend);
    }
    match prefer {
        Some(Prefer::Threads) if !shares_memory => Ok(Arc::new(Threading::new())),
        Some(Prefer::Processes) if shares_memory => {
            if registry::is_registered("loky") {
                registry::instantiate("loky", &[])
            } else {
                tracing::debug!("parjob: prefer = processes, but no process backend is available");
                Ok(backend)
            }
        }
        _ => Ok(backend),
    }
}

/// A soft hint about the kind of workers, used only when no backend is chosen explicitly
/// (joblib's `prefer`).
///
/// `Threads` keeps work on threads even if the default backend uses processes; `Processes`
/// moves it to the `loky` process backend when the default backend uses threads and loky is
/// available.
///
/// ```
/// use parjob::Prefer;
///
/// assert_eq!("threads".parse::<Prefer>()?, Prefer::Threads);
/// assert!("gpus".parse::<Prefer>().is_err());
/// # Ok::<(), parjob::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prefer {
    /// Threads of this process.
    Threads,
    /// Worker processes.
    Processes,
}

/// A hard constraint on the workers (joblib's `require`).
///
/// `SharedMem` guarantees that tasks run in this process and can share memory with the
/// caller: a process backend chosen by a scope is replaced by threading for the call, and a
/// process backend given to the call itself is an error.
///
/// ```
/// use parjob::{parallel_backend, Parallel, Require};
///
/// let out = parallel_backend("threading").run(|| {
///     Parallel::new().require(Require::SharedMem).map(0..3, |i| i + 1)
/// })??;
/// assert_eq!(out, [1, 2, 3]);
/// # Ok::<(), parjob::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Require {
    /// Tasks must run in this process.
    SharedMem,
}

impl FromStr for Prefer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "threads" => Ok(Prefer::Threads),
            "processes" => Ok(Prefer::Processes),
            other => Err(Error::config(format!(
                "prefer `{other}` is not a valid hint, expected `threads` or `processes`"
            ))),
        }
    }
}

impl FromStr for Require {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "sharedmem" => Ok(Require::SharedMem),
            other => Err(Error::config(format!(
                "require `{other}` is not a valid constraint, expected `sharedmem`"
            ))),
        }
    }
}

impl fmt::Display for Prefer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Prefer::Threads => "threads",
            Prefer::Processes => "processes",
        })
    }
}

impl fmt::Display for Require {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sharedmem")
    }
}

/// joblib rejects the one contradictory pair.
pub(crate) fn check_hints(prefer: Option<Prefer>, require: Option<Require>) -> Result<(), Error> {
    if prefer == Some(Prefer::Processes) && require == Some(Require::SharedMem) {
        return Err(Error::config(
            "prefer `processes` contradicts require `sharedmem`: processes do not share memory",
        ));
    }
    Ok(())
}
