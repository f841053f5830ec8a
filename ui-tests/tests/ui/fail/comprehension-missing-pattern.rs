use parjob::parallel;

fn main() {
    let _ = parallel!(1 for in 0..3);
}
