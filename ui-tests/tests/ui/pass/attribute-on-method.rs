use parjob::{get_active_backend, parallel, parallel_backend};

struct Scaler {
    factor: i64,
}

impl Scaler {
    #[parallel_backend("threading", n_jobs = 2)]
    fn scale(&self, xs: &[i64]) -> Result<Vec<i64>, parjob::Error> {
        let factor = self.factor;
        parallel!(x * factor for x in xs.iter().copied())
    }

    #[parallel_backend("sequential")]
    fn backend_name(&self) -> String {
        get_active_backend().name().to_owned()
    }
}

trait Describe {
    fn describe(&self) -> String;
}

impl Describe for Scaler {
    #[parallel_backend("sequential", n_jobs = 1)]
    fn describe(&self) -> String {
        format!("{}x on {}", self.factor, get_active_backend().name())
    }
}

fn main() {
    let scaler = Scaler { factor: 3 };
    assert_eq!(scaler.scale(&[1, 2]).unwrap(), [3, 6]);
    assert_eq!(scaler.backend_name(), "sequential");
    assert_eq!(scaler.describe(), "3x on sequential");
}
