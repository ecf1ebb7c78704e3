//! The embedded backend: one redb file holding an etcd-like MVCC history.
//!
//! Three tables live in the file. `history` maps `(key, revision)` to the version
//! of the key written at that revision (a put with its value, or a deletion
//! marker), so the state at any retained revision is "for each key, the newest
//! version at or below it, unless that is a deletion". `log` maps each revision
//! to the key it changed, which lets a watch replay events in revision order.
//! `meta` holds the current and the compacted revision, so the revision counter
//! survives restarts even when compaction has removed every version.
//!
//! Compacting to revision C keeps every version above C and, for each key, its
//! newest version at or below C unless that is a deletion. So reads at C or later
//! still work and reads below C fail with [`Error::Compacted`]; a watch must start
//! after a revision of at least C, because the events at or below C (and the
//! previous values that the event at C would carry) are gone.
//!
//! All writes go through one writer thread that drains the request queue, applies
//! every queued request in order inside a single redb write transaction, commits
//! it durably once (group commit), and only then answers the callers and hands the
//! events to the watchers. Reads use redb read transactions on the blocking pool,
//! so they never wait for the writer. The writer thread also runs compaction, in
//! bounded chunks between write batches, both on request and periodically.

use std::collections::{BTreeSet, VecDeque};
use std::fmt::Display;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, Table, TableDefinition};
use tokio::sync::{mpsc as async_mpsc, oneshot};

use crate::{Error, Event, EventKind, KeyValue, RangeRequest, RangeResponse, Result, Revision, Store, WatchStream};

type HistoryKey = (&'static str, i64);

/// Every version of every key still retained, keyed by `(key, mod_revision)`.
const HISTORY: TableDefinition<HistoryKey, &[u8]> = TableDefinition::new("history");
/// The key changed at each retained revision, for watch replay.
const LOG: TableDefinition<i64, &str> = TableDefinition::new("log");
/// Store-wide counters that must survive restarts.
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");

const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";

/// First byte of a `history` value. A put continues with its create revision
/// (8 bytes, little endian) and the value; a deletion is the tag alone, since the
/// deleted value is the version before it.
const TAG_PUT: u8 = 0;
const TAG_DELETE: u8 = 1;

/// A replay step returns after this many matching events, so a watch from far back
/// neither holds a read transaction (and thus old pages) for long nor buffers much.
const REPLAY_MAX_EVENTS: usize = 512;
/// A replay step also returns after scanning this many log entries, so a watch on a
/// quiet prefix does not scan the whole log in one step.
const REPLAY_MAX_SCAN: usize = 8192;

/// Tuning knobs of the embedded backend; [`Options::default`] suits a server.
#[derive(Clone, Debug)]
pub struct Options {
    /// How often automatic compaction runs (`None` disables it). Each run compacts
    /// to the revision that was current at the previous run, so clients always have
    /// at least one interval to resume a watch or finish a paged list.
    pub compaction_interval: Option<Duration>,
    /// Events buffered per watcher; a watcher that falls this far behind is ended
    /// with an error instead of making the writer wait or memory grow. Several
    /// times `max_batch`, so one full group commit never ends a watcher that
    /// keeps up (the events share the written bytes, so this costs little).
    pub watch_buffer: usize,
    /// Most write requests applied in one transaction.
    pub max_batch: usize,
    /// Most revisions one compaction step forgets in one transaction, so a large
    /// compaction does not stall writers for long.
    pub compaction_chunk: usize,
    /// redb page cache size in bytes (`None`: redb's default, 1 GiB).
    pub cache_size: Option<usize>,
}

/// The API server reads from its watch cache, so redb's cache mostly holds
/// pages just written: 64 MiB instead of redb's 1 GiB cost no measurable write
/// speed and saved 128 MiB of RSS with 10,000 pods.
const CACHE_SIZE: usize = 64 << 20;

impl Default for Options {
    fn default() -> Self {
        Self {
            compaction_interval: Some(Duration::from_secs(60)),
            watch_buffer: 16_384,
            max_batch: 4096,
            compaction_chunk: 10_000,
            cache_size: Some(CACHE_SIZE),
        }
    }
}

/// The embedded store. Dropping the last handle stops the writer thread (after it
/// finishes the batch in hand), ends every watch and closes the file.
pub struct Embedded {
    db: Arc<Database>,
    shared: Arc<Shared>,
    /// `None` only while dropping, so the writer sees the queue close.
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    watch_buffer: usize,
}

/// State shared between the handle, the writer thread and watch streams.
struct Shared {
    /// Newest committed revision; updated after commit, before callers are answered.
    current: AtomicI64,
    compacted: AtomicI64,
    registry: Mutex<Registry>,
}

/// Live watchers. The writer publishes under this lock, and a watch switches from
/// replay to live under it, which is what makes the hand-over gap-free.
struct Registry {
    /// Revision of the last batch whose events were handed to the watchers.
    published: Revision,
    /// Set when the writer stops: no more events will come.
    closed: bool,
    watchers: Vec<Watcher>,
}

struct Watcher {
    prefix: String,
    /// Only events above this revision are sent (the replay delivered the rest).
    after: Revision,
    tx: async_mpsc::Sender<Event>,
    lagged: Arc<AtomicBool>,
}

enum Op {
    Create { key: String, value: Bytes },
    Update { key: String, value: Bytes, expected: Revision },
    Delete { key: String, expected: Option<Revision> },
}

/// A request to the writer thread: what to do, and whom to tell.
struct Request {
    body: Body,
    reply: Reply,
}

enum Body {
    Write(Op),
    Compact(Revision),
}

enum Reply {
    Write(oneshot::Sender<Result<KeyValue>>),
    Compact(oneshot::Sender<Result<()>>),
}

/// One decoded `history` value.
enum Version {
    Put {
        create_revision: Revision,
        value: Bytes,
    },
    /// A deletion marker; the deleted value is the version before it.
    Delete,
}

macro_rules! internal_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Internal(e.to_string())
            }
        }
    )*};
}

