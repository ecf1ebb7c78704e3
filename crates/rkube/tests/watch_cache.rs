//! The watch cache's bounded history: a watch from a resourceVersion it no
//! longer holds gets 410 Expired, and kube-rs watchers and reflectors recover
//! by relisting, also across a server restart.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::Server;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;

/// Events the server keeps per resource (see ARCHITECTURE.md); writing more
/// than this pushes older resourceVersions out of the history.
const HISTORY: usize = 16384;
const TRACKED: &str = "group=tracked";

fn tracked(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([("group".to_string(), "tracked".to_string())])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("name".to_string(), name.to_string())])),
        ..Default::default()
    }
}

/// Starts a reflector on the tracked configmaps; returns its store and a
/// counter of how many times the watcher (re)started with a full list.
fn start_reflector(api: Api<ConfigMap>, cfg: watcher::Config) -> (Store<ConfigMap>, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let (reader, writer) = reflector::store();
    let inits = Arc::new(AtomicUsize::new(0));
    let counter = inits.clone();
    let task = tokio::spawn(async move {
        watcher(api, cfg)
            .default_backoff()
            .reflect(writer)
            .for_each(|ev| {
                if let Ok(watcher::Event::InitDone) = ev {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                async {}
            })
            .await;
    });
    (reader, inits, task)
}

/// Waits until the store holds exactly `names`, each at the server's current
/// resourceVersion.
async fn converge(store: &Store<ConfigMap>, api: &Api<ConfigMap>, names: &[&str]) {
    let want: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
    let mut server = BTreeMap::new();
    for n in names {
        server.insert(n.to_string(), api.get(n).await.expect("getting a tracked configmap").resource_version());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let have: BTreeMap<String, Option<String>> = store.state().iter().map(|o| (o.name_any(), o.resource_version())).collect();
        if have.keys().cloned().collect::<BTreeSet<_>>() == want && have == server {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "reflector store {have:?} never matched the server's {server:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_count(what: &str, counter: &AtomicUsize, at_least: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while counter.load(Ordering::SeqCst) < at_least {
        assert!(tokio::time::Instant::now() < deadline, "{what}: {} < {at_least} after 60 s", counter.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A raw watch from `rv` through kubectl, ending after two seconds.
fn raw_watch(s: &Server, rv: &str) -> String {
    let path = format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=2");
    let out = s.kubectl(&["get", "--raw", &path]);
    format!("{}{}", String::from_utf8_lossy(&out.stdout), common::stderr(&out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_old_resource_version_is_410_and_the_watcher_relists() {
    let s = tokio::task::block_in_place(Server::start);
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let first = api.create(&PostParams::default(), &tracked("a")).await.unwrap();
    let first_rv = first.resource_version().unwrap();
    api.create(&PostParams::default(), &tracked("b")).await.unwrap();

    // Within the history a watch replays what followed.
    let replay = tokio::task::block_in_place(|| raw_watch(&s, &first_rv));
    assert!(replay.contains(r#""type":"ADDED""#) && replay.contains(r#""name":"b""#), "{replay}");
    assert!(!replay.contains(r#""type":"ERROR""#), "{replay}");

    // The watcher only sees tracked objects and gets no bookmarks, so its
    // resourceVersion stays put while other configmaps change; the short
    // timeout makes it re-watch from that resourceVersion every second.
    let cfg = watcher::Config::default().labels(TRACKED).timeout(1).disable_bookmarks();
    let (store, inits, task) = start_reflector(api.clone(), cfg);
    converge(&store, &api, &["a", "b"]).await;
    wait_count("initial lists", &inits, 1).await;

    // Push `first_rv` (and the watcher's resourceVersion) out of the history.
    const WRITERS: usize = 8;
    let per_writer = HISTORY / WRITERS + 16;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("noise-{w}");
            let noise = ConfigMap { metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() }, ..Default::default() };
            api.create(&PostParams::default(), &noise).await.unwrap();
            for i in 0..per_writer {
                // A distinct value each time, so every patch is a real change.
                let patch = Patch::Merge(json!({"data": {"i": i.to_string()}}));
                api.patch(&name, &PatchParams::default(), &patch).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    let expired = tokio::task::block_in_place(|| raw_watch(&s, &first_rv));
    assert!(expired.contains(r#""type":"ERROR""#), "no ERROR event for a compacted resourceVersion: {expired}");
    assert!(expired.contains(r#""code":410"#), "{expired}");
    assert!(expired.contains("Expired"), "{expired}");
    let from_one = tokio::task::block_in_place(|| raw_watch(&s, "1"));
    assert!(from_one.contains(r#""code":410"#), "{from_one}");

    // The watcher's next re-watch hits the same 410 and relists.
    wait_count("relists after 410", &inits, 2).await;
    api.create(&PostParams::default(), &tracked("c")).await.unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    converge(&store, &api, &["b", "c"]).await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_matches_the_server_across_changes_and_a_restart() {
    let mut s = tokio::task::block_in_place(Server::start);
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    for n in ["a", "b", "c"] {
        api.create(&PostParams::default(), &tracked(n)).await.unwrap();
    }
    // An untracked configmap must never show up in the store.
    let other = ConfigMap { metadata: ObjectMeta { name: Some("untracked".into()), ..Default::default() }, ..Default::default() };
    api.create(&PostParams::default(), &other).await.unwrap();

    let (store, inits, task) = start_reflector(api.clone(), watcher::Config::default().labels(TRACKED));
    converge(&store, &api, &["a", "b", "c"]).await;

    api.delete("b", &DeleteParams::default()).await.unwrap();
    api.create(&PostParams::default(), &tracked("d")).await.unwrap();
    api.patch("a", &PatchParams::default(), &Patch::Merge(json!({"data": {"v": "2"}}))).await.unwrap();
    converge(&store, &api, &["a", "c", "d"]).await;

    // The restart drops the watch connection; the watcher must reconnect
    // (resuming or relisting) and pick up changes made afterwards.
    tokio::task::block_in_place(|| s.restart());
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    api.create(&PostParams::default(), &tracked("e")).await.unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    api.patch("c", &PatchParams::default(), &Patch::Merge(json!({"data": {"v": "3"}}))).await.unwrap();
    converge(&store, &api, &["c", "d", "e"]).await;
    assert!(inits.load(Ordering::SeqCst) >= 1);
    task.abort();
}
