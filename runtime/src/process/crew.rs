//! A crew: children forked by the calling thread for one call, which take the call's tasks
//! themselves.
//!
//! The call's tasks all sit in its [`ForkSession`] before the first fork, so a child holds
//! every one of them. Instead of being told which to run, each child takes the next range
//! of task indices from a counter in memory that the caller and every child share (an
//! anonymous shared mapping made before the first fork), runs it, and writes the outcome to
//! its pipe; then it takes the next, until none is left, says so, and exits. The caller
//! forks, reads the children's pipes and decodes on its own thread: nothing is handed from
//! thread to thread, and no message goes to a child at all.
//!
//! The first child is forked at once. While tasks remain that no child has taken, the
//! caller forks another (up to the call's worker count) whenever it has waited for one as
//! long as a fork of this process takes lately: a call of a few short tasks forks once, and
//! long tasks get every worker almost at once.
//!
//! A child sends, through its pipe:
//!
//! - `b'B'`, the range's first task and its length and the outcome's length (little-endian
//!   `u64`s), then the outcome;
//! - `b'E'` once no task is left for it, before it exits.
//!
//! A child whose pipe ends without `b'E'` died: the call fails with
//! [`Error::WorkerDied`] at the first task of the range it had taken (which it wrote to its
//! slot of the shared memory before running it).

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::fork::{self, Child};
use crate::error::{Error, catch_panic};
use crate::job::{ForkSession, InnerThreads};

const BATCH: u8 = b'B';
const END: u8 = b'E';
/// A `BATCH` frame's header: the tag and three `u64`s.
const HEADER: usize = 25;

/// How long an auto-sized range of tasks aims to take in a child: long enough that its
/// frame and the caller's wake-up are a small part of it, short enough that the last ranges
/// of a call end close together.
const TARGET: Duration = Duration::from_millis(10);

/// How often the caller looks whether a child that keeps its pipe open has exited (a
/// process that a task started may hold a copy of the pipe's write end).
const LOOK: Duration = Duration::from_millis(50);

/// Memory that the caller and its children share: the next task no child has taken, and
/// per child the first task of the range it took last, plus one (0: none yet).
struct Board {
    words: NonNull<AtomicU64>,
    len: usize,
}

// SAFETY: the board is a mapping of atomics, used only through `&AtomicU64`.
unsafe impl Send for Board {}

impl Board {
    fn new(children: usize) -> io::Result<Board> {
        let len = 1 + children;
        let bytes = len * size_of::<AtomicU64>();
        // SAFETY: a fresh anonymous shared mapping; the kernel picks the address and fills it
        // with zeros, which are valid `AtomicU64`s.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let words = NonNull::new(ptr.cast::<AtomicU64>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Board { words, len })
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.len);
        // SAFETY: `i` is within the mapping, which lives as long as `self`.
        unsafe { &*self.words.as_ptr().add(i) }
    }

    /// The next task no child has taken (past the end once all are taken).
    fn next(&self) -> &AtomicU64 {
        self.word(0)
    }

    /// Child `i`'s last range: its first task, plus one.
    fn taken(&self, i: usize) -> &AtomicU64 {
        self.word(1 + i)
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        // SAFETY: the mapping `new` made, of this size; children have copies of their own.
        unsafe {
            libc::munmap(
                self.words.as_ptr().cast(),
                self.len * size_of::<AtomicU64>(),
            )
        };
    }
}

/// A range of tasks a child ran, and its encoded outcome.
#[derive(Debug)]
pub(crate) struct Ran {
    pub(crate) first: usize,
    pub(crate) len: usize,
    pub(crate) outcome: Vec<u8>,
}

/// One child of the crew, as the caller sees it.
struct Member {
    child: Child,
    buf: Vec<u8>,
    /// Said `END`.
    ended: bool,
    /// Its pipe is still open.
    open: bool,
    /// The first task of the last range it sent back, plus one.
    sent: u64,
}

