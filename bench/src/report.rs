//! Turning measurements into figures: the per-workload tables, the ratios taken round by
//! round, how close each backend gets to the physical limits, and the budgets.

use crate::limits::LimitRuns;
use crate::machine::Machine;
use crate::python::Python;
use crate::runner::{Method, Outcome, Row};
use crate::stats::Summary;
use crate::system::{Kind, System};
use crate::workload::{Spec, Workload};

/// Everything one run measured.
#[derive(Debug)]
pub struct Report {
    /// The machine and software.
    pub machine: Machine,
    /// The command that reproduces the run.
    pub command: String,
    /// Whether sizes were scaled down (`--quick`).
    pub quick: bool,
    /// Rounds, workers, time cap.
    pub method: Method,
    /// The joblib interpreter, or why there is none.
    pub python: Result<Python, String>,
    /// The physical limits, or why they could not be measured.
    pub limits: Result<LimitRuns, String>,
    /// Each workload measured, with its rows.
    pub workloads: Vec<Measured>,
    /// Wall time of the whole run, in seconds.
    pub elapsed: f64,
}

/// One workload's measurements.
#[derive(Debug)]
pub struct Measured {
    /// The workload and its size.
    pub spec: Spec,
    /// One row per system, in report order.
    pub rows: Vec<Row>,
}

/// The figures of one measured row.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// Median, min and max of the round times, in seconds.
    pub time: Summary,
    /// Median time per task (per call for W5).
    pub per_unit: f64,
    /// This system's time ÷ rayon's, round by round.
    pub vs_rayon: Option<Summary>,
    /// joblib's best backend's time ÷ this system's, round by round.
    pub joblib_over: Option<Summary>,
    /// The sequential loop's median ÷ this system's median.
    pub speedup: Option<f64>,
}

impl Measured {
    /// The row of `system`.
    pub fn row(&self, system: System) -> Option<&Row> {
        self.rows.iter().find(|r| r.system == system)
    }

    /// The round times of `system`, when it was measured.
    pub fn times(&self, system: System) -> Option<&[f64]> {
        self.row(system)?.times()
    }

    /// The joblib system with the lowest median here.
    pub fn joblib_best(&self) -> Option<System> {
        self.rows
            .iter()
            .filter(|r| r.system.kind() == Kind::Python)
            .filter_map(|r| Some((r.system, Summary::of(r.times()?)?.median)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(s, _)| s)
    }

    /// The figures of `system`'s row.
    pub fn figures(&self, system: System) -> Option<Figures> {
        let times = self.times(system)?;
        let time = Summary::of(times)?;
        let vs_rayon = self
            .times(System::Rayon)
            .and_then(|rayon| Summary::of(&per_round(times, rayon)));
        let joblib_over = self
            .joblib_best()
            .and_then(|best| self.times(best))
            .and_then(|jb| Summary::of(&per_round(jb, times)));
        let speedup = self
            .times(System::SeqLoop)
            .and_then(Summary::of)
            .map(|seq| seq.median / time.median);
        Some(Figures {
            time,
            per_unit: time.median / self.spec.count as f64,
            vs_rayon,
            joblib_over,
            speedup,
        })
    }

    /// `a ÷ b` round by round, as the ratios of systems measured in the same round.
    pub fn ratio(&self, a: System, b: System) -> Option<Summary> {
        Summary::of(&per_round(self.times(a)?, self.times(b)?))
    }
}

/// `a[r] / b[r]` for every round both have.
pub fn per_round(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x / y).collect()
}

impl Report {
    /// The measurements of `workload`, when it ran.
    pub fn workload(&self, workload: Workload) -> Option<&Measured> {
        self.workloads.iter().find(|m| m.spec.workload == workload)
    }

    /// The speedup a parallel backend can reach at best: its workers, bounded by the cpus.
    pub fn ideal_speedup(&self) -> f64 {
        let cores = self
            .limits
            .as_ref()
            .map(|l| l.best().cores)
            .unwrap_or(self.machine.cores);
        self.method.jobs.min(cores).max(1) as f64
    }
}

/// Whether a budget was met.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Met.
    Pass,
    /// Not met.
    Miss,
    /// Not measured in this run; why.
    NotMeasured(String),
}

/// One budget of issue 6 and its measured figure.
#[derive(Debug, Clone)]
pub struct Budget {
    /// What is measured, e.g. `threading W2 vs rayon`.
    pub what: String,
    /// The bound, e.g. `≤ 1.10×`.
    pub limit: String,
    /// The figure, e.g. `1.03×`.
    pub measured: Option<String>,
    /// The figure as a number (a ratio, or seconds).
    pub value: Option<f64>,
    /// PASS, MISS or not measured.
    pub status: Status,
    /// What bounds the figure here, when the harness can tell.
    pub note: Option<String>,
}

enum Rule {
    /// Time ÷ rayon's time at most this (median of round ratios).
    VsRayon(f64),
    /// Median time per task (or call) at most this many seconds.
    PerUnit(f64),
    /// joblib `same`'s time ÷ this time at least this.
    FasterThanJoblib(f64),
}

