//! Tasks that can cross into another process: the macros' probe, `Delayed::remote`, the
//! fallback to threads, and failures reported from the other side. A loopback backend
//! stands in for a process backend: it moves every batch through bytes, as a pipe would,
//! and runs it on a thread of its own.

use parjob::backend::Workers;
use parjob::remote::RemoteBatch;
use parjob::{
    Backend, Delayed, Error, Job, Parallel, PoolRequest, delayed, parallel, parallel_backend,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Default, Clone)]
struct Loopback {
    remote_batches: Arc<AtomicUsize>,
}

impl Backend for Loopback {
    fn name(&self) -> &str {
        "loopback"
    }
    fn workers(&self) -> Workers {
        Workers::Processes
    }
    fn spawn(&self, _request: PoolRequest, job: Job) {
        let Job::Remote(job) = job else {
            unreachable!("shared-memory work never reaches a backend of processes");
        };
        self.remote_batches.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || {
            let wire = postcard::to_allocvec(job.batch()).expect("encode the batch");
            let received: RemoteBatch = postcard::from_bytes(&wire).expect("decode the batch");
            // SAFETY: the batch was made by this very process.
            let reply = unsafe { received.execute() };
            job.finish(Ok(reply));
        });
    }
}

fn neg(x: i64) -> i64 {
    -x
}

fn shout(s: String) -> String {
    s.to_uppercase()
}

#[test]
fn comprehensions_with_serde_types_and_no_captures_travel() {
    let backend = Loopback::default();
    let count = Arc::clone(&backend.remote_batches);
    let out = parallel_backend(backend.clone())
        .n_jobs(2)
        .run(|| parallel!(neg(x) for x in 0..100i64 if x % 3 == 0))
        .unwrap()
        .unwrap();
    assert_eq!(
        out,
        (0..100)
            .filter(|x| x % 3 == 0)
            .map(|x| -x)
            .collect::<Vec<_>>()
    );
    assert!(
        count.load(Ordering::SeqCst) > 0,
        "no batch went through the remote path"
    );

    let words = vec!["a".to_owned(), "bc".to_owned()];
    let out = parallel_backend(backend)
        .n_jobs(2)
        .run(|| parallel!(shout(w) for w in words.clone()))
        .unwrap()
        .unwrap();
    assert_eq!(out, ["A", "BC"]);
}

#[test]
fn captures_travel_inside_the_batch_and_borrowed_items_stay() {
    let backend = Loopback::default();
    let count = Arc::clone(&backend.remote_batches);
    let offset = 10;
    let data = vec![1, 2, 3];
    let _scope = parallel_backend(backend).n_jobs(2).enter().unwrap();
    // The captures go with the batches: this backend moves whole `RemoteBatch`es, which
    // carry them as attachments.
    let captured = parallel!(x + offset for x in 0..5).unwrap();
    assert_eq!(captured, [10, 11, 12, 13, 14]);
    let travelled = count.load(Ordering::SeqCst);
    assert!(travelled > 0, "a body whose captures travel goes out");
    let borrowed = parallel!(*x * 2 for x in &data).unwrap();
    assert_eq!(borrowed, [2, 4, 6]);
    assert_eq!(
        count.load(Ordering::SeqCst),
        travelled,
        "borrowed items must stay local"
    );
}

#[test]
fn delayed_calls_travel_and_closures_stay() {
    let backend = Loopback::default();
    let count = Arc::clone(&backend.remote_batches);
    let p = Parallel::new().backend(backend).n_jobs(2);
    let out = p.run((0..20).map(|i| delayed!(neg(i)))).unwrap();
    assert_eq!(out, (0..20).map(|i| -i).collect::<Vec<_>>());
    let travelled = count.load(Ordering::SeqCst);
    assert!(travelled > 0);

    let out = p.run((0..5).map(|i| Delayed::remote(neg, i))).unwrap();
    assert_eq!(out, [0, -1, -2, -3, -4]);
    assert!(count.load(Ordering::SeqCst) > travelled);

    let before = count.load(Ordering::SeqCst);
    let out = p.run((0..5).map(|i| move || i * 2)).unwrap();
    assert_eq!(out, [0, 2, 4, 6, 8]);
    assert_eq!(
        count.load(Ordering::SeqCst),
        before,
        "closures run on threads"
    );
}

