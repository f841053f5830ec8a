//! `Shared<T>`: read-only data for many tasks and calls, sent to each worker process once.

use std::fmt;
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
    value: T,
    /// The value's encoding, made the first time a batch needs it.
    encoded: OnceLock<Attachment>,
    /// Made in this process: registered under `id` while it lives.
    registered: bool,
}

impl<T> Drop for Inner<T> {
    fn drop(&mut self) {
        if self.registered {
            attach::unregister(self.id);
        }
    }
}

impl<T: Send + Sync + 'static> Shared<T> {
    /// Shares `value`.
    pub fn new(value: T) -> Self {
        let inner = Arc::new(Inner {
            id: attach::next_id(),
            value,
            encoded: OnceLock::new(),
            registered: true,
        });
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
        fmt::Debug::fmt(&self.inner.value, f)
    }
}

impl<T: Serialize + 'static> Shared<T> {
    /// The value as an attachment, encoded on first use and kept. A large vector of numbers
    /// is copied once, straight into a memory file (see [`Attachment::from_pieces`]).
    fn attachment(&self) -> Result<Attachment, String> {
        if let Some(attachment) = self.inner.encoded.get() {
            return Ok(attachment.clone());
        }
        let mut head = Vec::new();
        let lent = format::encode_value_lent(&self.inner.value, &mut head, format::LEND_FROM)
            .map_err(|e| e.to_string())?;
        let id = self.inner.id;
        let attachment = match lent {
            Some(block) => Attachment::from_pieces(id, &[&head, block]),
            None => Attachment::new(id, Arc::new(head)),
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
        let inline = (!attached).then_some(&self.inner.value);
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
                inner: Arc::new(Inner {
                    id,
                    value,
                    encoded: OnceLock::new(),
                    registered: false,
                }),
            });
        }
        let inner = attach::resolve::<Inner<T>>(id, |bytes| {
            let value = format::decode_whole::<T>(bytes).map_err(|e| e.to_string())?;
            Ok(Inner {
                id,
                value,
                encoded: OnceLock::new(),
                registered: false,
            })
        })
        .map_err(D::Error::custom)?;
        Ok(Shared { inner })
    }
}
