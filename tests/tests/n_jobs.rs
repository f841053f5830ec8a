//! joblib's n_jobs arithmetic, and 0 as an error when a call runs.

use parjob::{Error, Parallel, cpu_count, effective_n_jobs, parallel_backend, parallel_config};
use parjob_tests::PeakCounter;
use std::time::Duration;

#[test]
fn effective_n_jobs_follows_joblib() {
    let cpus = cpu_count();
    assert!(cpus >= 1);
    assert_eq!(effective_n_jobs(1).unwrap(), 1);
    assert_eq!(effective_n_jobs(4).unwrap(), 4);
    assert_eq!(
        effective_n_jobs(64).unwrap(),
        64,
        "more workers than cpus is allowed"
    );
    assert_eq!(effective_n_jobs(-1).unwrap(), cpus);
    assert_eq!(effective_n_jobs(-2).unwrap(), (cpus - 1).max(1));
    assert_eq!(effective_n_jobs(-(cpus as i32) - 50).unwrap(), 1);
    assert!(matches!(effective_n_jobs(0), Err(Error::InvalidNJobs)));
}

#[test]
fn sequential_backend_always_has_one_worker() {
    let _s = parallel_backend("sequential").enter().unwrap();
    assert_eq!(effective_n_jobs(-1).unwrap(), 1);
    assert_eq!(effective_n_jobs(8).unwrap(), 1);
    assert!(matches!(effective_n_jobs(0), Err(Error::InvalidNJobs)));
}

#[test]
fn zero_is_an_error_when_the_call_runs_not_when_configured() {
    let p = Parallel::new().n_jobs(0); // building is fine
    let err = p.map(0..3, |i| i).unwrap_err();
    assert!(matches!(err, Error::InvalidNJobs));
    assert!(err.to_string().contains("n_jobs == 0"), "{err}");

    let scope = parallel_config().n_jobs(0).enter().unwrap(); // entering is fine too
    assert!(matches!(
        Parallel::new().map(0..3, |i| i),
        Err(Error::InvalidNJobs)
    ));
    assert!(matches!(
        Parallel::new().run_iter((0..3).map(|i| move || i)).err(),
        Some(Error::InvalidNJobs)
    ));
    drop(scope);
    assert_eq!(Parallel::new().map(0..3, |i| i).unwrap(), [0, 1, 2]);
}

#[test]
fn negative_n_jobs_uses_all_cpus_but_some() {
    let peak = PeakCounter::default();
    let out = Parallel::new()
        .n_jobs(-1)
        .map(0..(4 * cpu_count()), |i| {
            let _g = peak.enter();
            std::thread::sleep(Duration::from_millis(20));
            i
        })
        .unwrap();
    assert_eq!(out.len(), 4 * cpu_count());
    assert_eq!(peak.peak(), cpu_count());
}

#[test]
fn unset_n_jobs_inside_a_scope_without_n_jobs_is_inherited() {
    let _outer = parallel_backend("threading").n_jobs(3).enter().unwrap();
    let _inner = parallel_config().verbose(0).enter().unwrap();
    assert_eq!(parjob::get_active_backend().n_jobs(), Some(3));
}
