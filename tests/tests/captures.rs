//! Comprehension bodies that use the caller's variables: the variables travel to worker
//! processes once per call and worker, with the types they have in the caller.

use parjob::{Parallel, parallel, parallel_backend};

/// What a task saw: where it ran, and what it computed from the captures.
type Seen = (u32, f64, usize, i64);

fn score(data: &[f64], label: &str, offset: i64, i: u32) -> Seen {
    let sum: f64 = data.iter().map(|x| x * f64::from(i)).sum();
    (std::process::id(), sum, label.len(), offset + i64::from(i))
}

/// Library code: no backend argument, captures of three kinds.
fn library(data: &[f64], label: &str, offset: i64) -> Result<Vec<Seen>, parjob::Error> {
    parallel!(score(data, label, offset, i) for i in 0..12u32)
}

fn without_pids(seen: &[Seen]) -> Vec<(f64, usize, i64)> {
    seen.iter().map(|&(_, s, l, o)| (s, l, o)).collect()
}

// The loky tests share the process-wide pool: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_library_comprehension_with_captures_runs_in_loky_workers() {
    let _serial = serial();
    let data: Vec<f64> = (0..1000).map(f64::from).collect();
    let label = String::from("grid");
    let threads = parallel_backend("threading")
        .n_jobs(2)
        .run(|| library(&data, &label, 7))
        .unwrap()
        .unwrap();
    let loky = parallel_backend("loky")
        .n_jobs(2)
        .run(|| library(&data, &label, 7))
        .unwrap()
        .unwrap();
    assert_eq!(without_pids(&loky), without_pids(&threads));
    let me = std::process::id();
    assert!(threads.iter().all(|s| s.0 == me));
    assert!(
        loky.iter().all(|s| s.0 != me),
        "tasks ran in worker processes"
    );
}

fn kept(_: u32) -> (usize, u64) {
    parjob::__private::kept_shared()
}

#[test]
fn captures_reach_a_worker_once_per_call() {
    let _serial = serial();
    let data: Vec<f64> = vec![1.5; 4096];
    let p = || Parallel::new().backend("loky").n_jobs(2).batch_size(1);
    let census = || {
        p().run((0..8u32).map(|i| parjob::Delayed::remote(kept, i)))
            .unwrap()
    };
    let before: u64 = census().iter().map(|k| k.1).max().unwrap_or(0);
    let scope = parallel_backend("loky").n_jobs(2).enter().unwrap();
    let data_ref = &data[..];
    let out = parallel!(batch_size = 1; (data_ref.len(), kept(i)) for i in 0..16u32).unwrap();
    drop(scope);
    for (len, (held, received)) in &out {
        assert_eq!(*len, 4096);
        // One call: its captures are the one value each worker keeps, sent once.
        assert_eq!(*held, 1);
        assert!(
            *received <= before + 1,
            "sent more than once: {received} after {before}"
        );
    }
    // After the call, workers let go of its captures.
    let after = census();
    assert!(after.iter().all(|k| k.0 == 0), "{after:?}");
}

/// Where a task ran, how many attachments that worker was sent in all, and what it read.
fn sum_seen(data: &[f64], i: u32) -> (u32, u64, f64) {
    let received = parjob::__private::kept_shared().1;
    let sum: f64 = data.iter().sum();
    (std::process::id(), received, sum + f64::from(i))
}

fn sums(data: &[f64]) -> Vec<(u32, u64, f64)> {
    parallel!("loky", n_jobs = 2, batch_size = 1; sum_seen(data, i) for i in 0..8u32).unwrap()
}

