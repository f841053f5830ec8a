use parjob::parallel_backend;

#[parallel_backend("threading")]
const fn constant() -> u8 {
    1
}

fn main() {}