fn fragile(x: u32) -> u32 {
    assert!(x != 7, "seven is fragile");
    x
}

#[test]
fn a_panic_on_the_other_side_is_task_panicked_with_the_global_index() {
    let r = Parallel::new()
        .backend(Loopback::default())
        .n_jobs(2)
        .batch_size(4)
        .run((0..20u32).map(|i| delayed!(fragile(i))));
    match r {
        Err(Error::TaskPanicked { index, message }) => {
            assert_eq!(index, 7);
            assert_eq!(message, "seven is fragile");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn streams_travel_too() {
    let backend = Loopback::default();
    let count = Arc::clone(&backend.remote_batches);
    let out: Vec<i64> = Parallel::new()
        .backend(backend)
        .n_jobs(2)
        .run_iter((0..10).map(|i| Delayed::remote(neg, i)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(out, (0..10).map(|i| -i).collect::<Vec<_>>());
    assert!(count.load(Ordering::SeqCst) > 0);
}

#[test]
fn a_process_backend_that_runs_its_jobs_here_still_gets_every_result() {
    // `Job::run` runs any job on the current thread, an encoded one included.
    #[derive(Default)]
    struct RunsHere(AtomicUsize);
    impl Backend for RunsHere {
        fn name(&self) -> &str {
            "runs-here"
        }
        fn workers(&self) -> Workers {
            Workers::Processes
        }
        fn spawn(&self, _r: PoolRequest, job: Job) {
            if matches!(job, Job::Remote(_)) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
            job.run();
        }
    }
    let backend = Arc::new(RunsHere::default());
    let out = Parallel::new()
        .backend(Arc::clone(&backend) as Arc<dyn Backend>)
        .n_jobs(2)
        .batch_size(1)
        .run((0..3).map(|i| Delayed::remote(neg, i)))
        .unwrap();
    assert_eq!(out, [0, -1, -2]);
    assert_eq!(
        backend.0.load(Ordering::SeqCst),
        3,
        "every batch went out encoded"
    );
}

#[test]
fn borrowed_str_items_stay_local() {
    let words = ["x".to_owned(), "yz".to_owned()];
    let backend = Loopback::default();
    let count = Arc::clone(&backend.remote_batches);
    let out = parallel_backend(backend)
        .n_jobs(2)
        .run(|| parallel!(w.len() for w in words.iter().map(|s| s.as_str())))
        .unwrap()
        .unwrap();
    assert_eq!(out, [1, 2]);
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

fn label(n: u8) -> &'static str {
    if n > 1 { "big" } else { "small" }
}

#[test]
fn borrowed_results_and_nested_serde_types_are_handled() {
    let backend = Loopback::default();
    let count = Arc::clone(&backend.remote_batches);
    let (labels, kept, pairs) = parallel_backend(backend)
        .n_jobs(2)
        .run(|| {
            let labels = parallel!(label(n) for n in 0..4u8)?;
            let kept = parallel!(label(n) for n in 0..4u8 if n % 2 == 0)?;
            let pairs =
                parallel!((k, v * 2) for (k, v) in vec![("a".to_owned(), 1), ("b".to_owned(), 2)])?;
            Ok::<_, Error>((labels, kept, pairs))
        })
        .unwrap()
        .unwrap();
    assert_eq!(labels, ["small", "small", "big", "big"]);
    assert_eq!(kept, ["small", "big"]);
    assert_eq!(pairs, [("a".to_owned(), 2), ("b".to_owned(), 4)]);
    assert!(count.load(Ordering::SeqCst) > 0, "the owned pairs travel");
}
