use parjob::parallel;

fn main() {
    let _ = parallel!(@threading; x for x in 0..3);
}
