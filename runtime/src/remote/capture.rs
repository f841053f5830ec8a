//! Captured variables of a comprehension body, in a worker process.
//!
//! `parallel!(fit(x, p) for p in grid)` uses `x`, a variable of the caller. The macro hands
//! the body its captures as one tuple of references, `&(&X, ...)`, so that the closure itself
//! captures nothing and a worker can make its own. Each captured variable's type gets a
//! [`CaptureKind`], chosen where the types are concrete by the probes below: how its value is
//! encoded once per call, decoded once per worker into an owned form (a `&[f32]` becomes a
//! `Vec<f32>`, a `&str` a `String`, a `&T` a `T`), and seen again, in the worker, as a value of
//! the caller's type borrowing from that owned form. The encoded captures travel as an
//! attachment of the call (see [`attach`](super::attach)): once per worker and call, or
//! once for back-to-back calls over the same large captures (see [`recent`](super::recent)).

use std::marker::PhantomData;
use std::mem::MaybeUninit;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::format;

/// How a captured variable of type `T` travels and is seen again in a worker.
pub trait CaptureKind<T>: Copy {
    /// What the worker keeps of it: decoded once, it may borrow from the encoded bytes,
    /// which the worker keeps as long as it.
    type Owned: Send + Sync;

    /// Appends the variable's value to the call's encoded captures.
    fn encode(value: &T, out: &mut Vec<u8>) -> Result<(), String>;

    /// Takes the value's encoding from the front of the captures.
    fn decode(input: &mut &'static [u8]) -> Result<Self::Owned, String>;

    /// The value as the body sees it, borrowing from `owned`; `slot` may hold it.
    ///
    /// # Safety
    ///
    /// The returned reference must not outlive `owned` or `slot`, whatever lifetimes `T`
    /// names (they are the caller's, which the worker does not have).
    unsafe fn view<'o>(owned: &'o Self::Owned, slot: &'o mut MaybeUninit<T>) -> &'o T;

    /// Whether the kind can travel at all (`false` for [`Stays`]).
    fn travels() -> bool {
        true
    }

    /// The captured variable's type, for messages.
    fn type_name() -> &'static str {
        std::any::type_name::<T>()
    }

    /// About how many bytes the encoding takes, to make room once.
    fn size_hint(value: &T) -> usize {
        let _ = value;
        0
    }

    /// As [`encode`](Self::encode), for a kind whose encoding may end with a large block of
    /// memory that already lies in the caller (numbers): writes what comes before the block
    /// and returns the block, which the caller copies once to where it goes.
    fn encode_lent<'v>(value: &'v T, out: &mut Vec<u8>) -> Result<Option<&'v [u8]>, String> {
        Self::encode(value, out).map(|()| None)
    }

    /// Whether [`encode_lent`](Self::encode_lent) may return a block.
    fn lends() -> bool {
        false
    }
}

/// Captured values as encoded: the bytes made, and blocks of the captures' own memory that
/// belong at given positions among them (see [`CaptureKind::encode_lent`]).
#[derive(Debug, Default)]
pub struct Pieces<'v> {
    made: Vec<u8>,
    /// Each block, after the first `.0` bytes of `made`.
    lent: Vec<(usize, &'v [u8])>,
}

impl Pieces<'_> {
    /// The encoding, as slices to put one after the other.
    pub(crate) fn slices(&self) -> Vec<&[u8]> {
        let mut out = Vec::with_capacity(2 * self.lent.len() + 1);
        let mut at = 0;
        for &(pos, block) in &self.lent {
            out.push(&self.made[at..pos]);
            out.push(block);
            at = pos;
        }
        out.push(&self.made[at..]);
        out
    }
}

/// The numbers whose vectors travel as one block of memory.
pub trait Number: Serialize + DeserializeOwned + Copy + Send + Sync + 'static {}

macro_rules! numbers {
    ($($t:ty),*) => {$( impl Number for $t {} )*};
}
numbers!(f64, f32, i64, u64, i32, u32, i16, u16, i8, u8, usize, isize);

/// Serde values, borrowed parts included (`&str` fields, arrays of `&str`): a worker
/// decodes them from bytes it keeps, so they may borrow from those.
pub trait Serde: Serialize + Deserialize<'static> + Send + Sync {}

impl<T: Serialize + Deserialize<'static> + Send + Sync> Serde for T {}

