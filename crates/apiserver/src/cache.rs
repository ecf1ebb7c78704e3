//! The watch cache: every stored object, kept in memory as the JSON clients
//! receive (resourceVersion filled in), encoded once per revision and shared by
//! every reader and watcher. It is fed by one store watch over `/registry/`, so
//! reads never touch the store, and each resource keeps a bounded history of
//! recent events so watches can resume from a resourceVersion.
//!
//! Ordering rule: an event is applied to its resource's state and broadcast
//! while the state's write lock is held, so a watcher that takes a snapshot and
//! subscribes under the read lock sees every later event exactly once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Map, Value};
use store::{EventKind, KeyValue, RangeRequest, Revision, Store};
use tokio::sync::{broadcast, watch};

/// How many recent events each resource keeps for watch resumption.
const HISTORY: usize = 16384;
/// How many events a watcher may fall behind before it is closed. The
/// buffer's slots hold events the history holds anyway, so this costs no
/// memory while it is below `HISTORY`; and a watcher closed for lagging can
/// still resume (not relist) while the history reaches back to it.
const FANOUT_BUFFER: usize = 8192;

/// One object at one revision, as served.
#[derive(Debug)]
pub struct Cached {
    pub key: String,
    pub rev: Revision,
    /// JSON with `metadata.resourceVersion` set to `rev`.
    pub bytes: Bytes,
    pub namespace: String,
    pub name: String,
    pub labels: Map<String, Value>,
}

impl Cached {
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

#[derive(Debug)]
pub struct CacheEvent {
    pub typ: EventType,
    pub obj: Arc<Cached>,
    pub prev: Option<Arc<Cached>>,
}

struct State {
    objects: BTreeMap<String, Arc<Cached>>,
    history: VecDeque<Arc<CacheEvent>>,
    /// Every event of this resource newer than this revision is in `history`.
    floor: Revision,
    /// Revision of the newest event applied to this resource.
    last: Revision,
}

/// The cached objects of one storage prefix (all versions of one resource).
pub struct ResourceCache {
    state: RwLock<State>,
    tx: broadcast::Sender<Arc<CacheEvent>>,
    /// The snapshots of recent paged lists, oldest first.
    snapshots: Mutex<VecDeque<Snapshot>>,
}

/// The objects under one prefix at one revision, in key order.
struct Snapshot {
    rev: Revision,
    prefix: String,
    taken: std::time::Instant,
    objects: Vec<Arc<Cached>>,
}

/// How many list snapshots a resource keeps, and for how long. A snapshot
/// is a reference per object, but it keeps alive the versions it holds
/// while the resource changes, so it goes as soon as its last page is
/// served; past these bounds, pages come from the store.
const SNAPSHOTS: usize = 2;
const SNAPSHOT_TTL: Duration = Duration::from_secs(30);

/// Up to `limit` (0 = all) objects `keep` accepts, whether another follows,
/// and how many objects (accepted or not) follow the page.
fn page_of<'a>(mut iter: impl Iterator<Item = &'a Arc<Cached>>, limit: usize, keep: impl Fn(&Cached) -> bool) -> (Vec<Arc<Cached>>, bool, usize) {
    let mut items = Vec::new();
    for o in iter.by_ref() {
        if keep(o) {
            items.push(o.clone());
            if limit > 0 && items.len() == limit {
                break;
            }
        }
    }
    // "More" means another matching object exists; the count is of every
    // object left, as upstream's remainingItemCount (only given unfiltered).
    let mut remaining = 0;
    let mut more = false;
    for o in iter {
        remaining += 1;
        if !more && keep(o) {
            more = true;
        }
    }
    (items, more, remaining)
}

/// What a watcher starts from: the initial objects or the replayed events,
/// then a receiver of every later event.
pub struct Subscription {
    pub initial: Vec<Arc<Cached>>,
    pub replay: Vec<Arc<CacheEvent>>,
    pub rev: Revision,
    pub rx: broadcast::Receiver<Arc<CacheEvent>>,
}

impl ResourceCache {
    fn new(floor: Revision) -> Self {
        let (tx, _) = broadcast::channel(FANOUT_BUFFER);
        ResourceCache {
            state: RwLock::new(State { objects: BTreeMap::new(), history: VecDeque::new(), floor, last: floor }),
            tx,
            snapshots: Mutex::new(VecDeque::new()),
        }
    }

