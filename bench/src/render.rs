//! The report as text (the default) and as JSON (`--json`).

use std::fmt::Write;

use crate::json::Json;
use crate::limits::Limits;
use crate::report::{Budget, Measured, Report, Status, budgets};
use crate::runner::Outcome;
use crate::stats::{Summary, fmt_mib, fmt_ratio, fmt_secs};
use crate::system::System;
use crate::workload::Workload;

/// The whole report as text.
pub fn text(report: &Report) -> String {
    let mut s = String::new();
    header(&mut s, report);
    for m in &report.workloads {
        table(&mut s, report, m);
    }
    limits(&mut s, report);
    budget_lines(&mut s, &budgets(report));
    let _ = writeln!(s, "\ntotal time {}", fmt_secs(report.elapsed));
    s
}

fn header(s: &mut String, r: &Report) {
    let m = &r.machine;
    let _ = writeln!(
        s,
        "parjob-bench: parjob against sequential Rust, rayon and joblib"
    );
    let _ = writeln!(
        s,
        "machine   {}, {} cpus usable ({} online), {:.1} GiB, Linux {}",
        m.cpu_model, m.cores, m.online_cpus, m.memory_gib, m.kernel
    );
    let python = match &r.python {
        Ok(p) => format!("Python {}, joblib {}", p.version, p.joblib),
        Err(why) => format!("no joblib rows: {why}"),
    };
    let _ = writeln!(
        s,
        "software  {}, parjob {} (commit {}), rayon {}; {python}",
        m.rustc,
        env!("CARGO_PKG_VERSION"),
        env!("PARJOB_BENCH_GIT"),
        env!("PARJOB_BENCH_RAYON")
    );
    let _ = writeln!(
        s,
        "method    n_jobs = {} for every parallel system; each system in a child process of its own; \
         per workload: a warm-up, then up to {} rounds alternating between systems (at most {} s \
         of rounds per system); a round of a quick system repeats the call n times (about {} ms) \
         and counts the median; median and min–max over rounds; ratios taken round by round",
        r.method.jobs,
        r.method.rounds,
        r.method.cap.as_secs(),
        r.method.round_target.as_millis()
    );
    if r.quick {
        let _ = writeln!(
            s,
            "          --quick: sizes scaled down (see each workload); compare ratios, not totals, with a full run"
        );
    }
    let _ = writeln!(s, "command   {}", r.command);
    let _ = writeln!(
        s,
        "columns   ÷rayon = time ÷ rayon's (lower is better); joblib÷ = joblib's best backend's time ÷ this \
         (higher is better); speedup = sequential loop ÷ this; RSS = peak of the driving process; \
         workers = peak RSS summed over its worker processes"
    );
}

fn table(s: &mut String, report: &Report, m: &Measured) {
    let unit = if m.spec.workload == Workload::W5 {
        "per call"
    } else {
        "per task"
    };
    let _ = writeln!(s, "\n{} — {}", m.spec.workload.id(), m.spec.describe());
    let _ = writeln!(
        s,
        "  {:<30} {:>9} {:>21} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>12}",
        "system",
        "median",
        "min – max",
        unit,
        "÷rayon",
        "joblib÷",
        "speedup",
        "rounds×n",
        "RSS MiB",
        "workers MiB"
    );
    for row in &m.rows {
        let label = row.system.label();
        match &row.outcome {
            Outcome::Unavailable(why) => {
                let _ = writeln!(s, "  {label:<30} {why}");
            }
            Outcome::Failed(why) => {
                let _ = writeln!(s, "  {label:<30} FAILED: {why}");
            }
            Outcome::Measured {
                times,
                reps,
                memory,
            } => {
                let Some(f) = m.figures(row.system) else {
                    let _ = writeln!(s, "  {label:<30} no rounds measured");
                    continue;
                };
                let ratio = |x: Option<Summary>| x.map_or("-".into(), |r| fmt_ratio(r.median));
                let workers = if memory.workers > 0 {
                    format!("{} ({})", fmt_mib(memory.workers_kib), memory.workers)
                } else if memory.workers_kib > 0 {
                    format!("{} (reaped)", fmt_mib(memory.workers_kib))
                } else {
                    "-".into()
                };
                let _ = writeln!(
                    s,
                    "  {label:<30} {:>9} {:>21} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>12}",
                    fmt_secs(f.time.median),
                    format!("{} – {}", fmt_secs(f.time.min), fmt_secs(f.time.max)),
                    fmt_secs(f.per_unit),
                    ratio(f.vs_rayon),
                    ratio(f.joblib_over),
                    f.speedup.map_or("-".into(), fmt_ratio),
                    format!("{}×{reps}", times.len()),
                    fmt_mib(memory.driver_kib),
                    workers
                );
            }
        }
        for note in &row.notes {
            let _ = writeln!(s, "  {:<30} note: {note}", "");
        }
    }
    if let Some(best) = m.joblib_best() {
        let _ = writeln!(s, "  joblib's best backend here: {}", best.label());
    }
    let _ = report;
}

