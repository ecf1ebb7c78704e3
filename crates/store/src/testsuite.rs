//! Backend-agnostic tests of the [`Store`] contract. Each function takes a fresh,
//! empty store and panics on the first violated expectation, so a backend's test
//! file only has to call them (or [`run_all`]) with its own stores.
//!
//! The functions never assume the first revision is 1: a fresh store has no keys,
//! but a backend sharing a server (etcd) may start at any revision. Timeouts here
//! only turn a hang into a failure; nothing asserts on how long anything takes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::{Error, Event, EventKind, KeyValue, RangeRequest, Revision, Store, WatchStream};

/// How long a test waits for an expected event before declaring a hang.
const PATIENCE: Duration = Duration::from_secs(20);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn current(store: &Arc<dyn Store>) -> Revision {
    store.current_revision().await.expect("current_revision")
}

async fn create(store: &Arc<dyn Store>, key: &str, value: &str) -> KeyValue {
    store.create(key.to_owned(), b(value)).await.unwrap_or_else(|e| panic!("create {key}: {e}"))
}

async fn update(store: &Arc<dyn Store>, kv: &KeyValue, value: &str) -> KeyValue {
    store.update(kv.key.clone(), b(value), kv.mod_revision).await.unwrap_or_else(|e| panic!("update {}: {e}", kv.key))
}

async fn delete(store: &Arc<dyn Store>, kv: &KeyValue) -> KeyValue {
    store.delete(kv.key.clone(), Some(kv.mod_revision)).await.unwrap_or_else(|e| panic!("delete {}: {e}", kv.key))
}

fn range_req(prefix: &str, revision: Option<Revision>) -> RangeRequest {
    RangeRequest { prefix: prefix.to_owned(), revision, ..Default::default() }
}

