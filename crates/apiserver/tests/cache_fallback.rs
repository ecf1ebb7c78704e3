//! A watch cache that falls behind the store (its store watch held back
//! here) still gives consistent reads: after the 3 s wait, lists and gets
//! are served by the store, as upstream falls back to etcd.

use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver::{ApiServer, User};
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use store::{KeyValue, RangeRequest, RangeResponse, Result, Revision, Store, WatchStream};
use tower::Service;

/// The real embedded store, whose watch streams wait while `held` is true.
struct Held {
    inner: Arc<dyn Store>,
    held: tokio::sync::watch::Sender<bool>,
}

impl Store for Held {
    fn current_revision(&self) -> BoxFuture<'_, Result<Revision>> {
        self.inner.current_revision()
    }
    fn compacted_revision(&self) -> BoxFuture<'_, Result<Revision>> {
        self.inner.compacted_revision()
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>>> {
        self.inner.get(key)
    }
    fn range(&self, req: RangeRequest) -> BoxFuture<'_, Result<RangeResponse>> {
        self.inner.range(req)
    }
    fn create(&self, key: String, value: Bytes) -> BoxFuture<'_, Result<KeyValue>> {
        self.inner.create(key, value)
    }
    fn update(&self, key: String, value: Bytes, expected: Revision) -> BoxFuture<'_, Result<KeyValue>> {
        self.inner.update(key, value, expected)
    }
    fn delete(&self, key: String, expected: Option<Revision>) -> BoxFuture<'_, Result<KeyValue>> {
        self.inner.delete(key, expected)
    }
    fn watch(&self, prefix: String, after: Revision) -> BoxFuture<'_, Result<WatchStream>> {
        let held = self.held.subscribe();
        Box::pin(async move {
            let s = self.inner.watch(prefix, after).await?;
            let s = s.then(move |ev| {
                let mut held = held.clone();
                async move {
                    let _ = held.wait_for(|h| !*h).await;
                    ev
                }
            });
            Ok(Box::pin(s) as WatchStream)
        })
    }
    fn compact(&self, revision: Revision) -> BoxFuture<'_, Result<()>> {
        self.inner.compact(revision)
    }
}

/// A server on the real embedded store, whose watch can be held back.
async fn held_server() -> (tempfile::TempDir, Arc<Held>, ApiServer) {
    let dir = tempfile::tempdir().unwrap();
    let inner = store::embedded::Embedded::open(&dir.path().join("state.redb")).unwrap();
    let (held, _) = tokio::sync::watch::channel(false);
    let st = Arc::new(Held { inner: inner as Arc<dyn Store>, held });
    let srv = ApiServer::new(st.clone() as Arc<dyn Store>, "127.0.0.1:1".into()).await.unwrap();
    (dir, st, srv)
}

