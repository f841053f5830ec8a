use parjob::parallel_backend;

#[parallel_backend("sequential", inner_max_num_threads = 2)]
fn nothing_to_limit() {}

fn main() {}
