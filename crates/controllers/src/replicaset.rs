//! ReplicaSet: keeps `spec.replicas` pods matching the selector, created
//! from the template and owned by the ReplicaSet (upstream's
//! ReplicaSetController): orphans that match are adopted, surplus pods are
//! deleted (unscheduled, then pending, then not-ready, then newest first),
//! and the status counts what exists.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;

use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::informer::{Change, Subscription};
use crate::{Error, Result};

/// Upstream's `ExpectationsTimeout`.
const EXPECTATION_TTL: Duration = Duration::from_secs(300);
/// Upstream's `burstReplicas`: at most this many creations per pass.
const BURST: usize = 500;

struct Ctx {
    client: Client,
    /// Every pod, kept by one watch: reconciles read it instead of listing.
    pods: Store<Pod>,
    /// Upstream's expectations: pods this controller created or deleted that
    /// the store does not show yet, per ReplicaSet uid. While any is
    /// outstanding the ReplicaSet waits, so a lagging store never causes
    /// double creation.
    /// An expectation older than `EXPECTATION_TTL` is dropped (the pod may
    /// have come and gone unseen), as upstream's expire.
    expected: Arc<Expected>,
}

type Expected = std::sync::Mutex<HashMap<String, (std::time::Instant, HashSet<String>)>>;

impl Ctx {
    /// Records pods the ReplicaSet `uid` just created (by name) or deleted
    /// (`-name`), to be waited for until the watch shows them.
    fn expect(&self, uid: &str, names: impl IntoIterator<Item = String>) {
        let mut expected = self.expected.lock().unwrap();
        let e = expected.entry(uid.to_string()).or_insert_with(|| (std::time::Instant::now(), HashSet::new()));
        e.0 = std::time::Instant::now();
        e.1.extend(names);
    }
}

/// Marks pods as seen by the watch, as upstream's informer handlers do: a
/// pod created and deleted between two looks at the store still counts.
fn observe(expected: &Expected, c: &Change) {
    let (pod, gone) = (&c.pod, c.deleted || c.pod.metadata.deletion_timestamp.is_some());
    let Some(owner) = pod.owner_references().iter().find(|o| o.controller == Some(true)).map(|o| o.uid.clone()) else { return };
    if let Some((_, names)) = expected.lock().unwrap().get_mut(&owner) {
        let name = pod.name_any();
        if gone {
            names.remove(&format!("-{name}"));
        }
        names.remove(&name);
    }
}

pub async fn run(client: Client, pods: Subscription) {
    let rs: Api<ReplicaSet> = Api::all(client.clone());
    let expected: Arc<Expected> = Default::default();
    let seen = expected.clone();
    let store = pods.store.clone();
    // The shared pod watch fills the store before it hands on a change, so
    // a reconcile never reads a store older than its trigger; expectations
    // are met on the way.
    let changes = pods.into_changes().map(move |c| {
        observe(&seen, &c);
        c.pod
    });
    Controller::new(rs, watcher::Config::default())
        .owns_shared_stream(changes)
        .run(
            reconcile,
            |_, e, _| {
                tracing::warn!("replicaset: {e}");
                Action::requeue(Duration::from_secs(1))
            },
            Arc::new(Ctx { client, pods: store, expected }),
        )
        .for_each(|_| async {})
        .await;
}

/// A label selector as list options understand it ("a=b,c in (d)").
pub fn selector_string(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = sel.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// Whether a label selector selects the pod's labels.
fn selects(sel: &LabelSelector, p: &Pod) -> bool {
    let empty = Default::default();
    let labels = p.metadata.labels.as_ref().unwrap_or(&empty);
    sel.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v))
        && sel.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or(&[]);
            let v = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => v.is_some_and(|v| values.contains(v)),
                "NotIn" => v.is_none_or(|v| !values.contains(v)),
                "Exists" => v.is_some(),
                _ => v.is_none(),
            }
        })
}

pub fn is_pod_ready(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn is_active(p: &Pod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
    p.metadata.deletion_timestamp.is_none() && phase != "Succeeded" && phase != "Failed"
}

/// An owner reference making `owner` the controller of what carries it.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).to_string(),
        kind: K::kind(&()).to_string(),
        name: owner.name_any(),
        uid: owner.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|o| o.controller == Some(true) && o.uid == uid)
}

