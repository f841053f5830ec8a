//! How many tasks go into one batch, and how far dispatch may run ahead of completion.

use std::time::Duration;

use crate::error::Error;

/// Tasks per batch, the unit handed to a worker (joblib's `batch_size`).
///
/// `Auto` (the default) starts at 1 task and grows or shrinks each batch so that it lasts
/// about the backend's ideal batch duration: cheap tasks are grouped to amortise the cost of
/// handing work over, expensive ones go one by one. `Fixed(n)` always groups `n` tasks.
///
/// ```
/// use parjob::{BatchSize, Parallel};
///
/// assert_eq!(BatchSize::from(8), BatchSize::Fixed(8));
/// let out = Parallel::new().n_jobs(2).batch_size(100).map(0..1000, |i| i % 7)?;
/// assert_eq!(out.len(), 1000);
/// # Ok::<(), parjob::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BatchSize {
    /// Adapt to the measured task duration.
    #[default]
    Auto,
    /// Exactly this many tasks per batch (the last one may have fewer); 0 is
    /// [`Error::InvalidConfig`] when the call runs.
    Fixed(usize),
}

impl From<usize> for BatchSize {
    fn from(n: usize) -> Self {
        BatchSize::Fixed(n)
    }
}

/// How many batches may be dispatched ahead of completion (joblib's `pre_dispatch`).
///
/// Dispatch pulls tasks from the input only while fewer than this many batches are in
/// flight, so a lazy input is consumed as workers free up rather than all at once. The default
/// is `"2*n_jobs"`. A string is `"all"` (no bound) or an arithmetic expression over `n_jobs`
/// (`+ - * /`, parentheses, numbers), evaluated when the call runs.
///
/// ```
/// use parjob::{Parallel, PreDispatch};
///
/// assert_eq!(PreDispatch::from(3), PreDispatch::Count(3));
/// let out = Parallel::new().n_jobs(2).pre_dispatch("3*n_jobs").map(0..10, |i| i)?;
/// assert_eq!(out, (0..10).collect::<Vec<_>>());
/// # Ok::<(), parjob::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PreDispatch {
    /// At most this many batches in flight; 0 is [`Error::InvalidConfig`] when the call runs.
    Count(usize),
    /// No bound: the whole input is dispatched at once.
    All,
    /// An expression over `n_jobs`, such as `"2*n_jobs"`.
    Expr(String),
}

impl Default for PreDispatch {
    fn default() -> Self {
        PreDispatch::Expr("2*n_jobs".into())
    }
}

impl From<usize> for PreDispatch {
    fn from(n: usize) -> Self {
        PreDispatch::Count(n)
    }
}

impl From<&str> for PreDispatch {
    fn from(s: &str) -> Self {
        if s.trim() == "all" {
            PreDispatch::All
        } else {
            PreDispatch::Expr(s.to_owned())
        }
    }
}

impl From<String> for PreDispatch {
    fn from(s: String) -> Self {
        PreDispatch::from(s.as_str())
    }
}

impl PreDispatch {
    /// The bound of the default, `2*n_jobs`, without parsing it.
    pub(crate) fn default_limit(n_jobs: usize) -> usize {
        n_jobs.saturating_mul(2).max(1)
    }

    /// The bound for a call with `n_jobs` workers.
    pub(crate) fn limit(&self, n_jobs: usize) -> Result<usize, Error> {
        let n = match self {
            PreDispatch::All => return Ok(usize::MAX),
            PreDispatch::Count(n) => *n as f64,
            PreDispatch::Expr(e) => Expr::eval(e, n_jobs as f64)
                .map_err(|why| Error::config(format!("pre_dispatch `{e}` is not valid: {why}")))?,
        };
        if n.is_nan() || n < 1.0 {
            return Err(Error::config(format!(
                "pre_dispatch must allow at least one batch, got {n}"
            )));
        }
        Ok(n.min(usize::MAX as f64) as usize)
    }
}

