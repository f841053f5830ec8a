use parjob::{parallel, parallel_backend};

#[parallel_backend("threading", n_jobs = 2.5, verbose = -1)]
fn fractional() {}

#[parallel_backend("threading", n_jobs = "4", inner_max_num_threads = 0)]
fn stringly() {}

#[parallel_backend("threading", n_jobs = 3_000_000_000)]
fn too_many() {}

fn main() {
    let _ = parallel!(verbose = true; x for x in 0..3);
}
