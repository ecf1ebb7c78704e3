//! Runs the backend-agnostic suite against the embedded backend, one test per
//! suite function on a fresh file, plus tests of what only the embedded backend
//! promises: persistence across reopen, bounded file size under churn, group
//! commit, watcher back-pressure, automatic compaction and crash safety.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use store::embedded::{Embedded, Options};
use store::{Error, RangeRequest, Store, testsuite};

/// A fresh store in its own temporary directory, which lives as long as the test.
fn fresh_with(options: Options) -> (tempfile::TempDir, Arc<Embedded>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Embedded::open_with(&dir.path().join("store.redb"), options).unwrap();
    (dir, store)
}

fn fresh() -> (tempfile::TempDir, Arc<Embedded>) {
    fresh_with(Options::default())
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (_dir, store) = fresh();
            testsuite::$name(store).await;
        }
    )*};
}

suite!(
    create_get,
    create_conflict,
    update_cas,
    delete_cas,
    revisions_monotonic,
    range_prefix_and_paging,
    range_at_old_revision,
    range_future_revision,
    watch_from_revision_replays_then_live,
    watch_prefix_filters,
    watch_delete_event_carries_prev,
    watch_handoff_under_load,
    compaction_forgets_history,
    concurrent_writers,
    concurrent_cas_single_winner,
);

/// The suite also passes on one store per test run in a single-threaded runtime,
/// where the writer thread is the only other thread.
#[tokio::test(flavor = "current_thread")]
async fn run_all_current_thread() {
    let dir = tempfile::tempdir().unwrap();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    testsuite::run_all(|| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Embedded::open(&dir.path().join(format!("store-{n}.redb"))).unwrap() as Arc<dyn Store>
    })
    .await;
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_data_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let (a2, compacted, revision) = {
        let store = Embedded::open(&path).unwrap();
        let a1 = store.create("/a".into(), Bytes::from_static(b"1")).await.unwrap();
        let a2 = store.update("/a".into(), Bytes::from_static(b"2"), a1.mod_revision).await.unwrap();
        store.create("/b".into(), Bytes::from_static(b"b")).await.unwrap();
        store.delete("/b".into(), None).await.unwrap();
        store.compact(a2.mod_revision).await.unwrap();
        (a2, store.compacted_revision().await.unwrap(), store.current_revision().await.unwrap())
    };
    assert_eq!(revision, 4);

    let store = Embedded::open(&path).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), revision);
    assert_eq!(store.compacted_revision().await.unwrap(), compacted);
    assert_eq!(store.get("/a").await.unwrap(), Some(a2.clone()));
    assert_eq!(store.get("/b").await.unwrap(), None);
    // History after the compacted revision survived too.
    let mut watch = store.watch("/".into(), compacted).await.unwrap();
    let event = watch.next().await.unwrap().unwrap();
    assert_eq!(event.kv.key, "/b");

    // Deleting and compacting everything must not let the counter go backwards.
    store.delete("/a".into(), None).await.unwrap();
    let last = store.current_revision().await.unwrap();
    store.compact(last).await.unwrap();
    drop(watch);
    drop(store);
    let store = Embedded::open(&path).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), last);
    assert_eq!(store.compacted_revision().await.unwrap(), last);
    assert!(store.range(RangeRequest::default()).await.unwrap().kvs.is_empty());
    let next = store.create("/a".into(), Bytes::from_static(b"3")).await.unwrap();
    assert_eq!(next.mod_revision, last + 1);
    assert_eq!(next.create_revision, last + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_twice_fails() {
    let (dir, _store) = fresh();
    assert!(Embedded::open(&dir.path().join("store.redb")).is_err());
}

/// 50,000 updates of 1 KiB to 64 keys, compacting every 2,500: without reuse of
/// freed pages the file would grow past 50 MB. redb grows a small file by
/// doubling it, so "bounded" means: no bigger at the end than one doubling of its
/// size in the first half, and well below the data written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_stays_bounded_under_churn() {
    const KEYS: usize = 64;
    const ROUNDS: usize = 20;
    const PER_ROUND: usize = 2_500 / KEYS + 1;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let store = Embedded::open_with(&path, Options { compaction_interval: None, ..Options::default() }).unwrap();
    let value = Bytes::from(vec![7u8; 1024]);
    let mut revisions = Vec::new();
    for k in 0..KEYS {
        revisions.push(store.create(format!("/churn/{k}"), value.clone()).await.unwrap().mod_revision);
    }
    let mut sizes = Vec::new();
    for _ in 0..ROUNDS {
        let mut tasks = Vec::new();
        for (k, revision) in revisions.iter().copied().enumerate() {
            let store = store.clone();
            let value = value.clone();
            tasks.push(tokio::spawn(async move {
                let mut revision = revision;
                for _ in 0..PER_ROUND {
                    revision = store.update(format!("/churn/{k}"), value.clone(), revision).await.unwrap().mod_revision;
                }
                revision
            }));
        }
        for (k, task) in tasks.into_iter().enumerate() {
            revisions[k] = task.await.unwrap();
        }
        store.compact(store.current_revision().await.unwrap()).await.unwrap();
        sizes.push(file_size(&path));
    }
    let total = store.current_revision().await.unwrap();
    eprintln!("{total} revisions; file size after each compaction: {sizes:?}");
    assert!(total as usize >= 50_000);
    let first_half = sizes[..ROUNDS / 2].iter().max().copied().unwrap();
    let last = *sizes.last().unwrap();
    assert!(last <= first_half * 2, "file grew from {first_half} to {last} bytes");
    assert!(last < 24 << 20, "file is {last} bytes for 64 KiB of live data");
    assert_eq!(store.range(RangeRequest { prefix: "/churn/".into(), ..Default::default() }).await.unwrap().kvs.len(), KEYS);
}

