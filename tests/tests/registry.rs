//! The backend registry: custom backends by name, replacement, and make_default. Global
//! state, so this file is its own test binary and its tests run one at a time under a lock.

use parjob::{
    Backend, Error, Job, Parallel, PoolRequest, get_active_backend, parallel_backend,
    register_parallel_backend, registered,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs every job on a fresh thread and counts them.
struct Counting {
    jobs: Arc<AtomicUsize>,
}

impl Backend for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    fn spawn(&self, _request: PoolRequest, job: Job) {
        self.jobs.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || job.run());
    }
}

#[test]
fn a_registered_backend_runs_the_jobs() {
    let _l = SERIAL.lock().unwrap();
    let jobs = Arc::new(AtomicUsize::new(0));
    let j = Arc::clone(&jobs);
    register_parallel_backend(
        "counting",
        move || Counting {
            jobs: Arc::clone(&j),
        },
        false,
    )
    .unwrap();
    let out = parallel_backend("counting")
        .n_jobs(2)
        .run(|| Parallel::new().batch_size(1).map(0..10, |i| i * 2).unwrap())
        .unwrap();
    assert_eq!(out, (0..10).map(|i| i * 2).collect::<Vec<_>>());
    assert_eq!(jobs.load(Ordering::SeqCst), 10);
    assert_eq!(
        parallel_backend(registered("counting"))
            .run(|| get_active_backend().name().to_owned())
            .unwrap(),
        "counting"
    );
}

#[test]
fn empty_names_are_rejected_and_names_can_be_replaced() {
    let _l = SERIAL.lock().unwrap();
    assert!(matches!(
        register_parallel_backend("  ", parjob::backend::Sequential::new, false),
        Err(Error::InvalidConfig { .. })
    ));
    register_parallel_backend("alias", parjob::backend::Sequential::new, false).unwrap();
    assert_eq!(
        parallel_backend("alias")
            .run(|| get_active_backend().name().to_owned())
            .unwrap(),
        "sequential"
    );
    register_parallel_backend("alias", parjob::backend::Threading::new, false).unwrap();
    assert_eq!(
        parallel_backend("alias")
            .run(|| get_active_backend().name().to_owned())
            .unwrap(),
        "threading"
    );
}

#[test]
fn make_default_changes_the_root_backend_of_every_thread() {
    let _l = SERIAL.lock().unwrap();
    assert_eq!(get_active_backend().name(), "threading");
    register_parallel_backend("serial-default", parjob::backend::Sequential::new, true).unwrap();
    assert_eq!(get_active_backend().name(), "sequential");
    let from_thread = std::thread::spawn(|| get_active_backend().name().to_owned())
        .join()
        .unwrap();
    assert_eq!(from_thread, "sequential");
    let me = std::thread::current().id();
    let ids = Parallel::new()
        .map(0..4, |_| std::thread::current().id())
        .unwrap();
    assert!(
        ids.iter().all(|&id| id == me),
        "the sequential default runs on the caller"
    );
    register_parallel_backend("threading", parjob::backend::Threading::new, true).unwrap();
    assert_eq!(get_active_backend().name(), "threading");
}

#[test]
fn a_backend_that_drops_jobs_gives_an_error_not_a_hang() {
    let _l = SERIAL.lock().unwrap();
    struct Dropper;
    impl Backend for Dropper {
        fn name(&self) -> &str {
            "dropper"
        }
        fn spawn(&self, _request: PoolRequest, job: Job) {
            drop(job);
        }
    }
    let r = Parallel::new().backend(Dropper).n_jobs(2).map(0..10, |i| i);
    assert!(
        matches!(r, Err(Error::WorkerDied { index: Some(_), .. })),
        "{r:?}"
    );
}
