//! How many cpus this process may use.

use std::path::Path;
use std::sync::OnceLock;

/// The number of cpus this process may run on: the smallest of the cpus online, the
/// process's affinity mask and its cgroup cpu quota (v1 or v2, rounded up: a quota of 1.5
/// cpus counts as 2). Never 0.
///
/// The value is read once per process.
///
/// # Examples
///
/// ```
/// let n = parjob::cpu_count();
/// assert!(n >= 1);
/// ```
pub fn cpu_count() -> usize {
    static CPUS: OnceLock<usize> = OnceLock::new();
    *CPUS.get_or_init(detect_cpu_count)
}

fn detect_cpu_count() -> usize {
    count_from(&Sources {
        online: online_cpus(),
        affinity: affinity_cpus(),
        membership: Path::new("/proc/self/cgroup"),
        cgroup_root: Path::new("/sys/fs/cgroup"),
    })
}

/// What the count is made of: the figures of this system, or those a test makes up.
struct Sources<'a> {
    online: usize,
    affinity: Option<usize>,
    /// The process's `/proc/self/cgroup`.
    membership: &'a Path,
    /// Where the cgroup hierarchies are mounted.
    cgroup_root: &'a Path,
}

fn count_from(sources: &Sources<'_>) -> usize {
    let online = sources.online.max(1);
    let mut n = sources.affinity.map_or(online, |a| a.min(online));
    if let Some(quota) = cgroup_quota_cpus(sources.membership, sources.cgroup_root) {
        n = n.min(quota);
    }
    n.max(1)
}

/// The cpus online, without any quota applied (`available_parallelism` applies the cgroup
/// quota itself, rounded down, which would undo the rounding up here).
#[cfg(unix)]
fn online_cpus() -> usize {
    // SAFETY: `sysconf` with a valid name has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n)
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[cfg(not(unix))]
fn online_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(target_os = "linux")]
fn affinity_cpus() -> Option<usize> {
    // SAFETY: `cpu_set_t` is plain data for which all-zero is a valid (empty) set, and
    // `sched_getaffinity` writes at most `size_of::<cpu_set_t>()` bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        let n = libc::CPU_COUNT(&set);
        usize::try_from(n).ok().filter(|&n| n > 0)
    }
}

#[cfg(not(target_os = "linux"))]
fn affinity_cpus() -> Option<usize> {
    None
}

/// The cpu quota of this process's cgroup and of every ancestor, the tightest one, in whole
/// cpus rounded up.
fn cgroup_quota_cpus(membership: &Path, root: &Path) -> Option<usize> {
    let membership = std::fs::read_to_string(membership).ok()?;
    let root = root.to_str()?;
    let mut best: Option<usize> = None;
    let mut keep = |q: Option<usize>| {
        if let Some(q) = q {
            best = Some(best.map_or(q, |b| b.min(q)));
        }
    };
    for line in membership.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            // cgroup v2: one unified hierarchy.
            for dir in ancestors(root, path) {
                keep(
                    std::fs::read_to_string(format!("{dir}/cpu.max"))
                        .ok()
                        .and_then(|s| parse_cpu_max(&s)),
                );
            }
        } else if controllers.split(',').any(|c| c == "cpu") {
            for hierarchy in ["cpu,cpuacct", "cpu"] {
                for dir in ancestors(&format!("{root}/{hierarchy}"), path) {
                    let quota = std::fs::read_to_string(format!("{dir}/cpu.cfs_quota_us"));
                    let period = std::fs::read_to_string(format!("{dir}/cpu.cfs_period_us"));
                    if let (Ok(q), Ok(p)) = (quota, period) {
                        keep(parse_cfs_quota(&q, &p));
                    }
                }
            }
        }
    }
    best
}

/// `root/path`, then each parent of it up to `root`. Inside a container the process's own
/// path is often not visible and only the root holds the quota, so every level is read.
fn ancestors(root: &str, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut p = path.trim_end_matches('/').to_owned();
    loop {
        out.push(format!("{root}{p}"));
        match p.rfind('/') {
            Some(i) if !p.is_empty() => p.truncate(i),
            _ => break,
        }
    }
    if out.last().map(String::as_str) != Some(root) {
        out.push(root.to_owned());
    }
    out
}

/// Parses cgroup v2 `cpu.max` ("max 100000" or "150000 100000").
pub(crate) fn parse_cpu_max(text: &str) -> Option<usize> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    let period = fields.next().unwrap_or("100000");
    if quota == "max" {
        return None;
    }
    quota_to_cpus(quota.parse().ok()?, period.parse().ok()?)
}