async fn call(srv: &ApiServer, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut svc = srv.as_user(User::new("admin", &["system:masters"]));
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.map(|b| b.to_string()).unwrap_or_default())))
        .unwrap();
    let resp = svc.call(req).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn consistent_reads_fall_back_to_the_store_when_the_cache_lags() {
    let (_dir, st, srv) = held_server().await;
    let cm = |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}});
    let (code, _) = call(&srv, "POST", "/api/v1/namespaces/default/configmaps", Some(cm("before"))).await;
    assert_eq!(code, 201);
    // A consistent read: the cache has it before the watch is held.
    assert_eq!(call(&srv, "GET", "/api/v1/namespaces/default/configmaps/before", None).await.0, 200);

    st.held.send_replace(true);
    let (code, created) = call(&srv, "POST", "/api/v1/namespaces/default/configmaps", Some(cm("during"))).await;
    assert_eq!(code, 201);
    // Any cached state (resourceVersion=0) does not show it yet…
    let (_, cached) = call(&srv, "GET", "/api/v1/namespaces/default/configmaps?resourceVersion=0", None).await;
    assert_eq!(cached["items"].as_array().unwrap().len(), 1);
    // …a consistent list and get do, from the store, after the wait.
    let t = Instant::now();
    let (code, list) = call(&srv, "GET", "/api/v1/namespaces/default/configmaps", None).await;
    assert_eq!(code, 200, "{list}");
    let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["before", "during"]);
    assert!(list["metadata"]["resourceVersion"].as_str().unwrap().parse::<u64>().unwrap() >= created["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap());
    assert!(t.elapsed() >= Duration::from_secs(3));
    let (code, got) = call(&srv, "GET", "/api/v1/namespaces/default/configmaps/during", None).await;
    assert_eq!(code, 200, "{got}");
    assert_eq!(got["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"]);
    // A read at a revision the cache lacks still answers upstream's 504.
    let rv = created["metadata"]["resourceVersion"].as_str().unwrap();
    let (code, err) = call(&srv, "GET", &format!("/api/v1/namespaces/default/configmaps?resourceVersion={rv}"), None).await;
    assert_eq!(code, 504, "{err}");
    assert!(err["message"].as_str().unwrap().contains("Too large resource version"), "{err}");

    // Released, the cache catches up and serves it itself.
    st.held.send_replace(false);
    let (code, list) = call(&srv, "GET", &format!("/api/v1/namespaces/default/configmaps?resourceVersion={rv}"), None).await;
    assert_eq!((code, list["items"].as_array().map(Vec::len)), (200, Some(2)));
}

#[tokio::test]
async fn a_store_list_reads_in_chunks_and_keeps_every_match() {
    let (_dir, st, srv) = held_server().await;
    let cm = |name: String, pick: bool| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"pick": pick.to_string()}}, "data": {"k": "v"}})
    };
    // More objects than the store is read at a time (1,000).
    for i in 0..2100 {
        let (code, _) = call(&srv, "POST", "/api/v1/namespaces/default/configmaps", Some(cm(format!("cm-{i:04}"), i % 700 == 0))).await;
        assert_eq!(code, 201);
    }
    st.held.send_replace(true);
    assert_eq!(call(&srv, "POST", "/api/v1/namespaces/default/configmaps", Some(cm("late".into(), true))).await.0, 201);
    let names = |list: &Value| list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    let (code, picked) = call(&srv, "GET", "/api/v1/namespaces/default/configmaps?labelSelector=pick%3Dtrue", None).await;
    assert_eq!(code, 200, "{picked}");
    assert_eq!(names(&picked), ["cm-0000", "cm-0700", "cm-1400", "late"]);
    let (code, all) = call(&srv, "GET", "/api/v1/namespaces/default/configmaps", None).await;
    assert_eq!((code, all["items"].as_array().unwrap().len()), (200, 2101));
    assert!(all["metadata"].get("continue").is_none(), "{}", all["metadata"]);
    st.held.send_replace(false);
}

#[tokio::test]
async fn the_next_pages_of_a_list_come_from_its_snapshot_after_changes() {
    let dir = tempfile::tempdir().unwrap();
    let st = store::embedded::Embedded::open(&dir.path().join("state.redb")).unwrap() as Arc<dyn Store>;
    let srv = ApiServer::new(st.clone(), "127.0.0.1:1".into()).await.unwrap();
    let cm = |name: &str, v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": v}});
    for name in ["a", "b", "c", "d", "e"] {
        assert_eq!(call(&srv, "POST", "/api/v1/namespaces/default/configmaps", Some(cm(name, "old"))).await.0, 201);
    }
    let (code, first) = call(&srv, "GET", "/api/v1/namespaces/default/configmaps?limit=2", None).await;
    assert_eq!(code, 200, "{first}");
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    // The resource changes, and the store forgets the list's revision: only
    // the kept snapshot can still answer the next pages.
    assert_eq!(call(&srv, "PUT", "/api/v1/namespaces/default/configmaps/d", Some(cm("d", "new"))).await.0, 200);
    assert_eq!(call(&srv, "POST", "/api/v1/namespaces/default/configmaps", Some(cm("f", "new"))).await.0, 201);
    st.compact(st.current_revision().await.unwrap()).await.unwrap();
    let mut seen = vec![];
    let mut token = Some(token);
    while let Some(t) = token {
        let (code, page) = call(&srv, "GET", &format!("/api/v1/namespaces/default/configmaps?limit=2&continue={t}"), None).await;
        assert_eq!(code, 200, "{page}");
        assert_eq!(page["metadata"]["resourceVersion"], first["metadata"]["resourceVersion"]);
        for i in page["items"].as_array().unwrap() {
            seen.push(format!("{}={}", i["metadata"]["name"].as_str().unwrap(), i["data"]["k"].as_str().unwrap()));
        }
        token = page["metadata"]["continue"].as_str().map(str::to_string);
    }
    assert_eq!(seen, ["c=old", "d=old", "e=old"]);
}
