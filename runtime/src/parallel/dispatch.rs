//! The engine of every call: pulls tasks from the input, hands batches to the backend, and
//! collects what comes back, failing fast and enforcing timeouts.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use super::apply::{Encoded, Remote, RemoteDecoder};
use super::plan::Plan;
use super::progress::Reporter;
use super::work::{BatchWork, Clock, Dest, Message, RemoteBatchSink, Report, Tasks, run_forked};
use crate::backend::{Backend, Threading, Workers, threading};
use crate::error::{Error, catch_panic};
use crate::job::{
    ForkFn, ForkJob, ForkSession, ForkWork, InnerThreads, Job, LocalJob, RangeFn, RemoteJob,
    RemoteReply, RemoteSink, RunRange,
};
use crate::remote::{FailureKind, ResultCodec, failed};

struct InFlight {
    first: usize,
    len: usize,
    clock: Option<Arc<Clock>>,
    /// Set when the call gives the batch up: the call's own abort flag, or, in a call that
    /// keeps going, the batch's own (a batch past its timeout is given up alone).
    abandon: Arc<AtomicBool>,
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
// SAFETY: as for `Send`: shared, it still gives out only `&A`.
unsafe impl<A: Sync> Sync for Borrowed<A> {}

impl<A> Deref for Borrowed<A> {
    type Target = A;
    fn deref(&self) -> &A {
        // SAFETY: made from a reference in `Dispatcher::scoped`, whose dispatcher outlives
        // every job holding a copy (its `drop` waits until all jobs are dropped).
        unsafe { &*self.0 }
    }
}

/// The most memory the tasks of a call may take when pulled all at once for children
/// forked once per worker (counting each task's own size, not what it points to).
const MAX_SESSION_BYTES: usize = 256 << 20;

/// The tasks of a call on a forking backend, pulled before the first fork.
struct Session<R> {
    tasks: Arc<ForkSession>,
    codec: ResultCodec<R>,
    len: usize,
}

/// The children of a call that take its tasks themselves (see `process::crew`), and the
/// ranges that came back before their turn, by first task.
#[cfg(unix)]
struct CrewRun<R> {
    crew: crate::process::crew::Crew,
    decode: fn(&[u8]) -> crate::remote::probe::Outcome<R>,
    early: BTreeMap<usize, (usize, Vec<R>)>,
    /// The first task of the next range to give the consumer.
    next_first: usize,
}

/// Drives one call with workers (effective `n_jobs` ≥ 2).
pub(crate) struct Dispatcher<'a, It: Iterator, A: Remote<It::Item>, H> {
    input: It,
    input_done: bool,
    pulled: usize,
    exact_len: Option<usize>,
    apply: H,
    plan: Plan,
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
    /// Whether jobs for threads run on the rayon pool of the calling thread (a call made
    /// inside a pool of the program's): waits then run that pool's pending work.
    helps: bool,
    /// Whether a batch of this call already fell back to threads (warned once per call).
    fell_back: bool,
    /// Whether progress output has named the backend the call runs on (at its first batch).
    announced: bool,
    /// The output buffer batches on threads write into, for tasks `0..exact_len`.
    dest: Option<Dest<A::Out>>,
    /// The scope of forked children (see `fork_nested`), made at the first fork.
    fork_nested: Option<Arc<crate::scope::Frame>>,
    /// Every task of the call, for children forked once per worker (see `open_session`).
    session: Option<Session<A::Out>>,
    /// The session's children, when they take its tasks themselves (see `start_crew`).
    #[cfg(unix)]
    crew: Option<CrewRun<A::Out>>,
    /// The consumer takes every result as it comes (a call collecting into a `Vec`), so
    /// work may run ahead of it without bound; a stream's consumer may not.
    #[cfg_attr(not(unix), allow(dead_code))]
    collects: bool,
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
    H: Deref<Target = A> + Clone + Send + Sync + 'a,
{
    fn new(input: It, apply: H, mut plan: Plan, waits: bool) -> Result<Self, Error> {
        let sizer = super::batch::BatchSizer::new(plan.batch, plan.backend.ideal_batch_duration())?;
        let (lo, hi) = input.size_hint();
        let exact_len = (Some(lo) == hi).then_some(lo);
        let reporter = Reporter::new(
            std::mem::take(&mut plan.watchers),
            plan.verbose,
            plan.n_jobs,
            exact_len,
        );
        let (tx, rx) = crossbeam_channel::unbounded();
        // Jobs for threads go to that pool whatever the backend (a process backend sends
        // tasks that cannot travel to threads too).
        let helps = threading::on_foreign_rayon_thread();
        Ok(Dispatcher {
            input,
            input_done: false,
            pulled: 0,
            exact_len,
            apply,
            plan,
            sizer,
            reporter,
            tx: Some(tx),
            rx,
            abort: Arc::new(AtomicBool::new(false)),
            in_flight: BTreeMap::new(),
            next_seq: 0,
            waits,
            aborted_backend: false,
            helps,
            fell_back: false,
            announced: false,
            dest: None,
            fork_nested: None,
            session: None,
            #[cfg(unix)]
            crew: None,
            collects: false,
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

    /// Says that the consumer takes every result as it comes (see [`Dispatcher::collects`]).
    pub(crate) fn collect_all(&mut self) {
        self.collects = true;
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
        if self.pulled == 0 && !self.input_done {
            self.open_session();
            #[cfg(unix)]
            self.start_crew();
        }
        #[cfg(unix)]
        if self.crew.is_some() {
            return;
        }
        if self.session.is_some() {
            return self.fill_ranges(held);
        }
        while !self.input_done && self.in_flight.len() + held < self.plan.pre_dispatch {
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
            // Nothing else in flight, and nothing more to dispatch before this batch ends:
            // the call will only wait for it.
            let alone = self.in_flight.is_empty()
                && (self.input_done || 1 + held >= self.plan.pre_dispatch)
                && self.plan.timeout.is_none()
                && !self.helps;
            self.spawn(items, alone);
        }
    }

    /// On a forking backend, for results that travel through a codec and an input whose
    /// length is known: pulls every task now, so that each child, forked once per worker,
    /// holds them all and runs batch after batch told only their ranges.
    fn open_session(&mut self) {
        let (Workers::Forks, Some(len), Some(codec)) = (
            self.plan.backend.workers(),
            self.exact_len,
            self.apply.fork_codec(),
        ) else {
            return;
        };
        // An input too long to hold at once (a huge range, say) keeps to one child per
        // batch, pulled as batches go out.
        if len.saturating_mul(size_of::<It::Item>().max(1)) > MAX_SESSION_BYTES {
            return;
        }
        let tasks = Tasks::new(self.input.by_ref().collect());
        self.input_done = true;
        let len = tasks.len();
        if let Some(r) = &mut self.reporter {
            r.input_exhausted(len);
        }
        /// What the session's closure holds; fields drop in this order, the sender last.
        struct Held<T, H, S> {
            tasks: Tasks<T>,
            apply: H,
            nested: Arc<crate::scope::Frame>,
            /// Keeps the call's channel open while the session lives (see `detach`).
            _alive: S,
        }
        let held = Held {
            tasks,
            apply: self.apply.clone(),
            nested: self.fork_nested(),
            _alive: self.tx.clone(),
        };
        let run: Box<RunRange<'a>> = Box::new(move |first, len, on_start| {
            // The whole of `held` is captured (not only the fields used), so that its
            // sender goes with it, last.
            let held = &held;
            // SAFETY: each range goes into one batch, which runs once (`fill_ranges`).
            match unsafe { held.tasks.take(first, len) } {
                Some(items) => run_forked(
                    items,
                    &*held.apply,
                    Arc::clone(&held.nested),
                    codec,
                    on_start,
                ),
                None => failed(
                    0,
                    FailureKind::Panicked,
                    format!("tasks {first}..{} were run twice", first + len),
                ),
            }
        });
        self.session = Some(Session {
            tasks: Arc::new(ForkSession::new(detach(run))),
            codec,
            len,
        });
    }

    /// On the `multiprocessing` backend, for a call without a timeout that fails fast: forks
    /// the session's children from this thread and lets them take its tasks themselves (see
    /// `process::crew`), instead of sending each batch to a thread of the backend that
    /// forks a child or tells one which tasks to run. Nothing crosses threads then, which
    /// is most of what a small call costs. A call with a timeout needs each task's start,
    /// one that keeps going needs its batches' own failures, and a stream's consumer
    /// bounds the batches ahead of it: those go batch by batch.
    #[cfg(unix)]
    fn start_crew(&mut self) {
        let Some(session) = &self.session else { return };
        if self.plan.timeout.is_some() || self.plan.keep_going || !self.collects {
            return;
        }
        let backend: &dyn std::any::Any = &*self.plan.backend;
        if !backend.is::<crate::backend::Multiprocessing>() {
            return;
        }
        let fixed = match self.plan.batch {
            super::batch::BatchSize::Fixed(n) => Some(n),
            super::batch::BatchSize::Auto => None,
        };
        let (tasks, len, decode) = (
            Arc::clone(&session.tasks),
            session.len,
            session.codec.decoder(),
        );
        let inner = self.fork_inner();
        self.announce(false);
        match crate::process::crew::Crew::start(tasks, len, fixed, self.plan.workers, inner) {
            Ok(crew) => {
                self.pulled = len;
                self.crew = Some(CrewRun {
                    crew,
                    decode,
                    early: BTreeMap::new(),
                    next_first: 0,
                });
            }
            // Batch by batch instead, where a failed fork fails its batch.
            Err(e) => tracing::debug!("parjob: the children of a call cannot start: {e}"),
        }
    }

    /// The next range the crew ran, in input order (see `start_crew`).
    #[cfg(unix)]
    fn next_from_crew(&mut self) -> Result<Option<Batch<A::Out>>, Error> {
        loop {
            let Some(run) = self.crew.as_mut() else {
                return Ok(None);
            };
            if let Some((len, results)) = run.early.remove(&run.next_first) {
                let first = run.next_first;
                run.next_first += len;
                let seq = self.next_seq;
                self.next_seq += 1;
                return Ok(Some(self.completed(seq, first, len, results)));
            }
            let error = match run.crew.next() {
                Ok(Some(ran)) => match (run.decode)(&ran.outcome) {
                    Ok(Ok(results)) if results.len() == ran.len => {
                        run.early.insert(ran.first, (ran.len, results));
                        continue;
                    }
                    Ok(Ok(results)) => Error::Transport {
                        index: Some(ran.first),
                        message: format!(
                            "a child sent {} results for {} tasks",
                            results.len(),
                            ran.len
                        ),
                    },
                    Ok(Err(failure)) => {
                        let index = ran.first + failure.index;
                        failure.into_error(index)
                    }
                    Err(message) => Error::Transport {
                        index: Some(ran.first),
                        message,
                    },
                },
                Ok(None) if run.early.is_empty() => return Ok(None),
                Ok(None) => Error::Transport {
                    index: Some(run.next_first),
                    message: "the children sent back ranges that leave a gap".into(),
                },
                Err(error) => error,
            };
            // The children still running go now.
            self.crew = None;
            return Err(self.fail(error));
        }
    }

    /// Dispatches ranges of the session's tasks while fewer than `pre_dispatch` batches are
    /// outstanding (`held` as in `fill`).
    fn fill_ranges(&mut self, held: usize) {
        while self.in_flight.len() + held < self.plan.pre_dispatch {
            let Some(session) = &self.session else { return };
            let remaining = session.len - self.pulled;
            if remaining == 0 || self.abort.load(Ordering::Relaxed) {
                return;
            }
            let len = self
                .sizer
                .next_size(Some(remaining), self.plan.workers)
                .min(remaining);
            let (tasks, decode) = (
                Arc::clone(&session.tasks),
                RemoteDecoder::Typed(session.codec.decoder()),
            );
            let (first, clock, report) = self.track(len);
            let sink = self.remote_sink(first, clock, decode, report);
            let reply = RemoteReply::new(self.plan.timeout.is_some(), sink);
            let work = ForkWork::range(tasks, first, len);
            let inner = self.fork_inner();
            self.announce(false);
            self.plan.backend.spawn(
                self.plan.request(),
                Job::Forked(ForkJob::new(work, reply, inner)),
            );
        }
    }

    /// Records a batch of the next `len` tasks as in flight: its first task, its clock and
    /// where it reports.
    fn track(&mut self, len: usize) -> (usize, Option<Arc<Clock>>, Report<A::Out>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let first = self.pulled;
        self.pulled += len;
        let clock = self.plan.timeout.map(|_| Arc::new(Clock::default()));
        let abandon = if self.plan.keep_going {
            Arc::new(AtomicBool::new(false))
        } else {
            Arc::clone(&self.abort)
        };
        self.in_flight.insert(
            seq,
            InFlight {
                first,
                len,
                clock: clock.clone(),
                abandon,
                in_place: false,
            },
        );
        let report = Report {
            seq,
            tx: self.tx.clone(),
        };
        (first, clock, report)
    }

    /// Hands a batch to the backend; `alone` when the call has nothing else to do until it
    /// ends (the backend may then run it on this thread).
    fn spawn(&mut self, items: Vec<It::Item>, alone: bool) {
        let (first, clock, report) = self.track(items.len());
        let request = self.plan.request();
        // The one place that decides where a batch goes, from what the backend's workers are
        // and whether the batch's tasks can reach them.
        match self.plan.backend.workers() {
            Workers::CallingThread | Workers::Threads => {
                self.announce(false);
                let job = self.local_job(items, first, clock, report);
                self.plan.backend.spawn(request, Job::Local(job));
            }
            Workers::Processes => match self.apply.encode(items, self.plan.keep_going) {
                Encoded::Remote { batch, decode } => {
                    self.announce(false);
                    let sink = self.remote_sink(first, clock, decode, report);
                    let reply = RemoteReply::new(self.plan.timeout.is_some(), sink);
                    let job = RemoteJob::new(batch, reply, self.plan.inner_threads).alone(alone);
                    self.plan.backend.spawn(request, Job::Remote(job));
                }
                Encoded::Unencodable(message) => unencodable(report, first, &message),
                Encoded::Local(back) => self.fall_back(back, first, clock, report),
            },
            Workers::Forks => match self.fork_job(items, first, clock, report) {
                Ok(Some(job)) => {
                    self.announce(false);
                    self.plan.backend.spawn(request, Job::Forked(job));
                }
                Ok(None) => {}
                Err((back, clock, report)) => self.fall_back(back, first, clock, report),
            },
        }
    }

    /// Runs on threads a batch whose tasks cannot reach the backend's processes; under
    /// `PARJOB_STRICT`, fails the call instead.
    fn fall_back(
        &mut self,
        items: Vec<It::Item>,
        first: usize,
        clock: Option<Arc<Clock>>,
        report: Report<A::Out>,
    ) {
        if self.plan.strict {
            let error = Error::WouldRunOnThreads {
                backend: self.plan.backend.name().to_owned(),
                reason: self.fallback_reason(),
            };
            let seq = report.seq;
            return report.send(Message::Failed { seq, error });
        }
        self.warn_fallback();
        self.announce(true);
        let job = self.local_job(items, first, clock, report);
        Threading::new().spawn(self.plan.request(), Job::Local(job));
    }

    /// Names, once, in the progress output the backend the call's first batch went to:
    /// the call's own, or threads when its tasks could not reach the backend's workers.
    fn announce(&mut self, on_threads: bool) {
        if self.announced {
            return;
        }
        self.announced = true;
        if let Some(r) = &self.reporter {
            let backend = if on_threads {
                "threading"
            } else {
                self.plan.backend.name()
            };
            r.start(backend, self.plan.workers);
        }
    }

    /// Where the reply of a batch sent to another process goes.
    fn remote_sink(
        &self,
        first: usize,
        clock: Option<Arc<Clock>>,
        decode: RemoteDecoder<A::Out>,
        report: Report<A::Out>,
    ) -> Box<dyn RemoteSink> {
        let sink: Box<dyn RemoteSink + 'a> = Box::new(RemoteBatchSink {
            first,
            clock,
            decode,
            abort: self.abandon_flag(report.seq),
            report,
            sent: Instant::now(),
        });
        detach(sink)
    }

