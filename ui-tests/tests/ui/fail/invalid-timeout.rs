use parjob::parallel;

fn main() {
    let _ = parallel!(timeout = 0; x for x in 0..3);
    let _ = parallel!(timeout = -1.5; x for x in 0..3);
    let _ = parallel!(timeout = 1e400; x for x in 0..3);
    let _ = parallel!(timeout = "10s"; x for x in 0..3);
}
