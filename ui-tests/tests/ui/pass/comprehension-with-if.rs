use parjob::parallel;

fn is_prime(n: u32) -> bool {
    n >= 2
        && (2..n)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

fn main() -> Result<(), parjob::Error> {
    assert_eq!(
        parallel!(n for n in 0..20 if is_prime(n))?,
        [2, 3, 5, 7, 11, 13, 17, 19]
    );
    assert_eq!(
        parallel!(n_jobs = 2; n * n for n in 0..10 if n % 3 == 0)?,
        [0, 9, 36, 81]
    );
    // Every item filtered out.
    assert!(parallel!(n for n in 0..10 if n > 100)?.is_empty());
    Ok(())
}