/// The children of one call (see the module's documentation). Dropping it kills those
/// still running; they are reaped by the backend's reaper thread.
pub(crate) struct Crew {
    session: Arc<ForkSession>,
    board: Board,
    tasks: usize,
    /// Tasks per range when the call fixed it; `None` adapts to the tasks' duration.
    fixed: Option<usize>,
    workers: usize,
    inner: InnerThreads,
    members: Vec<Member>,
    ran: VecDeque<Ran>,
    /// Tasks whose outcome came back.
    done: usize,
}

impl Crew {
    /// A crew for the `tasks` tasks of `session`, with at most `workers` children, and its
    /// first child forked.
    ///
    /// # Errors
    ///
    /// `WorkerDied` saying why the board or the first child could not be made.
    pub(crate) fn start(
        session: Arc<ForkSession>,
        tasks: usize,
        fixed: Option<usize>,
        workers: usize,
        inner: InnerThreads,
    ) -> Result<Crew, Error> {
        let workers = workers.max(1);
        let board = Board::new(workers).map_err(|e| Error::WorkerDied {
            index: None,
            detail: format!("cannot map memory to share with children: {e}"),
        })?;
        let mut crew = Crew {
            session,
            board,
            tasks,
            fixed: fixed.map(|n| n.max(1)),
            workers,
            inner,
            members: Vec::with_capacity(workers),
            ran: VecDeque::new(),
            done: 0,
        };
        if tasks > 0 {
            crew.fork_one()?;
        }
        Ok(crew)
    }

    /// The next range that came back, in any order; `None` once every task's has.
    ///
    /// # Errors
    ///
    /// `WorkerDied` for a child that ended without finishing its range (or could not be
    /// forked), `Transport` for a child that sent what makes no sense.
    pub(crate) fn next(&mut self) -> Result<Option<Ran>, Error> {
        loop {
            if let Some(ran) = self.ran.pop_front() {
                self.done += ran.len;
                return Ok(Some(ran));
            }
            if self.done >= self.tasks {
                return Ok(None);
            }
            self.wait()?;
        }
    }

    /// Whether some task is left that no child took.
    fn untaken(&self) -> bool {
        usize::try_from(self.board.next().load(Ordering::Relaxed)).unwrap_or(usize::MAX)
            < self.tasks
    }

