//! Progress of a call: the `on_progress` callback and `verbose` output on stderr.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How far a call has come, as passed to [`Parallel::on_progress`](crate::Parallel::on_progress).
///
/// ```
/// use parjob::Parallel;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let last = Arc::new(AtomicUsize::new(0));
/// let seen = Arc::clone(&last);
/// Parallel::new().on_progress(move |p| seen.store(p.done, Ordering::Relaxed)).map(0..7, |i| i)?;
/// assert_eq!(last.load(Ordering::Relaxed), 7);
/// # Ok::<(), parjob::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Tasks completed so far.
    pub done: usize,
    /// How many tasks the call has in all: known from the start when the input reports an
    /// exact length, otherwise once the input is exhausted.
    pub total: Option<usize>,
    /// Time since the call started.
    pub elapsed: Duration,
}

pub(crate) type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// What the caller watches a call's progress with, besides `verbose`: a callback
/// ([`Parallel::on_progress`](crate::Parallel::on_progress)) and a bar of its own
/// ([`Parallel::progress_bar`](crate::Parallel::progress_bar)).
#[derive(Clone, Default)]
pub(crate) struct Watchers {
    pub(crate) callback: Option<ProgressFn>,
    pub(crate) bar: Option<indicatif::ProgressBar>,
}

impl Watchers {
    /// Whether nobody watches the call's progress.
    pub(crate) fn is_empty(&self) -> bool {
        self.callback.is_none() && self.bar.is_none()
    }
}

/// Reports the progress of one call.
pub(crate) struct Reporter {
    callback: Option<ProgressFn>,
    verbose: u32,
    n_jobs: i32,
    started: Instant,
    bar: Option<indicatif::ProgressBar>,
    /// The caller's bar: its length and position follow the call; the rest is the caller's.
    caller_bar: Option<indicatif::ProgressBar>,
    done: usize,
    total: Option<usize>,
    completions: usize,
    last_shown_step: Option<u64>,
}

impl Reporter {
    pub(crate) fn new(
        watchers: Watchers,
        verbose: u32,
        n_jobs: i32,
        total: Option<usize>,
    ) -> Option<Self> {
        let Watchers {
            callback,
            bar: caller_bar,
        } = watchers;
        if callback.is_none() && caller_bar.is_none() && verbose == 0 {
            return None;
        }
        if let (Some(bar), Some(t)) = (&caller_bar, total) {
            bar.set_length(t as u64);
        }
        // The caller's bar replaces parjob's own.
        let own_bar = caller_bar.is_none() && verbose > 0 && std::io::stderr().is_terminal();
        let bar = own_bar.then(|| {
            let bar = match total {
                Some(t) => indicatif::ProgressBar::new(t as u64),
                None => indicatif::ProgressBar::new_spinner(),
            };
            bar.set_prefix(format!("Parallel(n_jobs={n_jobs})"));
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "[{prefix}] {bar:30} {pos}/{len} | elapsed: {elapsed} eta: {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Some(Reporter {
            callback,
            // The caller's bar is the only drawing: no lines around it.
            verbose: if caller_bar.is_some() { 0 } else { verbose },
            n_jobs,
            started: Instant::now(),
            bar,
            caller_bar,
            done: 0,
            total,
            completions: 0,
            last_shown_step: None,
        })
    }

    pub(crate) fn start(&self, backend: &str, workers: usize) {
        if self.verbose > 0 && self.bar.is_none() && workers > 1 {
            self.line(&format!(
                "Using backend {backend} with {workers} concurrent workers."
            ));
        }
    }

    pub(crate) fn input_exhausted(&mut self, total: usize) {
        self.total = Some(total);
        for bar in self.bar.iter().chain(&self.caller_bar) {
            bar.set_length(total as u64);
        }
    }

    /// `n` more tasks finished.
    pub(crate) fn advance(&mut self, n: usize) {
        self.done += n;
        self.completions += 1;
        let elapsed = self.started.elapsed();
        if let Some(cb) = &self.callback {
            cb(Progress {
                done: self.done,
                total: self.total,
                elapsed,
            });
        }
        if let Some(bar) = &self.caller_bar {
            bar.set_position(self.done as u64);
        }
        if self.verbose == 0 {
            return;
        }
        if let Some(bar) = &self.bar {
            bar.set_position(self.done as u64);
            return;
        }
        if self.total == Some(self.done) {
            return; // the final line comes from `finish`
        }
        if self.should_print() {
            let text = self.done_text(elapsed);
            self.line(&text);
        }
    }

    /// joblib's throttle: every completion above verbose 10, otherwise whenever
    /// `floor(sqrt(completions / s))` changes, with `s = 0.5 * (11 - verbose)^2`.
    fn should_print(&mut self) -> bool {
        if self.verbose > 10 {
            return true;
        }
        let s = 0.5 * f64::from(11 - self.verbose).powi(2);
        let step = ((self.completions - 1) as f64 / s).sqrt().floor() as u64;
        if self.last_shown_step == Some(step) {
            return false;
        }
        self.last_shown_step = Some(step);
        true
    }

    fn done_text(&self, elapsed: Duration) -> String {
        match self.total {
            Some(total) => {
                let w = total.max(1).ilog10() as usize + 1;
                format!(
                    "Done {:>w$} out of {:>w$} | elapsed: {}",
                    self.done,
                    total,
                    short_time(elapsed)
                )
            }
            None => format!(
                "Done {:>3} tasks      | elapsed: {}",
                self.done,
                short_time(elapsed)
            ),
        }
    }

    /// The call ended; `ok` says whether every task completed.
    pub(crate) fn finish(&mut self, ok: bool) {
        if self.verbose == 0 {
            return;
        }
        if let Some(bar) = &self.bar {
            if ok {
                bar.finish();
            } else {
                bar.abandon();
            }
            return;
        }
        if ok {
            let total = self.total.unwrap_or(self.done);
            let w = total.max(1).ilog10() as usize + 1;
            self.line(&format!(
                "Done {:>w$} out of {:>w$} | elapsed: {} finished",
                self.done,
                total,
                short_time(self.started.elapsed())
            ));
        }
    }

    fn line(&self, msg: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "[Parallel(n_jobs={})]: {msg}", self.n_jobs);
    }
}

/// joblib's time format: `"  1.2s"` below a minute, `" 2.5min"` above.
pub(crate) fn short_time(t: Duration) -> String {
    let secs = t.as_secs_f64();
    if secs < 60.0 {
        format!(" {secs:5.1}s")
    } else {
        format!("{:4.1}min", secs / 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format_matches_joblib() {
        assert_eq!(
            format!("elapsed:{}", short_time(Duration::from_millis(1200))),
            "elapsed:   1.2s"
        );
        assert_eq!(short_time(Duration::from_secs(150)), " 2.5min");
    }

    #[test]
    fn done_line_pads_to_the_width_of_the_total() {
        let mut r = Reporter::new(Watchers::default(), 5, 2, Some(100)).unwrap();
        r.done = 10;
        assert_eq!(
            r.done_text(Duration::from_millis(1200)),
            "Done  10 out of 100 | elapsed:    1.2s"
        );
    }
}