fn limits(s: &mut String, r: &Report) {
    let _ = writeln!(
        s,
        "\nPhysical limits, measured in this run, and how close each system gets"
    );
    let (l, runs) = match &r.limits {
        Ok(runs) => (runs.best(), runs),
        Err(why) => {
            let _ = writeln!(s, "  not measured: {why}");
            return;
        }
    };
    let ideal = r.ideal_speedup();
    let _ = writeln!(
        s,
        "  ideal speedup (n_jobs on {} cpus)    {}",
        l.cores,
        fmt_ratio(ideal)
    );
    for w in [Workload::W2, Workload::W3] {
        if let Some(m) = r.workload(w) {
            let parts: Vec<String> = parallel_rows(m)
                .filter_map(|sys| {
                    let sp = m.figures(sys)?.speedup?;
                    Some(format!(
                        "{} {} ({:.0}%)",
                        sys.label(),
                        fmt_ratio(sp),
                        100.0 * sp / ideal
                    ))
                })
                .collect();
            let _ = writeln!(s, "    {}: {}", w.id(), parts.join(", "));
        }
    }
    let _ = writeln!(
        s,
        "  (the lower of {} measurements, at the start and the end of the run; each in brackets)",
        runs.runs.len()
    );
    let _ = writeln!(
        s,
        "  pipe round trip, 1 byte            {} [{}]",
        fmt_secs(l.pipe_round_trip),
        runs.each(|l| l.pipe_round_trip)
    );
    if let Some(m) = r.workload(Workload::Rt) {
        let _ = writeln!(
            s,
            "    RT per task: {}",
            versus(m, l.pipe_round_trip, "the pipe")
        );
    }
    let _ = writeln!(
        s,
        "  thread round trip, spinning        {} [{}]",
        fmt_secs(l.spin_round_trip),
        runs.each(|l| l.spin_round_trip)
    );
    let _ = writeln!(
        s,
        "  thread round trip, waking a thread {} [{}]",
        fmt_secs(l.thread_round_trip),
        runs.each(|l| l.thread_round_trip)
    );
    if let Some(m) = r.workload(Workload::W5) {
        let _ = writeln!(
            s,
            "    W5 per call: {}",
            versus(m, l.thread_round_trip, "the waking round trip")
        );
    }
    let _ = writeln!(
        s,
        "  fork, 8-byte reply, kill           {} [{}]",
        fmt_secs(l.fork_round_trip),
        runs.each(|l| l.fork_round_trip)
    );
    if let Some(f) = r
        .workload(Workload::W5)
        .and_then(|m| m.figures(System::ParjobMultiprocessing))
    {
        let _ = writeln!(
            s,
            "    W5 per call: {} {} ({} the fork round trip)",
            System::ParjobMultiprocessing.label(),
            fmt_secs(f.per_unit),
            fmt_ratio(f.per_unit / l.fork_round_trip)
        );
    }
    let _ = writeln!(
        s,
        "  memcpy 8 MiB                       {} = {:.1} GB/s [{}]",
        fmt_secs(l.memcpy_8mib),
        8.388_608e-3 / l.memcpy_8mib,
        runs.each(|l| l.memcpy_8mib)
    );
    let _ = writeln!(
        s,
        "  8 MiB through a pipe (1 MiB buffer) {} [{}]",
        fmt_secs(l.pipe_8mib),
        runs.each(|l| l.pipe_8mib)
    );
    if let Some(m) = r.workload(Workload::W4) {
        let _ = writeln!(
            s,
            "    W4 wall time per task: {}",
            versus(m, l.pipe_8mib, "the pipe")
        );
    }
}

