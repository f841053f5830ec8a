//! The frames a worker process and its pool exchange over their two pipes.
//!
//! A frame is a little-endian `u32` length, then that many bytes: the postcard encoding of
//! one message, then the message's *tail*. Only `Run` (the batch's encoded inputs) and
//! `Done` (the batch's encoded outcome) have a tail; it is raw bytes, so that the sender
//! writes it straight from its buffer and the receiver keeps it in the buffer it read the
//! frame into: megabytes of inputs are never copied through serde one byte at a time.
//!
//! Frames above [`MAX_FRAME`] are refused on both sides, so a corrupted length can neither
//! make a reader allocate without bound nor wait for bytes that never come; a frame whose
//! body stops arriving for [`STALL`] is an error too.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::remote::{Callee, EntryId, RemoteBatch};

/// The largest frame either side accepts: 1 GiB.
pub(crate) const MAX_FRAME: usize = 1 << 30;

/// The largest first frame a worker accepts: a `Hello` is about 50 bytes.
pub(crate) const MAX_HELLO: usize = 256;

/// How long a reader waits for the rest of a frame whose length it already read.
pub(crate) const STALL: Duration = Duration::from_secs(30);

/// Bumped whenever a message changes shape.
pub(crate) const PROTOCOL_VERSION: u32 = 5;

/// Room a frame buffer is reserved with before its first byte arrives; longer frames grow
/// as their bytes come, so that a corrupted length costs nothing.
const PREALLOCATE: usize = 64 << 20;

/// What the pool sends a worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToWorker {
    /// The first message: who the parent is and which binary it runs.
    Hello {
        version: u32,
        /// 32 random bytes per pool, echoed in `Ready`: a reply that carries them answers
        /// this `Hello`, not some other stream of bytes that happens to parse.
        secret: [u8; 32],
        /// `EntryId::fingerprint()` of the parent: equal only for the same build.
        fingerprint: i64,
        /// The parent's pid: the worker exits if its own parent is already someone else.
        parent_pid: u32,
    },
    /// Run one batch; reply with `Started` per task if `report_starts`, then `Done`. Its
    /// payload is the tail, or, when `shared` gives its length, the start of the worker's
    /// shared memory file (see `shm`), and the frame has no tail.
    Run {
        batch_id: u64,
        report_starts: bool,
        entry: EntryId,
        callee: Callee,
        binary: i64,
        shared: Option<u64>,
        /// [`batch_tag`] of the batch id and the functions named, under the pool's secret.
        tag: u64,
    },
    /// Exit now.
    Shutdown,
    /// Keep the tail as attachment `id` (a `Shared` value) until told to forget it.
    Attach { id: u64 },
    /// Drop these attachments: the parent no longer holds them.
    Forget { ids: Vec<u64> },
    /// Keep attachment `id`, whose `len` bytes are in the parent's memory file `fd`: map it
    /// (through `/proc/<parent>/fd/<fd>`) rather than receive a copy.
    AttachFile { id: u64, fd: i32, len: u64 },
}

impl ToWorker {
    /// The `Run` message for `batch`: its payload goes as the tail, or is in the shared
    /// region when `shared`.
    pub(crate) fn run(
        batch_id: u64,
        report_starts: bool,
        batch: &RemoteBatch,
        secret: &[u8; 32],
        shared: bool,
    ) -> ToWorker {
        ToWorker::Run {
            batch_id,
            report_starts,
            entry: batch.entry,
            callee: batch.callee,
            binary: batch.binary,
            shared: shared.then_some(batch.payload.len() as u64),
            tag: batch_tag(secret, batch_id, batch.entry, batch.callee, batch.binary),
        }
    }
}

