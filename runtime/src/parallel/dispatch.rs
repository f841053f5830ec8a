//! The engine of every call: pulls tasks from the input, hands batches to the backend, and
//! collects what comes back, failing fast and enforcing timeouts.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::ops::Deref;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::apply::{Apply, Encoded, Remote, RemoteDecoder};
use super::plan::Plan;
use super::progress::Reporter;
use crate::Error;
use crate::backend::{Backend, Job, RemoteJob, RemoteSink, Threading};
use crate::error::panic_message;
use crate::scope;

/// What a batch reports back. Every batch sends exactly one, unless the call was aborted.
enum Message<R> {
    Done {
        seq: u64,
        results: Vec<R>,
        elapsed: Duration,
    },
    Failed {
        error: Error,
    },
    /// The backend dropped the batch without running it.
    Dropped {
        seq: u64,
    },
}

/// When the task a batch is running started, for per-task timeouts.
#[derive(Default)]
struct Clock(Mutex<Option<(usize, Instant)>>);

impl Clock {
    fn start(&self, index: usize) {
        self.start_at(index, Instant::now());
    }

    fn start_at(&self, index: usize, at: Instant) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((index, at));
    }

    fn stop(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn running(&self) -> Option<(usize, Instant)> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct InFlight {
    first: usize,
    len: usize,
    clock: Option<Arc<Clock>>,
    /// The batch writes its results into the output buffer.
    in_place: bool,
}

/// A completed batch: the results of tasks `first..first + len`, in `results`, or already
/// written to the call's output buffer (`results` is then empty).
pub(crate) struct Batch<R> {
    pub(crate) seq: u64,
    pub(crate) first: usize,
    pub(crate) len: usize,
    pub(crate) results: Vec<R>,
}

/// Where a batch run on threads writes its results: its range of the call's output buffer.
pub(crate) struct Dest<R>(*mut R);

impl<R> Clone for Dest<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Dest<R> {}

// SAFETY: a `Dest` moves results of type `R` to the thread that owns the buffer, which is
// sound when `R: Send`; each batch writes only its own range, and the owner reads a range
// only after the batch's completion message.
unsafe impl<R: Send> Send for Dest<R> {}

/// A pointer to the caller's `A` for calls whose tasks may borrow from the caller. Valid
/// because such a call's [`Dispatcher`] waits in `drop` until every job is gone.
pub(crate) struct Borrowed<A>(*const A);

impl<A> Clone for Borrowed<A> {
    fn clone(&self) -> Self {
        Borrowed(self.0)
    }
}

// SAFETY: a `Borrowed<A>` only gives out `&A`, which may be sent to another thread exactly
// when `A: Sync`.
unsafe impl<A: Sync> Send for Borrowed<A> {}

impl<A> Deref for Borrowed<A> {
    type Target = A;
    fn deref(&self) -> &A {
        // SAFETY: made from a reference in `Dispatcher::scoped`, whose dispatcher outlives
        // every job holding a copy (its `drop` waits until all jobs are dropped).
        unsafe { &*self.0 }
    }
}

/// Drives one call with workers (effective `n_jobs` ≥ 2).
pub(crate) struct Dispatcher<'a, It: Iterator, A: Remote<It::Item>, H> {
    input: It,
    input_done: bool,
    pulled: usize,
    exact_len: Option<usize>,
    apply: H,
    plan: Plan,
    pre_dispatch: usize,
    sizer: super::batch::BatchSizer,
    pub(crate) reporter: Option<Reporter>,
    tx: Option<Sender<Message<A::Out>>>,
    rx: Receiver<Message<A::Out>>,
    abort: Arc<AtomicBool>,
    in_flight: BTreeMap<u64, InFlight>,
    next_seq: u64,
    /// Wait in `drop` for every job: set when tasks may borrow from the caller.
    waits: bool,
    aborted_backend: bool,
    /// Whether a batch of this call already fell back to threads (warned once per call).
    fell_back: bool,
    /// The output buffer batches on threads write into, for tasks `0..exact_len`.
    dest: Option<Dest<A::Out>>,
    _borrows: PhantomData<&'a A>,
}

