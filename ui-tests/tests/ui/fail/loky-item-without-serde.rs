use parjob::parallel;

struct Opaque(u8);

fn weight(o: Opaque) -> u8 {
    o.0
}

fn main() -> Result<(), parjob::Error> {
    let _ = parallel!("loky"; weight(o) for o in vec![Opaque(1)])?;
    Ok(())
}