#[test]
fn back_to_back_calls_over_the_same_large_captures_send_them_once() {
    let _serial = serial();
    // 2 MiB: large captures, which travel as a memory file.
    let mut data: Vec<f64> = (0..262_144).map(|i| f64::from(i % 1000)).collect();
    let check = |out: &[(u32, u64, f64)], data: &[f64]| {
        let sum: f64 = data.iter().sum();
        for (i, &(_, _, seen)) in out.iter().enumerate() {
            assert_eq!(seen, sum + i as f64);
        }
    };
    let first = sums(&data);
    check(&first, &data);
    let received_after = |out: &[(u32, u64, f64)]| {
        let mut by_pid = std::collections::HashMap::new();
        for &(pid, received, _) in out {
            let r = by_pid.entry(pid).or_insert(0);
            *r = received.max(*r);
        }
        by_pid
    };
    let before = received_after(&first);
    // The same values again: workers that have them get nothing new.
    let second = sums(&data);
    check(&second, &data);
    let mut reused = 0;
    for &(pid, received, _) in &second {
        if let Some(&had) = before.get(&pid) {
            assert_eq!(received, had, "worker {pid} was sent the captures again");
            reused += 1;
        }
    }
    assert!(
        reused > 0,
        "no task of the second call ran in a worker of the first"
    );
    // Changed in place, even by one value: sent again, and read as they are now.
    let last = data.len() - 1;
    data[last] += 1.0;
    let third = sums(&data);
    check(&third, &data);
    for &(pid, received, _) in &third {
        if let Some(&had) = before.get(&pid) {
            assert!(received > had, "worker {pid} was not sent the new captures");
        }
    }
    // Unused for a while, they are let go of: by the caller, and by idle workers.
    let census = || {
        Parallel::new()
            .backend("loky")
            .n_jobs(2)
            .batch_size(1)
            .run((0..8u32).map(|i| parjob::Delayed::remote(kept, i)))
            .unwrap()
    };
    let start = std::time::Instant::now();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let held = census();
        if held.iter().all(|k| k.0 == 0) {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "workers still hold the captures: {held:?}"
        );
    }
}

#[test]
fn conditions_and_nested_closures_see_the_captures() {
    let _serial = serial();
    let threshold = 5u64;
    let factor = 3u64;
    let words = vec!["a".to_string(), "bb".to_string()];
    let expected: Vec<u64> = (0..20u64)
        .filter(|x| x % threshold != 0)
        .map(|x| (0..x).map(|y| y * factor).sum::<u64>() + words.len() as u64)
        .collect();
    for backend in ["sequential", "threading", "loky", "multiprocessing"] {
        let _scope = parallel_backend(backend).n_jobs(2).enter().unwrap();
        let out = parallel!(
            (0..x).map(|y| y * factor).sum::<u64>() + words.len() as u64
            for x in 0..20u64 if x % threshold != 0
        )
        .unwrap();
        assert_eq!(out, expected, "{backend}");
    }
}

#[test]
fn a_function_named_as_a_value_and_a_struct_shorthand_travel() {
    let _serial = serial();
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Row {
        scale: f64,
        value: f64,
    }
    fn double(x: f64) -> f64 {
        x * 2.0
    }
    let scale = 0.5;
    let _scope = parallel_backend("loky").n_jobs(2).enter().unwrap();
    let out = parallel!(
        Row { scale, value: [f64::from(i)].map(double)[0] * scale }
        for i in 0..4u32
    )
    .unwrap();
    let want: Vec<Row> = (0..4u32)
        .map(|i| Row {
            scale,
            value: f64::from(i) * 2.0 * scale,
        })
        .collect();
    assert_eq!(out, want);
}

#[test]
fn a_capture_that_cannot_travel_keeps_the_call_on_threads() {
    let _serial = serial();
    // No serde: the call runs on threads, with the same results.
    struct Opaque(u64);
    let opaque = Opaque(40);
    let _scope = parallel_backend("loky").n_jobs(2).enter().unwrap();
    let me = std::process::id();
    let out = parallel!((opaque.0 + u64::from(i), std::process::id()) for i in 0..4u32).unwrap();
    assert_eq!(
        out.iter().map(|o| o.0).collect::<Vec<_>>(),
        [40, 41, 42, 43]
    );
    assert!(out.iter().all(|o| o.1 == me));
}

#[parjob::parallel_backend("loky", n_jobs = 2)]
fn named_loky(data: &[f64], offset: i64) -> Result<Vec<(u32, f64)>, parjob::Error> {
    parallel!((std::process::id(), data[i] + offset as f64) for i in 0..data.len())
}

#[test]
fn a_process_backend_named_at_compile_time_takes_captures() {
    let _serial = serial();
    let data = [1.0, 2.0, 3.0];
    let out = named_loky(&data, 10).unwrap();
    assert_eq!(
        out.iter().map(|o| o.1).collect::<Vec<_>>(),
        [11.0, 12.0, 13.0]
    );
    assert!(out.iter().all(|o| o.0 != std::process::id()));
}

