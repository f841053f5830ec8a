//! A library that uses parjob, called from inside rayon: the program's outer loop is a
//! `par_iter`, and each of its items calls a library function that makes a parallel call
//! of its own. The inner calls run on rayon's pool, the one the outer loop already uses, so
//! the program keeps one set of threads however the two nest.
//!
//! Run with `cargo run -p parjob-examples --example rayon_interop`.

use std::collections::BTreeSet;
use std::sync::Mutex;

use parjob::Parallel;
use rayon::prelude::*;

/// The library: scores one candidate against every sample, in parallel (it knows nothing
/// of its caller's threads).
fn score(candidate: u64, samples: &[u64], seen: &Mutex<BTreeSet<String>>) -> u64 {
    let distances = Parallel::new()
        .n_jobs(4)
        .map(samples, |&s| {
            let name = std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .to_owned();
            seen.lock().unwrap().insert(name);
            s.abs_diff(candidate)
        })
        .expect("distances cannot fail");
    distances.iter().sum()
}

fn main() {
    let samples: Vec<u64> = (0..2_000).map(|i| (i * 7_919) % 1_000).collect();
    let seen = Mutex::new(BTreeSet::new());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .thread_name(|i| format!("outer-{i}"))
        .build()
        .expect("a pool of 2 threads");

    // The program's own parallel loop over candidates.
    let scores: Vec<(u64, u64)> = pool.install(|| {
        (0..16u64)
            .into_par_iter()
            .map(|c| (c * 60, score(c * 60, &samples, &seen)))
            .collect()
    });
    let best = scores.iter().min_by_key(|(_, s)| *s).expect("16 scores");
    println!("best candidate {} (total distance {})", best.0, best.1);

    let threads = seen.into_inner().unwrap();
    println!("inner tasks ran on: {threads:?}");
    assert!(
        threads.iter().all(|t| t.starts_with("outer-")),
        "the inner calls started threads of their own: {threads:?}"
    );
    assert_eq!(best.0, 480);
}
