use parjob::parallel_backend;

#[parallel_backend("threading")]
pub struct Workers;

#[parallel_backend("threading")]
mod tasks {}

fn main() {}
