use parjob::parallel_backend;

#[parallel_backend("threading", require = "shared_mem")]
fn misspelt() {}

fn main() {}
