use parjob::parallel;

// The value of a broken call still type-checks as anything: no error but ours.
fn doubled() -> Result<Vec<i32>, parjob::Error> {
    let a: Vec<i32> = parallel!(x * 2 x in 0..3)?;
    let b: Vec<i32> = parallel!(n_jobs = 2; x * 2 x in 0..3)?;
    let _ = parallel!(x * 2);
    Ok([a, b].concat())
}

fn main() {
    let _ = doubled();
}
