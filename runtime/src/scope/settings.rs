//! joblib's soft and hard hints about the kind of workers.

use std::fmt;
use std::str::FromStr;

use crate::Error;

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
