// `parallel!(HEADER; STMTS)` runs the statements inside the scope and has their value. It is
// a block, not a closure: `return`, `?` and `break` act on the enclosing function or loop.
use parjob::{get_active_backend, parallel};

fn scoped_sum(xs: &[i64]) -> Result<i64, parjob::Error> {
    let total = parallel!("sequential", n_jobs = 2;
        let doubled = parallel!(x * 2 for x in xs.iter().copied())?;
        assert_eq!(get_active_backend().name(), "sequential");
        doubled.into_iter().sum::<i64>()
    );
    Ok(total)
}

fn early_return(flag: bool) -> Result<&'static str, parjob::Error> {
    parallel!(n_jobs = 1;
        if flag {
            return Ok("returned from inside the block");
        }
    );
    Ok("fell through")
}

fn first_even(rows: &[Vec<u32>]) -> Option<u32> {
    let mut found = None;
    for row in rows {
        parallel!("sequential";
            if let Some(&even) = row.iter().find(|&&x| x % 2 == 0) {
                found = Some(even);
                break;
            }
        );
    }
    found
}

fn main() -> Result<(), parjob::Error> {
    assert_eq!(scoped_sum(&[1, 2, 3])?, 12);
    assert_eq!(early_return(true)?, "returned from inside the block");
    assert_eq!(early_return(false)?, "fell through");
    assert_eq!(first_even(&[vec![1, 3], vec![5, 8, 10]]), Some(8));
    assert_ne!(get_active_backend().name(), "sequential");
    // An empty block is a unit value.
    let () = parallel!("threading";);
    Ok(())
}
