use parjob::{parallel, parallel_backend};

#[parallel_backend("threadng")]
fn misspelt() {}

#[parallel_backend("dask", n_jobs = 2)]
fn not_built_in() {}

#[parallel_backend("thread")]
fn cut_short() {}

fn call() -> Result<Vec<i32>, parjob::Error> {
    let squares: Vec<i32> = parallel!("lokky"; x * x for x in 0..3)?;
    Ok(squares)
}

fn main() {
    misspelt();
    not_built_in();
    cut_short();
    let _ = call();
}
