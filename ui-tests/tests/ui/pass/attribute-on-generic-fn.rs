use parjob::{parallel, parallel_backend};
use std::fmt::Display;
use std::ops::Mul;

#[parallel_backend("threading", n_jobs = 2)]
fn doubled<T, I>(items: I) -> Result<Vec<T>, parjob::Error>
where
    T: Mul<Output = T> + From<u8> + Send + Copy,
    I: IntoIterator<Item = T>,
    I::IntoIter: Send,
{
    parallel!(x * T::from(2) for x in items)
}

#[parallel_backend("threading")]
fn labels<'a, T: Display + Sync>(
    prefix: &'a str,
    items: &'a [T],
) -> Result<Vec<String>, parjob::Error> {
    parallel!(format!("{prefix}{item}") for item in items)
}

fn main() {
    assert_eq!(doubled(vec![1u32, 2, 3]).unwrap(), [2, 4, 6]);
    assert_eq!(doubled([1.5f64]).unwrap(), [3.0]);
    assert_eq!(labels("#", &[1, 2]).unwrap(), ["#1", "#2"]);
}
