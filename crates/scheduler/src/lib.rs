//! The scheduler: binds each pending pod (`schedulerName: default-scheduler`,
//! no `spec.nodeName`) to a node through `pods/binding`, as upstream's
//! kube-scheduler does. Filter: the node is Ready and schedulable, its
//! taints are tolerated, its labels satisfy the pod's nodeSelector and
//! required node affinity, and its allocatable CPU, memory and pod count
//! hold the pod's requests beside what is already bound there. Score: the
//! least requested node wins, spreading load. A pod no node fits gets the
//! `PodScheduled=False` condition with upstream's `Unschedulable` reason and
//! a FailedScheduling event, and is tried again.
//!
//! Sees the cluster only through the Kubernetes API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod, Toleration};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

/// Requests in milli-CPU and bytes.
#[derive(Clone, Copy, Default, Debug, PartialEq)]
struct Requests {
    cpu: i64,
    memory: i64,
}

/// A quantity in canonical form as milli-units (cpu) or units (memory).
fn quantity(q: &str, milli: bool) -> i64 {
    let (num, suffix) = q.split_at(q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len()));
    let n: f64 = num.parse().unwrap_or(0.0);
    let mult = match suffix {
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        _ => 1.0,
    };
    (n * mult * if milli { 1000.0 } else { 1.0 }).round() as i64
}

fn pod_requests(p: &Pod) -> Requests {
    let mut r = Requests::default();
    for c in p.spec.iter().flat_map(|s| s.containers.iter()) {
        let req = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        r.cpu += req.and_then(|m| m.get("cpu")).map(|q| quantity(&q.0, true)).unwrap_or(0);
        r.memory += req.and_then(|m| m.get("memory")).map(|q| quantity(&q.0, false)).unwrap_or(0);
    }
    r
}

fn tolerates(tolerations: &[Toleration], key: &str, value: &str, effect: &str) -> bool {
    tolerations.iter().any(|t| {
        let effect_ok = t.effect.as_deref().is_none_or(|e| e.is_empty() || e == effect);
        let key_ok = t.key.as_deref().is_none_or(|k| k.is_empty() || k == key);
        let op_exists = t.operator.as_deref() == Some("Exists");
        effect_ok && key_ok && (op_exists || t.value.as_deref().unwrap_or("") == value)
    })
}

fn matches_expression(labels: &std::collections::BTreeMap<String, String>, key: &str, op: &str, values: &[String]) -> bool {
    let v = labels.get(key);
    match op {
        "In" => v.is_some_and(|v| values.contains(v)),
        "NotIn" => v.is_none_or(|v| !values.contains(v)),
        "Exists" => v.is_some(),
        "DoesNotExist" => v.is_none(),
        "Gt" | "Lt" => {
            let (Some(a), Some(b)) = (v.and_then(|v| v.parse::<i64>().ok()), values.first().and_then(|v| v.parse::<i64>().ok())) else {
                return false;
            };
            if op == "Gt" { a > b } else { a < b }
        }
        _ => false,
    }
}

/// A node's allocatable resources, parsed once per node version.
#[derive(Clone, Copy, Debug)]
struct Alloc {
    cpu: Option<i64>,
    memory: Option<i64>,
    pods: Option<i64>,
}

fn allocatable(node: &Node) -> Alloc {
    let alloc = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
    let cap = |k: &str, milli: bool| alloc.and_then(|a| a.get(k)).map(|q| quantity(&q.0, milli));
    Alloc { cpu: cap("cpu", true), memory: cap("memory", false), pods: cap("pods", false) }
}

