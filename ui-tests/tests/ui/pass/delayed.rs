use parjob::{Parallel, Task, delayed};
use std::sync::atomic::{AtomicUsize, Ordering};

fn neg(x: i64) -> i64 {
    -x
}

fn add(a: i64, b: i64) -> i64 {
    a + b
}

fn answer() -> u8 {
    42
}

fn identity<T>(x: T) -> T {
    x
}

mod math {
    pub fn square(x: u64) -> u64 {
        x * x
    }
}

static EVALUATED: AtomicUsize = AtomicUsize::new(0);

fn counted(x: i64) -> i64 {
    EVALUATED.fetch_add(1, Ordering::SeqCst);
    x
}

fn main() -> Result<(), parjob::Error> {
    // The seed example.
    let out = Parallel::new().run((0..5).map(|i| delayed!(neg(i + 1))))?;
    assert_eq!(out, [-1, -2, -3, -4, -5]);

    // Arguments are evaluated when `delayed!` runs, in order, not when the task does.
    let task = delayed!(add(counted(1), counted(2)));
    assert_eq!(EVALUATED.load(Ordering::SeqCst), 2);
    assert_eq!(task.call(), 3);

    // No arguments, a path, generics, an argument that moves.
    assert_eq!(delayed!(answer()).call(), 42);
    assert_eq!(delayed!(math::square(7)).call(), 49);
    assert_eq!(
        delayed!(identity::<String>("owned".to_owned())).call(),
        "owned"
    );
    let text = String::from("moved");
    assert_eq!(delayed!(String::len(&text)).call(), 5);
    Ok(())
}