internal_from!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError,
    redb::SetDurabilityError
);

fn internal(message: impl Display) -> Error {
    Error::Internal(message.to_string())
}

/// Locks a mutex even if a panicking thread poisoned it: the registry stays
/// consistent because every update to it is a single push, retain or assignment.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Embedded {
    /// Opens (or creates) the store in the file at `path` with default options.
    pub fn open(path: &Path) -> Result<Arc<Embedded>> {
        Self::open_with(path, Options::default())
    }

    /// Opens (or creates) the store in the file at `path`.
    pub fn open_with(path: &Path, options: Options) -> Result<Arc<Embedded>> {
        let mut builder = Database::builder();
        if let Some(bytes) = options.cache_size {
            builder.set_cache_size(bytes);
        }
        let db = Arc::new(builder.create(path)?);

        // Creating the tables up front lets read transactions open them without
        // handling "table does not exist" on a fresh file.
        let txn = db.begin_write()?;
        let (revision, compacted) = {
            txn.open_table(HISTORY)?;
            txn.open_table(LOG)?;
            let meta = txn.open_table(META)?;
            (read_meta(&meta, META_REVISION)?, read_meta(&meta, META_COMPACTED)?)
        };
        txn.commit()?;
        tracing::info!(path = %path.display(), revision, compacted, "opened embedded store");

        let shared = Arc::new(Shared {
            current: AtomicI64::new(revision),
            compacted: AtomicI64::new(compacted),
            registry: Mutex::new(Registry { published: revision, closed: false, watchers: Vec::new() }),
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            db: db.clone(),
            shared: shared.clone(),
            requests: rx,
            revision,
            compacted,
            compaction_target: None,
            compaction_waiters: Vec::new(),
            next_tick: options.compaction_interval.map(|interval| Instant::now() + interval),
            previous_tick_revision: None,
            options: options.clone(),
        };
        let handle = std::thread::Builder::new().name("store-writer".into()).spawn(move || writer.run()).map_err(internal)?;
        Ok(Arc::new(Embedded { db, shared, requests: Some(tx), writer: Some(handle), watch_buffer: options.watch_buffer.max(1) }))
    }

    fn send(&self, request: Request) -> Result<()> {
        let sender = self.requests.as_ref().ok_or_else(|| internal("store is closed"))?;
        sender.send(request).map_err(|_| internal("store writer stopped"))
    }

    async fn write(&self, op: Op) -> Result<KeyValue> {
        let (reply, answer) = oneshot::channel();
        self.send(Request { body: Body::Write(op), reply: Reply::Write(reply) })?;
        answer.await.map_err(|_| internal("store writer stopped"))?
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db)).await.map_err(|e| internal(format!("read task failed: {e}")))?
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        // Closing the queue makes the writer finish its batch and exit; joining it
        // means the file is closed (and can be reopened) once drop returns.
        self.requests.take();
        if let Some(handle) = self.writer.take()
            && handle.join().is_err()
        {
            tracing::error!("store writer thread panicked");
        }
    }
}

