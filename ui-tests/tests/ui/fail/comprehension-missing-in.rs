use parjob::parallel;

fn main() {
    let _ = parallel!(x for x 0..3);
    let _ = parallel!(x for x);
}
