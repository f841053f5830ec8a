//! The one error type of every fallible parjob call.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

/// What went wrong in a parallel call, a scope or a backend lookup.
///
/// Every failure of a parjob call is one of these variants: a task that panicked or returned
/// `Err`, a task that ran past its timeout, a configuration that cannot be honoured, a backend
/// name nobody registered, a worker that died. The variant names are stable; more fields and
/// variants may be added, so match with a `..` rest pattern and a wildcard arm.
///
/// # Examples
///
/// ```
/// use parjob::{Error, Parallel};
///
/// let err = Parallel::new().n_jobs(2).try_map(0..10, |i| {
///     if i == 3 { Err(std::fmt::Error) } else { Ok(i) }
/// });
/// match err {
///     Err(Error::TaskFailed { index, .. }) => assert_eq!(index, 3),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `n_jobs` was 0, which names no worker count at all.
    #[error(
        "n_jobs == 0 has no meaning: use a positive worker count, -1 for every cpu, or -k for all but k-1"
    )]
    InvalidNJobs,

    /// A setting cannot be honoured: a bad `batch_size` or `pre_dispatch`, a backend parameter
    /// the backend does not take, contradictory `prefer`/`require`, a bad environment variable.
    #[error("invalid configuration: {message}")]
    InvalidConfig {
        /// What is wrong and what is allowed.
        message: String,
    },

    /// No backend is registered under `name`.
    #[error(
        "unknown backend `{name}`, expected one of {}{}",
        quoted_list(known),
        hint(name, known)
    )]
    UnknownBackend {
        /// The name that was asked for.
        name: String,
        /// The names registered when the lookup ran.
        known: Vec<String>,
    },

    /// A task panicked; `message` is its panic payload when that was a string.
    #[error("task {index} panicked: {message}")]
    TaskPanicked {
        /// Position of the task in the input, counted from 0.
        index: usize,
        /// The panic message.
        message: String,
    },

    /// A task of `try_map` / `try_run` returned `Err`. The message names the task; the
    /// task's own error is the [`source`](std::error::Error::source), as error reporters
    /// (anyhow, eyre) expect, and [`Error::task_error`] gives it back with its type.
    #[error("task {index} failed")]
    TaskFailed {
        /// Position of the task in the input, counted from 0.
        index: usize,
        /// The error the task returned.
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A task ran longer than the call's `timeout`, counted from the task's own start.
    #[error("task {index} did not finish within {timeout:?}")]
    Timeout {
        /// Position of the task in the input, counted from 0.
        index: usize,
        /// The limit that was exceeded.
        timeout: Duration,
    },

    /// A worker process ended while it held tasks (killed by a signal, aborted, exited).
    #[error("worker died{}: {detail}", at_index(*index))]
    WorkerDied {
        /// The first task the worker was running, when known.
        index: Option<usize>,
        /// How it ended: the signal or the exit code.
        detail: String,
    },

    /// Tasks or results could not be moved between processes.
    #[error("transport failed{}: {message}", at_index(*index))]
    Transport {
        /// The task concerned, when known.
        index: Option<usize>,
        /// What failed.
        message: String,
    },

    /// In a call that keeps going past failures
    /// ([`Parallel::keep_going`](crate::Parallel::keep_going)), a task whose batch failed as
    /// a whole: its worker died or another task of the batch ran past the timeout. The task
    /// may have run, but its outcome did not come back; `cause` is the batch's failure (the
    /// [`source`](std::error::Error::source)), the same for every task of the batch.
    #[error("task {index} was lost with its batch")]
    Lost {
        /// Position of the task in the input, counted from 0.
        index: usize,
        /// Why the batch failed.
        #[source]
        cause: Arc<Error>,
    },

    /// The backend cannot run the call's tasks (a value cannot reach its processes, or it
    /// cannot start workers where the call runs), and the environment variable
    /// `PARJOB_STRICT` forbids running them on threads instead, as parjob otherwise does.
    #[error(
        "backend `{backend}` cannot run these tasks ({reason}), and PARJOB_STRICT forbids running them on threads"
    )]
    WouldRunOnThreads {
        /// The backend the call asked for.
        backend: String,
        /// Why it cannot take them.
        reason: String,
    },
}