impl<'a, It, A> Dispatcher<'a, It, A, Borrowed<A>>
where
    It: Iterator,
    It::Item: Send + 'a,
    A: Remote<It::Item> + Sync + 'a,
    A::Out: 'a,
{
    /// A call whose tasks may borrow from the caller: it cannot return while a task runs.
    pub(crate) fn scoped(input: It, apply: &'a A, plan: Plan) -> Result<Self, Error> {
        Self::new(input, Borrowed(apply), plan, true)
    }
}

impl<It, A> Dispatcher<'static, It, A, Arc<A>>
where
    It: Iterator,
    It::Item: Send + 'static,
    A: Remote<It::Item> + Send + Sync + 'static,
    A::Out: 'static,
{
    /// A call whose tasks own everything: it may return while abandoned tasks still run.
    pub(crate) fn owned(input: It, apply: Arc<A>, plan: Plan) -> Result<Self, Error> {
        Self::new(input, apply, plan, false)
    }
}

impl<'a, It, A, H> Dispatcher<'a, It, A, H>
where
    It: Iterator,
    It::Item: Send + 'a,
    A: Remote<It::Item> + 'a,
    A::Out: 'a,
    H: Deref<Target = A> + Clone + Send + 'a,
{
    fn new(input: It, apply: H, mut plan: Plan, waits: bool) -> Result<Self, Error> {
        let pre_dispatch = plan.pre_dispatch.limit(plan.workers)?;
        let sizer = super::batch::BatchSizer::new(plan.batch, plan.backend.ideal_batch_duration())?;
        let (lo, hi) = input.size_hint();
        let exact_len = (Some(lo) == hi).then_some(lo);
        let reporter = Reporter::new(
            plan.on_progress.take(),
            plan.verbose,
            plan.n_jobs,
            exact_len,
        );
        if let Some(r) = &reporter {
            r.start(plan.backend.name(), plan.workers);
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        Ok(Dispatcher {
            input,
            input_done: false,
            pulled: 0,
            exact_len,
            apply,
            plan,
            pre_dispatch,
            sizer,
            reporter,
            tx: Some(tx),
            rx,
            abort: Arc::new(AtomicBool::new(false)),
            in_flight: BTreeMap::new(),
            next_seq: 0,
            waits,
            aborted_backend: false,
            fell_back: false,
            dest: None,
            _borrows: PhantomData,
        })
    }

    /// Makes batches run on threads write their results into `buf` at their tasks' indices,
    /// for tasks below [`exact_len`](Dispatcher::exact_len); later tasks (an input longer
    /// than it said) come back in their batches as usual.
    ///
    /// # Safety
    ///
    /// The dispatcher must wait for its jobs in `drop` (made by `scoped`), `buf` must have
    /// room for `exact_len` values and outlive the dispatcher, and nothing may touch its
    /// first `exact_len` slots but through the completed batches.
    pub(crate) unsafe fn write_into(&mut self, buf: *mut A::Out) {
        debug_assert!(self.waits);
        self.dest = Some(Dest(buf));
    }

    /// Whether batches write into an output buffer (see `write_into`).
    pub(crate) fn writes_in_place(&self) -> bool {
        self.dest.is_some()
    }

    /// The number of tasks, when the input knows it in advance.
    pub(crate) fn exact_len(&self) -> Option<usize> {
        self.exact_len
    }

    /// Dispatches batches while fewer than `pre_dispatch` are outstanding; `held` counts
    /// completed batches the consumer has not taken yet (streams), which also count.
    pub(crate) fn fill(&mut self, held: usize) {
        while !self.input_done && self.in_flight.len() + held < self.pre_dispatch {
            let remaining = self.exact_len.map(|n| n.saturating_sub(self.pulled));
            let mut size = self.sizer.next_size(remaining, self.plan.workers);
            if let (Some(_), Some(r)) = (self.dest, remaining) {
                // Batches written in place never cross the end of the buffer.
                if r > 0 {
                    size = size.min(r);
                }
            }
            let mut items = Vec::with_capacity(remaining.unwrap_or(1 << 16).min(size));
            items.extend(self.input.by_ref().take(size));
            if items.len() < size {
                self.input_done = true;
                if let Some(r) = &mut self.reporter {
                    r.input_exhausted(self.pulled + items.len());
                }
            }
            if items.is_empty() {
                break;
            }
            self.spawn(items);
        }
    }

    fn spawn(&mut self, items: Vec<It::Item>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let first = self.pulled;
        let len = items.len();
        self.pulled += len;
        let clock = self.plan.timeout.map(|_| Arc::new(Clock::default()));
        self.in_flight.insert(
            seq,
            InFlight {
                first,
                len,
                clock: clock.clone(),
                in_place: false,
            },
        );
        let report = Report {
            seq,
            tx: self.tx.clone(),
        };
        let mut items = items;
        if !self.plan.backend.supports_shared_memory() {
            match self.apply.encode(items) {
                Encoded::Remote { batch, decode } => {
                    let sink: Box<dyn RemoteSink + 'a> = Box::new(RemoteBatchSink {
                        first,
                        clock,
                        decode,
                        report,
                        sent: Instant::now(),
                        abort: Arc::clone(&self.abort),
                    });
                    // SAFETY: as for the jobs in `spawn_local`: the sink lives at most until
                    // the dispatcher's `drop` has seen every sender go, or `'a` is `'static`.
                    let sink: Box<dyn RemoteSink> = unsafe { std::mem::transmute(sink) };
                    let job = RemoteJob::new(
                        batch,
                        self.plan.timeout.is_some(),
                        sink,
                        self.plan.inner_threads,
                    );
                    self.plan.backend.spawn_remote(self.plan.request(), job);
                    return;
                }
                Encoded::Unencodable(message) => {
                    report.send(Message::Failed {
                        error: Error::Transport {
                            index: Some(first),
                            message: format!(
                                "cannot encode a task for a worker process: {message}"
                            ),
                        },
                    });
                    return;
                }
                Encoded::Local(back) => {
                    if !self.fell_back {
                        self.fell_back = true;
                        tracing::warn!(
                            "parjob: backend `{}` runs tasks in other processes, but these tasks cannot leave this one (their closure captures data, or a value lacks serde); running them on threads",
                            self.plan.backend.name()
                        );
                    }
                    items = back;
                }
            }
        }
        self.spawn_local(items, first, clock, report);
    }

    fn spawn_local(
        &mut self,
        items: Vec<It::Item>,
        first: usize,
        clock: Option<Arc<Clock>>,
        report: Report<A::Out>,
    ) {
        let in_place = match (self.dest, self.exact_len) {
            (Some(dest), Some(n)) if first + items.len() <= n => {
                // SAFETY: `first + items.len() <= n`, and the buffer has room for `n` values.
                Some(Dest(unsafe { dest.0.add(first) }))
            }
            _ => None,
        };
        if let (Some(_), Some(b)) = (in_place, self.in_flight.get_mut(&report.seq)) {
            b.in_place = true;
        }
        let work = BatchWork {
            items,
            first,
            dest: in_place,
            apply: self.apply.clone(),
            abort: Arc::clone(&self.abort),
            clock,
            nested: Arc::clone(&self.plan.nested),
            report,
            _apply: PhantomData,
        };
        let boxed: Box<dyn FnOnce() + Send + 'a> = Box::new(move || work.run());
        // SAFETY: the job may borrow for `'a` only. Either `'a` is `'static` (the `owned`
        // constructor's bounds), or this dispatcher was made by `scoped` and `waits`: its
        // `drop`, which runs before `'a` ends (it holds `PhantomData<&'a A>`), blocks until
        // every job has been run or dropped, since each holds a clone of the channel's
        // sender, which is the job's last field to be dropped.
        let boxed: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(boxed) };
        let job = Job::new(boxed);
        if self.plan.backend.supports_shared_memory() {
            self.plan.backend.spawn(self.plan.request(), job);
        } else {
            Threading::new().spawn(self.plan.request(), job);
        }
    }

    /// Waits for the next completed batch; `None` once nothing is in flight.
    ///
    /// # Errors
    ///
    /// The first failure (the call is aborted then), or a timeout.
    pub(crate) fn next_batch(&mut self) -> Result<Option<Batch<A::Out>>, Error> {
        if self.in_flight.is_empty() {
            return Ok(None);
        }
        let msg = match self.plan.timeout {
            None => self.rx.recv().map_err(|_| disconnected()),
            Some(limit) => self.recv_with_timeout(limit),
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => return Err(self.fail(e)),
        };
        match msg {
            Message::Done {
                seq,
                results,
                elapsed,
            } => {
                let done = self.in_flight.remove(&seq);
                let (first, len) = done.map_or((0, results.len()), |d| (d.first, d.len));
                self.sizer.completed(len, elapsed);
                if let Some(r) = &mut self.reporter {
                    r.advance(len);
                }
                Ok(Some(Batch {
                    seq,
                    first,
                    len,
                    results,
                }))
            }
            Message::Failed { error } => Err(self.fail(error)),
            Message::Dropped { seq } => {
                let index = self.in_flight.get(&seq).map(|b| b.first);
                Err(self.fail(Error::WorkerDied {
                    index,
                    detail: format!(
                        "backend `{}` dropped a batch without running it",
                        self.plan.backend.name()
                    ),
                }))
            }
        }
    }

    fn recv_with_timeout(&mut self, limit: Duration) -> Result<Message<A::Out>, Error> {
        loop {
            let now = Instant::now();
            let mut wake =
                now + (limit / 4).clamp(Duration::from_millis(1), Duration::from_millis(50));
            for b in self.in_flight.values() {
                if let Some((index, started)) = b.clock.as_ref().and_then(|c| c.running()) {
                    let deadline = started + limit;
                    if deadline <= now {
                        return Err(Error::Timeout {
                            index,
                            timeout: limit,
                        });
                    }
                    wake = wake.min(deadline);
                }
            }
            match self.rx.recv_deadline(wake) {
                Ok(m) => return Ok(m),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Err(disconnected()),
            }
        }
    }

    /// Stops the call: queued tasks are skipped, and the backend frees the workers still
    /// busy with it.
    fn fail(&mut self, error: Error) -> Error {
        self.abort_backend();
        if let Some(r) = &mut self.reporter {
            r.finish(false);
        }
        error
    }

    fn abort_backend(&mut self) {
        self.abort.store(true, Ordering::Relaxed);
        self.input_done = true;
        if !self.in_flight.is_empty() && !self.aborted_backend {
            self.aborted_backend = true;
            self.plan.backend.abort(self.plan.request());
        }
    }

    /// The call completed: report the end of progress.
    pub(crate) fn finish(&mut self) {
        if let Some(r) = &mut self.reporter {
            r.finish(true);
        }
    }
}

