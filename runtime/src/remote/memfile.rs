//! Memory files: an encoded value written once, that other processes map.
//!
//! Large attachments (`Shared` values, a call's captured data) reach workers on the same
//! host this way: one memory file per attachment, written once (`attach::shared_file`), which
//! every worker maps read only ([`Mapping`]). Workers read the data in place, so it crosses
//! into any number of workers with one copy in all. A file stays open while the caller holds
//! its attachment.
//!
//! On Linux a memory file is a `memfd_create` descriptor, which workers open through
//! `/proc/<parent>/fd/<n>`: it has no name, so nothing outlives the processes. Elsewhere it
//! is a file in a directory of the process's own in the temporary directory
//! (`parjob-<pid>/shared-<n>`, where `n` is its descriptor), removed when the caller lets
//! go of it; the directories of processes that ended without removing theirs are removed by
//! the next process that makes one.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
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
    /// The file's name, removed on drop (systems without `memfd_create`).
    path: Option<PathBuf>,
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
        let (fd, path) = named_file()?;
        let mut memfile = MemFile {
            fd,
            len: 0,
            map: None,
            path,
        };
        let mut file = std::fs::File::from(memfile.fd.try_clone()?);
        for piece in pieces {
            file.write_all(piece)?;
            memfile.len += piece.len();
        }
        Ok(memfile)
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
        if let Some(path) = &self.path {
            // Workers that mapped the file keep their mappings.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A new memory file that only this process reaches (until it passes the descriptor on),
/// close-on-exec.
pub(crate) fn anonymous_file(name: &std::ffi::CStr) -> io::Result<OwnedFd> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::FromRawFd;
        // SAFETY: a NUL-terminated name, and flags; returns a new descriptor or -1.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `memfd_create` returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let (file, path) = new_file(name)?;
        // Nameless from here on: gone with its last descriptor, as a memory file.
        std::fs::remove_file(path)?;
        Ok(file)
    }
}

/// A new memory file that other processes of this host can open by this process's id and
/// the descriptor (see [`Mapping::open`]); its name, to remove when done, where it has one.
fn named_file() -> io::Result<(OwnedFd, Option<PathBuf>)> {
    #[cfg(target_os = "linux")]
    {
        Ok((anonymous_file(c"parjob-shared")?, None))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let (file, made) = new_file(c"shared")?;
        let path = shared_path(std::process::id(), file.as_raw_fd());
        if let Err(e) = std::fs::rename(&made, &path) {
            let _ = std::fs::remove_file(&made);
            return Err(e);
        }
        Ok((file, Some(path)))
    }
}

/// Where process `pid` keeps the memory file of its descriptor `fd`.
fn shared_path(pid: u32, fd: RawFd) -> PathBuf {
    #[cfg(target_os = "linux")]
    {
        PathBuf::from(format!("/proc/{pid}/fd/{fd}"))
    }
    #[cfg(not(target_os = "linux"))]
    {
        process_dir(pid).join(format!("shared-{fd}"))
    }
}

/// The directory of process `pid`'s memory files.
#[cfg(not(target_os = "linux"))]
fn process_dir(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("parjob-{pid}"))
}

/// A new, empty file of this process's, readable and writable by its owner only, with a
/// name made of `stem` and a number, and close-on-exec (as every descriptor std opens).
#[cfg(not(target_os = "linux"))]
fn new_file(stem: &std::ffi::CStr) -> io::Result<(OwnedFd, PathBuf)> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = own_dir()?;
    let stem = stem.to_string_lossy();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{stem}-new-{n}"));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => return Ok((OwnedFd::from(file), path)),
            // Left by an earlier process of the same id: take the next number.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// This process's directory of memory files, made at first use (after removing those of
/// processes that are gone). Refused unless it is a directory of this user's that no one
/// else may enter: its name can be guessed, and someone else's would hold our data.
#[cfg(not(target_os = "linux"))]
fn own_dir() -> io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let dir = process_dir(std::process::id());
    if std::fs::symlink_metadata(&dir).is_err() {
        remove_dirs_of_ended_processes();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        static AT_EXIT: std::sync::Once = std::sync::Once::new();
        // SAFETY: registers a function without arguments that only removes files.
        AT_EXIT.call_once(|| unsafe {
            libc::atexit(remove_own_dir);
        });
    }
    let meta = std::fs::symlink_metadata(&dir)?;
    // SAFETY: `geteuid` only reads this process's effective user id.
    let me = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o077 != 0 {
        return Err(io::Error::other(format!(
            "{} is not a private directory of this user's",
            dir.display()
        )));
    }
    Ok(dir)
}

/// Removes this process's directory of memory files as it exits normally: workers keep
/// what they mapped, and the files of attachments still held go with it.
#[cfg(not(target_os = "linux"))]
extern "C" fn remove_own_dir() {
    let _ = std::fs::remove_dir_all(process_dir(std::process::id()));
}

/// Removes the memory-file directories of processes that no longer run (left by a crash,
/// or by a process that ended while it held attachments).
#[cfg(not(target_os = "linux"))]
fn remove_dirs_of_ended_processes() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("parjob-"))
            .and_then(|pid| pid.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 sends nothing; it only asks whether `pid` exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        // Only directories this user owns can be removed: others' are left alone.
        if gone {
            let _ = std::fs::remove_dir_all(entry.path());
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
        let file = std::fs::File::open(shared_path(pid, fd))?;
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
        // Populated at once where the system can: tasks read all of a shared value as a
        // rule, and one pass over the page tables costs far less than a fault per page.
        #[cfg(target_os = "linux")]
        let flags = libc::MAP_SHARED | libc::MAP_POPULATE;
        #[cfg(not(target_os = "linux"))]
        let flags = libc::MAP_SHARED;
        // SAFETY: a fresh read-only shared mapping of `len` bytes of an open file, at least
        // that long; the kernel picks the address. The mapping outlives the descriptor.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                flags,
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
    std::fs::metadata(shared_path(pid, fd)).is_ok_and(|meta| (meta.dev(), meta.ino()) == identity)
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

    #[cfg(not(target_os = "linux"))]
    #[test]
    fn files_have_a_name_while_held_and_none_after() {
        let file = MemFile::write([&b"abc"[..]]).unwrap();
        let path = shared_path(std::process::id(), file.raw_fd());
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        drop(file);
        assert!(!path.exists());
        // An anonymous file never keeps one.
        let _region = anonymous_file(c"test").unwrap();
        let names: Vec<_> = std::fs::read_dir(own_dir().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with("test")), "{names:?}");
    }

    #[cfg(not(target_os = "linux"))]
    #[test]
    fn directories_of_ended_processes_are_removed() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let ended = child.id();
        child.wait().unwrap();
        let stale = process_dir(ended);
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::write(stale.join("shared-7"), b"left by a crash").unwrap();
        let mine = own_dir().unwrap();
        remove_dirs_of_ended_processes();
        assert!(!stale.exists());
        assert!(mine.is_dir());
        // A process that ends normally leaves nothing behind: this test binary, running a
        // test that makes a memory file.
        let test = std::env::current_exe().unwrap();
        let child = std::process::Command::new(test)
            .args([
                "--exact",
                "remote::memfile::tests::pieces_are_written_in_order_and_read_back",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(child.wait_with_output().unwrap().status.success());
        let leftovers = process_dir(pid);
        assert!(!leftovers.exists(), "{}", leftovers.display());
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
