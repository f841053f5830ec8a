//! `Shared<T>`: one value for many tasks and calls. On threads it is an `Arc`; worker
//! processes receive it once, keep it across calls, and drop it once the caller does.

use std::collections::HashMap;
use std::time::Duration;

use parjob::{Delayed, Parallel, Shared, delayed};

/// What a task saw in the process that ran it.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Seen {
    pid: u32,
    sum: f64,
    /// `Shared` values the process keeps for its parent now.
    kept: usize,
    /// `Shared` values its parent sent it, in all.
    received: u64,
}

fn look(data: Shared<Vec<f64>>, scale: f64) -> Seen {
    let (kept, received) = parjob::__private::kept_shared();
    Seen {
        pid: std::process::id(),
        sum: data.iter().sum::<f64>() * scale,
        kept,
        received,
    }
}

fn count(_: u32) -> Seen {
    let (kept, received) = parjob::__private::kept_shared();
    Seen {
        pid: std::process::id(),
        sum: 0.0,
        kept,
        received,
    }
}

fn loky() -> Parallel {
    Parallel::new().backend("loky").n_jobs(2).batch_size(1)
}

/// The loky workers' replies to `n` tasks that only report what they keep.
fn census(n: u32) -> Vec<Seen> {
    loky()
        .run((0..n).map(|i| Delayed::remote(count, i)))
        .unwrap()
}

// The tests of this file share the process-wide loky pool: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn on_threads_a_shared_value_is_the_callers_own() {
    let data = Shared::new(vec![1.0, 2.0, 3.0]);
    let same = Parallel::new()
        .backend("threading")
        .n_jobs(2)
        .map(0..4, |_| {
            Shared::ptr_eq(&data, &data.clone()) && data.len() == 3
        })
        .unwrap();
    assert_eq!(same, [true; 4]);
}

#[test]
fn a_worker_receives_a_shared_value_once_across_calls() {
    let _serial = serial();
    // Workers left over from other tests start from what they already received.
    let before: HashMap<u32, u64> = census(8).iter().map(|s| (s.pid, s.received)).collect();
    let data = Shared::new((0..1 << 17).map(f64::from).collect::<Vec<f64>>());
    let total: f64 = data.iter().sum();
    let mut seen = Vec::new();
    for call in 0..3 {
        let scales = (0..8).map(|i| f64::from(call * 8 + i));
        let out = loky()
            .run(scales.clone().map(|s| delayed!(look(data.clone(), s))))
            .unwrap();
        for (s, scale) in out.iter().zip(scales) {
            assert_eq!(s.sum, total * scale);
        }
        seen.extend(out);
    }
    let me = std::process::id();
    assert!(
        seen.iter().all(|s| s.pid != me),
        "tasks ran in worker processes"
    );
    for s in &seen {
        // Each worker got the value once, whatever number of batches and calls it ran.
        let earlier = before.get(&s.pid).copied().unwrap_or(0);
        assert_eq!(s.received, earlier + 1, "{s:?}");
        assert_eq!(s.kept, 1, "{s:?}");
    }
}

#[test]
fn workers_drop_a_value_once_the_caller_does() {
    let _serial = serial();
    let data = Shared::new(vec![1.0; 1000]);
    let out = loky()
        .run((0..6).map(|i| delayed!(look(data.clone(), f64::from(i)))))
        .unwrap();
    assert!(out.iter().all(|s| s.kept >= 1));
    drop(data);
    // The next batch a worker runs is preceded by the word to forget.
    let after = census(8);
    assert!(after.iter().all(|s| s.kept == 0), "{after:?}");
}

#[test]
fn shared_values_work_as_items_and_inside_items() {
    let _serial = serial();
    fn total((data, k): (Shared<Vec<f64>>, usize)) -> f64 {
        data[..k].iter().sum()
    }
    let data = Shared::new(vec![1.0, 2.0, 4.0, 8.0]);
    let items: Vec<(Shared<Vec<f64>>, usize)> = (1..=4).map(|k| (data.clone(), k)).collect();
    for backend in ["sequential", "threading", "loky", "multiprocessing"] {
        let p = Parallel::new().backend(backend).n_jobs(2).batch_size(1);
        let out = p
            .run(
                items
                    .iter()
                    .cloned()
                    .map(|item| Delayed::remote(total, item)),
            )
            .unwrap();
        assert_eq!(out, [1.0, 3.0, 7.0, 15.0], "{backend}");
    }
}