macro_rules! kind_types {
    ($($(#[$doc:meta])* $name:ident $(<$p:ident>)?;)*) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name$(<$p>)?(PhantomData<fn() -> ($($p,)?)>);

        impl$(<$p>)? Clone for $name$(<$p>)? {
            fn clone(&self) -> Self {
                *self
            }
        }

        impl$(<$p>)? Copy for $name$(<$p>)? {}
    )*};
}

kind_types! {
    /// A `&[N]` of numbers: sent as one block, seen again as a slice of the worker's copy.
    NumbersKind<N>;
    /// A `Vec<N>` of numbers used in place: sent as one block.
    NumberVecKind<N>;
    /// A `&Vec<N>` of numbers: sent as one block, seen again as a reference to the copy.
    NumberVecRefKind<N>;
    /// A `&str`: sent as the text, seen again as a `&str` of the worker's `String`.
    StrKind;
    /// A `&[E]` of serde values: sent as the elements, seen again as a slice of the worker's.
    SliceKind<E>;
    /// A `&T` of a serde value: sent as the `T`, seen again as a reference to the worker's.
    RefKind<T>;
    /// A serde value used in place: sent as itself.
    OwnedKind;
    /// A zero-sized `Copy` value (a function named as a value, a unit struct): nothing to
    /// send; the worker makes its own, as it makes the body's closure.
    ZeroSizedKind;
    /// A value that cannot travel: the call's tasks stay in this process.
    Stays;
}

/// The view of `owned` as the caller's reference type, written into `slot`.
///
/// # Safety
///
/// As for [`CaptureKind::view`].
unsafe fn reference<'o, 'a, U: ?Sized>(
    owned: &'o U,
    slot: &'o mut MaybeUninit<&'a U>,
) -> &'o &'a U {
    // SAFETY: the caller keeps the result within `'o`, so the `'a` written here is never
    // relied on beyond it.
    let view: &'a U = unsafe { std::mem::transmute::<&'o U, &'a U>(owned) };
    slot.write(view)
}

fn error(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Numbers a worker received: read in place from the bytes it keeps when they are aligned
/// for `N`, else a copy.
#[derive(Debug)]
pub enum Numbers<N: 'static> {
    /// The numbers in the received bytes.
    InPlace(&'static [N]),
    /// A copy.
    Copied(Vec<N>),
}

impl<N: Number> Numbers<N> {
    fn as_slice(&self) -> &[N] {
        match self {
            Numbers::InPlace(s) => s,
            Numbers::Copied(v) => v,
        }
    }

    /// Takes the numbers `encode_seq` wrote at the front of `input`.
    fn take(input: &mut &'static [u8]) -> Result<Self, String> {
        let Some((count, rest)) = input.split_first_chunk::<8>() else {
            return Err("the captured numbers are cut short".into());
        };
        let count = usize::try_from(u64::from_le_bytes(*count)).map_err(error)?;
        let len = count
            .checked_mul(size_of::<N>())
            .filter(|&len| len <= rest.len())
            .ok_or("the captured numbers are cut short")?;
        let (numbers, after) = rest.split_at(len);
        let in_place = cfg!(target_endian = "little")
            && (numbers.as_ptr() as usize).is_multiple_of(align_of::<N>());
        let numbers = if in_place {
            // SAFETY: `numbers` holds `count` values of `N` (checked above), is aligned for
            // `N`, and `N` is a primitive number (`Number`): every bit pattern is a value and
            // the little-endian encoding is its memory on this little-endian machine. The
            // bytes live as long as the worker keeps them, which outlives this value.
            Numbers::InPlace(unsafe {
                std::slice::from_raw_parts(numbers.as_ptr().cast::<N>(), count)
            })
        } else {
            let mut whole = &input[..8 + len];
            Numbers::Copied(format::decode_next::<Vec<N>>(&mut whole).map_err(error)?)
        };
        *input = after;
        Ok(numbers)
    }
}

impl<'a, N: Number> CaptureKind<&'a [N]> for NumbersKind<N> {
    type Owned = Numbers<N>;
    fn encode(value: &&'a [N], out: &mut Vec<u8>) -> Result<(), String> {
        format::encode_seq(value, out).map_err(error)
    }
    fn decode(input: &mut &'static [u8]) -> Result<Numbers<N>, String> {
        Numbers::take(input)
    }
    fn size_hint(value: &&'a [N]) -> usize {
        8 + size_of_val(*value)
    }
    unsafe fn view<'o>(owned: &'o Numbers<N>, slot: &'o mut MaybeUninit<&'a [N]>) -> &'o &'a [N] {
        // SAFETY: the caller's promise, passed on.
        unsafe { reference(owned.as_slice(), slot) }
    }
    fn encode_lent<'v>(value: &'v &'a [N], out: &mut Vec<u8>) -> Result<Option<&'v [u8]>, String> {
        format::encode_seq_lent(value, out, format::LEND_FROM).map_err(error)
    }
    fn lends() -> bool {
        true
    }
}

impl<N: Number> CaptureKind<Vec<N>> for NumberVecKind<N> {
    type Owned = Vec<N>;
    fn encode(value: &Vec<N>, out: &mut Vec<u8>) -> Result<(), String> {
        format::encode_seq(value, out).map_err(error)
    }
    fn decode(input: &mut &'static [u8]) -> Result<Vec<N>, String> {
        format::decode_next::<Vec<N>>(input).map_err(error)
    }
    unsafe fn view<'o>(owned: &'o Vec<N>, _slot: &'o mut MaybeUninit<Vec<N>>) -> &'o Vec<N> {
        owned
    }
    fn size_hint(value: &Vec<N>) -> usize {
        8 + size_of_val(value.as_slice())
    }
    fn encode_lent<'v>(value: &'v Vec<N>, out: &mut Vec<u8>) -> Result<Option<&'v [u8]>, String> {
        format::encode_seq_lent(value, out, format::LEND_FROM).map_err(error)
    }
    fn lends() -> bool {
        true
    }
}

