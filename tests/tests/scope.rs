//! The backend stack: switch and restore, inheritance, out-of-order guards, panics, threads.

use parjob::{
    Error, Parallel, backend::Sequential, get_active_backend, parallel_backend, parallel_config,
    registered,
};

fn active() -> (String, Option<i32>) {
    let a = get_active_backend();
    (a.name().to_owned(), a.n_jobs())
}

fn root() -> (String, Option<i32>) {
    ("threading".to_owned(), Some(-1))
}

#[test]
fn root_defaults_are_threading_with_every_cpu() {
    assert_eq!(active(), root());
    assert_eq!(get_active_backend().nesting_level(), 0);
}

#[test]
fn guard_switches_and_restores() {
    {
        let _g = parallel_backend("sequential").enter().unwrap();
        assert_eq!(
            active(),
            ("sequential".into(), Some(-1)),
            "parallel_backend defaults n_jobs to -1"
        );
        {
            let _g2 = parallel_backend("threading").n_jobs(2).enter().unwrap();
            assert_eq!(active(), ("threading".into(), Some(2)));
        }
        assert_eq!(active(), ("sequential".into(), Some(-1)));
    }
    assert_eq!(active(), root());
}

#[test]
fn run_form_restores_after_the_closure() {
    let inside = parallel_backend("sequential")
        .n_jobs(5)
        .run(active)
        .unwrap();
    assert_eq!(inside, ("sequential".into(), Some(5)));
    assert_eq!(active(), root());
}

#[test]
fn nested_configs_inherit_unset_fields() {
    let _a = parallel_backend("sequential")
        .n_jobs(3)
        .verbose(0)
        .enter()
        .unwrap();
    let _b = parallel_config().n_jobs(2).enter().unwrap();
    assert_eq!(active(), ("sequential".into(), Some(2)));
    let _c = parallel_config().backend("threading").enter().unwrap();
    assert_eq!(
        active(),
        ("threading".into(), Some(2)),
        "n_jobs inherited past a backend change"
    );
}

#[test]
fn guards_dropped_out_of_order_leave_a_correct_stack() {
    let a = parallel_backend("sequential").n_jobs(2).enter().unwrap();
    let b = parallel_backend("threading").n_jobs(3).enter().unwrap();
    drop(a);
    assert_eq!(active(), ("threading".into(), Some(3)), "b is still alive");
    let c = parallel_config().n_jobs(4).enter().unwrap();
    drop(b);
    assert_eq!(active(), ("threading".into(), Some(4)), "c is still alive");
    drop(c);
    assert_eq!(active(), root());
}

#[test]
fn a_panic_unwinds_through_the_scope_and_restores_it() {
    let caught = std::panic::catch_unwind(|| {
        let _g = parallel_backend("sequential").enter().unwrap();
        panic!("inside the scope");
    });
    assert!(caught.is_err());
    assert_eq!(active(), root());

    let caught = std::panic::catch_unwind(|| {
        parallel_backend("sequential")
            .run(|| panic!("inside run"))
            .unwrap()
    });
    assert!(caught.is_err());
    assert_eq!(active(), root());
}

#[test]
fn scopes_switch_and_restore_inside_worker_threads() {
    let seen = Parallel::new()
        .n_jobs(2)
        .map(0..8, |i| {
            let before = active();
            let inside = parallel_backend("sequential")
                .n_jobs(i)
                .run(active)
                .unwrap();
            let after_panic = std::panic::catch_unwind(|| {
                let _g = parallel_backend("sequential").enter().unwrap();
                panic!("in a task");
            });
            assert!(after_panic.is_err());
            (before, inside, active())
        })
        .unwrap();
    for (i, (before, inside, after)) in seen.into_iter().enumerate() {
        assert_eq!(before, ("threading".into(), None));
        assert_eq!(inside, ("sequential".into(), Some(i as i32)));
        assert_eq!(after, before);
    }
    assert_eq!(active(), root());
}

#[test]
fn a_panicking_task_leaves_the_worker_scope_clean() {
    let r = Parallel::new().n_jobs(2).map(0..4, |i| {
        let _g = parallel_backend("sequential").enter().unwrap();
        if i == 1 {
            panic!("task {i}");
        }
        i
    });
    assert!(matches!(r, Err(Error::TaskPanicked { index: 1, .. })));
    // Workers that ran the failing task serve later calls with the right scope.
    let later = Parallel::new().n_jobs(2).map(0..20, |_| active()).unwrap();
    assert!(later.iter().all(|a| *a == ("threading".to_owned(), None)));
}

