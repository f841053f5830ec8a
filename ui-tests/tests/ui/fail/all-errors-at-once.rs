// Every mistake in an invocation is reported in one compile, and the function is still
// emitted: `main` calls it without a "cannot find function" error.
use parjob::parallel_backend;

#[parallel_backend("threadng", n_jobs = 0, batch_size = 2, n_jobs = 1, prefer = "procs")]
fn everything_wrong() -> u8 {
    7
}

fn main() {
    assert_eq!(everything_wrong(), 7);
}