impl<'a, N: Number> CaptureKind<&'a Vec<N>> for NumberVecRefKind<N> {
    type Owned = Vec<N>;
    fn encode(value: &&'a Vec<N>, out: &mut Vec<u8>) -> Result<(), String> {
        format::encode_seq(value, out).map_err(error)
    }
    fn decode(input: &mut &'static [u8]) -> Result<Vec<N>, String> {
        format::decode_next::<Vec<N>>(input).map_err(error)
    }
    unsafe fn view<'o>(owned: &'o Vec<N>, slot: &'o mut MaybeUninit<&'a Vec<N>>) -> &'o &'a Vec<N> {
        // SAFETY: the caller's promise, passed on.
        unsafe { reference(owned, slot) }
    }
    fn size_hint(value: &&'a Vec<N>) -> usize {
        8 + size_of_val(value.as_slice())
    }
    fn encode_lent<'v>(
        value: &'v &'a Vec<N>,
        out: &mut Vec<u8>,
    ) -> Result<Option<&'v [u8]>, String> {
        format::encode_seq_lent(value, out, format::LEND_FROM).map_err(error)
    }
    fn lends() -> bool {
        true
    }
}

impl<'a> CaptureKind<&'a str> for StrKind {
    type Owned = String;
    fn encode(value: &&'a str, out: &mut Vec<u8>) -> Result<(), String> {
        format::encode_into(*value, out).map_err(error)
    }
    fn decode(input: &mut &'static [u8]) -> Result<String, String> {
        format::decode_borrowed::<String>(input).map_err(error)
    }
    unsafe fn view<'o>(owned: &'o String, slot: &'o mut MaybeUninit<&'a str>) -> &'o &'a str {
        // SAFETY: the caller's promise, passed on.
        unsafe { reference(owned.as_str(), slot) }
    }
}

impl<'a, E: Serde> CaptureKind<&'a [E]> for SliceKind<E> {
    type Owned = Vec<E>;
    fn encode(value: &&'a [E], out: &mut Vec<u8>) -> Result<(), String> {
        format::encode_into(*value, out).map_err(error)
    }
    fn decode(input: &mut &'static [u8]) -> Result<Vec<E>, String> {
        format::decode_borrowed::<Vec<E>>(input).map_err(error)
    }
    unsafe fn view<'o>(owned: &'o Vec<E>, slot: &'o mut MaybeUninit<&'a [E]>) -> &'o &'a [E] {
        // SAFETY: the caller's promise, passed on.
        unsafe { reference(owned.as_slice(), slot) }
    }
}

impl<'a, T: Serde> CaptureKind<&'a T> for RefKind<T> {
    type Owned = T;
    fn encode(value: &&'a T, out: &mut Vec<u8>) -> Result<(), String> {
        format::encode_into(*value, out).map_err(error)
    }
    fn decode(input: &mut &'static [u8]) -> Result<T, String> {
        format::decode_borrowed::<T>(input).map_err(error)
    }
    unsafe fn view<'o>(owned: &'o T, slot: &'o mut MaybeUninit<&'a T>) -> &'o &'a T {
        // SAFETY: the caller's promise, passed on.
        unsafe { reference(owned, slot) }
    }
}