fn disconnected() -> Error {
    Error::WorkerDied {
        index: None,
        detail: "every batch of the call is gone without a result".into(),
    }
}

/// Where a remote batch's reply goes: decoded on the backend's thread, then reported.
struct RemoteBatchSink<R> {
    first: usize,
    clock: Option<Arc<Clock>>,
    decode: RemoteDecoder<R>,
    report: Report<R>,
    sent: Instant,
    abort: Arc<AtomicBool>,
}

impl<R: Send> RemoteSink for RemoteBatchSink<R> {
    fn abandoned(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }

    fn started(&self, task: usize, at: Instant) {
        if let Some(c) = &self.clock {
            c.start_at(self.first + task, at);
        }
    }

    fn finish(self: Box<Self>, outcome: Result<Vec<u8>, Error>) {
        let running = self
            .clock
            .as_ref()
            .and_then(|c| c.running())
            .map(|(i, _)| i);
        if let Some(c) = &self.clock {
            c.stop();
        }
        let first = self.first;
        let msg = match outcome {
            Err(error) => Message::Failed {
                error: with_index(error, running.unwrap_or(first)),
            },
            Ok(bytes) => match self.decode.decode(&bytes) {
                Ok(Ok(results)) => Message::Done {
                    seq: self.report.seq,
                    results,
                    elapsed: self.sent.elapsed(),
                },
                Ok(Err(failure)) => {
                    let index = first + failure.index;
                    Message::Failed {
                        error: match failure.kind {
                            crate::remote::FailureKind::Panicked => Error::TaskPanicked {
                                index,
                                message: failure.message,
                            },
                            _ => Error::Transport {
                                index: Some(index),
                                message: failure.message,
                            },
                        },
                    }
                }
                Err(message) => Message::Failed {
                    error: Error::Transport {
                        index: Some(first),
                        message,
                    },
                },
            },
        };
        self.report.send(msg);
    }
}