    /// Why the call's tasks cannot reach the backend's workers.
    fn fallback_reason(&self) -> String {
        match (self.plan.backend.workers(), self.apply.stays_because()) {
            (Workers::Forks, _) => "it runs tasks in forked processes, but the results of these tasks cannot come back from one (their type lacks serde, or is a reference)".into(),
            (_, Some(why)) => format!("it runs tasks in other processes, but {why}"),
            _ => "it runs tasks in other processes, but these tasks cannot leave this one (their closure captures data, or a value lacks serde)".into(),
        }
    }

    /// Says, once per call, that tasks run on threads instead of the backend's processes:
    /// as a `tracing` warning, and on stderr at `verbose > 0`.
    fn warn_fallback(&mut self) {
        if self.fell_back {
            return;
        }
        self.fell_back = true;
        let message = format!(
            "parjob: backend `{}`: {}; running them on threads",
            self.plan.backend.name(),
            self.fallback_reason()
        );
        tracing::warn!("{message}");
        if self.plan.verbose > 0 {
            eprintln!("{message}");
        }
    }

    /// The job of a batch for a forking backend: run in the child as it is, with the results
    /// encoded (or, for tasks without a result codec that can travel whole, encoded and run
    /// as a worker would). `None` when a task would not encode (the batch has failed then);
    /// the batch back when it can do neither.
    #[allow(clippy::type_complexity)]
    fn fork_job(
        &mut self,
        items: Vec<It::Item>,
        first: usize,
        clock: Option<Arc<Clock>>,
        report: Report<A::Out>,
    ) -> Result<Option<ForkJob>, (Vec<It::Item>, Option<Arc<Clock>>, Report<A::Out>)> {
        let nested = self.fork_nested();
        let (work, decode): (Box<dyn FnOnce(Option<fn(usize)>) -> Vec<u8> + Send + 'a>, _) =
            match self.apply.fork_codec() {
                Some(codec) => {
                    let apply = self.apply.clone();
                    let work = move |on_start: Option<fn(usize)>| {
                        run_forked(items, &*apply, nested, codec, on_start)
                    };
                    (Box::new(work), RemoteDecoder::Typed(codec.decoder()))
                }
                None => match self.apply.encode(items, self.plan.keep_going) {
                    Encoded::Remote { batch, decode } => {
                        let work = move |on_start: Option<fn(usize)>| {
                            let _scope = crate::scope::Installed::new(nested);
                            // SAFETY: the batch was made in this process (the child is a
                            // fork of the process that encoded it).
                            unsafe { batch.execute_reporting(None, on_start) }
                        };
                        (Box::new(work), decode)
                    }
                    Encoded::Unencodable(message) => {
                        unencodable(report, first, &message);
                        return Ok(None);
                    }
                    Encoded::Local(back) => return Err((back, clock, report)),
                },
            };
        // The backend drops the work before it finishes the reply, whose sink holds a sender.
        let work: ForkFn = detach(work);
        let sink = self.remote_sink(first, clock, decode, report);
        let reply = RemoteReply::new(self.plan.timeout.is_some(), sink);
        Ok(Some(ForkJob::new(
            ForkWork::new(work),
            reply,
            self.fork_inner(),
        )))
    }

    /// The scope forked children install: the call's nested scope, with nested calls given
    /// `cpu_count / n_jobs` threads unless `inner_max_num_threads` says otherwise.
    fn fork_nested(&mut self) -> Arc<crate::scope::Frame> {
        if let Some(frame) = &self.fork_nested {
            return Arc::clone(frame);
        }
        let mut frame = (*self.plan.nested).clone();
        if frame.n_jobs.is_none() {
            let inner = crate::n_jobs::default_inner_threads(self.plan.workers);
            frame.n_jobs = Some(i32::try_from(inner).unwrap_or(i32::MAX));
        }
        let frame = Arc::new(frame);
        self.fork_nested = Some(Arc::clone(&frame));
        frame
    }

    /// The threads forked children give nested work: those of their scope (see
    /// `fork_nested`), and whether the call named them.
    fn fork_inner(&mut self) -> InnerThreads {
        let count = self.fork_nested().n_jobs.unwrap_or(1);
        InnerThreads {
            count: usize::try_from(count).unwrap_or(1).max(1),
            explicit: self.plan.inner_threads.is_some(),
        }
    }

    /// The job of a batch for a thread of this process.
    fn local_job(
        &mut self,
        items: Vec<It::Item>,
        first: usize,
        clock: Option<Arc<Clock>>,
        report: Report<A::Out>,
    ) -> LocalJob {
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
            abort: self.abandon_flag(report.seq),
            clock,
            nested: Arc::clone(&self.plan.nested),
            report,
            _apply: PhantomData,
        };
        let boxed: Box<dyn FnOnce() + Send + 'a> = Box::new(move || work.run());
        LocalJob::new(detach(boxed))
    }

