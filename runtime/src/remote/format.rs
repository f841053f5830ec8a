//! The encoding of task inputs and results between processes of the same binary.
//!
//! Both ends run the same code, so the format describes nothing about itself: values are
//! written in the order serde visits them, numbers as fixed-width little-endian, lengths as
//! `u64`, enum variants as their `u32` index, `Option` as a `0`/`1` byte. Fixed widths make
//! the common large payload (a `Vec` of numbers) one tight loop of 8-byte stores and loads,
//! several times faster than a varint format, at the price of a few bytes on small integers.
//!
//! Decoding checks every length against the bytes left, so a corrupt or truncated buffer is
//! an error, never a panic or an allocation of what the buffer claims.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::ser::{self, Serialize};

/// Why a value could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormatError(String);

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FormatError {}

impl ser::Error for FormatError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        FormatError(msg.to_string())
    }
}

impl de::Error for FormatError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        FormatError(msg.to_string())
    }
}

type Result<T> = std::result::Result<T, FormatError>;

/// Appends the encoding of `value` to `out`. On error `out` may hold part of the value.
pub(crate) fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    value.serialize(&mut Encoder { out })
}

/// Decodes a `T` from the start of `bytes`; the rest must be empty.
pub(crate) fn decode<T: de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let mut decoder = Decoder { input: bytes };
    let value = T::deserialize(&mut decoder)?;
    whole(value, &decoder)
}

/// `value`, if the decoder took every byte.
fn whole<T>(value: T, decoder: &Decoder<'_>) -> Result<T> {
    if decoder.input.is_empty() {
        Ok(value)
    } else {
        Err(FormatError(format!(
            "{} bytes left over after the value",
            decoder.input.len()
        )))
    }
}

/// Appends a sequence of values: its length, then each value (see [`encode_value`]). The
/// same bytes as `encode_into` of the `Vec`.
pub(crate) fn encode_seq<T: Serialize + 'static>(values: &[T], out: &mut Vec<u8>) -> Result<()> {
    out.extend_from_slice(&(values.len() as u64).to_le_bytes());
    if let Some(bytes) = bulk::slice_bytes(values) {
        // A sequence of numbers: its memory is its encoding.
        out.extend_from_slice(bytes);
        return Ok(());
    }
    values.iter().try_for_each(|v| encode_value(v, out))
}

/// As [`encode_seq`], but a sequence of numbers of at least `lend_from` bytes is not copied:
/// only its count is written, and its memory, which is the rest of its encoding, is
/// returned for the caller to put right after it.
pub(crate) fn encode_seq_lent<'v, T: Serialize + 'static>(
    values: &'v [T],
    out: &mut Vec<u8>,
    lend_from: usize,
) -> Result<Option<&'v [u8]>> {
    match bulk::slice_bytes(values) {
        Some(bytes) if bytes.len() >= lend_from => {
            out.extend_from_slice(&(values.len() as u64).to_le_bytes());
            Ok(Some(bytes))
        }
        _ => encode_seq(values, out).map(|()| None),
    }
}

/// Decodes what [`encode_seq`] made; the bytes must hold exactly that.
pub(crate) fn decode_seq<T: de::DeserializeOwned + 'static>(bytes: &[u8]) -> Result<Vec<T>> {
    let mut decoder = Decoder { input: bytes };
    if let Some(values) = bulk::decode::<Vec<T>>(&mut decoder) {
        let values = values?;
        return match decoder.input.len() {
            0 => Ok(values),
            left => Err(FormatError(format!(
                "{left} bytes left over after the values"
            ))),
        };
    }
    let count = decoder.count()?;
    // The count is checked, not trusted: room for at most one value per byte left, and at
    // most 64 MiB up front; a longer sequence grows as its values arrive.
    let cap = count
        .min(decoder.input.len())
        .min((64 << 20) / size_of::<T>().max(1));
    let mut out = Vec::with_capacity(cap);
    for _ in 0..count {
        out.push(decode_value(&mut decoder)?);
    }
    if decoder.input.is_empty() {
        Ok(out)
    } else {
        Err(FormatError(format!(
            "{} bytes left over after the values",
            decoder.input.len()
        )))
    }
}

