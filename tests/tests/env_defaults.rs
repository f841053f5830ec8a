//! PARJOB_BACKEND and PARJOB_N_JOBS replace the root defaults; bad values are errors at
//! call time, never panics. Each case runs in a child process with its own environment.

use parjob::{Error, Parallel, get_active_backend};
use parjob_tests::{is_child, rerun_test};

#[test]
fn env_sets_the_root_backend_and_n_jobs() {
    if is_child() {
        let a = get_active_backend();
        assert_eq!((a.name(), a.n_jobs()), ("sequential", Some(3)));
        assert_eq!(Parallel::new().map(0..3, |i| i).unwrap(), [0, 1, 2]);
        return;
    }
    let (ok, out, err) = rerun_test(
        "env_sets_the_root_backend_and_n_jobs",
        &[("PARJOB_BACKEND", "sequential"), ("PARJOB_N_JOBS", "3")],
    );
    assert!(ok, "{out}\n{err}");
}

#[test]
fn bad_env_values_are_errors_at_call_time() {
    if is_child() {
        let r = Parallel::new().map(0..3, |i| i);
        match std::env::var("PARJOB_N_JOBS").as_deref() {
            Ok("zero") | Ok("0") => assert!(matches!(r, Err(Error::InvalidConfig { .. })), "{r:?}"),
            _ => match r {
                Err(e @ Error::UnknownBackend { .. }) => {
                    assert!(e.to_string().ends_with("; did you mean `loky`?"), "{e}")
                }
                other => panic!("expected UnknownBackend, got {other:?}"),
            },
        }
        // Scopes still work and replace the bad defaults.
        let ok = parjob::parallel_backend("threading")
            .n_jobs(2)
            .run(|| Parallel::new().map(0..3, |i| i))
            .unwrap();
        if std::env::var("PARJOB_N_JOBS").is_err() {
            assert_eq!(ok.unwrap(), [0, 1, 2]);
        }
        return;
    }
    for env in [
        [("PARJOB_N_JOBS", "zero"), ("PARJOB_BACKEND", "threading")],
        [("PARJOB_N_JOBS", "0"), ("PARJOB_BACKEND", "threading")],
        [("PARJOB_BACKEND", "lokyy"), ("PARJOB_UNUSED", "")],
    ] {
        let (ok, out, err) = rerun_test("bad_env_values_are_errors_at_call_time", &env);
        assert!(ok, "{env:?}\n{out}\n{err}");
    }
}

fn square(x: u64) -> u64 {
    x * x
}

/// Where a call cannot use its backend's processes, parjob runs it on threads; with
/// `PARJOB_STRICT=1` the call fails instead, saying which backend and why.
#[test]
fn parjob_strict_turns_a_fallback_to_threads_into_an_error() {
    if is_child() {
        let strict = std::env::var_os("PARJOB_STRICT").is_some();
        // A capture without serde cannot reach loky's workers.
        struct Opaque(u64);
        let opaque = Opaque(1);
        let r = parjob::parallel_backend("loky")
            .n_jobs(2)
            .run(|| parjob::parallel!(opaque.0 + x for x in 0..4u64))
            .unwrap();
        // loky cannot start workers inside a forked child of multiprocessing.
        let nested = parjob::parallel!("multiprocessing", n_jobs = 2;
            format!("{:?}", parjob::parallel!("loky", n_jobs = 2; square(y) for y in 0..4u64))
            for _x in 0..2)
        .unwrap();
        // A call that requires shared memory, under a scope whose workers lack it.
        let shared = parjob::parallel_backend("loky")
            .n_jobs(2)
            .run(|| {
                Parallel::new()
                    .require(parjob::Require::SharedMem)
                    .verbose(1)
                    .map(0..4u64, square)
            })
            .unwrap();
        if strict {
            match shared {
                Err(Error::WouldRunOnThreads { backend, reason }) => {
                    assert_eq!(backend, "loky");
                    assert!(reason.contains("`sharedmem`"), "{reason}");
                }
                other => panic!("expected WouldRunOnThreads, got {other:?}"),
            }
            match r {
                Err(Error::WouldRunOnThreads { backend, reason }) => {
                    assert_eq!(backend, "loky");
                    assert!(reason.contains("`opaque`"), "{reason}");
                }
                other => panic!("expected WouldRunOnThreads, got {other:?}"),
            }
            assert!(
                nested[0].contains("WouldRunOnThreads") && nested[0].contains("forked child"),
                "{}",
                nested[0]
            );
        } else {
            assert_eq!(r.unwrap(), [1, 2, 3, 4]);
            assert_eq!(shared.unwrap(), [0, 1, 4, 9]);
            assert_eq!(nested, ["Ok([0, 1, 4, 9])", "Ok([0, 1, 4, 9])"]);
        }
        return;
    }
    let (ok, out, err) = rerun_test(
        "parjob_strict_turns_a_fallback_to_threads_into_an_error",
        &[("PARJOB_STRICT", "1")],
    );
    assert!(ok, "strict:\n{out}\n{err}");
    let (ok, out, err) = rerun_test(
        "parjob_strict_turns_a_fallback_to_threads_into_an_error",
        &[],
    );
    assert!(ok, "not strict:\n{out}\n{err}");
    // At `verbose > 0`, the switch to threads is said on stderr, with its reason.
    assert!(
        err.contains("parjob: backend `loky` cannot run here (its workers do not share memory, and the call requires `sharedmem`); running the call on threads"),
        "{err}"
    );
}
