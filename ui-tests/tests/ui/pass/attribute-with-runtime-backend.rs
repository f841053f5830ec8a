// A backend that is not a string literal is evaluated at run time: a `String`, a
// `registered(..)` lookup, a backend instance. Keys the macro does not know are passed to
// such a backend as parameters.
use parjob::{Error, get_active_backend, parallel, parallel_backend, registered};

fn configured_backend() -> String {
    "sequential".to_owned()
}

#[parallel_backend(configured_backend(), n_jobs = 3)]
fn from_string() -> (String, Option<i32>) {
    let backend = get_active_backend();
    (backend.name().to_owned(), backend.n_jobs())
}

#[parallel_backend(registered("sequential"))]
fn from_registry() -> String {
    get_active_backend().name().to_owned()
}

// The threading backend takes no `colour`: the runtime says so when the call runs.
#[parallel_backend(registered("threading"), colour = "blue")]
fn with_param() -> Result<Vec<i32>, parjob::Error> {
    parallel!(i for i in 0..2)
}

#[parallel_backend(n_jobs = 2)]
fn keys_only() -> Option<i32> {
    get_active_backend().n_jobs()
}

fn main() {
    assert_eq!(from_string(), ("sequential".to_owned(), Some(3)));
    assert_eq!(from_registry(), "sequential");
    assert!(matches!(with_param(), Err(Error::InvalidConfig { .. })));
    assert_eq!(keys_only(), Some(2));
}