impl Store for Embedded {
    fn current_revision(&self) -> BoxFuture<'_, Result<Revision>> {
        let revision = self.shared.current.load(Ordering::SeqCst);
        async move { Ok(revision) }.boxed()
    }

    fn compacted_revision(&self) -> BoxFuture<'_, Result<Revision>> {
        let revision = self.shared.compacted.load(Ordering::SeqCst);
        async move { Ok(revision) }.boxed()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>>> {
        // One key is a few page lookups in memory: read in place, without
        // the hop to a blocking thread that ranges take.
        async move {
            let txn = self.db.begin_read()?;
            let history = txn.open_table(HISTORY)?;
            latest_at(&history, key, i64::MAX)
        }
        .boxed()
    }

    fn range(&self, req: RangeRequest) -> BoxFuture<'_, Result<RangeResponse>> {
        self.read(move |db| {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            let current = read_meta(&meta, META_REVISION)?;
            let compacted = read_meta(&meta, META_COMPACTED)?;
            let revision = req.revision.unwrap_or(current);
            if revision > current {
                return Err(Error::FutureRevision { requested: revision, current });
            }
            if revision < compacted {
                return Err(Error::Compacted { requested: revision, compacted });
            }
            let history = txn.open_table(HISTORY)?;
            let (kvs, remaining) = range_at(&history, &req, revision)?;
            Ok(RangeResponse { kvs, revision, remaining })
        })
        .boxed()
    }

    fn create(&self, key: String, value: Bytes) -> BoxFuture<'_, Result<KeyValue>> {
        self.write(Op::Create { key, value }).boxed()
    }

    fn update(&self, key: String, value: Bytes, expected: Revision) -> BoxFuture<'_, Result<KeyValue>> {
        self.write(Op::Update { key, value, expected }).boxed()
    }

    fn delete(&self, key: String, expected: Option<Revision>) -> BoxFuture<'_, Result<KeyValue>> {
        self.write(Op::Delete { key, expected }).boxed()
    }

    fn watch(&self, prefix: String, after: Revision) -> BoxFuture<'_, Result<WatchStream>> {
        // Checking here lets the caller answer "410 Gone" before it starts a
        // response; the replay checks again against its own snapshot.
        let compacted = self.shared.compacted.load(Ordering::SeqCst);
        let result = if after < compacted {
            Err(Error::Compacted { requested: after, compacted })
        } else {
            let state = WatchState {
                db: Arc::downgrade(&self.db),
                shared: self.shared.clone(),
                prefix,
                buffer: self.watch_buffer,
                pending: VecDeque::new(),
                phase: Phase::Replay { after },
            };
            Ok(Box::pin(futures::stream::unfold(state, next_watch_item)) as WatchStream)
        };
        async move { result }.boxed()
    }

    fn compact(&self, revision: Revision) -> BoxFuture<'_, Result<()>> {
        async move {
            let (reply, answer) = oneshot::channel();
            self.send(Request { body: Body::Compact(revision), reply: Reply::Compact(reply) })?;
            answer.await.map_err(|_| internal("store writer stopped"))?
        }
        .boxed()
    }
}

// ---------------------------------------------------------------------------
// Encoding and reads shared by the writer and the readers.

fn read_meta(meta: &impl ReadableTable<&'static str, i64>, name: &str) -> Result<i64> {
    Ok(meta.get(name)?.map(|v| v.value()).unwrap_or(0))
}

fn encode_put(create_revision: Revision, value: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(9 + value.len());
    buf.push(TAG_PUT);
    buf.extend_from_slice(&create_revision.to_le_bytes());
    buf.extend_from_slice(value);
    buf
}

/// Decodes a `history` value; with `with_value` false the value is left empty,
/// which saves the copy when only existence matters.
fn decode(bytes: &[u8], with_value: bool) -> Result<Version> {
    match bytes {
        [TAG_PUT, rest @ ..] if rest.len() >= 8 => {
            let (create, value) = rest.split_at(8);
            let create_revision = i64::from_le_bytes(create.try_into().map_err(internal)?);
            let value = if with_value { Bytes::copy_from_slice(value) } else { Bytes::new() };
            Ok(Version::Put { create_revision, value })
        }
        [TAG_DELETE] => Ok(Version::Delete),
        _ => Err(internal("corrupt history record")),
    }
}

