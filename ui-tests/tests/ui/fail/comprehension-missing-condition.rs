use parjob::parallel;

fn main() {
    let _ = parallel!(x for x in 0..3 if);
}
