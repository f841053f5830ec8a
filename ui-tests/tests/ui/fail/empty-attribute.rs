use parjob::parallel_backend;

#[parallel_backend]
fn nothing() {}

#[parallel_backend()]
fn still_nothing() {}

fn main() {}
