use parjob::parallel;

fn main() {
    let _ = parallel!(x for x in 0..3 where x > 1);
    let _ = parallel!(x for x in 0..3 if x > 1 else 0);
}
