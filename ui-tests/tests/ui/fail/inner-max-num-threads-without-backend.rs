use parjob::parallel_backend;

#[parallel_backend(n_jobs = 2, inner_max_num_threads = 2)]
fn no_backend() {}

fn main() {}
