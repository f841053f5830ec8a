use parjob::{parallel, parallel_backend};

#[parallel_backend("threading", prefer = "thread")]
fn misspelt() {}

fn main() {
    let _ = parallel!(prefer = 1; x for x in 0..3);
}
