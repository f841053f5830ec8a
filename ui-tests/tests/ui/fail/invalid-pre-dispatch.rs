use parjob::parallel;

fn main() {
    let _ = parallel!(pre_dispatch = 0; x for x in 0..3);
    let _ = parallel!(pre_dispatch = 1.5; x for x in 0..3);
}
