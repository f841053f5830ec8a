use parjob::parallel_backend;

struct Report {
    _n: u8,
}

fn report(n: u8) -> Report {
    Report { _n: n }
}

#[parallel_backend("loky")]
fn run_all() -> Result<Vec<Report>, parjob::Error> {
    parjob::parallel!(report(n) for n in 0..3u8)
}

fn main() {
    let _ = run_all();
}
