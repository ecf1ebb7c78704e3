//! MVCC key-value storage for rkube: every write gets the next revision, updates
//! are compare-and-swap on the revision a client read, a watch from revision R
//! replays every later event in order, and compaction forgets history older than
//! a revision (reads or watches below it fail with [`Error::Compacted`]).
//!
//! The store knows only keys, bytes and revisions: it does not parse objects.
//! Backends: [`embedded`] (one redb file, the default). The same test suite in
//! [`testsuite`] runs against every backend.

use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;
use futures::future::BoxFuture;

pub mod embedded;
pub mod testsuite;

/// A store revision. Revision 0 means "nothing written yet"; the first write is 1.
pub type Revision = i64;

/// One key at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision of the write that created this key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the write that produced this value.
    pub mod_revision: Revision,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// A change, as delivered by [`Store::watch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// For `Put`: the new value. For `Delete`: the last value before deletion,
    /// with `mod_revision` set to the revision of the deletion.
    pub kv: KeyValue,
    /// The value before this event, if the key existed.
    pub prev: Option<KeyValue>,
}

impl Event {
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("key not found")]
    NotFound,
    #[error("key already exists")]
    AlreadyExists,
    /// Compare-and-swap failed: the key's mod revision is not the expected one.
    /// Carries the current value (None if the key does not exist any more).
    #[error("revision mismatch")]
    Conflict { current: Option<KeyValue> },
    /// The requested revision is older than the compacted revision.
    #[error("required revision {requested} has been compacted (compacted revision {compacted})")]
    Compacted { requested: Revision, compacted: Revision },
    /// The requested revision is newer than the store's current revision.
    #[error("required revision {requested} is a future revision (current {current})")]
    FutureRevision { requested: Revision, current: Revision },
    #[error("storage error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A paged range read over every key that starts with `prefix`, in key order.
#[derive(Clone, Debug, Default)]
pub struct RangeRequest {
    pub prefix: String,
    /// Exclusive lower bound for paging: only keys strictly greater than this.
    pub start_after: Option<String>,
    /// Read at this revision (None: the current one).
    pub revision: Option<Revision>,
    /// At most this many keys (0: no limit).
    pub limit: usize,
}

#[derive(Clone, Debug, Default)]
pub struct RangeResponse {
    pub kvs: Vec<KeyValue>,
    /// The revision the range was read at (the current revision if none was asked).
    pub revision: Revision,
    /// Number of keys in the range after the last returned one (0 when complete).
    pub remaining: usize,
}

/// Events in revision order; the stream ends with an error (e.g. `Compacted`)
/// or when the store shuts down.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;

/// The storage contract. Every method is atomic; writes are durable (synced to
/// disk, or acknowledged by a quorum) before they return.
pub trait Store: Send + Sync + 'static {
    /// The revision of the newest write (0 when empty).
    fn current_revision(&self) -> BoxFuture<'_, Result<Revision>>;
    /// The oldest revision still readable (history below it is forgotten).
    fn compacted_revision(&self) -> BoxFuture<'_, Result<Revision>>;
    /// The value of one key at the current revision.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>>>;
    fn range(&self, req: RangeRequest) -> BoxFuture<'_, Result<RangeResponse>>;
    /// Creates a key that must not exist (`AlreadyExists` otherwise).
    fn create(&self, key: String, value: Bytes) -> BoxFuture<'_, Result<KeyValue>>;
    /// Replaces a key whose mod revision must equal `expected` (`NotFound` if the
    /// key is missing, `Conflict` with the current value otherwise).
    fn update(&self, key: String, value: Bytes, expected: Revision) -> BoxFuture<'_, Result<KeyValue>>;
    /// Deletes a key, if `expected` is given only at that mod revision. Returns
    /// the deleted value with `mod_revision` set to the deletion's revision.
    fn delete(&self, key: String, expected: Option<Revision>) -> BoxFuture<'_, Result<KeyValue>>;
    /// Every event on keys under `prefix` with a revision greater than `after`.
    fn watch(&self, prefix: String, after: Revision) -> BoxFuture<'_, Result<WatchStream>>;
    /// Forgets history older than `revision` (the current value of each key stays).
    fn compact(&self, revision: Revision) -> BoxFuture<'_, Result<()>>;
}
