//! The workloads W1–W7 (DESIGN.md section 8) and the round-trip probe RT: their sizes, the
//! task functions every Rust system runs, the inputs, and the checksum that every system
//! (the joblib script too) must reproduce.

use std::time::{Duration, Instant};

/// Elements of a W4 input: 1,048,576 `f64`, 8 MiB.
pub const W4_LEN: usize = 1 << 20;

/// Elements of the data set W6 and W7 share: 8,388,608 `f64`, 64 MiB.
pub const W6_LEN: usize = 1 << 23;

/// Tasks in each call of W7.
pub const W7_TASKS_PER_CALL: usize = 64;

/// One workload of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Workload {
    /// Many trivial tasks: `neg(x)` for 1,000,000 integers.
    W1,
    /// Short CPU-bound tasks: 20,000 × ~50 µs of spinning.
    W2,
    /// Few long tasks: 8 × ~250 ms of spinning.
    W3,
    /// Large inputs: 64 tasks that each take an 8 MiB `Vec<f64>` and return its sum.
    W4,
    /// Many small calls: 1,000 calls of 2 empty tasks each.
    W5,
    /// Round trip: 2,000 empty tasks with `batch_size = 1`, one batch in flight at a time.
    Rt,
    /// Shared data: 64 tasks that each read all of one captured 64 MiB `Vec<f64>`.
    W6,
    /// Shared data across calls: 20 calls of 64 W6 tasks over the same `Shared` value.
    W7,
}

impl Workload {
    /// Every workload, in the order the report shows them.
    pub const ALL: [Workload; 8] = [
        Workload::W1,
        Workload::W2,
        Workload::W3,
        Workload::W4,
        Workload::W5,
        Workload::Rt,
        Workload::W6,
        Workload::W7,
    ];

    /// The short name used on the command line, in the child protocol and in JSON.
    pub fn id(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::W2 => "W2",
            Workload::W3 => "W3",
            Workload::W4 => "W4",
            Workload::W5 => "W5",
            Workload::Rt => "RT",
            Workload::W6 => "W6",
            Workload::W7 => "W7",
        }
    }

    /// Parses [`id`](Workload::id), in any case.
    pub fn parse(s: &str) -> Option<Workload> {
        Workload::ALL
            .into_iter()
            .find(|w| w.id().eq_ignore_ascii_case(s.trim()))
    }

    /// The size of the workload: tasks (W1–W4, W6, W7, RT) or calls (W5), and how long each
    /// task spins (W2, W3). `quick` scales the sizes down for `--quick`.
    pub fn spec(self, quick: bool) -> Spec {
        let (count, spin_us) = match (self, quick) {
            (Workload::W1, false) => (1_000_000, 0),
            (Workload::W1, true) => (100_000, 0),
            (Workload::W2, false) => (20_000, 50),
            (Workload::W2, true) => (2_000, 50),
            (Workload::W3, false) => (8, 250_000),
            (Workload::W3, true) => (8, 25_000),
            (Workload::W4, false) => (64, 0),
            (Workload::W4, true) => (16, 0),
            (Workload::W5, false) => (1_000, 0),
            (Workload::W5, true) => (100, 0),
            (Workload::Rt, false) => (2_000, 0),
            (Workload::Rt, true) => (500, 0),
            (Workload::W6, false) => (64, 0),
            (Workload::W6, true) => (16, 0),
            (Workload::W7, false) => (20 * W7_TASKS_PER_CALL, 0),
            (Workload::W7, true) => (3 * W7_TASKS_PER_CALL, 0),
        };
        Spec {
            workload: self,
            count,
            spin_us,
        }
    }
}

/// A workload at a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Which workload.
    pub workload: Workload,
    /// Tasks, or calls for W5.
    pub count: usize,
    /// Spin time of one task in W2 and W3, in microseconds.
    pub spin_us: u64,
}

impl Spec {
    /// The same workload with `count` tasks (or calls): the warm-up probe runs a fraction.
    pub fn with_count(self, count: usize) -> Spec {
        Spec { count, ..self }
    }

    /// What the workload does, for the report.
    pub fn describe(&self) -> String {
        let n = group(self.count as u64);
        match self.workload {
            Workload::W1 => format!("{n} × neg(x)"),
            Workload::W2 | Workload::W3 => {
                format!("{n} × {} spin", crate::stats::fmt_duration(self.spin()))
            }
            Workload::W4 => format!("{n} tasks × 8 MiB Vec<f64> → sum"),
            Workload::W5 => format!("{n} calls × 2 empty tasks"),
            Workload::Rt => format!("{n} empty tasks, batch_size=1, 1 batch in flight"),
            Workload::W6 => format!("{n} tasks × read one captured 64 MiB Vec<f64>"),
            Workload::W7 => format!(
                "{} calls × {W7_TASKS_PER_CALL} W6 tasks over one Shared value",
                self.count / W7_TASKS_PER_CALL
            ),
        }
    }

    /// How many results a run produces.
    pub fn results(&self) -> usize {
        match self.workload {
            Workload::W5 => 2 * self.count,
            _ => self.count,
        }
    }

    /// The spin time of one task.
    pub fn spin(&self) -> Duration {
        Duration::from_micros(self.spin_us)
    }

