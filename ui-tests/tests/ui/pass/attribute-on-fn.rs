// The seed example: a backend chosen at compile time for one function.
use parjob::{get_active_backend, parallel, parallel_backend};

fn neg(x: i64) -> i64 {
    -x
}

#[parallel_backend("threading", n_jobs = 4)]
fn negate_all(xs: &[i64]) -> Result<Vec<i64>, parjob::Error> {
    parallel!(neg(x) for x in xs.iter().copied())
}

#[parallel_backend("sequential")]
fn active() -> (String, Option<i32>) {
    let backend = get_active_backend();
    (backend.name().to_owned(), backend.n_jobs())
}

#[parallel_backend(
    "threading",
    n_jobs = 2,
    verbose = 0,
    prefer = "threads",
    inner_max_num_threads = 1
)]
fn with_every_scope_key() -> Option<i32> {
    get_active_backend().n_jobs()
}

fn main() {
    assert_eq!(negate_all(&[1, 2, 3]).unwrap(), [-1, -2, -3]);
    // A backend named without `n_jobs` means every cpu, as `parallel_backend` does.
    assert_eq!(active(), ("sequential".to_owned(), Some(-1)));
    assert_eq!(with_every_scope_key(), Some(2));
    // The scope ends with the function.
    assert_ne!(get_active_backend().name(), "sequential");
}
