use parjob::{parallel, parallel_backend};

#[parallel_backend("loky", prefer = "processes", require = "sharedmem")]
fn contradictory() {}

fn main() {
    let _ = parallel!(require = "sharedmem", prefer = "processes"; x for x in 0..3);
}
