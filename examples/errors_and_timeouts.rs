//! What a failing call gives back: the first task that failed stops the call (tasks not yet
//! started are skipped), and the `Error` says which task and why. Tasks of `try_map` return
//! `Result`s whose error comes back with its type; a per-task `timeout` bounds each task's
//! own duration. `keep_going()` runs every task whatever fails, with one `Result` per task.
//!
//! Run with `cargo run -p parjob-examples --example errors_and_timeouts`.

use std::time::{Duration, Instant};

use parjob::{Error, Parallel, delayed};

/// The user's own error type.
#[derive(Debug, PartialEq)]
struct TooBig(u64);

impl std::fmt::Display for TooBig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is too big", self.0)
    }
}

impl std::error::Error for TooBig {}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn checked_double(x: u64) -> Result<u64, TooBig> {
    if x > 40 { Err(TooBig(x)) } else { Ok(2 * x) }
}

/// The score of a model with regularisation `alpha`: a negative one is refused, and 0
/// makes the model diverge (a panic, as a bug in a fit would).
fn fit_score(alpha: f64) -> Result<f64, String> {
    if alpha < 0.0 {
        return Err(format!("alpha {alpha} is negative"));
    }
    assert!(alpha != 0.0, "the fit diverged");
    Ok(1.0 / (1.0 + alpha))
}

fn main() {
    let parallel = Parallel::new().backend("threading").n_jobs(2);

    // An `Err` from a task: `TaskFailed` at its index, the task's error as `source()`, and
    // back with its type through `task_error`. Every task above 40 fails; the call reports
    // the failure that happened first, which on two threads need not be task 41's.
    let err = parallel.try_map(0..100u64, checked_double).unwrap_err();
    match &err {
        Error::TaskFailed { .. } => println!("{err}"),
        other => panic!("expected TaskFailed, got {other:?}"),
    }
    let index = err.task_index().expect("the failing task's index");
    assert!(index > 40, "task {index} cannot fail");
    assert_eq!(err.task_error::<TooBig>(), Some(&TooBig(index as u64)));
    println!(
        "its cause: {}",
        std::error::Error::source(&err).expect("a cause")
    );

    // A panic is an error too, with the panic's message; the program goes on. (The panic
    // hook still prints the panic where it happened, as for any panic.)
    let err = parallel
        .map(0..10u64, |x| {
            assert!(x != 7, "seven is not allowed");
            x
        })
        .unwrap_err();
    assert!(matches!(&err, Error::TaskPanicked { index: 7, message } if message.contains("seven")));
    println!("{err}");

    // A per-task timeout, counted from each task's start: the late task fails the call
    // long before it would have ended. `run` owns its tasks, so it returns at once; the
    // late task is abandoned (on threads it runs to its end unseen; a worker process
    // running it would be killed). `map` may borrow from the caller, so it would wait for
    // the tasks already running before it returns.
    let started = Instant::now();
    let err = parallel
        .clone()
        .timeout(Duration::from_millis(200))
        .run([10u64, 20, 5_000, 10].map(|ms| delayed!(sleep_ms(ms))))
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { index: 2, .. }), "{err:?}");
    println!("{err} (after {:?})", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(5));

    // Keeping going: one bad setting of a grid search should not cost the others. Every
    // task runs, in worker processes here, and the call returns one `Result` per task.
    let grid = [0.5, -1.0, 2.0, 0.0, 4.0];
    let scores = Parallel::new()
        .backend("loky")
        .n_jobs(2)
        .keep_going()
        .try_run(grid.map(|alpha| delayed!(fit_score(alpha))))
        .expect("the call itself runs");
    for (alpha, score) in grid.iter().zip(&scores) {
        match score {
            Ok(score) => println!("alpha {alpha}: score {score:.3}"),
            Err(e) => {
                let cause = std::error::Error::source(e).map(|c| format!(" ({c})"));
                println!("alpha {alpha}: {e}{}", cause.unwrap_or_default());
            }
        }
    }
    assert_eq!(scores.iter().filter(|s| s.is_ok()).count(), 3);
    assert!(matches!(scores[1], Err(Error::TaskFailed { index: 1, .. })));
    assert!(matches!(
        scores[3],
        Err(Error::TaskPanicked { index: 3, .. })
    ));
}
