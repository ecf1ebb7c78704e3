//! DaemonSet (upstream's DaemonSetsController): one pod on every node its
//! template may run on (nodeSelector, required node affinity, taints it
//! tolerates), pinned there by node affinity on `metadata.name` and placed
//! by the scheduler as upstream does; pods of an old template are replaced
//! `maxUnavailable` at a time; the status counts scheduled, ready and
//! updated pods (what `kubectl rollout status` reads).

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, Toleration};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::Result;
use crate::informer::Subscription;
use crate::replicaset::{controller_ref, is_pod_ready, selector_string};

const HASH: &str = "controller-revision-hash";

struct Ctx {
    client: Client,
}

pub async fn run(client: Client, pods: Subscription) {
    let daemonsets: Api<DaemonSet> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let ctl = Controller::new(daemonsets, watcher::Config::default()).owns_shared_stream(pods.into_pods());
    let store = ctl.store();
    ctl
        // A node coming, going or changing can change every DaemonSet.
        .watches(nodes, watcher::Config::default(), move |_| store.state().iter().map(|d| ObjectRef::from_obj(d.as_ref())).collect::<Vec<_>>())
        .run(
            reconcile,
            |_, e, _| {
                tracing::warn!("daemonset: {e}");
                Action::requeue(Duration::from_secs(1))
            },
            Arc::new(Ctx { client }),
        )
        .for_each(|_| async {})
        .await;
}

fn template_hash(d: &DaemonSet) -> String {
    let mut h = DefaultHasher::new();
    serde_json::to_string(&d.spec.template).unwrap_or_default().hash(&mut h);
    format!("{:x}", h.finish() & 0xffff_ffff)
}

fn tolerates(tolerations: &[Toleration], key: &str, value: &str, effect: &str) -> bool {
    tolerations.iter().any(|t| {
        t.effect.as_deref().is_none_or(|e| e.is_empty() || e == effect)
            && t.key.as_deref().is_none_or(|k| k.is_empty() || k == key)
            && (t.operator.as_deref() == Some("Exists") || t.value.as_deref().unwrap_or("") == value)
    })
}

/// Whether the template may run on `node` (selector, affinity, taints).
fn eligible(spec: &k8s_openapi::api::core::v1::PodSpec, node: &Node) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    if spec.node_selector.iter().flatten().any(|(k, v)| labels.get(k) != Some(v)) {
        return false;
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or(&[]);
    taints.iter().all(|t| t.effect == "PreferNoSchedule" || tolerates(tolerations, &t.key, t.value.as_deref().unwrap_or(""), &t.effect))
}

/// The tolerations upstream adds to every daemon pod, so node conditions do
/// not evict or block it.
fn daemon_tolerations(spec: &mut k8s_openapi::api::core::v1::PodSpec) {
    let t = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect) in [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ] {
        if !t.iter().any(|x| x.key.as_deref() == Some(key) && x.effect.as_deref() == Some(effect)) {
            t.push(Toleration { key: Some(key.into()), operator: Some("Exists".into()), effect: Some(effect.into()), ..Default::default() });
        }
    }
}