#[test]
fn at_verbose_one_a_fallback_names_the_capture_that_cannot_travel() {
    if !parjob_tests::is_child() {
        let (ok, _, stderr) = parjob_tests::rerun_test(
            "at_verbose_one_a_fallback_names_the_capture_that_cannot_travel",
            &[],
        );
        assert!(ok, "{stderr}");
        assert!(
            stderr.contains("`opaque` (a `") && stderr.contains("running them on threads"),
            "stderr: {stderr}"
        );
        // The progress output names the backend that ran the tasks.
        assert!(
            stderr.contains("Using backend threading with 2 concurrent workers."),
            "stderr: {stderr}"
        );
        return;
    }
    struct Opaque(u64);
    let opaque = Opaque(1);
    let _scope = parallel_backend("loky")
        .n_jobs(2)
        .verbose(1)
        .enter()
        .unwrap();
    let out = parallel!(opaque.0 + x for x in 0..4u64).unwrap();
    assert_eq!(out, [1, 2, 3, 4]);
}

static ENCODED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A captured value that counts how often it is encoded.
#[derive(serde::Deserialize)]
struct Counted(Vec<u64>);

impl serde::Serialize for Counted {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ENCODED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.0.serialize(s)
    }
}

fn nth(values: &Counted, i: usize) -> u64 {
    values.0[i]
}

fn library_nth(values: &Counted) -> Result<Vec<u64>, parjob::Error> {
    parallel!(nth(values, i) for i in 0..4usize)
}

#[test]
fn captures_are_encoded_only_for_calls_that_go_to_worker_processes() {
    let _serial = serial();
    let values = Counted(vec![5, 6, 7, 8]);
    ENCODED.store(0, std::sync::atomic::Ordering::SeqCst);
    for backend in ["threading", "sequential", "multiprocessing"] {
        let out = parallel_backend(backend)
            .n_jobs(2)
            .run(|| library_nth(&values))
            .unwrap()
            .unwrap();
        assert_eq!(out, [5, 6, 7, 8], "{backend}");
    }
    // Threads and forked children use the caller's value as it is.
    assert_eq!(ENCODED.load(std::sync::atomic::Ordering::SeqCst), 0);
    let out = parallel_backend("loky")
        .n_jobs(2)
        .run(|| library_nth(&values))
        .unwrap()
        .unwrap();
    assert_eq!(out, [5, 6, 7, 8]);
    // Once per call, whatever the number of workers and batches.
    assert_eq!(ENCODED.load(std::sync::atomic::Ordering::SeqCst), 1);
}

fn weighted(
    label: &str,
    data: &[f64],
    tail: &[u32],
    scale: i64,
    i: usize,
) -> (usize, f64, u32, i64) {
    (label.len(), data[i * 1000], tail[i], scale * i as i64)
}

fn library_large(
    label: &str,
    data: &[f64],
    tail: &[u32],
    scale: i64,
) -> Result<Vec<(usize, f64, u32, i64)>, parjob::Error> {
    parallel!(weighted(label, data, tail, scale, i) for i in 0..16usize)
}

#[test]
fn a_large_captured_slice_among_small_captures_reaches_workers_whole_and_in_order() {
    let _serial = serial();
    // 2 MiB of numbers between two other captures: written straight to a memory file
    // after the encoding of the first, followed by the others.
    let data: Vec<f64> = (0..262_144).map(f64::from).collect();
    let tail: Vec<u32> = (100..116).collect();
    let run = |backend: &str| {
        parallel_backend(backend)
            .n_jobs(2)
            .run(|| library_large("large", &data, &tail, -3))
            .unwrap()
            .unwrap()
    };
    let expected: Vec<(usize, f64, u32, i64)> = (0..16)
        .map(|i| (5, (i * 1000) as f64, 100 + i as u32, -3 * i as i64))
        .collect();
    assert_eq!(run("threading"), expected);
    assert_eq!(run("loky"), expected);
    let pids = parallel_backend("loky")
        .n_jobs(2)
        .run(|| parallel!(score(&data, "large", 0, i) for i in 0..4u32))
        .unwrap()
        .unwrap();
    assert!(pids.iter().all(|s| s.0 != std::process::id()), "{pids:?}");
}
