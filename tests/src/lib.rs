//! Helpers shared by the behaviour tests of parjob.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

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