    /// The objects under `prefix` (a key prefix inside this resource), and the
    /// revision the snapshot reflects.
    pub fn list(&self, prefix: &str, global: Revision) -> (Vec<Arc<Cached>>, Revision) {
        let st = self.state.read().unwrap();
        let items = st.objects.range(prefix.to_string()..).take_while(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v.clone()).collect();
        (items, global.max(st.last))
    }

    /// One page of the objects under `prefix` after `start_after`, as of the
    /// snapshot at revision `at` (None: now). None when the cache no longer
    /// holds that snapshot (the resource changed since and the list's
    /// snapshot was not kept). Returns the matching items (at most `limit`,
    /// 0 = all), the snapshot revision, whether more follow, and how many
    /// objects (matching or not) follow the page.
    ///
    /// The first page of a list that has more keeps the list's objects as a
    /// snapshot (references, in key order) for a while, so its next pages
    /// come from memory even when the resource changes meanwhile, as
    /// upstream's cache snapshots: a relist of many pods used to read every
    /// page after the first from the store.
    pub fn page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at: Option<Revision>,
        global: Revision,
        keep: impl Fn(&Cached) -> bool,
    ) -> Option<(Vec<Arc<Cached>>, Revision, bool, usize)> {
        use std::ops::Bound;
        let st = self.state.read().unwrap();
        let rev = match at {
            Some(at) if at > global.max(st.last) => return None,
            Some(at) if st.last > at => {
                drop(st);
                let mut snaps = self.snapshots.lock().unwrap();
                let i = snaps.iter().position(|s| s.rev == at && s.prefix == prefix)?;
                let snap = &snaps[i];
                let from = start_after.map_or(0, |k| snap.objects.partition_point(|o| o.key.as_str() <= k));
                let (items, more, remaining) = page_of(snap.objects[from..].iter(), limit, keep);
                if !more {
                    // The list is done: its snapshot would only pin old versions.
                    snaps.remove(i);
                }
                return Some((items, at, more, remaining));
            }
            Some(at) => at,
            None => global.max(st.last),
        };
        let lower = match start_after {
            Some(k) => Bound::Excluded(k.to_string()),
            None => Bound::Included(prefix.to_string()),
        };
        let in_range = st.objects.range((lower, Bound::Unbounded)).take_while(|(k, _)| k.starts_with(prefix)).map(|(_, o)| o);
        let (items, more, remaining) = page_of(in_range, limit, keep);
        if more && at.is_none() {
            let objects = st.objects.range(prefix.to_string()..).take_while(|(k, _)| k.starts_with(prefix)).map(|(_, o)| o.clone()).collect();
            drop(st);
            let mut snaps = self.snapshots.lock().unwrap();
            let now = std::time::Instant::now();
            snaps.retain(|s| now.duration_since(s.taken) < SNAPSHOT_TTL && !(s.rev == rev && s.prefix == prefix));
            if snaps.len() >= SNAPSHOTS {
                snaps.pop_front();
            }
            snaps.push_back(Snapshot { rev, prefix: prefix.to_string(), taken: now, objects });
        }
        Some((items, rev, more, remaining))
    }

    pub fn get(&self, key: &str) -> Option<Arc<Cached>> {
        self.state.read().unwrap().objects.get(key).cloned()
    }

    /// Subscribes to events after `from`; with `from == None` the current
    /// objects come back as `initial`, otherwise the kept events newer than
    /// `from` come back as `replay`. `Err(oldest)` when `from` is older than the
    /// kept history. Taken under the read lock, so `rx` holds exactly the
    /// events after the snapshot.
    pub fn subscribe(&self, prefix: &str, from: Option<Revision>, global: Revision) -> Result<Subscription, Revision> {
        let st = self.state.read().unwrap();
        let rx = self.tx.subscribe();
        let rev = global.max(st.last);
        let in_prefix = |k: &String| k.starts_with(prefix);
        match from {
            None => {
                let initial = st.objects.range(prefix.to_string()..).take_while(|(k, _)| in_prefix(k)).map(|(_, v)| v.clone()).collect();
                Ok(Subscription { initial, replay: Vec::new(), rev, rx })
            }
            Some(from) if from < st.floor => Err(st.floor),
            Some(from) => {
                let replay = st.history.iter().filter(|e| e.obj.rev > from && in_prefix(&e.obj.key)).cloned().collect();
                Ok(Subscription { initial: Vec::new(), replay, rev: from, rx })
            }
        }
    }

    fn apply(&self, kind: EventKind, obj: Arc<Cached>) {
        let mut st = self.state.write().unwrap();
        let ev = match kind {
            EventKind::Put => {
                let prev = st.objects.insert(obj.key.clone(), obj.clone());
                let typ = if prev.is_some() { EventType::Modified } else { EventType::Added };
                Arc::new(CacheEvent { typ, obj, prev })
            }
            EventKind::Delete => {
                let prev = st.objects.remove(&obj.key);
                Arc::new(CacheEvent { typ: EventType::Deleted, obj, prev })
            }
        };
        st.last = ev.obj.rev;
        if st.history.len() >= HISTORY
            && let Some(old) = st.history.pop_front()
        {
            st.floor = old.obj.rev;
        }
        st.history.push_back(ev.clone());
        let _ = self.tx.send(ev);
    }
}

