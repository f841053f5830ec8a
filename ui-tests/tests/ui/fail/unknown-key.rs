use parjob::{parallel, parallel_backend};

#[parallel_backend("threading", n_job = 2)]
fn misspelt() {}

#[parallel_backend("loky", idle_worker_timout = 10)]
fn misspelt_param() {}

#[parallel_backend("sequential", colour = "blue")]
fn unknown() {}

fn main() {}

fn call() {
    let _ = parallel!("threading", batchsize = 2; x for x in 0..3);
}
