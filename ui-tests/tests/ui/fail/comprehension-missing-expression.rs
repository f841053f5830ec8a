use parjob::parallel;

fn main() {
    let _ = parallel!(for x in 0..3);
}
