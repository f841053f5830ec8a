//! Memory files (`memfd_create`): an encoded value written once, that other processes map.
//!
//! Workers open a file of their parent's through `/proc/<pid>/fd/<n>`, so a file stays
//! open for as long as its value may be needed. Linux only.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

/// Values at least this large go to workers as a memory file that every worker maps,
/// instead of through each worker's pipe.
pub(crate) const MIN_FILE: usize = 1 << 20;

/// A value's encoding in a memory file, and, when made for the caller to read too, a
/// read-only mapping of it.
#[derive(Debug)]
pub(crate) struct MemFile {
    fd: OwnedFd,
    len: usize,
    map: Option<NonNull<u8>>,
}

// SAFETY: the mapping is read only and owned by this value; nothing writes the file once
// `write` has returned.
unsafe impl Send for MemFile {}
// SAFETY: as above.
unsafe impl Sync for MemFile {}

impl MemFile {
    /// A new memory file holding `pieces`, one after the other: each byte is copied once,
    /// from where it lies into the file.
    pub(crate) fn write<'p>(pieces: impl IntoIterator<Item = &'p [u8]>) -> io::Result<MemFile> {
        // SAFETY: a static, NUL-terminated name, and flags; returns a new descriptor or -1.
        let fd = unsafe { libc::memfd_create(c"parjob-shared".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `memfd_create` returned a new descriptor that nothing else owns.
        let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let mut len = 0;
        for piece in pieces {
            file.write_all(piece)?;
            len += piece.len();
        }
        Ok(MemFile {
            fd: OwnedFd::from(file),
            len,
            map: None,
        })
    }

    /// As [`write`](Self::write), and mapped for this process to read
    /// ([`as_ref`](AsRef::as_ref)).
    pub(crate) fn write_mapped<'p>(
        pieces: impl IntoIterator<Item = &'p [u8]>,
    ) -> io::Result<MemFile> {
        let mut file = Self::write(pieces)?;
        if file.len > 0 {
            // SAFETY: a fresh read-only shared mapping of the `len` bytes just written to a
            // file this value owns; the kernel picks the address.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    file.len,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    file.fd.as_raw_fd(),
                    0,
                )
            };
            if ptr == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            file.map = NonNull::new(ptr.cast::<u8>());
        }
        Ok(file)
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl AsRef<[u8]> for MemFile {
    /// The file's bytes, if it was made by [`write_mapped`](MemFile::write_mapped); empty
    /// otherwise.
    fn as_ref(&self) -> &[u8] {
        match self.map {
            // SAFETY: `ptr` maps the file's `len` readable bytes for as long as `self` lives.
            Some(ptr) => unsafe { std::slice::from_raw_parts(ptr.as_ptr(), self.len) },
            None => &[],
        }
    }
}

impl Drop for MemFile {
    fn drop(&mut self) {
        if let Some(ptr) = self.map {
            // SAFETY: the mapping this value made; no borrow of it outlives `self`.
            unsafe { libc::munmap(ptr.as_ptr().cast(), self.len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_written_in_order_and_read_back() {
        let a: Vec<u8> = (0..3 * MIN_FILE).map(|i| (i * 13) as u8).collect();
        let file = MemFile::write_mapped([&b"head"[..], &a, &b"tail"[..]]).unwrap();
        assert_eq!(file.len(), a.len() + 8);
        let bytes = file.as_ref();
        assert_eq!(&bytes[..4], b"head");
        assert_eq!(&bytes[4..4 + a.len()], &a[..]);
        assert_eq!(&bytes[4 + a.len()..], b"tail");
        assert!(MemFile::write([&a[..]]).unwrap().as_ref().is_empty());
    }
}