/// The newest version of `key` at or below `revision`, with its mod revision.
fn version_at(
    history: &impl ReadableTable<HistoryKey, &'static [u8]>,
    key: &str,
    revision: Revision,
    with_value: bool,
) -> Result<Option<(Revision, Version)>> {
    let mut versions = history.range((key, i64::MIN)..=(key, revision))?;
    match versions.next_back() {
        None => Ok(None),
        Some(entry) => {
            let (k, v) = entry?;
            Ok(Some((k.value().1, decode(v.value(), with_value)?)))
        }
    }
}

/// The value of `key` at `revision`, or `None` if it did not exist then.
fn latest_at(history: &impl ReadableTable<HistoryKey, &'static [u8]>, key: &str, revision: Revision) -> Result<Option<KeyValue>> {
    Ok(match version_at(history, key, revision, true)? {
        Some((mod_revision, Version::Put { create_revision, value })) => Some(KeyValue { key: key.to_owned(), value, create_revision, mod_revision }),
        _ => None,
    })
}

/// The first key in `history` above `bound` (any revision of it).
fn next_key(history: &impl ReadableTable<HistoryKey, &'static [u8]>, bound: Bound<(&str, i64)>) -> Result<Option<String>> {
    let mut keys = history.range::<(&str, i64)>((bound, Bound::Unbounded))?;
    match keys.next() {
        None => Ok(None),
        Some(entry) => Ok(Some(entry?.0.value().0.to_owned())),
    }
}

/// The keys under the request's prefix that exist at `revision`, paged, and how
/// many more exist after the page.
fn range_at(history: &impl ReadableTable<HistoryKey, &'static [u8]>, req: &RangeRequest, revision: Revision) -> Result<(Vec<KeyValue>, usize)> {
    let prefix = req.prefix.as_str();
    let mut kvs = Vec::new();
    let mut remaining = 0;
    // Each step seeks past every version of the previous key, so a key with a
    // long history costs two seeks, not a scan of its versions.
    let mut cursor: Option<String> = req.start_after.clone().filter(|s| s.as_str() >= prefix);
    loop {
        let bound = match &cursor {
            Some(key) => Bound::Excluded((key.as_str(), i64::MAX)),
            None => Bound::Included((prefix, i64::MIN)),
        };
        let Some(key) = next_key(history, bound)? else {
            break;
        };
        if !key.starts_with(prefix) {
            break;
        }
        if req.limit == 0 || kvs.len() < req.limit {
            if let Some(kv) = latest_at(history, &key, revision)? {
                kvs.push(kv);
            }
        } else if let Some((_, Version::Put { .. })) = version_at(history, &key, revision, false)? {
            remaining += 1;
        }
        cursor = Some(key);
    }
    Ok((kvs, remaining))
}

/// The event that the write of `key` at `revision` produced.
fn event_at(history: &impl ReadableTable<HistoryKey, &'static [u8]>, key: &str, revision: Revision) -> Result<Event> {
    let version = history.get((key, revision))?.ok_or_else(|| internal(format!("history lost {key}@{revision}")))?;
    let version = decode(version.value(), true)?;
    let prev = latest_at(history, key, revision - 1)?;
    Ok(match version {
        Version::Put { create_revision, value } => {
            Event { kind: EventKind::Put, kv: KeyValue { key: key.to_owned(), value, create_revision, mod_revision: revision }, prev }
        }
        Version::Delete => {
            let last = prev.clone().ok_or_else(|| internal(format!("deletion without a value {key}@{revision}")))?;
            Event { kind: EventKind::Delete, kv: KeyValue { mod_revision: revision, ..last }, prev }
        }
    })
}

// ---------------------------------------------------------------------------
// Watch streams.

struct WatchState {
    /// Weak so that an abandoned stream does not keep the file open.
    db: Weak<Database>,
    shared: Arc<Shared>,
    prefix: String,
    buffer: usize,
    pending: VecDeque<Event>,
    phase: Phase,
}

