use parjob::{parallel, parallel_backend};

#[parallel_backend(n_jbos = 2)]
fn misspelt() {}

fn main() {
    let _ = parallel!(idle_worker_timeout = 10; x for x in 0..3);
}
