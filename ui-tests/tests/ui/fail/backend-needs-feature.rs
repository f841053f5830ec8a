use parjob::parallel_backend;

#[parallel_backend("mpi")]
fn main() {}