async fn keys_at(store: &Arc<dyn Store>, prefix: &str, revision: Option<Revision>) -> Vec<(String, String)> {
    let resp = store.range(range_req(prefix, revision)).await.expect("range");
    resp.kvs.iter().map(|kv| (kv.key.clone(), String::from_utf8_lossy(&kv.value).into_owned())).collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn watch(store: &Arc<dyn Store>, prefix: &str, after: Revision) -> WatchStream {
    store.watch(prefix.to_owned(), after).await.unwrap_or_else(|e| panic!("watch {prefix} after {after}: {e}"))
}

async fn next_event(stream: &mut WatchStream) -> Event {
    match tokio::time::timeout(PATIENCE, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within {PATIENCE:?}"),
    }
}

/// Asserts a watch after `after` is refused as compacted, either by `watch`
/// itself or as the stream's first item (backends may do either).
async fn expect_watch_compacted(store: &Arc<dyn Store>, prefix: &str, after: Revision) {
    match store.watch(prefix.to_owned(), after).await {
        Err(e) => assert!(matches!(e, Error::Compacted { .. }), "watch after {after}: {e:?}"),
        Ok(mut stream) => match tokio::time::timeout(PATIENCE, stream.next()).await {
            Ok(Some(Err(Error::Compacted { .. }))) => {}
            other => panic!("watch after {after}: expected Compacted, got {other:?}"),
        },
    }
}

/// A created key reads back with create and mod revision equal to the new
/// current revision; missing keys read as `None`.
pub async fn create_get(store: Arc<dyn Store>) {
    let base = current(&store).await;
    let kv = create(&store, "/cg/a", "one").await;
    assert_eq!(kv.key, "/cg/a");
    assert_eq!(kv.value, b("one"));
    assert!(kv.mod_revision > base);
    assert_eq!(kv.create_revision, kv.mod_revision);
    assert_eq!(current(&store).await, kv.mod_revision);
    assert_eq!(store.get("/cg/a").await.unwrap(), Some(kv.clone()));
    assert_eq!(store.get("/cg/missing").await.unwrap(), None);
    assert_eq!(store.get("/cg").await.unwrap(), None, "get is exact, not a prefix match");

    let empty = create(&store, "/cg/empty", "").await;
    assert_eq!(store.get("/cg/empty").await.unwrap().unwrap().value, Bytes::new());
    assert_eq!(empty.mod_revision, kv.mod_revision + 1);

    let big = "x".repeat(1 << 20);
    create(&store, "/cg/big", &big).await;
    assert_eq!(store.get("/cg/big").await.unwrap().unwrap().value, b(&big));
}

/// Creating an existing key fails without using a revision; after a deletion
/// the key can be created again, with a new create revision.
pub async fn create_conflict(store: Arc<dyn Store>) {
    let first = create(&store, "/cc/a", "one").await;
    let before = current(&store).await;
    let err = store.create("/cc/a".into(), b("two")).await.unwrap_err();
    assert_eq!(err, Error::AlreadyExists);
    assert_eq!(current(&store).await, before, "a failed create takes no revision");
    assert_eq!(store.get("/cc/a").await.unwrap(), Some(first.clone()));

    let deleted = delete(&store, &first).await;
    let again = create(&store, "/cc/a", "three").await;
    assert!(again.create_revision > deleted.mod_revision);
    assert_eq!(again.create_revision, again.mod_revision);
    assert_eq!(store.get("/cc/a").await.unwrap(), Some(again));
}

/// Updates are compare-and-swap on the mod revision and keep the create revision.
pub async fn update_cas(store: Arc<dyn Store>) {
    let v1 = create(&store, "/uc/a", "one").await;
    let v2 = update(&store, &v1, "two").await;
    assert_eq!(v2.create_revision, v1.create_revision);
    assert_eq!(v2.mod_revision, v1.mod_revision + 1);
    assert_eq!(v2.value, b("two"));
    assert_eq!(store.get("/uc/a").await.unwrap(), Some(v2.clone()));

    let before = current(&store).await;
    let err = store.update("/uc/a".into(), b("stale"), v1.mod_revision).await.unwrap_err();
    assert_eq!(err, Error::Conflict { current: Some(v2.clone()) });
    let err = store.update("/uc/missing".into(), b("x"), v1.mod_revision).await.unwrap_err();
    assert_eq!(err, Error::NotFound);
    assert_eq!(current(&store).await, before, "failed updates take no revision");
    assert_eq!(store.get("/uc/a").await.unwrap(), Some(v2.clone()));

    let v3 = update(&store, &v2, "three").await;
    assert_eq!(v3.create_revision, v1.create_revision);
    assert!(v3.mod_revision > v2.mod_revision);

    let gone = delete(&store, &v3).await;
    let err = store.update("/uc/a".into(), b("x"), gone.mod_revision).await.unwrap_err();
    assert_eq!(err, Error::NotFound, "updating a deleted key");
}

/// Deletes are compare-and-swap when given a revision, return the last value
/// with the deletion's revision, and fail on missing keys.
pub async fn delete_cas(store: Arc<dyn Store>) {
    let v1 = create(&store, "/dc/a", "one").await;
    let v2 = update(&store, &v1, "two").await;
    let before = current(&store).await;
    let err = store.delete("/dc/a".into(), Some(v1.mod_revision)).await.unwrap_err();
    assert_eq!(err, Error::Conflict { current: Some(v2.clone()) });
    assert_eq!(current(&store).await, before);

    let deleted = store.delete("/dc/a".into(), Some(v2.mod_revision)).await.unwrap();
    assert_eq!(deleted.key, "/dc/a");
    assert_eq!(deleted.value, b("two"));
    assert_eq!(deleted.create_revision, v1.create_revision);
    assert_eq!(deleted.mod_revision, before + 1);
    assert_eq!(current(&store).await, deleted.mod_revision);
    assert_eq!(store.get("/dc/a").await.unwrap(), None);

    assert_eq!(store.delete("/dc/a".into(), None).await.unwrap_err(), Error::NotFound);
    assert_eq!(store.delete("/dc/a".into(), Some(deleted.mod_revision)).await.unwrap_err(), Error::NotFound);

    let other = create(&store, "/dc/b", "x").await;
    let gone = store.delete("/dc/b".into(), None).await.unwrap();
    assert_eq!(gone.value, other.value);
    assert_eq!(gone.mod_revision, other.mod_revision + 1);
}

/// Every successful write takes exactly the next revision; failures take none.
pub async fn revisions_monotonic(store: Arc<dyn Store>) {
    let mut expected = current(&store).await;
    let mut kv = create(&store, "/rm/a", "0").await;
    expected += 1;
    assert_eq!(kv.mod_revision, expected);
    for i in 1..20 {
        if i % 5 == 0 {
            assert!(store.create("/rm/a".into(), b("dup")).await.is_err());
            assert!(store.update("/rm/a".into(), b("stale"), kv.mod_revision - 1).await.is_err());
        }
        kv = update(&store, &kv, &i.to_string()).await;
        expected += 1;
        assert_eq!(kv.mod_revision, expected);
        assert_eq!(current(&store).await, expected);
    }
    let other = create(&store, "/rm/b", "x").await;
    assert_eq!(other.mod_revision, expected + 1);
    let gone = delete(&store, &other).await;
    assert_eq!(gone.mod_revision, expected + 2);
    assert_eq!(current(&store).await, expected + 2);
}

/// Ranges return the keys under a prefix in key order, paged by `start_after`
/// and `limit`, with `remaining` counting the live keys after the page.
pub async fn range_prefix_and_paging(store: Arc<dyn Store>) {
    for key in ["/rp/a/3", "/rp/a/1", "/rp/a/5", "/rp/a/2", "/rp/a/4", "/rp/b/1", "/rp/a", "/rp/ab"] {
        create(&store, key, key).await;
    }
    let all = store.range(range_req("/rp/a/", None)).await.unwrap();
    let keys: Vec<_> = all.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/rp/a/1", "/rp/a/2", "/rp/a/3", "/rp/a/4", "/rp/a/5"]);
    assert_eq!(all.remaining, 0);
    assert_eq!(all.revision, current(&store).await);
    assert!(all.kvs.iter().all(|kv| kv.value == b(&kv.key)));

    let page = |start_after: Option<&str>, limit| RangeRequest {
        prefix: "/rp/a/".into(),
        start_after: start_after.map(str::to_owned),
        revision: None,
        limit,
    };
    let p1 = store.range(page(None, 2)).await.unwrap();
    assert_eq!(p1.kvs.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(), ["/rp/a/1", "/rp/a/2"]);
    assert_eq!(p1.remaining, 3);
    let p2 = store.range(page(Some("/rp/a/2"), 2)).await.unwrap();
    assert_eq!(p2.kvs.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(), ["/rp/a/3", "/rp/a/4"]);
    assert_eq!(p2.remaining, 1);
    let p3 = store.range(page(Some("/rp/a/4"), 2)).await.unwrap();
    assert_eq!(p3.kvs.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(), ["/rp/a/5"]);
    assert_eq!(p3.remaining, 0);
    let p4 = store.range(page(Some("/rp/a/5"), 2)).await.unwrap();
    assert!(p4.kvs.is_empty());
    assert_eq!(p4.remaining, 0);
    // A start key that is not itself stored, or sorts before the prefix.
    let between = store.range(page(Some("/rp/a/25"), 1)).await.unwrap();
    assert_eq!(between.kvs[0].key, "/rp/a/3");
    assert_eq!(between.remaining, 2);
    let before = store.range(page(Some("/a"), 0)).await.unwrap();
    assert_eq!(before.kvs.len(), 5);

    // Deleted keys are neither returned nor counted.
    let three = store.get("/rp/a/3").await.unwrap().unwrap();
    delete(&store, &three).await;
    let p1 = store.range(page(None, 2)).await.unwrap();
    assert_eq!(p1.kvs.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(), ["/rp/a/1", "/rp/a/2"]);
    assert_eq!(p1.remaining, 2);

    assert_eq!(store.range(range_req("", None)).await.unwrap().kvs.len(), 7);
    assert_eq!(store.range(range_req("/rp/", None)).await.unwrap().kvs.len(), 7);
    assert!(store.range(range_req("/rp/zzz", None)).await.unwrap().kvs.is_empty());
}

/// A range at an old revision sees exactly the state after that write.
pub async fn range_at_old_revision(store: Arc<dyn Store>) {
    let r0 = current(&store).await;
    let a1 = create(&store, "/ro/a", "a1").await;
    let b1 = create(&store, "/ro/b", "b1").await;
    let a2 = update(&store, &a1, "a2").await;
    let b_gone = delete(&store, &b1).await;
    let c1 = create(&store, "/ro/c", "c1").await;
    let b2 = create(&store, "/ro/b", "b2").await;

    assert_eq!(keys_at(&store, "/ro/", Some(r0)).await, pairs(&[]));
    assert_eq!(keys_at(&store, "/ro/", Some(a1.mod_revision)).await, pairs(&[("/ro/a", "a1")]));
    assert_eq!(keys_at(&store, "/ro/", Some(b1.mod_revision)).await, pairs(&[("/ro/a", "a1"), ("/ro/b", "b1")]));
    assert_eq!(keys_at(&store, "/ro/", Some(a2.mod_revision)).await, pairs(&[("/ro/a", "a2"), ("/ro/b", "b1")]));
    assert_eq!(keys_at(&store, "/ro/", Some(b_gone.mod_revision)).await, pairs(&[("/ro/a", "a2")]));
    assert_eq!(keys_at(&store, "/ro/", Some(c1.mod_revision)).await, pairs(&[("/ro/a", "a2"), ("/ro/c", "c1")]));
    assert_eq!(keys_at(&store, "/ro/", Some(b2.mod_revision)).await, pairs(&[("/ro/a", "a2"), ("/ro/b", "b2"), ("/ro/c", "c1")]));

    let at = store.range(range_req("/ro/", Some(a2.mod_revision))).await.unwrap();
    assert_eq!(at.revision, a2.mod_revision);
    assert_eq!(at.kvs[0], a2);
    assert_eq!(at.kvs[1], b1);

    let paged = store.range(RangeRequest { prefix: "/ro/".into(), start_after: None, revision: Some(a2.mod_revision), limit: 1 }).await.unwrap();
    assert_eq!(paged.kvs, vec![a2.clone()]);
    assert_eq!(paged.remaining, 1);
    let paged = store
        .range(RangeRequest { prefix: "/ro/".into(), start_after: Some("/ro/a".into()), revision: Some(c1.mod_revision), limit: 1 })
        .await
        .unwrap();
    assert_eq!(paged.kvs, vec![c1.clone()]);
    assert_eq!(paged.remaining, 0);

    // The recreated key has a new create revision at the newest revision.
    let now = store.range(range_req("/ro/b", None)).await.unwrap();
    assert_eq!(now.kvs, vec![b2.clone()]);
    assert!(b2.create_revision > b1.create_revision);
}

/// A range above the current revision fails with `FutureRevision`.
pub async fn range_future_revision(store: Arc<dyn Store>) {
    create(&store, "/rf/a", "x").await;
    let now = current(&store).await;
    let err = store.range(range_req("/rf/", Some(now + 1))).await.unwrap_err();
    assert_eq!(err, Error::FutureRevision { requested: now + 1, current: now });
    let ok = store.range(range_req("/rf/", Some(now))).await.unwrap();
    assert_eq!(ok.kvs.len(), 1);
}

/// A watch replays every event after its start revision in order, then goes
/// on with live events, with no gap and no duplicate in between.
pub async fn watch_from_revision_replays_then_live(store: Arc<dyn Store>) {
    let r0 = current(&store).await;
    let a1 = create(&store, "/wr/a", "a1").await;
    let a2 = update(&store, &a1, "a2").await;
    let b1 = create(&store, "/wr/b", "b1").await;

    let mut all = watch(&store, "/wr/", r0).await;
    let mut later = watch(&store, "/wr/", a1.mod_revision).await;
    let e = next_event(&mut all).await;
    assert_eq!((e.kind, e.kv.clone(), e.prev), (EventKind::Put, a1.clone(), None));
    let e = next_event(&mut all).await;
    assert_eq!((e.kind, e.kv.clone(), e.prev), (EventKind::Put, a2.clone(), Some(a1.clone())));
    let e = next_event(&mut all).await;
    assert_eq!(e.revision(), b1.mod_revision);
    assert_eq!((e.kind, e.kv, e.prev), (EventKind::Put, b1.clone(), None));

    let e = next_event(&mut later).await;
    assert_eq!(e.kv, a2);
    let e = next_event(&mut later).await;
    assert_eq!(e.kv, b1);

    let c1 = create(&store, "/wr/c", "c1").await;
    let b2 = update(&store, &b1, "b2").await;
    for stream in [&mut all, &mut later] {
        let e = next_event(stream).await;
        assert_eq!((e.kind, e.kv, e.prev), (EventKind::Put, c1.clone(), None));
        let e = next_event(stream).await;
        assert_eq!((e.kind, e.kv, e.prev), (EventKind::Put, b2.clone(), Some(b1.clone())));
    }

    // A watch from the current revision sees only later writes.
    let mut fresh = watch(&store, "/wr/", current(&store).await).await;
    let c2 = update(&store, &c1, "c2").await;
    assert_eq!(next_event(&mut fresh).await.kv, c2);
    assert_eq!(next_event(&mut all).await.kv, c2);

    // A watch after a future revision skips everything up to it.
    let now = current(&store).await;
    let mut future = watch(&store, "/wr/", now + 1).await;
    update(&store, &c2, "c3").await;
    let c4 = update(&store, &store.get("/wr/c").await.unwrap().unwrap(), "c4").await;
    let e = next_event(&mut future).await;
    assert_eq!(e.kv, c4);
}

/// A watch sees only keys under its prefix.
pub async fn watch_prefix_filters(store: Arc<dyn Store>) {
    let start = current(&store).await;
    let mut a = watch(&store, "/wp/a/", start).await;
    let mut everything = watch(&store, "/wp/", start).await;
    create(&store, "/wp/b/x", "1").await;
    let ax = create(&store, "/wp/a/x", "2").await;
    create(&store, "/wp/ab", "3").await;
    create(&store, "/other/a/x", "4").await;
    let ay = create(&store, "/wp/a/y", "5").await;
    assert_eq!(next_event(&mut a).await.kv, ax);
    assert_eq!(next_event(&mut a).await.kv, ay);
    let keys = [
        next_event(&mut everything).await.kv.key,
        next_event(&mut everything).await.kv.key,
        next_event(&mut everything).await.kv.key,
        next_event(&mut everything).await.kv.key,
    ];
    assert_eq!(keys, ["/wp/b/x", "/wp/a/x", "/wp/ab", "/wp/a/y"]);

    // Replay filters the same way.
    let mut replay = watch(&store, "/wp/a/", start).await;
    assert_eq!(next_event(&mut replay).await.kv, ax);
    assert_eq!(next_event(&mut replay).await.kv, ay);
}

/// Delete events carry the last value at the deletion's revision, and every
/// event on an existing key carries the previous value.
pub async fn watch_delete_event_carries_prev(store: Arc<dyn Store>) {
    let start = current(&store).await;
    let mut live = watch(&store, "/wd/", start).await;
    let v1 = create(&store, "/wd/a", "one").await;
    let v2 = update(&store, &v1, "two").await;
    let gone = delete(&store, &v2).await;
    let again = create(&store, "/wd/a", "three").await;

    let replay = watch(&store, "/wd/", start).await;
    let mut streams = [live, replay];
    for stream in &mut streams {
        let e = next_event(stream).await;
        assert_eq!((e.kind, &e.kv, &e.prev), (EventKind::Put, &v1, &None));
        let e = next_event(stream).await;
        assert_eq!((e.kind, &e.kv, &e.prev), (EventKind::Put, &v2, &Some(v1.clone())));
        let e = next_event(stream).await;
        assert_eq!(e.kind, EventKind::Delete);
        assert_eq!(e.kv, gone);
        assert_eq!(e.kv.value, b("two"));
        assert_eq!(e.kv.create_revision, v1.create_revision);
        assert_eq!(e.revision(), v2.mod_revision + 1);
        assert_eq!(e.prev, Some(v2.clone()));
        let e = next_event(stream).await;
        assert_eq!((e.kind, &e.kv, &e.prev), (EventKind::Put, &again, &None));
    }
    live = watch(&store, "/wd/", again.mod_revision).await;
    let unconditional = store.delete("/wd/a".into(), None).await.unwrap();
    let e = next_event(&mut live).await;
    assert_eq!((e.kind, &e.kv, &e.prev), (EventKind::Delete, &unconditional, &Some(again.clone())));
}

/// A watch started while writers are busy switches from replay to live without
/// losing or repeating an event.
pub async fn watch_handoff_under_load(store: Arc<dyn Store>) {
    const TASKS: usize = 8;
    const PER_TASK: usize = 100;
    let start = current(&store).await;
    let mut writers = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                store.create(format!("/wh/{t}/{i}"), b("x")).await.unwrap();
            }
        }));
    }
    // Start watching from somewhere in the middle of the writes.
    let mut from = start;
    while from < start + (TASKS * PER_TASK / 4) as Revision {
        tokio::task::yield_now().await;
        from = current(&store).await;
    }
    let mut stream = watch(&store, "/wh/", from).await;
    let end = start + (TASKS * PER_TASK) as Revision;
    let mut expected = from + 1;
    while expected <= end {
        let e = next_event(&mut stream).await;
        assert_eq!(e.revision(), expected, "events must be gap-free and in order");
        assert_eq!(e.kind, EventKind::Put);
        expected += 1;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(current(&store).await, end);
}

