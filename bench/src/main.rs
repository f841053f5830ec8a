//! `cargo run --release -p parjob-bench`: parjob's backends against a sequential loop,
//! rayon, `std::thread::scope` and joblib, on the workloads W1–W5 of DESIGN.md section 8,
//! in one run, with the physical limits of the machine measured alongside and the budgets
//! of issue 6 checked. `docs/PERFORMANCE.md` explains the method and the latest figures.
//!
//! This binary plays several parts: the harness (no special argument), a child serving one
//! system (`--serve`, see [`child`]), the echo and sink ends of the pipe measurements, and
//! — like every binary that links parjob — a loky worker when the runtime starts it as one.

mod child;
mod cli;
mod json;
mod limits;
mod machine;
mod memory;
mod native;
mod python;
mod render;
mod report;
mod runner;
mod stats;
mod system;
mod workload;

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use cli::Options;
use limits::{LimitRuns, Limits};
use machine::Machine;
use python::Python;
use report::{Measured, Report};
use runner::{Method, Outcome};
use system::Kind;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some(child::SERVE_ARG) => std::process::exit(child::serve(&args[1..])),
        Some(limits::PIPE_ECHO_ARG) => std::process::exit(limits::pipe_echo()),
        Some(limits::PIPE_SINK_ARG) => std::process::exit(limits::pipe_sink()),
        _ => {}
    }
    let options = match Options::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("parjob-bench: {e}");
            std::process::exit(2);
        }
    };
    if options.help {
        print!("{}", cli::USAGE);
        return;
    }
    if options.list {
        for s in system::System::ALL {
            let default = if s.in_default_set() {
                ""
            } else {
                "  (not run by default)"
            };
            println!("{:<24} {}{default}", s.id(), s.label());
        }
        return;
    }
    let report = run(&options, Options::command(&args));
    if options.json {
        println!("{}", render::json(&report));
    } else {
        print!("{}", render::text(&report));
    }
    let failed = report
        .workloads
        .iter()
        .flat_map(|m| &m.rows)
        .any(|r| matches!(r.outcome, Outcome::Failed(_)));
    if failed {
        eprintln!("parjob-bench: some systems failed or computed wrong results (see the table)");
        std::process::exit(1);
    }
}

fn run(options: &Options, command: String) -> Report {
    let start = Instant::now();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:32}] {pos}/{len} {wide_msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let plain = bar.is_hidden();
    let say = |msg: &str| {
        if plain {
            eprintln!("parjob-bench: {msg}");
        } else {
            bar.println(format!("parjob-bench: {msg}"));
        }
    };

    let wants_python = options.python && options.systems.iter().any(|s| s.kind() == Kind::Python);
    let python = if wants_python {
        bar.set_prefix("setup");
        bar.set_message("Python venv with joblib");
        Python::setup(&target_dir(), &say)
    } else if options.python {
        Err("no joblib system was selected".into())
    } else {
        Err("--no-python".into())
    };
    if let Err(why) = &python {
        say(&format!("no joblib rows: {why}"));
    }

    bar.set_prefix("limits");
    bar.set_message("pipe and thread round trips, memcpy");
    let mut limits = Limits::measure(options.quick).map(|l| LimitRuns { runs: vec![l] });

    let method = Method {
        rounds: options.rounds,
        round_target: std::time::Duration::from_millis(50),
        jobs: options.jobs,
        cap: options.cap,
    };
    let mut workloads = Vec::new();
    for (i, &w) in options.workloads.iter().enumerate() {
        let spec = w.spec(options.quick);
        bar.set_prefix(format!("{} {}/{}", w.id(), i + 1, options.workloads.len()));
        if plain {
            say(&format!("{}: {}", w.id(), spec.describe()));
        }
        let rows = runner::measure(&spec, &options.systems, &python, &method, &bar);
        workloads.push(Measured { spec, rows });
    }
    if let Ok(runs) = &mut limits {
        bar.set_prefix("limits");
        bar.set_message("measured again at the end");
        if let Ok(again) = Limits::measure(options.quick) {
            runs.runs.push(again);
        }
    }
    bar.finish_and_clear();

    Report {
        machine: Machine::detect(),
        command,
        quick: options.quick,
        method,
        python,
        limits,
        workloads,
        elapsed: start.elapsed().as_secs_f64(),
    }
}

/// The target directory this binary was built into (`target/release/parjob-bench` →
/// `target`), where the venv lives.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
}