/// A small evaluator for `pre_dispatch` expressions: numbers, `n_jobs`, `+ - * /`, unary
/// minus and parentheses. Nothing else is accepted, so no input can do more than arithmetic.
struct Expr<'a> {
    bytes: &'a [u8],
    pos: usize,
    n_jobs: f64,
    depth: usize,
}

impl<'a> Expr<'a> {
    fn eval(text: &'a str, n_jobs: f64) -> Result<f64, String> {
        if text.len() > 64 {
            return Err("longer than 64 characters".into());
        }
        let mut p = Expr {
            bytes: text.as_bytes(),
            pos: 0,
            n_jobs,
            depth: 0,
        };
        let v = p.sum()?;
        p.skip_ws();
        if p.pos != p.bytes.len() {
            return Err(format!("unexpected `{}`", &text[p.pos..]));
        }
        if !v.is_finite() {
            return Err("the result is not a finite number".into());
        }
        Ok(v.trunc())
    }

    fn skip_ws(&mut self) {
        while self
            .bytes
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes.get(self.pos).copied()
    }

    fn sum(&mut self) -> Result<f64, String> {
        let mut v = self.product()?;
        while let Some(op @ (b'+' | b'-')) = self.peek() {
            self.pos += 1;
            let r = self.product()?;
            v = if op == b'+' { v + r } else { v - r };
        }
        Ok(v)
    }

    fn product(&mut self) -> Result<f64, String> {
        let mut v = self.unary()?;
        while let Some(op @ (b'*' | b'/')) = self.peek() {
            self.pos += 1;
            let r = self.unary()?;
            v = if op == b'*' { v * r } else { v / r };
        }
        Ok(v)
    }

    fn unary(&mut self) -> Result<f64, String> {
        self.depth += 1;
        if self.depth > 32 {
            return Err("nested too deeply".into());
        }
        let v = match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                -self.unary()?
            }
            Some(b'(') => {
                self.pos += 1;
                let v = self.sum()?;
                if self.peek() != Some(b')') {
                    return Err("missing `)`".into());
                }
                self.pos += 1;
                v
            }
            Some(b) if b.is_ascii_digit() || b == b'.' => {
                let start = self.pos;
                while self
                    .bytes
                    .get(self.pos)
                    .is_some_and(|b| b.is_ascii_digit() || *b == b'.')
                {
                    self.pos += 1;
                }
                let text = std::str::from_utf8(&self.bytes[start..self.pos]).unwrap_or("");
                text.parse::<f64>()
                    .map_err(|_| format!("`{text}` is not a number"))?
            }
            Some(_) if self.bytes[self.pos..].starts_with(b"n_jobs") => {
                self.pos += "n_jobs".len();
                self.n_jobs
            }
            Some(_) => return Err("expected a number, `n_jobs` or `(`".into()),
            None => return Err("the expression ends too early".into()),
        };
        self.depth -= 1;
        Ok(v)
    }
}

/// Grows and shrinks the batch size of a call so that a batch lasts about `target`.
#[derive(Debug)]
pub(crate) struct BatchSizer {
    fixed: Option<usize>,
    size: usize,
    target: Duration,
    /// Smoothed seconds per task, from batches of the current size.
    per_task: Option<f64>,
}

impl BatchSizer {
    /// Largest factor a batch may grow by from one measurement to the next: one timing of a
    /// tiny batch is noisy, so growth is fast but not blind.
    const MAX_GROWTH: usize = 16;

    pub(crate) fn new(batch: BatchSize, target: Duration) -> Result<Self, Error> {
        let fixed = match batch {
            BatchSize::Auto => None,
            BatchSize::Fixed(0) => {
                return Err(Error::config(
                    "batch_size must be `auto` or a positive number of tasks, got 0",
                ));
            }
            BatchSize::Fixed(n) => Some(n),
        };
        Ok(BatchSizer {
            fixed,
            size: fixed.unwrap_or(1),
            target,
            per_task: None,
        })
    }

