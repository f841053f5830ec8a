use parjob::{parallel, parallel_backend};

#[parallel_backend("threading", n_jobs = 0)]
fn no_workers() {}

fn main() {
    let _ = parallel!(n_jobs = (0); x for x in 0..3);
}
