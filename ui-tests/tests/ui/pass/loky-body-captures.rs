#![deny(warnings)]
#![deny(clippy::all)]

use parjob::parallel;

#[derive(serde::Serialize, serde::Deserialize)]
struct Point {
    x: f64,
    y: f64,
}

fn main() -> Result<(), parjob::Error> {
    let offset = 3;
    let data = vec![1.0f64, 2.0, 3.0];
    let slice = &data[..];
    let label = String::from("run");
    let text: &str = &label;
    let origin = Point { x: 1.0, y: 2.0 };
    let _ = parallel!("loky"; x + offset for x in 0..4)?;
    let _ = parallel!("loky"; slice[i] + origin.x + text.len() as f64 for i in 0..3)?;
    let _ = parallel!("loky"; Point { x: data[i], y: origin.y } for i in 0..3 if i != 1)?;
    let _ = parallel!(label.len() + x for x in 0..4usize)?;
    Ok(())
}
