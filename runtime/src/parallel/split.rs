//! Inputs that the worker threads split among themselves.
//!
//! On the `threading` backend, a call over a range of integers or a `Vec` does not pass its
//! items through the calling thread: the index range is cut in halves with `rayon::join`
//! until the pieces are small enough, and each thread takes the items of its pieces itself
//! (computed for a range, moved out of the vector's buffer for a `Vec`) and writes their
//! results straight into the output, as rayon's indexed iterators do. Every other input,
//! and every call that reports progress or has a timeout, goes through the dispatcher.
//!
//! The input's type is recognised with `typeid`, which compares types that may hold
//! lifetimes: a generic call cannot name the concrete types otherwise.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::apply::Apply;
use super::plan::Plan;
use crate::backend::threading;
use crate::error::{Error, into_message};
use crate::scope::{self, Frame};
use crate::sync::Recover;

/// Pieces per worker thread: enough for work stealing to even out uneven tasks.
const PIECES_PER_WORKER: usize = 8;
/// The most tasks run between two looks at whether the call already failed.
const MAX_BLOCK: usize = 256;
/// The fewest tasks split on parjob's own pools: for a handful, handing the call to the
/// pool and joining its halves costs more than the dispatcher's jobs (2 tasks per call:
/// 5.7-10.4 us split against 7.1-7.4 us dispatched, `--only W5`).
const MIN_SPLIT: usize = 128;

/// Runs the call by splitting `input` among the pool's threads, if the plan and the input
/// allow it; gives `input` back untouched otherwise.
pub(super) fn try_split<It, A>(
    input: It,
    apply: &A,
    plan: &Plan,
) -> Result<Result<Vec<A::Out>, Error>, It>
where
    It: Iterator,
    It::Item: Send,
    A: Apply<It::Item> + Sync,
{
    let (len, exact) = input.size_hint();
    if exact != Some(len) || len < 2 || !splits(plan) {
        return Err(input);
    }
    let Some(runner) = Runner::for_call(plan, len) else {
        return Err(input);
    };
    // Room for every result, or the dispatcher's path (which collects in pieces).
    let mut out: Vec<A::Out> = Vec::new();
    if out.try_reserve_exact(len).is_err() {
        return Err(input);
    }
    let nested = Arc::clone(&plan.nested);
    macro_rules! integer_ranges {
        ($($int:ty)*) => {$(
            if typeid::of::<It>() == typeid::of::<Range<$int>>() {
                // SAFETY: `It` is `Range<$int>`, a type without lifetimes.
                let range: Range<$int> = unsafe { cast(input) };
                let source = Integers::<$int, It::Item> { start: range.start, item: PhantomData };
                return Ok(runner.run(&source, out, len, apply, nested));
            }
        )*};
    }
    integer_ranges!(usize u64 u32 u16 u8 isize i64 i32 i16 i8);
    if typeid::of::<It>() == typeid::of::<std::vec::IntoIter<It::Item>>() {
        // SAFETY: `It` is `vec::IntoIter<It::Item>`: the two differ in nothing, lifetimes
        // included, since the item type is the same type.
        let items: std::vec::IntoIter<It::Item> = unsafe { cast(input) };
        // Reuses the vector's buffer (std collects a vector's own iterator in place).
        let source = Owned::new(items.collect());
        return Ok(runner.run(&source, out, len, apply, nested));
    }
    Err(input)
}

/// Whether the call may run split: on the built-in `threading` backend (a custom backend
/// gets its jobs through `spawn`), on more than one thread, with nothing that needs a look
/// at each task from outside (progress, timeouts).
fn splits(plan: &Plan) -> bool {
    let backend: &dyn std::any::Any = plan.backend.as_ref();
    backend.is::<crate::backend::Threading>()
        && !plan.runs_inline()
        && plan.timeout.is_none()
        && plan.verbose == 0
        && plan.watchers.is_empty()
}

/// `a` as the type `B` it is known to be.
///
/// # Safety
///
/// `A` and `B` are the same type.
unsafe fn cast<A, B>(a: A) -> B {
    let a = ManuallyDrop::new(a);
    // SAFETY: the caller guarantees that `A` is `B`; `a` is not dropped.
    unsafe { std::ptr::read((&*a as *const A).cast::<B>()) }
}

