//! The systems the benchmark compares: plain Rust, rayon, `std::thread::scope`, parjob's
//! backends and joblib's.

use crate::workload::Workload;

/// One way of running a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum System {
    /// A plain `for` loop (an iterator `map` + `collect`) on one thread.
    SeqLoop,
    /// rayon: a pool of `jobs` threads, `par_iter().map().collect()`.
    Rayon,
    /// `std::thread::scope`: the input split into `jobs` equal chunks, a thread each.
    ThreadScope,
    /// parjob's `sequential` backend through `Parallel::map`.
    ParjobSequential,
    /// parjob's `threading` backend through `Parallel::map`.
    ParjobThreading,
    /// parjob's `threading` backend through the `parallel!` comprehension (not in the
    /// default set: the comparison of the two forms).
    ParjobThreadingMacro,
    /// parjob's `loky` backend through the `parallel!` comprehension: faster than
    /// `Delayed::remote` on W1 and W4, equal within noise elsewhere (`docs/PERFORMANCE.md`).
    ParjobLoky,
    /// parjob's `loky` backend through `Parallel::run` of `Delayed::remote` tasks (not in the
    /// default set).
    ParjobLokyDelayed,
    /// parjob's `multiprocessing` backend, when the runtime has it.
    ParjobMultiprocessing,
    /// parjob's `mpi` backend: needs the `mpi` feature and `mpirun`.
    ParjobMpi,
    /// joblib, `backend="sequential"`.
    JoblibSequential,
    /// joblib, `backend="threading"`.
    JoblibThreading,
    /// joblib, `backend="loky"`.
    JoblibLoky,
    /// joblib, `backend="multiprocessing"`.
    JoblibMultiprocessing,
}

/// Where a system runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// In a child process of this binary.
    Rust,
    /// In a child Python process running `joblib_bench.py`.
    Python,
}

impl System {
    /// Every system, in the order of the report.
    pub const ALL: [System; 14] = [
        System::SeqLoop,
        System::Rayon,
        System::ThreadScope,
        System::ParjobSequential,
        System::ParjobThreading,
        System::ParjobThreadingMacro,
        System::ParjobLoky,
        System::ParjobLokyDelayed,
        System::ParjobMultiprocessing,
        System::ParjobMpi,
        System::JoblibSequential,
        System::JoblibThreading,
        System::JoblibLoky,
        System::JoblibMultiprocessing,
    ];