/// The keyed hash (SipHash-2-4 under the pool's secret) of what a batch asks the worker to
/// call: a worker runs a batch only if its `tag` matches.
pub(crate) fn batch_tag(
    secret: &[u8; 32],
    batch_id: u64,
    entry: EntryId,
    callee: Callee,
    binary: i64,
) -> u64 {
    let mut data = [0u8; 33];
    data[..8].copy_from_slice(&batch_id.to_le_bytes());
    data[8..16].copy_from_slice(&entry.raw().to_le_bytes());
    let (kind, callee) = match callee {
        Callee::ZeroSized => (0, 0),
        Callee::Pointer(id) => (1, id.raw()),
    };
    data[16] = kind;
    data[17..25].copy_from_slice(&callee.to_le_bytes());
    data[25..33].copy_from_slice(&binary.to_le_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&secret[..16]);
    super::sip::hash(&key, &data)
}

/// What a worker sends its pool.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum FromWorker {
    /// The handshake succeeded.
    Ready { pid: u32, secret: [u8; 32] },
    /// Task `task` (counted within the batch) is about to run.
    Started { batch_id: u64, task: u32 },
    /// The tail holds the bytes `RemoteBatch::execute` returned.
    Done { batch_id: u64 },
    /// The first `len` bytes of the worker's shared region hold them (large outcomes).
    DoneShared { batch_id: u64, len: u64 },
}

/// The messages that carry a tail.
pub(crate) trait Message: Serialize + DeserializeOwned {
    fn has_tail(&self) -> bool;
}

impl Message for ToWorker {
    fn has_tail(&self) -> bool {
        matches!(self, ToWorker::Run { .. } | ToWorker::Attach { .. })
    }
}

impl Message for FromWorker {
    fn has_tail(&self) -> bool {
        matches!(self, FromWorker::Done { .. })
    }
}

/// Why a frame could not be read or written.
#[derive(Debug)]
pub(crate) enum WireError {
    /// The pipe failed (other than by ending).
    Io(io::Error),
    /// The pipe ended inside a frame.
    Truncated { expected: usize, got: usize },
    /// A length above the limit.
    TooLarge { len: usize, limit: usize },
    /// Nothing arrived in time.
    TimedOut { waited: Duration },
    /// The bytes of a complete frame are not a message.
    Malformed(String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "pipe error: {e}"),
            WireError::Truncated { expected, got } => {
                write!(
                    f,
                    "truncated frame: the pipe ended after {got} of {expected} bytes"
                )
            }
            WireError::TooLarge { len, limit } => {
                write!(f, "frame of {len} bytes exceeds the limit of {limit} bytes")
            }
            WireError::TimedOut { waited } => write!(f, "no data for {waited:?} inside a frame"),
            WireError::Malformed(m) => write!(f, "malformed frame: {m}"),
        }
    }
}

impl WireError {
    /// The error a parallel call reports for it.
    pub(crate) fn into_error(self) -> Error {
        Error::Transport {
            index: None,
            message: self.to_string(),
        }
    }
}

