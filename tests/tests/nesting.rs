//! joblib's nesting ladder: threading with n_jobs unset one level down, sequential below.

use parjob::{Parallel, get_active_backend, parallel_backend};

fn here() -> (String, Option<i32>, usize) {
    let a = get_active_backend();
    (a.name().to_owned(), a.n_jobs(), a.nesting_level())
}

#[test]
fn nested_calls_follow_the_ladder() {
    let top = here();
    assert_eq!(top, ("threading".into(), Some(-1), 0));
    let levels = Parallel::new()
        .n_jobs(2)
        .map(0..2, |_| {
            let level1 = here();
            let inner = Parallel::new()
                .n_jobs(2)
                .map(0..2, |_| {
                    let level2 = here();
                    let deepest = Parallel::new().n_jobs(2).map(0..2, |_| here()).unwrap();
                    (level2, deepest)
                })
                .unwrap();
            (level1, inner)
        })
        .unwrap();
    for (level1, inner) in levels {
        assert_eq!(level1, ("threading".into(), None, 1));
        for (level2, deepest) in inner {
            assert_eq!(level2, ("sequential".into(), None, 2));
            // Sequential runs in the caller, so its tasks see the same scope.
            assert!(
                deepest
                    .iter()
                    .all(|d| *d == ("sequential".to_owned(), None, 2))
            );
        }
    }
}

#[test]
fn a_bare_call_inside_a_task_runs_on_that_task_s_thread() {
    let same = Parallel::new()
        .n_jobs(2)
        .map(0..4, |_| {
            let me = std::thread::current().id();
            Parallel::new()
                .map(0..3, |_| std::thread::current().id())
                .unwrap()
                .into_iter()
                .all(|id| id == me)
        })
        .unwrap();
    assert!(
        same.iter().all(|&s| s),
        "n_jobs unset inside a worker means 1"
    );
}

#[test]
fn nested_calls_asking_for_threads_do_not_deadlock() {
    // Every outer worker waits on an inner call of the same size.
    let sums = Parallel::new()
        .n_jobs(2)
        .map(0..6, |i| {
            Parallel::new()
                .n_jobs(2)
                .map(0..50, |j| i * j)
                .unwrap()
                .into_iter()
                .sum::<usize>()
        })
        .unwrap();
    assert_eq!(sums, (0..6).map(|i| i * 1225).collect::<Vec<_>>());
}

#[test]
fn a_sequential_top_level_is_transparent() {
    let _s = parallel_backend("sequential").n_jobs(3).enter().unwrap();
    let seen = Parallel::new().map(0..2, |_| here()).unwrap();
    assert!(
        seen.iter()
            .all(|s| *s == ("sequential".to_owned(), Some(3), 0))
    );
}

#[test]
fn inner_max_num_threads_sets_n_jobs_of_nested_calls() {
    let seen = parallel_backend("threading")
        .n_jobs(2)
        .inner_max_num_threads(3)
        .run(|| Parallel::new().map(0..4, |_| here()).unwrap())
        .unwrap();
    assert!(
        seen.iter()
            .all(|s| *s == ("threading".to_owned(), Some(3), 1)),
        "{seen:?}"
    );
}
