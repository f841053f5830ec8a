//! Deciding, where the types are concrete, whether a call's tasks can cross into another
//! process, and the table a process backend then uses to move a batch.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use std::sync::Arc;

use super::attach::{self, Attachment};
use super::capture::CaptureKinds;
use super::entry::{self, BatchOutcome, EntryFn, Failure};
use super::format;
use super::{Callee, EntryId, RemoteBatch};

/// A value that can be sent to a worker process and back: serde's `Serialize` and
/// `DeserializeOwned`, named for the error message when a type lacks them.
///
/// Implemented for every such type; name it in bounds of code that builds tasks for worker
/// processes.
///
/// ```
/// use parjob::remote::Transferable;
/// use parjob::{Delayed, Parallel};
///
/// fn on_workers<A: Transferable, R: Transferable>(f: fn(A) -> R, args: Vec<A>) -> Vec<R> {
///     Parallel::new().run(args.into_iter().map(|a| Delayed::remote(f, a))).unwrap()
/// }
///
/// fn len(s: String) -> usize { s.len() }
///
/// assert_eq!(on_workers(len, vec!["ab".into(), "c".into()]), [2, 1]);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be sent to a worker process",
    label = "`{Self}` does not implement serde's `Serialize` and `DeserializeOwned`",
    note = "process backends (`loky`, `multiprocessing`, `mpi`) move task inputs and results between processes with serde; derive `serde::Serialize` and `serde::Deserialize` for it, or use the `threading` backend"
)]
pub trait Transferable: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> Transferable for T {}

/// How to move a batch of `I` inputs to a worker process and its `R` results back.
pub struct RemoteMap<I, R> {
    form: RemoteForm,
    /// The call's captured variables, for every batch to name (see `with_captures`).
    captures: Option<CallCaptures>,
    encode: fn(Vec<I>, &mut Vec<u8>) -> Result<(), String>,
    encode_one: fn(I, &mut Vec<u8>) -> Result<(), String>,
    decode: fn(&[u8]) -> Outcome<R>,
    decode_erased: ErasedDecode,
    encode_results: fn(Vec<R>) -> Vec<u8>,
}

/// What a worker needs to know about a batch, without its types: which entry runs it and
/// what it calls.
#[derive(Clone, Copy, Debug)]
pub struct RemoteForm {
    entry: EntryId,
    /// The same entry, going on past a task that panics (for calls that keep going).
    keep_entry: EntryId,
    callee: Callee,
}

impl RemoteForm {
    fn new(entries: [EntryFn; 2], callee: Callee) -> Self {
        RemoteForm {
            entry: EntryId::of_addr(entries[0] as usize),
            keep_entry: EntryId::of_addr(entries[1] as usize),
            callee,
        }
    }

    /// A batch whose payload is already encoded, naming `attachments`; with `keep_going`,
    /// the worker runs every task of it, whichever panic.
    pub(crate) fn batch(
        &self,
        payload: Vec<u8>,
        attachments: Vec<Attachment>,
        keep_going: bool,
    ) -> RemoteBatch {
        RemoteBatch {
            entry: if keep_going {
                self.keep_entry
            } else {
                self.entry
            },
            callee: self.callee,
            payload,
            binary: EntryId::fingerprint(),
            attachments,
        }
    }
}

/// The decoded reply of a worker: the batch's results or the failure that stopped it, or
/// why the reply could not be decoded.
pub(crate) type Outcome<R> = Result<Result<Vec<R>, Failure>, String>;

/// Decodes a worker's reply into a value of the type `out` points to (a
/// `Result<Result<Vec<R>, Failure>, String>` for the `R` the decoder was made for).
pub(crate) type ErasedDecode = unsafe fn(&[u8], *mut ());

/// # Safety
///
/// `out` must point to writable, uninitialised memory for a
/// `Result<Result<Vec<R>, Failure>, String>`.
unsafe fn decode_into<R: DeserializeOwned + 'static>(bytes: &[u8], out: *mut ()) {
    let value = decode_typed::<R>(bytes);
    // SAFETY: the caller passes a pointer to a slot of exactly this type.
    unsafe { out.cast::<Outcome<R>>().write(value) };
}