    /// The flag that says the call gave up batch `seq` (see [`InFlight::abandon`]).
    fn abandon_flag(&self, seq: u64) -> Arc<AtomicBool> {
        match self.in_flight.get(&seq) {
            Some(b) => Arc::clone(&b.abandon),
            None => Arc::clone(&self.abort),
        }
    }

    /// Waits for the next completed batch; `None` once nothing is in flight.
    ///
    /// # Errors
    ///
    /// The first failure (the call is aborted then), or a timeout. In a call that keeps
    /// going, a batch that failed as a whole completes with its tasks' errors instead.
    pub(crate) fn next_batch(&mut self) -> Result<Option<Batch<A::Out>>, Error> {
        #[cfg(unix)]
        if self.crew.is_some() {
            return self.next_from_crew();
        }
        loop {
            if self.in_flight.is_empty() {
                return Ok(None);
            }
            let msg = match self.plan.timeout {
                None => receive(&self.rx, self.helps, None).map_err(|_| (None, disconnected())),
                Some(limit) => self.recv_with_timeout(limit),
            };
            let msg = match msg {
                Ok(m) => m,
                Err((Some(seq), error)) if self.plan.keep_going => {
                    // Past its timeout: that batch alone is given up (its worker process
                    // is killed; a thread finishes its task and skips the rest).
                    if let Some(b) = self.in_flight.get(&seq) {
                        b.abandon.store(true, Ordering::Relaxed);
                        self.plan.backend.abort(self.plan.request());
                    }
                    return self.lost(seq, error);
                }
                Err((_, e)) => return Err(self.fail(e)),
            };
            match msg {
                Message::Done {
                    seq,
                    results,
                    elapsed,
                } => {
                    // A batch the call gave up already (keeps going past a timeout).
                    let Some(done) = self.in_flight.remove(&seq) else {
                        continue;
                    };
                    self.sizer.completed(done.len, elapsed);
                    return Ok(Some(self.completed(seq, done.first, done.len, results)));
                }
                Message::Failed { seq, error } => {
                    if self.in_flight.contains_key(&seq) {
                        return self.lost(seq, error);
                    }
                }
                Message::Dropped { seq } => {
                    if let Some(b) = self.in_flight.get(&seq) {
                        let error = Error::WorkerDied {
                            index: Some(b.first),
                            detail: format!(
                                "backend `{}` dropped a batch without running it",
                                self.plan.backend.name()
                            ),
                        };
                        return self.lost(seq, error);
                    }
                }
            }
        }
    }