#[test]
fn a_shared_value_serialised_elsewhere_carries_its_value() {
    // Outside a batch (here postcard for a file or a socket), the value goes inline.
    let data = Shared::new(String::from("hello"));
    let bytes = postcard::to_allocvec(&data).unwrap();
    let back: Shared<String> = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(*back, "hello");
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[test]
fn worker_memory_stays_flat_over_many_fresh_values() {
    let _serial = serial();
    let calls: usize = std::env::var("PARJOB_SHARED_SOAK_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let one_call = |seed: usize| {
        // 1 MiB, fresh each call.
        let data = Shared::new(vec![seed as f64; 1 << 17]);
        loky()
            .run((0..4).map(|i| delayed!(look(data.clone(), f64::from(i)))))
            .unwrap()
    };
    // Warm up: workers started, allocator pools grown.
    for seed in 0..20 {
        one_call(seed);
    }
    let pids: Vec<u32> = one_call(0).iter().map(|s| s.pid).collect();
    let first: HashMap<u32, u64> = pids
        .iter()
        .filter_map(|&p| Some((p, rss_kib(p)?)))
        .collect();
    let mut last = Vec::new();
    for seed in 0..calls {
        last = one_call(seed);
    }
    // Each worker keeps at most the value of the last call it ran.
    assert!(last.iter().all(|s| s.kept <= 1), "{last:?}");
    std::thread::sleep(Duration::from_millis(50));
    for (pid, before) in first {
        let Some(after) = rss_kib(pid) else { continue };
        eprintln!("worker {pid}: {before} KiB after warm-up, {after} KiB after {calls} calls");
        // ±10 %, and at least a couple of MiB for the allocator's own slack.
        let slack = (before / 10).max(2048);
        assert!(
            after <= before + slack,
            "worker {pid} grew from {before} KiB to {after} KiB over {calls} calls"
        );
    }
}

/// The path of the file mapped at `addr` in this process, from `/proc/self/maps`: `None` for
/// anonymous memory.
fn mapped_file_at(addr: usize) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (start, end) = fields.next()?.split_once('-')?;
        let (start, end) = (
            usize::from_str_radix(start, 16).ok()?,
            usize::from_str_radix(end, 16).ok()?,
        );
        if !(start..end).contains(&addr) {
            return None;
        }
        let inode: u64 = fields.nth(3)?.parse().ok()?;
        (inode != 0).then(|| fields.collect::<Vec<_>>().join(" "))
    })
}

/// What a worker sees of a large shared vector: its pid, where the vector's middle lies and
/// the file mapped there, the sum, and the elements at both ends.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct InPlace {
    pid: u32,
    middle: usize,
    file: Option<String>,
    sum: f64,
    ends: (f64, f64),
}

fn in_place(data: Shared<Vec<f64>>, _: u32) -> InPlace {
    let middle = data.as_ptr() as usize + data.len() / 2 * size_of::<f64>();
    InPlace {
        pid: std::process::id(),
        middle,
        file: mapped_file_at(middle),
        sum: data.iter().sum(),
        ends: (data[0], data[data.len() - 1]),
    }
}

/// For each `(pid, addr)` of this process, the file mapped at `addr` now.
fn files_at((spots, _): (Vec<(u32, usize)>, u32)) -> Vec<Option<String>> {
    let me = std::process::id();
    spots
        .into_iter()
        .filter(|&(pid, _)| pid == me)
        .map(|(_, addr)| mapped_file_at(addr))
        .collect()
}

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn workers_read_a_large_vector_of_numbers_in_place() {
    let _serial = serial();
    // Where the runtime cannot map it (built as for another Unix), each worker copies it.
    let maps = parjob::__private::maps_shared_vectors();
    // 3 MiB and 40 MiB, odd lengths: the vector's first and last pages are copied, the rest
    // maps the caller's memory file (the worker's vector gets room for 32 MiB at least,
    // which glibc maps on its own, at the same offset within a page in every process).
    for len in [(3 << 17) + 3, (5 << 20) + 3] {
        let values: Vec<f64> = (0..len).map(|j| (j % 1000) as f64).collect();
        let sum: f64 = values.iter().sum();
        let ends = (values[0], values[len - 1]);
        let data = Shared::new(values);
        let out = loky()
            .run((0..4).map(|i| delayed!(in_place(data.clone(), i))))
            .unwrap();
        for seen in &out {
            assert_eq!(seen.sum, sum, "{len}: {seen:?}");
            assert_eq!(seen.ends, ends, "{len}: {seen:?}");
            let file = seen.file.as_deref().unwrap_or_default();
            assert_eq!(
                file.contains("parjob-shared"),
                maps,
                "{len} values: the vector's pages in worker {} map {file:?}",
                seen.pid
            );
        }
        // Once the caller drops it, the workers free the vector, its pages back to their
        // own memory first: nothing maps the file there any more, and the workers go on.
        drop(data);
        assert!(census(8).iter().all(|s| s.kept == 0));
        let spots: Vec<(u32, usize)> = out.iter().map(|s| (s.pid, s.middle)).collect();
        let after = loky()
            .run((0..8).map(|i| Delayed::remote(files_at, (spots.clone(), i))))
            .unwrap();
        assert!(
            after
                .iter()
                .flatten()
                .all(|f| !f.as_deref().unwrap_or_default().contains("parjob-shared")),
            "{after:?}"
        );
    }
    let again = Shared::new(vec![2.0; 1 << 20]);
    let out = loky()
        .run((0..4).map(|i| delayed!(look(again.clone(), f64::from(i)))))
        .unwrap();
    assert!(
        out.iter()
            .enumerate()
            .all(|(i, s)| s.sum == 2.0 * (1 << 20) as f64 * i as f64)
    );
}
