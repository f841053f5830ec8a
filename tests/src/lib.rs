//! Helpers shared by the behaviour tests of parjob.

use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A value that counts the values of its kind alive in `live` (made minus dropped), so
/// that a test sees leaks (above 0) and double drops (below 0).
#[derive(Debug)]
pub struct Tracked(Arc<AtomicIsize>);

impl Tracked {
    /// A new value, counted in `live`.
    pub fn new(live: &Arc<AtomicIsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Tracked(Arc::clone(live))
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts tasks running at once and remembers the most seen.
#[derive(Debug, Default)]
pub struct PeakCounter {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl PeakCounter {
    /// Marks a task as running until the returned guard drops.
    pub fn enter(&self) -> PeakGuard<'_> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        PeakGuard(self)
    }

    /// The most tasks seen running at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// Keeps a task counted as running.
#[derive(Debug)]
pub struct PeakGuard<'a>(&'a PeakCounter);

impl Drop for PeakGuard<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An append-only log of events from several threads.
#[derive(Debug, Default)]
pub struct EventLog(Mutex<Vec<String>>);

impl EventLog {
    /// Appends `event`.
    pub fn push(&self, event: impl Into<String>) {
        self.0.lock().unwrap().push(event.into());
    }

    /// The events so far, in the order they were pushed.
    pub fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Where `event` was logged.
    pub fn position(&self, event: &str) -> Option<usize> {
        self.events().iter().position(|e| e == event)
    }
}

/// Runs the test named `test` of the current test binary in a child process with extra
/// environment variables, and returns its exit status, stdout and stderr. The child is told
/// it is the child through `PARJOB_TEST_CHILD=1`.
pub fn rerun_test(test: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = std::process::Command::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("PARJOB_TEST_CHILD", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("rerun the test binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether this process is a child started by [`rerun_test`].
pub fn is_child() -> bool {
    std::env::var_os("PARJOB_TEST_CHILD").is_some()
}

/// What `/proc` says about this process: the figures the stress and soak tests keep flat.
pub mod procfs {
    use std::time::{Duration, Instant};

    /// Threads of this process.
    pub fn threads() -> usize {
        std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
    }

    /// Open file descriptors of this process (the directory listing's own included).
    pub fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
    }

    /// Resident set size of this process in KiB (`VmRSS` of `/proc/self/status`).
    pub fn rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .expect("VmRSS in /proc/self/status")
    }

    /// A child process of this process.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Child {
        /// Its pid.
        pub pid: u32,
        /// Its state letter (`R`, `S`, `Z` for a zombie, ...).
        pub state: char,
        /// Whether it is a loky worker (its arguments include `--parjob-worker`).
        pub loky_worker: bool,
    }

    impl Child {
        /// Whether it has ended (a zombie not yet reaped, or dead).
        pub fn ended(&self) -> bool {
            matches!(self.state, 'Z' | 'X' | 'x')
        }
    }

    /// `/proc/<pid>/stat` fields after the command name: state, ppid.
    pub fn stat_of(pid: u32) -> Option<(char, u32)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after = &stat[stat.rfind(')')? + 2..];
        let mut fields = after.split_whitespace();
        let state = fields.next()?.chars().next()?;
        let ppid = fields.next()?.parse().ok()?;
        Some((state, ppid))
    }

    /// Every process whose parent is `parent`, with its state, zombies included.
    pub fn children_of(parent: u32) -> Vec<(u32, char)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((state, ppid)) = stat_of(pid)
                && ppid == parent
            {
                out.push((pid, state));
            }
        }
        out
    }

    /// Every process whose parent is this process, zombies included.
    pub fn children() -> Vec<Child> {
        let mut out = Vec::new();
        for (pid, state) in children_of(std::process::id()) {
            let loky_worker = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                c.split(|&b| b == 0)
                    .any(|arg| arg == b"--parjob-worker".as_slice())
            });
            out.push(Child {
                pid,
                state,
                loky_worker,
            });
        }
        out
    }

    /// Children that should not be there: anything but a live loky worker, or more than
    /// `max_workers` live loky workers (then all of them are listed).
    pub fn stray_children(max_workers: usize) -> Vec<Child> {
        let all = children();
        let workers = all.iter().filter(|c| c.loky_worker && !c.ended()).count();
        all.into_iter()
            .filter(|c| !c.loky_worker || c.ended() || workers > max_workers)
            .collect()
    }

    /// Polls `what` every 20 ms for up to `limit` until `done` holds of it; returns the last
    /// value seen (which may not satisfy `done`).
    pub fn settle<T>(limit: Duration, what: impl Fn() -> T, done: impl Fn(&T) -> bool) -> T {
        let deadline = Instant::now() + limit;
        loop {
            let value = what();
            if done(&value) || Instant::now() >= deadline {
                return value;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Ends the whole test process with a message when a test stops making progress: a hang
/// fails the run instead of stalling it. Stops watching when dropped.
#[derive(Debug)]
pub struct Watchdog {
    shared: std::sync::Arc<WatchdogShared>,
}

#[derive(Debug)]
struct WatchdogShared {
    /// When progress was last reported, and what was going on then.
    last: Mutex<(std::time::Instant, String)>,
    done: std::sync::atomic::AtomicBool,
}

impl Watchdog {
    /// Exits the process with status 1 if `limit` passes without [`Watchdog::progress`]
    /// (or, if it is never called, after `limit`).
    pub fn start(what: &str, limit: std::time::Duration) -> Watchdog {
        let shared = std::sync::Arc::new(WatchdogShared {
            last: Mutex::new((std::time::Instant::now(), "starting".to_owned())),
            done: std::sync::atomic::AtomicBool::new(false),
        });
        let watched = std::sync::Arc::clone(&shared);
        let what = what.to_owned();
        std::thread::spawn(move || {
            while !watched.done.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(100));
                let last = watched.last.lock().unwrap_or_else(|e| e.into_inner());
                if !watched.done.load(Ordering::SeqCst) && last.0.elapsed() > limit {
                    eprintln!(
                        "WATCHDOG: {what}: no progress for {limit:?} (last: {}); the test hangs, exiting",
                        last.1
                    );
                    std::process::exit(1);
                }
            }
        });
        Watchdog { shared }
    }

    /// Reports progress: the clock starts again, and `note` is what a timeout will name.
    pub fn progress(&self, note: impl Into<String>) {
        let mut last = self.shared.last.lock().unwrap_or_else(|e| e.into_inner());
        *last = (std::time::Instant::now(), note.into());
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shared.done.store(true, Ordering::SeqCst);
    }
}

/// A call on `backend` with two workers.
pub fn par(backend: &str) -> parjob::Parallel {
    parjob::Parallel::new().backend(backend).n_jobs(2)
}

/// `f(arg)` for every arg, as `Delayed::remote` tasks: they run in worker processes on the
/// process backends, on threads or the calling thread on the others.
pub fn run_on<A, R>(
    p: parjob::Parallel,
    f: fn(A) -> R,
    args: impl IntoIterator<Item = A>,
) -> Result<Vec<R>, parjob::Error>
where
    A: parjob::remote::Transferable,
    R: parjob::remote::Transferable,
{
    p.run(args.into_iter().map(|a| parjob::Delayed::remote(f, a)))
}
