use parjob::parallel;

fn main() {
    let _ = parallel!();
}