/// Rows that run tasks in parallel (everything but the sequential ones).
fn parallel_rows(m: &Measured) -> impl Iterator<Item = System> + '_ {
    m.rows.iter().map(|r| r.system).filter(|s| {
        !matches!(
            s,
            System::SeqLoop | System::ParjobSequential | System::JoblibSequential
        )
    })
}

fn versus(m: &Measured, limit: f64, name: &str) -> String {
    parallel_rows(m)
        .filter_map(|sys| {
            let f = m.figures(sys)?;
            Some(format!(
                "{} {} ({} {name})",
                sys.label(),
                fmt_secs(f.per_unit),
                fmt_ratio(f.per_unit / limit)
            ))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn budget_lines(s: &mut String, budgets: &[Budget]) {
    let _ = writeln!(s, "\nBudgets (issue 6)");
    for b in budgets {
        let (status, figure) = match &b.status {
            Status::Pass => ("PASS", b.measured.clone().unwrap_or_default()),
            Status::Miss => ("MISS", b.measured.clone().unwrap_or_default()),
            Status::NotMeasured(why) => ("n/a ", why.clone()),
        };
        let _ = write!(s, "  {status}  {:<46} {:<13} {figure}", b.what, b.limit);
        if let Some(note) = &b.note {
            let _ = write!(s, "  ({note})");
        }
        s.push('\n');
    }
}

/// The whole report as JSON.
pub fn json(report: &Report) -> Json {
    let m = &report.machine;
    let machine = Json::obj([
        ("cpu_model", Json::str(&m.cpu_model)),
        ("cores", Json::Num(m.cores as f64)),
        ("online_cpus", Json::Num(m.online_cpus as f64)),
        ("memory_gib", Json::Num(m.memory_gib)),
        ("kernel", Json::str(&m.kernel)),
        ("rustc", Json::str(m.rustc)),
        ("parjob", Json::str(env!("CARGO_PKG_VERSION"))),
        ("commit", Json::str(env!("PARJOB_BENCH_GIT"))),
        ("rayon", Json::str(env!("PARJOB_BENCH_RAYON"))),
    ]);
    let python = match &report.python {
        Ok(p) => Json::obj([
            ("python", Json::str(&p.version)),
            ("joblib", Json::str(&p.joblib)),
        ]),
        Err(why) => Json::obj([("unavailable", Json::str(why))]),
    };
    let limits = match &report.limits {
        Ok(runs) => limits_json(report, &runs.best(), &runs.runs),
        Err(why) => Json::obj([("unavailable", Json::str(why))]),
    };
    let workloads = report.workloads.iter().map(workload_json).collect();
    let budgets = budgets(report)
        .into_iter()
        .map(|b| {
            let (status, why) = match b.status {
                Status::Pass => ("PASS", None),
                Status::Miss => ("MISS", None),
                Status::NotMeasured(why) => ("n/a", Some(why)),
            };
            Json::obj([
                ("what", Json::str(b.what)),
                ("limit", Json::str(b.limit)),
                ("measured", Json::opt(b.value)),
                ("status", Json::str(status)),
                ("why_not_measured", why.map_or(Json::Null, Json::Str)),
                ("note", b.note.map_or(Json::Null, Json::Str)),
            ])
        })
        .collect();
    Json::obj([
        ("command", Json::str(&report.command)),
        ("quick", Json::Bool(report.quick)),
        ("n_jobs", Json::Num(report.method.jobs as f64)),
        ("max_rounds", Json::Num(report.method.rounds as f64)),
        (
            "round_target_s",
            Json::Num(report.method.round_target.as_secs_f64()),
        ),
        ("cap_s", Json::Num(report.method.cap.as_secs_f64())),
        ("machine", machine),
        ("python", python),
        ("limits", limits),
        ("workloads", Json::Arr(workloads)),
        ("budgets", Json::Arr(budgets)),
        ("elapsed_s", Json::Num(report.elapsed)),
    ])
}

fn limits_json(report: &Report, best: &Limits, runs: &[Limits]) -> Json {
    let one = |l: &Limits| {
        Json::obj([
            ("pipe_round_trip_s", Json::Num(l.pipe_round_trip)),
            ("spin_round_trip_s", Json::Num(l.spin_round_trip)),
            ("thread_round_trip_s", Json::Num(l.thread_round_trip)),
            ("fork_round_trip_s", Json::Num(l.fork_round_trip)),
            ("memcpy_8mib_s", Json::Num(l.memcpy_8mib)),
            ("pipe_8mib_s", Json::Num(l.pipe_8mib)),
        ])
    };
    Json::obj([
        ("cores", Json::Num(best.cores as f64)),
        ("ideal_speedup", Json::Num(report.ideal_speedup())),
        ("best", one(best)),
        ("runs", Json::Arr(runs.iter().map(one).collect())),
    ])
}

fn summary_json(s: Option<Summary>) -> Json {
    s.map_or(Json::Null, |s| {
        Json::obj([
            ("median", Json::Num(s.median)),
            ("min", Json::Num(s.min)),
            ("max", Json::Num(s.max)),
        ])
    })
}

fn workload_json(m: &Measured) -> Json {
    let rows = m
        .rows
        .iter()
        .map(|row| {
            let mut pairs = vec![
                ("system".to_string(), Json::str(row.system.id())),
                ("label".to_string(), Json::str(row.system.label())),
            ];
            match &row.outcome {
                Outcome::Unavailable(why) => {
                    pairs.push(("status".into(), Json::str("unavailable")));
                    pairs.push(("why".into(), Json::str(why)));
                }
                Outcome::Failed(why) => {
                    pairs.push(("status".into(), Json::str("failed")));
                    pairs.push(("why".into(), Json::str(why)));
                }
                Outcome::Measured {
                    times,
                    reps,
                    memory,
                } => {
                    let f = m.figures(row.system);
                    pairs.push(("status".into(), Json::str("measured")));
                    pairs.push(("times_s".into(), Json::nums(times)));
                    pairs.push(("reps_per_round".into(), Json::Num(*reps as f64)));
                    pairs.push(("time_s".into(), summary_json(f.map(|f| f.time))));
                    pairs.push(("per_unit_s".into(), Json::opt(f.map(|f| f.per_unit))));
                    pairs.push(("vs_rayon".into(), summary_json(f.and_then(|f| f.vs_rayon))));
                    pairs.push((
                        "joblib_best_over".into(),
                        summary_json(f.and_then(|f| f.joblib_over)),
                    ));
                    pairs.push(("speedup".into(), Json::opt(f.and_then(|f| f.speedup))));
                    pairs.push(("rss_kib".into(), Json::Num(memory.driver_kib as f64)));
                    pairs.push((
                        "workers_rss_kib".into(),
                        Json::Num(memory.workers_kib as f64),
                    ));
                    pairs.push(("workers".into(), Json::Num(memory.workers as f64)));
                }
            }
            pairs.push((
                "notes".into(),
                Json::Arr(row.notes.iter().map(Json::str).collect()),
            ));
            Json::Obj(pairs)
        })
        .collect();
    Json::obj([
        ("id", Json::str(m.spec.workload.id())),
        ("description", Json::str(m.spec.describe())),
        ("count", Json::Num(m.spec.count as f64)),
        ("spin_us", Json::Num(m.spec.spin_us as f64)),
        (
            "checksum",
            Json::str(format!("{:#x}", m.spec.expected_checksum())),
        ),
        (
            "joblib_best",
            m.joblib_best().map_or(Json::Null, |s| Json::str(s.id())),
        ),
        ("systems", Json::Arr(rows)),
    ])
}