#[test]
fn new_threads_start_from_the_root_defaults() {
    let _g = parallel_backend("sequential").n_jobs(4).enter().unwrap();
    let from_thread = std::thread::spawn(active).join().unwrap();
    assert_eq!(from_thread, root());
}

#[test]
fn unknown_backends_are_reported_with_the_known_names() {
    match parallel_backend("threadng").enter() {
        Err(Error::UnknownBackend { name, known }) => {
            assert_eq!(name, "threadng");
            assert!(known.contains(&"threading".to_owned()), "{known:?}");
            assert!(known.contains(&"sequential".to_owned()));
        }
        other => panic!("expected UnknownBackend, got {other:?}"),
    }
    let err = Parallel::new()
        .backend(registered("nope"))
        .map(0..1, |i| i)
        .unwrap_err();
    assert!(matches!(err, Error::UnknownBackend { .. }));
    assert!(err.to_string().contains("`threading`"), "{err}");
    assert_eq!(active(), root());
}

/// Names met at run time get the compile-time check's did-you-mean, and a built-in backend
/// that is missing from this build says why.
#[test]
fn unknown_backends_at_run_time_suggest_the_name_meant() {
    let message = |name: &str| {
        let err = parallel_backend(name).enter().unwrap_err();
        assert!(matches!(err, Error::UnknownBackend { .. }), "{err:?}");
        err.to_string()
    };
    assert!(
        message("thread").ends_with("; did you mean `threading`?"),
        "{}",
        message("thread")
    );
    assert!(
        message("lokyy").ends_with("; did you mean `loky`?"),
        "{}",
        message("lokyy")
    );
    assert!(message("Sequential").ends_with("; did you mean `sequential`?"));
    // Too far from every name for a likely typo: the list alone.
    assert!(
        message("dask").ends_with("`threading`"),
        "{}",
        message("dask")
    );
    let err = Parallel::new()
        .backend(registered("multiprocesing"))
        .map(0..1, |i| i)
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("; did you mean `multiprocessing`?"),
        "{err}"
    );
    if !cfg!(feature = "mpi") {
        assert!(
            message("mpi").ends_with(": the `mpi` backend needs parjob's `mpi` feature"),
            "{}",
            message("mpi")
        );
    }
}

#[test]
fn bad_scope_settings_are_errors_on_enter() {
    use parjob::{Prefer, Require};
    let contradictory = parallel_config()
        .prefer(Prefer::Processes)
        .require(Require::SharedMem)
        .enter();
    assert!(matches!(contradictory, Err(Error::InvalidConfig { .. })));
    let params_without_backend = parallel_config().param("x", 1).enter();
    assert!(matches!(
        params_without_backend,
        Err(Error::InvalidConfig { .. })
    ));
    let inner_on_sequential = parallel_backend(Sequential::new())
        .inner_max_num_threads(2)
        .enter();
    assert!(matches!(
        inner_on_sequential,
        Err(Error::InvalidConfig { .. })
    ));
    let unknown_param = parallel_backend("threading")
        .param("idle_worker_timeout", 3)
        .enter();
    assert!(matches!(unknown_param, Err(Error::InvalidConfig { .. })));
    assert_eq!(active(), root());
}

#[test]
fn a_backend_dropped_with_its_scope_may_use_parjob_in_its_drop() {
    use parjob::{Backend, Job, PoolRequest};
    use std::sync::{Arc, Mutex};

    // The last handle on this backend is the scope's: it is dropped when the guard removes
    // the scope, and its `Drop` reads the backend stack.
    struct LooksAround(Arc<Mutex<Option<String>>>);
    impl Backend for LooksAround {
        fn name(&self) -> &str {
            "looks-around"
        }
        fn spawn(&self, _request: PoolRequest, job: Job) {
            job.run();
        }
    }
    impl Drop for LooksAround {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = Some(get_active_backend().name().to_owned());
        }
    }

    let seen = Arc::new(Mutex::new(None));
    let outer = parallel_backend("sequential").enter().unwrap();
    let guard = parallel_backend(LooksAround(Arc::clone(&seen)))
        .enter()
        .unwrap();
    assert_eq!(get_active_backend().name(), "looks-around");
    drop(guard);
    assert_eq!(seen.lock().unwrap().as_deref(), Some("sequential"));
    drop(outer);
}
