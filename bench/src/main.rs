//! The side-by-side benchmark of parjob (see `docs/PERFORMANCE.md` once it lands).

fn main() {
    println!("parjob-bench: no workloads yet");
}
