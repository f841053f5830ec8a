//! Measuring one workload on every system: start a child per system, warm each up, then
//! alternate rounds (A B C …, then … C B A) so that slow drift of the machine spreads over
//! every system instead of landing on one.

use std::process::Command;
use std::time::Duration;

use indicatif::ProgressBar;

use crate::child::{ChildSystem, SERVE_ARG, Started};
use crate::memory::Memory;
use crate::python::Python;
use crate::system::{Kind, System};
use crate::workload::Spec;

/// How a workload is measured.
#[derive(Debug, Clone)]
pub struct Method {
    /// Measured rounds per system at most.
    pub rounds: usize,
    /// A round of a quick system repeats the workload until it lasts about this long, and
    /// counts the median repetition: one call of a millisecond is at the mercy of a single
    /// scheduler hiccup.
    pub round_target: Duration,
    /// Workers for every parallel system.
    pub jobs: usize,
    /// Measured time one system may spend on one workload: a system whose run takes
    /// longer gets fewer rounds (never fewer than one).
    pub cap: Duration,
}

/// What happened to one system on one workload.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Measured: one time per round, in seconds.
    Measured {
        /// Round times; `times[r]` is round `r` (the median of its repetitions).
        times: Vec<f64>,
        /// Repetitions per round.
        reps: usize,
        /// Peak memory of the system's processes.
        memory: Memory,
    },
    /// The system cannot run here; why.
    Unavailable(String),
    /// It ran and failed, or computed wrong results.
    Failed(String),
}

/// One row of a workload's table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The system.
    pub system: System,
    /// The measurement.
    pub outcome: Outcome,
    /// Things the reader should know about this row.
    pub notes: Vec<String>,
}

impl Row {
    /// The round times, when measured.
    pub fn times(&self) -> Option<&[f64]> {
        match &self.outcome {
            Outcome::Measured { times, .. } if !times.is_empty() => Some(times),
            _ => None,
        }
    }
}

/// A live child and its bookkeeping during the measurement.
struct Live {
    system: System,
    child: ChildSystem,
    rounds: usize,
    reps: usize,
    times: Vec<f64>,
}

