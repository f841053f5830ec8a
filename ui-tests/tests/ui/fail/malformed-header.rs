use parjob::{parallel, parallel_backend};

#[parallel_backend("threading" n_jobs = 2)]
fn missing_comma() {}

#[parallel_backend("threading", n_jobs =)]
fn missing_value() {}

#[parallel_backend(n_jobs = 2, "threading")]
fn backend_not_first() {}

#[parallel_backend("threading", "loky")]
fn two_backends() {}

#[parallel_backend("threading",, n_jobs = 2)]
fn double_comma() {}

fn main() {
    let _ = parallel!(; x for x in 0..3);
}
