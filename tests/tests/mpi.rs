//! The `mpi` backend under real `mpirun`s, and alone.
//!
//! Run as `cargo test -p parjob-tests --features mpi --test mpi`. Started by cargo, this
//! program is the launcher: it runs itself as a job of one rank (no `mpirun`), then under
//! `mpirun --oversubscribe -n N` for N = 2, 3, 4 (1 to 3 worker ranks), and checks that each
//! run passed. Started by `mpirun` (or with `PARJOB_MPI_ALONE=1`), it runs the checks: rank 0
//! drives, the other ranks serve.

use std::io::Read;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use parjob::{Error, Parallel, delayed, parallel};

const PASSED: &str = "parjob-mpi-checks: passed";

fn main() -> ExitCode {
    if std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some()
        || std::env::var_os("PARJOB_MPI_ALONE").is_some()
    {
        return match parjob::mpi::run(checks) {
            Ok(Ok(())) => {
                println!("{PASSED}");
                ExitCode::SUCCESS
            }
            Ok(Err(failure))
            | Err(Error::InvalidConfig {
                message: failure, ..
            }) => {
                eprintln!("parjob-mpi-checks: FAILED: {failure}");
                ExitCode::FAILURE
            }
            Err(other) => {
                eprintln!("parjob-mpi-checks: FAILED: {other}");
                ExitCode::FAILURE
            }
        };
    }
    launcher()
}

/// Runs the checks alone and under `mpirun` with 2 to 4 ranks.
fn launcher() -> ExitCode {
    let me = std::env::current_exe().expect("the test knows its own path");
    let mut failed = 0;
    let mut alone = Command::new(&me);
    alone.env("PARJOB_MPI_ALONE", "1");
    failed += report("alone (rank 0 of 1, no mpirun)", alone);
    for ranks in 2..=4 {
        let mut cmd = Command::new("mpirun");
        cmd.args(["--oversubscribe", "-n", &ranks.to_string()])
            .arg(&me);
        // SAFETY: `geteuid` has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // OpenMPI refuses to run as root unless told twice (CI containers run as root).
            cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
                .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
        }
        failed += report(&format!("mpirun -n {ranks}"), cmd);
    }
    if failed == 0 {
        println!("test result: ok. 4 MPI runs passed");
        ExitCode::SUCCESS
    } else {
        println!("test result: FAILED. {failed} of 4 MPI runs failed");
        ExitCode::FAILURE
    }
}

/// Runs one job with a watchdog; 0 if it passed, 1 if not.
fn report(what: &str, mut cmd: Command) -> usize {
    let started = Instant::now();
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            println!("mpi: {what} ... FAILED (cannot start: {e})");
            return 1;
        }
    };
    let limit = Duration::from_secs(180);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    let passed = status.is_some_and(|s| s.success()) && out.contains(PASSED);
    let took = started.elapsed();
    if passed {
        println!("mpi: {what} ... ok ({took:.1?})");
        0
    } else {
        println!(
            "mpi: {what} ... FAILED ({})\n--- stdout\n{out}\n--- stderr\n{err}",
            match status {
                Some(s) => format!("{s}"),
                None => format!("no exit within {limit:?}"),
            }
        );
        1
    }
}

fn square(x: u64) -> u64 {
    x * x
}

fn rank_of(_: u32) -> usize {
    // Long enough that every rank gets a share of a call with batch_size = 1.
    std::thread::sleep(Duration::from_millis(2));
    parjob::mpi::rank().unwrap_or(usize::MAX)
}

fn panics_on_seven(x: u32) -> u32 {
    assert!(
        x != 7,
        "seven is not welcome on rank {:?}",
        parjob::mpi::rank()
    );
    x
}