/// A watch first reads history without being registered (so a long replay
/// cannot overflow its live buffer), registers once it has caught up with what
/// it read, then reads from history the batches published while it was reading
/// (a short window), and finally takes events from its channel.
enum Phase {
    /// Reading history; every event up to `after` has been queued.
    Replay {
        after: Revision,
    },
    /// Registered; reading the history in `(after, until]`, which was published
    /// before the registration, while the channel collects what comes later.
    CatchUp {
        after: Revision,
        until: Revision,
        feed: Feed,
    },
    Live(Feed),
    Done,
}

/// The receiving end of a registered watcher.
struct Feed {
    events: async_mpsc::Receiver<Event>,
    lagged: Arc<AtomicBool>,
}

struct ReplayStep {
    events: Vec<Event>,
    /// Every event up to here has been read.
    cursor: Revision,
    /// The cursor reached the end of the requested window (or of the snapshot).
    caught_up: bool,
}

/// Reads the events after `after` and at most at `until`, in a bounded step.
fn replay_step(db: &Database, prefix: &str, after: Revision, until: Revision) -> Result<ReplayStep> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let compacted = read_meta(&meta, META_COMPACTED)?;
    if after < compacted {
        return Err(Error::Compacted { requested: after, compacted });
    }
    let end = read_meta(&meta, META_REVISION)?.min(until);
    let mut step = ReplayStep { events: Vec::new(), cursor: after, caught_up: true };
    if after >= end {
        return Ok(step);
    }
    let log = txn.open_table(LOG)?;
    let history = txn.open_table(HISTORY)?;
    let mut scanned = 0;
    for entry in log.range((after + 1)..=end)? {
        let (revision, key) = entry?;
        let (revision, key) = (revision.value(), key.value());
        if key.starts_with(prefix) {
            step.events.push(event_at(&history, key, revision)?);
        }
        step.cursor = revision;
        scanned += 1;
        if step.events.len() >= REPLAY_MAX_EVENTS || scanned >= REPLAY_MAX_SCAN {
            step.caught_up = revision >= end;
            return Ok(step);
        }
    }
    step.cursor = end;
    Ok(step)
}

/// Runs one replay step on the blocking pool.
async fn replay(state: &WatchState, after: Revision, until: Revision) -> Option<Result<ReplayStep>> {
    let db = state.db.upgrade()?;
    let prefix = state.prefix.clone();
    let step = tokio::task::spawn_blocking(move || replay_step(&db, &prefix, after, until)).await;
    Some(step.unwrap_or_else(|e| Err(internal(format!("watch replay failed: {e}")))))
}

async fn next_watch_item(mut state: WatchState) -> Option<(Result<Event>, WatchState)> {
    loop {
        if let Some(event) = state.pending.pop_front() {
            return Some((Ok(event), state));
        }
        match std::mem::replace(&mut state.phase, Phase::Done) {
            Phase::Done => return None,
            Phase::Live(mut feed) => {
                if let Some(event) = feed.events.recv().await {
                    state.phase = Phase::Live(feed);
                    return Some((Ok(event), state));
                }
                // The writer dropped our sender: either we fell behind or it stopped.
                if feed.lagged.load(Ordering::SeqCst) {
                    return Some((Err(internal("watcher fell behind")), state));
                }
                return None;
            }
            Phase::Replay { after } => match replay(&state, after, Revision::MAX).await? {
                Err(e) => return Some((Err(e), state)),
                Ok(step) => {
                    state.pending.extend(step.events);
                    state.phase = if step.caught_up { register(&state, step.cursor) } else { Phase::Replay { after: step.cursor } };
                }
            },
            Phase::CatchUp { after, until, feed } => match replay(&state, after, until).await? {
                Err(e) => return Some((Err(e), state)),
                Ok(step) => {
                    state.pending.extend(step.events);
                    state.phase = if step.cursor >= until { Phase::Live(feed) } else { Phase::CatchUp { after: step.cursor, until, feed } };
                }
            },
        }
    }
}

/// Registers a watch whose replay has read everything up to `cursor`. Under the
/// registry lock no batch is being published, so the watcher receives exactly
/// the batches published after this point: those above both `cursor` and the
/// last published revision. Batches published earlier but beyond `cursor` are
/// read from history first (`CatchUp`); commits that the replay already read
/// but the writer had not yet published are filtered out by `after`.
fn register(state: &WatchState, cursor: Revision) -> Phase {
    let mut registry = lock(&state.shared.registry);
    if registry.closed {
        return Phase::Done;
    }
    let (tx, rx) = async_mpsc::channel(state.buffer);
    let lagged = Arc::new(AtomicBool::new(false));
    let published = registry.published;
    registry.watchers.push(Watcher { prefix: state.prefix.clone(), after: cursor.max(published), tx, lagged: lagged.clone() });
    let feed = Feed { events: rx, lagged };
    if published > cursor { Phase::CatchUp { after: cursor, until: published, feed } } else { Phase::Live(feed) }
}