fn decode_typed<R: DeserializeOwned + 'static>(bytes: &[u8]) -> Outcome<R> {
    Ok(match entry::decode_outcome::<R>(bytes)? {
        BatchOutcome::Done(results) => Ok(results),
        BatchOutcome::Failed(failure) => Err(failure),
    })
}

/// A call's encoded captures, alive (for workers to keep) while any batch map of the call is.
#[derive(Clone, Debug)]
struct CallCaptures {
    attachment: Attachment,
    /// The `Shared` values inside the captures, each its own attachment.
    shared: Vec<Attachment>,
    _alive: Arc<super::recent::InUse>,
}

impl<I, R> Clone for RemoteMap<I, R> {
    fn clone(&self) -> Self {
        RemoteMap {
            form: self.form,
            captures: self.captures.clone(),
            encode: self.encode,
            encode_one: self.encode_one,
            decode: self.decode,
            decode_erased: self.decode_erased,
            encode_results: self.encode_results,
        }
    }
}

impl<I, R> RemoteMap<I, R> {
    /// The type-free part, for tasks that encode their own inputs.
    pub(crate) fn form(&self) -> RemoteForm {
        self.form
    }

    /// Appends one input to a batch payload (a batch is the inputs' count as a little-endian
    /// `u64`, then each input).
    pub(crate) fn element_encoder(&self) -> fn(I, &mut Vec<u8>) -> Result<(), String> {
        self.encode_one
    }
}

impl<I, R> std::fmt::Debug for RemoteMap<I, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteMap")
            .field("form", &self.form)
            .finish()
    }
}

fn encode_vec<I: Serialize + 'static>(items: Vec<I>, out: &mut Vec<u8>) -> Result<(), String> {
    // Sized up front from the items' in-memory size, a fair guess for the fixed-width
    // encoding: growing a buffer of megabytes by doubling costs more than the encoding.
    out.reserve(size_of_val(items.as_slice()).saturating_add(16));
    format::encode_seq(&items, out).map_err(|e| e.to_string())
}

pub(crate) fn encode_one<I: Serialize + 'static>(item: I, out: &mut Vec<u8>) -> Result<(), String> {
    // Appends in place: one buffer for the whole batch, no allocation per input.
    let len = out.len();
    format::encode_value(&item, out).map_err(|e| {
        // The batch is abandoned anyway, but leave the caller a buffer of the length it had.
        out.truncate(len);
        e.to_string()
    })
}

impl<I: Transferable, R: Transferable> RemoteMap<I, R> {
    /// Tasks that call `f` on their input, in whichever process runs them.
    pub fn pointer(f: fn(I) -> R) -> Self {
        RemoteMap {
            form: RemoteForm::new(
                [
                    entry::pointer_entry::<I, R, false>,
                    entry::pointer_entry::<I, R, true>,
                ],
                Callee::Pointer(EntryId::of_addr(f as usize)),
            ),
            captures: None,
            encode: encode_vec::<I>,
            encode_one: encode_one::<I>,
            decode: decode_typed::<R>,
            decode_erased: decode_into::<R>,
            encode_results: entry::encode_done::<R>,
        }
    }

    /// Tasks that call a zero-sized closure of type `F`; `None` if `F` captures data.
    pub fn zero_sized<F: Fn(I) -> R + Copy>() -> Option<Self> {
        (size_of::<F>() == 0).then(|| RemoteMap {
            form: RemoteForm::new(
                [
                    entry::zero_sized_entry::<I, R, F, false>,
                    entry::zero_sized_entry::<I, R, F, true>,
                ],
                Callee::ZeroSized,
            ),
            captures: None,
            encode: encode_vec::<I>,
            encode_one: encode_one::<I>,
            decode: decode_typed::<R>,
            decode_erased: decode_into::<R>,
            encode_results: entry::encode_done::<R>,
        })
    }
}

