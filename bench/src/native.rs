//! Running a workload once on one of the Rust systems, in the child process that hosts it.
//!
//! Each system runs the same task functions ([`crate::workload`]) over the same inputs.
//! Inputs are made before the clock starts (W4's 8 MiB vectors) and the checksum is taken
//! after it stops; the timed part is the call a user would write.

use std::hint::black_box;
use std::time::{Duration, Instant};

use parjob::remote::Transferable;
use parjob::{Delayed, Parallel, Shared, parallel};
use rayon::prelude::*;

use crate::system::System;
use crate::workload::{
    Checksum, Spec, W7_TASKS_PER_CALL, Workload, neg, noop, spin, sum, w4_input, w6_data, w6_task,
};

/// A Rust system, ready to run workloads with `jobs` workers.
pub struct NativeSystem {
    system: System,
    jobs: usize,
    pool: Option<rayon::ThreadPool>,
}

/// One timed run: how long the call took and the checksum of its results.
pub type RunResult = Result<(Duration, u64), String>;

impl NativeSystem {
    /// Prepares `system`; `Err` says why it cannot run here.
    pub fn new(system: System, jobs: usize) -> Result<NativeSystem, String> {
        if let Some(why) = system.unavailable() {
            return Err(why.into());
        }
        let pool = match system {
            System::Rayon => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(jobs)
                    .build()
                    .map_err(|e| format!("cannot build a rayon pool: {e}"))?,
            ),
            _ => None,
        };
        let me = NativeSystem { system, jobs, pool };
        Ok(me)
    }

    fn parallel(&self) -> Parallel {
        let backend = self.system.parjob_backend().unwrap_or("threading");
        Parallel::new()
            .backend(backend)
            .n_jobs(i32::try_from(self.jobs).unwrap_or(i32::MAX))
    }

    fn n_jobs(&self) -> i32 {
        i32::try_from(self.jobs).unwrap_or(i32::MAX)
    }

    fn backend(&self) -> &'static str {
        self.system.parjob_backend().unwrap_or("threading")
    }

    /// Runs `spec` once.
    pub fn run(&self, spec: &Spec) -> RunResult {
        let n = spec.count;
        let us = spec.spin_us;
        match spec.workload {
            Workload::W1 => {
                let start = Instant::now();
                let out = match self.macro_form() {
                    true => w1_macro(self.backend(), self.n_jobs(), n)?,
                    false => self.map_indexed(n, |i| i as i64, neg, neg)?,
                };
                let elapsed = start.elapsed();
                Ok((elapsed, Checksum::of(&black_box(out), |v| v as u64)))
            }
            Workload::W2 | Workload::W3 => {
                let start = Instant::now();
                let out = match self.macro_form() {
                    true => spin_macro(self.backend(), self.n_jobs(), n, us)?,
                    false => self.map_indexed(n, |i| (i as u64, us), spin, spin)?,
                };
                let elapsed = start.elapsed();
                Ok((elapsed, Checksum::of(&black_box(out), |v| v)))
            }
            Workload::W4 => {
                let inputs: Vec<Vec<f64>> = (0..n).map(w4_input).collect();
                let start = Instant::now();
                let out = match self.macro_form() {
                    true => w4_macro(self.backend(), self.n_jobs(), inputs)?,
                    false => self.map_owned(inputs, sum, sum)?,
                };
                let elapsed = start.elapsed();
                let checksum = Checksum::of(&black_box(out), |v| v as u64);
                release_freed_memory();
                Ok((elapsed, checksum))
            }
            Workload::W5 => {
                let mut out = Vec::with_capacity(2 * n);
                let start = Instant::now();
                for call in 0..n {
                    let base = 2 * call as u64;
                    let two = match self.macro_form() {
                        true => w5_macro(self.backend(), self.n_jobs(), base)?,
                        false => self.map_indexed(2, |i| base + i as u64, noop, noop)?,
                    };
                    out.extend_from_slice(&two);
                }
                let elapsed = start.elapsed();
                Ok((elapsed, Checksum::of(&black_box(out), |v| v)))
            }
            Workload::W6 => {
                let data = w6_data();
                let start = Instant::now();
                let out = self.over_shared_data(&data, n)?;
                let elapsed = start.elapsed();
                Ok((elapsed, Checksum::of(&black_box(out), |v| v)))
            }
            Workload::W7 => {
                let data = w6_data();
                let shared = Shared::new(w6_data());
                let calls = n / W7_TASKS_PER_CALL;
                let mut out = Vec::with_capacity(n);
                let start = Instant::now();
                for call in 0..calls {
                    let first = call * W7_TASKS_PER_CALL;
                    let tasks = first..first + W7_TASKS_PER_CALL;
                    if self.macro_form() {
                        out.extend(w7_macro(self.backend(), self.n_jobs(), &shared, tasks)?);
                    } else {
                        out.extend(self.over_shared_data_range(&data, tasks)?);
                    }
                }
                let elapsed = start.elapsed();
                Ok((elapsed, Checksum::of(&black_box(out), |v| v)))
            }
            Workload::Rt => {
                let start = Instant::now();
                let out = self.round_trips(n)?;
                let elapsed = start.elapsed();
                Ok((elapsed, Checksum::of(&black_box(out), |v| v)))
            }
        }
    }

    /// Whether this system uses the `parallel!` comprehension.
    fn macro_form(&self) -> bool {
        matches!(
            self.system,
            System::ParjobThreadingMacro
                | System::ParjobLoky
                | System::ParjobMultiprocessing
                | System::ParjobMpi
        )
    }

    /// `f(make(i))` for `i` in `0..n`, results in order. `f` is the task function's own
    /// (zero-sized) type, so that the compiler can inline it as it would in user code;
    /// `remote` is the same function as a pointer, which is what crosses into a worker.
    fn map_indexed<I, R, F>(
        &self,
        n: usize,
        make: impl Fn(usize) -> I + Sync + Send + Copy,
        f: F,
        remote: fn(I) -> R,
    ) -> Result<Vec<R>, String>
    where
        I: Transferable + 'static,
        R: Transferable + 'static,
        F: Fn(I) -> R + Copy + Send + Sync,
    {
        match self.system {
            System::SeqLoop => Ok((0..n).map(|i| f(make(i))).collect()),
            System::Rayon => Ok(self.rayon_pool().install(|| {
                (0..n)
                    .into_par_iter()
                    .map(|i| f(make(i)))
                    .collect::<Vec<R>>()
            })),
            System::ThreadScope => Ok(scope_map_indexed(n, self.jobs, make, f)),
            System::ParjobSequential | System::ParjobThreading => self
                .parallel()
                .map(0..n, |i| f(make(i)))
                .map_err(|e| e.to_string()),
            System::ParjobLokyDelayed => self
                .parallel()
                .run((0..n).map(|i| Delayed::remote(remote, make(i))))
                .map_err(|e| e.to_string()),
            other => Err(format!("{} has no indexed map", other.id())),
        }
    }

    /// `f(item)` for owned items, results in order; `f` and `remote` as in
    /// [`map_indexed`](Self::map_indexed).
    fn map_owned<I, R, F>(&self, items: Vec<I>, f: F, remote: fn(I) -> R) -> Result<Vec<R>, String>
    where
        I: Transferable + 'static,
        R: Transferable + 'static,
        F: Fn(I) -> R + Copy + Send + Sync,
    {
        match self.system {
            System::SeqLoop => Ok(items.into_iter().map(f).collect()),
            System::Rayon => Ok(self
                .rayon_pool()
                .install(|| items.into_par_iter().map(f).collect::<Vec<R>>())),
            System::ThreadScope => Ok(scope_map_owned(items, self.jobs, f)),
            System::ParjobSequential | System::ParjobThreading => {
                self.parallel().map(items, f).map_err(|e| e.to_string())
            }
            System::ParjobLokyDelayed => self
                .parallel()
                .run(items.into_iter().map(|x| Delayed::remote(remote, x)))
                .map_err(|e| e.to_string()),
            other => Err(format!("{} has no owned map", other.id())),
        }
    }

    /// W6: tasks `0..n` over one data set that every task reads whole.
    fn over_shared_data(&self, data: &[f64], n: usize) -> Result<Vec<u64>, String> {
        if self.macro_form() {
            return w6_macro(self.backend(), self.n_jobs(), data, n);
        }
        self.over_shared_data_range(data, 0..n)
    }

    /// Tasks `tasks` over `data`, on the systems that borrow it.
    fn over_shared_data_range(
        &self,
        data: &[f64],
        tasks: std::ops::Range<usize>,
    ) -> Result<Vec<u64>, String> {
        match self.system {
            System::SeqLoop => Ok(tasks.map(|i| w6_task(data, i)).collect()),
            System::Rayon => Ok(self
                .rayon_pool()
                .install(|| tasks.into_par_iter().map(|i| w6_task(data, i)).collect())),
            System::ThreadScope => {
                let first = tasks.start;
                Ok(scope_map_indexed(
                    tasks.len(),
                    self.jobs,
                    move |i| first + i,
                    |i| w6_task(data, i),
                ))
            }
            System::ParjobSequential | System::ParjobThreading => self
                .parallel()
                .map(tasks, |i| w6_task(data, i))
                .map_err(|e| e.to_string()),
            other => Err(format!("{} does not read shared data", other.id())),
        }
    }

    /// RT: `n` empty tasks, one batch of one task in flight at a time, so each task is a
    /// full round trip to a worker and back.
    fn round_trips(&self, n: usize) -> Result<Vec<u64>, String> {
        let p = self.parallel().batch_size(1).pre_dispatch(1);
        let r = match self.system {
            System::ParjobThreading => p.map(0..n as u64, noop),
            System::ParjobThreadingMacro
            | System::ParjobLoky
            | System::ParjobMultiprocessing
            | System::ParjobMpi => {
                let backend = self.backend();
                parallel!(backend, n_jobs = self.n_jobs(), batch_size = 1, pre_dispatch = 1;
                    noop(x) for x in 0..n as u64)
            }
            System::ParjobLokyDelayed => p.run((0..n as u64).map(|x| Delayed::remote(noop, x))),
            other => return Err(format!("{} does not run RT", other.id())),
        };
        r.map_err(|e| e.to_string())
    }

    fn rayon_pool(&self) -> &rayon::ThreadPool {
        self.pool
            .as_ref()
            .expect("the rayon system is made with its pool")
    }
}