impl Error {
    /// The position in the input of the task this error is about, if it is about one.
    ///
    /// ```
    /// use parjob::Error;
    ///
    /// let e = Error::TaskPanicked { index: 4, message: "boom".into() };
    /// assert_eq!(e.task_index(), Some(4));
    /// assert_eq!(Error::InvalidNJobs.task_index(), None);
    /// ```
    pub fn task_index(&self) -> Option<usize> {
        match self {
            Error::TaskPanicked { index, .. }
            | Error::TaskFailed { index, .. }
            | Error::Timeout { index, .. }
            | Error::Lost { index, .. } => Some(*index),
            Error::WorkerDied { index, .. } | Error::Transport { index, .. } => *index,
            _ => None,
        }
    }

    /// The error a task returned (`TaskFailed`), as the type the task returned it with, if
    /// that is `E`.
    ///
    /// A task that ran in another process (`loky`, `multiprocessing`, `mpi`, through
    /// `delayed!` or `Delayed::remote`) returns its `Result` as a value, so its error comes
    /// back as itself: the error type implements serde's traits there, as every value that
    /// crosses does. A `try_map` closure runs on threads whatever the backend (a closure
    /// cannot travel), so its error never leaves the caller's process.
    ///
    /// ```
    /// use parjob::{Error, Parallel};
    ///
    /// #[derive(Debug)]
    /// struct TooBig(u32);
    ///
    /// impl std::fmt::Display for TooBig {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    ///         write!(f, "{} is too big", self.0)
    ///     }
    /// }
    ///
    /// impl std::error::Error for TooBig {}
    ///
    /// let err = Parallel::new()
    ///     .n_jobs(2)
    ///     .try_map(0..10u32, |x| if x < 7 { Ok(x) } else { Err(TooBig(x)) })
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "task 7 failed");
    /// assert_eq!(err.task_error::<TooBig>().map(|e| e.0), Some(7));
    /// let cause = std::error::Error::source(&err).map(ToString::to_string);
    /// assert_eq!(cause.as_deref(), Some("7 is too big"));
    /// ```
    pub fn task_error<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Error::TaskFailed { source, .. } => source.downcast_ref::<E>(),
            _ => None,
        }
    }

    /// The errors of tasks `first..first + len`, a batch that failed as a whole with `self`:
    /// the task whose own failure `self` is (a panic, an `Err`, a timeout) keeps it, the
    /// others are [`Error::Lost`] with it as their cause (all of them when it is not about
    /// one task's doing; a batch of one task keeps it whatever).
    pub(crate) fn spread(self, first: usize, len: usize) -> Vec<Error> {
        let tasks = first..first.saturating_add(len);
        // Only a task's own failure names it for sure (a dead worker's index is the first
        // task of its batch when nothing better is known).
        let own = matches!(
            self,
            Error::TaskPanicked { .. } | Error::TaskFailed { .. } | Error::Timeout { .. }
        );
        let named = self.task_index().filter(|i| own && tasks.contains(i));
        if len == 1 {
            return vec![self.at(first)];
        }
        let (cause, mut own) = match named {
            Some(_) => (self.copy(), Some(self)),
            None => (self.at(first), None),
        };
        let cause = Arc::new(cause);
        tasks
            .map(|index| match own.take_if(|_| Some(index) == named) {
                Some(error) => error,
                None => Error::Lost {
                    index,
                    cause: Arc::clone(&cause),
                },
            })
            .collect()
    }

    /// `self`, naming task `index` where it names none (a worker's error that does not
    /// know which task it was running).
    pub(crate) fn at(self, index: usize) -> Error {
        match self {
            Error::WorkerDied {
                index: None,
                detail,
            } => Error::WorkerDied {
                index: Some(index),
                detail,
            },
            Error::Transport {
                index: None,
                message,
            } => Error::Transport {
                index: Some(index),
                message,
            },
            other => other,
        }
    }

    /// A copy of `self` (a task's own error is copied as its message).
    fn copy(&self) -> Error {
        match self {
            Error::InvalidNJobs => Error::InvalidNJobs,
            Error::InvalidConfig { message } => Error::config(message.clone()),
            Error::UnknownBackend { name, known } => Error::UnknownBackend {
                name: name.clone(),
                known: known.clone(),
            },
            Error::TaskPanicked { index, message } => Error::TaskPanicked {
                index: *index,
                message: message.clone(),
            },
            Error::TaskFailed { index, source } => Error::TaskFailed {
                index: *index,
                source: source.to_string().into(),
            },
            Error::Timeout { index, timeout } => Error::Timeout {
                index: *index,
                timeout: *timeout,
            },
            Error::WorkerDied { index, detail } => Error::WorkerDied {
                index: *index,
                detail: detail.clone(),
            },
            Error::Transport { index, message } => Error::Transport {
                index: *index,
                message: message.clone(),
            },
            Error::Lost { index, cause } => Error::Lost {
                index: *index,
                cause: Arc::clone(cause),
            },
            Error::WouldRunOnThreads { backend, reason } => Error::WouldRunOnThreads {
                backend: backend.clone(),
                reason: reason.clone(),
            },
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::InvalidConfig {
            message: message.into(),
        }
    }
}

fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What follows "expected one of ...": why a built-in backend is missing here, or the known
/// name a misspelt one was likely meant to be (the rule of the compile-time check: at most
/// one edit for short names, about one per three characters for longer ones, or letters
/// cut from the end).
fn hint(name: &str, known: &[String]) -> String {
    let processes = ["loky", "multiprocessing", "mpi"].contains(&name);
    if processes && !cfg!(unix) {
        return format!(
            ": `{name}` runs tasks in other processes, which parjob supports on Unix only"
        );
    }
    if name == "mpi" {
        return ": the `mpi` backend needs parjob's `mpi` feature".to_owned();
    }
    let limit = (name.chars().count() / 3).max(1);
    known
        .iter()
        .map(|candidate| (strsim::levenshtein(name, candidate), candidate))
        .filter(|&(distance, near)| {
            distance <= limit || (name.chars().count() >= 3 && near.starts_with(name))
        })
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, near)| format!("; did you mean `{near}`?"))
        .unwrap_or_default()
}

fn at_index(index: Option<usize>) -> String {
    index.map(|i| format!(" at task {i}")).unwrap_or_default()
}

/// Runs `f`, catching a panic: `Err` with the panic's message, as `std` prints it. The
/// payload is dropped here, and a payload whose own `drop` panics is caught as well.
pub(crate) fn catch_panic<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(into_message)
}

/// The message of a caught panic; the payload is dropped (a payload whose drop panics
/// is caught too).
pub(crate) fn into_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let message = panic_message(&*payload);
    drop(catch_unwind(AssertUnwindSafe(move || drop(payload))));
    message
}

/// The text of a panic payload, as `std` prints it.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_batch_spreads_its_failure_over_its_tasks() {
        let timeout = Duration::from_millis(5);
        let spread = Error::Timeout { index: 5, timeout }.spread(4, 4);
        let kinds: Vec<String> = spread.iter().map(ToString::to_string).collect();
        assert_eq!(
            kinds,
            [
                "task 4 was lost with its batch",
                "task 5 did not finish within 5ms",
                "task 6 was lost with its batch",
                "task 7 was lost with its batch",
            ]
        );
        let cause = std::error::Error::source(&spread[0]).map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("task 5 did not finish within 5ms"));
        assert_eq!(spread[3].task_index(), Some(7));

        // A dead worker names no task of its own doing: every task is lost, and a batch of
        // one task gets the failure itself, at that task.
        let died = || Error::WorkerDied {
            index: None,
            detail: "killed by SIGKILL".into(),
        };
        let spread = died().spread(10, 2);
        assert!(
            spread
                .iter()
                .all(|e| matches!(e, Error::Lost { cause, .. } if cause.task_index() == Some(10)))
        );
        let alone = died().spread(3, 1);
        assert!(matches!(
            alone[..],
            [Error::WorkerDied { index: Some(3), .. }]
        ));
    }
}
