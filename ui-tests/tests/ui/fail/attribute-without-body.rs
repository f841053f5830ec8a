use parjob::parallel_backend;

trait Work {
    #[parallel_backend("threading")]
    fn work(&self);
}

fn main() {}