// The comprehension forms. The body calls a plain function on the pattern's binding only,
// so that a process backend can take it; the backend is a run-time value, as in
// `Parallel(backend=b)`.

/// W6 as library code writes it: the body uses the caller's slice, which travels to worker
/// processes once per call and worker.
fn w6_macro(backend: &str, n_jobs: i32, data: &[f64], n: usize) -> Result<Vec<u64>, String> {
    parallel!(backend, n_jobs = n_jobs; w6_task(data, i) for i in 0..n).map_err(|e| e.to_string())
}

/// One call of W7: the body uses a `Shared` value, which workers keep across calls.
fn w7_macro(
    backend: &str,
    n_jobs: i32,
    shared: &Shared<Vec<f64>>,
    tasks: std::ops::Range<usize>,
) -> Result<Vec<u64>, String> {
    parallel!(backend, n_jobs = n_jobs; w6_task(shared, i) for i in tasks)
        .map_err(|e| e.to_string())
}

fn w1_macro(backend: &str, n_jobs: i32, n: usize) -> Result<Vec<i64>, String> {
    parallel!(backend, n_jobs = n_jobs; neg(x) for x in 0..n as i64).map_err(|e| e.to_string())
}

fn spin_macro(backend: &str, n_jobs: i32, n: usize, us: u64) -> Result<Vec<u64>, String> {
    parallel!(backend, n_jobs = n_jobs; spin(t) for t in (0..n as u64).map(|x| (x, us)))
        .map_err(|e| e.to_string())
}

