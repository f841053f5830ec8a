// Every form, under `deny(warnings)` and with lints that macro output often trips.
#![deny(
    warnings,
    unused_qualifications,
    unused_results,
    unreachable_pub,
    unused_parens
)]
#![deny(clippy::all)]

use parjob::{Parallel, delayed, parallel, parallel_backend};

fn neg(x: i64) -> i64 {
    -x
}

fn answer() -> i64 {
    42
}

#[parallel_backend("threading", n_jobs = 2, verbose = 0)]
fn attribute(xs: &[i64]) -> Result<Vec<i64>, parjob::Error> {
    let unconditional = parallel!(neg(x) for x in xs.iter().copied())?;
    let filtered = parallel!(neg(x) for x in xs.iter().copied() if x > 1)?;
    let headed =
        parallel!(n_jobs = 1, batch_size = 1, timeout = 1.5; x for x in xs.iter().copied())?;
    Ok([unconditional, filtered, headed].concat())
}

struct Unit;

#[parallel_backend("sequential")]
impl Unit {
    fn tuples(&self) -> Result<Vec<i64>, parjob::Error> {
        parallel!(a - b for (a, b) in [(3, 1), (5, 2)])
    }
}

fn block() -> Result<i64, parjob::Error> {
    let value = parallel!("threading", n_jobs = 2;
        let xs = parallel!(x for x in 0..4_i64)?;
        xs.into_iter().sum::<i64>()
    );
    parallel!("sequential";);
    Ok(value)
}

fn main() -> Result<(), parjob::Error> {
    assert_eq!(attribute(&[1, 2])?, [-1, -2, -2, 1, 2]);
    assert_eq!(Unit.tuples()?, [2, 3]);
    assert_eq!(block()?, 6);
    let tasks: Vec<_> = (1..3).map(|i| delayed!(neg(i))).collect();
    assert_eq!(Parallel::new().run(tasks)?, [-1, -2]);
    assert_eq!(Parallel::new().run([delayed!(answer())])?, [42]);
    Ok(())
}
