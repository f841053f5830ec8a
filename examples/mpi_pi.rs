//! π on an MPI job: the integral of 4 / (1 + x²) over [0, 1], in slices spread over ranks.
//!
//! ```sh
//! cargo build --release -p parjob-examples --features mpi --example mpi_pi
//! mpirun -n 4 target/release/examples/mpi_pi          # rank 0 drives, ranks 1-3 compute
//! target/release/examples/mpi_pi                      # alone: rank 0 of 1, on threads
//! ```
//!
//! Every rank runs this same binary. Rank 0 runs `main`'s body; the other ranks serve its
//! tasks and exit when it returns, without running the body.

use parjob::{parallel, parallel_backend};

/// Steps of the midpoint rule, in all.
const STEPS: u64 = 200_000_000;

/// Slices of the interval: the tasks.
const SLICES: u64 = 400;

/// The midpoint rule on slice `k` of `[0, 1]`. A plain function of plain numbers, so that a
/// rank can run it; the rank it ran on comes back with the sum.
fn slice(k: u64) -> (f64, usize) {
    let per_slice = STEPS / SLICES;
    let h = 1.0 / STEPS as f64;
    let first = k * per_slice;
    let sum: f64 = (first..first + per_slice)
        .map(|i| {
            let x = (i as f64 + 0.5) * h;
            4.0 / (1.0 + x * x)
        })
        .sum();
    (sum * h, parjob::mpi::rank().unwrap_or(0))
}

#[parallel_backend("mpi")]
fn main() -> Result<(), parjob::Error> {
    let started = std::time::Instant::now();
    let parts = parallel!(slice(k) for k in 0..SLICES)?;
    let pi: f64 = parts.iter().map(|(sum, _)| sum).sum();
    let ranks = parjob::mpi::size().unwrap_or(1);
    let mut per_rank = vec![0usize; ranks];
    for &(_, rank) in &parts {
        per_rank[rank] += 1;
    }
    println!(
        "pi ≈ {pi:.12} (error {:.1e})",
        (pi - std::f64::consts::PI).abs()
    );
    println!(
        "{SLICES} slices on {ranks} rank(s) in {:.2?}; slices per rank: {per_rank:?}",
        started.elapsed()
    );
    Ok(())
}
