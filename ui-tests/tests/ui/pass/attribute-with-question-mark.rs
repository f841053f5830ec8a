// The scope is a guard at the top of the body, not a closure: `?` and `return` still act on
// the function, and the scope ends however the function is left.
use parjob::{get_active_backend, parallel, parallel_backend};

#[derive(Debug)]
enum AppError {
    Parallel(parjob::Error),
    Negative,
}

impl From<parjob::Error> for AppError {
    fn from(error: parjob::Error) -> Self {
        AppError::Parallel(error)
    }
}

#[parallel_backend("sequential")]
fn checked_roots(xs: &[f64]) -> Result<Vec<f64>, AppError> {
    if xs.is_empty() {
        return Ok(Vec::new());
    }
    if xs.iter().any(|&x| x < 0.0) {
        return Err(AppError::Negative);
    }
    let roots = parallel!(x.sqrt() for x in xs.iter().copied())?;
    assert_eq!(get_active_backend().name(), "sequential");
    Ok(roots)
}

fn main() {
    assert_eq!(checked_roots(&[4.0, 9.0]).unwrap(), [2.0, 3.0]);
    assert!(checked_roots(&[]).unwrap().is_empty());
    assert!(matches!(checked_roots(&[-1.0]), Err(AppError::Negative)));
    assert_ne!(get_active_backend().name(), "sequential");
    if let Err(AppError::Parallel(error)) = checked_roots(&[1.0]) {
        panic!("{error}");
    }
}