    /// Batch `seq` failed as a whole with `error`: the call fails, or, if it keeps going,
    /// the batch completes with its tasks' errors.
    fn lost(&mut self, seq: u64, error: Error) -> Result<Option<Batch<A::Out>>, Error> {
        if !self.plan.keep_going {
            return Err(self.fail(error));
        }
        let Some(b) = self.in_flight.remove(&seq) else {
            return Err(self.fail(error));
        };
        match self.apply.lost(error, b.first, b.len) {
            Ok(results) => Ok(Some(self.completed(seq, b.first, b.len, results))),
            Err(error) => Err(self.fail(error)),
        }
    }

    /// Batch `seq` of tasks `first..first + len` completed with `results`: counted as done.
    fn completed(
        &mut self,
        seq: u64,
        first: usize,
        len: usize,
        results: Vec<A::Out>,
    ) -> Batch<A::Out> {
        if let Some(r) = &mut self.reporter {
            r.advance(len);
        }
        Batch {
            seq,
            first,
            len,
            results,
        }
    }

    /// The next message, or the batch that ran past the timeout and its error.
    fn recv_with_timeout(
        &mut self,
        limit: Duration,
    ) -> Result<Message<A::Out>, (Option<u64>, Error)> {
        loop {
            let now = Instant::now();
            let mut wake =
                now + (limit / 4).clamp(Duration::from_millis(1), Duration::from_millis(50));
            for (&seq, b) in &self.in_flight {
                if let Some((index, started)) = b.clock.as_ref().and_then(|c| c.running()) {
                    let deadline = started + limit;
                    if deadline <= now {
                        let error = Error::Timeout {
                            index,
                            timeout: limit,
                        };
                        return Err((Some(seq), error));
                    }
                    wake = wake.min(deadline);
                }
            }
            match receive(&self.rx, self.helps, Some(wake)) {
                Ok(m) => return Ok(m),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Err((None, disconnected())),
            }
        }
    }

