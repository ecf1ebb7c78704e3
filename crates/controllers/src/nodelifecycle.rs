//! Node lifecycle (upstream's NodeLifecycleController): a node whose Lease
//! in `kube-node-lease` has not been renewed within the grace period
//! (upstream's `node-monitor-grace-period`, 40 s) is marked not ready
//! (`Ready=Unknown`, `NodeStatusUnknown`) and tainted
//! `node.kubernetes.io/unreachable` (NoSchedule and NoExecute); its pods
//! that do not tolerate NoExecute are evicted. A renewed lease lifts both.
//!
//! When most nodes go silent together (at least 55% of more than two, upstream's
//! unhealthy-zone threshold), the fault is more likely the control plane's
//! or the network's than theirs: as upstream in full disruption, the nodes
//! are still marked and kept from new pods (`NoSchedule`), but no
//! `NoExecute` taint is added and no pod is evicted until that passes.
//!
//! The pods of a node come from the shared pod informer, indexed by node
//! here: when thousands of nodes go silent at once (the server stalled, not
//! the nodes), a list per node would each have scanned every pod.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::informer::Subscription;
use crate::{Result, now};

const GRACE: Duration = Duration::from_secs(40);
const DISRUPTION_RECHECK: Duration = Duration::from_secs(2);
const LEASES: &str = "kube-node-lease";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    leases: Store<Lease>,
    nodes: Store<Node>,
    /// Whether most nodes are silent, and when that was last worked out.
    disrupted: Mutex<(std::time::Instant, bool)>,
    by_node: Arc<Mutex<HashMap<String, HashSet<ObjectRef<Pod>>>>>,
}

pub async fn run(client: Client, pods: Subscription) {
    let store = pods.store.clone();
    let by_node: Arc<Mutex<HashMap<String, HashSet<ObjectRef<Pod>>>>> = Default::default();
    let index = by_node.clone();
    tokio::spawn(pods.into_changes().for_each(move |c| {
        // A pod's node never changes once set, so a pod is only ever added
        // to one node's set, and leaves it when deleted.
        if let Some(node) = c.pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty()) {
            let r = ObjectRef::new(&c.pod.name_any()).within(&c.pod.namespace().unwrap_or_default());
            let mut index = index.lock().unwrap();
            if c.deleted {
                if let Some(set) = index.get_mut(node) {
                    set.remove(&r);
                    if set.is_empty() {
                        index.remove(node);
                    }
                }
            } else {
                index.entry(node.to_string()).or_default().insert(r);
            }
        }
        async {}
    }));
    let nodes: Api<Node> = Api::all(client.clone());
    // Leases are read from a reflector: every renewal triggers a look, and
    // thousands of nodes renew every 10 s.
    let (leases, writer) = reflector::store();
    let renewals = watcher(Api::<Lease>::namespaced(client.clone(), LEASES), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    let controller = Controller::new(nodes, watcher::Config::default());
    let ctx = Ctx {
        client,
        pods: store,
        leases,
        nodes: controller.store(),
        disrupted: Mutex::new((std::time::Instant::now() - DISRUPTION_RECHECK, false)),
        by_node,
    };
    controller
        .watches_stream(renewals, |l| Some(ObjectRef::new(&l.name_any())))
        .run(
            reconcile,
            |_, e, _| {
                tracing::warn!("node lifecycle: {e}");
                Action::requeue(Duration::from_secs(5))
            },
            Arc::new(ctx),
        )
        .for_each(|_| async {})
        .await;
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action> {
    let name = node.name_any();
    // Until the leases are listed, every node would look silent.
    ctx.leases.wait_until_ready().await.map_err(|e| crate::Error::Other(e.to_string()))?;
    let silent = ctx.silent_for(&node);
    let stale = silent >= GRACE.as_secs();
    let taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let has = |effect: &str| taints.iter().any(|t| t.key == UNREACHABLE && t.effect == effect);
    let tainted = has("NoSchedule") || has("NoExecute");
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    if stale {
        if !tainted {
            // As upstream: the conditions go Unknown first, then the taints follow.
            let conds: Vec<serde_json::Value> = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|c| {
                    json!({"type": c.type_, "status": "Unknown", "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status.",
                           "lastHeartbeatTime": c.last_heartbeat_time, "lastTransitionTime": now()})
                })
                .collect();
            let conds = if conds.is_empty() {
                vec![
                    json!({"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown", "message": "Kubelet never posted node status.", "lastTransitionTime": now()}),
                ]
            } else {
                conds
            };
            nodes.patch_status(&name, &PatchParams::default(), &Patch::Strategic(json!({"status": {"conditions": conds}}))).await?;
        }
        let disrupted = ctx.disrupted();
        let effects: &[&str] = if disrupted { &["NoSchedule"] } else { &["NoSchedule", "NoExecute"] };
        let missing: Vec<&str> = effects.iter().copied().filter(|e| !has(e)).collect();
        if !missing.is_empty() {
            let mut new_taints: Vec<Taint> = taints.clone();
            for effect in missing {
                new_taints.push(Taint { key: UNREACHABLE.into(), effect: effect.into(), time_added: Some(now()), value: None });
            }
            nodes.patch(&name, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"taints": new_taints}}))).await?;
        }
        if !disrupted {
            // Again at each look, for pods the index had not seen yet.
            evict(&ctx, &name).await?;
        }
    } else if tainted {
        let kept: Vec<&Taint> = taints.iter().filter(|t| t.key != UNREACHABLE).collect();
        nodes.patch(&name, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"taints": kept}}))).await?;
    }
    // Look again when the grace period of the last heartbeat runs out.
    let left = GRACE.as_secs().saturating_sub(silent).max(1);
    Ok(Action::requeue(Duration::from_secs(if stale { 30 } else { left })))
}

