use parjob::parallel;

fn main() {
    let _ = parallel!(batch_size = 0; x for x in 0..3);
    let _ = parallel!(batch_size = -2; x for x in 0..3);
    let _ = parallel!(batch_size = "fast"; x for x in 0..3);
    let _ = parallel!(batch_size = 'x'; x for x in 0..3);
}
