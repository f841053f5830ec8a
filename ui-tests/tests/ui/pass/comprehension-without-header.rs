use parjob::{parallel, parallel_backend};

fn neg(x: i64) -> i64 {
    -x
}

fn main() -> Result<(), parjob::Error> {
    assert_eq!(parallel!(neg(i + 1) for i in 0..5)?, [-1, -2, -3, -4, -5]);

    // The body may borrow from the caller, and the items may be references.
    let words = vec!["a".to_owned(), "bb".to_owned()];
    let suffix = "!";
    assert_eq!(
        parallel!(format!("{w}{suffix}") for w in &words)?,
        ["a!", "bb!"]
    );

    // A header-less call inherits the active scope.
    let _scope = parallel_backend("sequential").enter()?;
    let caller = std::thread::current().id();
    assert!(
        parallel!(std::thread::current().id() for _ in 0..3)?
            .iter()
            .all(|&id| id == caller)
    );

    // The path form works too.
    assert_eq!(parjob::parallel!(x for x in [1, 2])?, [1, 2]);
    Ok(())
}
