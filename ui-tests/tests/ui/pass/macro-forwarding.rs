// Headers and comprehensions forwarded through `macro_rules!` arrive wrapped in invisible
// groups; literal checks and the comprehension parser must see through them.
use parjob::{Parallel, delayed, get_active_backend, parallel, parallel_backend};

macro_rules! squares_with {
    ($jobs:expr, $n:expr) => {
        parallel!(n_jobs = $jobs, batch_size = $jobs; i * i for i in 0..$n)
    };
}

macro_rules! scoped {
    ($backend:literal, $jobs:expr, $body:block) => {{
        #[parallel_backend($backend, n_jobs = $jobs)]
        fn inner() -> (String, Option<i32>) {
            let _ = $body;
            let active = get_active_backend();
            (active.name().to_owned(), active.n_jobs())
        }
        inner()
    }};
}

macro_rules! task {
    ($f:path, $($arg:expr),*) => {
        delayed!($f($($arg),*))
    };
}

fn double(x: i32) -> i32 {
    x * 2
}

fn main() -> Result<(), parjob::Error> {
    assert_eq!(squares_with!(2, 4)?, [0, 1, 4, 9]);
    assert_eq!(
        scoped!("sequential", 3, { 1 }),
        ("sequential".to_owned(), Some(3))
    );
    assert_eq!(Parallel::new().run([task!(double, 21)])?, [42]);
    Ok(())
}
