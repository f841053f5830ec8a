//! On threads, ranges and `Vec`s of 128 items or more are split among the workers instead of being pulled by the
//! caller: results in order, every input and every result dropped exactly once whatever
//! fails, failures reported with the failing task's index and stopping the others soon, and
//! a call made inside a rayon pool of the program's runs on that pool's threads (split or
//! not).

use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::Duration;

use parjob::{Error, Parallel, get_active_backend, parallel, parallel_backend};
use parjob_tests::Tracked;

fn threads(n_jobs: i32) -> Parallel {
    Parallel::new().backend("threading").n_jobs(n_jobs)
}

#[test]
fn ranges_of_every_integer_type_keep_their_order() {
    for n_jobs in [2, 3, 7] {
        let p = threads(n_jobs);
        let squares = p.map(0..10_000usize, |i| i * i).unwrap();
        assert_eq!(squares, (0..10_000usize).map(|i| i * i).collect::<Vec<_>>());
        assert_eq!(
            p.map(-500i64..500, |i| i * 2).unwrap(),
            (-500i64..500).map(|i| i * 2).collect::<Vec<_>>()
        );
        assert_eq!(
            p.map(0u8..255, u32::from).unwrap(),
            (0..255).collect::<Vec<u32>>()
        );
        assert_eq!(
            p.map(i8::MIN..i8::MAX, i32::from).unwrap(),
            (-128..127).collect::<Vec<i32>>()
        );
        let top = u64::MAX - 300..u64::MAX;
        assert_eq!(p.map(top.clone(), |i| i).unwrap(), top.collect::<Vec<_>>());
        assert_eq!(
            p.map(7u32..1_000, |i| i + 1).unwrap(),
            (8..1_001).collect::<Vec<u32>>()
        );
        assert_eq!(p.map(3usize..3, |i| i).unwrap(), Vec::<usize>::new());
        // Short inputs take the dispatcher's path, with the same results.
        assert_eq!(
            p.map(-5i16..5, |i| i * 2).unwrap(),
            (-5i16..5).map(|i| i * 2).collect::<Vec<_>>()
        );
        let negated = parallel!("threading", n_jobs = n_jobs; -x for x in 0..1_000i64).unwrap();
        assert_eq!(negated, (0..1_000i64).map(|x| -x).collect::<Vec<_>>());
    }
}

#[test]
fn vectors_are_moved_to_the_workers_in_order() {
    let words: Vec<String> = (0..3_000).map(|i| format!("w{i}")).collect();
    let lengths = threads(2).map(words.clone(), |w| w.len()).unwrap();
    assert_eq!(lengths, words.iter().map(String::len).collect::<Vec<_>>());
    let upper = threads(3).map(words.clone(), |w| w.to_uppercase()).unwrap();
    assert_eq!(upper[2_999], "W2999");
    // A vector whose iterator was advanced is split from where it stands.
    let mut rest = words.clone().into_iter();
    rest.next();
    assert_eq!(threads(2).map(rest, |w| w).unwrap(), words[1..]);
}

#[test]
fn every_input_and_result_is_dropped_once_whatever_fails() {
    for fail_at in [0, 1, 999, 2_500, 4_999] {
        let inputs = Arc::new(AtomicIsize::new(0));
        let outputs = Arc::new(AtomicIsize::new(0));
        let items: Vec<(usize, Tracked)> = (0..5_000).map(|i| (i, Tracked::new(&inputs))).collect();
        let err = threads(2)
            .try_map(items, |(i, _input)| {
                if i == fail_at {
                    return Err(format!("task {i} refuses"));
                }
                Ok(Tracked::new(&outputs))
            })
            .unwrap_err();
        match err {
            Error::TaskFailed { index, .. } => assert_eq!(index, fail_at),
            other => panic!("expected TaskFailed, got {other:?}"),
        }
        assert_eq!(
            inputs.load(Ordering::SeqCst),
            0,
            "inputs alive after failing at {fail_at}"
        );
        assert_eq!(
            outputs.load(Ordering::SeqCst),
            0,
            "results alive after failing at {fail_at}"
        );

        let items: Vec<(usize, Tracked)> = (0..5_000).map(|i| (i, Tracked::new(&inputs))).collect();
        let err = threads(3)
            .map(items, |(i, _input)| {
                assert_ne!(i, fail_at, "task {i} panics");
                Tracked::new(&outputs)
            })
            .unwrap_err();
        match err {
            Error::TaskPanicked { index, message } => {
                assert_eq!(index, fail_at);
                assert!(
                    message.contains(&format!("task {fail_at} panics")),
                    "{message}"
                );
            }
            other => panic!("expected TaskPanicked, got {other:?}"),
        }
        assert_eq!(inputs.load(Ordering::SeqCst), 0);
        assert_eq!(outputs.load(Ordering::SeqCst), 0);
    }
    // And on success, the results are the caller's, the inputs gone.
    let inputs = Arc::new(AtomicIsize::new(0));
    let outputs = Arc::new(AtomicIsize::new(0));
    let items: Vec<Tracked> = (0..1_000).map(|_| Tracked::new(&inputs)).collect();
    let results = threads(2)
        .map(items, |_input| Tracked::new(&outputs))
        .unwrap();
    assert_eq!(
        (
            inputs.load(Ordering::SeqCst),
            outputs.load(Ordering::SeqCst)
        ),
        (0, 1_000)
    );
    drop(results);
    assert_eq!(outputs.load(Ordering::SeqCst), 0);
}