impl<I: Transferable, R: Transferable> RemoteMap<I, R> {
    /// Tasks that call a zero-sized closure of type `F` with the call's captured variables
    /// `captures`, of kinds `K`: the captures are encoded now, once, and reach each worker
    /// once. `None` if `F` captures data itself, or a captured value cannot travel.
    pub fn with_captures<C, K, F>(captures: &C) -> Result<Option<Self>, String>
    where
        K: CaptureKinds<C>,
        F: Fn(&C, I) -> R + Copy,
    {
        if size_of::<F>() != 0 {
            return Ok(None);
        }
        let entries: [EntryFn; 2] = [
            entry::captured_entry::<C, K, I, R, F, false>,
            entry::captured_entry::<C, K, I, R, F, true>,
        ];
        Self::captured::<C, K>(captures, entries, Callee::ZeroSized)
    }

    /// As [`with_captures`](RemoteMap::with_captures), for a body that is a `fn` pointer.
    pub fn with_captures_pointer<C, K>(
        captures: &C,
        f: fn(&C, I) -> R,
    ) -> Result<Option<Self>, String>
    where
        K: CaptureKinds<C>,
    {
        let entries: [EntryFn; 2] = [
            entry::captured_pointer_entry::<C, K, I, R, false>,
            entry::captured_pointer_entry::<C, K, I, R, true>,
        ];
        let callee = Callee::Pointer(EntryId::of_addr(f as usize));
        Self::captured::<C, K>(captures, entries, callee)
    }

    fn captured<C, K: CaptureKinds<C>>(
        captures: &C,
        entries: [EntryFn; 2],
        callee: Callee,
    ) -> Result<Option<Self>, String> {
        if !K::travel() {
            return Ok(None);
        }
        let (pieces, shared) = attach::collect(|| K::encode(captures));
        // The same captures as a recent call's reuse its attachment: workers have it.
        let kind = std::any::type_name::<(C, K)>();
        let (attachment, alive) = super::recent::captures(kind, &pieces?.slices());
        let alive = Arc::new(alive);
        Ok(Some(RemoteMap {
            form: RemoteForm::new(entries, callee),
            captures: Some(CallCaptures {
                attachment,
                shared,
                _alive: alive,
            }),
            encode: encode_vec::<I>,
            encode_one: encode_one::<I>,
            decode: decode_typed::<R>,
            decode_erased: decode_into::<R>,
            encode_results: entry::encode_done::<R>,
        }))
    }
}

impl<I, R> RemoteMap<I, R> {
    /// Decodes what a worker sent back for a batch of this map.
    pub(crate) fn decoder(&self) -> fn(&[u8]) -> Outcome<R> {
        self.decode
    }

    /// The same decoder without its type, for tasks that keep it (see `Delayed`).
    pub(crate) fn erased_decoder(&self) -> ErasedDecode {
        self.decode_erased
    }

    /// How the results alone travel (for a forked child, which already has the inputs).
    pub(crate) fn results(&self) -> ResultCodec<R> {
        ResultCodec {
            encode: self.encode_results,
            decode: self.decode,
        }
    }

    /// Encodes a batch for a worker.
    #[cfg(test)]
    pub(crate) fn batch(&self, items: Vec<I>) -> Result<RemoteBatch, String> {
        self.batch_for(items, false)
    }

    /// The batch of `items`; with `keep_going`, run to the end past tasks that panic.
    pub(crate) fn batch_for(&self, items: Vec<I>, keep_going: bool) -> Result<RemoteBatch, String> {
        let mut payload = Vec::new();
        if let Some(captures) = &self.captures {
            payload.extend_from_slice(&captures.attachment.id().to_le_bytes());
        }
        let (encoded, mut attachments) = attach::collect(|| (self.encode)(items, &mut payload));
        encoded?;
        if let Some(captures) = &self.captures {
            // The captures' own shared values first: decoding the captures needs them.
            attachments.extend(captures.shared.iter().cloned());
            attachments.push(captures.attachment.clone());
        }
        Ok(self.form.batch(payload, attachments, keep_going))
    }

    /// Decodes what a worker sent back.
    #[cfg(test)]
    pub(crate) fn outcome(&self, bytes: &[u8]) -> Outcome<R> {
        (self.decode)(bytes)
    }
}