    /// Waits for frames from the children, forking one more if tasks stay untaken for as
    /// long as a fork takes.
    fn wait(&mut self) -> Result<(), Error> {
        let may_fork = self.members.len() < self.workers;
        let patience = if may_fork && self.untaken() {
            fork::typical_fork().max(Duration::from_millis(1))
        } else {
            LOOK
        };
        let mut polled: Vec<(usize, libc::pollfd)> = self
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.open)
            .map(|(i, m)| {
                let fd = m.child.pipe_fd();
                (
                    i,
                    libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    },
                )
            })
            .collect();
        if polled.is_empty() {
            // Every child ended, with tasks left whose outcome never came.
            if may_fork && self.untaken() {
                return self.fork_one();
            }
            return Err(Error::WorkerDied {
                index: None,
                detail: "the forked children ended before every task had run".into(),
            });
        }
        let mut fds: Vec<libc::pollfd> = polled.iter().map(|p| p.1).collect();
        let wait = patience.as_millis().clamp(1, 1000) as libc::c_int;
        // SAFETY: `fds` is a valid array of `fds.len()` `pollfd`s.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(Error::Transport {
                index: None,
                message: format!("poll: {e}"),
            });
        }
        if ready == 0 {
            if may_fork && self.untaken() {
                return self.fork_one();
            }
            // Children whose pipe a process they started keeps open: look whether they
            // are gone.
            for i in 0..self.members.len() {
                if self.members[i].open && self.members[i].child.exited() {
                    self.drain(i)?;
                }
            }
            return Ok(());
        }
        for (slot, fd) in polled.iter_mut().zip(&fds) {
            slot.1.revents = fd.revents;
        }
        for (i, fd) in polled {
            if fd.revents != 0 {
                self.read(i)?;
            }
        }
        Ok(())
    }

    /// Forks one more child.
    fn fork_one(&mut self) -> Result<(), Error> {
        let index = self.members.len();
        let session = &*self.session;
        let board = &self.board;
        let (tasks, fixed, workers) = (self.tasks, self.fixed, self.workers);
        let forked = fork::fork_child(self.inner, || {
            work(session, board, index, tasks, fixed, workers)
        });
        match forked {
            Ok(child) => {
                self.members.push(Member {
                    child,
                    buf: Vec::new(),
                    ended: false,
                    open: true,
                    sent: 0,
                });
                Ok(())
            }
            Err(e) => Err(Error::WorkerDied {
                index: None,
                detail: format!("cannot fork a child: {e}"),
            }),
        }
    }

    /// Reads what child `i` wrote, once; a child that ended without `END` fails the call.
    fn read(&mut self, i: usize) -> Result<(), Error> {
        let m = &mut self.members[i];
        match read_some(m.child.pipe_fd(), &mut m.buf) {
            Ok(0) => {
                m.open = false;
                self.frames(i)?;
                self.closed(i)
            }
            Ok(_) => self.frames(i),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(self.broken(i, format!("read: {e}"))),
        }
    }

    /// Reads everything child `i`, which has exited, left in its pipe.
    fn drain(&mut self, i: usize) -> Result<(), Error> {
        loop {
            let fd = self.members[i].child.pipe_fd();
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid `pollfd`.
            let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
            if ready <= 0 {
                break;
            }
            let m = &mut self.members[i];
            match read_some(fd, &mut m.buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.broken(i, format!("read: {e}"))),
            }
        }
        self.members[i].open = false;
        self.frames(i)?;
        self.closed(i)
    }

    /// Takes every complete frame child `i` sent.
    fn frames(&mut self, i: usize) -> Result<(), Error> {
        let m = &mut self.members[i];
        let mut pos = 0;
        let mut bad = None;
        loop {
            let rest = &m.buf[pos..];
            match rest.first() {
                None => break,
                Some(&END) => {
                    m.ended = true;
                    pos += 1;
                }
                Some(&BATCH) if rest.len() >= HEADER => {
                    let word = |at: usize| {
                        let mut w = [0u8; 8];
                        w.copy_from_slice(&rest[at..at + 8]);
                        u64::from_le_bytes(w)
                    };
                    let (first, len, bytes) = (word(1), word(9), word(17));
                    let fits = usize::try_from(bytes)
                        .ok()
                        .filter(|&b| b <= isize::MAX as usize - HEADER);
                    let (Ok(first), Ok(len), Some(bytes)) =
                        (usize::try_from(first), usize::try_from(len), fits)
                    else {
                        bad = Some("a range out of bounds".to_string());
                        break;
                    };
                    if first.checked_add(len).is_none_or(|end| end > self.tasks) {
                        bad = Some(format!("tasks {first}+{len} of {}", self.tasks));
                        break;
                    }
                    if rest.len() < HEADER + bytes {
                        m.buf.reserve(HEADER + bytes - rest.len());
                        break;
                    }
                    let outcome = rest[HEADER..HEADER + bytes].to_vec();
                    m.sent = first as u64 + 1;
                    self.ran.push_back(Ran {
                        first,
                        len,
                        outcome,
                    });
                    pos += HEADER + bytes;
                }
                Some(&BATCH) => break,
                Some(&other) => {
                    bad = Some(format!("unexpected frame tag {other} from a child"));
                    break;
                }
            }
        }
        m.buf.drain(..pos);
        match bad {
            Some(message) => Err(self.broken(i, message)),
            None => Ok(()),
        }
    }

    /// Child `i`'s pipe ended: fine after `END`, a death otherwise.
    fn closed(&mut self, i: usize) -> Result<(), Error> {
        let m = &mut self.members[i];
        if m.ended && m.buf.is_empty() {
            return Ok(());
        }
        let taken = self.board.taken(i).load(Ordering::Relaxed);
        let died = fork::died(m.child.reap());
        // At the first task of the range it had taken, if it had not sent it back.
        Err(if taken != 0 && taken != m.sent {
            died.at((taken - 1) as usize)
        } else {
            died
        })
    }

    /// Child `i` sent what makes no sense: it is killed, and the call fails.
    fn broken(&mut self, i: usize, message: String) -> Error {
        let m = &mut self.members[i];
        m.child.kill();
        m.open = false;
        Error::Transport {
            index: None,
            message,
        }
    }
}