#[test]
fn a_failure_stops_the_other_tasks_soon() {
    let ran = AtomicUsize::new(0);
    let err = threads(2)
        .try_map(0..100_000u32, |i| {
            ran.fetch_add(1, Ordering::Relaxed);
            if i == 0 {
                Err("the first task fails")
            } else {
                Ok(i)
            }
        })
        .unwrap_err();
    assert!(matches!(err, Error::TaskFailed { index: 0, .. }), "{err:?}");
    let ran = ran.load(Ordering::Relaxed);
    assert!(
        ran < 50_000,
        "{ran} of 100,000 tasks ran after the first failed"
    );
}

/// Tasks see the same scope as on the pulled path (a lazy iterator, which cannot be split):
/// the call's nested scope, one level down.
#[test]
fn tasks_see_the_nested_scope() {
    fn seen<T>(_: T) -> (String, Option<i32>) {
        let active = get_active_backend();
        (active.name().to_owned(), active.n_jobs())
    }
    let split = threads(2).map(0..1_000, seen).unwrap();
    let pulled = threads(2).map((0..1_000).map(|i| i + 1), seen).unwrap();
    assert_eq!(split, pulled);
    let (split, pulled) = parallel_backend("threading")
        .n_jobs(2)
        .inner_max_num_threads(3)
        .run(|| {
            let split = Parallel::new().map(vec![1; 1_000], seen).unwrap();
            let pulled = Parallel::new()
                .map([1; 1_000].into_iter().rev(), seen)
                .unwrap();
            (split, pulled)
        })
        .unwrap();
    assert_eq!(split, pulled);
    assert_eq!(split[0], ("threading".to_owned(), Some(3)));
}

/// A call made from a thread of the program's own rayon pool (or of rayon's global pool)
/// runs on that pool: no thread of parjob's takes part.
#[test]
fn calls_inside_a_rayon_pool_run_on_its_threads() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .thread_name(|i| format!("program-pool-{i}"))
        .build()
        .unwrap();
    let names = |out: Vec<String>| {
        let mut distinct = out;
        distinct.sort();
        distinct.dedup();
        distinct
    };
    fn thread_name<T>(_: T) -> String {
        std::thread::current().name().unwrap_or("").to_owned()
    }
    let ran_on = pool
        .install(|| threads(4).map(0..10_000u32, thread_name))
        .unwrap();
    let ran_on = names(ran_on);
    assert!(
        ran_on.iter().all(|n| n.starts_with("program-pool-")),
        "{ran_on:?}"
    );
    assert!(ran_on.len() <= 3, "{ran_on:?}");

    // Also from inside a `par_iter` of that pool.
    use rayon::prelude::*;
    let nested: Vec<Vec<String>> = pool.install(|| {
        (0..4)
            .into_par_iter()
            .map(|_| threads(2).map(vec![0u8; 500], thread_name).unwrap())
            .collect()
    });
    let ran_on = names(nested.into_iter().flatten().collect());
    assert!(
        ran_on.iter().all(|n| n.starts_with("program-pool-")),
        "{ran_on:?}"
    );

    // Inputs that cannot be split (a lazy iterator, a short range), and calls with a
    // timeout, go through the dispatcher: on that pool too.
    let lazy = pool.install(|| threads(4).map((0..2_000u32).map(|i| i + 1), thread_name));
    let short = pool.install(|| threads(4).map(0..5u32, thread_name));
    let timed = pool.install(|| {
        threads(4)
            .timeout(Duration::from_secs(60))
            .map(0..500u32, thread_name)
    });
    for ran_on in [lazy, short, timed] {
        let ran_on = names(ran_on.unwrap());
        assert!(
            ran_on.iter().all(|n| n.starts_with("program-pool-")),
            "{ran_on:?}"
        );
    }
    // A pool of one thread: the call's waits run its tasks, so nothing waits forever.
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let sums = one.install(|| {
        (0..3)
            .into_par_iter()
            .map(|k| {
                threads(2)
                    .map((0..300u64).map(move |i| i * k), |x| x)
                    .unwrap()
                    .iter()
                    .sum()
            })
            .collect::<Vec<u64>>()
    });
    assert_eq!(sums, [0, 44_850, 89_700]);
    // Also when a process backend sends the tasks to threads (a capture without serde
    // cannot reach loky's workers).
    struct Opaque(u64);
    let opaque = Opaque(1);
    let sums = one.install(|| {
        (0..2)
            .into_par_iter()
            .map(|_| {
                parallel_backend("loky")
                    .n_jobs(2)
                    .run(|| parallel!(opaque.0 + x for x in 0..300u64))
                    .unwrap()
                    .unwrap()
                    .iter()
                    .sum()
            })
            .collect::<Vec<u64>>()
    });
    assert_eq!(sums, [45_150, 45_150]);

    // A child forked from a thread of that pool has none of the pool's other threads:
    // calls in the child get threads of their own.
    let in_children = pool.install(|| {
        parallel!("multiprocessing", n_jobs = 2;
            threads(2).map(0..1_000u32, thread_name).unwrap().len()
                + threads(2).map((0..10u32).map(|i| i + 1), thread_name).unwrap().len()
            for _child in 0..2)
    });
    assert_eq!(in_children.unwrap(), [1_010, 1_010]);

    // Outside any rayon pool, the call gets parjob's own threads.
    let own = names(threads(2).map(0..10_000u32, thread_name).unwrap());
    assert!(own.iter().all(|n| n.starts_with("parjob-")), "{own:?}");
}