/// After compaction, reads and watches below the compacted revision fail, while
/// the state at and after it (and every current value) is intact.
pub async fn compaction_forgets_history(store: Arc<dyn Store>) {
    let a1 = create(&store, "/cf/a", "a1").await;
    let a2 = update(&store, &a1, "a2").await;
    let a3 = update(&store, &a2, "a3").await;
    let b1 = create(&store, "/cf/b", "b1").await;
    let b_gone = delete(&store, &b1).await;
    let c1 = create(&store, "/cf/c", "c1").await;
    let d1 = create(&store, "/cf/d", "d1").await;
    let d_gone = delete(&store, &d1).await;

    store.compact(a3.mod_revision).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), a3.mod_revision);

    let err = store.range(range_req("/cf/", Some(a2.mod_revision))).await.unwrap_err();
    assert_eq!(err, Error::Compacted { requested: a2.mod_revision, compacted: a3.mod_revision });
    assert_eq!(keys_at(&store, "/cf/", Some(a3.mod_revision)).await, pairs(&[("/cf/a", "a3")]));
    assert_eq!(keys_at(&store, "/cf/", Some(b1.mod_revision)).await, pairs(&[("/cf/a", "a3"), ("/cf/b", "b1")]));
    assert_eq!(keys_at(&store, "/cf/", Some(b_gone.mod_revision)).await, pairs(&[("/cf/a", "a3")]));
    assert_eq!(keys_at(&store, "/cf/", None).await, pairs(&[("/cf/a", "a3"), ("/cf/c", "c1")]));
    assert_eq!(store.get("/cf/a").await.unwrap(), Some(a3.clone()));

    expect_watch_compacted(&store, "/cf/", a1.mod_revision).await;
    expect_watch_compacted(&store, "/cf/", a3.mod_revision - 1).await;
    let mut stream = watch(&store, "/cf/", a3.mod_revision).await;
    let e = next_event(&mut stream).await;
    assert_eq!((e.kind, &e.kv, &e.prev), (EventKind::Put, &b1, &None));
    let e = next_event(&mut stream).await;
    assert_eq!((e.kind, &e.kv, &e.prev), (EventKind::Delete, &b_gone, &Some(b1.clone())));
    let e = next_event(&mut stream).await;
    assert_eq!(e.kv, c1);
    let e = next_event(&mut stream).await;
    assert_eq!(e.kv, d1);
    let e = next_event(&mut stream).await;
    assert_eq!(e.kv, d_gone);
    // The first write after compaction still knows the compacted-to value.
    let a4 = update(&store, &a3, "a4").await;
    let e = next_event(&mut stream).await;
    assert_eq!((e.kind, &e.kv, &e.prev), (EventKind::Put, &a4, &Some(a3.clone())));

    // Compacting everything keeps current values, and the counter moves on.
    let now = current(&store).await;
    store.compact(now).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), now);
    assert_eq!(keys_at(&store, "/cf/", None).await, pairs(&[("/cf/a", "a4"), ("/cf/c", "c1")]));
    assert_eq!(keys_at(&store, "/cf/", Some(now)).await, pairs(&[("/cf/a", "a4"), ("/cf/c", "c1")]));
    let err = store.range(range_req("/cf/", Some(now - 1))).await.unwrap_err();
    assert!(matches!(err, Error::Compacted { .. }), "{err:?}");
    assert_eq!(store.create("/cf/a".into(), b("x")).await.unwrap_err(), Error::AlreadyExists);
    assert_eq!(store.get("/cf/b").await.unwrap(), None);
    assert_eq!(store.get("/cf/d").await.unwrap(), None);
    let b2 = create(&store, "/cf/b", "b2").await;
    assert_eq!(b2.mod_revision, now + 1);
    let a5 = update(&store, &a4, "a5").await;
    assert_eq!(a5.create_revision, a1.create_revision);

    let err = store.compact(current(&store).await + 1).await.unwrap_err();
    assert!(matches!(err, Error::FutureRevision { .. }), "{err:?}");
}

