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

/// Reads a vector of numbers: its count, then its memory. Where the bytes lie in a shared
/// mapping of a memory file (`mapped`) at the same offset within a page as the vector's
/// memory, the vector's whole pages become a second mapping of the file's pages instead of
/// a copy (Linux): every process that reads the value reads the same memory. `placed` then
/// says which pages, to be given back with [`Placed::restore`] before the vector is dropped.
fn read_placed<N: Number>(
    decoder: &mut Decoder<'_>,
    mapped: bool,
    placed: &mut Option<Placed>,
) -> Result<Vec<N>> {
    let len = decoder.count()?;
    let bytes =
        decoder
            .take(len.checked_mul(size_of::<N>()).ok_or_else(|| {
                super::FormatError(format!("{len} numbers do not fit in memory"))
            })?)?;
    let mut out = if mapped && bytes.len() >= PLACE_FROM {
        // Room for `PLACE_ROOM` at least, as `placement` assumes: the room past the values
        // is never touched, so it takes no memory.
        Vec::<N>::with_capacity(len.max(PLACE_ROOM / size_of::<N>()))
    } else {
        Vec::<N>::with_capacity(len)
    };
    let dest = out.as_mut_ptr().cast::<u8>();
    let whole = if mapped {
        Placed::pages(bytes, dest)
    } else {
        None
    };
    match whole {
        Some((from, to)) => {
            // SAFETY: `from..to` lies within both `bytes` and the vector's room (as offsets);
            // the parts before and after it are copied, the part itself is mapped.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), dest, from);
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr().add(to),
                    dest.add(to),
                    bytes.len() - to,
                );
                *placed = Placed::map(bytes.as_ptr().add(from), dest.add(from), to - from);
                if placed.is_none() {
                    std::ptr::copy_nonoverlapping(
                        bytes.as_ptr().add(from),
                        dest.add(from),
                        to - from,
                    );
                }
            }
        }
        // SAFETY: the vector has room for `len` values of `N`, which are `bytes.len()` bytes.
        None => unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), dest, bytes.len());
        },
    }
    // SAFETY: every byte of the `len` values is written or mapped from `bytes`; any bit
    // pattern is a valid `N`, little-endian as the machine is.
    unsafe { out.set_len(len) };
    Ok(out)
}

/// Whole pages of a decoded vector that map a memory file's pages (see [`read_placed`]).
#[derive(Debug)]
// Only Linux makes one (see `map`).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) struct Placed {
    at: usize,
    len: usize,
}

/// Vectors smaller than this are copied: a mapping of their own is not worth it.
const PLACE_FROM: usize = 1 << 20;

/// A vector read in place gets room for at least this many bytes: allocators place blocks
/// this large on their own, at the same offset within a page every time (glibc maps them
/// from 32 MiB, also in workers, which fix its threshold there), so that the caller can
/// predict where a worker's vector will start.
const PLACE_ROOM: usize = 32 << 20;

/// The system's page size.
pub(crate) fn page_size() -> usize {
    #[cfg(unix)]
    // SAFETY: `sysconf` has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    #[cfg(not(unix))]
    let page = 4096;
    page.max(1)
}

impl Placed {
    /// The offsets `from..to` of the whole pages of `dest` (room for `bytes.len()` bytes)
    /// when `bytes` and `dest` lie at the same offset within a page and those pages are
    /// worth a mapping.
    fn pages(bytes: &[u8], dest: *mut u8) -> Option<(usize, usize)> {
        let page = page_size();
        let (src, dst) = (bytes.as_ptr() as usize, dest as usize);
        if src % page != dst % page || bytes.len() < PLACE_FROM {
            return None;
        }
        let from = (page - dst % page) % page;
        let to = from + (bytes.len() - from) / page * page;
        (to > from).then_some((from, to))
    }

    /// Maps the `len` bytes of the shared mapping at `src` again at `dest`, in place of what
    /// was there: both page-aligned. `None` if the system refuses (nothing changed then).
    ///
    /// # Safety
    ///
    /// `src..src + len` must lie within a shared mapping of a file, `dest..dest + len` within
    /// memory this process owns and that nothing else uses.
    #[cfg(target_os = "linux")]
    unsafe fn map(src: *const u8, dest: *mut u8, len: usize) -> Option<Placed> {
        // SAFETY: with an old size of zero, `mremap` makes a second mapping of the same pages
        // of a shared mapping (refused for any other kind); `MREMAP_FIXED` puts it over the
        // vector's own pages, which the caller says are ours alone.
        let got = unsafe {
            libc::mremap(
                src.cast_mut().cast(),
                0,
                len,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                dest.cast::<libc::c_void>(),
            )
        };
        if got != dest.cast::<libc::c_void>() {
            return None;
        }
        // Fill the page tables in one pass where the system can (Linux 5.14): the tasks
        // read all of it as a rule. Without it, pages fault in as they are read.
        // SAFETY: advice on the mapping just made.
        let _ = unsafe { libc::madvise(dest.cast(), len, libc::MADV_POPULATE_READ) };
        Some(Placed {
            at: dest as usize,
            len,
        })
    }