fn target_node(p: &Pod) -> Option<String> {
    if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()) {
        return Some(n);
    }
    let terms = &p
        .spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().flat_map(|t| t.match_fields.iter().flatten()).find(|f| f.key == "metadata.name").and_then(|f| f.values.as_ref()?.first().cloned())
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Ctx>) -> Result<Action> {
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = ds.namespace().unwrap_or_default();
    let uid = ds.uid().unwrap_or_default();
    let spec = ds.spec.clone();
    let hash = template_hash(&ds);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let owned: Vec<Pod> = pods
        .list(&ListParams::default().labels(&selector_string(&spec.selector)))
        .await?
        .items
        .into_iter()
        .filter(|p| p.owner_references().iter().any(|o| o.uid == uid && o.controller == Some(true)) && p.metadata.deletion_timestamp.is_none())
        .collect();
    let nodes: Vec<Node> = Api::<Node>::all(ctx.client.clone()).list(&ListParams::default()).await?.items;
    let template_spec = spec.template.spec.clone().unwrap_or_default();
    let wanted: Vec<&Node> = nodes.iter().filter(|n| eligible(&template_spec, n)).collect();
    let wanted_names: std::collections::HashSet<&str> = wanted.iter().filter_map(|n| n.metadata.name.as_deref()).collect();
    let mut by_node: HashMap<String, Vec<&Pod>> = HashMap::new();
    for p in &owned {
        if let Some(n) = target_node(p) {
            by_node.entry(n).or_default().push(p);
        }
    }
    // Pods on nodes that no longer want them, and duplicates, go.
    for (node, ps) in &by_node {
        let keep = if wanted_names.contains(&**node) { 1 } else { 0 };
        for p in ps.iter().skip(keep) {
            let _ = pods.delete(&p.name_any(), &DeleteParams::background()).await;
        }
    }
    // Old-template pods are replaced, maxUnavailable at a time.
    let max_unavailable = match spec.update_strategy.as_ref().and_then(|s| s.rolling_update.as_ref()).and_then(|r| r.max_unavailable.as_ref()) {
        Some(IntOrString::Int(n)) => n.max(&1).to_owned() as usize,
        Some(IntOrString::String(p)) => {
            ((p.trim_end_matches('%').parse::<f64>().unwrap_or(0.0) * wanted.len() as f64 / 100.0).ceil() as usize).max(1)
        }
        None => 1,
    };
    let on_delete = spec.update_strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("OnDelete");
    let unavailable = owned.iter().filter(|p| !is_pod_ready(p)).count();
    let mut budget = max_unavailable.saturating_sub(unavailable);
    for n in &wanted {
        let current = by_node.get(&n.name_any()).and_then(|ps| ps.first());
        let stale = current.is_some_and(|p| p.labels().get(HASH) != Some(&hash));
        if stale && !on_delete && budget > 0 {
            let _ = pods.delete(&current.unwrap().name_any(), &DeleteParams::background()).await;
            budget -= 1;
            continue;
        }
        if current.is_none() {
            let mut meta = spec.template.metadata.clone().unwrap_or_default();
            meta.generate_name = Some(format!("{}-", ds.name_any()));
            meta.namespace = Some(ns.clone());
            meta.owner_references = Some(vec![controller_ref(ds.as_ref())]);
            meta.labels.get_or_insert_with(Default::default).insert(HASH.into(), hash.clone());
            let mut pspec = template_spec.clone();
            daemon_tolerations(&mut pspec);
            let req = NodeSelectorRequirement { key: "metadata.name".into(), operator: "In".into(), values: Some(vec![n.name_any()]) };
            let affinity = pspec.affinity.get_or_insert_with(Affinity::default);
            affinity.node_affinity = Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm { match_fields: Some(vec![req]), ..Default::default() }],
                }),
                ..Default::default()
            });
            pods.create(&PostParams::default(), &Pod { metadata: meta, spec: Some(pspec), status: None }).await?;
        }
    }
    let on_wanted: Vec<&Pod> = owned.iter().filter(|p| target_node(p).is_some_and(|n| wanted_names.contains(&*n))).collect();
    let scheduled = on_wanted.iter().filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()).count() as i32;
    let ready = on_wanted.iter().filter(|p| is_pod_ready(p)).count() as i32;
    let updated = on_wanted.iter().filter(|p| p.labels().get(HASH) == Some(&hash)).count() as i32;
    let status = DaemonSetStatus {
        desired_number_scheduled: wanted.len() as i32,
        current_number_scheduled: scheduled,
        number_misscheduled: 0,
        number_ready: ready,
        number_available: Some(ready),
        number_unavailable: Some((wanted.len() as i32 - ready).max(0)),
        updated_number_scheduled: Some(updated),
        observed_generation: ds.metadata.generation,
        ..Default::default()
    };
    if ds.status.as_ref() != Some(&status) {
        let dss: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
        dss.patch_status(&ds.name_any(), &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await?;
    }
    Ok(Action::await_change())
}