/// Every budget, evaluated against the report.
pub fn budgets(report: &Report) -> Vec<Budget> {
    use System::*;
    use Workload::*;
    let mut out = vec![
        evaluate(report, ParjobThreading, W2, Rule::VsRayon(1.10)),
        evaluate(report, ParjobThreading, W1, Rule::VsRayon(1.5)),
        evaluate(report, ParjobThreading, W5, Rule::PerUnit(20e-6)),
        evaluate(report, ParjobLoky, W2, Rule::VsRayon(1.10)),
        evaluate(report, ParjobLoky, W1, Rule::VsRayon(5.0)),
        evaluate(report, ParjobLoky, Rt, Rule::PerUnit(30e-6)),
        evaluate(report, ParjobLoky, W5, Rule::PerUnit(200e-6)),
        evaluate(report, ParjobLoky, W4, Rule::FasterThanJoblib(5.0)),
    ];
    for system in [
        ParjobSequential,
        ParjobThreading,
        ParjobLoky,
        ParjobMultiprocessing,
    ] {
        for w in [W1, W2, W5] {
            out.push(evaluate(report, system, w, Rule::FasterThanJoblib(3.0)));
        }
    }
    out.push(evaluate(report, ParjobLoky, W6, Rule::VsRayon(1.3)));
    out.push(evaluate(
        report,
        ParjobMultiprocessing,
        W6,
        Rule::VsRayon(1.3),
    ));
    out.push(evaluate(report, ParjobMpi, W6, Rule::VsRayon(2.0)));
    out.push(evaluate(report, ParjobLoky, W7, Rule::VsRayon(1.2)));
    out.push(evaluate(report, ParjobMpi, W2, Rule::VsRayon(1.5)));
    out.push(evaluate(report, ParjobMpi, Rt, Rule::PerUnit(20e-6)));
    out
}

fn evaluate(report: &Report, system: System, workload: Workload, rule: Rule) -> Budget {
    let backend = system.parjob_backend().unwrap_or("?");
    let unit = if workload == Workload::W5 {
        "call"
    } else {
        "task"
    };
    let (what, limit) = match rule {
        Rule::VsRayon(max) => (
            format!("{backend} {} time ÷ rayon", workload.id()),
            format!("≤ {max:.2}×"),
        ),
        Rule::PerUnit(max) => (
            format!("{backend} {} per {unit}", workload.id()),
            format!("≤ {}", crate::stats::fmt_secs(max)),
        ),
        Rule::FasterThanJoblib(min) => (
            format!("{backend} {} vs joblib {backend}", workload.id()),
            format!("≥ {min:.0}× faster"),
        ),
    };
    let mut budget = Budget {
        what,
        limit,
        measured: None,
        value: None,
        status: Status::NotMeasured(String::new()),
        note: None,
    };
    let Some(m) = report.workload(workload) else {
        budget.status = Status::NotMeasured(format!("{} was not run", workload.id()));
        return budget;
    };
    let Some(row) = m.row(system) else {
        budget.status = Status::NotMeasured(format!("{} was not run", system.id()));
        return budget;
    };
    if let Outcome::Unavailable(why) | Outcome::Failed(why) = &row.outcome {
        budget.status = Status::NotMeasured(why.clone());
        return budget;
    }
    let Some(fig) = m.figures(system) else {
        budget.status = Status::NotMeasured("no rounds measured".into());
        return budget;
    };
    let (value, shown, pass) = match rule {
        Rule::VsRayon(max) => match fig.vs_rayon {
            Some(r) => (r.median, crate::stats::fmt_ratio(r.median), r.median <= max),
            None => {
                budget.status = Status::NotMeasured("rayon was not measured".into());
                return budget;
            }
        },
        Rule::PerUnit(max) => (
            fig.per_unit,
            crate::stats::fmt_secs(fig.per_unit),
            fig.per_unit <= max,
        ),
        Rule::FasterThanJoblib(min) => {
            let joblib = system.joblib_counterpart();
            match joblib.and_then(|j| m.ratio(j, system)) {
                Some(r) => {
                    budget.note = joblib.and_then(|j| bound_note(report, m, system, j, min));
                    (r.median, crate::stats::fmt_ratio(r.median), r.median >= min)
                }
                None => {
                    budget.status =
                        Status::NotMeasured(format!("joblib {backend} was not measured"));
                    return budget;
                }
            }
        }
    };
    budget.value = Some(value);
    budget.measured = Some(shown);
    budget.status = if pass { Status::Pass } else { Status::Miss };
    budget
}

/// When even a perfect backend could not be `min`× faster than joblib (the tasks
/// themselves take the time), says how much faster it could be at best.
fn bound_note(
    report: &Report,
    m: &Measured,
    system: System,
    joblib: System,
    min: f64,
) -> Option<String> {
    let seq = Summary::of(m.times(System::SeqLoop)?)?.median;
    let jb = Summary::of(m.times(joblib)?)?.median;
    let workers = if system == System::ParjobSequential {
        1.0
    } else {
        report.ideal_speedup()
    };
    let best = seq / workers;
    let bound = jb / best;
    (bound < min).then(|| {
        format!(
            "at most {} is possible here: the tasks alone take {} on {} worker(s)",
            crate::stats::fmt_ratio(bound),
            crate::stats::fmt_secs(best),
            workers
        )
    })
}
