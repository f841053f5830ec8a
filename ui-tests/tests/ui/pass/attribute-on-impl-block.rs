// On an `impl` block the attribute applies to every method; a method's own attribute wins,
// and `const fn`s are left alone.
use parjob::{get_active_backend, parallel, parallel_backend};

struct Pipeline;

#[parallel_backend("sequential", n_jobs = 2)]
impl Pipeline {
    const LIMIT: usize = 3;

    fn name(&self) -> String {
        get_active_backend().name().to_owned()
    }

    fn squares(&self, n: u64) -> Result<Vec<u64>, parjob::Error> {
        parallel!(i * i for i in 0..n)
    }

    fn n_jobs() -> Option<i32> {
        get_active_backend().n_jobs()
    }

    #[parallel_backend("threading")]
    fn own_backend(&self) -> String {
        get_active_backend().name().to_owned()
    }

    const fn limit() -> usize {
        Self::LIMIT
    }
}

fn main() {
    let pipeline = Pipeline;
    assert_eq!(pipeline.name(), "sequential");
    assert_eq!(pipeline.squares(4).unwrap(), [0, 1, 4, 9]);
    assert_eq!(Pipeline::n_jobs(), Some(2));
    assert_eq!(pipeline.own_backend(), "threading");
    assert_eq!(Pipeline::limit(), 3);
}