/// Fills in the task index of a worker error that does not know it.
fn with_index(error: Error, index: usize) -> Error {
    match error {
        Error::WorkerDied {
            index: None,
            detail,
        } => Error::WorkerDied {
            index: Some(index),
            detail,
        },
        Error::Transport {
            index: None,
            message,
        } => Error::Transport {
            index: Some(index),
            message,
        },
        other => other,
    }
}

impl<It: Iterator, A: Remote<It::Item>, H> Drop for Dispatcher<'_, It, A, H> {
    fn drop(&mut self) {
        if !self.in_flight.is_empty() {
            self.abort.store(true, Ordering::Relaxed);
            if !self.aborted_backend {
                self.aborted_backend = true;
                self.plan.backend.abort(self.plan.request());
            }
        }
        // Every job holds a sender; once ours is dropped, the channel disconnects exactly
        // when the last job is gone.
        self.tx = None;
        if self.waits {
            while let Ok(msg) = self.rx.recv() {
                // A batch that completed after the call gave up wrote values nobody will
                // take: drop them here.
                if let (Message::Done { seq, .. }, Some(dest)) = (&msg, self.dest)
                    && let Some(b) = self.in_flight.get(seq).filter(|b| b.in_place)
                {
                    let range = std::ptr::slice_from_raw_parts_mut(
                        // SAFETY: the batch's range lies within the buffer.
                        unsafe { dest.0.add(b.first) },
                        b.len,
                    );
                    // SAFETY: the batch completed, so its whole range is initialised, and
                    // no one else will read or drop it.
                    let _ = catch_unwind(AssertUnwindSafe(|| unsafe {
                        std::ptr::drop_in_place(range)
                    }));
                }
            }
        }
    }
}

