//! ReplicaSet: keeps `spec.replicas` pods matching the selector, created
//! from the template and owned by the ReplicaSet (upstream's
//! ReplicaSetController): orphans that match are adopted, surplus pods are
//! deleted (unscheduled, then pending, then not-ready, then newest first),
//! and the status counts what exists.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::{Error, Result};

struct Ctx {
    client: Client,
}

pub async fn run(client: Client) {
    let rs: Api<ReplicaSet> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    Controller::new(rs, watcher::Config::default())
        .owns(pods, watcher::Config::default())
        .run(reconcile, |_, e, _| {
            tracing::warn!("replicaset: {e}");
            Action::requeue(Duration::from_secs(1))
        }, Arc::new(Ctx { client }))
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
    let mut owned = Vec::new();
    for p in pods.list(&ListParams::default().labels(&selector)).await? {
        if controlled_by(&p.metadata, &uid) {
            owned.push(p);
        } else if !has_controller(&p.metadata) && p.metadata.deletion_timestamp.is_none() {
            // Adopt an orphan that matches the selector.
            let refs = vec![controller_ref(rs.as_ref())];
            let patch = json!({"metadata": {"ownerReferences": refs, "uid": p.uid()}});
            if let Ok(p) = pods.patch(&p.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
                owned.push(p);
            }
        }
    }
    let active: Vec<&Pod> = owned.iter().filter(|p| is_active(p)).collect();
    let want = spec.replicas.unwrap_or(1).max(0) as usize;
    if active.len() < want {
        let template = spec.template.clone().unwrap_or_default();
        let mut meta = template.metadata.unwrap_or_default();
        meta.generate_name = Some(format!("{}-", rs.name_any()));
        meta.namespace = Some(ns.clone());
        meta.owner_references = Some(vec![controller_ref(rs.as_ref())]);
        let pod = Pod { metadata: meta, spec: template.spec, status: None };
        for _ in active.len()..want {
            pods.create(&PostParams::default(), &pod).await?;
        }
    } else if active.len() > want {
        let mut victims = active.clone();
        // Upstream's order: unscheduled, pending, not ready, then the newest.
        victims.sort_by_key(|p| {
            let scheduled = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
            let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            let created = p.metadata.creation_timestamp.as_ref().map(|t| std::cmp::Reverse(t.0)).unwrap_or(std::cmp::Reverse(k8s_openapi::jiff::Timestamp::MAX));
            (scheduled, running, is_pod_ready(p), created)
        });
        for p in victims.iter().take(active.len() - want) {
            match pods.delete(&p.name_any(), &DeleteParams::default()).await {
                Ok(_) | Err(kube::Error::Api(_)) => {}
                Err(e) => return Err(Error::Kube(e)),
            }
        }
    }
    let active: Vec<&Pod> = owned.iter().filter(|p| is_active(p)).collect();
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