/// The cache of every resource, fed from the store.
pub struct WatchCache {
    resources: RwLock<HashMap<String, Arc<ResourceCache>>>,
    rev: watch::Sender<Revision>,
    start: Revision,
    /// Set when the store watch failed beyond recovery.
    failed: Mutex<Option<String>>,
}

/// The storage segment of a key: `/registry/{storage}/...`.
pub fn storage_of(key: &str) -> &str {
    key.strip_prefix("/registry/").and_then(|r| r.split('/').next()).unwrap_or("")
}

fn decode(kv: &KeyValue, rev: Revision) -> Option<Arc<Cached>> {
    let c = Cached::from_stored(&kv.key, &kv.value, rev);
    if c.is_none() {
        tracing::error!(key = %kv.key, "undecodable stored object");
    }
    c.map(Arc::new)
}

/// The top level of a stored object: only where its metadata lies.
#[derive(serde::Deserialize)]
struct Top<'a> {
    #[serde(borrow)]
    metadata: &'a serde_json::value::RawValue,
}

/// What the cache reads of the metadata.
#[derive(serde::Deserialize)]
struct Meta<'a> {
    #[serde(default, borrow)]
    name: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    namespace: std::borrow::Cow<'a, str>,
    #[serde(default)]
    labels: Option<Map<String, Value>>,
    #[serde(default, rename = "resourceVersion")]
    resource_version: Option<serde::de::IgnoredAny>,
}

impl Cached {
    /// A stored object as served at revision `rev`. Stored objects carry no
    /// resourceVersion, so it is written into the stored bytes at the start
    /// of `metadata` (the object is not decoded and encoded again: that cost
    /// a tree of some 25 KB of allocations per pod on the one task that feeds
    /// every watcher). One that does carry one is rebuilt whole.
    pub fn from_stored(key: &str, stored: &[u8], rev: Revision) -> Option<Cached> {
        let top: Top = serde_json::from_slice(stored).ok()?;
        let meta: Meta = serde_json::from_str(top.metadata.get()).ok()?;
        let (name, namespace, labels) = (meta.name.into_owned(), meta.namespace.into_owned(), meta.labels.unwrap_or_default());
        let at = top.metadata.get().as_ptr() as usize - stored.as_ptr() as usize;
        let bytes = if meta.resource_version.is_none() && stored.get(at) == Some(&b'{') {
            let rv = format!("\"resourceVersion\":\"{rev}\"");
            let empty = top.metadata.get()[1..].trim_start().starts_with('}');
            let mut out = Vec::with_capacity(stored.len() + rv.len() + 1);
            out.extend_from_slice(&stored[..=at]);
            out.extend_from_slice(rv.as_bytes());
            if !empty {
                out.push(b',');
            }
            out.extend_from_slice(&stored[at + 1..]);
            Bytes::from(out)
        } else {
            let mut v: Value = serde_json::from_slice(stored).ok()?;
            v.get_mut("metadata")?.as_object_mut()?.insert("resourceVersion".into(), Value::String(rev.to_string()));
            Bytes::from(serde_json::to_vec(&v).ok()?.into_boxed_slice())
        };
        Some(Cached { key: key.to_string(), rev, bytes, namespace, name, labels })
    }
}

