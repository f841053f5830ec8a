//! Command-line options.

use std::time::Duration;

use crate::system::System;
use crate::workload::Workload;

/// What `--help` prints.
pub const USAGE: &str = "\
parjob-bench: parjob against sequential Rust, rayon and joblib, side by side

usage: cargo run --release -p parjob-bench -- [options]

options:
  --quick             sizes scaled down and 3 rounds: about a minute
  --only W2,W5        only these workloads (W1 W2 W3 W4 W5 RT)
  --systems a,b       only these systems (see --list); also the ones not run by default
  --json              print the report as JSON on stdout (progress stays on stderr)
  --rounds N          measured rounds per system, at most (default 7; 3 with --quick)
  --jobs N            n_jobs for every parallel system (default: the usable cpus)
  --cap SECONDS       measured time per system and workload before rounds are cut
                      (default 15; 3 with --quick)
  --no-python         skip the joblib rows
  --list              list the systems and exit
  -h, --help          this text

environment:
  PARJOB_BENCH_PYTHON   an interpreter that has joblib and numpy, instead of the venv under target/
";

/// Parsed options.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--quick`.
    pub quick: bool,
    /// The workloads to run.
    pub workloads: Vec<Workload>,
    /// The systems to run.
    pub systems: Vec<System>,
    /// `--json`.
    pub json: bool,
    /// Measured rounds at most.
    pub rounds: usize,
    /// Workers for parallel systems.
    pub jobs: usize,
    /// Time cap for the rounds of one system on one workload.
    pub cap: Duration,
    /// Whether to run the joblib rows.
    pub python: bool,
    /// `--list`.
    pub list: bool,
    /// `--help`.
    pub help: bool,
}

impl Options {
    /// Parses the arguments after the program name.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            quick: false,
            workloads: Workload::ALL.to_vec(),
            systems: System::ALL
                .into_iter()
                .filter(|s| s.in_default_set())
                .collect(),
            json: false,
            rounds: 0,
            jobs: parjob::cpu_count(),
            cap: Duration::ZERO,
            python: true,
            list: false,
            help: false,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match arg.as_str() {
                "--quick" => o.quick = true,
                "--json" => o.json = true,
                "--no-python" => o.python = false,
                "--list" => o.list = true,
                "-h" | "--help" => o.help = true,
                "--only" => {
                    o.workloads = value("--only")?
                        .split(',')
                        .filter(|s| !s.trim().is_empty())
                        .map(|s| {
                            Workload::parse(s).ok_or_else(|| {
                                format!("unknown workload `{s}`, expected W1, W2, W3, W4, W5 or RT")
                            })
                        })
                        .collect::<Result<_, _>>()?;
                }
                "--systems" => {
                    o.systems = value("--systems")?
                        .split(',')
                        .filter(|s| !s.trim().is_empty())
                        .map(|s| {
                            System::parse(s)
                                .ok_or_else(|| format!("unknown system `{s}` (see --list)"))
                        })
                        .collect::<Result<_, _>>()?;
                }
                "--rounds" => o.rounds = positive(&value("--rounds")?, "--rounds")?,
                "--jobs" => o.jobs = positive(&value("--jobs")?, "--jobs")?,
                "--cap" => o.cap = Duration::from_secs(positive(&value("--cap")?, "--cap")? as u64),
                other => return Err(format!("unknown option `{other}` (see --help)")),
            }
        }
        if o.rounds == 0 {
            o.rounds = if o.quick { 3 } else { 7 };
        }
        if o.cap.is_zero() {
            o.cap = Duration::from_secs(if o.quick { 3 } else { 15 });
        }
        // Report order, whatever order they were given in.
        o.workloads
            .sort_by_key(|w| Workload::ALL.iter().position(|x| x == w));
        o.workloads.dedup();
        o.systems
            .sort_by_key(|s| System::ALL.iter().position(|x| x == s));
        o.systems.dedup();
        Ok(o)
    }

    /// The command that reproduces these options.
    pub fn command(args: &[String]) -> String {
        let mut c = String::from("cargo run --release -p parjob-bench");
        if !args.is_empty() {
            c.push_str(" --");
            for a in args {
                c.push(' ');
                c.push_str(a);
            }
        }
        c
    }
}

fn positive(s: &str, name: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{name} takes a positive integer, got `{s}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        Options::parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_and_quick() {
        let o = parse(&[]).unwrap();
        assert_eq!((o.rounds, o.cap.as_secs()), (7, 15));
        assert_eq!(o.workloads.len(), Workload::ALL.len());
        assert!(!o.systems.contains(&System::ParjobLokyDelayed));
        let q = parse(&["--quick"]).unwrap();
        assert_eq!((q.rounds, q.cap.as_secs()), (3, 3));
    }

    #[test]
    fn only_and_systems_filter_in_report_order() {
        let o = parse(&["--only", "w5,W2", "--systems", "rayon,seq"]).unwrap();
        assert_eq!(o.workloads, [Workload::W2, Workload::W5]);
        assert_eq!(o.systems, [System::SeqLoop, System::Rayon]);
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(parse(&["--only", "W9"]).is_err());
        assert!(parse(&["--rounds", "0"]).is_err());
        assert!(parse(&["--jobs"]).is_err());
        assert!(parse(&["--fast"]).is_err());
    }
}
