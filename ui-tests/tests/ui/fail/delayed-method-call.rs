use parjob::delayed;

fn main() {
    let text = String::from("abc");
    let _ = delayed!(text.len());
}