/// Measures `spec` on `systems`. `python` is the joblib interpreter or why there is none.
pub fn measure(
    spec: &Spec,
    systems: &[System],
    python: &Result<Python, String>,
    method: &Method,
    bar: &ProgressBar,
) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut live: Vec<Live> = Vec::new();
    let runnable: Vec<System> = systems
        .iter()
        .copied()
        .filter(|s| s.runs(spec.workload))
        .collect();
    bar.set_length((runnable.len() * (2 + method.rounds)) as u64);
    bar.set_position(0);

    for &system in &runnable {
        bar.set_message(format!("{}: starting", system.label()));
        let started = match command(system, spec, python, method.jobs) {
            Ok(cmd) => ChildSystem::start(cmd),
            Err(why) => Ok(Started::Unavailable(why)),
        };
        match started {
            Ok(Started::Ready(child)) => live.push(Live {
                system,
                child,
                rounds: 0,
                reps: 1,
                times: Vec::new(),
            }),
            Ok(Started::Unavailable(why)) => rows.push(row(system, Outcome::Unavailable(why))),
            Err(why) => rows.push(row(system, Outcome::Failed(why))),
        }
    }

    // Warm-up, one system at a time: a probe at 1/20 of the size starts pools and workers
    // and estimates the full run; a system whose run is cheap also gets a full run.
    let mut failed: Vec<(usize, String)> = Vec::new();
    for (i, l) in live.iter_mut().enumerate() {
        bar.set_message(format!("{}: warm-up", l.system.label()));
        let probe = (spec.count / 20).max(method.jobs).min(spec.count).max(1);
        let probe = spec.with_count(probe);
        // Twice: the first probe pays for starting pools and workers, the second estimates.
        let warm = checked_run(&mut l.child, &probe, 1).and_then(|_| {
            let t = checked_run(&mut l.child, &probe, 1)?;
            let estimate = t * spec.count as f64 / probe.count as f64;
            bar.inc(1);
            if estimate * 2.0 <= method.cap.as_secs_f64() {
                checked_run(&mut l.child, spec, 1)
            } else {
                Ok(estimate)
            }
        });
        bar.inc(1);
        match warm {
            Ok(estimate) => {
                let estimate = estimate.max(1e-9);
                let reps = (method.round_target.as_secs_f64() / estimate).ceil() as usize;
                l.reps = reps.clamp(1, 1000);
                let fit = method.cap.as_secs_f64() / (estimate * l.reps as f64);
                l.rounds = (fit.floor() as usize).clamp(1, method.rounds);
            }
            Err(why) => failed.push((i, why)),
        }
    }
    let planned: usize =
        live.iter().map(|l| 2 + l.rounds).sum::<usize>() + 2 * (rows.len() + failed.len());
    bar.set_length(planned as u64);

    for round in 0..method.rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..live.len()).collect()
        } else {
            (0..live.len()).rev().collect()
        };
        for i in order {
            if failed.iter().any(|(f, _)| *f == i) || live[i].rounds <= round {
                continue;
            }
            let l = &mut live[i];
            bar.set_message(format!(
                "{}: round {}/{}",
                l.system.label(),
                round + 1,
                l.rounds
            ));
            match checked_run(&mut l.child, spec, l.reps) {
                Ok(t) => l.times.push(t),
                Err(why) => failed.push((i, why)),
            }
            bar.inc(1);
        }
    }

    for (i, l) in live.into_iter().enumerate() {
        if let Some((_, why)) = failed.iter().find(|(f, _)| *f == i) {
            let mut child = l.child;
            child.kill();
            rows.push(row(l.system, Outcome::Failed(why.clone())));
            continue;
        }
        let memory = l.child.quit();
        let mut r = row(
            l.system,
            Outcome::Measured {
                times: l.times,
                reps: l.reps,
                memory,
            },
        );
        if l.system.uses_processes() && memory.workers == 0 && memory.workers_kib == 0 {
            r.notes
                .push("no worker process was seen: did the tasks run on threads?".into());
        }
        rows.push(r);
    }
    // The table follows the order of `systems`, whatever order the rows were made in.
    rows.sort_by_key(|r| systems.iter().position(|s| *s == r.system));
    rows
}

fn row(system: System, outcome: Outcome) -> Row {
    Row {
        system,
        outcome,
        notes: Vec::new(),
    }
}

/// Runs `reps` times and checks the results against the expected checksum; the median
/// time in seconds.
fn checked_run(child: &mut ChildSystem, spec: &Spec, reps: usize) -> Result<f64, String> {
    let (elapsed, checksum) = child.run(spec.count, reps)?;
    let expected = spec.expected_checksum();
    if checksum != expected {
        return Err(format!(
            "wrong results: checksum {checksum:#x}, expected {expected:#x} ({} tasks)",
            spec.count
        ));
    }
    Ok(elapsed.as_secs_f64())
}

fn command(
    system: System,
    spec: &Spec,
    python: &Result<Python, String>,
    jobs: usize,
) -> Result<Command, String> {
    if let Some(why) = system.unavailable() {
        return Err(why.into());
    }
    let cmd = match system.kind() {
        Kind::Rust => {
            let exe =
                std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
            let mut cmd = if system == System::ParjobMpi {
                // Rank 0 drives and `jobs` ranks work; mpirun passes stdin to rank 0.
                let mut mpirun = Command::new("mpirun");
                mpirun
                    .args(["--oversubscribe", "-n", &(jobs + 1).to_string()])
                    .arg(exe);
                // SAFETY: `geteuid` has no preconditions.
                if unsafe { libc::geteuid() } == 0 {
                    // OpenMPI refuses root unless told twice (containers run as root).
                    mpirun
                        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
                        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
                }
                mpirun
            } else {
                Command::new(exe)
            };
            cmd.arg(SERVE_ARG)
                .arg(system.id())
                .arg(spec.workload.id())
                .arg(spec.spin_us.to_string())
                .arg(jobs.to_string());
            cmd
        }
        Kind::Python => match python {
            Ok(py) => py.serve_command(system, spec, jobs),
            Err(why) => return Err(format!("not available: {why}")),
        },
    };
    Ok(cmd)
}