/// The start of a frame: length prefix and encoded message; `tail` follows it.
pub(crate) fn encode<M: Message>(msg: &M, tail: &[u8]) -> Result<Vec<u8>, WireError> {
    if !msg.has_tail() && !tail.is_empty() {
        return Err(WireError::Malformed("this message takes no tail".into()));
    }
    let mut head = postcard::to_extend(msg, vec![0u8; 4])
        .map_err(|e| WireError::Malformed(format!("cannot encode: {e}")))?;
    let len = head.len() - 4 + tail.len();
    if len > MAX_FRAME {
        return Err(WireError::TooLarge {
            len,
            limit: MAX_FRAME,
        });
    }
    // `len <= MAX_FRAME < u32::MAX`.
    head[..4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(head)
}

/// Decodes the body of one frame into its message and tail.
pub(crate) fn decode<M: Message>(mut body: Vec<u8>) -> Result<(M, Vec<u8>), WireError> {
    let (msg, tail_len) = match postcard::take_from_bytes::<M>(&body) {
        Ok((msg, tail)) => (msg, tail.len()),
        Err(e) => return Err(WireError::Malformed(e.to_string())),
    };
    if !msg.has_tail() && tail_len > 0 {
        return Err(WireError::Malformed(format!(
            "{tail_len} bytes after the end of the message"
        )));
    }
    // Moves the tail down within the buffer: no new allocation, no page faults.
    body.drain(..body.len() - tail_len);
    Ok((msg, body))
}

/// Something frames are read from: `read` with a bound on how long to wait for a byte.
pub(crate) trait Source {
    /// Reads at least one byte, or 0 at end of input; `TimedOut` once `wait` passed
    /// without a byte (`None` waits for ever).
    fn read_within(&mut self, buf: &mut [u8], wait: Option<Duration>) -> io::Result<usize>;
}

impl Source for &[u8] {
    fn read_within(&mut self, buf: &mut [u8], _wait: Option<Duration>) -> io::Result<usize> {
        self.read(buf)
    }
}

/// The reading end of a pipe.
#[derive(Debug)]
pub(crate) struct PipeIn(File);

impl PipeIn {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        PipeIn(File::from(fd))
    }

    /// Whether a byte arrives within `wait` (or the pipe closes).
    pub(crate) fn ready_within(&self, wait: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid `pollfd`.
        let n = unsafe { libc::poll(&mut pfd, 1, wait.as_millis().min(i32::MAX as u128) as i32) };
        n != 0
    }

    /// Whether a byte arrives (or the pipe closes) within `limit`, looked for without
    /// sleeping: for a message due within microseconds, the wake-up of a sleeping thread
    /// (tens of microseconds on a virtual machine whose idle cpu halted) costs more than
    /// the wait.
    pub(crate) fn ready_spinning(&self, limit: Duration) -> bool {
        let start = std::time::Instant::now();
        loop {
            let mut pfd = libc::pollfd {
                fd: self.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid `pollfd`; a zero timeout only looks.
            if unsafe { libc::poll(&mut pfd, 1, 0) } != 0 {
                return true;
            }
            if start.elapsed() >= limit {
                return false;
            }
            // The other side may be waiting for this very cpu.
            std::thread::yield_now();
        }
    }
}

/// How long a side that expects a message at once looks for it before it sleeps: a little
/// more than the wake-up it saves.
pub(crate) const SPIN: Duration = Duration::from_micros(50);

impl Source for PipeIn {
    fn read_within(&mut self, buf: &mut [u8], wait: Option<Duration>) -> io::Result<usize> {
        if let Some(wait) = wait {
            let mut pfd = libc::pollfd {
                fd: self.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = libc::c_int::try_from(wait.as_millis()).unwrap_or(libc::c_int::MAX);
            // SAFETY: `pfd` is one valid `pollfd` and we pass a count of 1.
            match unsafe { libc::poll(&mut pfd, 1, ms) } {
                0 => return Err(io::ErrorKind::TimedOut.into()),
                n if n < 0 => return Err(io::Error::last_os_error()),
                // Readable, or hung up / in error: `read` reports which.
                _ => {}
            }
        }
        self.0.read(buf)
    }
}

/// Reads one frame's body: `Ok(None)` when the input ends cleanly between frames. The
/// first byte is awaited for `first` (`None`: for ever); every later byte for [`STALL`].
pub(crate) fn read_frame<S: Source>(
    src: &mut S,
    limit: usize,
    first: Option<Duration>,
) -> Result<Option<Vec<u8>>, WireError> {
    read_frame_with_stall(src, limit, first, STALL)
}

pub(crate) fn read_frame_with_stall<S: Source>(
    src: &mut S,
    limit: usize,
    first: Option<Duration>,
    stall: Duration,
) -> Result<Option<Vec<u8>>, WireError> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let wait = if got == 0 { first } else { Some(stall) };
        match read_some(src, &mut header[got..], wait)? {
            0 if got == 0 => return Ok(None),
            0 => return Err(WireError::Truncated { expected: 4, got }),
            n => got += n,
        }
    }
    let len = u32::from_le_bytes(header) as usize;
    if len > limit {
        return Err(WireError::TooLarge { len, limit });
    }
    let out_of_memory = |e| WireError::Io(io::Error::new(io::ErrorKind::OutOfMemory, e));
    let mut body = Vec::new();
    body.try_reserve_exact(len.min(PREALLOCATE))
        .map_err(out_of_memory)?;
    // Past the reservation, grow with what arrives, not with what the header claims.
    let mut chunk = len.min(1 << 20);
    while body.len() < len {
        let start = body.len();
        let want = chunk.min(len - start);
        body.try_reserve(want).map_err(out_of_memory)?;
        body.resize(start + want, 0);
        let mut filled = start;
        while filled < start + want {
            match read_some(src, &mut body[filled..start + want], Some(stall))? {
                0 => {
                    return Err(WireError::Truncated {
                        expected: len,
                        got: filled,
                    });
                }
                n => filled += n,
            }
        }
        chunk = chunk.saturating_mul(2).min(64 << 20);
    }
    Ok(Some(body))
}