    /// The checksum every system must report for a run of this spec, computed without
    /// running the tasks.
    pub fn expected_checksum(&self) -> u64 {
        let mut c = Checksum::default();
        match self.workload {
            Workload::W1 => (0..self.count as i64).for_each(|x| c.push(neg(x) as u64)),
            Workload::W2 | Workload::W3 => (0..self.count as u64).for_each(|x| c.push(mix(x))),
            Workload::W4 => (0..self.count).for_each(|i| c.push(w4_sum(i))),
            Workload::W5 | Workload::Rt => (0..self.results() as u64).for_each(|x| c.push(x)),
            Workload::W6 | Workload::W7 => (0..self.count).for_each(|i| c.push(w6_expected(i))),
        }
        c.value()
    }
}

/// Groups digits by thousands: `1,000,000`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// An order-sensitive checksum of results: `Σ (i + 1) · v_i` modulo 2^64, so that a result in
/// the wrong place changes it. `joblib_bench.py` computes the same.
#[derive(Debug, Default, Clone, Copy)]
pub struct Checksum {
    index: u64,
    sum: u64,
}

impl Checksum {
    /// Adds the next result.
    pub fn push(&mut self, v: u64) {
        self.index += 1;
        self.sum = self.sum.wrapping_add(self.index.wrapping_mul(v));
    }

    /// The checksum of everything pushed.
    pub fn value(&self) -> u64 {
        self.sum
    }

    /// The checksum of a whole slice.
    pub fn of<T: Copy>(values: &[T], as_u64: impl Fn(T) -> u64) -> u64 {
        let mut c = Checksum::default();
        values.iter().for_each(|&v| c.push(as_u64(v)));
        c.value()
    }
}

/// W1's task.
pub fn neg(x: i64) -> i64 {
    -x
}

/// A cheap, deterministic function of a task's input, so that results depend on it.
pub fn mix(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32
}

/// W2's and W3's task: spins on the clock for `micros`, then returns `mix(x)`. Spinning,
/// not sleeping, so that the task occupies a core as real work would.
pub fn spin((x, micros): (u64, u64)) -> u64 {
    let end = Instant::now() + Duration::from_micros(micros);
    while Instant::now() < end {
        std::hint::spin_loop();
    }
    mix(x)
}

/// W4's task: the sum of an 8 MiB vector (exact: its elements are small integers).
pub fn sum(v: Vec<f64>) -> f64 {
    v.iter().sum()
}

/// W5's and RT's task: nothing but its input back.
pub fn noop(x: u64) -> u64 {
    x
}

/// The data set of W6 and W7: element `j` is `j mod 1000`.
pub fn w6_data() -> Vec<f64> {
    (0..W6_LEN).map(|j| (j % 1000) as f64).collect()
}

/// W6's and W7's task: reads all of the data set, weighted by the task's number (exact:
/// small integers).
pub fn w6_task(data: &[f64], i: usize) -> u64 {
    let weight = (i % 7 + 1) as f64;
    data.iter().map(|x| x * weight).sum::<f64>() as u64
}

/// What [`w6_task`] returns for task `i`, without reading the data.
pub fn w6_expected(i: usize) -> u64 {
    let full = (W6_LEN / 1000) as u64 * (0..1000u64).sum::<u64>();
    let rest: u64 = (0..(W6_LEN % 1000) as u64).sum();
    (full + rest) * (i % 7 + 1) as u64
}

/// The `i`-th W4 input: element `j` is `(i + j) mod 1000`.
pub fn w4_input(i: usize) -> Vec<f64> {
    (0..W4_LEN).map(|j| ((i + j) % 1000) as f64).collect()
}

/// The sum of [`w4_input(i)`](w4_input), without making it.
pub fn w4_sum(i: usize) -> u64 {
    let full = (W4_LEN / 1000) as u64 * (0..1000u64).sum::<u64>();
    let rest: u64 = (0..W4_LEN % 1000).map(|j| ((i + j) % 1000) as u64).sum();
    full + rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_w4_sum_formula_matches_the_data() {
        for i in [0, 1, 63, 999, 1000] {
            assert_eq!(sum(w4_input(i)) as u64, w4_sum(i), "input {i}");
        }
    }

    #[test]
    fn the_w6_formula_matches_the_data() {
        let data = w6_data();
        for i in [0, 1, 6, 7] {
            assert_eq!(w6_task(&data, i), w6_expected(i), "task {i}");
        }
    }

    #[test]
    fn the_checksum_depends_on_order() {
        assert_ne!(
            Checksum::of(&[1u64, 2], |v| v),
            Checksum::of(&[2u64, 1], |v| v)
        );
        // Σ (i+1)·v: 1·5 + 2·7
        assert_eq!(Checksum::of(&[5u64, 7], |v| v), 19);
    }

    #[test]
    fn workload_ids_round_trip() {
        for w in Workload::ALL {
            assert_eq!(Workload::parse(&w.id().to_lowercase()), Some(w));
        }
        assert_eq!(Workload::parse("W9"), None);
    }

    #[test]
    fn digits_are_grouped_by_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1_000_000), "1,000,000");
    }
}
