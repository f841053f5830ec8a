//! Bodies that can run in worker processes compile under a process backend named at compile
//! time (no captures, serde items and results), and run there.
#![deny(warnings)]

use parjob::{delayed, parallel, parallel_backend, Parallel};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Point {
    x: i32,
    y: i32,
}

fn norm1(p: Point) -> i32 {
    p.x.abs() + p.y.abs()
}

#[parallel_backend("loky", n_jobs = 2)]
fn norms(points: Vec<Point>) -> Result<Vec<i32>, parjob::Error> {
    parallel!(norm1(p) for p in points)
}

fn headered(points: Vec<Point>) -> Result<Vec<i32>, parjob::Error> {
    parallel!("loky", idle_worker_timeout = 30; norm1(p) for p in points if p.x > 0)
}

fn main() -> Result<(), parjob::Error> {
    let points = vec![Point { x: 1, y: -2 }, Point { x: -3, y: 4 }];
    assert_eq!(norms(points.clone())?, [3, 7]);
    assert_eq!(headered(points.clone())?, [3]);
    // The same body under a run-time backend: the probe decides, threads run it here.
    assert_eq!(parallel!(norm1(p) for p in points.clone())?, [3, 7]);
    let tasks = points.into_iter().map(|p| delayed!(norm1(p)));
    assert_eq!(Parallel::new().run(tasks)?, [3, 7]);
    Ok(())
}
