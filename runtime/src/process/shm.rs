//! Shared memory between a pool and one of its workers, for large batch inputs and outcomes.
//!
//! Each worker gets a memory file at start (`memfd_create`, or a file removed from its
//! directory as soon as it is open where there is none), inherited like its pipes. A
//! batch whose inputs are large is copied into it by the pool's I/O thread, and the `Run`
//! message only says how long it is: the worker decodes the inputs from its own mapping of
//! the file. That is one copy instead of the two a pipe makes (into the kernel and out of
//! it), with no wake-up per pipe buffer.
//!
//! A large outcome comes back the same way: the worker, done with the inputs, writes it to
//! the region and its `DoneShared` reply says how long it is; the pool's I/O thread decodes
//! it in place.
//!
//! One batch at a time uses the region, and one side at a time: the pool from the batch's
//! end to the next `Run`, the worker from that `Run` to its reply. The file lives as long
//! as the worker.
//!
//! Large attachments (`Shared` values, a call's captured data) go the other way round: one
//! memory file per attachment, which every worker maps (`remote::memfile`).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

/// Inputs at least this large go through the region; smaller ones ride in the pipe, where a
/// copy is cheaper than touching a mapping.
pub(crate) const MIN_SHARED: usize = 256 << 10;

/// A mapping of a worker's memory file.
#[derive(Debug)]
pub(crate) struct Region {
    fd: OwnedFd,
    map: Option<(NonNull<u8>, usize)>,
}

// SAFETY: a `Region` owns its mapping; the pointer is used only through `&mut self` (writes)
// or `&self` (reads of bytes the protocol says no one writes meanwhile).
unsafe impl Send for Region {}

impl Region {
    /// A new, empty memory file, for the pool's side.
    pub(crate) fn create() -> io::Result<Region> {
        Ok(Region {
            fd: crate::remote::memfile::anonymous_file(c"parjob-batch")?,
            map: None,
        })
    }

    /// The worker's side: the memory file it inherited as `fd`.
    ///
    /// # Safety
    ///
    /// `fd` must be open and owned by nothing else in this process.
    pub(crate) unsafe fn inherited(fd: RawFd) -> Region {
        Region {
            // SAFETY: the caller hands over ownership of an open descriptor.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            map: None,
        }
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Copies `bytes` to the start of the region, growing the file first if needed (never
    /// shrinking it: the other side may have grown it).
    pub(crate) fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.map.is_none_or(|(_, len)| len < bytes.len()) {
            let mut size = self.file_size()?;
            if size < bytes.len() {
                // Grow in steps of a power of two, so that a series of growing batches
                // remaps a few times only.
                size = bytes.len().next_power_of_two().max(MIN_SHARED);
                // SAFETY: `ftruncate` on a descriptor we own.
                if unsafe { libc::ftruncate(self.fd.as_raw_fd(), size as libc::off_t) } != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            self.remap(size)?;
        }
        let (ptr, _) = self.map.ok_or_else(|| io::Error::other("no mapping"))?;
        // SAFETY: the mapping is writable and at least `bytes.len()` long; the other side
        // does not read it until the message that follows this write.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.as_ptr(), bytes.len()) };
        Ok(())
    }

    /// The size of the memory file.
    fn file_size(&self) -> io::Result<usize> {
        // SAFETY: an all-zero `stat` is a valid value of this plain C struct, and `fstat`
        // fills it for a descriptor we own.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(self.fd.as_raw_fd(), &mut st) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(st.st_size as usize)
        }
    }

    /// The first `len` bytes, mapping (again) if the file grew past the current mapping.
    pub(crate) fn read(&mut self, len: usize) -> io::Result<&[u8]> {
        if self.map.is_none_or(|(_, mapped)| mapped < len) {
            let size = self.file_size()?;
            if size < len {
                return Err(io::Error::other(format!(
                    "a batch of {len} bytes in a shared region of {size}"
                )));
            }
            self.remap(size)?;
        }
        let (ptr, _) = self.map.ok_or_else(|| io::Error::other("no mapping"))?;
        // SAFETY: the mapping is at least `len` long (checked above) and the pool does not
        // write it while the worker runs the batch it describes.
        Ok(unsafe { std::slice::from_raw_parts(ptr.as_ptr(), len) })
    }

    fn remap(&mut self, size: usize) -> io::Result<()> {
        self.unmap();
        // SAFETY: a fresh shared mapping of `size` bytes of a file we own; the kernel picks
        // the address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                self.fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        self.map = NonNull::new(ptr.cast::<u8>()).map(|p| (p, size));
        Ok(())
    }

    fn unmap(&mut self) {
        if let Some((ptr, len)) = self.map.take() {
            // SAFETY: `ptr`/`len` are a mapping this region made and nothing borrows it
            // (borrows of `read` end before any `&mut self` call).
            unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        self.unmap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_pool_writes_the_worker_reads() {
        let mut pool = Region::create().unwrap();
        // SAFETY: `dup` gives a new descriptor that only the worker side owns.
        let mut worker = unsafe { Region::inherited(libc::dup(pool.raw_fd())) };
        let small: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        pool.write(&small).unwrap();
        assert_eq!(worker.read(small.len()).unwrap(), &small[..]);
        // A larger batch grows the file; the worker maps it again.
        let large: Vec<u8> = (0..3 * MIN_SHARED).map(|i| (i * 7) as u8).collect();
        pool.write(&large).unwrap();
        assert_eq!(worker.read(large.len()).unwrap(), &large[..]);
        // A length beyond the file is an error, not a read past the mapping.
        assert!(worker.read(64 << 20).is_err());
        // An outcome larger still, the other way: the worker grows the file, the pool maps
        // it again, and the pool's next write does not shrink it under the worker.
        let outcome: Vec<u8> = (0..9 * MIN_SHARED).map(|i| (i * 3) as u8).collect();
        worker.write(&outcome).unwrap();
        assert_eq!(pool.read(outcome.len()).unwrap(), &outcome[..]);
        pool.write(&small).unwrap();
        assert!(pool.file_size().unwrap() >= outcome.len());
        assert_eq!(worker.read(small.len()).unwrap(), &small[..]);
    }
}
