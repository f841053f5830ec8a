use parjob::parallel_backend;

#[parallel_backend(4)]
fn numbered() {}

fn main() {}
