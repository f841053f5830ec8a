//! Results come back in input order for every backend, every n_jobs and every call shape.

use parjob::{Delayed, Error, Parallel, backend::Sequential, backend::Threading, parallel_backend};
use std::time::Duration;

const N: usize = 517;
const N_JOBS: [i32; 5] = [1, 2, -1, -2, 7];

fn slow_square(i: usize) -> usize {
    // Uneven task durations shuffle completion order.
    if i.is_multiple_of(13) {
        std::thread::sleep(Duration::from_micros(300));
    }
    i * i
}

fn expected() -> Vec<usize> {
    (0..N).map(|i| i * i).collect()
}

fn each_backend(mut check: impl FnMut(&str, i32)) {
    for backend in ["sequential", "threading"] {
        for n_jobs in N_JOBS {
            let _scope = parallel_backend(backend).n_jobs(n_jobs).enter().unwrap();
            check(backend, n_jobs);
        }
    }
}

#[test]
fn map_keeps_input_order() {
    each_backend(|b, n| {
        let out = Parallel::new().map(0..N, slow_square).unwrap();
        assert_eq!(out, expected(), "{b} n_jobs={n}");
    });
}

#[test]
fn run_keeps_input_order_for_closures_and_delayed() {
    each_backend(|b, n| {
        let out = Parallel::new()
            .run((0..N).map(|i| move || slow_square(i)))
            .unwrap();
        assert_eq!(out, expected(), "{b} n_jobs={n}");
        let out = Parallel::new()
            .run((0..N).map(|i| Delayed::new(move || slow_square(i))))
            .unwrap();
        assert_eq!(out, expected(), "{b} n_jobs={n}");
    });
}

#[test]
fn try_forms_keep_input_order() {
    each_backend(|b, n| {
        let out = Parallel::new()
            .try_map(0..N, |i| Ok::<_, Error>(slow_square(i)))
            .unwrap();
        assert_eq!(out, expected(), "{b} n_jobs={n}");
        let out = Parallel::new()
            .try_run((0..N).map(|i| move || Ok::<_, std::fmt::Error>(slow_square(i))))
            .unwrap();
        assert_eq!(out, expected(), "{b} n_jobs={n}");
    });
}

#[test]
fn ordered_stream_keeps_input_order_and_unordered_loses_nothing() {
    each_backend(|b, n| {
        let out: Vec<usize> = Parallel::new()
            .map_iter(0..N, slow_square)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(out, expected(), "{b} n_jobs={n}");
        let mut out: Vec<usize> = Parallel::new()
            .run_unordered((0..N).map(|i| move || slow_square(i)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        out.sort_unstable();
        assert_eq!(out, expected(), "{b} n_jobs={n}");
    });
}

#[test]
fn backend_instances_and_fixed_batches_keep_order() {
    for n_jobs in N_JOBS {
        for batch in [1usize, 3, 64, 1000] {
            let out = Parallel::new()
                .backend(Threading::new())
                .n_jobs(n_jobs)
                .batch_size(batch)
                .map(0..N, slow_square)
                .unwrap();
            assert_eq!(out, expected(), "n_jobs={n_jobs} batch={batch}");
        }
        let out = Parallel::new()
            .backend(Sequential::new())
            .n_jobs(n_jobs)
            .map(0..N, slow_square)
            .unwrap();
        assert_eq!(out, expected());
    }
}

#[test]
fn input_of_unknown_length_keeps_order() {
    let input = (0..N).filter(|_| true); // no exact size hint
    let out = Parallel::new().n_jobs(3).map(input, slow_square).unwrap();
    assert_eq!(out, expected());
}

#[test]
fn empty_input_gives_empty_output() {
    each_backend(|b, n| {
        let none: Vec<u8> = Parallel::new()
            .map(std::iter::empty::<u8>(), |x| x)
            .unwrap();
        assert!(none.is_empty(), "{b} n_jobs={n}");
        let none: Vec<u8> = Parallel::new()
            .run(std::iter::empty::<fn() -> u8>())
            .unwrap();
        assert!(none.is_empty());
        assert_eq!(
            Parallel::new()
                .map_iter(std::iter::empty::<u8>(), |x| x)
                .unwrap()
                .count(),
            0
        );
    });
}

#[test]
fn map_borrows_items_and_captures_from_the_caller() {
    let words: Vec<String> = (0..N).map(|i| format!("w{i}")).collect();
    let suffix = String::from("!");
    let out = Parallel::new()
        .n_jobs(2)
        .map(&words, |w| format!("{w}{suffix}"))
        .unwrap();
    assert_eq!(out[0], "w0!");
    assert_eq!(out[N - 1], format!("w{}!", N - 1));
}