    /// Stops the call: queued tasks are skipped, and the backend frees the workers still
    /// busy with it.
    fn fail(&mut self, error: Error) -> Error {
        self.abort_backend();
        self.announce(false);
        if let Some(r) = &mut self.reporter {
            r.finish(false);
        }
        error
    }

    fn abort_backend(&mut self) {
        abandon_all(&self.abort, &self.in_flight);
        self.input_done = true;
        if !self.in_flight.is_empty() && !self.aborted_backend {
            self.aborted_backend = true;
            self.plan.backend.abort(self.plan.request());
        }
    }

    /// The call completed: report the end of progress.
    pub(crate) fn finish(&mut self) {
        // A call without a single batch (an empty input) still names its backend.
        self.announce(false);
        if let Some(r) = &mut self.reporter {
            r.finish(true);
        }
    }
}

/// A part of a job that may borrow from the caller for `'a`, and the type a backend holds it
/// as: the same type with `'a` extended to `'static`.
trait Detach<'a> {
    type Static;
}

impl<'a> Detach<'a> for Box<dyn FnOnce() + Send + 'a> {
    type Static = Box<dyn FnOnce() + Send>;
}

impl<'a> Detach<'a> for Box<dyn FnOnce(Option<fn(usize)>) -> Vec<u8> + Send + 'a> {
    type Static = ForkFn;
}

