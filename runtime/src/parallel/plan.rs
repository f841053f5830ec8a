//! Settling a call's configuration: the call's own settings over the active scope (resolved
//! by [`Settings::over`](crate::scope::Settings::over)), its worker count, and the scope its
//! tasks will see.

use std::sync::Arc;
use std::time::Duration;

use super::Parallel;
use super::batch::{BatchSize, BatchSizer, PreDispatch};
use super::progress::Watchers;
use crate::backend::{Backend, instead_of, strict};
use crate::error::Error;
use crate::job::PoolRequest;
use crate::scope::{self, Frame, Giver};
use crate::{n_jobs, registry};

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
    /// The most batches in flight at once (`pre_dispatch` evaluated for `workers`).
    pub(crate) pre_dispatch: usize,
    pub(crate) timeout: Option<Duration>,
    pub(crate) verbose: u32,
    pub(crate) watchers: Watchers,
    /// `inner_max_num_threads` of the call or its scope.
    pub(crate) inner_threads: Option<usize>,
    /// `PARJOB_STRICT`: tasks that cannot run where the backend would run them fail the
    /// call instead of running on threads.
    pub(crate) strict: bool,
    /// A task's failure does not stop the call: each task gets its own outcome
    /// ([`Parallel::keep_going`]).
    pub(crate) keep_going: bool,
}

impl Plan {
    pub(crate) fn request(&self) -> PoolRequest {
        PoolRequest {
            workers: self.workers,
            nesting_level: self.nesting_level,
        }
    }

    /// Whether the call is a plain loop on the calling thread.
    pub(crate) fn runs_inline(&self) -> bool {
        n_jobs::runs_inline(self.workers)
    }

    pub(crate) fn settle(p: &Parallel) -> Result<Plan, Error> {
        let scope = scope::current();
        let call = p.settings.over(&scope, Giver::Call)?;
        let mut backend = call.backend()?;
        // joblib: the call's n_jobs, else the scope's, else the backend default (1).
        let n_jobs = call.n_jobs.unwrap_or(1);
        let workers = n_jobs::workers(n_jobs, |k| backend.effective_n_jobs(k))?;
        // Checked here so that a bad value fails every call, not only calls with workers.
        BatchSizer::new(p.batch_size, Duration::ZERO)?;
        let pre_dispatch = match &p.pre_dispatch {
            Some(bound) => bound.limit(workers)?,
            None => PreDispatch::default_limit(workers),
        };

        let verbose = call.verbose.unwrap_or(0);
        if !n_jobs::runs_inline(workers)
            && let Some(why) = backend.unavailable_here()
        {
            backend = instead_of(&*backend, why, verbose)?;
        }

        let inner = call.inner_max_num_threads;
        let nested = if n_jobs::runs_inline(workers) {
            // A plain loop: tasks see the enclosing scope, unchanged.
            scope
        } else {
            let ns = backend.nested(call.nesting_level);
            Arc::new(Frame {
                backend: Some(registry::resolve(&ns.backend, &[])?),
                n_jobs: inner
                    .map(|k| i32::try_from(k).unwrap_or(i32::MAX))
                    .or(ns.n_jobs),
                verbose: None,
                prefer: None,
                require: None,
                inner_max_num_threads: None,
                nesting_level: call.nesting_level + 1,
                error: None,
            })
        };
        Ok(Plan {
            nesting_level: call.nesting_level,
            backend,
            workers,
            n_jobs,
            nested,
            batch: p.batch_size,
            pre_dispatch,
            timeout: p.timeout,
            verbose,
            watchers: Watchers {
                callback: p.on_progress.clone(),
                bar: p.progress_bar.clone(),
            },
            inner_threads: inner,
            strict: strict(),
            keep_going: false,
        })
    }
}
