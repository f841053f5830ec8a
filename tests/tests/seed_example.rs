//! The seed example of the design, as written there: the scope guard, the comprehension and
//! the attribute.

use parjob::{Parallel, delayed, parallel, parallel_backend};

fn neg(x: i64) -> i64 {
    -x
}

// compile-time backend selection on a function
#[parallel_backend("threading", n_jobs = 4)]
fn negate_all(xs: &[i64]) -> Result<Vec<i64>, parjob::Error> {
    parallel!(neg(x) for x in xs.iter().copied())
}

#[test]
fn the_seed_example_runs_as_written() -> Result<(), parjob::Error> {
    // runtime form: a scope guard, like Python's `with parallel_backend('threading'):`
    let _scope = parallel_backend("threading").enter()?;
    assert_eq!(
        Parallel::new().run((0..5).map(|i| delayed!(neg(i + 1))))?,
        vec![-1, -2, -3, -4, -5]
    );

    // comprehension form of the block macro
    assert_eq!(
        parallel!(neg(i + 1) for i in 0..5)?,
        vec![-1, -2, -3, -4, -5]
    );

    assert_eq!(negate_all(&[1, 2, 3])?, vec![-1, -2, -3]);
    Ok(())
}

#[test]
fn the_attribute_scope_is_active_inside_and_gone_after() -> Result<(), parjob::Error> {
    #[parallel_backend("sequential", n_jobs = 3)]
    fn inside() -> (String, Option<i32>) {
        let a = parjob::get_active_backend();
        (a.name().to_owned(), a.n_jobs())
    }
    assert_eq!(inside(), ("sequential".to_owned(), Some(3)));
    assert_eq!(parjob::get_active_backend().name(), "threading");

    let from_block = parallel!("sequential", n_jobs = 2;
        let a = parjob::get_active_backend();
        (a.name().to_owned(), a.n_jobs())
    );
    assert_eq!(from_block, ("sequential".to_owned(), Some(2)));
    Ok(())
}
