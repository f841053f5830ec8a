use parjob::parallel;

fn main() -> Result<(), parjob::Error> {
    let prefix = String::from("task");
    // `prefix` appears only inside `format!`, where the macro cannot see it.
    let _ = parallel!("loky"; format!("{prefix}-{x}") for x in 0..4)?;
    Ok(())
}
