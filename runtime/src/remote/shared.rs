//! `Shared<T>`: read-only data for many tasks and calls, sent to each worker process once.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Attachment, attach, format};

/// Read-only data that many tasks and calls use: an [`Arc`] that worker processes receive
/// once.
///
/// Cloning a `Shared` is cheap, and it dereferences to the value. On threads it is just an
/// `Arc`. On a process backend (`loky`, `mpi`) a worker receives the value the first time a
/// batch it runs needs it, and keeps it: later batches and later calls that use the same
/// `Shared` send only its id. Workers drop the value once every handle in the caller is
/// gone. On `multiprocessing` the forked children see it directly.
///
/// A vector of numbers (`Vec<f64>`, `Vec<i32>`, ...) of 1 MiB or more reaches workers on
/// the caller's host through a memory file, and on Linux a worker's vector maps that file's
/// pages instead of copying them where its allocator places the vector at the offset within
/// a page that the caller's does (glibc's does: the vector gets room for 32 MiB at least,
/// which it maps on its own): all workers then read the same memory, as threads would.
///
/// Use it as a `delayed!` argument, as an item, or inside either, wherever a task's input
/// implements serde's traits:
///
/// ```
/// use parjob::{delayed, Parallel, Shared};
///
/// fn score(data: Shared<Vec<f64>>, scale: f64) -> f64 {
///     data.iter().sum::<f64>() * scale
/// }
///
/// let data = Shared::new(vec![1.0, 2.0, 3.0]);
/// let scores = Parallel::new()
///     .backend("loky")
///     .n_jobs(2)
///     .run([1.0, 10.0].map(|scale| delayed!(score(data.clone(), scale))))?;
/// assert_eq!(scores, [6.0, 60.0]);
/// # Ok::<(), parjob::Error>(())
/// ```
pub struct Shared<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    id: u64,
    /// Dropped by `Drop`, after `placed` is given back.
    value: ManuallyDrop<T>,
    /// The value's encoding, made the first time a batch needs it.
    encoded: OnceLock<Attachment>,
    /// Made in this process: registered under `id` while it lives.
    registered: bool,
    /// Pages of the value (a vector of numbers) that map its sender's memory file, read
    /// only: nothing may ever write the value (no `&mut` to it leaves this type).
    placed: Option<format::Placed>,
}

impl<T> Inner<T> {
    fn new(id: u64, value: T, registered: bool) -> Self {
        Inner {
            id,
            value: ManuallyDrop::new(value),
            encoded: OnceLock::new(),
            registered,
            placed: None,
        }
    }
}

impl<T> Drop for Inner<T> {
    fn drop(&mut self) {
        if self.registered {
            attach::unregister(self.id);
        }
        // Pages mapped from a file go back to private memory before the vector is freed; if
        // the system refuses, the vector is never freed (its allocator would reuse pages it
        // cannot write).
        let restored = self.placed.take().is_none_or(format::Placed::restore);
        if restored {
            // SAFETY: dropped once, here; `value` is not used after.
            unsafe { ManuallyDrop::drop(&mut self.value) };
        }
    }
}

impl<T: Send + Sync + 'static> Shared<T> {
    /// Shares `value`.
    pub fn new(value: T) -> Self {
        let inner = Arc::new(Inner::new(attach::next_id(), value, true));
        let weak = Arc::downgrade(&inner);
        attach::register(inner.id, weak);
        Shared { inner }
    }
}

impl<T> Shared<T> {
    /// Whether two handles share one value (in this process).
    ///
    /// ```
    /// let a = parjob::Shared::new(1);
    /// assert!(parjob::Shared::ptr_eq(&a, &a.clone()));
    /// assert!(!parjob::Shared::ptr_eq(&a, &parjob::Shared::new(1)));
    /// ```
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner.value
    }
}

impl<T> AsRef<T> for Shared<T> {
    fn as_ref(&self) -> &T {
        &self.inner.value
    }
}

impl<T: Send + Sync + 'static> From<T> for Shared<T> {
    fn from(value: T) -> Self {
        Shared::new(value)
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.inner.value, f)
    }
}

/// Bytes of the padding length at the start of a shared value's encoding.
const PAD_LEN: usize = 4;

/// A shared value's encoding without its padding; `None` if it is too short for it.
fn unpad(bytes: &[u8]) -> Option<&[u8]> {
    let len = bytes.get(..PAD_LEN)?;
    let pad = u32::from_le_bytes(len.try_into().ok()?) as usize;
    bytes.get(PAD_LEN.checked_add(pad)?..)
}

impl<T: Serialize + 'static> Shared<T> {
    /// The value as an attachment, encoded on first use and kept. A large vector of numbers
    /// is copied once, straight into a memory file (see [`Attachment::from_pieces`]).
    fn attachment(&self) -> Result<Attachment, String> {
        if let Some(attachment) = self.inner.encoded.get() {
            return Ok(attachment.clone());
        }
        let mut head = Vec::new();
        let lent = format::encode_value_lent(&*self.inner.value, &mut head, format::LEND_FROM)
            .map_err(|e| e.to_string())?;
        let id = self.inner.id;
        // The encoding starts with a number of padding bytes, which put a large vector's
        // numbers at the offset within a page where this program's allocator puts such a
        // vector: a worker (the same program) can then map them in place.
        let pad = match lent {
            Some(block) => {
                let page = format::page_size();
                let at = (PAD_LEN + head.len()) % page;
                (format::placement(block.len()) + page - at) % page
            }
            None => 0,
        };
        let mut prefixed = Vec::with_capacity(PAD_LEN + pad + head.len());
        prefixed.extend_from_slice(&(pad as u32).to_le_bytes());
        prefixed.resize(PAD_LEN + pad, 0);
        prefixed.extend_from_slice(&head);
        let attachment = match lent {
            Some(block) => Attachment::from_pieces(id, &[&prefixed, block]),
            None => Attachment::new(id, Arc::new(prefixed)),
        };
        Ok(self.inner.encoded.get_or_init(|| attachment).clone())
    }
}

/// A `Shared` inside a batch is its id, the value travelling apart as an attachment; outside
/// one (any other serialisation), it is its id and the value inline.
impl<T: Serialize + 'static> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let mut failed = None;
        let attached = attach::record(self.inner.id, || match self.attachment() {
            Ok(attachment) => attachment,
            Err(e) => {
                failed = Some(e);
                Attachment::new(self.inner.id, Arc::new(Vec::new()))
            }
        });
        if let Some(e) = failed {
            return Err(S::Error::custom(e));
        }
        let inline = (!attached).then_some(&*self.inner.value);
        (self.inner.id, inline).serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for Shared<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (id, inline): (u64, Option<T>) = Deserialize::deserialize(deserializer)?;
        if let Some(value) = inline {
            return Ok(Shared {
                inner: Arc::new(Inner::new(id, value, false)),
            });
        }
        let inner = attach::resolve::<Inner<T>>(id, |bytes, mapped| {
            let value =
                unpad(bytes).ok_or_else(|| format!("shared value {id}: a truncated encoding"))?;
            let (value, placed) =
                format::decode_whole_placed::<T>(value, mapped).map_err(|e| e.to_string())?;
            let mut inner = Inner::new(id, value, false);
            inner.placed = placed;
            Ok(inner)
        })
        .map_err(D::Error::custom)?;
        Ok(Shared { inner })
    }
}