// ---------------------------------------------------------------------------
// The writer thread.

struct Writer {
    db: Arc<Database>,
    shared: Arc<Shared>,
    requests: mpsc::Receiver<Request>,
    /// Newest committed revision.
    revision: Revision,
    /// Committed compacted revision.
    compacted: Revision,
    /// Compaction still to do, worked off one chunk per transaction.
    compaction_target: Option<Revision>,
    compaction_waiters: Vec<(Revision, oneshot::Sender<Result<()>>)>,
    next_tick: Option<Instant>,
    previous_tick_revision: Option<Revision>,
    options: Options,
}

/// What happened to one request of a batch, to be reported after the commit.
enum Outcome {
    Written(Event),
    Rejected(Error),
    /// A compaction request that waits for the compaction to reach its revision.
    CompactPending(Revision),
    CompactDone,
}

/// A batch's effect, applied to the writer's state only once it is committed.
struct Applied {
    outcomes: Vec<Outcome>,
    revision: Revision,
    compacted: Revision,
    compaction_target: Option<Revision>,
}

impl Writer {
    fn run(mut self) {
        loop {
            let mut batch = Vec::new();
            let mut closed = false;
            // With compaction left to do the writer must not sleep; otherwise it
            // waits for a request or the next automatic compaction.
            if self.compaction_target.is_none() {
                let first = match self.next_tick {
                    Some(tick) => match self.requests.recv_timeout(tick.saturating_duration_since(Instant::now())) {
                        Ok(request) => Some(request),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    },
                    None => match self.requests.recv() {
                        Ok(request) => Some(request),
                        Err(_) => break,
                    },
                };
                batch.extend(first);
            }
            // Everything that queued up while the previous commit was syncing
            // shares this commit.
            while batch.len() < self.options.max_batch.max(1) {
                match self.requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            self.tick();
            if !batch.is_empty() || self.compaction_target.is_some() {
                self.process(batch);
            }
            if closed {
                break;
            }
        }
        let mut registry = lock(&self.shared.registry);
        registry.closed = true;
        registry.watchers.clear();
        tracing::debug!(revision = self.revision, "store writer stopped");
    }

    /// Schedules automatic compaction to the revision of the previous tick.
    fn tick(&mut self) {
        let (Some(tick), Some(interval)) = (self.next_tick, self.options.compaction_interval) else {
            return;
        };
        let now = Instant::now();
        if now < tick {
            return;
        }
        self.next_tick = Some(now + interval);
        if let Some(target) = self.previous_tick_revision
            && target > self.compacted
        {
            tracing::debug!(target, "automatic compaction");
            self.compaction_target = Some(self.compaction_target.map_or(target, |t| t.max(target)));
        }
        self.previous_tick_revision = Some(self.revision);
    }

    fn process(&mut self, batch: Vec<Request>) {
        let (bodies, replies): (Vec<Body>, Vec<Reply>) = batch.into_iter().map(|request| (request.body, request.reply)).unzip();
        match self.apply(&bodies) {
            Ok(applied) => {
                self.revision = applied.revision;
                self.compacted = applied.compacted;
                self.compaction_target = applied.compaction_target;
                self.shared.current.store(applied.revision, Ordering::SeqCst);
                self.shared.compacted.store(applied.compacted, Ordering::SeqCst);
                let mut events = Vec::new();
                for (outcome, reply) in applied.outcomes.into_iter().zip(replies) {
                    match (outcome, reply) {
                        (Outcome::Written(event), Reply::Write(reply)) => {
                            let _ = reply.send(Ok(event.kv.clone()));
                            events.push(event);
                        }
                        (Outcome::Rejected(e), Reply::Write(reply)) => {
                            let _ = reply.send(Err(e));
                        }
                        (Outcome::Rejected(e), Reply::Compact(reply)) => {
                            let _ = reply.send(Err(e));
                        }
                        (Outcome::CompactDone, Reply::Compact(reply)) => {
                            let _ = reply.send(Ok(()));
                        }
                        (Outcome::CompactPending(revision), Reply::Compact(reply)) => {
                            self.compaction_waiters.push((revision, reply));
                        }
                        _ => tracing::error!("store writer: outcome does not match request"),
                    }
                }
                let compacted = self.compacted;
                for (revision, reply) in self.compaction_waiters.extract_if(.., |(revision, _)| *revision <= compacted) {
                    tracing::debug!(revision, "compaction done");
                    let _ = reply.send(Ok(()));
                }
                self.publish(events);
            }
            Err(e) => {
                tracing::error!(error = %e, "store write batch failed");
                for reply in replies {
                    match reply {
                        Reply::Write(reply) => {
                            let _ = reply.send(Err(e.clone()));
                        }
                        Reply::Compact(reply) => {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
                // A failing compaction would otherwise be retried in a tight loop.
                self.compaction_target = None;
                for (_, reply) in self.compaction_waiters.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Applies a batch in one durable transaction. Requests that fail their own
    /// checks are rejected individually; an error return means nothing committed.
    fn apply(&self, bodies: &[Body]) -> Result<Applied> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let mut revision = self.revision;
        let mut compacted = self.compacted;
        let mut target = self.compaction_target;
        let mut outcomes = Vec::with_capacity(bodies.len());
        {
            let mut history = txn.open_table(HISTORY)?;
            let mut log = txn.open_table(LOG)?;
            let mut meta = txn.open_table(META)?;
            for body in bodies {
                let outcome = match body {
                    Body::Write(op) => match apply_op(&mut history, &mut log, revision + 1, op)? {
                        Ok(event) => {
                            revision += 1;
                            Outcome::Written(event)
                        }
                        Err(e) => Outcome::Rejected(e),
                    },
                    &Body::Compact(requested) => {
                        if requested > revision {
                            Outcome::Rejected(Error::FutureRevision { requested, current: revision })
                        } else if requested <= compacted {
                            Outcome::CompactDone
                        } else {
                            target = Some(target.map_or(requested, |t| t.max(requested)));
                            Outcome::CompactPending(requested)
                        }
                    }
                };
                outcomes.push(outcome);
            }
            if let Some(goal) = target {
                compacted = compact_step(&mut history, &mut log, compacted, goal, self.options.compaction_chunk.max(1))?;
                if compacted >= goal {
                    target = None;
                }
            }
            meta.insert(META_REVISION, revision)?;
            meta.insert(META_COMPACTED, compacted)?;
        }
        // Nobody is answered before this returns, so every acknowledged write is on disk.
        txn.commit()?;
        Ok(Applied { outcomes, revision, compacted, compaction_target: target })
    }

    /// Hands a committed batch's events to the matching watchers without ever
    /// waiting: a watcher whose buffer is full is dropped and told it fell behind.
    fn publish(&self, events: Vec<Event>) {
        let mut registry = lock(&self.shared.registry);
        registry.published = self.revision;
        registry.watchers.retain(|watcher| {
            for event in &events {
                if event.kv.mod_revision <= watcher.after || !event.kv.key.starts_with(&watcher.prefix) {
                    continue;
                }
                match watcher.tx.try_send(event.clone()) {
                    Ok(()) => {}
                    Err(async_mpsc::error::TrySendError::Full(_)) => {
                        tracing::warn!(prefix = %watcher.prefix, "watcher fell behind; ending its watch");
                        watcher.lagged.store(true, Ordering::SeqCst);
                        return false;
                    }
                    Err(async_mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            // Also forgets watchers whose stream was dropped but saw no event.
            !watcher.tx.is_closed()
        });
    }
}

/// Applies one write at `revision`. The outer error is a storage failure (the
/// batch is lost); the inner one rejects only this request.
fn apply_op(
    history: &mut Table<HistoryKey, &'static [u8]>,
    log: &mut Table<i64, &'static str>,
    revision: Revision,
    op: &Op,
) -> Result<Result<Event>> {
    let key = match op {
        Op::Create { key, .. } | Op::Update { key, .. } | Op::Delete { key, .. } => key.as_str(),
    };
    let current = latest_at(history, key, i64::MAX)?;
    let event = match op {
        Op::Create { value, .. } => {
            if current.is_some() {
                return Ok(Err(Error::AlreadyExists));
            }
            history.insert((key, revision), encode_put(revision, value).as_slice())?;
            let kv = KeyValue { key: key.to_owned(), value: value.clone(), create_revision: revision, mod_revision: revision };
            Event { kind: EventKind::Put, kv, prev: None }
        }
        Op::Update { value, expected, .. } => {
            let Some(current) = current else {
                return Ok(Err(Error::NotFound));
            };
            if current.mod_revision != *expected {
                return Ok(Err(Error::Conflict { current: Some(current) }));
            }
            history.insert((key, revision), encode_put(current.create_revision, value).as_slice())?;
            let kv = KeyValue { key: key.to_owned(), value: value.clone(), create_revision: current.create_revision, mod_revision: revision };
            Event { kind: EventKind::Put, kv, prev: Some(current) }
        }
        Op::Delete { expected, .. } => {
            let Some(current) = current else {
                return Ok(Err(Error::NotFound));
            };
            if expected.is_some_and(|expected| expected != current.mod_revision) {
                return Ok(Err(Error::Conflict { current: Some(current) }));
            }
            history.insert((key, revision), [TAG_DELETE].as_slice())?;
            let kv = KeyValue { mod_revision: revision, ..current.clone() };
            Event { kind: EventKind::Delete, kv, prev: Some(current) }
        }
    };
    log.insert(revision, key)?;
    Ok(Ok(event))
}

/// Compacts from `from` towards `goal`, forgetting at most `chunk` revisions, and
/// returns the new compacted revision.
///
/// After compacting to `from` each key has at most one version at or below it (a
/// put), so only keys written after `from` can have versions to forget; the log
/// names exactly those. For each, every version older than its newest one at or
/// below the new compacted revision goes, and that one too if it is a deletion.
fn compact_step(
    history: &mut Table<HistoryKey, &'static [u8]>,
    log: &mut Table<i64, &'static str>,
    from: Revision,
    goal: Revision,
    chunk: usize,
) -> Result<Revision> {
    let mut upto = goal;
    let mut last = from;
    let mut keys = BTreeSet::new();
    for (seen, entry) in log.range((from + 1)..=goal)?.enumerate() {
        let (revision, key) = entry?;
        if seen == chunk {
            upto = last;
            break;
        }
        last = revision.value();
        keys.insert(key.value().to_owned());
    }
    // Events at or below the compacted revision can never be replayed: a watch
    // must start after it.
    log.retain_in(..=upto, |_, _| false)?;
    for key in &keys {
        let Some((newest, version)) = version_at(history, key, upto, false)? else {
            continue;
        };
        history.retain_in((key.as_str(), i64::MIN)..(key.as_str(), newest), |_, _| false)?;
        if let Version::Delete = version {
            history.remove((key.as_str(), newest))?;
        }
    }
    tracing::debug!(from, upto, keys = keys.len(), "compaction step");
    Ok(upto)
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    /// Drives the rare case where batches were published between a replay's
    /// snapshot and its registration: they must come from history, once.
    #[tokio::test]
    async fn registration_behind_published_catches_up_from_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Embedded::open(&dir.path().join("store.redb")).unwrap();
        let mut revisions = Vec::new();
        for i in 0..3 {
            let kv = store.create(format!("/k/{i}"), Bytes::new()).await.unwrap();
            revisions.push(kv.mod_revision);
        }
        let mut state = WatchState {
            db: Arc::downgrade(&store.db),
            shared: store.shared.clone(),
            prefix: "/k/".into(),
            buffer: 16,
            pending: VecDeque::new(),
            phase: Phase::Done,
        };
        // Callers are answered before watchers are fed, so wait for the publication.
        for _ in 0..10_000 {
            if lock(&store.shared.registry).published == revisions[2] {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        // As if the replay had stopped reading at the first revision.
        state.phase = register(&state, revisions[0]);
        assert!(matches!(state.phase, Phase::CatchUp { until: 3, .. }));
        let mut stream = Box::pin(futures::stream::unfold(state, next_watch_item));
        let live = store.create("/k/live".into(), Bytes::new()).await.unwrap();
        let seen: Vec<Revision> = vec![
            stream.next().await.unwrap().unwrap().revision(),
            stream.next().await.unwrap().unwrap().revision(),
            stream.next().await.unwrap().unwrap().revision(),
        ];
        assert_eq!(seen, vec![revisions[1], revisions[2], live.mod_revision]);
    }
}