fn read_some<S: Source>(
    src: &mut S,
    buf: &mut [u8],
    wait: Option<Duration>,
) -> Result<usize, WireError> {
    loop {
        match src.read_within(buf, wait) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return Err(WireError::TimedOut {
                    waited: wait.unwrap_or_default(),
                });
            }
            Err(e) => return Err(WireError::Io(e)),
        }
    }
}

/// Reads and decodes one message and its tail; `Ok(None)` at a clean end of input.
pub(crate) fn recv<M: Message, S: Source>(
    src: &mut S,
    limit: usize,
    first: Option<Duration>,
) -> Result<Option<(M, Vec<u8>)>, WireError> {
    match read_frame(src, limit, first)? {
        Some(body) => decode(body).map(Some),
        None => Ok(None),
    }
}

/// Writes `msg` and `tail` as one frame.
pub(crate) fn send<M: Message>(
    out: &mut impl Write,
    msg: &M,
    tail: &[u8],
) -> Result<(), WireError> {
    let mut head = encode(msg, tail)?;
    if tail.len() <= 64 << 10 {
        // One write for small frames.
        head.extend_from_slice(tail);
        return out.write_all(&head).map_err(WireError::Io);
    }
    out.write_all(&head).map_err(WireError::Io)?;
    out.write_all(tail).map_err(WireError::Io)
}

/// Reads every frame of `bytes` as both message types, for the fuzz target; the errors met,
/// as the calls would see them.
#[cfg(test)]
pub(crate) fn fuzz_frames(mut bytes: &[u8]) -> Vec<Error> {
    let mut errors = Vec::new();
    loop {
        match read_frame(&mut bytes, 1 << 20, None) {
            Ok(Some(body)) => {
                if let Err(e) = decode::<ToWorker>(body.clone()) {
                    errors.push(e.into_error());
                }
                if let Err(e) = decode::<FromWorker>(body) {
                    errors.push(e.into_error());
                }
            }
            Ok(None) => return errors,
            Err(e) => {
                errors.push(e.into_error());
                return errors;
            }
        }
    }
}

