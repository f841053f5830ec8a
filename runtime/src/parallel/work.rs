//! What runs on a worker for one batch, and how its outcome gets back to the call: the
//! batch loop, the completion message, and the receiving end of a remote batch.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::apply::{Apply, RemoteDecoder, TaskError};
use crate::error::{Error, catch_panic};
use crate::job::RemoteSink;
use crate::remote::{FailureKind, ResultCodec, failed};
use crate::scope;
use crate::sync::Recover;

/// What a batch reports back. Every batch sends exactly one, unless the call was aborted.
pub(super) enum Message<R> {
    Done {
        seq: u64,
        results: Vec<R>,
        elapsed: Duration,
    },
    Failed {
        seq: u64,
        error: Error,
    },
    /// The backend dropped the batch without running it.
    Dropped {
        seq: u64,
    },
}

/// When the task a batch is running started, for per-task timeouts.
#[derive(Default)]
pub(super) struct Clock(Mutex<Option<(usize, Instant)>>);

impl Clock {
    pub(super) fn start(&self, index: usize) {
        self.start_at(index, Instant::now());
    }

    pub(super) fn start_at(&self, index: usize, at: Instant) {
        *self.0.lock().recover() = Some((index, at));
    }

    pub(super) fn stop(&self) {
        *self.0.lock().recover() = None;
    }

    pub(super) fn running(&self) -> Option<(usize, Instant)> {
        *self.0.lock().recover()
    }
}

/// Where a batch run on threads writes its results: its range of the call's output buffer.
pub(crate) struct Dest<R>(pub(super) *mut R);

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

/// Where a remote batch's reply goes: decoded on the backend's thread, then reported.
pub(super) struct RemoteBatchSink<R> {
    pub(super) first: usize,
    pub(super) clock: Option<Arc<Clock>>,
    pub(super) decode: RemoteDecoder<R>,
    pub(super) report: Report<R>,
    pub(super) sent: Instant,
    pub(super) abort: Arc<AtomicBool>,
}

impl<R: Send> RemoteSink for RemoteBatchSink<R> {
    fn abandoned(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }

    fn abandon_flag(&self) -> Option<Arc<AtomicBool>> {
        Some(Arc::clone(&self.abort))
    }

    fn started(&self, task: usize, at: Instant) {
        if let Some(c) = &self.clock {
            c.start_at(self.first + task, at);
        }
    }

