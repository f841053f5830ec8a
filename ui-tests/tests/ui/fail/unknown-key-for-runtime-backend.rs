use parjob::parallel_backend;

fn backend() -> String {
    "threading".to_owned()
}

// A run-time backend may take any parameter, but not a near miss of a common key.
#[parallel_backend(backend(), verbos = 1)]
fn misspelt() {}

fn main() {}