/// Asks, by method resolution on concrete types, whether tasks running `F` on inputs `I`
/// can go to another process; `K` is the task's shape ([`Plain`]: `F: Fn(I) -> R`, or
/// [`Filtered`]: `F: Fn(I) -> Option<R>`, a comprehension with `if`).
///
/// With the four `Via*` traits in scope, `(&&&&probe).remote_map()` tries, in order:
/// [`ViaRefItem`] (inputs are references: they cannot travel), [`ViaRefResult`] (results are
/// references), [`ViaSerde`] (serde types and a `Copy` closure: the remote form, if the
/// closure is zero-sized), and [`ViaShared`] (no remote form). The reference checks come
/// first because trait selection cannot see lifetimes: `&str` looks deserialisable to it.
/// Generated by the macros.
pub struct RemoteProbe<I, R, F, K>(PhantomData<ProbeTypes<I, R, F, K>>);

type ProbeTypes<I, R, F, K> = (fn(I) -> R, fn() -> F, K);

/// Shape of a task whose function returns its result.
#[derive(Debug)]
pub struct Plain;

/// Shape of a comprehension task whose function returns `None` for filtered-out items.
#[derive(Debug)]
pub struct Filtered;

/// What a task of shape `Self` returns, for results of type `R`.
pub trait Shape<R> {
    /// `R` or `Option<R>`.
    type Out;
}

impl<R> Shape<R> for Plain {
    type Out = R;
}

impl<R> Shape<R> for Filtered {
    type Out = Option<R>;
}

impl<I, R, F, K> std::fmt::Debug for RemoteProbe<I, R, F, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteProbe")
    }
}

impl<I, R, F, K> RemoteProbe<I, R, F, K> {
    /// A probe of these types, whatever `F` is.
    pub(crate) fn of_types() -> Self {
        RemoteProbe(PhantomData)
    }
}

impl<I, R, F> RemoteProbe<I, R, F, Plain> {
    /// A probe for `f: Fn(I) -> R`.
    pub fn plain(_f: &F) -> Self
    where
        F: Fn(I) -> R,
    {
        RemoteProbe(PhantomData)
    }
}

impl<I, R, F> RemoteProbe<I, R, F, Filtered> {
    /// A probe for `f: Fn(I) -> Option<R>`.
    pub fn filtered(_f: &F) -> Self
    where
        F: Fn(I) -> Option<R>,
    {
        RemoteProbe(PhantomData)
    }
}

/// First answer: inputs that are references stay in this process.
pub trait ViaRefItem<I, O> {
    /// No remote form.
    fn remote_map(&self) -> Option<RemoteMap<I, O>> {
        None
    }
}

impl<T: ?Sized, R, F, K: Shape<R>> ViaRefItem<&T, K::Out> for &&&RemoteProbe<&T, R, F, K> {}

/// Second answer: results that are references stay in this process.
pub trait ViaRefResult<I, O> {
    /// No remote form.
    fn remote_map(&self) -> Option<RemoteMap<I, O>> {
        None
    }
}

impl<'a, I, T: ?Sized, F, K: Shape<&'a T>> ViaRefResult<I, K::Out>
    for &&RemoteProbe<I, &'a T, F, K>
{
}

/// Third answer: serde inputs and results, and a closure that may be zero-sized.
pub trait ViaSerde<I, O> {
    /// The remote form, if the closure also captures nothing (is zero-sized).
    fn remote_map(&self) -> Option<RemoteMap<I, O>>;
}

impl<I: Transferable, R: Transferable, F: Fn(I) -> R + Copy> ViaSerde<I, R>
    for &RemoteProbe<I, R, F, Plain>
{
    fn remote_map(&self) -> Option<RemoteMap<I, R>> {
        RemoteMap::zero_sized::<F>()
    }
}

impl<I: Transferable, R: Transferable, F: Fn(I) -> Option<R> + Copy> ViaSerde<I, Option<R>>
    for &RemoteProbe<I, R, F, Filtered>
{
    fn remote_map(&self) -> Option<RemoteMap<I, Option<R>>> {
        RemoteMap::zero_sized::<F>()
    }
}

/// Last answer: shared memory only.
pub trait ViaShared<I, O> {
    /// No remote form.
    fn remote_map(&self) -> Option<RemoteMap<I, O>> {
        None
    }
}

impl<I, R, F, K: Shape<R>> ViaShared<I, K::Out> for RemoteProbe<I, R, F, K> {}

