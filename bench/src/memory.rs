//! Peak resident memory of a system's process and of the worker processes it started, read
//! from `/proc` (Linux).

use std::collections::HashMap;

/// Peak resident set sizes, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// `VmHWM` of the process that drives the system (where the caller's code runs).
    pub driver_kib: u64,
    /// Sum of `VmHWM` over its descendants still alive when it was read (worker processes,
    /// and for joblib also loky's resource tracker), or the largest `ru_maxrss` of reaped
    /// children when no descendant was alive.
    pub workers_kib: u64,
    /// How many descendant processes were alive (their memory readable).
    pub workers: usize,
}

/// Reads the peak memory of `pid` and its live descendants. `reaped_max_kib` is the child's
/// own `getrusage(RUSAGE_CHILDREN).ru_maxrss`: the largest child it already waited for.
pub fn of_tree(pid: u32, reaped_max_kib: u64) -> Memory {
    // A process that has ended but is not reaped yet (a forked child on its way out) has
    // no memory left to read: only the others count.
    let alive: Vec<u64> = descendants(pid)
        .iter()
        .filter_map(|&p| vm_hwm_kib(p))
        .collect();
    Memory {
        driver_kib: vm_hwm_kib(pid).unwrap_or(0),
        workers_kib: if alive.is_empty() {
            reaped_max_kib
        } else {
            alive.iter().sum()
        },
        workers: alive.len(),
    }
}

/// `VmHWM` of a process, in KiB.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field_kib(&status, "VmHWM:")
}

fn status_field_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// Every live process below `root`, from the parent links in `/proc/*/stat`.
fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = parent_of(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        if let Some(kids) = children.get(&p) {
            out.extend(kids);
            todo.extend(kids);
        }
    }
    out
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_ppid(&stat)
}

/// The fourth field of `/proc/PID/stat`, after the command name in parentheses (which may
/// itself contain spaces and parentheses).
fn parse_ppid(stat: &str) -> Option<u32> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// This process's own peak and its reaped children's largest peak, in KiB.
pub fn own_and_reaped_kib() -> (u64, u64) {
    let own = vm_hwm_kib(std::process::id()).unwrap_or(0);
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` points to writable memory for one `rusage`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    let reaped = if rc == 0 {
        // SAFETY: `getrusage` succeeded, so it filled the struct (which was zeroed anyway).
        let usage = unsafe { usage.assume_init() };
        u64::try_from(usage.ru_maxrss).unwrap_or(0)
    } else {
        0
    };
    (own, reaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_survives_odd_command_names() {
        assert_eq!(parse_ppid("42 (a b) c) S 7 42 42 0"), Some(7));
        assert_eq!(parse_ppid("1 (init) S 0 1 1"), Some(0));
    }

    #[test]
    fn reads_its_own_peak() {
        let status = "Name:\tx\nVmHWM:\t  1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(status_field_kib(status, "VmHWM:"), Some(1234));
        assert!(vm_hwm_kib(std::process::id()).unwrap_or(0) > 0);
    }
}