/// Many concurrent writers each get their own revision and all land.
pub async fn concurrent_writers(store: Arc<dyn Store>) {
    const TASKS: usize = 64;
    const PER_TASK: usize = 50;
    let base = current(&store).await;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut revisions = Vec::with_capacity(PER_TASK);
            for i in 0..PER_TASK {
                let kv = store.create(format!("/cw/{t:02}/{i:02}"), b(&format!("{t}-{i}"))).await.unwrap();
                revisions.push(kv.mod_revision);
            }
            revisions
        }));
    }
    let mut revisions = Vec::new();
    for task in tasks {
        let mine = task.await.unwrap();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "one task's writes are ordered");
        revisions.extend(mine);
    }
    revisions.sort_unstable();
    let expected: Vec<Revision> = (base + 1..=base + (TASKS * PER_TASK) as Revision).collect();
    assert_eq!(revisions, expected, "every write got its own revision, none skipped");
    assert_eq!(current(&store).await, base + (TASKS * PER_TASK) as Revision);
    let all = store.range(range_req("/cw/", None)).await.unwrap();
    assert_eq!(all.kvs.len(), TASKS * PER_TASK);
    for kv in &all.kvs {
        let (t, i) = kv.key["/cw/".len()..].split_once('/').unwrap();
        assert_eq!(kv.value, b(&format!("{}-{}", t.parse::<usize>().unwrap(), i.parse::<usize>().unwrap())));
    }
}

