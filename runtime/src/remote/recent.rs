//! The last large captures, kept for a moment after their call.
//!
//! A call's captured variables travel as one attachment, made for the call and let go when
//! it ends (see [`capture`](super::capture)). Programs often make the next call over the
//! very same data: a grid search, a cross-validation loop, a call per epoch. For large
//! captures, writing them to a memory file and having every worker map them again costs
//! far more than comparing them with what the workers have. So the last large attachment
//! of captures stays alive for [`KEEP`] after the last call that used it: a call whose
//! captures encode to the same bytes, for the same types, reuses it, and workers that hold
//! it already get only its id. Anything else (other bytes, other types, small captures)
//! gets an attachment of its own, as before.
//!
//! The bytes are compared in full: a value changed between two calls, even in place, is
//! sent again.

use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::attach::{self, Attachment, Hold};
use crate::sync::Recover;

/// How long the last large captures stay after the last call that used them: workers keep
/// them as long, and let go of them at their next idle check.
pub(crate) const KEEP: Duration = Duration::from_secs(2);

/// Captures smaller than this are made afresh for every call: sending them costs little.
const MIN_KEPT: usize = 1 << 20;

/// The last large captures.
struct Kept {
    /// The type of the captures they were made for (one name for the whole tuple, its
    /// kinds included): the same bytes decode to another type elsewhere.
    kind: &'static str,
    attachment: Attachment,
    alive: Arc<Hold>,
    until: Instant,
}

struct Keeper {
    kept: Mutex<Option<Kept>>,
    changed: Condvar,
    /// The process whose thread lets go of expired captures: in a process forked from it,
    /// that thread does not exist, so nothing is kept there.
    pid: u32,
}

/// The keeper, with its thread started; `None` if the thread cannot start.
fn keeper() -> Option<&'static Keeper> {
    static KEEPER: OnceLock<Option<&'static Keeper>> = OnceLock::new();
    let keeper = (*KEEPER.get_or_init(|| {
        let keeper: &'static Keeper = Box::leak(Box::new(Keeper {
            kept: Mutex::new(None),
            changed: Condvar::new(),
            pid: std::process::id(),
        }));
        let spawned = std::thread::Builder::new()
            .name("parjob-captures".into())
            .spawn(move || let_go_when_due(keeper));
        match spawned {
            Ok(_) => Some(keeper),
            Err(e) => {
                tracing::debug!("parjob: captures are not kept between calls ({e})");
                None
            }
        }
    }))?;
    (keeper.pid == std::process::id()).then_some(keeper)
}

/// The keeper's thread: drops the kept captures once no call has used them for [`KEEP`].
fn let_go_when_due(keeper: &Keeper) -> ! {
    let mut kept = keeper.kept.lock().recover();
    loop {
        let now = Instant::now();
        let due = match kept.as_ref() {
            // Nothing kept, or a call uses them: the end of that call wakes this thread.
            None => None,
            Some(k) if Arc::strong_count(&k.alive) > 1 => None,
            Some(k) if k.until <= now => {
                let gone = kept.take();
                drop(kept);
                // Outside the lock: dropping may close a memory file.
                drop(gone);
                kept = keeper.kept.lock().recover();
                continue;
            }
            Some(k) => Some(k.until),
        };
        kept = match due {
            None => keeper.changed.wait(kept).recover(),
            Some(due) => {
                let wait = due.saturating_duration_since(now);
                keeper.changed.wait_timeout(kept, wait).recover().0
            }
        };
    }
}

/// What a call holds of its captures: keeps their attachment alive while the call runs
/// and, when the call ends, the last large captures for [`KEEP`] more.
#[derive(Debug)]
pub(crate) struct InUse {
    alive: Option<Arc<Hold>>,
}

impl Drop for InUse {
    fn drop(&mut self) {
        let Some(alive) = self.alive.take() else {
            return;
        };
        let hold = Arc::downgrade(&alive);
        // Let go first, so that the keeper sees the captures unused when it wakes.
        drop(alive);
        let Some(keeper) = keeper() else { return };
        let mut kept = keeper.kept.lock().recover();
        if let Some(k) = kept.as_mut()
            && hold.upgrade().is_some_and(|h| Arc::ptr_eq(&h, &k.alive))
        {
            k.until = Instant::now() + KEEP;
            keeper.changed.notify_one();
        }
    }
}

