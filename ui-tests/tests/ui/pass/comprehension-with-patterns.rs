use parjob::parallel;

struct Point {
    x: i32,
    y: i32,
}

fn main() -> Result<(), parjob::Error> {
    let pairs = [(1, 2), (3, 4)];
    assert_eq!(
        parallel!(a * b for (a, b) in pairs.iter().copied())?,
        [2, 12]
    );
    assert_eq!(
        parallel!(i * x for (i, &x) in [10, 20].iter().enumerate())?,
        [0, 20]
    );

    let points = [Point { x: 1, y: 2 }, Point { x: -3, y: 4 }];
    assert_eq!(
        parallel!(x + y for &Point { x, y } in &points if x > 0)?,
        [3]
    );

    // An or-pattern.
    let found = parallel!(v for Ok(v) | Err(v) in [Ok::<i32, i32>(1), Err(2)])?;
    assert_eq!(found, [1, 2]);
    Ok(())
}
