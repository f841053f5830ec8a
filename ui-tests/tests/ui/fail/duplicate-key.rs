use parjob::{parallel, parallel_backend};

#[parallel_backend("threading", n_jobs = 2, verbose = 1, n_jobs = 4)]
fn twice() {}

fn main() {
    let jobs = 2;
    let _ = parallel!(n_jobs = jobs, n_jobs = 3; x for x in 0..3);
}