/// The attachment of a call's captures of type `kind`, encoded as `pieces`, and what the
/// call holds while it runs: the last large captures if they have the same type and bytes,
/// or a new attachment (kept in their place when large).
pub(crate) fn captures(kind: &'static str, pieces: &[&[u8]]) -> (Attachment, InUse) {
    let len = pieces.iter().map(|p| p.len()).sum::<usize>();
    let keeper = if len >= MIN_KEPT { keeper() } else { None };
    let Some(keeper) = keeper else {
        let (attachment, alive) = fresh(pieces);
        return (attachment, InUse { alive: Some(alive) });
    };
    let candidate = keeper
        .kept
        .lock()
        .recover()
        .as_ref()
        .filter(|k| k.kind == kind && k.attachment.bytes().len() == len)
        .map(|k| (k.attachment.clone(), Arc::clone(&k.alive)));
    // Compared without the lock: other calls need not wait for it.
    if let Some((attachment, alive)) = candidate
        && same_bytes(attachment.bytes(), pieces)
    {
        return (attachment, InUse { alive: Some(alive) });
    }
    let (attachment, alive) = fresh(pieces);
    let before = keeper.kept.lock().recover().replace(Kept {
        kind,
        attachment: attachment.clone(),
        alive: Arc::clone(&alive),
        until: Instant::now() + KEEP,
    });
    keeper.changed.notify_one();
    drop(before);
    (attachment, InUse { alive: Some(alive) })
}

/// A new attachment of `pieces`, and what keeps it alive.
fn fresh(pieces: &[&[u8]]) -> (Attachment, Arc<Hold>) {
    let id = attach::next_id();
    // Written once: into a memory file that workers map when large, else one buffer.
    let attachment = Attachment::from_pieces(id, pieces);
    (attachment, Arc::new(attach::hold(id)))
}

/// Whether `pieces`, one after the other, are `bytes`.
fn same_bytes(bytes: &[u8], pieces: &[&[u8]]) -> bool {
    let mut rest = bytes;
    for piece in pieces {
        let Some((head, tail)) = rest.split_at_checked(piece.len()) else {
            return false;
        };
        if head != *piece {
            return false;
        }
        rest = tail;
    }
    rest.is_empty()
}

/// Lets go of the kept captures now: workers forget them when next told what the caller
/// dropped (tests that count what workers keep).
pub(crate) fn forget_kept() {
    if let Some(keeper) = keeper() {
        let gone = keeper.kept.lock().recover().take();
        drop(gone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn the_same_large_captures_get_the_same_attachment() {
        let _serial = SERIAL.lock().recover();
        let block = vec![7u8; MIN_KEPT];
        let (a, alive_a) = captures("(A,)", &[b"head", &block]);
        let (b, alive_b) = captures("(A,)", &[b"head", &block]);
        assert_eq!(a.id(), b.id());
        // Cut elsewhere, the same bytes are still the same captures.
        let joined = [&b"head"[..], &block].concat();
        let (c, _) = captures("(A,)", &[&joined[..2], &joined[2..]]);
        assert_eq!(c.id(), a.id());
        drop((alive_a, alive_b));
        // Kept after the calls, until let go.
        assert!(attach::is_alive(a.id()));
        forget_kept();
        assert!(!attach::is_alive(a.id()));
    }

    #[test]
    fn other_bytes_types_or_small_captures_get_their_own() {
        let _serial = SERIAL.lock().recover();
        let mut block = vec![7u8; MIN_KEPT];
        let (a, _alive_a) = captures("(A,)", &[&block]);
        let (other_type, _) = captures("(B,)", &[&block]);
        assert_ne!(other_type.id(), a.id());
        // Kept in its place: the first type's captures are new again.
        let (again, _) = captures("(A,)", &[&block]);
        assert_ne!(again.id(), a.id());
        let last = block.len() - 1;
        block[last] = 8;
        let (changed, _) = captures("(A,)", &[&block]);
        assert_ne!(changed.id(), again.id());
        let (longer, _) = captures("(A,)", &[&block, b"x"]);
        assert_ne!(longer.id(), changed.id());
        let small = [1u8; 16];
        let (s1, alive) = captures("(A,)", &[&small]);
        let (s2, _) = captures("(A,)", &[&small]);
        assert_ne!(s1.id(), s2.id());
        drop(alive);
        assert!(
            !attach::is_alive(s1.id()),
            "small captures go with their call"
        );
        forget_kept();
    }

    #[test]
    fn kept_captures_go_once_unused_for_a_while() {
        let _serial = SERIAL.lock().recover();
        let block = vec![3u8; MIN_KEPT];
        let (a, alive) = captures("(C,)", &[&block]);
        // In use: kept whatever the time.
        std::thread::sleep(KEEP + Duration::from_millis(300));
        assert!(attach::is_alive(a.id()));
        drop(alive);
        let ended = Instant::now();
        while attach::is_alive(a.id()) {
            assert!(
                ended.elapsed() < KEEP + Duration::from_secs(10),
                "the captures are still kept"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Gone no sooner than `KEEP` after the call let go.
        assert!(ended.elapsed() >= KEEP, "{:?}", ended.elapsed());
    }

    #[test]
    fn pieces_compare_as_one_run_of_bytes() {
        assert!(same_bytes(b"abcd", &[b"ab", b"cd"]));
        assert!(same_bytes(b"abcd", &[b"abcd", b""]));
        assert!(!same_bytes(b"abcd", &[b"ab", b"c"]));
        assert!(!same_bytes(b"abc", &[b"ab", b"cd"]));
        assert!(!same_bytes(b"abcd", &[b"ab", b"ce"]));
        assert!(same_bytes(b"", &[]));
    }
}
