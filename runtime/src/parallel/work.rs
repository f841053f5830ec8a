//! What runs on a worker for one batch, and how its outcome gets back to the call: the
//! batch loop, the completion message, and the receiving end of a remote batch.

use std::marker::PhantomData;
use std::ops::Deref;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::apply::{Apply, RemoteDecoder};
use crate::error::Error;
use crate::error::panic_message;
use crate::job::RemoteSink;
use crate::remote::{FailureKind, ResultCodec, failed};
use crate::scope;

/// What a batch reports back. Every batch sends exactly one, unless the call was aborted.
pub(super) enum Message<R> {
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
pub(super) struct Clock(Mutex<Option<(usize, Instant)>>);

impl Clock {
    pub(super) fn start(&self, index: usize) {
        self.start_at(index, Instant::now());
    }

    pub(super) fn start_at(&self, index: usize, at: Instant) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((index, at));
    }

    pub(super) fn stop(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub(super) fn running(&self) -> Option<(usize, Instant)> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
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
                            crate::remote::FailureKind::Failed => Error::TaskFailed {
                                index,
                                source: failure.message.into(),
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
                            (Some(d), true) => {
                                let rest = std::mem::replace(&mut items, Vec::new().into_iter());
                                // SAFETY: the batch's range has room for all its tasks, and
                                // the first `written` of them are filled.
                                unsafe {
                                    apply.apply_into(rest, d.0.add(written), &mut written_now)
                                }
                            }
                            (Some(d), false) => {
                                let chunk = items.by_ref().take(chunk);
                                // SAFETY: as above; the chunk is part of the batch's tasks.
                                unsafe {
                                    apply.apply_into(chunk, d.0.add(written), &mut written_now)
                                }
                            }
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
    let outcome = catch_unwind(AssertUnwindSafe(|| match on_start {
        None => apply.apply_rest(items.into_iter(), &mut results),
        Some(hook) => {
            for (index, item) in items.into_iter().enumerate() {
                hook(index);
                results.push(apply.apply(item)?);
            }
            Ok(())
        }
    }));
    match outcome {
        Ok(Ok(())) => codec.encode(results),
        Ok(Err(source)) => failed(results.len(), FailureKind::Failed, source.to_string()),
        Err(payload) => failed(
            results.len(),
            FailureKind::Panicked,
            panic_message(&*payload),
        ),
    }
}