/// One frame of each message, for the fuzz seeds.
#[cfg(test)]
pub(crate) fn seed_frames() -> Vec<(String, Vec<u8>)> {
    let frame = |head: Vec<u8>, tail: &[u8]| {
        let mut f = head;
        f.extend_from_slice(tail);
        f
    };
    let batch = RemoteBatch {
        entry: EntryId::of_addr(0x1234),
        callee: Callee::Pointer(EntryId::of_addr(0x5678)),
        payload: (0..64u8).collect(),
        binary: 77,
        attachments: Vec::new(),
    };
    let secret = [7u8; 32];
    let hello = ToWorker::Hello {
        version: PROTOCOL_VERSION,
        secret,
        fingerprint: -42,
        parent_pid: 99,
    };
    let mut shared = ToWorker::run(4, false, &batch, &secret, true);
    if let ToWorker::Run { shared: len, .. } = &mut shared {
        *len = Some(1 << 20);
    }
    let enc = |m: &ToWorker, tail: &[u8]| frame(encode(m, tail).expect("encodable"), tail);
    let enc_from = |m: &FromWorker, tail: &[u8]| frame(encode(m, tail).expect("encodable"), tail);
    vec![
        ("hello.bin".into(), enc(&hello, &[])),
        (
            "run.bin".into(),
            enc(
                &ToWorker::run(3, true, &batch, &secret, false),
                &batch.payload,
            ),
        ),
        ("run-shared.bin".into(), enc(&shared, &[])),
        ("shutdown.bin".into(), enc(&ToWorker::Shutdown, &[])),
        (
            "ready.bin".into(),
            enc_from(&FromWorker::Ready { pid: 5, secret }, &[]),
        ),
        (
            "started.bin".into(),
            enc_from(
                &FromWorker::Started {
                    batch_id: 9,
                    task: 2,
                },
                &[],
            ),
        ),
        (
            "done.bin".into(),
            enc_from(&FromWorker::Done { batch_id: 9 }, &[0, 1, 2, 3]),
        ),
        (
            "done-shared.bin".into(),
            enc_from(
                &FromWorker::DoneShared {
                    batch_id: 9,
                    len: 1 << 20,
                },
                &[],
            ),
        ),
        (
            "two-frames.bin".into(),
            [
                enc_from(
                    &FromWorker::Started {
                        batch_id: 1,
                        task: 0,
                    },
                    &[],
                ),
                enc_from(&FromWorker::Done { batch_id: 1 }, &[0, 9]),
            ]
            .concat(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: reproducible noise without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// A whole frame, as `send` writes it.
    fn frame<M: Message>(msg: &M, tail: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        send(&mut out, msg, tail).expect("encodes");
        out
    }

    fn samples() -> Vec<Vec<u8>> {
        let batch = RemoteBatch {
            entry: EntryId::of_addr(0x1234),
            callee: Callee::Pointer(EntryId::of_addr(0x5678)),
            payload: (0..200u8).collect(),
            binary: EntryId::fingerprint(),
            attachments: Vec::new(),
        };
        vec![
            frame(
                &ToWorker::Hello {
                    version: PROTOCOL_VERSION,
                    secret: [7; 32],
                    fingerprint: -42,
                    parent_pid: 99,
                },
                &[],
            ),
            frame(
                &ToWorker::run(3, true, &batch, &[7; 32], false),
                &batch.payload,
            ),
            frame(&ToWorker::Shutdown, &[]),
            frame(
                &FromWorker::Ready {
                    pid: 5,
                    secret: [1; 32],
                },
                &[],
            ),
            frame(
                &FromWorker::Started {
                    batch_id: 9,
                    task: 2,
                },
                &[],
            ),
            frame(&FromWorker::Done { batch_id: 9 }, &[0, 1, 2, 3]),
        ]
    }

    /// Reads every frame of `bytes` as both message types; must never panic.
    fn read_all(mut bytes: &[u8]) -> usize {
        let mut frames = 0;
        loop {
            match read_frame(&mut bytes, 1 << 20, None) {
                Ok(Some(body)) => {
                    frames += 1;
                    let _ = decode::<ToWorker>(body.clone());
                    let _ = decode::<FromWorker>(body);
                }
                Ok(None) | Err(_) => return frames,
            }
        }
    }

    #[test]
    fn messages_round_trip() {
        let frames = samples();
        let mut src: &[u8] = &frames[5];
        let (msg, tail) = recv::<FromWorker, _>(&mut src, MAX_FRAME, None)
            .unwrap()
            .unwrap();
        assert_eq!(
            (msg, tail),
            (FromWorker::Done { batch_id: 9 }, vec![0, 1, 2, 3])
        );
        let mut src: &[u8] = &frames[1];
        match recv::<ToWorker, _>(&mut src, MAX_FRAME, None)
            .unwrap()
            .unwrap()
        {
            (
                ToWorker::Run {
                    batch_id: 3,
                    report_starts: true,
                    entry,
                    binary,
                    ..
                },
                payload,
            ) => {
                assert_eq!(payload, (0..200u8).collect::<Vec<_>>());
                assert_eq!(entry, EntryId::of_addr(0x1234));
                assert_eq!(binary, EntryId::fingerprint());
            }
            other => panic!("unexpected {other:?}"),
        }
        // The payload is raw: 200 bytes plus a small head.
        assert!(frames[1].len() < 200 + 48, "{}", frames[1].len());
        let all: Vec<u8> = frames.concat();
        assert_eq!(read_all(&all), frames.len());
        // Only `Run` and `Done` take a tail.
        assert!(encode(&ToWorker::Shutdown, &[1]).is_err());
    }

    #[test]
    fn large_tails_are_written_apart_and_read_back_whole() {
        let tail: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let bytes = frame(&FromWorker::Done { batch_id: 1 }, &tail);
        let mut src: &[u8] = &bytes;
        let (_, got) = recv::<FromWorker, _>(&mut src, MAX_FRAME, None)
            .unwrap()
            .unwrap();
        assert!(got == tail);
    }

    #[test]
    fn bad_lengths_and_truncation_are_errors() {
        let mut src: &[u8] = &[0xff, 0xff, 0xff, 0x7f];
        assert!(matches!(
            read_frame(&mut src, MAX_FRAME, None),
            Err(WireError::TooLarge {
                len: 0x7fff_ffff,
                ..
            })
        ));
        let mut src: &[u8] = &[10, 0, 0, 0, 1, 2];
        assert!(matches!(
            read_frame(&mut src, MAX_FRAME, None),
            Err(WireError::Truncated {
                expected: 10,
                got: 2
            })
        ));
        let mut src: &[u8] = &[1, 0];
        assert!(matches!(
            read_frame(&mut src, MAX_FRAME, None),
            Err(WireError::Truncated { .. })
        ));
        let mut src: &[u8] = &[];
        assert!(matches!(read_frame(&mut src, MAX_FRAME, None), Ok(None)));
        // A message without a tail, followed by bytes inside its frame, is malformed.
        let mut bytes = samples()[2].clone();
        bytes.push(0);
        bytes[0] += 1;
        let mut src: &[u8] = &bytes;
        assert!(matches!(
            recv::<ToWorker, _>(&mut src, MAX_FRAME, None),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..5_000 {
            let len = rng.below(96);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Half the cases get a plausible length so that the body is decoded.
            if len >= 4 && rng.next().is_multiple_of(2) {
                let body = (len - 4) as u32;
                bytes[..4].copy_from_slice(&body.to_le_bytes());
            }
            read_all(&bytes);
        }
    }

    #[test]
    fn mutated_frames_never_panic() {
        let frames = samples();
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        for case in 0..10_000 {
            let mut frame = frames[case % frames.len()].clone();
            match rng.below(4) {
                0 => {
                    let i = rng.below(frame.len());
                    frame[i] ^= 1 << rng.below(8);
                }
                1 => frame.truncate(rng.below(frame.len())),
                2 => {
                    for _ in 0..=rng.below(8) {
                        let i = rng.below(frame.len());
                        frame[i] = rng.next() as u8;
                    }
                }
                _ => {
                    let i = 4 + rng.below(frame.len() - 4);
                    frame.insert(i, rng.next() as u8);
                    let len = (frame.len() - 4) as u32;
                    frame[..4].copy_from_slice(&len.to_le_bytes());
                }
            }
            read_all(&frame);
        }
    }

    #[test]
    fn a_frame_that_stops_arriving_times_out() {
        let (r, mut w) = std::io::pipe().unwrap();
        w.write_all(&[100, 0, 0, 0, 1, 2, 3]).unwrap();
        let mut src = PipeIn::new(OwnedFd::from(r));
        let started = std::time::Instant::now();
        let result = read_frame_with_stall(&mut src, MAX_FRAME, None, Duration::from_millis(100));
        assert!(
            matches!(result, Err(WireError::TimedOut { .. })),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(w);
    }
}
