// Header-less calls in an annotated body are rewritten to carry the attribute's backend; the
// rewriting never shows in their errors.
use parjob::{parallel, parallel_backend};

fn work() -> Vec<i32> {
    Vec::new()
}

#[parallel_backend("threading")]
fn annotated() -> Result<Vec<i32>, parjob::Error> {
    let a: Vec<i32> = parallel!(work())?;
    let b: Vec<i32> = parallel!(x x in 0..3)?;
    Ok([a, b].concat())
}

fn main() {
    let _ = annotated();
}