/// Appends one value. A vector of numbers (`Vec<f64>`, `Vec<i32>`, ...) is copied in one
/// go: its memory already is the encoding (on little-endian machines), so a large numeric
/// input costs a copy instead of a store per number. Anything else goes through serde.
pub(crate) fn encode_value<T: Serialize + 'static>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    if let Some((len, bytes)) = bulk::as_bytes(value) {
        out.reserve(8 + bytes.len());
        out.extend_from_slice(&(len as u64).to_le_bytes());
        out.extend_from_slice(bytes);
        return Ok(());
    }
    encode_into(value, out)
}

/// Blocks of numbers smaller than this are copied with the rest of an encoding rather than
/// lent (see [`encode_seq_lent`]).
pub(crate) const LEND_FROM: usize = 64 << 10;

/// As [`encode_value`], but a vector of numbers of at least `lend_from` bytes is not copied:
/// only its count is written, and its memory is returned, as [`encode_seq_lent`] does.
pub(crate) fn encode_value_lent<'v, T: Serialize + 'static>(
    value: &'v T,
    out: &mut Vec<u8>,
    lend_from: usize,
) -> Result<Option<&'v [u8]>> {
    if let Some((len, bytes)) = bulk::as_bytes(value)
        && bytes.len() >= lend_from
    {
        out.extend_from_slice(&(len as u64).to_le_bytes());
        return Ok(Some(bytes));
    }
    encode_value(value, out).map(|()| None)
}

/// Decodes what [`encode_value`] made; the rest of `bytes` must be empty. When `bytes` lie
/// in a shared mapping of a memory file (`mapped`), a vector of numbers is read in place
/// where it can be, and the pages it maps are returned, to be restored before the value is
/// dropped (see [`Placed`]).
pub(crate) fn decode_whole_placed<T: de::DeserializeOwned + 'static>(
    bytes: &[u8],
    mapped: bool,
) -> Result<(T, Option<Placed>)> {
    let mut decoder = Decoder { input: bytes };
    let mut placed = None;
    let value = match bulk::decode_placed::<T>(&mut decoder, mapped, &mut placed) {
        Some(value) => value?,
        None => T::deserialize(&mut decoder)?,
    };
    if !decoder.input.is_empty() {
        // Restored before the value goes.
        let restored = placed.take().is_none_or(Placed::restore);
        if !restored {
            std::mem::forget(value);
        }
        return Err(FormatError(format!(
            "{} bytes left over after the value",
            decoder.input.len()
        )));
    }
    Ok((value, placed))
}

fn decode_value<T: de::DeserializeOwned + 'static>(decoder: &mut Decoder<'_>) -> Result<T> {
    if let Some(value) = bulk::decode::<T>(decoder) {
        return value;
    }
    T::deserialize(decoder)
}

mod bulk;
pub(crate) use bulk::{Placed, page_size, placement};

struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

impl Encoder<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    #[inline]
    fn len(&mut self, len: usize) {
        self.put(&(len as u64).to_le_bytes());
    }
}

/// A sequence or map being written: its length is patched in at the end, since serde may
/// not know it in advance.
struct Counted<'e, 'a> {
    enc: &'e mut Encoder<'a>,
    at: usize,
    count: u64,
}

impl<'e, 'a> Counted<'e, 'a> {
    fn new(enc: &'e mut Encoder<'a>) -> Self {
        let at = enc.out.len();
        enc.put(&[0; 8]);
        Counted { enc, at, count: 0 }
    }

    fn finish(self) {
        self.enc.out[self.at..self.at + 8].copy_from_slice(&self.count.to_le_bytes());
    }
}

macro_rules! put_le {
    ($($method:ident: $t:ty),* $(,)?) => {$(
        #[inline]
        fn $method(self, v: $t) -> Result<()> {
            self.put(&v.to_le_bytes());
            Ok(())
        }
    )*};
}

