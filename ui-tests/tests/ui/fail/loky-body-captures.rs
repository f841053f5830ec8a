use parjob::parallel;

fn main() -> Result<(), parjob::Error> {
    let offset = 3;
    let _ = parallel!("loky"; x + offset for x in 0..4)?;
    Ok(())
}