/// Why a node does not fit a pod, in upstream's words (None: it fits).
fn misfit(pod: &Pod, want: Requests, node: &Node, alloc: Alloc, used: Requests, pods_on_node: usize) -> Option<&'static str> {
    let empty_spec = Default::default();
    let spec: &k8s_openapi::api::core::v1::PodSpec = pod.spec.as_ref().unwrap_or(&empty_spec);
    let empty_nspec = Default::default();
    let nspec: &k8s_openapi::api::core::v1::NodeSpec = node.spec.as_ref().unwrap_or(&empty_nspec);
    let empty_labels = Default::default();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty_labels);
    let ready = node.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
    if nspec.unschedulable == Some(true) && !tolerates(tolerations, "node.kubernetes.io/unschedulable", "", "NoSchedule") {
        return Some("node(s) were unschedulable");
    }
    if !ready && !tolerates(tolerations, "node.kubernetes.io/not-ready", "", "NoSchedule") {
        return Some("node(s) had untolerated taint {node.kubernetes.io/not-ready: }");
    }
    for t in nspec.taints.iter().flatten() {
        if (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerates(tolerations, &t.key, t.value.as_deref().unwrap_or(""), &t.effect) {
            return Some("node(s) had untolerated taint(s)");
        }
    }
    if spec.node_selector.iter().flatten().any(|(k, v)| labels.get(k) != Some(v)) {
        return Some("node(s) didn't match Pod's node affinity/selector");
    }
    let required =
        spec.affinity.as_ref().and_then(|a| a.node_affinity.as_ref()).and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref());
    if let Some(req) = required {
        // A term matches when its label expressions and its field expressions
        // (only `metadata.name` exists, as upstream) all hold.
        let name = node.metadata.name.clone().unwrap_or_default();
        let fields: std::collections::BTreeMap<String, String> = [("metadata.name".to_string(), name)].into();
        let any_term = req.node_selector_terms.iter().any(|term| {
            term.match_expressions.iter().flatten().all(|e| matches_expression(labels, &e.key, &e.operator, e.values.as_deref().unwrap_or(&[])))
                && term.match_fields.iter().flatten().all(|e| matches_expression(&fields, &e.key, &e.operator, e.values.as_deref().unwrap_or(&[])))
        });
        if !any_term {
            return Some("node(s) didn't match Pod's node affinity/selector");
        }
    }
    if alloc.pods.is_some_and(|max| pods_on_node as i64 >= max) {
        return Some("Too many pods");
    }
    if alloc.cpu.is_some_and(|c| used.cpu + want.cpu > c) {
        return Some("Insufficient cpu");
    }
    if alloc.memory.is_some_and(|m| used.memory + want.memory > m) {
        return Some("Insufficient memory");
    }
    None
}

struct Ctx {
    client: Client,
    nodes: Store<Node>,
    pods: Store<Pod>,
    /// Pods bound by this scheduler that the pod store may not show yet.
    /// Entries of pods deleted before the store showed them bound expire.
    assumed: Mutex<HashMap<String, (String, Requests, std::time::Instant)>>,
    /// Round-robin offset among equally good nodes.
    turn: Mutex<usize>,
    /// Parsed requests per pod uid and allocatable per node version.
    requests: Mutex<HashMap<String, Requests>>,
    allocs: Mutex<HashMap<(String, String), Alloc>>,
}

pub async fn run(client: Client) {
    let (nodes, node_writer) = reflector::store();
    let (pods, pod_writer) = reflector::store();
    let node_api: Api<Node> = Api::all(client.clone());
    let pod_api: Api<Pod> = Api::all(client.clone());
    tokio::spawn(watcher(node_api, watcher::Config::default()).default_backoff().reflect(node_writer).applied_objects().for_each(|_| async {}));
    tokio::spawn(watcher(pod_api.clone(), watcher::Config::default()).default_backoff().reflect(pod_writer).applied_objects().for_each(|_| async {}));
    let ctx = Arc::new(Ctx {
        client,
        nodes: nodes.clone(),
        pods: pods.clone(),
        assumed: Mutex::new(HashMap::new()),
        turn: Mutex::new(0),
        requests: Default::default(),
        allocs: Default::default(),
    });
    let _ = nodes.wait_until_ready().await;
    let _ = pods.wait_until_ready().await;
    Controller::new(pod_api, watcher::Config::default().fields("spec.nodeName="))
        .run(
            schedule,
            |_, e, _| {
                tracing::warn!("scheduler: {e}");
                Action::requeue(Duration::from_secs(1))
            },
            ctx,
        )
        .for_each(|_| async {})
        .await;
}