fn has_controller(meta: &ObjectMeta) -> bool {
    meta.owner_references.iter().flatten().any(|o| o.controller == Some(true))
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action> {
    if rs.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = rs.namespace().unwrap_or_default();
    let uid = rs.uid().unwrap_or_default();
    let spec = rs.spec.clone();
    let selector = selector_string(&spec.selector);
    if selector.is_empty() {
        return Ok(Action::await_change());
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    // An empty store at start-up is not "no pods": wait for the first list.
    let _ = ctx.pods.wait_until_ready().await;
    // Candidates: this namespace's pods the selector matches.
    let matching: Vec<Arc<Pod>> =
        ctx.pods.state().into_iter().filter(|p| p.namespace().as_deref() == Some(ns.as_str()) && selects(&spec.selector, p)).collect();
    // Outstanding creations (not yet seen) and deletions (still seen, not terminating).
    {
        let mut expected = ctx.expected.lock().unwrap();
        if let Some((since, names)) = expected.get_mut(&uid) {
            if since.elapsed() > EXPECTATION_TTL {
                names.clear();
            }
            // Seen pods by name (terminating or not): one pass, not one per expectation.
            let seen: HashMap<&str, bool> =
                matching.iter().filter_map(|p| Some((p.metadata.name.as_deref()?, p.metadata.deletion_timestamp.is_some()))).collect();
            names.retain(|n| match n.strip_prefix('-') {
                Some(gone) => seen.get(gone) == Some(&false),
                None => !seen.contains_key(n.as_str()),
            });
            if !names.is_empty() {
                return Ok(Action::requeue(Duration::from_secs(1)));
            }
            expected.remove(&uid);
        }
    }
    let mut owned = Vec::new();
    for p in matching {
        if controlled_by(&p.metadata, &uid) {
            owned.push(p);
        } else if !has_controller(&p.metadata) && p.metadata.deletion_timestamp.is_none() {
            // Adopt an orphan that matches the selector.
            let refs = vec![controller_ref(rs.as_ref())];
            let patch = json!({"metadata": {"ownerReferences": refs, "uid": p.uid()}});
            if let Ok(p) = pods.patch(&p.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
                owned.push(Arc::new(p));
            }
        }
    }
    let active: Vec<&Pod> = owned.iter().map(|p| &**p).filter(|p| is_active(p)).collect();
    let want = spec.replicas.unwrap_or(1).max(0) as usize;
    if active.len() < want {
        let template = spec.template.clone().unwrap_or_default();
        let mut meta = template.metadata.unwrap_or_default();
        meta.generate_name = Some(format!("{}-", rs.name_any()));
        meta.namespace = Some(ns.clone());
        meta.owner_references = Some(vec![controller_ref(rs.as_ref())]);
        let pod = Pod { metadata: meta, spec: template.spec, status: None };
        // Upstream's slow start: batches of 1, 2, 4, … (at most BURST in a
        // pass), stopping at the first batch with a failure, so a quota or a
        // broken template costs one request, not thousands.
        let pp = PostParams::default();
        let mut left = (want - active.len()).min(BURST);
        let mut batch = 1;
        let mut created = HashSet::new();
        let mut failed = None;
        while left > 0 && failed.is_none() {
            let n = batch.min(left);
            let results: Vec<kube::Result<Pod>> = futures::stream::iter(0..n).map(|_| pods.create(&pp, &pod)).buffer_unordered(32).collect().await;
            for r in results {
                match r {
                    Ok(p) => {
                        created.insert(p.name_any());
                    }
                    Err(e) => failed = Some(e),
                }
            }
            left -= n;
            batch *= 2;
        }
        ctx.expect(&uid, created);
        if let Some(e) = failed {
            return Err(Error::Kube(e));
        }
    } else if active.len() > want {
        let mut victims = active.clone();
        // Upstream's order: unscheduled, pending, not ready, then the newest.
        victims.sort_by_key(|p| {
            let scheduled = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
            let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            let created = p
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| std::cmp::Reverse(t.0))
                .unwrap_or(std::cmp::Reverse(k8s_openapi::jiff::Timestamp::MAX));
            (scheduled, running, is_pod_ready(p), created)
        });
        for p in victims.iter().take(active.len() - want) {
            match pods.delete(&p.name_any(), &DeleteParams::default()).await {
                Ok(_) => ctx.expect(&uid, [format!("-{}", p.name_any())]),
                Err(kube::Error::Api(_)) => {}
                Err(e) => return Err(Error::Kube(e)),
            }
        }
    }
    let active: Vec<&Pod> = owned.iter().map(|p| &**p).filter(|p| is_active(p)).collect();
    let ready = active.iter().filter(|p| is_pod_ready(p)).count() as i32;
    let status = ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(active.len() as i32),
        ready_replicas: Some(ready),
        available_replicas: Some(ready),
        observed_generation: rs.metadata.generation,
        ..Default::default()
    };
    if rs.status.as_ref() != Some(&status) {
        let rss: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
        rss.patch_status(&rs.name_any(), &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await?;
    }
    Ok(Action::await_change())
}