impl<T: Serde> CaptureKind<T> for OwnedKind {
    type Owned = T;
    fn encode(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
        format::encode_into(value, out).map_err(error)
    }
    fn decode(input: &mut &'static [u8]) -> Result<T, String> {
        format::decode_borrowed::<T>(input).map_err(error)
    }
    unsafe fn view<'o>(owned: &'o T, _slot: &'o mut MaybeUninit<T>) -> &'o T {
        owned
    }
}

impl<T: Copy> CaptureKind<T> for ZeroSizedKind {
    type Owned = ();
    fn encode(_value: &T, _out: &mut Vec<u8>) -> Result<(), String> {
        Ok(())
    }
    fn decode(_input: &mut &'static [u8]) -> Result<(), String> {
        Ok(())
    }
    unsafe fn view<'o>(_owned: &'o (), slot: &'o mut MaybeUninit<T>) -> &'o T {
        // SAFETY: `travels` lets this kind be chosen only for a zero-sized `T`, which has no
        // bytes to be invalid; being `Copy`, it has no destructor or ownership to duplicate.
        slot.write(unsafe { std::mem::zeroed() })
    }
    fn travels() -> bool {
        size_of::<T>() == 0
    }
}

impl<T> CaptureKind<T> for Stays {
    type Owned = ();
    fn encode(_value: &T, _out: &mut Vec<u8>) -> Result<(), String> {
        Err("this value cannot leave its process".into())
    }
    fn decode(_input: &mut &'static [u8]) -> Result<(), String> {
        Err("this value cannot leave its process".into())
    }
    unsafe fn view<'o>(_owned: &'o (), _slot: &'o mut MaybeUninit<T>) -> &'o T {
        unreachable!("a capture that stays is never sent")
    }
    fn travels() -> bool {
        false
    }
}

/// The kinds of all of a body's captures, `(K1, K2, ...)`, for captures `(&T1, &T2, ...)`.
pub trait CaptureKinds<C>: Copy {
    /// What the worker keeps of all of them.
    type Owned: Send + Sync;

    /// Whether every capture can travel.
    fn travel() -> bool;

    /// The positions and types of the captures that cannot travel.
    fn staying() -> Vec<(usize, &'static str)>;

    /// Encodes every capture, in order; large blocks of numbers stay where they are until
    /// the pieces are written out.
    fn encode<'v>(captures: &'v C) -> Result<Pieces<'v>, String>;

