//! parjob's messages between ranks. Fixed-size fields go in a trailer after the variable
//! part, so that the receiver can cut the trailer off and keep the payload where it is.
//!
//! - batch (`tag::BATCH`): the encoded inputs, then `entry i64`, `callee kind u8`,
//!   `callee i64`, `binary i64`, `inner threads u32` (0: the rank's default), `report
//!   starts u8`, `batch id u64`, all little-endian;
//! - task started (`tag::STARTED`): `batch id u64`, `task u32`;
//! - outcome (`tag::DONE`): the encoded outcome, then `batch id u64`.

use crate::job::RemoteReply;
use crate::remote::{Attachment, Callee, EntryId, RemoteBatch};

const TRAILER: usize = 8 + 1 + 8 + 8 + 4 + 1 + 8;

/// A batch as rank 0 sends it.
pub(super) fn batch_message(
    id: u64,
    batch: &RemoteBatch,
    reply: &RemoteReply,
    inner_threads: Option<usize>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(batch.payload.len() + TRAILER);
    out.extend_from_slice(&batch.payload);
    out.extend_from_slice(&batch.entry.raw().to_le_bytes());
    let (kind, callee) = match batch.callee {
        Callee::ZeroSized => (0u8, 0i64),
        Callee::Pointer(id) => (1u8, id.raw()),
    };
    out.push(kind);
    out.extend_from_slice(&callee.to_le_bytes());
    out.extend_from_slice(&batch.binary.to_le_bytes());
    let inner = inner_threads.map_or(0, |k| u32::try_from(k).unwrap_or(u32::MAX));
    out.extend_from_slice(&inner.to_le_bytes());
    out.push(u8::from(reply.wants_task_starts()));
    out.extend_from_slice(&id.to_le_bytes());
    out
}

/// A received batch: `(batch id, report starts, inner threads, batch)`.
pub(super) struct Received {
    pub(super) id: u64,
    pub(super) report_starts: bool,
    pub(super) inner_threads: Option<usize>,
    pub(super) batch: RemoteBatch,
}

/// Splits a batch message; `None` if it is too short to be one.
pub(super) fn parse_batch(mut bytes: Vec<u8>) -> Option<Received> {
    let start = bytes.len().checked_sub(TRAILER)?;
    let t = &bytes[start..];
    let i64_at = |at: usize| i64::from_le_bytes(t[at..at + 8].try_into().unwrap_or_default());
    let entry = EntryId::from_raw(i64_at(0));
    let callee = match t[8] {
        0 => Callee::ZeroSized,
        1 => Callee::Pointer(EntryId::from_raw(i64_at(9))),
        _ => return None,
    };
    let binary = i64_at(17);
    let inner = u32::from_le_bytes(t[25..29].try_into().unwrap_or_default());
    let report_starts = t[29] != 0;
    let id = u64::from_le_bytes(t[30..38].try_into().unwrap_or_default());
    bytes.truncate(start);
    Some(Received {
        id,
        report_starts,
        inner_threads: (inner > 0).then_some(inner as usize),
        batch: RemoteBatch {
            entry,
            callee,
            payload: bytes,
            binary,
            attachments: Vec::new(),
        },
    })
}

/// An attachment as rank 0 sends it: its bytes, then its id.
pub(super) fn attach_id_message(attachment: &Attachment) -> [u8; 8] {
    attachment.id().to_le_bytes()
}

/// An `ATTACH_FILE` message: the attachment's id, and where its memory file is: rank 0's
/// pid, the file's descriptor there and its length.
pub(super) fn attach_file_message(id: u64, pid: u32, fd: i32, len: usize) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..8].copy_from_slice(&id.to_le_bytes());
    out[8..16].copy_from_slice(&u64::from(pid).to_le_bytes());
    out[16..24].copy_from_slice(&i64::from(fd).to_le_bytes());
    out[24..].copy_from_slice(&(len as u64).to_le_bytes());
    out
}

/// What an `ATTACH_FILE` message says: id, pid, descriptor, length.
pub(super) fn attached_file(bytes: &[u8]) -> Option<(u64, u32, i32, usize)> {
    let word = |i: usize| -> Option<u64> {
        Some(u64::from_le_bytes(
            bytes.get(i * 8..i * 8 + 8)?.try_into().ok()?,
        ))
    };
    if bytes.len() != 32 {
        return None;
    }
    Some((
        word(0)?,
        u32::try_from(word(1)?).ok()?,
        i32::try_from(word(2)? as i64).ok()?,
        usize::try_from(word(3)?).ok()?,
    ))
}

/// The id of an `ATTACH_ID` message.
pub(super) fn attach_id(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// Ids to forget, one after another.
pub(super) fn forget_message(ids: &[u64]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.to_le_bytes()).collect()
}

/// The ids of a forget message.
pub(super) fn forgotten(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect()
}

pub(super) fn started_message(id: u64, task: usize) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&id.to_le_bytes());
    out[8..].copy_from_slice(&u32::try_from(task).unwrap_or(u32::MAX).to_le_bytes());
    out
}

/// `(batch id, task)` of a task-started message.
pub(super) fn started(bytes: &[u8]) -> Option<(u64, usize)> {
    let id = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let task = u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?);
    Some((id, task as usize))
}

/// Appends the batch id to an outcome.
pub(super) fn done_message(mut outcome: Vec<u8>, id: u64) -> Vec<u8> {
    outcome.extend_from_slice(&id.to_le_bytes());
    outcome
}

/// Cuts the batch id off an outcome message, leaving the outcome.
pub(super) fn take_id(bytes: &mut Vec<u8>) -> Option<u64> {
    let start = bytes.len().checked_sub(8)?;
    let id = u64::from_le_bytes(bytes[start..].try_into().ok()?);
    bytes.truncate(start);
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_odd_messages_are_refused() {
        assert!(parse_batch(vec![0; TRAILER - 1]).is_none());
        let mut odd = vec![0; TRAILER];
        odd[8] = 7; // no such callee kind
        assert!(parse_batch(odd).is_none());
        assert_eq!(started(&[1, 2, 3]), None);
        assert_eq!(take_id(&mut vec![1, 2]), None);
    }

    #[test]
    fn outcomes_keep_their_bytes() {
        let mut msg = done_message(vec![9, 8, 7], 42);
        assert_eq!(take_id(&mut msg), Some(42));
        assert_eq!(msg, [9, 8, 7]);
        assert_eq!(started(&started_message(5, 3)), Some((5, 3)));
        assert_eq!(forgotten(&forget_message(&[3, u64::MAX])), [3, u64::MAX]);
        let attach = Attachment::new(9, std::sync::Arc::new(vec![1, 2]));
        assert_eq!(attach_id(&attach_id_message(&attach)), Some(9));
        assert_eq!(attach_id(&[1, 2]), None);
        let file = attach_file_message(7, 4321, 12, 3 << 20);
        assert_eq!(attached_file(&file), Some((7, 4321, 12, 3 << 20)));
        assert_eq!(attached_file(&file[..31]), None);
    }
}