async fn schedule(pod: Arc<Pod>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    let spec = pod.spec.clone().unwrap_or_default();
    let scheduler = spec.scheduler_name.as_deref().unwrap_or("default-scheduler");
    if spec.node_name.as_deref().is_some_and(|n| !n.is_empty()) || scheduler != "default-scheduler" || pod.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let uid = pod.uid().unwrap_or_default();
    // Usage per node: bound pods from the store, plus pods this scheduler
    // assumed that the store does not show bound yet.
    let chosen = {
        let mut assumed = ctx.assumed.lock().unwrap();
        let mut requests = ctx.requests.lock().unwrap();
        let mut used: HashMap<String, (Requests, usize)> = HashMap::new();
        for p in ctx.pods.state() {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
            let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()) else { continue };
            assumed.remove(&p.uid().unwrap_or_default());
            if phase == "Succeeded" || phase == "Failed" {
                continue;
            }
            let e = used.entry(n).or_default();
            let r = *requests.entry(p.uid().unwrap_or_default()).or_insert_with(|| pod_requests(&p));
            e.0.cpu += r.cpu;
            e.0.memory += r.memory;
            e.1 += 1;
        }
        // Forget requests of pods that are gone.
        let live = ctx.pods.state();
        if requests.len() > live.len() * 2 + 64 {
            let uids: std::collections::HashSet<String> = live.iter().filter_map(|p| p.uid()).collect();
            requests.retain(|u, _| uids.contains(u));
        }
        if !assumed.is_empty() {
            // A pod bound and deleted before the store saw it bound would
            // otherwise hold its node's capacity forever.
            let uids: std::collections::HashSet<String> = live.iter().filter_map(|p| p.uid()).collect();
            assumed.retain(|u, (_, _, at)| uids.contains(u) || at.elapsed() < Duration::from_secs(5));
        }
        for (n, r, _) in assumed.values() {
            let e = used.entry(n.clone()).or_default();
            e.0.cpu += r.cpu;
            e.0.memory += r.memory;
            e.1 += 1;
        }
        let nodes = ctx.nodes.state();
        let mut reasons: HashMap<&'static str, usize> = HashMap::new();
        let mut fits: Vec<(f64, String)> = Vec::new();
        let want = pod_requests(&pod);
        let mut allocs = ctx.allocs.lock().unwrap();
        for n in &nodes {
            let name = n.name_any();
            let (u, count) = used.get(&name).copied().unwrap_or_default();
            let key = (name.clone(), n.resource_version().unwrap_or_default());
            let alloc = *allocs.entry(key).or_insert_with(|| allocatable(n));
            match misfit(&pod, want, n, alloc, u, count) {
                Some(why) => *reasons.entry(why).or_default() += 1,
                None => {
                    // Least requested: the mean of the CPU and memory fractions in use.
                    let frac = |used: i64, cap: Option<i64>| cap.map(|c| used as f64 / c.max(1) as f64).unwrap_or(0.0);
                    let score = (frac(u.cpu + want.cpu, alloc.cpu) + frac(u.memory + want.memory, alloc.memory)) / 2.0 + count as f64 * 1e-6;
                    fits.push((score, name));
                }
            }
        }
        // Forget node versions that are gone.
        if allocs.len() > nodes.len() * 2 {
            allocs.retain(|(n, rv), _| nodes.iter().any(|x| x.name_any() == *n && x.resource_version().as_deref() == Some(rv.as_str())));
        }
        drop(allocs);
        if fits.is_empty() {
            Err((nodes.len(), reasons))
        } else {
            fits.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
            let best = fits[0].0;
            let ties: Vec<&String> = fits.iter().take_while(|f| f.0 - best < 1e-9).map(|f| &f.1).collect();
            let mut turn = ctx.turn.lock().unwrap();
            *turn = turn.wrapping_add(1);
            let node = ties[*turn % ties.len()].clone();
            assumed.insert(uid.clone(), (node.clone(), pod_requests(&pod), std::time::Instant::now()));
            Ok(node)
        }
    };
    let ns = pod.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    match chosen {
        Ok(node) => {
            let binding = Binding {
                metadata: ObjectMeta { name: Some(pod.name_any()), namespace: Some(ns.clone()), ..Default::default() },
                target: ObjectReference { api_version: Some("v1".into()), kind: Some("Node".into()), name: Some(node.clone()), ..Default::default() },
            };
            if let Err(e) = pods.create_subresource::<Binding, serde_json::Value>("binding", &pod.name_any(), &PostParams::default(), &binding).await
            {
                ctx.assumed.lock().unwrap().remove(&uid);
                return Err(e);
            }
            event(&ctx, &pod, "Normal", "Scheduled", &format!("Successfully assigned {ns}/{} to {node}", pod.name_any())).await;
            Ok(Action::await_change())
        }
        Err((total, reasons)) => {
            let mut parts: Vec<String> = reasons.iter().map(|(why, n)| format!("{n} {why}")).collect();
            parts.sort();
            let msg = if total == 0 {
                "no nodes available to schedule pods".to_string()
            } else {
                format!("0/{total} nodes are available: {}.", parts.join(", "))
            };
            let already =
                pod.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
                    c.iter().any(|c| c.type_ == "PodScheduled" && c.status == "False" && c.message.as_deref() == Some(msg.as_str()))
                });
            if !already {
                let cond = json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg, "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string(), "lastProbeTime": null});
                let patch = json!({"status": {"conditions": [cond]}});
                let _ = pods.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await;
                event(&ctx, &pod, "Warning", "FailedScheduling", &msg).await;
            }
            Ok(Action::requeue(Duration::from_secs(5)))
        }
    }
}

