//! Memory files (`memfd_create`): an encoded value written once, that other processes map.
//!
//! Large attachments (`Shared` values, a call's captured data) reach workers on the same
//! host this way: one memory file per attachment, written once (`attach::shared_file`), which
//! every worker maps read only through `/proc/<parent>/fd/<n>` ([`Mapping`]). Workers read
//! the data in place, so it crosses into any number of workers with one copy in all. A
//! file stays open while the caller holds its attachment. Linux only.

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

/// A read-only mapping of another process's memory file: a worker's side of a [`MemFile`].
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read only and owned by this value; nothing writes the file once the
// parent wrote it.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the `len` bytes of descriptor `fd` of process `pid`.
    pub(crate) fn open(pid: u32, fd: RawFd, len: usize) -> io::Result<Mapping> {
        let file = std::fs::File::open(format!("/proc/{pid}/fd/{fd}"))?;
        let size = file.metadata()?.len();
        if size < len as u64 {
            return Err(io::Error::other(format!(
                "a shared file of {size} bytes, {len} expected"
            )));
        }
        if len == 0 {
            return Ok(Mapping {
                ptr: NonNull::dangling(),
                len,
            });
        }
        // SAFETY: a fresh read-only shared mapping of `len` bytes of an open file, at least
        // that long; the kernel picks the address. The mapping outlives the descriptor.
        // Populated at once: tasks read all of a shared value as a rule, and one pass over
        // the page tables costs far less than a fault per page.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("null mapping"))?;
        Ok(Mapping { ptr, len })
    }
}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes (or is dangling with `len == 0`) for as long
        // as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: the mapping this value made; no borrow of it outlives `self`.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}

/// What identifies a file on this system: its device and inode numbers.
#[cfg(any(feature = "mpi", test))]
pub(crate) type Identity = (u64, u64);

#[cfg(any(feature = "mpi", test))]
impl MemFile {
    /// The file's identity, which another process can compare with what it opened.
    pub(crate) fn identity(&self) -> io::Result<Identity> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::File::from(self.fd.try_clone()?).metadata()?;
        Ok((meta.dev(), meta.ino()))
    }
}

/// Whether descriptor `fd` of process `pid`, seen from here, is the file `identity` names:
/// `false` on another host, in another pid namespace, or without the right to look.
#[cfg(any(feature = "mpi", test))]
pub(crate) fn reaches(pid: u32, fd: RawFd, identity: Identity) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/fd/{fd}"))
        .is_ok_and(|meta| (meta.dev(), meta.ino()) == identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_file_maps_back_to_its_bytes_and_is_recognised() {
        let bytes: Vec<u8> = (0..3 * MIN_FILE).map(|i| (i * 13) as u8).collect();
        let file = MemFile::write([&bytes[..]]).unwrap();
        let me = std::process::id();
        let mapping = Mapping::open(me, file.raw_fd(), file.len()).unwrap();
        assert_eq!(mapping.as_ref(), &bytes[..]);
        assert!(Mapping::open(me, file.raw_fd(), file.len() + 1).is_err());
        let identity = file.identity().unwrap();
        assert!(reaches(me, file.raw_fd(), identity));
        assert!(!reaches(me, file.raw_fd(), (identity.0, identity.1 + 1)));
        assert!(!reaches(u32::MAX, file.raw_fd(), identity));
    }

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
