//! The vectors of numbers copied in one go, by their `TypeId`.

use std::any::{Any, TypeId};

use super::{Decoder, Result};

/// Numbers whose every bit pattern is a valid value and whose little-endian encoding
/// is their memory on a little-endian machine.
///
/// # Safety
///
/// Only for primitive integer and float types.
unsafe trait Number: Copy + 'static {}

macro_rules! numbers {
    ($($t:ty),*) => {$(
        // SAFETY: a primitive integer or float.
        unsafe impl Number for $t {}
    )*};
}
numbers!(f64, f32, i64, u64, i32, u32, i16, u16, i8, u8);

fn bytes_of<N: Number>(v: &[N]) -> &[u8] {
    // SAFETY: `N` is a primitive number (`Number`): no padding, every byte initialised;
    // the slice covers exactly the vector's elements.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), size_of_val(v)) }
}

/// `(length, bytes)` of `value` if it is a vector of numbers, on a little-endian machine.
pub(super) fn as_bytes<T: 'static>(value: &T) -> Option<(usize, &[u8])> {
    if cfg!(target_endian = "big") {
        return None;
    }
    // Type ids of `T` compare at compile time once monomorphised: for any other type
    // this whole function folds away (it runs once per value encoded).
    let id = TypeId::of::<T>();
    macro_rules! try_types {
        ($($t:ty),*) => {$(
            if id == TypeId::of::<Vec<$t>>() {
                // SAFETY: `T` is `Vec<$t>` (equal type ids): the same value, retyped.
                let v = unsafe { &*(value as *const T).cast::<Vec<$t>>() };
                return Some((v.len(), bytes_of(v)));
            }
        )*};
    }
    try_types!(f64, f32, i64, u64, i32, u32, i16, u16, i8, u8);
    None
}

fn read<N: Number>(decoder: &mut Decoder<'_>) -> Result<Vec<N>> {
    let len = decoder.count()?;
    let bytes =
        decoder
            .take(len.checked_mul(size_of::<N>()).ok_or_else(|| {
                super::FormatError(format!("{len} numbers do not fit in memory"))
            })?)?;
    let mut out = Vec::<N>::with_capacity(len);
    // SAFETY: the vector has room for `len` values of `N`, which are `len * size_of::<N>()`
    // bytes, exactly `bytes`; any bit pattern is a valid `N` (`Number`), and the bytes are
    // little-endian, as the machine is (checked by the caller).
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast::<u8>(), bytes.len());
        out.set_len(len);
    }
    Ok(out)
}

/// The memory of `values` if `T` is a number type, on a little-endian machine.
pub(super) fn slice_bytes<T: 'static>(values: &[T]) -> Option<&[u8]> {
    if cfg!(target_endian = "big") {
        return None;
    }
    let id = TypeId::of::<T>();
    macro_rules! try_types {
        ($($t:ty),*) => {$(
            if id == TypeId::of::<$t>() {
                // SAFETY: `T` is `$t` (equal type ids): the same slice, retyped.
                let v = unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<$t>(), values.len()) };
                return Some(bytes_of(v));
            }
        )*};
    }
    try_types!(f64, f32, i64, u64, i32, u32, i16, u16, i8, u8);
    None
}

/// Decodes a `T` that is a vector of numbers; `None` for any other type.
pub(super) fn decode<T: 'static>(decoder: &mut Decoder<'_>) -> Option<Result<T>> {
    if cfg!(target_endian = "big") {
        return None;
    }
    let id = TypeId::of::<T>();
    macro_rules! try_types {
        ($($t:ty),*) => {$(
            if id == TypeId::of::<Vec<$t>>() {
                return Some(read::<$t>(decoder).map(|v| {
                    let boxed: Box<dyn Any> = Box::new(v);
                    // The type ids are equal: the downcast cannot fail.
                    *boxed.downcast::<T>().unwrap_or_else(|_| unreachable!("same type id"))
                }));
            }
        )*};
    }
    try_types!(f64, f32, i64, u64, i32, u32, i16, u16, i8, u8);
    None
}
