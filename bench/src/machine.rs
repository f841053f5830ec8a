//! The machine a run measured: the report's header.

/// What the report says about the machine and the software.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Cpus this process may use (affinity and cgroup quota), as parjob counts them.
    pub cores: usize,
    /// Cpus the kernel has online.
    pub online_cpus: usize,
    /// `MemTotal`, in GiB.
    pub memory_gib: f64,
    /// The kernel release.
    pub kernel: String,
    /// The compiler that built this binary.
    pub rustc: &'static str,
}

impl Machine {
    /// Reads the machine's description from `/proc`.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                let (key, value) = l.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_string())
            })
            .unwrap_or_else(|| "unknown cpu".into());
        // SAFETY: `sysconf` only reads a system value.
        let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpu_model,
            cores: parjob::cpu_count(),
            online_cpus: usize::try_from(online).unwrap_or(0),
            memory_gib: mem_kib / (1024.0 * 1024.0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            rustc: env!("PARJOB_BENCH_RUSTC"),
        }
    }
}