/// Where the pieces run.
enum Runner {
    /// The call's own pool (`n_jobs` threads at the call's nesting level).
    Pool(Arc<rayon::ThreadPool>),
    /// The rayon pool the calling thread belongs to (rayon's global pool or one of the
    /// program's own): a call made inside `par_iter` shares its threads instead of adding
    /// its own.
    Current,
}

impl Runner {
    /// Where a call of `len` tasks runs split, if it does.
    fn for_call(plan: &Plan, len: usize) -> Option<Runner> {
        if threading::on_foreign_rayon_thread() {
            Some(Runner::Current)
        } else if len < MIN_SPLIT {
            None
        } else {
            threading::pool_for(plan.request()).map(Runner::Pool)
        }
    }

    /// Runs the `len` tasks of `source` into `out`, which is empty with room for `len`.
    fn run<T, S, A>(
        &self,
        source: &S,
        mut out: Vec<A::Out>,
        len: usize,
        apply: &A,
        nested: Arc<Frame>,
    ) -> Result<Vec<A::Out>, Error>
    where
        S: Source<T>,
        A: Apply<T> + Sync,
    {
        let threads = match self {
            Runner::Pool(pool) => pool.current_num_threads(),
            Runner::Current => rayon::current_num_threads(),
        };
        let piece = len.div_ceil(threads.max(1) * PIECES_PER_WORKER).max(1);
        let call = Call {
            source,
            apply,
            nested,
            out: Dest(out.as_mut_ptr()),
            piece,
            block: (piece / 16).clamp(1, MAX_BLOCK),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            filled: Mutex::new(Vec::new()),
            item: PhantomData,
        };
        let work = || call.split(0, len);
        match self {
            Runner::Pool(pool) => pool.install(work),
            Runner::Current => work(),
        }
        let Call {
            failure, filled, ..
        } = call;
        match failure.into_inner().recover() {
            None => {
                // SAFETY: no task failed, so every piece filled its whole range: the first
                // `len` slots hold results.
                unsafe { out.set_len(len) };
                Ok(out)
            }
            Some(error) => {
                for range in filled.into_inner().recover() {
                    let written = std::ptr::slice_from_raw_parts_mut(
                        // SAFETY: the range lies within the buffer's capacity.
                        unsafe { out.as_mut_ptr().add(range.start) },
                        range.len(),
                    );
                    // SAFETY: these slots hold results that nobody else owns; the buffer
                    // keeps length 0, so each is dropped once.
                    let _ =
                        crate::error::catch_panic(|| unsafe { std::ptr::drop_in_place(written) });
                }
                Err(error)
            }
        }
    }
}

/// An input whose items any thread may take by index, each index taken or discarded once.
trait Source<T>: Sync {
    /// The item at `index`.
    ///
    /// # Safety
    ///
    /// `index` is within the input, and neither taken nor discarded before.
    unsafe fn take(&self, index: usize) -> T;

    /// Drops the items of `range`, which nobody will take.
    ///
    /// # Safety
    ///
    /// As [`take`](Source::take), for every index of `range`.
    unsafe fn discard(&self, range: Range<usize>);
}

/// A range of integers: the item at `index` is `start + index`.
struct Integers<N, T> {
    start: N,
    /// `T` is `N` (checked when the source is made).
    item: PhantomData<fn() -> T>,
}

macro_rules! integer_sources {
    ($($int:ty)*) => {$(
        impl<T> Source<T> for Integers<$int, T> {
            #[inline]
            unsafe fn take(&self, index: usize) -> T {
                // The range's length fits in `usize` and in `$int`, and so does `index`.
                let value = self.start.wrapping_add(index as $int);
                // SAFETY: `T` is `$int` (see `item`).
                unsafe { std::mem::transmute_copy(&value) }
            }

            unsafe fn discard(&self, _: Range<usize>) {}
        }
    )*};
}

integer_sources!(usize u64 u32 u16 u8 isize i64 i32 i16 i8);

/// The items of a vector, moved out of its buffer one by one; the buffer is freed when
/// the source is dropped.
struct Owned<T> {
    /// Length 0: the items belong to whoever takes or discards them.
    buffer: Vec<T>,
    items: *mut T,
}