fn sleeps(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn nested_sum(x: u64) -> u64 {
    // A nested call inside a task: threads of the rank that runs it.
    Parallel::new()
        .map(0..100u64, |y| y * x)
        .map(|v| v.iter().sum())
        .unwrap_or(u64::MAX)
}

/// The rank, the value's sum, and how many `Shared` values the rank keeps and was sent.
fn shared_sum(data: parjob::Shared<Vec<u64>>, _task: u32) -> (usize, u64, usize, u64) {
    std::thread::sleep(Duration::from_millis(2));
    let (kept, received) = parjob::__private::kept_shared();
    (
        parjob::mpi::rank().unwrap_or(usize::MAX),
        data.iter().sum(),
        kept,
        received,
    )
}

/// Library code: a comprehension whose body uses the caller's slice, text and number.
fn captured_scores(data: &[f64], label: &str, offset: i64) -> Result<Vec<(usize, f64)>, Error> {
    parallel!(batch_size = 1;
        (rank_of(i), data.iter().sum::<f64>() * f64::from(i) + (label.len() as i64 + offset) as f64)
        for i in 0..24u32)
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}

/// Rank 0's checks, with the `mpi` backend active.
fn checks() -> Result<(), String> {
    let size = parjob::mpi::size().ok_or("MPI is not initialised")?;
    let workers = size - 1;

    // Ordered results, equal to the sequential ones, over many automatic batches.
    let squares = parallel!(square(x) for x in 0..20_000u64).map_err(|e| e.to_string())?;
    let expected: Vec<u64> = (0..20_000u64).map(square).collect();
    check(squares == expected, || {
        "squares differ from the sequential ones".into()
    })?;

    // delayed! tasks, one per batch.
    let tasks = (0..200u64).map(|x| delayed!(square(x)));
    let out = Parallel::new()
        .batch_size(1)
        .run(tasks)
        .map_err(|e| e.to_string())?;
    check(out == expected[..200], || "delayed! results differ".into())?;

    // Where the tasks ran: on worker ranks, every one of them, when there are any.
    let ranks = parallel!(batch_size = 1; rank_of(i) for i in 0..60).map_err(|e| e.to_string())?;
    if workers == 0 {
        check(ranks.iter().all(|&r| r == 0), || {
            format!("alone, tasks ran on {ranks:?}")
        })?;
    } else {
        check(ranks.iter().all(|&r| r >= 1 && r < size), || {
            format!("tasks ran on ranks {ranks:?}")
        })?;
        let mut seen = ranks.clone();
        seen.sort_unstable();
        seen.dedup();
        check(seen.len() == workers, || {
            format!("{workers} worker ranks, but only {seen:?} took tasks")
        })?;
    }

    // A panic on a rank is TaskPanicked with its message and index; the next call works.
    match parallel!(batch_size = 2; panics_on_seven(x) for x in 0..20) {
        Err(Error::TaskPanicked { index, message }) => {
            check(index == 7, || {
                format!("the panic is reported at index {index}")
            })?;
            check(message.contains("seven is not welcome"), || {
                format!("the panic message is {message:?}")
            })?;
        }
        other => return Err(format!("expected TaskPanicked, got {other:?}")),
    }
    let again = parallel!(square(x) for x in 0..100u64).map_err(|e| e.to_string())?;
    check(again == expected[..100], || {
        "the call after a panic is wrong".into()
    })?;

    // Kept going past failures: a panic on a rank costs its own task only, also inside a
    // batch of several, and a task past its timeout only itself.
    let kept = Parallel::new()
        .batch_size(4)
        .keep_going()
        .run((0..20u32).map(|x| delayed!(panics_on_seven(x))))
        .map_err(|e| e.to_string())?;
    let as_expected = kept.len() == 20
        && kept.iter().zip(0u32..).all(|(r, i)| match r {
            Ok(v) => i != 7 && *v == i,
            Err(e) => i == 7 && matches!(e, Error::TaskPanicked { index: 7, .. }),
        });
    check(as_expected, || format!("kept going: {kept:?}"))?;
    let kept = Parallel::new()
        .batch_size(1)
        .timeout(Duration::from_millis(300))
        .keep_going()
        .run([1u64, 2_000, 1, 1].map(|ms| delayed!(sleeps(ms))))
        .map_err(|e| e.to_string())?;
    let as_expected = kept.len() == 4
        && kept.iter().enumerate().all(|(i, r)| match r {
            Ok(_) => i != 1,
            Err(e) => i == 1 && matches!(e, Error::Timeout { index: 1, .. }),
        });
    check(as_expected, || {
        format!("kept going past a timeout: {kept:?}")
    })?;

    // Nested calls inside a task use the rank's threads.
    let nested = parallel!(nested_sum(x) for x in 0..10u64).map_err(|e| e.to_string())?;
    let want: Vec<u64> = (0..10u64).map(|x| (0..100).map(|y| y * x).sum()).collect();
    check(nested == want, || format!("nested sums {nested:?}"))?;

    // A per-task timeout returns promptly, while the rank finishes its task.
    let started = Instant::now();
    match parallel!(timeout = 0.3, batch_size = 1; sleeps(ms) for ms in [1u64, 2_000, 1, 1]) {
        Err(Error::Timeout { index: 1, .. }) => {}
        other if workers == 0 => {
            // Alone, the timeout applies on threads just the same.
            return Err(format!(
                "alone: expected a timeout of task 1, got {other:?}"
            ));
        }
        other => return Err(format!("expected a timeout of task 1, got {other:?}")),
    }
    // Alone, the tasks are on threads, which cannot be interrupted: the call waits for the
    // late one, as `threading` does. A rank is another process: the call returns at once.
    check(
        workers == 0 || started.elapsed() < Duration::from_millis(1_500),
        || format!("the timeout took {:?} to come back", started.elapsed()),
    )?;

    // Captured variables travel to the ranks, with the values they have here.
    let data: Vec<f64> = (1..=100).map(f64::from).collect();
    let scores = captured_scores(&data, "mpi", 2).map_err(|e| e.to_string())?;
    for (i, &(rank, score)) in scores.iter().enumerate() {
        check(score == 5050.0 * i as f64 + 5.0, || {
            format!("score {i} is {score}")
        })?;
        check(workers == 0 || rank >= 1, || {
            format!("task {i} ran on rank {rank}")
        })?;
    }

    // A large capture (2 MiB, written once to a memory file that ranks on this host map)
    // arrives whole, between the small ones.
    let large: Vec<f64> = (1..=262_144).map(f64::from).collect();
    let scores = captured_scores(&large, "mpi", 2).map_err(|e| e.to_string())?;
    for (i, &(_, score)) in scores.iter().enumerate() {
        check(score == 34_359_869_440.0 * i as f64 + 5.0, || {
            format!("score {i} over the large capture is {score}")
        })?;
    }
    // Large captures stay with the ranks for a moment after their call, for a next call
    // over the same data: let go of them now, so that the counts below see `Shared`
    // values alone.
    parjob::__private::forget_recent_captures();
    // So does a large `Shared` value, across calls.
    let data = parjob::Shared::new((1..=200_000u64).collect::<Vec<u64>>());
    for _ in 0..2 {
        let out = Parallel::new()
            .batch_size(1)
            .run((0..8u32).map(|t| delayed!(shared_sum(data.clone(), t))))
            .map_err(|e| e.to_string())?;
        check(
            out.iter().all(|&(_, sum, _, _)| sum == 20_000_100_000),
            || format!("sums of the large shared value: {out:?}"),
        )?;
    }
    drop(data);

    // A `Shared` value reaches each rank once, whatever the number of batches and calls, and
    // ranks drop it when rank 0 does.
    let data = parjob::Shared::new((1..=1000u64).collect::<Vec<u64>>());
    let mut sent = std::collections::HashMap::new();
    for _ in 0..3 {
        let out = Parallel::new()
            .batch_size(1)
            .run((0..24u32).map(|t| delayed!(shared_sum(data.clone(), t))))
            .map_err(|e| e.to_string())?;
        for &(rank, sum, kept, received) in &out {
            check(sum == 500_500, || format!("rank {rank} summed {sum}"))?;
            if workers > 0 {
                check(kept == 1, || {
                    format!("rank {rank} keeps {kept} shared values")
                })?;
                let first = *sent.entry(rank).or_insert(received);
                check(received == first, || {
                    format!("rank {rank} was sent the value again ({first} then {received})")
                })?;
            }
        }
    }
    drop(data);
    let fresh = parjob::Shared::new(vec![7u64]);
    let after = Parallel::new()
        .batch_size(1)
        .run((0..24u32).map(|t| delayed!(shared_sum(fresh.clone(), t))))
        .map_err(|e| e.to_string())?;
    // Told to forget the dropped value before the first batch of the next call.
    check(
        after
            .iter()
            .all(|&(_, sum, kept, _)| sum == 7 && (workers == 0 || kept == 1)),
        || format!("after the drop: {after:?}"),
    )?;

    // Work that cannot travel (a closure with a capture) runs on rank 0's threads.
    let offset = 10u64;
    let local = Parallel::new()
        .map(0..50u64, |x| x + offset)
        .map_err(|e| e.to_string())?;
    check(local == (10..60).collect::<Vec<_>>(), || {
        "the local fallback is wrong".into()
    })?;

    Ok(())
}
