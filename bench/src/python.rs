//! Python and joblib for the joblib rows: a venv under the target directory with joblib
//! installed by pip, made once and reused.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::system::System;
use crate::workload::Spec;

/// The joblib side of the protocol, written next to the venv's interpreter.
const SCRIPT: &str = include_str!("joblib_bench.py");

/// Environment variable naming an interpreter that already has joblib (skips the venv).
pub const PYTHON_ENV: &str = "PARJOB_BENCH_PYTHON";

/// A Python interpreter with joblib, and the script it runs.
#[derive(Debug, Clone)]
pub struct Python {
    /// The interpreter.
    pub interpreter: PathBuf,
    /// `joblib_bench.py`.
    pub script: PathBuf,
    /// `sys.version`, first word.
    pub version: String,
    /// `joblib.__version__`.
    pub joblib: String,
}

impl Python {
    /// Finds or makes the venv under `target_dir` and installs joblib and numpy into it. `Err` says,
    /// in one line, why the joblib rows cannot run.
    pub fn setup(target_dir: &Path, say: &dyn Fn(&str)) -> Result<Python, String> {
        let venv = target_dir.join("parjob-bench-venv");
        let interpreter = match std::env::var_os(PYTHON_ENV) {
            Some(p) => PathBuf::from(p),
            None => {
                let python = venv.join("bin").join("python");
                if versions(&python).is_err() {
                    make_venv(&venv, &python, say)?;
                }
                python
            }
        };
        let (version, joblib) = versions(&interpreter)?;
        std::fs::create_dir_all(&venv)
            .map_err(|e| format!("cannot create {}: {e}", venv.display()))?;
        let script = venv.join("joblib_bench.py");
        std::fs::write(&script, SCRIPT)
            .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
        Ok(Python {
            interpreter,
            script,
            version,
            joblib,
        })
    }

    /// The command that serves `system` (a joblib one) for `spec` with `jobs` workers.
    pub fn serve_command(&self, system: System, spec: &Spec, jobs: usize) -> Command {
        let mut cmd = Command::new(&self.interpreter);
        cmd.arg(&self.script)
            .arg("--serve")
            .arg(system.joblib_backend().unwrap_or("sequential"))
            .arg(spec.workload.id())
            .arg(spec.spin_us.to_string())
            .arg(jobs.to_string())
            // The workers' stdout is the protocol pipe: keep Python from buffering surprises.
            .env("PYTHONUNBUFFERED", "1");
        cmd
    }
}

fn make_venv(venv: &Path, python: &Path, say: &dyn Fn(&str)) -> Result<(), String> {
    let python3 = which("python3").ok_or("python3 not found on PATH")?;
    say(&format!(
        "making a Python venv in {} and installing joblib with pip",
        venv.display()
    ));
    let mut cmd = Command::new(python3);
    cmd.args(["-m", "venv"]).arg(venv);
    run_quietly(cmd, Duration::from_secs(120)).map_err(|e| {
        format!("`python3 -m venv` failed ({e}); on Debian, `apt-get install python3-venv`")
    })?;
    let mut pip = Command::new(python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "joblib",
        "numpy",
    ]);
    run_quietly(pip, Duration::from_secs(300))
        .map_err(|e| format!("`pip install joblib numpy` failed, offline? ({e})"))
}

/// `sys.version` and `joblib.__version__` of an interpreter.
fn versions(python: &Path) -> Result<(String, String), String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import sys, joblib, numpy; print(sys.version.split()[0], joblib.__version__)",
        ])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().collect::<Vec<_>>().as_slice() {
        [py, joblib] if out.status.success() => Ok((py.to_string(), joblib.to_string())),
        _ => Err(format!(
            "{} cannot import joblib and numpy",
            python.display()
        )),
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Runs `cmd` with its output captured, killing it after `limit`.
fn run_quietly(mut cmd: Command, limit: Duration) -> Result<(), String> {
    let log = std::env::temp_dir().join(format!("parjob-bench-setup-{}.log", std::process::id()));
    let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let file2 = file.try_clone().map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(file2)
        .spawn()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(&log);
            return Err(format!("gave up after {} s", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    if status.success() {
        Ok(())
    } else {
        let last = output.lines().last().unwrap_or("").trim().to_string();
        Err(format!("{status}: {last}"))
    }
}
