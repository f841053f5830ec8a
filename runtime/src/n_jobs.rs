//! joblib's `n_jobs` rules, each written once: what 0 means, the default, the arithmetic of
//! negative values, when a call needs no workers at all, and how many threads nested calls
//! inside a worker get.

use crate::cpu::cpu_count;
use crate::error::Error;

/// `n_jobs` where a backend is chosen without one (`parallel_backend(b)`, the root scope,
/// `#[parallel_backend("mpi")]`): every cpu, as joblib's `parallel_backend` does.
pub(crate) const ALL_CPUS: i32 = -1;

/// Rejects `n_jobs == 0`, which has no meaning.
///
/// # Errors
///
/// [`Error::InvalidNJobs`] for 0.
pub(crate) fn check(n_jobs: i32) -> Result<i32, Error> {
    if n_jobs == 0 {
        Err(Error::InvalidNJobs)
    } else {
        Ok(n_jobs)
    }
}

/// joblib's arithmetic against `total` workers: `k > 0` is `k`, `-1` is `total`, `k < -1` is
/// `total + 1 + k`, never below `floor`.
///
/// # Errors
///
/// [`Error::InvalidNJobs`] for 0.
pub(crate) fn resolve_against(n_jobs: i32, total: usize, floor: usize) -> Result<usize, Error> {
    match check(n_jobs)? {
        k if k > 0 => Ok(k as usize),
        k => {
            let total = i64::try_from(total).unwrap_or(i64::MAX);
            let n = (total + 1 + i64::from(k)).max(i64::try_from(floor).unwrap_or(1));
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        }
    }
}

/// joblib's arithmetic against the cpus this process may use.
///
/// # Errors
///
/// [`Error::InvalidNJobs`] for 0.
pub(crate) fn resolve(n_jobs: i32) -> Result<usize, Error> {
    resolve_against(n_jobs, cpu_count(), 1)
}

/// The worker count of a call with `n_jobs`: `n_jobs == 1` needs no workers whatever the
/// backend (joblib's shortcut), anything else is the backend's `arithmetic`, at least 1.
///
/// # Errors
///
/// [`Error::InvalidNJobs`] for 0, and the backend's own errors.
pub(crate) fn workers(
    n_jobs: i32,
    arithmetic: impl FnOnce(i32) -> Result<usize, Error>,
) -> Result<usize, Error> {
    match check(n_jobs)? {
        1 => Ok(1),
        k => Ok(arithmetic(k)?.max(1)),
    }
}

/// Whether a call with `workers` runs as a plain loop on the calling thread.
pub(crate) fn runs_inline(workers: usize) -> bool {
    workers <= 1
}

/// Threads for nested calls inside one of `workers` workers sharing this host's cpus, when
/// `inner_max_num_threads` does not say: the cpus divided among them, at least 1.
pub(crate) fn default_inner_threads(workers: usize) -> usize {
    (cpu_count() / workers.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joblib_arithmetic() {
        let cpus = cpu_count();
        assert!(matches!(resolve(0), Err(Error::InvalidNJobs)));
        assert_eq!(resolve(3).unwrap(), 3);
        assert_eq!(resolve(-1).unwrap(), cpus);
        assert_eq!(resolve(-2).unwrap(), (cpus - 1).max(1));
        assert_eq!(resolve(-100).unwrap(), 1);
        assert_eq!(resolve(i32::MIN).unwrap(), 1);
        assert_eq!(resolve_against(-1, 3, 2).unwrap(), 3);
        assert_eq!(resolve_against(-3, 3, 2).unwrap(), 2);
        assert_eq!(resolve_against(5, 3, 2).unwrap(), 5);
    }

    #[test]
    fn one_job_needs_no_workers_and_zero_is_refused() {
        assert_eq!(workers(1, |_| unreachable!()).unwrap(), 1);
        assert_eq!(workers(4, |k| Ok(k as usize)).unwrap(), 4);
        assert_eq!(workers(-1, |_| Ok(0)).unwrap(), 1);
        assert!(matches!(workers(0, |_| Ok(2)), Err(Error::InvalidNJobs)));
        assert!(runs_inline(1) && !runs_inline(2));
    }

    #[test]
    fn inner_threads_share_the_cpus() {
        assert_eq!(default_inner_threads(1), cpu_count());
        assert_eq!(default_inner_threads(0), cpu_count());
        assert_eq!(default_inner_threads(usize::MAX), 1);
    }
}