/// An events.k8s.io/v1 Event about `pod`, as the scheduler reports it.
async fn event(ctx: &Ctx, pod: &Pod, type_: &str, reason: &str, note: &str) {
    let ns = pod.namespace().unwrap_or_default();
    let events: Api<Event> = Api::namespaced(ctx.client.clone(), &ns);
    let ev = Event {
        // Named as client-go's recorder names events: the object, then the time in hex nanoseconds.
        metadata: ObjectMeta {
            name: Some(format!("{}.{:x}", pod.name_any(), k8s_openapi::jiff::Timestamp::now().as_nanosecond())),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
        action: Some("Scheduling".into()),
        reason: Some(reason.into()),
        note: Some(note.into()),
        type_: Some(type_.into()),
        reporting_controller: Some("default-scheduler".into()),
        reporting_instance: Some("default-scheduler-rkube".into()),
        regarding: Some(ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod.name_any()),
            namespace: Some(ns),
            uid: pod.uid(),
            ..Default::default()
        }),
        ..Default::default()
    };
    if let Err(e) = events.create(&PostParams::default(), &ev).await {
        tracing::debug!("scheduler event: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity("500m", true), 500);
        assert_eq!(quantity("2", true), 2000);
        assert_eq!(quantity("1Gi", false), 1 << 30);
        assert_eq!(quantity("1500M", false), 1_500_000_000);
    }

    #[test]
    fn filters() {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n", "labels": {"disk": "ssd"}},
            "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {"cpu": "2", "memory": "1Gi", "pods": "3"}}}))
        .unwrap();
        let pod = |spec: serde_json::Value| -> Pod { serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap() };
        let tol = json!([{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]);
        let fits =
            pod(json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}], "tolerations": tol, "nodeSelector": {"disk": "ssd"}}));
        let a = allocatable(&node);
        let m = |p: &Pod, used: Requests, count: usize| misfit(p, pod_requests(p), &node, a, used, count);
        assert_eq!(m(&fits, Requests::default(), 0), None);
        assert_eq!(m(&pod(json!({"containers": [{"name": "c"}]})), Requests::default(), 0), Some("node(s) had untolerated taint(s)"));
        let far = pod(json!({"containers": [{"name": "c"}], "tolerations": tol, "nodeSelector": {"disk": "hdd"}}));
        assert_eq!(m(&far, Requests::default(), 0), Some("node(s) didn't match Pod's node affinity/selector"));
        assert_eq!(m(&fits, Requests { cpu: 1500, memory: 0 }, 0), Some("Insufficient cpu"));
        assert_eq!(m(&fits, Requests::default(), 3), Some("Too many pods"));
    }
}