    #[cfg(not(target_os = "linux"))]
    unsafe fn map(_: *const u8, _: *mut u8, _: usize) -> Option<Placed> {
        None
    }

    /// Puts private memory back in place of the mapped pages, so that the vector can be
    /// freed as its allocator expects (the contents are lost, which a vector being dropped
    /// does not mind). `false` if the system refused: the vector must then never be freed.
    #[cfg(target_os = "linux")]
    pub(crate) fn restore(self) -> bool {
        // SAFETY: the pages are the vector's (whose owner is dropping it); a fixed private
        // anonymous mapping replaces the file's pages there.
        let got = unsafe {
            libc::mmap(
                self.at as *mut libc::c_void,
                self.len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        got as usize == self.at
    }

    /// Never made here (see [`map`](Self::map)).
    #[cfg(not(target_os = "linux"))]
    pub(crate) fn restore(self) -> bool {
        true
    }
}

/// Decodes a `T` that is a vector of numbers (`None` for any other type), reading the
/// numbers in place where they lie in a shared mapping (`mapped`) and the pages line up
/// (see [`read_placed`]).
pub(super) fn decode_placed<T: 'static>(
    decoder: &mut Decoder<'_>,
    mapped: bool,
    placed: &mut Option<Placed>,
) -> Option<Result<T>> {
    if cfg!(target_endian = "big") {
        return None;
    }
    let id = TypeId::of::<T>();
    macro_rules! try_types {
        ($($t:ty),*) => {$(
            if id == TypeId::of::<Vec<$t>>() {
                return Some(read_placed::<$t>(decoder, mapped, placed).map(|v| {
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

/// Where in memory a large vector of `bytes` bytes starts within a page, as this process's
/// allocator places it (with room for [`PLACE_ROOM`] at least, as [`read_placed`] makes
/// it): an encoding that puts the numbers at that offset lets a process of the same
/// program map them in place.
pub(crate) fn placement(bytes: usize) -> usize {
    let page = page_size();
    let Ok(layout) = std::alloc::Layout::from_size_align(bytes.max(PLACE_ROOM), 8) else {
        return 0;
    };
    // SAFETY: a non-zero size; the block is freed at once, never touched.
    let ptr = unsafe { std::alloc::alloc(layout) };
    if ptr.is_null() {
        return 0;
    }
    let offset = ptr as usize % page;
    // SAFETY: allocated just above with this layout.
    unsafe { std::alloc::dealloc(ptr, layout) };
    offset
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
    decode_placed(decoder, false, &mut None)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::remote::format::decode_whole_placed;

    /// A shared mapping of a memory file holding `values` encoded as a vector, the numbers
    /// at offset `at` within a page; the mapping and where the encoding starts in it.
    fn mapped(values: &[f64], at: usize) -> (*mut u8, usize, usize) {
        let page = page_size();
        let start = (at + page - 8) % page;
        let mut bytes = vec![0u8; start];
        bytes.extend_from_slice(&(values.len() as u64).to_le_bytes());
        values
            .iter()
            .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
        let fd = crate::remote::memfile::anonymous_file(c"test").unwrap();
        let mut file = std::fs::File::from(fd);
        std::io::Write::write_all(&mut file, &bytes).unwrap();
        // SAFETY: a fresh shared read-only mapping of the whole file.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes.len(),
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED);
        (ptr.cast(), bytes.len(), start)
    }

    fn encoding<'m>(map: (*mut u8, usize, usize)) -> &'m [u8] {
        // SAFETY: the test's mapping, never unmapped.
        unsafe { std::slice::from_raw_parts(map.0.add(map.2), map.1 - map.2) }
    }

    #[test]
    fn numbers_where_the_vector_would_be_are_mapped_and_given_back() {
        let values: Vec<f64> = (0..(3 << 17) + 5).map(|i| i as f64).collect();
        // Where this allocator puts a vector that large, within a page.
        let at = placement(values.len() * 8);
        let (mut v, placed) =
            decode_whole_placed::<Vec<f64>>(encoding(mapped(&values, at)), true).unwrap();
        let placed = placed.expect("mapped in place");
        assert_eq!(v, values);
        assert!(placed.len >= 1 << 20, "{placed:?}");
        assert!(placed.restore());
        // Private memory again: writable, and freed as any vector.
        v[1000] = -1.0;
        assert_eq!(v[1000], -1.0);
    }

    #[test]
    fn numbers_elsewhere_are_copied() {
        let values: Vec<f64> = (0..(3 << 17) + 5).map(|i| i as f64).collect();
        let at = (placement(values.len() * 8) + 8) % page_size();
        let map = mapped(&values, at);
        let (v, placed) = decode_whole_placed::<Vec<f64>>(encoding(map), true).unwrap();
        assert!(placed.is_none());
        assert_eq!(v, values);
        // Not a shared mapping: copied whatever the offsets.
        let (v, placed) = decode_whole_placed::<Vec<f64>>(encoding(map), false).unwrap();
        assert!(placed.is_none());
        assert_eq!(v, values);
    }
}