    fn finish(self: Box<Self>, outcome: Result<&[u8], Error>) {
        let running = self
            .clock
            .as_ref()
            .and_then(|c| c.running())
            .map(|(i, _)| i);
        if let Some(c) = &self.clock {
            c.stop();
        }
        let first = self.first;
        let seq = self.report.seq;
        let msg = match outcome {
            Err(error) => Message::Failed {
                seq,
                error: error.at(running.unwrap_or(first)),
            },
            Ok(bytes) => match self.decode.decode(bytes) {
                Ok(Ok(results)) => Message::Done {
                    seq: self.report.seq,
                    results,
                    elapsed: self.sent.elapsed(),
                },
                Ok(Err(failure)) => {
                    let index = first + failure.index;
                    Message::Failed {
                        seq,
                        error: failure.into_error(index),
                    }
                }
                Err(message) => Message::Failed {
                    seq,
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

/// A chunk of tasks that took less than this grows (see `BatchWork::run`).
const QUICK_CHUNK: Duration = Duration::from_micros(100);

/// A chunk of tasks that took more than this shrinks.
const SLOW_CHUNK: Duration = Duration::from_millis(1);

/// Reports a batch's outcome; if the batch is dropped unreported, says so.
pub(super) struct Report<R> {
    pub(super) seq: u64,
    pub(super) tx: Option<Sender<Message<R>>>,
}

impl<R> Report<R> {
    pub(super) fn send(mut self, msg: Message<R>) {
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
pub(super) struct BatchWork<I, A: Apply<I>, H> {
    pub(super) items: Vec<I>,
    pub(super) first: usize,
    pub(super) dest: Option<Dest<A::Out>>,
    pub(super) apply: H,
    pub(super) abort: Arc<AtomicBool>,
    pub(super) clock: Option<Arc<Clock>>,
    pub(super) nested: Arc<scope::Frame>,
    /// Last field: dropped last, after everything that may borrow from the caller.
    pub(super) report: Report<A::Out>,
    pub(super) _apply: PhantomData<fn(I)>,
}

impl<I, A: Apply<I>, H: Deref<Target = A>> BatchWork<I, A, H> {
    pub(super) fn run(self) {
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
        let mut out = Output {
            results: Vec::with_capacity(items.len()),
            // SAFETY: the dispatcher gives a batch a range with room for all its tasks, which
            // nothing else touches until the batch reports.
            slots: dest.map(|d| unsafe { OutputSlots::new(d) }),
        };
        let outcome = {
            let _scope = scope::Installed::new(nested);
            catch_panic(|| match &clock {
                None => run_chunked(&*apply, items, &abort, &mut out),
                Some(clock) => run_timed(&*apply, items, &abort, clock, first, &mut out),
            })
        };
        if let Some(c) = &clock {
            c.stop();
        }
        // Every task before the one that failed kept its result.
        let index = first + out.kept();
        let msg = match outcome {
            Ok(Ok(true)) => Some(Message::Done {
                seq: report.seq,
                results: out.complete(),
                elapsed: started.elapsed(),
            }),
            // Aborted: nobody waits for a result.
            Ok(Ok(false)) => None,
            Ok(Err(source)) => Some(Message::Failed {
                seq: report.seq,
                error: Error::TaskFailed { index, source },
            }),
            Err(message) => Some(Message::Failed {
                seq: report.seq,
                error: Error::TaskPanicked { index, message },
            }),
        };
        // An unfinished batch's values are dropped here, where they were made, and before
        // the report lets the call go on.
        drop(out);
        drop(apply);
        match msg {
            Some(m) => report.send(m),
            None => {
                let mut report = report;
                report.tx = None;
            }
        }
    }
}

/// Runs tasks in chunks between two looks at the abort flag. Chunks grow while they are
/// quick, so slow tasks are checked one by one and cheap ones end in one tight loop over the
/// rest. `Ok(false)`: the call was aborted.
fn run_chunked<I, A: Apply<I>>(
    apply: &A,
    items: Vec<I>,
    abort: &AtomicBool,
    out: &mut Output<A::Out>,
) -> Result<bool, TaskError> {
    let mut items = items.into_iter();
    let mut chunk = 1usize;
    loop {
        if abort.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let left = items.len();
        if left == 0 {
            return Ok(true);
        }
        let chunk_started = Instant::now();
        let result = if chunk >= left {
            out.run_rest(apply, std::mem::replace(&mut items, Vec::new().into_iter()))
        } else {
            out.run_chunk(apply, &mut items, chunk)
        };
        let took = chunk_started.elapsed();
        if took < QUICK_CHUNK {
            chunk = chunk.saturating_mul(4);
        } else if took > SLOW_CHUNK {
            chunk = (chunk / 2).max(1);
        }
        result?;
    }
}

/// Runs tasks one by one, each timed by `clock` from its start (per-task timeouts).
fn run_timed<I, A: Apply<I>>(
    apply: &A,
    items: Vec<I>,
    abort: &AtomicBool,
    clock: &Clock,
    first: usize,
    out: &mut Output<A::Out>,
) -> Result<bool, TaskError> {
    for item in items {
        if abort.load(Ordering::Relaxed) {
            return Ok(false);
        }
        clock.start(first + out.kept());
        let result = apply.apply(item)?;
        out.results.push(result);
    }
    Ok(true)
}

/// Where a running batch keeps its results: a `Vec`, or, for a batch that writes in place,
/// its range of the call's output buffer.
struct Output<R> {
    results: Vec<R>,
    slots: Option<OutputSlots<R>>,
}

impl<R> Output<R> {
    /// How many tasks have kept their results, in order.
    fn kept(&self) -> usize {
        self.slots.as_ref().map_or(0, |s| s.written) + self.results.len()
    }

    /// Runs every remaining item.
    fn run_rest<I, A: Apply<I, Out = R>>(
        &mut self,
        apply: &A,
        items: std::vec::IntoIter<I>,
    ) -> Result<(), TaskError> {
        match &mut self.slots {
            Some(slots) => slots.run(apply, items),
            None => apply.apply_rest(items, &mut self.results),
        }
    }

    /// Runs the next `n` items.
    fn run_chunk<I, A: Apply<I, Out = R>>(
        &mut self,
        apply: &A,
        items: &mut std::vec::IntoIter<I>,
        n: usize,
    ) -> Result<(), TaskError> {
        match &mut self.slots {
            Some(slots) => slots.run(apply, items.by_ref().take(n)),
            None => apply.apply_chunk(items, n, &mut self.results),
        }
    }

    /// The batch completed: the results for its message (none for a batch written in
    /// place, whose values now belong to the call).
    fn complete(&mut self) -> Vec<R> {
        if let Some(mut slots) = self.slots.take() {
            slots.append(&mut self.results);
            std::mem::forget(slots);
        }
        std::mem::take(&mut self.results)
    }
}

/// A batch's range of the call's output buffer, and how much of it is filled. It owns the
/// values written so far: dropped before [`Output::complete`] gives them to the call (a task
/// failed or panicked, or the call was aborted), it drops them.
struct OutputSlots<R> {
    start: Dest<R>,
    written: usize,
}

impl<R> OutputSlots<R> {
    /// # Safety
    ///
    /// `start` has room for every task of the batch, and nothing else reads, writes or
    /// drops that range while this value lives.
    unsafe fn new(start: Dest<R>) -> Self {
        OutputSlots { start, written: 0 }
    }

    /// Runs `items` (tasks of the batch), writing their results into the next free slots.
    fn run<I, A: Apply<I, Out = R>>(
        &mut self,
        apply: &A,
        items: impl Iterator<Item = I>,
    ) -> Result<(), TaskError> {
        // SAFETY: `new`'s contract gives room for every task of the batch; `apply_into`
        // writes at `start + written` and counts each value, also when a task fails or
        // panics, so `written` always covers exactly the initialised prefix.
        unsafe { apply.apply_into(items, self.start.0, &mut self.written) }
    }

    /// Moves `results` (the batch's next results, in order) into the next free slots.
    fn append(&mut self, results: &mut Vec<R>) {
        // SAFETY: as in `run`: the slots after `written` are free and within the range; the
        // moved values are forgotten by `set_len(0)`, so each has one owner.
        unsafe {
            std::ptr::copy_nonoverlapping(
                results.as_ptr(),
                self.start.0.add(self.written),
                results.len(),
            );
            self.written += results.len();
            results.set_len(0);
        }
    }
}

impl<R> Drop for OutputSlots<R> {
    fn drop(&mut self) {
        let written = std::ptr::slice_from_raw_parts_mut(self.start.0, self.written);
        // SAFETY: the first `written` slots hold values this batch made and nobody else
        // will read or drop (`new`'s contract).
        let _ = catch_panic(|| unsafe { std::ptr::drop_in_place(written) });
    }
}

/// Runs a batch in a forked child and encodes its outcome: the results through `codec`, or
/// the first failure. `on_start` reports each task's start (per-task timeouts).
pub(super) fn run_forked<I, A: Apply<I>>(
    items: Vec<I>,
    apply: &A,
    nested: Arc<scope::Frame>,
    codec: ResultCodec<A::Out>,
    on_start: Option<fn(usize)>,
) -> Vec<u8> {
    let _scope = scope::Installed::new(nested);
    let mut results = Vec::with_capacity(items.len());
    let outcome = catch_panic(|| match on_start {
        None => apply.apply_rest(items.into_iter(), &mut results),
        Some(hook) => {
            for (index, item) in items.into_iter().enumerate() {
                hook(index);
                results.push(apply.apply(item)?);
            }
            Ok(())
        }
    });
    match outcome {
        Ok(Ok(())) => codec.encode(results),
        Ok(Err(source)) => failed(results.len(), FailureKind::Failed, source.to_string()),
        Err(message) => failed(results.len(), FailureKind::Panicked, message),
    }
}

/// Every task of a call whose children are forked once per worker (see
/// [`ForkSession`](crate::job::ForkSession)): slot `i` holds task `i` until a batch takes it.
///
/// A batch takes its tasks from the copy of the table in the process that runs it: a child's
/// copy, which the parent never sees taken (the parent drops every task there at the end),
/// or the parent's own when a backend runs the batch in place.
pub(super) struct Tasks<T>(Box<[std::cell::UnsafeCell<Option<T>>]>);

// SAFETY: a `Tasks<T>` moves each `T` out to at most one taker (see `take`), on whichever
// thread runs that batch; sharing it is sharing `T`s that are sent, never aliased.
unsafe impl<T: Send> Sync for Tasks<T> {}

impl<T> Tasks<T> {
    pub(super) fn new(items: Vec<T>) -> Self {
        Tasks(items.into_iter().map(|t| Some(t).into()).collect())
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// Moves tasks `first..first + len` out; `None` when one of them is outside the table
    /// or was taken already in this process.
    ///
    /// # Safety
    ///
    /// No other call of `take` in this process may overlap the range at the same time (the
    /// dispatcher gives each range to one batch, and a batch runs once).
    pub(super) unsafe fn take(&self, first: usize, len: usize) -> Option<Vec<T>> {
        let slots = self.0.get(first..first.checked_add(len)?)?;
        // SAFETY: by the contract, no one else reads or writes these slots now.
        if slots.iter().any(|s| unsafe { (*s.get()).is_none() }) {
            return None;
        }
        // SAFETY: as above.
        Some(
            slots
                .iter()
                .filter_map(|s| unsafe { (*s.get()).take() })
                .collect(),
        )
    }
}
