//! Which attachments (`Shared` values) a worker holds, kept by the caller for each of its
//! workers (processes or ranks): each attachment is sent once, and forgotten once the
//! caller no longer holds it, or to stay under a byte cap.

use std::collections::HashMap;

use super::attach::{self, Attachment};

/// The most attachment bytes a worker keeps; beyond it, those used longest ago are
/// forgotten (and sent again when a batch needs them).
pub(crate) const CAP: usize = 2 << 30;

/// What [`Held::sync`] tells a worker.
pub(crate) enum Tell<'a> {
    /// Drop these attachments.
    Forget(&'a [u64]),
    /// Keep this attachment.
    Keep(&'a Attachment),
}

/// What one worker holds.
#[derive(Debug)]
pub(crate) struct Held {
    /// Id, its encoded length, and when a batch last needed it.
    ids: HashMap<u64, (usize, u64)>,
    bytes: usize,
    clock: u64,
    cap: usize,
}

impl Default for Held {
    fn default() -> Self {
        Held {
            ids: HashMap::new(),
            bytes: 0,
            clock: 0,
            cap: CAP,
        }
    }
}

impl Held {
    /// Before a batch that needs `needed`: tells the worker to forget what the caller
    /// dropped (or what must make room), then to keep what it lacks.
    pub(crate) fn sync<E>(
        &mut self,
        needed: &[Attachment],
        mut tell: impl FnMut(Tell<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.clock += 1;
        let now = self.clock;
        let mut gone: Vec<u64> = self
            .ids
            .keys()
            .copied()
            .filter(|&id| !attach::is_alive(id))
            .collect();
        let incoming: usize = needed
            .iter()
            .filter(|a| !self.ids.contains_key(&a.id()))
            .map(|a| a.bytes().len())
            .sum();
        let kept = self.bytes - gone.iter().map(|id| self.ids[id].0).sum::<usize>();
        if kept + incoming > self.cap {
            let mut by_age: Vec<(u64, u64, usize)> = self
                .ids
                .iter()
                .filter(|(id, _)| !gone.contains(id) && !needed.iter().any(|a| a.id() == **id))
                .map(|(&id, &(len, used))| (used, id, len))
                .collect();
            by_age.sort_unstable();
            let mut over = kept + incoming - self.cap;
            for (_, id, len) in by_age {
                if over == 0 {
                    break;
                }
                gone.push(id);
                over = over.saturating_sub(len);
            }
        }
        if !gone.is_empty() {
            tell(Tell::Forget(&gone))?;
            for id in gone {
                if let Some((len, _)) = self.ids.remove(&id) {
                    self.bytes -= len;
                }
            }
        }
        for a in needed {
            match self.ids.get_mut(&a.id()) {
                Some((_, used)) => *used = now,
                None => {
                    tell(Tell::Keep(a))?;
                    self.ids.insert(a.id(), (a.bytes().len(), now));
                    self.bytes += a.bytes().len();
                }
            }
        }
        Ok(())
    }

    /// Whether the worker holds something the caller dropped (an idle worker is then told).
    pub(crate) fn holds_dropped(&self) -> bool {
        self.ids.keys().any(|&id| !attach::is_alive(id))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// What `sync` told the worker, in order: `-id` to forget, `+id` to keep.
    fn told(held: &mut Held, needed: &[Attachment]) -> Vec<i64> {
        let mut steps = Vec::new();
        held.sync(needed, |step| {
            match step {
                Tell::Forget(ids) => steps.extend(ids.iter().map(|&id| -(id as i64))),
                Tell::Keep(a) => steps.push(a.id() as i64),
            }
            Ok::<(), ()>(())
        })
        .unwrap();
        steps
    }

    /// A live attachment of `len` bytes: its id is registered while the value lives.
    fn live(len: usize) -> (Arc<dyn std::any::Any + Send + Sync>, Attachment) {
        let id = attach::next_id();
        let value: Arc<dyn std::any::Any + Send + Sync> = Arc::new(());
        attach::register(id, Arc::downgrade(&value));
        (value, Attachment::new(id, Arc::new(vec![0; len])))
    }

    #[test]
    fn each_attachment_is_sent_once_and_forgotten_when_dropped() {
        let mut held = Held::default();
        let (a_value, a) = live(10);
        let (_b_value, b) = live(10);
        assert_eq!(told(&mut held, std::slice::from_ref(&a)), [a.id() as i64]);
        assert_eq!(told(&mut held, &[a.clone(), b.clone()]), [b.id() as i64]);
        assert_eq!(told(&mut held, std::slice::from_ref(&b)), Vec::<i64>::new());
        drop(a_value);
        attach::unregister(a.id());
        assert!(held.holds_dropped());
        assert_eq!(told(&mut held, &[]), [-(a.id() as i64)]);
        assert!(!held.holds_dropped());
    }

    #[test]
    fn over_the_cap_the_least_recently_used_go_first() {
        let mut held = Held {
            cap: 25,
            ..Held::default()
        };
        let (_v1, one) = live(10);
        let (_v2, two) = live(10);
        let (_v3, three) = live(10);
        told(&mut held, std::slice::from_ref(&one));
        told(&mut held, std::slice::from_ref(&two));
        told(&mut held, std::slice::from_ref(&one));
        // 30 bytes would not fit: `two`, used longest ago, makes room; the batch's own stay.
        assert_eq!(
            told(&mut held, &[three.clone(), one.clone()]),
            [-(two.id() as i64), three.id() as i64]
        );
        assert_eq!(held.bytes, 20);
    }
}