impl Ctx {
    /// Seconds since the node was last heard from: its lease, or else its creation.
    fn silent_for(&self, node: &Node) -> u64 {
        let lease = self.leases.get(&ObjectRef::new(&node.name_any()).within(LEASES));
        let renewed = lease.and_then(|l| l.spec.as_ref()?.renew_time.clone()).map(|t| t.0);
        let heartbeat = renewed.or_else(|| node.metadata.creation_timestamp.as_ref().map(|t| t.0)).unwrap_or_else(Timestamp::now);
        Timestamp::now().duration_since(heartbeat).as_secs() as u64
    }

    /// Whether most nodes are silent (worked out at most every few seconds).
    fn disrupted(&self) -> bool {
        let mut d = self.disrupted.lock().unwrap();
        if d.0.elapsed() >= DISRUPTION_RECHECK {
            let all = self.nodes.state();
            // Nodes silent for three missed renewals count as going with the
            // rest: those that stopped a few seconds after the first must not
            // let it be evicted before the outage shows.
            let silent = all.iter().filter(|n| self.silent_for(n) >= GRACE.as_secs() - 10).count();
            let now = all.len() > 2 && silent * 100 >= all.len() * 55;
            if now != d.1 {
                if now {
                    tracing::warn!(silent, nodes = all.len(), "most nodes are silent: no NoExecute taints or evictions until they are back");
                } else {
                    tracing::info!(silent, nodes = all.len(), "most nodes are back: evictions resume");
                }
            }
            *d = (std::time::Instant::now(), now);
        }
        d.1
    }
}

/// Deletes the node's pods that do not tolerate the unreachable NoExecute taint.
async fn evict(ctx: &Ctx, node: &str) -> Result<()> {
    let refs: Vec<ObjectRef<Pod>> = ctx.by_node.lock().unwrap().get(node).map(|s| s.iter().cloned().collect()).unwrap_or_default();
    for p in refs.iter().filter_map(|r| ctx.pods.get(r)) {
        let tolerated = p.spec.as_ref().and_then(|s| s.tolerations.as_ref()).is_some_and(|ts| {
            ts.iter().any(|t| {
                (t.key.as_deref() == Some(UNREACHABLE) || (t.key.is_none() && t.operator.as_deref() == Some("Exists")))
                    && t.effect.as_deref().is_none_or(|e| e == "NoExecute")
                    && t.toleration_seconds.is_none()
            })
        });
        if !tolerated && p.metadata.deletion_timestamp.is_none() {
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &p.namespace().unwrap_or_default());
            let _ = api.delete(&p.name_any(), &DeleteParams::background()).await;
        }
    }
    Ok(())
}