impl<T> Owned<T> {
    fn new(mut items: Vec<T>) -> Self {
        let pointer = items.as_mut_ptr();
        // SAFETY: shrinking the length only: the items stay in the buffer, owned by `take`
        // and `discard` from now on.
        unsafe { items.set_len(0) };
        Owned {
            buffer: items,
            items: pointer,
        }
    }
}

// SAFETY: each item is moved to exactly one thread (`Source`'s contract), which `T: Send`
// allows; the buffer itself is only freed by the owner of the source.
unsafe impl<T: Send> Sync for Owned<T> {}

impl<T: Send> Source<T> for Owned<T> {
    #[inline]
    unsafe fn take(&self, index: usize) -> T {
        // SAFETY: `index` is within the buffer and its item is still there (contract).
        unsafe { self.items.add(index).read() }
    }

    unsafe fn discard(&self, range: Range<usize>) {
        // SAFETY: `range` lies within the buffer (contract).
        let first = unsafe { self.items.add(range.start) };
        let rest = std::ptr::slice_from_raw_parts_mut(first, range.len());
        // SAFETY: the items of `range` are still there and nobody else will drop them.
        let _ = crate::error::catch_panic(|| unsafe { std::ptr::drop_in_place(rest) });
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // `buffer` has length 0: dropping it frees the memory only.
        debug_assert!(self.buffer.is_empty());
    }
}

/// The call's output buffer, written by every thread at disjoint indices.
struct Dest<R>(*mut R);

// SAFETY: threads write distinct slots (each piece its own range), values of a `Send` type.
unsafe impl<R: Send> Sync for Dest<R> {}

/// What every piece of one call shares.
struct Call<'a, T, S, A: Apply<T>> {
    source: &'a S,
    apply: &'a A,
    /// The scope tasks see (the call's nested scope).
    nested: Arc<Frame>,
    out: Dest<A::Out>,
    /// The most items of one piece.
    piece: usize,
    /// Items run between two looks at `failed`.
    block: usize,
    failed: AtomicBool,
    /// The first failure in time.
    failure: Mutex<Option<Error>>,
    /// The output slots filled, piece by piece.
    filled: Mutex<Vec<Range<usize>>>,
    item: PhantomData<fn() -> T>,
}

impl<T, S, A> Call<'_, T, S, A>
where
    S: Source<T>,
    A: Apply<T> + Sync,
{
    fn split(&self, lo: usize, hi: usize) {
        if hi - lo > self.piece {
            let mid = lo + (hi - lo) / 2;
            rayon::join(|| self.split(lo, mid), || self.split(mid, hi));
        } else {
            self.run_piece(lo, hi);
        }
    }

    /// Runs the tasks `lo..hi` in order, in blocks; after a failure (here or in another
    /// piece), drops the items not run yet.
    fn run_piece(&self, lo: usize, hi: usize) {
        let _scope = scope::Installed::new(Arc::clone(&self.nested));
        let mut at = lo;
        while at < hi && !self.failed.load(Ordering::Relaxed) {
            let end = (at + self.block).min(hi);
            let mut written = 0;
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: `at..end` lies within the input and the output, belongs to this
                // piece alone and is taken once; `apply_into` counts what it writes.
                unsafe {
                    self.apply.apply_into(
                        (at..end).map(|i| self.source.take(i)),
                        self.out.0.add(at),
                        &mut written,
                    )
                }
            }));
            let failed_at = at + written;
            at = failed_at;
            let error = match outcome {
                Ok(Ok(())) => continue,
                Ok(Err(source)) => Error::TaskFailed {
                    index: failed_at,
                    source,
                },
                Err(payload) => Error::TaskPanicked {
                    index: failed_at,
                    message: into_message(payload),
                },
            };
            // The failing task took its item with it.
            at += 1;
            self.failed.store(true, Ordering::Relaxed);
            // The first failure in time wins, as on the dispatcher's path.
            self.failure.lock().recover().get_or_insert(error);
            self.filled.lock().recover().push(lo..failed_at);
            // SAFETY: the items after the failing one were not taken.
            unsafe { self.source.discard(at..hi) };
            return;
        }
        self.filled.lock().recover().push(lo..at);
        // SAFETY: `at..hi` was not taken (the call failed elsewhere first).
        unsafe { self.source.discard(at..hi) };
    }
}