/// Parses cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` (-1 quota: no limit).
pub(crate) fn parse_cfs_quota(quota: &str, period: &str) -> Option<usize> {
    quota_to_cpus(quota.trim().parse().ok()?, period.trim().parse().ok()?)
}

fn quota_to_cpus(quota: i64, period: i64) -> Option<usize> {
    if quota <= 0 || period <= 0 {
        return None;
    }
    let cpus = (quota + period - 1) / period;
    usize::try_from(cpus.max(1)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_rounds_up_and_reads_max_as_unlimited() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(2));
        assert_eq!(parse_cpu_max("200000 100000"), Some(2));
        assert_eq!(parse_cpu_max("50000 100000"), Some(1));
        assert_eq!(parse_cpu_max("100000"), Some(1));
        assert_eq!(parse_cpu_max(""), None);
        assert_eq!(parse_cpu_max("garbage 1"), None);
    }

    #[test]
    fn cfs_quota_minus_one_is_unlimited() {
        assert_eq!(parse_cfs_quota("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs_quota("250000\n", "100000\n"), Some(3));
        assert_eq!(parse_cfs_quota("100000", "0"), None);
    }

    #[test]
    fn ancestors_walk_up_to_the_root() {
        assert_eq!(
            ancestors("/sys/fs/cgroup", "/a/b"),
            ["/sys/fs/cgroup/a/b", "/sys/fs/cgroup/a", "/sys/fs/cgroup"]
        );
        assert_eq!(ancestors("/sys/fs/cgroup", "/"), ["/sys/fs/cgroup"]);
    }

    /// A made-up system: `membership` as `/proc/self/cgroup`, and `files` (path relative to
    /// the cgroup root, contents) below a fresh root.
    fn count_with(
        online: usize,
        affinity: Option<usize>,
        membership: &str,
        files: &[(&str, &str)],
    ) -> usize {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "parjob-cpu-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let root = dir.join("cgroup");
        for (path, contents) in files {
            let file = root.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, contents).unwrap();
        }
        std::fs::create_dir_all(&root).unwrap();
        let cgroup = dir.join("self-cgroup");
        std::fs::write(&cgroup, membership).unwrap();
        let n = count_from(&Sources {
            online,
            affinity,
            membership: &cgroup,
            cgroup_root: &root,
        });
        std::fs::remove_dir_all(&dir).unwrap();
        n
    }

    #[test]
    fn a_fractional_cgroup_v2_quota_rounds_up() {
        let v2 = "0::/app/job\n";
        // 1.5 cpus on the process's own cgroup: 2.
        assert_eq!(
            count_with(4, None, v2, &[("app/job/cpu.max", "150000 100000")]),
            2
        );
        // The tightest level wins, at any depth; "max" is no limit.
        let files = [
            ("app/job/cpu.max", "max 100000"),
            ("app/cpu.max", "250000 100000"),
            ("cpu.max", "max 100000"),
        ];
        assert_eq!(count_with(8, None, v2, &files), 3);
        // Never more than the cpus online or the affinity mask allows.
        assert_eq!(count_with(2, None, v2, &files), 2);
        assert_eq!(count_with(8, Some(1), v2, &files), 1);
        // A quota below one cpu still counts one.
        assert_eq!(count_with(8, None, v2, &[("cpu.max", "20000 100000")]), 1);
    }

    #[test]
    fn a_cgroup_v1_quota_counts_and_minus_one_is_no_limit() {
        let v1 = "5:cpu,cpuacct:/svc\n3:memory:/svc\n";
        let quota = [
            ("cpu,cpuacct/svc/cpu.cfs_quota_us", "150000\n"),
            ("cpu,cpuacct/svc/cpu.cfs_period_us", "100000\n"),
        ];
        assert_eq!(count_with(4, None, v1, &quota), 2);
        let unlimited = [
            ("cpu,cpuacct/svc/cpu.cfs_quota_us", "-1\n"),
            ("cpu,cpuacct/svc/cpu.cfs_period_us", "100000\n"),
        ];
        assert_eq!(count_with(4, Some(3), v1, &unlimited), 3);
    }

    #[test]
    fn without_cgroup_files_the_online_cpus_and_affinity_decide() {
        assert_eq!(count_with(6, None, "", &[]), 6);
        assert_eq!(count_with(6, Some(2), "0::/\n", &[]), 2);
        assert_eq!(count_with(0, None, "", &[]), 1);
    }
}
