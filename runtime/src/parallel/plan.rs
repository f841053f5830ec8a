//! Settling a call's configuration: the call's own settings over the active scope over the
//! defaults, joblib's backend-selection rules, and the scope its tasks will see.

use std::sync::Arc;
use std::time::Duration;

use super::Parallel;
use super::batch::{BatchSize, PreDispatch};
use super::progress::ProgressFn;
use crate::Error;
use crate::backend::{Backend, PoolRequest, Threading};
use crate::registry::{self, BackendSpec};
use crate::scope::{self, Frame, Prefer, Require};

/// Everything a call needs, settled before its first task is pulled.
pub(crate) struct Plan {
    pub(crate) backend: Arc<dyn Backend>,
    /// The effective worker count.
    pub(crate) workers: usize,
    /// The `n_jobs` setting, as progress lines show it.
    pub(crate) n_jobs: i32,
    pub(crate) nesting_level: usize,
    /// The scope installed around each batch on a worker.
    pub(crate) nested: Arc<Frame>,
    pub(crate) batch: BatchSize,
    pub(crate) pre_dispatch: PreDispatch,
    pub(crate) timeout: Option<Duration>,
    pub(crate) verbose: u32,
    pub(crate) on_progress: Option<ProgressFn>,
    /// `inner_max_num_threads` of the call or its scope.
    pub(crate) inner_threads: Option<usize>,
}

impl Plan {
    pub(crate) fn request(&self) -> PoolRequest {
        PoolRequest {
            workers: self.workers,
            nesting_level: self.nesting_level,
        }
    }

    pub(crate) fn settle(p: &Parallel) -> Result<Plan, Error> {
        let frame = scope::current();
        if let Some(e) = &frame.error {
            return Err(e.to_error());
        }
        let prefer = p.prefer.or(frame.prefer);
        let require = p.require.or(frame.require);
        scope::check_hints(prefer, require)?;

        let mut backend = match &p.backend {
            Some(spec) => spec.resolve(&p.params)?,
            None if !p.params.is_empty() => {
                return Err(Error::config(
                    "backend parameters need a backend: set one with `.backend(name)`",
                ));
            }
            None => frame.backend()?,
        };
        let chosen_by_call = p.backend.is_some();
        let chosen_by_scope = frame.backend.is_some();

        if require == Some(Require::SharedMem) && !backend.supports_shared_memory() {
            if chosen_by_call {
                return Err(Error::config(format!(
                    "backend `{}` does not share memory with the caller, but the call requires `sharedmem`",
                    backend.name()
                )));
            }
            tracing::debug!(
                "parjob: using threading instead of `{}`, which does not share memory",
                backend.name()
            );
            backend = Arc::new(Threading::new());
        } else if !chosen_by_call && !chosen_by_scope {
            match prefer {
                Some(Prefer::Threads) if !backend.supports_shared_memory() => {
                    backend = Arc::new(Threading::new());
                }
                Some(Prefer::Processes) if backend.supports_shared_memory() => {
                    if registry::is_registered("loky") {
                        backend = BackendSpec::from("loky").resolve(&[])?;
                    } else {
                        tracing::debug!(
                            "parjob: prefer = processes, but no process backend is available"
                        );
                    }
                }
                _ => {}
            }
        }

        // joblib: the call's n_jobs, else the scope's, else the backend default (1).
        let n_jobs = p.n_jobs.or(frame.n_jobs).unwrap_or(1);
        let workers = if n_jobs == 1 {
            1
        } else {
            backend.effective_n_jobs(n_jobs)?.max(1)
        };

        let inner = p.inner_max_num_threads.or(frame.inner_max_num_threads);
        if let Some(k) = p.inner_max_num_threads
            && (k == 0 || !backend.has_workers())
        {
            return Err(Error::config(format!(
                "`inner_max_num_threads` must be at least 1 and needs a backend with workers (got {k} on `{}`)",
                backend.name()
            )));
        }
        // Checked here so that a bad value fails every call, not only calls with workers.
        super::batch::BatchSizer::new(p.batch_size, Duration::ZERO)?;
        let pre_dispatch = p.pre_dispatch.clone().unwrap_or_default();
        pre_dispatch.limit(workers)?;

        let nesting_level = frame.nesting_level;
        let scope_verbose = frame.verbose;
        let nested = if workers > 1 {
            let ns = backend.nested(frame.nesting_level);
            Arc::new(Frame {
                backend: Some(ns.backend.resolve(&[])?),
                n_jobs: inner
                    .map(|k| i32::try_from(k).unwrap_or(i32::MAX))
                    .or(ns.n_jobs),
                verbose: None,
                prefer: None,
                require: None,
                inner_max_num_threads: None,
                nesting_level: frame.nesting_level + 1,
                error: None,
            })
        } else {
            frame
        };
        Ok(Plan {
            nesting_level,
            backend,
            workers,
            n_jobs,
            nested,
            batch: p.batch_size,
            pre_dispatch,
            timeout: p.timeout,
            verbose: p.verbose.or(scope_verbose).unwrap_or(0),
            on_progress: p.on_progress.clone(),
            inner_threads: inner,
        })
    }
}
