//! Fault 7 of the matrix, a task's result fails to serialise: `Transport` at the task's
//! index with the `Serialize` impl's own words on the process backends, and nothing to
//! report on threads, where nothing is serialised.

use crate::harness::{
    CALL_LIMIT, assert_healthy, assert_nothing_left_behind, is_process_backend, serial_for, within,
};
use crate::tasks::{Unserialisable, make_unserialisable};
use parjob::{Error, parallel};
use parjob_tests::{par, run_on};

fn check_unserialisable(_test: &str, backend: &'static str) {
    let _serial = serial_for(backend);
    let run = within(CALL_LIMIT, backend, move || {
        run_on(par(backend).batch_size(1), make_unserialisable, 0..4u32)
    });
    // A comprehension in batches of 4: the refusing result is the second of the second batch.
    let comprehension = within(CALL_LIMIT, backend, move || {
        let items = (0..8u32).map(|x| (x + 5) % 8);
        parallel!(backend, n_jobs = 2, batch_size = 4; make_unserialisable(x) for x in items)
    });
    if is_process_backend(backend) {
        for (r, at) in [(run, 2), (comprehension, 5)] {
            match r {
                Err(e @ Error::Transport { .. }) => {
                    // The `Serialize` impl's own words reach the caller.
                    assert_eq!(
                        e.to_string(),
                        format!(
                            "transport failed at task {at}: Unserialisable(2) refuses to serialise"
                        ),
                        "{backend}"
                    );
                    assert_eq!(e.task_index(), Some(at));
                }
                other => panic!("{backend}: expected Transport at {at}, got {other:?}"),
            }
        }
        assert_healthy(backend);
        assert_nothing_left_behind(backend);
    } else {
        // Nothing is serialised on threads.
        let out = run.unwrap_or_else(|e| panic!("{backend}: {e}"));
        assert_eq!(out, (0..4).map(Unserialisable).collect::<Vec<_>>());
        let out = comprehension.unwrap_or_else(|e| panic!("{backend}: {e}"));
        let expected: Vec<_> = (0..8u32).map(|x| Unserialisable((x + 5) % 8)).collect();
        assert_eq!(out, expected);
    }
}

cells!(check_unserialisable => {
    unserialisable_sequential: "sequential",
    unserialisable_threading: "threading",
    unserialisable_loky: "loky",
    unserialisable_multiprocessing: "multiprocessing",
});