/// How a batch's results of type `R` come back from another process on their own: what a
/// forked child (the `multiprocessing` backend) needs, since it already has the inputs.
pub struct ResultCodec<R> {
    encode: fn(Vec<R>) -> Vec<u8>,
    decode: fn(&[u8]) -> Outcome<R>,
}

impl<R> Clone for ResultCodec<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for ResultCodec<R> {}

impl<R> std::fmt::Debug for ResultCodec<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResultCodec")
    }
}

impl<R: Transferable> ResultCodec<R> {
    /// The codec of a serde type.
    pub fn new() -> Self {
        ResultCodec {
            encode: entry::encode_done::<R>,
            decode: decode_typed::<R>,
        }
    }
}

impl<R: Transferable> Default for ResultCodec<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R> ResultCodec<R> {
    /// Encodes a completed batch's results (or the failure to encode one of them).
    pub(crate) fn encode(&self, results: Vec<R>) -> Vec<u8> {
        (self.encode)(results)
    }

    /// Decodes what [`encode`](ResultCodec::encode) made, or a failure report.
    pub(crate) fn decoder(&self) -> fn(&[u8]) -> Outcome<R> {
        self.decode
    }
}

/// First answer of `(&&&probe).result_codec()`: results that are references cannot leave
/// this process.
pub trait ResultsViaRef<O> {
    /// No codec.
    fn result_codec(&self) -> Option<ResultCodec<O>> {
        None
    }
}

impl<'a, I, T: ?Sized, F, K: Shape<&'a T>> ResultsViaRef<K::Out> for &&RemoteProbe<I, &'a T, F, K> {}

/// Second answer: serde results can, whatever the inputs and the closure.
pub trait ResultsViaSerde<O> {
    /// The codec.
    fn result_codec(&self) -> Option<ResultCodec<O>>;
}

impl<I, R, F, K> ResultsViaSerde<K::Out> for &RemoteProbe<I, R, F, K>
where
    K: Shape<R>,
    K::Out: Transferable,
{
    fn result_codec(&self) -> Option<ResultCodec<K::Out>> {
        Some(ResultCodec::new())
    }
}

/// Last answer: results stay in this process.
pub trait ResultsLocal<O> {
    /// No codec.
    fn result_codec(&self) -> Option<ResultCodec<O>> {
        None
    }
}

impl<I, R, F, K: Shape<R>> ResultsLocal<K::Out> for RemoteProbe<I, R, F, K> {}

#[cfg(test)]
// The probes are called as the macros call them: the extra borrows select the impl.
#[allow(clippy::needless_borrow)]
mod tests {
    use super::*;
    use crate::remote::FailureKind;

    fn double(x: u32) -> u32 {
        x * 2
    }