fn w4_macro(backend: &str, n_jobs: i32, inputs: Vec<Vec<f64>>) -> Result<Vec<f64>, String> {
    parallel!(backend, n_jobs = n_jobs; sum(v) for v in inputs).map_err(|e| e.to_string())
}

fn w5_macro(backend: &str, n_jobs: i32, base: u64) -> Result<Vec<u64>, String> {
    parallel!(backend, n_jobs = n_jobs; noop(x) for x in base..base + 2).map_err(|e| e.to_string())
}

/// `std::thread::scope` over `0..n`: one contiguous chunk per thread, each writing its
/// results straight into its part of the output.
fn scope_map_indexed<I, R: Send>(
    n: usize,
    jobs: usize,
    make: impl Fn(usize) -> I + Sync + Send + Copy,
    f: impl Fn(I) -> R + Copy + Send + Sync,
) -> Vec<R> {
    let chunk = n.div_ceil(jobs.max(1)).max(1);
    let mut out: Vec<R> = Vec::with_capacity(n);
    std::thread::scope(|s| {
        for (k, part) in out.spare_capacity_mut()[..n].chunks_mut(chunk).enumerate() {
            s.spawn(move || {
                let first = k * chunk;
                for (j, slot) in part.iter_mut().enumerate() {
                    slot.write(f(make(first + j)));
                }
            });
        }
    });
    // SAFETY: the chunks cover `0..n` and every thread wrote each slot of its chunk before
    // the scope returned (a panicking thread makes `scope` panic before this line).
    unsafe { out.set_len(n) };
    out
}

/// `std::thread::scope` over owned items: contiguous chunks moved into the threads.
fn scope_map_owned<I: Send, R: Send>(
    items: Vec<I>,
    jobs: usize,
    f: impl Fn(I) -> R + Copy + Send + Sync,
) -> Vec<R> {
    let chunk = items.len().div_ceil(jobs.max(1)).max(1);
    let mut rest = items.into_iter();
    let parts: Vec<Vec<I>> = (0..jobs)
        .map(|_| rest.by_ref().take(chunk).collect())
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| s.spawn(move || part.into_iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a scoped thread panicked"))
            .collect()
    })
}

/// Hands memory freed by a W4 run back to the system, so that an idle child waiting for
/// its next round does not hold half a gigabyte.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free heap memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// For W4: keeps memory freed during a call in the allocator instead of handing it back to
/// the kernel at once. Otherwise glibc trims the top of its heap inside the timed call
/// (about 0.5 ms per 8 MiB here), and which system pays depends only on the order in which
/// its threads happen to free the inputs. Set in the driving process of every system (the
/// joblib script does the same); worker processes keep the allocator's defaults, since what
/// they pay is part of their backend's cost.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes allocator parameters; called before any W4 allocation.
    unsafe {
        // Fixing one parameter turns glibc's dynamic thresholds off, so both are set: inputs
        // come from the heap (not one mapping each), and the heap is not trimmed.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
    }
}