/// 64 tasks creating keys concurrently: checks every write landed exactly once and
/// reports the throughput (not asserted: the machine is shared).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_throughput() {
    const TASKS: usize = 64;
    const PER_TASK: usize = 200;
    let (_dir, store) = fresh();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                store.create(format!("/gc/{t}/{i}"), Bytes::from_static(b"{\"kind\":\"Pod\"}")).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let total = TASKS * PER_TASK;
    eprintln!("group commit: {total} durable creates by {TASKS} tasks in {elapsed:?} = {:.0} creates/s", total as f64 / elapsed.as_secs_f64());
    assert_eq!(store.current_revision().await.unwrap(), total as i64);
    let all = store.range(RangeRequest { prefix: "/gc/".into(), ..Default::default() }).await.unwrap();
    assert_eq!(all.kvs.len(), total);
}

/// A watcher that stops reading is cut off with an error once its buffer is
/// full, while writers go on unhindered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_is_ended() {
    let (_dir, store) = fresh_with(Options { watch_buffer: 8, ..Options::default() });
    let mut slow = store.watch("/s/".into(), 0).await.unwrap();
    let mut kv = store.create("/s/a".into(), Bytes::from_static(b"0")).await.unwrap();
    // The first read registers the watcher.
    assert_eq!(slow.next().await.unwrap().unwrap().kv, kv);
    for i in 0..50 {
        kv = store.update("/s/a".into(), Bytes::from(i.to_string()), kv.mod_revision).await.unwrap();
    }
    let mut delivered = 0;
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(20), slow.next()).await.expect("stream hangs") {
            Some(Ok(_)) => delivered += 1,
            Some(Err(e)) => break e,
            None => panic!("stream ended without an error"),
        }
    };
    assert!(delivered <= 8, "{delivered} events delivered from an 8-event buffer");
    assert!(matches!(end, Error::Internal(ref m) if m.contains("fell behind")), "{end:?}");
    assert!(slow.next().await.is_none());

    // A new watch from where the slow one stopped can catch up from history.
    let mut again = store.watch("/s/".into(), 1 + delivered as i64).await.unwrap();
    let mut count = 0;
    while count < 50 - delivered {
        again.next().await.unwrap().unwrap();
        count += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_compaction() {
    let (_dir, store) = fresh_with(Options { compaction_interval: Some(Duration::from_millis(50)), ..Options::default() });
    let mut kv = store.create("/ac/a".into(), Bytes::from_static(b"0")).await.unwrap();
    for i in 0..9 {
        kv = store.update("/ac/a".into(), Bytes::from(i.to_string()), kv.mod_revision).await.unwrap();
    }
    // Compaction reaches revision 10 at the second tick after the writes; the
    // deadline only turns a hang into a failure.
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.compacted_revision().await.unwrap() < 10 {
        assert!(Instant::now() < deadline, "automatic compaction never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.compacted_revision().await.unwrap(), 10);
    assert_eq!(store.get("/ac/a").await.unwrap(), Some(kv));
    let err = store.range(RangeRequest { prefix: "/ac/".into(), revision: Some(9), ..Default::default() }).await;
    assert!(matches!(err, Err(Error::Compacted { requested: 9, compacted: 10 })), "{err:?}");
}

/// A compaction bigger than one chunk is done in several transactions with the
/// same result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_compaction() {
    let (_dir, store) = fresh_with(Options { compaction_chunk: 7, compaction_interval: None, ..Options::default() });
    let mut kvs = Vec::new();
    for k in 0..10 {
        kvs.push(store.create(format!("/cc/{k}"), Bytes::from_static(b"0")).await.unwrap());
    }
    for round in 0..10 {
        for kv in kvs.iter_mut() {
            *kv = store.update(kv.key.clone(), Bytes::from(round.to_string()), kv.mod_revision).await.unwrap();
        }
    }
    for kv in kvs.iter().step_by(2) {
        store.delete(kv.key.clone(), None).await.unwrap();
    }
    let middle = store.current_revision().await.unwrap();
    let before = store.range(RangeRequest { prefix: "/cc/".into(), revision: Some(middle), ..Default::default() });
    let before = before.await.unwrap();
    let extra = store.create("/cc/new".into(), Bytes::from_static(b"n")).await.unwrap();
    store.compact(middle).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), middle);
    let after = store.range(RangeRequest { prefix: "/cc/".into(), revision: Some(middle), ..Default::default() });
    assert_eq!(after.await.unwrap().kvs, before.kvs);
    assert_eq!(before.kvs.len(), 5);
    let mut watch = store.watch("/cc/".into(), middle).await.unwrap();
    assert_eq!(watch.next().await.unwrap().unwrap().kv, extra);
}

