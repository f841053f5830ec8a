//! Collecting the results of a call into one `Vec`, in input order.

use std::collections::BTreeMap;

use super::apply::Remote;
use super::dispatch::Dispatcher;
use crate::error::Error;

/// Runs the call to the end and appends its results to `out` in input order. With an output
/// buffer set on the dispatcher (`Dispatcher::write_into`), batches run on threads have
/// written their results into `out`'s spare capacity already.
pub(super) fn collect_ordered<'a, It, A, H>(
    mut d: Dispatcher<'a, It, A, H>,
    out: &mut Vec<A::Out>,
) -> Result<(), Error>
where
    It: Iterator,
    It::Item: Send + 'a,
    A: Remote<It::Item> + 'a,
    A::Out: 'a,
    H: std::ops::Deref<Target = A> + Clone + Send + Sync + 'a,
{
    // Batches that come back with their results, by sequence number until their turn.
    let mut pending: BTreeMap<u64, Vec<A::Out>> = BTreeMap::new();
    d.collect_all();
    let mut next = 0u64;
    let in_place = d.writes_in_place();
    let capacity = d.exact_len().unwrap_or(0);
    let mut filled = InPlace {
        buf: out.as_mut_ptr(),
        ranges: Vec::new(),
    };
    loop {
        d.fill(0);
        let Some(batch) = d.next_batch()? else {
            break;
        };
        if in_place && batch.first + batch.len <= capacity {
            if !batch.results.is_empty() {
                // Results that came back in a message (from a worker process).
                let mut results = batch.results;
                // SAFETY: the batch's range lies within the buffer's capacity and no job
                // writes to it: this batch is complete.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        results.as_ptr(),
                        filled.buf.add(batch.first),
                        results.len(),
                    );
                    results.set_len(0);
                }
            }
            filled.ranges.push((batch.first, batch.len));
            continue;
        }
        if in_place {
            // An input longer than it said: these results follow the buffer's.
            pending.insert(batch.seq, batch.results);
            continue;
        }
        if batch.seq != next {
            pending.insert(batch.seq, batch.results);
            continue;
        }
        out.extend(batch.results);
        next += 1;
        while let Some(results) = pending.remove(&next) {
            out.extend(results);
            next += 1;
        }
    }
    d.finish();
    if in_place {
        // Every batch is complete, so the ranges cover `0..written` without a gap.
        let written: usize = filled.ranges.iter().map(|r| r.1).sum();
        filled.ranges.clear();
        // SAFETY: the first `written` slots were initialised by the completed batches.
        unsafe { out.set_len(written) };
        for (_, results) in pending {
            out.extend(results);
        }
    }
    Ok(())
}

/// The ranges of the output buffer that completed batches filled; dropped (with their
/// values) if the call fails before the buffer takes them over.
struct InPlace<R> {
    buf: *mut R,
    ranges: Vec<(usize, usize)>,
}

impl<R> Drop for InPlace<R> {
    fn drop(&mut self) {
        for &(first, len) in &self.ranges {
            // SAFETY: each range was initialised by a completed batch, and nothing else
            // refers to it.
            unsafe {
                std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                    self.buf.add(first),
                    len,
                ));
            }
        }
    }
}