/// Of many concurrent updates expecting the same revision, exactly one wins.
pub async fn concurrent_cas_single_winner(store: Arc<dyn Store>) {
    let kv = create(&store, "/cs/a", "0").await;
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        let expected = kv.mod_revision;
        tasks.push(tokio::spawn(async move { store.update("/cs/a".into(), b(&t.to_string()), expected).await }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(kv) => winners.push(kv),
            Err(Error::Conflict { current: Some(current) }) => assert!(current.mod_revision > kv.mod_revision),
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(store.get("/cs/a").await.unwrap(), Some(winners[0].clone()));
    assert_eq!(current(&store).await, kv.mod_revision + 1);
}

/// Runs every test of the suite, each on a fresh store from `make`.
pub async fn run_all(make: impl Fn() -> Arc<dyn Store>) {
    create_get(make()).await;
    create_conflict(make()).await;
    update_cas(make()).await;
    delete_cas(make()).await;
    revisions_monotonic(make()).await;
    range_prefix_and_paging(make()).await;
    range_at_old_revision(make()).await;
    range_future_revision(make()).await;
    watch_from_revision_replays_then_live(make()).await;
    watch_prefix_filters(make()).await;
    watch_delete_event_carries_prev(make()).await;
    watch_handoff_under_load(make()).await;
    compaction_forgets_history(make()).await;
    concurrent_writers(make()).await;
    concurrent_cas_single_winner(make()).await;
}