impl<'a> Detach<'a> for Box<RunRange<'a>> {
    type Static = RangeFn;
}

impl<'a> Detach<'a> for Box<dyn RemoteSink + 'a> {
    type Static = Box<dyn RemoteSink>;
}

/// Hands a part of a job (the batch's work, or where its reply goes) to a backend, which
/// may keep it beyond `'a`. Every lifetime extension of the dispatcher goes through here.
fn detach<'a, P: Detach<'a>>(part: P) -> P::Static {
    debug_assert_eq!(size_of::<P>(), size_of::<P::Static>());
    let part = std::mem::ManuallyDrop::new(part);
    // SAFETY: `P::Static` is `P` with `'a` extended to `'static` (the impls above), so both
    // have one layout and the value is moved, not copied (`part` is never dropped). The
    // extension is sound because every part holds a clone of its call's channel sender,
    // dropped after everything else it holds (`Report`, the last field of a job's sink;
    // the last field of a session's tasks): either `'a` is `'static` (a dispatcher made by
    // `owned`), or the dispatcher was made by `scoped` and `waits`, and its `drop`, which
    // runs before `'a` ends (it holds `PhantomData<&'a A>`), blocks until every sender is
    // gone, so no part outlives what it borrows.
    unsafe { std::mem::transmute_copy::<std::mem::ManuallyDrop<P>, P::Static>(&part) }
}

