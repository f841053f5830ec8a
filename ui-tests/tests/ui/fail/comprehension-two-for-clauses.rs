use parjob::parallel;

fn main() {
    let _ = parallel!(x * y for x in 0..3 for y in 0..3);
}