    fn round_trip<I, R: 'static>(map: RemoteMap<I, R>, items: Vec<I>) -> Result<Vec<R>, Failure> {
        let batch = map.batch(items).unwrap();
        let wire = postcard::to_allocvec(&batch).unwrap();
        let received: RemoteBatch = postcard::from_bytes(&wire).unwrap();
        // SAFETY: made in this process.
        let bytes = unsafe { received.execute() };
        map.outcome(&bytes).unwrap()
    }

    #[test]
    fn pointer_batches_run_after_a_wire_round_trip() {
        let map = RemoteMap::pointer(double as fn(u32) -> u32);
        assert_eq!(round_trip(map, vec![1, 2, 3]), Ok(vec![2, 4, 6]));
    }

    fn odd_panics(x: u32) -> u32 {
        assert!(x.is_multiple_of(2), "{x} is odd");
        x
    }

    #[test]
    fn a_batch_that_keeps_going_runs_past_its_panics() {
        let map = RemoteMap::pointer(odd_panics as fn(u32) -> u32);
        // Stopping at the first panic: the batch fails there.
        let failure = round_trip(map.clone(), vec![0, 1, 2, 3]).unwrap_err();
        assert_eq!((failure.index, failure.kind), (1, FailureKind::Panicked));
        // Going on: the panics come first, then the results of the others.
        let batch = map.batch_for(vec![0, 1, 2, 3, 4], true).unwrap();
        // SAFETY: made in this process.
        let bytes = unsafe { batch.execute() };
        let (failures, rest) = entry::split_kept(&bytes).unwrap();
        let at: Vec<_> = failures
            .iter()
            .map(|f| (f.index, f.message.as_str()))
            .collect();
        assert_eq!(at, [(1, "1 is odd"), (3, "3 is odd")]);
        assert_eq!(map.outcome(rest), Ok(Ok(vec![0, 2, 4])));
        // Without a panic, the reply is the one of a batch that stops at the first.
        let batch = map.batch_for(vec![2, 4], true).unwrap();
        // SAFETY: as above.
        let bytes = unsafe { batch.execute() };
        assert_eq!(entry::split_kept(&bytes).unwrap().0, []);
        assert_eq!(map.outcome(&bytes), Ok(Ok(vec![2, 4])));
        // Failures out of order or cut short are refused, not trusted.
        let swapped = entry::encode_kept(
            &[failure_at(3), failure_at(1)],
            entry::encode_done(vec![0u32]),
        );
        assert!(entry::split_kept(&swapped).is_err());
        assert!(entry::split_kept(&[2, 9]).is_err());
    }

    fn failure_at(index: usize) -> Failure {
        Failure {
            index,
            kind: FailureKind::Panicked,
            message: String::new(),
            source: None,
        }
    }

    #[test]
    fn zero_sized_closures_run_and_capturing_ones_are_refused() {
        let f = |s: String| s.len();
        let probe = RemoteProbe::plain(&f);
        let map = (&&&&probe)
            .remote_map()
            .expect("non-capturing closure goes remote");
        assert_eq!(
            round_trip(map, vec!["ab".into(), "".into()]),
            Ok(vec![2, 0])
        );

        let offset = 3usize;
        let g = move |s: String| s.len() + offset;
        let probe = RemoteProbe::plain(&g);
        assert!((&&&&probe).remote_map().is_none(), "captures `offset`");
    }

    #[test]
    fn types_without_serde_fall_back_to_shared_memory() {
        struct Opaque;
        let f = |_: Opaque| 1u8;
        let probe = RemoteProbe::plain(&f);
        assert!((&&&&probe).remote_map().is_none());

        let words = [String::from("a")];
        let by_ref = |s: &str| s.len();
        let probe = RemoteProbe::plain(&by_ref);
        assert!((&&&&probe).remote_map().is_none(), "borrowed inputs");
        let _ = words;

        let label = |n: u8| if n > 0 { "some" } else { "none" };
        let probe = RemoteProbe::plain(&label);
        assert!((&&&&probe).remote_map().is_none(), "borrowed results");

        let keep = |n: u8| (n > 1).then_some("big");
        let probe = RemoteProbe::filtered(&keep);
        assert!(
            (&&&&probe).remote_map().is_none(),
            "borrowed filtered results"
        );
    }

    #[test]
    fn a_panic_in_a_remote_task_names_the_task() {
        fn picky(x: u32) -> u32 {
            assert!(x != 2, "two is not allowed");
            x
        }
        let failure = round_trip(
            RemoteMap::pointer(picky as fn(u32) -> u32),
            vec![0, 1, 2, 3],
        )
        .unwrap_err();
        assert_eq!(failure.index, 2);
        assert_eq!(failure.kind, crate::remote::FailureKind::Panicked);
        assert_eq!(failure.message, "two is not allowed");
    }

    #[test]
    fn corrupted_payloads_are_decode_failures() {
        let map = RemoteMap::pointer(double as fn(u32) -> u32);
        let mut batch = map.batch(vec![1, 2, 3]).unwrap();
        batch.payload = vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        // SAFETY: made in this process.
        let bytes = unsafe { batch.execute() };
        let failure = map.outcome(&bytes).unwrap().unwrap_err();
        assert_eq!(failure.kind, crate::remote::FailureKind::Decode);
        batch.binary ^= 1;
        // SAFETY: the fingerprint check refuses the batch before any id is used.
        let bytes = unsafe { batch.execute() };
        let failure = map.outcome(&bytes).unwrap().unwrap_err();
        assert!(failure.message.contains("different binary"), "{failure:?}");
        assert_eq!(failure.kind, crate::remote::FailureKind::Decode);
        assert!(map.outcome(&[9, 9]).is_err());
        assert!(map.outcome(&[]).is_err());
    }
}