impl Drop for Crew {
    fn drop(&mut self) {
        // Past the end: a child between two ranges takes none.
        self.board.next().store(u64::MAX / 2, Ordering::Relaxed);
        for m in &mut self.members {
            m.child.end();
        }
    }
}

/// Reads what `fd` holds into `buf`, with room for at least 64 KiB more: the bytes read, 0
/// at end of file.
fn read_some(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.reserve(64 * 1024);
    fork::read_spare(fd, buf)
}

/// A child's life: takes ranges of tasks until none is left, sends each outcome, says it is
/// done and exits.
fn work(
    session: &ForkSession,
    board: &Board,
    index: usize,
    tasks: usize,
    fixed: Option<usize>,
    workers: usize,
) -> std::convert::Infallible {
    let mut size = fixed.unwrap_or(1);
    loop {
        let first = board.next().fetch_add(size as u64, Ordering::Relaxed);
        let Some(first) = usize::try_from(first).ok().filter(|&f| f < tasks) else {
            break;
        };
        let len = size.min(tasks - first);
        board
            .taken(index)
            .store(first as u64 + 1, Ordering::Relaxed);
        let start = Instant::now();
        let outcome = match catch_panic(|| session.run(first, len, None)) {
            Ok(outcome) => outcome,
            // `run` catches task panics; a panic here came from the runtime itself.
            Err(_) => fork::exit(70),
        };
        if fork::send_frame(
            &[BATCH],
            &[first as u64, len as u64, outcome.len() as u64],
            &outcome,
        )
        .is_err()
        {
            // The parent is gone or stopped reading.
            fork::exit(1);
        }
        if fixed.is_none() {
            let left = tasks.saturating_sub(
                usize::try_from(board.next().load(Ordering::Relaxed)).unwrap_or(usize::MAX),
            );
            size = next_size(size, start.elapsed(), left, workers);
        }
    }
    if fork::send_frame(&[END], &[], &[]).is_err() {
        fork::exit(1);
    }
    fork::exit(0)
}

/// The size of a child's next range, after one of `size` tasks took `took`, with `left`
/// tasks untaken: doubled while ranges take under half the target, halved over twice
/// it, and never more than a share of what is left, so that the last ranges end together.
fn next_size(size: usize, took: Duration, left: usize, workers: usize) -> usize {
    let next = if took < TARGET / 2 {
        size.saturating_mul(2)
    } else if took > TARGET * 2 {
        size / 2
    } else {
        size
    };
    next.min(left / (2 * workers.max(1))).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_grow_while_short_shrink_when_long_and_stay_a_share_of_what_is_left() {
        let ms = Duration::from_millis;
        assert_eq!(next_size(1, ms(0), 1000, 2), 2);
        assert_eq!(next_size(64, ms(1), 1000, 2), 128);
        assert_eq!(next_size(64, ms(10), 1000, 2), 64);
        assert_eq!(next_size(64, ms(30), 1000, 2), 32);
        // At most a quarter of what is left with 2 workers.
        assert_eq!(next_size(512, ms(1), 1000, 2), 250);
        // Never zero.
        assert_eq!(next_size(1, ms(30), 1000, 2), 1);
        assert_eq!(next_size(8, ms(1), 0, 2), 1);
    }
}