impl WatchCache {
    /// Loads every object from the store and follows its changes.
    pub async fn start(store: Arc<dyn Store>) -> store::Result<Arc<WatchCache>> {
        let mut resources: HashMap<String, Arc<ResourceCache>> = HashMap::new();
        let mut start_after = None;
        let mut at = None;
        loop {
            let page = store.range(RangeRequest { prefix: "/registry/".into(), start_after, revision: at, limit: 10_000 }).await?;
            let rev = page.revision;
            at = Some(rev);
            for kv in &page.kvs {
                if let Some(obj) = decode(kv, kv.mod_revision) {
                    let rc = resources.entry(storage_of(&kv.key).to_string()).or_insert_with(|| Arc::new(ResourceCache::new(rev)));
                    rc.state.write().unwrap().objects.insert(obj.key.clone(), obj);
                }
            }
            start_after = page.kvs.last().map(|kv| kv.key.clone());
            if page.remaining == 0 || page.kvs.is_empty() {
                break;
            }
        }
        let start = at.unwrap_or(0);
        let (rev, _) = watch::channel(start);
        let cache = Arc::new(WatchCache { resources: RwLock::new(resources), rev, start, failed: Mutex::new(None) });
        let stream = store.watch("/registry/".into(), start).await?;
        tokio::spawn(cache.clone().follow(store, stream));
        Ok(cache)
    }

    async fn follow(self: Arc<Self>, store: Arc<dyn Store>, mut stream: store::WatchStream) {
        loop {
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(ev) => {
                        let rev = ev.revision();
                        if let Some(obj) = decode(&ev.kv, rev) {
                            self.resource(storage_of(&ev.kv.key)).apply(ev.kind, obj);
                        }
                        self.rev.send_replace(rev);
                    }
                    Err(e) => {
                        tracing::warn!("store watch ended: {e}");
                        break;
                    }
                }
            }
            // Resume from the last applied revision; history that old is kept
            // by the store for minutes, so this only fails after a long stall.
            let from = *self.rev.borrow();
            match store.watch("/registry/".into(), from).await {
                Ok(s) => stream = s,
                Err(e) => {
                    tracing::error!("cannot resume the store watch from {from}: {e}");
                    *self.failed.lock().unwrap() = Some(e.to_string());
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// The cache of one storage prefix, created empty when first seen.
    pub fn resource(&self, storage: &str) -> Arc<ResourceCache> {
        if let Some(rc) = self.resources.read().unwrap().get(storage) {
            return rc.clone();
        }
        let floor = (*self.rev.borrow()).max(self.start);
        self.resources.write().unwrap().entry(storage.to_string()).or_insert_with(|| Arc::new(ResourceCache::new(floor))).clone()
    }

    /// The newest revision applied to the cache.
    pub fn revision(&self) -> Revision {
        *self.rev.borrow()
    }

    /// Waits until the cache has applied `rev`; false on timeout.
    pub async fn wait_for(&self, rev: Revision, timeout: Duration) -> bool {
        let mut rx = self.rev.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= rev)).await.is_ok_and(|r| r.is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn served(stored: Value, rev: Revision) -> (Cached, Value) {
        let c = Cached::from_stored("/registry/pods/a/p", &serde_json::to_vec(&stored).unwrap(), rev).unwrap();
        let v = c.value();
        (c, v)
    }

    #[test]
    fn the_revision_is_written_into_the_stored_bytes() {
        let stored = json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "a", "labels": {"app": "x"}}, "spec": {"template": {"metadata": {"name": "inner"}}}});
        let (c, v) = served(stored.clone(), 42);
        let mut want = stored;
        want["metadata"]["resourceVersion"] = json!("42");
        assert_eq!(v, want);
        assert_eq!((c.name.as_str(), c.namespace.as_str(), c.labels["app"].as_str()), ("p", "a", Some("x")));
        assert_eq!(c.bytes.len(), serde_json::to_vec(&want).unwrap().len());

        // Metadata after the spec, empty metadata, and escaped names.
        let (_, v) = served(json!({"spec": {"metadata": {}}, "metadata": {}}), 7);
        assert_eq!(v, json!({"spec": {"metadata": {}}, "metadata": {"resourceVersion": "7"}}));
        let (c, _) = served(json!({"metadata": {"name": "a\"b"}}), 7);
        assert_eq!(c.name, "a\"b");
    }

    #[test]
    fn a_stored_resource_version_is_replaced() {
        let (_, v) = served(json!({"metadata": {"name": "p", "resourceVersion": "3"}}), 9);
        assert_eq!(v, json!({"metadata": {"name": "p", "resourceVersion": "9"}}));
        assert!(Cached::from_stored("/k", b"{\"metadata\": 5}", 1).is_none());
        assert!(Cached::from_stored("/k", b"not json", 1).is_none());
    }
}
