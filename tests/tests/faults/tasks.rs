//! The tasks of the fault matrix, no fault of their own: plain functions with serde
//! arguments and results, so that the same task travels to worker processes on `loky` and
//! `multiprocessing` and runs on threads or on the calling thread elsewhere. Each fault
//! family's module calls the ones that make its fault (panic, `Err`, sleep, death, a
//! result that will not serialise, a flood, an allocation without end, marker files).

use serde::{Deserialize, Serialize, Serializer};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

pub(crate) fn square(x: u64) -> u64 {
    x * x
}

pub(crate) fn pid(_: u32) -> u32 {
    std::process::id()
}

pub(crate) fn panics_on_three(x: u32) -> u32 {
    assert!(x != 3, "three is not welcome");
    x
}

pub(crate) fn checked(x: u32) -> Result<u32, String> {
    if x == 6 {
        Err("six is refused".into())
    } else {
        Ok(x)
    }
}

pub(crate) fn checked_pid(x: u32) -> Result<u32, String> {
    if x == 6 {
        Err("six is refused".into())
    } else {
        Ok(std::process::id())
    }
}

pub(crate) fn sleeps(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// How [`dies`] ends its process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Death {
    Kill,
    Abort,
    Exit3,
}

/// Ends its process at item 2.
pub(crate) fn dies((how, x): (Death, u32)) -> u32 {
    if x == 2 {
        match how {
            Death::Kill => {
                // SAFETY: `raise` takes a plain signal number; SIGKILL ends this process.
                unsafe { libc::raise(libc::SIGKILL) };
            }
            Death::Abort => std::process::abort(),
            Death::Exit3 => std::process::exit(3),
        }
        // SIGKILL is delivered before `raise` returns; never reached.
        std::thread::sleep(Duration::from_secs(10));
    }
    x
}

/// A value whose serialisation fails for 2.
#[derive(Debug, PartialEq, Eq, Deserialize)]
pub(crate) struct Unserialisable(pub(crate) u32);

impl Serialize for Unserialisable {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 2 {
            Err(serde::ser::Error::custom(
                "Unserialisable(2) refuses to serialise",
            ))
        } else {
            s.serialize_u32(self.0)
        }
    }
}

pub(crate) fn make_unserialisable(x: u32) -> Unserialisable {
    Unserialisable(x)
}

/// Bytes each flooding task writes to stdout, and again to stderr.
pub(crate) const FLOOD: usize = 1 << 20;

pub(crate) fn flood(x: u32) -> u32 {
    let line = format!("flood {x} {}\n", "x".repeat(100));
    let text = line.repeat(FLOOD / line.len() + 1);
    std::io::stdout().write_all(text.as_bytes()).unwrap();
    std::io::stderr().write_all(text.as_bytes()).unwrap();
    std::io::stdout().flush().unwrap();
    x
}

/// Announces its process on stdout, then sleeps.
pub(crate) fn announce_and_sleep(ms: u64) -> u32 {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "TASK-PID {}", std::process::id());
    let _ = out.flush();
    drop(out);
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// Reserves address space 64 MiB at a time until the allocator fails (Rust then aborts
/// with "memory allocation of N bytes failed"). Returns only without a limit.
pub(crate) fn hog(x: u32) -> u32 {
    if x == 1 {
        let mut held: Vec<Vec<u8>> = Vec::new();
        for _ in 0..(1usize << 14) {
            held.push(Vec::with_capacity(64 << 20));
            std::hint::black_box(&held);
        }
    }
    x
}

/// Marks its start and its end with files in `dir`, sleeping `ms` between them.
pub(crate) fn marked((dir, i, ms): (String, u32, u64)) -> u32 {
    let dir = Path::new(&dir);
    let _ = std::fs::write(dir.join(format!("start-{i}")), b"");
    std::thread::sleep(Duration::from_millis(ms));
    let _ = std::fs::write(dir.join(format!("end-{i}")), b"");
    i
}