    /// The size of the next batch; `remaining` is how many tasks are left when known, and
    /// `workers` how many share them (near the end, batches shrink so no worker idles).
    pub(crate) fn next_size(&self, remaining: Option<usize>, workers: usize) -> usize {
        if let Some(n) = self.fixed {
            return n;
        }
        match remaining {
            Some(r) => self.size.min(r.div_ceil(2 * workers.max(1))).max(1),
            None => self.size,
        }
    }

    /// Records that a batch of `len` tasks took `elapsed` on its worker.
    pub(crate) fn completed(&mut self, len: usize, elapsed: Duration) {
        if self.fixed.is_some() || len == 0 || len != self.size {
            return;
        }
        let sample = elapsed.as_secs_f64() / len as f64;
        let per_task = match self.per_task {
            None => sample,
            Some(old) => 0.8 * old + 0.2 * sample,
        };
        self.per_task = Some(per_task);
        let ideal = if per_task > 0.0 {
            (self.target.as_secs_f64() / per_task).clamp(1.0, 1e9) as usize
        } else {
            usize::MAX
        };
        let new = ideal.min(self.size.saturating_mul(Self::MAX_GROWTH)).max(1);
        // Small changes are not worth forgetting the average for.
        if new >= self.size * 2 || new * 2 <= self.size {
            self.size = new;
            self.per_task = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_dispatch_expressions() {
        assert_eq!(PreDispatch::default().limit(2).unwrap(), 4);
        for n in [1, 2, 3, 64] {
            assert_eq!(
                PreDispatch::default_limit(n),
                PreDispatch::default().limit(n).unwrap()
            );
        }
        assert_eq!(PreDispatch::from("3*n_jobs").limit(4).unwrap(), 12);
        assert_eq!(PreDispatch::from("n_jobs / 2 + 1").limit(5).unwrap(), 3);
        assert_eq!(PreDispatch::from("(n_jobs+1)*-(-2)").limit(3).unwrap(), 8);
        assert_eq!(PreDispatch::from("all").limit(3).unwrap(), usize::MAX);
        assert_eq!(PreDispatch::from(7).limit(3).unwrap(), 7);
        for bad in [
            "",
            "2*",
            "n_jobs**",
            "os.system('x')",
            "2/0",
            "0",
            "-n_jobs",
            "(1",
            "1)",
        ] {
            assert!(
                matches!(
                    PreDispatch::from(bad).limit(2),
                    Err(Error::InvalidConfig { .. })
                ),
                "{bad:?} was accepted"
            );
        }
        assert!(PreDispatch::from(0).limit(2).is_err());
        let deep = format!("{}1{}", "(".repeat(40), ")".repeat(40));
        assert!(PreDispatch::from(deep.as_str()).limit(2).is_err());
    }

    #[test]
    fn auto_batches_grow_for_cheap_tasks_and_shrink_for_slow_ones() {
        let target = Duration::from_millis(1);
        let mut s = BatchSizer::new(BatchSize::Auto, target).unwrap();
        assert_eq!(s.next_size(None, 2), 1);
        s.completed(1, Duration::from_nanos(100));
        assert_eq!(s.next_size(None, 2), 16);
        for _ in 0..10 {
            let n = s.next_size(None, 2);
            s.completed(n, Duration::from_nanos(100) * n as u32);
        }
        assert_eq!(s.next_size(None, 2), 10_000);
        // Tasks become slow: the batch shrinks at once.
        s.completed(10_000, Duration::from_secs(1));
        assert!(s.next_size(None, 2) <= 50, "{}", s.next_size(None, 2));
        // Near the end the batch is capped by what is left.
        assert_eq!(s.next_size(Some(8), 2), 2);
        assert!(BatchSizer::new(BatchSize::Fixed(0), target).is_err());
        let f = BatchSizer::new(BatchSize::Fixed(5), target).unwrap();
        assert_eq!(f.next_size(Some(1), 2), 5);
    }
}
