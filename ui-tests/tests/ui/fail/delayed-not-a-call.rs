use parjob::delayed;

fn neg(x: i64) -> i64 {
    -x
}

fn main() {
    let _ = delayed!(neg);
    let _ = delayed!(1 + 2);
    let _ = delayed!((|| 1)());
    let _ = delayed!();
    let _ = delayed!(neg(1), neg(2));
}
