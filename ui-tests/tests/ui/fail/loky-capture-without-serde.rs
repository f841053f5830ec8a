use parjob::parallel;

struct Model {
    weight: f64,
}

fn main() -> Result<(), parjob::Error> {
    let model = Model { weight: 2.0 };
    let _ = parallel!("loky"; model.weight * x for x in [1.0, 2.0])?;
    Ok(())
}