/// Live watches end (without an error) when the store is dropped, and the file
/// can be opened again right away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_end_when_store_closes() {
    let (dir, store) = fresh();
    let mut watch = store.watch("/".into(), 0).await.unwrap();
    let kv = store.create("/x".into(), Bytes::from_static(b"1")).await.unwrap();
    assert_eq!(watch.next().await.unwrap().unwrap().kv, kv);
    drop(store);
    let end = tokio::time::timeout(Duration::from_secs(20), watch.next()).await.expect("stream hangs");
    assert!(end.is_none(), "{end:?}");
    let store = Embedded::open(&dir.path().join("store.redb")).unwrap();
    assert_eq!(store.get("/x").await.unwrap(), Some(kv));
}

const CRASH_DIR_ENV: &str = "STORE_CRASH_TEST_DIR";

/// The writing half of `acknowledged_writes_survive_kill`: run in a child
/// process, it creates keys from many tasks and prints each one once its create
/// returned. Without the environment variable it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR_ENV) else {
        return;
    };
    let store = Embedded::open(&PathBuf::from(dir).join("store.redb")).unwrap();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("/crash/{t}/{i}");
                store.create(key.clone(), Bytes::from(vec![1u8; 512])).await.unwrap();
                println!("acked {key}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// Kills a writing child process with SIGKILL and checks that every key it saw
/// acknowledged is in the reopened file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CRASH_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while acked.len() < 2_000 {
        let line = lines.next().expect("child stopped early").unwrap();
        if let Some(key) = line.strip_prefix("acked ") {
            acked.push(key.to_owned());
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Acknowledgements printed between our last read and the kill count too.
    for line in lines.map_while(Result::ok) {
        if let Some(key) = line.strip_prefix("acked ") {
            acked.push(key.to_owned());
        }
    }

    let store = Embedded::open(&dir.path().join("store.redb")).unwrap();
    let mut missing = Vec::new();
    for key in &acked {
        if store.get(key).await.unwrap().is_none() {
            missing.push(key.clone());
        }
    }
    assert!(missing.is_empty(), "{} acknowledged keys lost, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);
    let revision = store.current_revision().await.unwrap();
    assert!(revision as usize >= acked.len());
    let all = store.range(RangeRequest { prefix: "/crash/".into(), ..Default::default() }).await.unwrap();
    assert_eq!(all.kvs.len() as i64, revision, "one key per revision, none half-written");
}

/// Watches started one after another during sustained concurrent writes: each
/// must see a gap-free, duplicate-free sequence from its start revision, however
/// its switch from replay to live delivery races with the writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_handoff_races() {
    const WRITERS: usize = 32;
    const PER_WRITER: usize = 100;
    let (_dir, store) = fresh();
    let mut writers = Vec::new();
    for t in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                store.create(format!("/hr/{t}/{i}"), Bytes::from_static(b"x")).await.unwrap();
            }
        }));
    }
    let end = (WRITERS * PER_WRITER) as i64;
    let mut watchers = Vec::new();
    loop {
        let from = store.current_revision().await.unwrap();
        if from >= end - 200 {
            break;
        }
        let mut stream = store.watch("/hr/".into(), from).await.unwrap();
        watchers.push(tokio::spawn(async move {
            let mut expected = from + 1;
            while expected <= end {
                let event = tokio::time::timeout(Duration::from_secs(20), stream.next())
                    .await
                    .expect("watch hangs")
                    .expect("watch ended")
                    .expect("watch failed");
                assert_eq!(event.revision(), expected);
                expected += 1;
            }
        }));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(!watchers.is_empty());
    for watcher in watchers {
        watcher.await.unwrap();
    }
}