impl<'e, 'a> ser::Serializer for &'e mut Encoder<'a> {
    type Ok = ();
    type Error = FormatError;
    type SerializeSeq = Counted<'e, 'a>;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Counted<'e, 'a>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    put_le! {
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_u128: u128, serialize_f32: f32, serialize_f64: f64,
    }

    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<()> {
        self.put(&[u8::from(v)]);
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<()> {
        self.serialize_u32(u32::from(v))
    }

    fn serialize_str(self, v: &str) -> Result<()> {
        self.serialize_bytes(v.as_bytes())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        self.len(v.len());
        self.put(v);
        Ok(())
    }

    fn serialize_none(self) -> Result<()> {
        self.put(&[0]);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        self.put(&[1]);
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<()> {
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        index: u32,
        _v: &'static str,
    ) -> Result<()> {
        self.serialize_u32(index)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<()> {
        self.serialize_u32(index)?;
        value.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Counted<'e, 'a>> {
        if let Some(len) = len {
            // Room for the length and at least a byte per element; numbers take more and
            // grow the buffer once or twice at most, as callers pre-size it.
            self.out.reserve(8 + len);
        }
        Ok(Counted::new(self))
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self> {
        self.serialize_u32(index)?;
        Ok(self)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Counted<'e, 'a>> {
        Ok(Counted::new(self))
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self> {
        self.serialize_u32(index)?;
        Ok(self)
    }
}

impl ser::SerializeSeq for Counted<'_, '_> {
    type Ok = ();
    type Error = FormatError;

    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.count += 1;
        value.serialize(&mut *self.enc)
    }

    fn end(self) -> Result<()> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeMap for Counted<'_, '_> {
    type Ok = ();
    type Error = FormatError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        self.count += 1;
        key.serialize(&mut *self.enc)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        value.serialize(&mut *self.enc)
    }

    fn end(self) -> Result<()> {
        self.finish();
        Ok(())
    }
}

macro_rules! fields {
    ($($trait:ident :: $method:ident $(($key:ty))?),* $(,)?) => {$(
        impl ser::$trait for &mut Encoder<'_> {
            type Ok = ();
            type Error = FormatError;

            #[inline]
            fn $method<T: Serialize + ?Sized>(&mut self, $(_key: $key,)? value: &T) -> Result<()> {
                value.serialize(&mut **self)
            }

            fn end(self) -> Result<()> {
                Ok(())
            }
        }
    )*};
}

fields! {
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
    SerializeStruct::serialize_field(&'static str),
    SerializeStructVariant::serialize_field(&'static str),
}

struct Decoder<'de> {
    input: &'de [u8],
}

/// Decodes the value at the front of `input` through serde alone (it may borrow from
/// `input`), and moves `input` past it.
pub(crate) fn decode_borrowed<'de, T: de::Deserialize<'de>>(input: &mut &'de [u8]) -> Result<T> {
    let mut decoder = Decoder { input };
    let value = T::deserialize(&mut decoder)?;
    *input = decoder.input;
    Ok(value)
}

/// Decodes the value at the front of `input`, as [`encode_value`] wrote it, and moves
/// `input` past it.
pub(crate) fn decode_next<T: de::DeserializeOwned + 'static>(input: &mut &[u8]) -> Result<T> {
    let mut decoder = Decoder { input };
    let value = decode_value(&mut decoder)?;
    *input = decoder.input;
    Ok(value)
}

/// More elements than this beyond the bytes left is taken for corruption: every element
/// but a zero-sized one takes at least a byte.
const ZERO_SIZED_SLACK: u64 = 1 << 24;

impl<'de> Decoder<'de> {
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'de [u8]> {
        if self.input.len() < n {
            return Err(FormatError(format!(
                "truncated: {n} bytes wanted, {} left",
                self.input.len()
            )));
        }
        let (head, rest) = self.input.split_at(n);
        self.input = rest;
        Ok(head)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn byte_len(&mut self) -> Result<usize> {
        let len = u64::from_le_bytes(self.array()?);
        match usize::try_from(len) {
            Ok(len) if len <= self.input.len() => Ok(len),
            _ => Err(FormatError(format!(
                "a length of {len} bytes with {} left",
                self.input.len()
            ))),
        }
    }

    fn count(&mut self) -> Result<usize> {
        let count = u64::from_le_bytes(self.array()?);
        if count > self.input.len() as u64 + ZERO_SIZED_SLACK {
            return Err(FormatError(format!(
                "{count} elements announced with {} bytes left",
                self.input.len()
            )));
        }
        usize::try_from(count).map_err(|_| FormatError(format!("{count} elements")))
    }

    fn variant(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
}

macro_rules! get_le {
    ($($method:ident: $t:ty => $visit:ident),* $(,)?) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            visitor.$visit(<$t>::from_le_bytes(self.array()?))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = FormatError;

    get_le! {
        deserialize_i8: i8 => visit_i8, deserialize_i16: i16 => visit_i16,
        deserialize_i32: i32 => visit_i32, deserialize_i64: i64 => visit_i64,
        deserialize_i128: i128 => visit_i128, deserialize_u8: u8 => visit_u8,
        deserialize_u16: u16 => visit_u16, deserialize_u32: u32 => visit_u32,
        deserialize_u64: u64 => visit_u64, deserialize_u128: u128 => visit_u128,
        deserialize_f32: f32 => visit_f32, deserialize_f64: f64 => visit_f64,
    }

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(FormatError(
            "the type asks for a self-describing format (`deserialize_any`), which parjob's task encoding is not".into(),
        ))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.array::<1>()? {
            [0] => visitor.visit_bool(false),
            [1] => visitor.visit_bool(true),
            [b] => Err(FormatError(format!("{b} is not a bool"))),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let code = u32::from_le_bytes(self.array()?);
        let c =
            char::from_u32(code).ok_or_else(|| FormatError(format!("{code:#x} is not a char")))?;
        visitor.visit_char(c)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.byte_len()?;
        let bytes = self.take(len)?;
        let s = std::str::from_utf8(bytes).map_err(|e| FormatError(e.to_string()))?;
        visitor.visit_borrowed_str(s)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.byte_len()?;
        visitor.visit_borrowed_bytes(self.take(len)?)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.array::<1>()? {
            [0] => visitor.visit_none(),
            [1] => visitor.visit_some(self),
            [b] => Err(FormatError(format!("{b} is not an option tag"))),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let left = self.count()?;
        visitor.visit_seq(Elements { de: self, left })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        visitor.visit_seq(Elements {
            de: self,
            left: len,
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let left = self.count()?;
        visitor.visit_map(Elements { de: self, left })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_tuple(fields.len(), visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_enum(self)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let index = self.variant()?;
        visitor.visit_u32(index)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(FormatError(
            "the type skips a value (`deserialize_ignored_any`), which parjob's task encoding cannot".into(),
        ))
    }
}

/// The elements of a sequence, tuple or map.
struct Elements<'a, 'de> {
    de: &'a mut Decoder<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Elements<'_, 'de> {
    type Error = FormatError;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> de::MapAccess<'de> for Elements<'_, 'de> {
    type Error = FormatError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> de::EnumAccess<'de> for &mut Decoder<'de> {
    type Error = FormatError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self)> {
        let index = self.variant()?;
        let value = seed.deserialize(index.into_deserializer())?;
        Ok((value, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Decoder<'de> {
    type Error = FormatError;

    fn unit_variant(self) -> Result<()> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        de::Deserializer::deserialize_tuple(self, fields.len(), visitor)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    /// An enum with every kind of variant (also a fuzz target's type).
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub(crate) enum Shape {
        Dot,
        Circle(f64),
        Rect { w: u32, h: u32 },
        Poly(Vec<(i16, i16)>),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Everything {
        flag: bool,
        small: i8,
        big: u128,
        c: char,
        name: String,
        bytes: Vec<u8>,
        maybe: Option<Box<Everything>>,
        shapes: Vec<Shape>,
        map: BTreeMap<String, Vec<f64>>,
        unit: (),
        tuple: (u8, String, [u16; 3]),
    }

    fn sample() -> Everything {
        Everything {
            flag: true,
            small: -3,
            big: u128::MAX - 7,
            c: 'λ',
            name: "parjob".into(),
            bytes: vec![0, 255, 7],
            maybe: Some(Box::new(Everything {
                flag: false,
                small: 0,
                big: 0,
                c: 'a',
                name: String::new(),
                bytes: vec![],
                maybe: None,
                shapes: vec![],
                map: BTreeMap::new(),
                unit: (),
                tuple: (0, String::new(), [0; 3]),
            })),
            shapes: vec![
                Shape::Dot,
                Shape::Circle(1.5),
                Shape::Rect { w: 2, h: 3 },
                Shape::Poly(vec![(1, -1), (i16::MIN, i16::MAX)]),
            ],
            map: [("x".to_string(), vec![1.0, -0.0, f64::INFINITY])]
                .into_iter()
                .collect(),
            unit: (),
            tuple: (9, "t".into(), [1, 2, 3]),
        }
    }

    fn round_trip<T: Serialize + de::DeserializeOwned>(value: &T) -> T {
        let mut out = Vec::new();
        encode_into(value, &mut out).unwrap();
        decode(&out).unwrap()
    }

    #[test]
    fn values_round_trip() {
        let value = sample();
        assert_eq!(round_trip(&value), value);
        let numbers: Vec<f64> = (0..1000).map(|i| i as f64 / 7.0).collect();
        assert_eq!(round_trip(&numbers), numbers);
        assert_eq!(round_trip(&vec![(); 5]), vec![(); 5]);
        assert_eq!(round_trip(&Some("x".to_string())), Some("x".to_string()));
    }

    #[test]
    fn numbers_are_fixed_width() {
        let mut out = Vec::new();
        encode_into(&vec![1.0f64, 2.0], &mut out).unwrap();
        assert_eq!(out.len(), 8 + 2 * 8);
        assert_eq!(&out[..8], &2u64.to_le_bytes());
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error() {
        let mut out = Vec::new();
        encode_into(&sample(), &mut out).unwrap();
        for len in 0..out.len() {
            assert!(
                decode::<Everything>(&out[..len]).is_err(),
                "truncated at {len}"
            );
        }
        let mut longer = out.clone();
        longer.push(0);
        assert!(decode::<Everything>(&longer).is_err());
        // Flip every byte in turn: decoding may succeed with other values, but never panics.
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0xff;
            let _ = decode::<Everything>(&bad);
        }
    }

    #[test]
    fn lengths_beyond_the_input_are_refused_before_allocating() {
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.extend([1, 2, 3]);
        assert!(decode::<Vec<u8>>(&huge).is_err());
        assert!(decode::<String>(&huge).is_err());
        assert!(decode::<Vec<()>>(&huge).is_err());
    }

    #[test]
    fn vectors_of_numbers_encode_as_serde_would() {
        let floats: Vec<Vec<f64>> = vec![vec![1.5, -0.0, f64::MAX], vec![], vec![2.0; 1000]];
        let mut fast = Vec::new();
        encode_seq(&floats, &mut fast).unwrap();
        let mut slow = Vec::new();
        encode_into(&floats, &mut slow).unwrap();
        assert_eq!(fast, slow);
        assert_eq!(decode_seq::<Vec<f64>>(&fast).unwrap(), floats);
        assert_eq!(decode::<Vec<Vec<f64>>>(&fast).unwrap(), floats);
        let bytes: Vec<Vec<u8>> = vec![vec![1, 2, 3]];
        let mut out = Vec::new();
        encode_seq(&bytes, &mut out).unwrap();
        assert_eq!(decode_seq::<Vec<u8>>(&out).unwrap(), bytes);
        let ints = vec![vec![i16::MIN, 0, i16::MAX]];
        let mut out = Vec::new();
        encode_seq(&ints, &mut out).unwrap();
        assert_eq!(decode_seq::<Vec<i16>>(&out).unwrap(), ints);
        let flat: Vec<i64> = (-500..500).collect();
        let mut fast = Vec::new();
        encode_seq(&flat, &mut fast).unwrap();
        let mut slow = Vec::new();
        encode_into(&flat, &mut slow).unwrap();
        assert_eq!(fast, slow);
        assert_eq!(decode_seq::<i64>(&fast).unwrap(), flat);
        assert!(decode_seq::<i64>(&fast[..fast.len() - 1]).is_err());
        // Truncated bulk data is an error too.
        for len in 0..out.len() {
            assert!(
                decode_seq::<Vec<i16>>(&out[..len]).is_err(),
                "truncated at {len}"
            );
        }
    }

    #[test]
    fn self_describing_types_get_a_clear_error() {
        #[derive(Debug, Deserialize)]
        #[serde(untagged)]
        enum Either {
            A(#[allow(dead_code)] u8),
        }
        let err = decode::<Either>(&[1]).unwrap_err();
        assert!(!matches!(decode::<Either>(&[1]), Ok(Either::A(_))));
        assert!(err.to_string().contains("self-describing"), "{err}");
    }
}
