//! Results as they come: `map_iter` yields them in input order, `map_unordered` as soon as
//! each finishes. Both pull their input lazily and stop pulling when results are not
//! taken, so an endless input is fine; dropping the stream cancels what is left.
//!
//! Run with `cargo run -p parjob-examples --example streams`.

use std::time::Duration;

use parjob::Parallel;

/// A task whose duration depends on its input: later inputs finish first.
fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(40 - 10 * (x % 4)));
    x * x
}

fn main() -> Result<(), parjob::Error> {
    let parallel = Parallel::new().backend("threading").n_jobs(4).batch_size(1);

    // In input order, whatever order the tasks finish in.
    let mut ordered = Vec::new();
    for result in parallel.map_iter(0..8u64, slow_square)? {
        ordered.push(result?);
    }
    assert_eq!(ordered, [0, 1, 4, 9, 16, 25, 36, 49]);
    println!("in order:      {ordered:?}");

    // As they finish: the same results, in completion order.
    let mut unordered = Vec::new();
    for result in parallel.map_unordered(0..8u64, slow_square)? {
        unordered.push(result?);
    }
    println!("as they finish: {unordered:?}");
    unordered.sort_unstable();
    assert_eq!(unordered, ordered);

    // An endless input: take what you need; the rest is never pulled.
    let first_big: Vec<u64> = parallel
        .map_iter(0u64.., |x| x * 3)?
        .map(|r| r.expect("tripling cannot fail"))
        .filter(|v| v % 2 == 1)
        .take(5)
        .collect();
    assert_eq!(first_big, [3, 9, 15, 21, 27]);
    println!("first odd multiples of 3 from an endless input: {first_big:?}");
    Ok(())
}