    /// The name used with `--systems`, in the child protocol and in JSON.
    pub fn id(self) -> &'static str {
        match self {
            System::SeqLoop => "seq",
            System::Rayon => "rayon",
            System::ThreadScope => "scope",
            System::ParjobSequential => "parjob-sequential",
            System::ParjobThreading => "parjob-threading",
            System::ParjobThreadingMacro => "parjob-threading-macro",
            System::ParjobLoky => "parjob-loky",
            System::ParjobLokyDelayed => "parjob-loky-delayed",
            System::ParjobMultiprocessing => "parjob-multiprocessing",
            System::ParjobMpi => "parjob-mpi",
            System::JoblibSequential => "joblib-sequential",
            System::JoblibThreading => "joblib-threading",
            System::JoblibLoky => "joblib-loky",
            System::JoblibMultiprocessing => "joblib-multiprocessing",
        }
    }

    /// Parses [`id`](System::id).
    pub fn parse(s: &str) -> Option<System> {
        System::ALL.into_iter().find(|x| x.id() == s.trim())
    }

    /// The row label in the table.
    pub fn label(self) -> &'static str {
        match self {
            System::SeqLoop => "sequential loop",
            System::Rayon => "rayon",
            System::ThreadScope => "std::thread::scope",
            System::ParjobSequential => "parjob sequential",
            System::ParjobThreading => "parjob threading",
            System::ParjobThreadingMacro => "parjob threading (parallel!)",
            System::ParjobLoky => "parjob loky (parallel!)",
            System::ParjobLokyDelayed => "parjob loky (Delayed::remote)",
            System::ParjobMultiprocessing => "parjob multiprocessing",
            System::ParjobMpi => "parjob mpi",
            System::JoblibSequential => "joblib sequential",
            System::JoblibThreading => "joblib threading",
            System::JoblibLoky => "joblib loky",
            System::JoblibMultiprocessing => "joblib multiprocessing",
        }
    }

    /// Whether a run without `--systems` includes it.
    pub fn in_default_set(self) -> bool {
        !matches!(
            self,
            System::ParjobThreadingMacro | System::ParjobLokyDelayed
        )
    }

    /// Where it runs.
    pub fn kind(self) -> Kind {
        match self {
            System::JoblibSequential
            | System::JoblibThreading
            | System::JoblibLoky
            | System::JoblibMultiprocessing => Kind::Python,
            _ => Kind::Rust,
        }
    }

    /// The joblib backend name, for joblib systems.
    pub fn joblib_backend(self) -> Option<&'static str> {
        match self {
            System::JoblibSequential => Some("sequential"),
            System::JoblibThreading => Some("threading"),
            System::JoblibLoky => Some("loky"),
            System::JoblibMultiprocessing => Some("multiprocessing"),
            _ => None,
        }
    }

    /// The parjob backend name, for parjob systems.
    pub fn parjob_backend(self) -> Option<&'static str> {
        match self {
            System::ParjobSequential => Some("sequential"),
            System::ParjobThreading | System::ParjobThreadingMacro => Some("threading"),
            System::ParjobLoky | System::ParjobLokyDelayed => Some("loky"),
            System::ParjobMultiprocessing => Some("multiprocessing"),
            System::ParjobMpi => Some("mpi"),
            _ => None,
        }
    }

    /// The joblib system running the same backend as this parjob system.
    pub fn joblib_counterpart(self) -> Option<System> {
        let backend = self.parjob_backend()?;
        System::ALL
            .into_iter()
            .find(|s| s.joblib_backend() == Some(backend))
    }

    /// Whether its tasks run in other processes (so worker processes must show up).
    pub fn uses_processes(self) -> bool {
        matches!(
            self,
            System::ParjobLoky
                | System::ParjobLokyDelayed
                | System::ParjobMultiprocessing
                | System::JoblibLoky
                | System::JoblibMultiprocessing
        )
    }

    /// Whether the system takes part in `workload`. The round-trip probe is about handing
    /// single tasks to workers, so it runs on the pooled backends only.
    pub fn runs(self, workload: Workload) -> bool {
        match workload {
            Workload::Rt => matches!(
                self,
                System::ParjobThreading
                    | System::ParjobThreadingMacro
                    | System::ParjobLoky
                    | System::ParjobLokyDelayed
                    | System::ParjobMultiprocessing
                    | System::ParjobMpi
                    | System::JoblibThreading
                    | System::JoblibLoky
                    | System::JoblibMultiprocessing
            ),
            // Shared data is the comprehension's captures (or a `Shared` value): the
            // `Delayed::remote` form would copy it into every task.
            Workload::W6 | Workload::W7 => self != System::ParjobLokyDelayed,
            _ => true,
        }
    }

    /// Why the system cannot run in this build, if it cannot; the child process may still
    /// find out that it cannot (a backend the runtime does not register).
    pub fn unavailable(self) -> Option<&'static str> {
        match self {
            System::ParjobMpi if !cfg!(feature = "mpi") => Some(
                "not available: build the bench with `--features mpi` (it needs an MPI library and mpirun)",
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        for s in System::ALL {
            assert_eq!(System::parse(s.id()), Some(s));
        }
        let mut ids: Vec<_> = System::ALL.iter().map(|s| s.id()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), System::ALL.len());
    }

    #[test]
    fn parjob_backends_pair_with_joblib_ones() {
        assert_eq!(
            System::ParjobLoky.joblib_counterpart(),
            Some(System::JoblibLoky)
        );
        assert_eq!(
            System::ParjobSequential.joblib_counterpart(),
            Some(System::JoblibSequential)
        );
        assert_eq!(System::ParjobMpi.joblib_counterpart(), None);
        assert_eq!(System::Rayon.joblib_counterpart(), None);
    }
}