/// A chunk of tasks that took less than this grows (see `BatchWork::run`).
const QUICK_CHUNK: Duration = Duration::from_micros(100);

/// A chunk of tasks that took more than this shrinks.
const SLOW_CHUNK: Duration = Duration::from_millis(1);

/// Reports a batch's outcome; if the batch is dropped unreported, says so.
struct Report<R> {
    seq: u64,
    tx: Option<Sender<Message<R>>>,
}

impl<R> Report<R> {
    fn send(mut self, msg: Message<R>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(msg);
        }
    }
}

impl<R> Drop for Report<R> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Message::Dropped { seq: self.seq });
        }
    }
}

/// One batch of tasks with everything needed to run it on a worker.
struct BatchWork<I, A: Apply<I>, H> {
    items: Vec<I>,
    first: usize,
    dest: Option<Dest<A::Out>>,
    apply: H,
    abort: Arc<AtomicBool>,
    clock: Option<Arc<Clock>>,
    nested: Arc<scope::Frame>,
    /// Last field: dropped last, after everything that may borrow from the caller.
    report: Report<A::Out>,
    _apply: PhantomData<fn(I)>,
}

impl<I, A: Apply<I>, H: Deref<Target = A>> BatchWork<I, A, H> {
    fn run(self) {
        let BatchWork {
            items,
            first,
            dest,
            apply,
            abort,
            clock,
            nested,
            report,
            _apply,
        } = self;
        let started = Instant::now();
        let len = items.len();
        let mut results = Vec::with_capacity(len);
        // Results already moved into `dest`.
        let mut written = 0;
        // Written straight to `dest` by the chunk running now (added to `written` after it).
        let mut written_now = 0usize;
        let outcome = {
            let _scope = scope::Installed::new(nested);
            catch_unwind(AssertUnwindSafe(|| {
                let mut items = items.into_iter();
                let mut chunk = 1usize;
                match &clock {
                    // Without per-task clocks, tasks run in chunks between two looks at the
                    // abort flag. Chunks grow while they are quick, so slow tasks are checked
                    // one by one and cheap ones end in one tight loop over the rest.
                    None => loop {
                        if abort.load(Ordering::Relaxed) {
                            return Ok(false);
                        }
                        let left = items.len();
                        if left == 0 {
                            return Ok(true);
                        }
                        let chunk_started = Instant::now();
                        let failed = match (dest, chunk >= left) {
                            // SAFETY (both `Some` arms): the batch's range has room for all
                            // its tasks, and the first `written` of them are filled.
                            (Some(d), true) => {
                                let rest = std::mem::replace(&mut items, Vec::new().into_iter());
                                unsafe {
                                    apply.apply_into(rest, d.0.add(written), &mut written_now)
                                }
                            }
                            (Some(d), false) => unsafe {
                                let chunk = items.by_ref().take(chunk);
                                apply.apply_into(chunk, d.0.add(written), &mut written_now)
                            },
                            (None, true) => {
                                let rest = std::mem::replace(&mut items, Vec::new().into_iter());
                                apply.apply_rest(rest, &mut results)
                            }
                            (None, false) => apply.apply_chunk(&mut items, chunk, &mut results),
                        };
                        written += std::mem::take(&mut written_now);
                        let took = chunk_started.elapsed();
                        if took < QUICK_CHUNK {
                            chunk = chunk.saturating_mul(4);
                        } else if took > SLOW_CHUNK {
                            chunk = (chunk / 2).max(1);
                        }
                        if let Some(d) = dest {
                            // SAFETY: `written + results.len()` stays within the batch's range
                            // of the buffer; the moved values are forgotten by `set_len(0)`.
                            unsafe {
                                std::ptr::copy_nonoverlapping(
                                    results.as_ptr(),
                                    d.0.add(written),
                                    results.len(),
                                );
                                written += results.len();
                                results.set_len(0);
                            }
                        }
                        if let Err(source) = failed {
                            let index = first + written + results.len();
                            return Err(Error::TaskFailed { index, source });
                        }
                    },
                    Some(clock) => {
                        for item in items {
                            if abort.load(Ordering::Relaxed) {
                                return Ok(false);
                            }
                            clock.start(first + results.len());
                            match apply.apply(item) {
                                Ok(r) => results.push(r),
                                Err(source) => {
                                    let index = first + results.len();
                                    return Err(Error::TaskFailed { index, source });
                                }
                            }
                        }
                        Ok(true)
                    }
                }
            }))
        };
        // A panic may have left values written straight to `dest` uncounted.
        written += written_now;
        // Every task before the one that panicked pushed or wrote its result.
        let index = first + written + results.len();
        if let Some(d) = dest {
            match outcome {
                Ok(Ok(true)) => {
                    // The per-task path keeps its results until the end.
                    // SAFETY: as above, within the batch's range.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            results.as_ptr(),
                            d.0.add(written),
                            results.len(),
                        );
                        results.set_len(0);
                    }
                }
                _ => {
                    // The call fails: nobody will read this range, so its values are dropped
                    // here, where they were made.
                    // SAFETY: the first `written` slots of the range were initialised above.
                    let _ = catch_unwind(AssertUnwindSafe(|| unsafe {
                        std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(d.0, written));
                    }));
                }
            }
        }
        if let Some(c) = &clock {
            c.stop();
        }
        let msg = match outcome {
            Ok(Ok(true)) => Some(Message::Done {
                seq: report.seq,
                results,
                elapsed: started.elapsed(),
            }),
            Ok(Ok(false)) => None,
            Ok(Err(error)) => Some(Message::Failed { error }),
            Err(payload) => {
                let message = panic_message(&*payload);
                drop(catch_unwind(AssertUnwindSafe(move || drop(payload))));
                Some(Message::Failed {
                    error: Error::TaskPanicked { index, message },
                })
            }
        };
        drop(apply);
        match msg {
            Some(m) => report.send(m),
            // Aborted: nobody waits for a result.
            None => {
                let mut report = report;
                report.tx = None;
            }
        }
    }
}
