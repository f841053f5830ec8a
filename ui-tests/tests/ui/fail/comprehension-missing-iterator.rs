use parjob::parallel;

fn main() {
    let _ = parallel!(x for x in);
    let _ = parallel!(x for x in if x > 1);
}