    /// Decodes what `encode` made; the result may borrow from `bytes`.
    fn decode(bytes: &'static [u8]) -> Result<Self::Owned, String>;

    /// Runs `f` with the captures seen again, borrowing from `owned`.
    fn with<Out>(owned: &Self::Owned, f: impl FnOnce(&C) -> Out) -> Out;
}

macro_rules! capture_tuples {
    ($(($($k:ident $t:ident $i:tt),+))+) => {$(
        impl<'c, $($t: 'c,)+ $($k: CaptureKind<$t>,)+> CaptureKinds<($(&'c $t,)+)> for ($($k,)+) {
            type Owned = ($($k::Owned,)+);

            fn travel() -> bool {
                $($k::travels())&&+
            }

            fn staying() -> Vec<(usize, &'static str)> {
                let mut out = Vec::new();
                $(if !$k::travels() {
                    out.push(($i, $k::type_name()));
                })+
                out
            }

            fn encode<'v>(captures: &'v ($(&'c $t,)+)) -> Result<Pieces<'v>, String> {
                let mut pieces = Pieces::default();
                // Room for what is copied; lent blocks are not.
                pieces.made.reserve(0 $(+ if $k::lends() { 16 } else { $k::size_hint(captures.$i) })+);
                $(
                    if let Some(block) = $k::encode_lent(captures.$i, &mut pieces.made)? {
                        pieces.lent.push((pieces.made.len(), block));
                    }
                )+
                Ok(pieces)
            }

            fn decode(bytes: &'static [u8]) -> Result<Self::Owned, String> {
                let mut input = bytes;
                let owned = ($($k::decode(&mut input)?,)+);
                if input.is_empty() {
                    Ok(owned)
                } else {
                    Err("bytes left over after the captured values".into())
                }
            }

            fn with<Out>(owned: &Self::Owned, f: impl FnOnce(&($(&'c $t,)+)) -> Out) -> Out {
                let mut slots = ($(MaybeUninit::<$t>::uninit(),)+);
                // SAFETY: every view lives in this frame only, with `owned` and `slots`; the
                // transmute only names the caller's lifetime `'c`, which `f` cannot carry out
                // (its result is `Out`, chosen by the caller of `with`, in practice owned
                // results that serde decoded or will encode).
                let captures: ($(&'c $t,)+) = unsafe {
                    ($(std::mem::transmute::<&$t, &'c $t>($k::view(&owned.$i, &mut slots.$i)),)+)
                };
                f(&captures)
            }
        }
    )+};
}

capture_tuples! {
    (K0 T0 0)
    (K0 T0 0, K1 T1 1)
    (K0 T0 0, K1 T1 1, K2 T2 2)
    (K0 T0 0, K1 T1 1, K2 T2 2, K3 T3 3)
    (K0 T0 0, K1 T1 1, K2 T2 2, K3 T3 3, K4 T4 4)
    (K0 T0 0, K1 T1 1, K2 T2 2, K3 T3 3, K4 T4 4, K5 T5 5)
    (K0 T0 0, K1 T1 1, K2 T2 2, K3 T3 3, K4 T4 4, K5 T5 5, K6 T6 6)
    (K0 T0 0, K1 T1 1, K2 T2 2, K3 T3 3, K4 T4 4, K5 T5 5, K6 T6 6, K7 T7 7)
}

/// The question the probes answer for one captured variable of type `T`.
pub struct CaptureProbe<T>(PhantomData<fn() -> T>);

impl<T> CaptureProbe<T> {
    /// The probe for `value`'s type.
    pub fn of(_value: &T) -> Self {
        CaptureProbe(PhantomData)
    }
}

impl<T> std::fmt::Debug for CaptureProbe<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaptureProbe")
    }
}

// The answers of `(&&&&&&&&probe).kind()`, most specific first: each trait is implemented
// for the probe behind as many references as its rank, and method lookup tries the most
// references first. Trait selection cannot see lifetimes, so no answer asks for more than
// serde's `Deserialize<'static>`, which types with borrowed parts also have.

/// First answer: a slice of numbers.
pub trait CaptureNumbers<N> {
    /// The kind.
    fn kind(&self) -> NumbersKind<N> {
        NumbersKind(PhantomData)
    }
}
impl<N: Number> CaptureNumbers<N> for &&&&&&&&CaptureProbe<&[N]> {}

/// Second answer: a reference to a vector of numbers.
pub trait CaptureNumberVecRef<N> {
    /// The kind.
    fn kind(&self) -> NumberVecRefKind<N> {
        NumberVecRefKind(PhantomData)
    }
}
impl<N: Number> CaptureNumberVecRef<N> for &&&&&&&CaptureProbe<&Vec<N>> {}

/// Third answer: a vector of numbers.
pub trait CaptureNumberVec<N> {
    /// The kind.
    fn kind(&self) -> NumberVecKind<N> {
        NumberVecKind(PhantomData)
    }
}
impl<N: Number> CaptureNumberVec<N> for &&&&&&CaptureProbe<Vec<N>> {}

/// Third answer: text.
pub trait CaptureStr {
    /// The kind.
    fn kind(&self) -> StrKind {
        StrKind(PhantomData)
    }
}
impl CaptureStr for &&&&&CaptureProbe<&str> {}

/// Fourth answer: a slice of serde values.
pub trait CaptureSlice<E> {
    /// The kind.
    fn kind(&self) -> SliceKind<E> {
        SliceKind(PhantomData)
    }
}
impl<E: Serde> CaptureSlice<E> for &&&&CaptureProbe<&[E]> {}

/// Fifth answer: a reference to a serde value.
pub trait CaptureRef<T> {
    /// The kind.
    fn kind(&self) -> RefKind<T> {
        RefKind(PhantomData)
    }
}
impl<T: Serde> CaptureRef<T> for &&&CaptureProbe<&T> {}

/// Sixth answer: a serde value.
pub trait CaptureOwned {
    /// The kind.
    fn kind(&self) -> OwnedKind {
        OwnedKind(PhantomData)
    }
}
impl<T: Serde> CaptureOwned for &&CaptureProbe<T> {}

/// Seventh answer: a `Copy` value, which travels if it is zero-sized.
pub trait CaptureZeroSized {
    /// The kind.
    fn kind(&self) -> ZeroSizedKind {
        ZeroSizedKind(PhantomData)
    }
}
impl<T: Copy> CaptureZeroSized for &CaptureProbe<T> {}

/// Last answer: the value stays in this process.
pub trait CaptureStays {
    /// The kind.
    fn kind(&self) -> Stays {
        Stays(PhantomData)
    }
}
impl<T> CaptureStays for CaptureProbe<T> {}
