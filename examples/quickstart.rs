//! The seed example: choose a backend with a scope or an attribute, then run tasks in
//! parallel.
//!
//! Run it with `cargo run -p parjob-examples --example quickstart`.

use parjob::{Parallel, delayed, get_active_backend, parallel, parallel_backend};

fn neg(x: i64) -> i64 {
    -x
}

// Every parallel call in this function runs on 4 threads, chosen at compile time.
#[parallel_backend("threading", n_jobs = 4)]
fn negate_all(xs: &[i64]) -> Result<Vec<i64>, parjob::Error> {
    parallel!(neg(x) for x in xs.iter().copied())
}

fn main() -> Result<(), parjob::Error> {
    // Like Python's `with parallel_backend('threading'):` — the scope lasts as long as the guard.
    let _scope = parallel_backend("threading").enter()?;
    let active = get_active_backend();
    println!(
        "backend: {}, n_jobs: {:?} ({} workers)",
        active.name(),
        active.n_jobs(),
        parjob::effective_n_jobs(active.n_jobs().unwrap_or(1))?
    );

    let negated = Parallel::new().run((0..5).map(|i| delayed!(neg(i + 1))))?;
    println!("Parallel::new().run(delayed!(neg(i + 1)) for i in 0..5) = {negated:?}");
    assert_eq!(negated, [-1, -2, -3, -4, -5]);

    let comprehension = parallel!(neg(i + 1) for i in 0..5)?;
    println!("parallel!(neg(i + 1) for i in 0..5) = {comprehension:?}");
    assert_eq!(comprehension, negated);

    println!("negate_all(&[1, 2, 3]) = {:?}", negate_all(&[1, 2, 3])?);

    // A call may borrow from the caller.
    let data: Vec<f64> = (1..=8).map(f64::from).collect();
    let roots = Parallel::new().n_jobs(2).map(&data, |x| x.sqrt())?;
    println!("square roots of 1..=8: {roots:.3?}");
    Ok(())
}