/// Gives up the call (`abort`) and each of its batches in flight (see [`InFlight::abandon`]).
fn abandon_all(abort: &AtomicBool, in_flight: &BTreeMap<u64, InFlight>) {
    abort.store(true, Ordering::Relaxed);
    for b in in_flight.values() {
        b.abandon.store(true, Ordering::Relaxed);
    }
}

/// Fails a batch whose tasks could travel but one of them would not encode.
fn unencodable<R>(report: Report<R>, first: usize, message: &str) {
    let error = Error::Transport {
        index: Some(first),
        message: format!("cannot encode a task for a worker process: {message}"),
    };
    let seq = report.seq;
    report.send(Message::Failed { seq, error });
}

fn disconnected() -> Error {
    Error::WorkerDied {
        index: None,
        detail: "every batch of the call is gone without a result".into(),
    }
}

impl<It: Iterator, A: Remote<It::Item>, H> Drop for Dispatcher<'_, It, A, H> {
    fn drop(&mut self) {
        if !self.in_flight.is_empty() {
            abandon_all(&self.abort, &self.in_flight);
            if !self.aborted_backend {
                self.aborted_backend = true;
                self.plan.backend.abort(self.plan.request());
            }
        }
        // Every job holds a sender; once ours is dropped, the channel disconnects exactly
        // when the last job is gone. The session holds one as well, and jobs hold it (and
        // so does the crew).
        #[cfg(unix)]
        {
            self.crew = None;
        }
        self.tx = None;
        self.session = None;
        if self.waits {
            while let Ok(msg) = receive(&self.rx, self.helps, None) {
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
                    let _ = catch_panic(|| unsafe { std::ptr::drop_in_place(range) });
                }
            }
        }
    }
}

/// The next message of `rx`, waiting until `deadline` at most. A call whose jobs run on the
/// calling thread's own rayon pool (`helps`) runs that pool's pending work while it waits
/// (as rayon's `join` does), so that it never waits on the very threads it occupies.
fn receive<T>(
    rx: &Receiver<T>,
    helps: bool,
    deadline: Option<Instant>,
) -> Result<T, RecvTimeoutError> {
    if !helps {
        return match deadline {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(deadline) => rx.recv_deadline(deadline),
        };
    }
    loop {
        match rx.try_recv() {
            Ok(m) => return Ok(m),
            Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) => {}
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(RecvTimeoutError::Timeout);
        }
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            // Nothing to run: a short sleep on the channel, then a new look at the pool.
            let nap = Instant::now() + Duration::from_micros(100);
            match rx.recv_deadline(deadline.map_or(nap, |d| d.min(nap))) {
                Err(RecvTimeoutError::Timeout) => {}
                other => return other,
            }
        }
    }
}
