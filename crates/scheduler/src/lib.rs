//! The scheduler: binds each pending pod (`schedulerName: default-scheduler`,
//! no `spec.nodeName`, no scheduling gates) to a node through
//! `pods/binding`, as upstream's kube-scheduler does.
//!
//! One loop takes pods from the queue (`cache.rs`), highest `spec.priority`
//! first, and runs upstream's default plugins (`filters.rs`): filters
//! NodeUnschedulable, TaintToleration, NodeAffinity (nodeSelector and
//! required terms), NodePorts, NodeResourcesFit (CPU, memory, pod count),
//! PodTopologySpread (DoNotSchedule) and InterPodAffinity (required
//! affinity, anti-affinity, existing pods' anti-affinity); scores for
//! tolerated PreferNoSchedule taints, preferred node affinity, ScheduleAnyway
//! spread, preferred inter-pod affinity, least allocated and balanced
//! resources. Like upstream it stops looking once it has found enough
//! feasible nodes (all of them under 100 nodes, 10% of 5,000), starting
//! each cycle where the last one stopped. The chosen node is assumed at
//! once, so the next pod sees it taken while the binding is on its way.
//!
//! A pod no node fits gets the `PodScheduled=False` condition (reason
//! `Unschedulable`) and a FailedScheduling event with upstream's message
//! (`0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match
//! Pod's node affinity/selector. preemption: …`). Preemption (`preempt.rs`)
//! then looks for a node where deleting lower-priority pods makes room:
//! the victims get the `DisruptionTarget` condition, are deleted and get a
//! `Preempted` event; the preemptor gets `status.nominatedNodeName`, and its
//! room is kept from lower-priority pods until it binds. Unschedulable pods
//! are tried again when the cluster changes (nodes, pods leaving or
//! arriving), after a back-off.
//!
//! Sees the cluster only through the Kubernetes API.

mod cache;
mod filters;
mod model;
mod preempt;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Binding, Namespace, Node, ObjectReference, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::{Notify, Semaphore};

use cache::State;
use filters::{Cycle, InterPod, NodeView, Spread, filter, inter_pod_scores, scores};
use model::{Requests, pod_requests};

/// What one scheduling cycle decided, to be written to the API.
enum Outcome {
    Bind { pod: Arc<Pod>, node: String },
    Unschedulable { pod: Arc<Pod>, message: String, nominate: Option<Option<String>>, preemption: Option<Preemption> },
}

struct Preemption {
    node: String,
    victims: Vec<Arc<Pod>>,
    /// Lower-priority pods that were nominated to the node and lose it.
    cleared: Vec<Arc<Pod>>,
}

/// How many feasible nodes a cycle looks for before it scores them
/// (upstream's adaptive percentageOfNodesToScore).
fn feasible_to_find(nodes: usize) -> usize {
    if nodes < 100 {
        return nodes;
    }
    let percent = (50 - nodes as i64 / 125).max(5) as usize;
    (nodes * percent / 100).max(100)
}

fn sorted_reasons(reasons: &HashMap<Cow<'static, str>, usize>) -> String {
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    parts.join(", ")
}

enum Decision {
    Fit(usize),
    NoFit { message: String, preempt: Option<(usize, Vec<Arc<model::PodFacts>>)>, clear: bool },
}

/// One scheduling cycle over the cache: filter, score, or preempt.
/// Returns the decision and how many node entries it looked at.
fn evaluate(st: &State, pod: &Pod, rand: u64) -> (Decision, usize) {
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    if st.live == 0 {
        return (Decision::NoFit { message: "no nodes available to schedule pods".into(), preempt: None, clear: false }, 0);
    }
    let ns_labels = |n: &str| st.ns_labels.get(n).cloned();
    let mut c = Cycle::new(pod);
    // Inter-pod affinity needs every placed pod only when the pod has
    // required terms; otherwise only existing pods' anti-affinity matters.
    let own = !c.terms.affinity.is_empty() || !c.terms.anti.is_empty();
    if own || st.with_terms.values().any(|p| !p.terms.anti.is_empty()) {
        let mut s = InterPod { self_match: c.matches_own_affinity(&ns_labels), ..Default::default() };
        let placed: Box<dyn Iterator<Item = &Arc<model::PodFacts>>> = if own { Box::new(st.pods.values()) } else { Box::new(st.with_terms.values()) };
        for p in placed {
            if let Some(l) = st.node_labels(&p.node) {
                s.account(&c, p, l, 1, &ns_labels);
            }
        }
        if own || !s.existing_anti.is_empty() {
            c.inter = Some(s);
        }
    }
    let constraints = c.constraints();
    if !constraints.is_empty() {
        c.spread = Some(Spread::new(&c, constraints, st.nodes.iter().filter_map(|n| n.facts.as_ref().map(|f| (f, n.pods.as_slice())))));
    }
    // Room kept for pods nominated by preemption that matter at least as much.
    let mut extra: HashMap<&str, (Requests, usize)> = HashMap::new();
    for (u, (node, prio, req)) in &st.nominated {
        if u != uid && *prio >= c.priority {
            let e = extra.entry(node.as_str()).or_default();
            e.0.add(*req);
            e.1 += 1;
        }
    }
    let view = |i: usize| -> Option<NodeView> {
        let n = &st.nodes[i];
        let f = n.facts.as_ref()?;
        let (r, k) = extra.get(f.name.as_str()).copied().unwrap_or_default();
        let mut v = NodeView { facts: f, requested: n.requested, nonzero: n.nonzero, pod_count: n.pods.len() + k, pods: &n.pods };
        v.requested.add(r);
        v.nonzero.add(r);
        Some(v)
    };
    let nominated = st.nominated.get(uid).map(|n| n.0.clone()).or_else(|| pod.status.as_ref().and_then(|s| s.nominated_node_name.clone()));
    if let Some(&i) = nominated.as_ref().and_then(|n| st.by_name.get(n))
        && view(i).is_some_and(|v| filter(&c, &v).is_ok())
    {
        return (Decision::Fit(i), 0);
    }

    let len = st.nodes.len();
    let want = feasible_to_find(st.live);
    let mut feasible = Vec::new();
    let mut reasons: HashMap<Cow<'static, str>, usize> = HashMap::new();
    let mut resolvable = Vec::new();
    let mut processed = 0;
    for k in 0..len {
        let i = (st.next_start + k) % len;
        let Some(v) = view(i) else { continue };
        processed = k + 1;
        match filter(&c, &v) {
            Ok(()) => {
                feasible.push(i);
                if feasible.len() >= want {
                    break;
                }
            }
            Err(m) => {
                if !m.unresolvable {
                    resolvable.push(i);
                }
                for r in m.reasons {
                    *reasons.entry(r).or_default() += 1;
                }
            }
        }
    }
    if !feasible.is_empty() {
        let views: Vec<NodeView> = feasible.iter().filter_map(|i| view(*i)).collect();
        let t = &c.terms;
        let inter = if !t.preferred_affinity.is_empty() || !t.preferred_anti.is_empty() || !st.with_terms.is_empty() {
            fn with_node<'a>(st: &'a State) -> impl Fn(&'a Arc<model::PodFacts>) -> Option<(&'a model::PodFacts, &'a model::Labels)> {
                move |p| st.node_labels(&p.node).map(|l| (&**p, l))
            }
            let all: Box<dyn Iterator<Item = _>> = if t.preferred_affinity.is_empty() && t.preferred_anti.is_empty() {
                Box::new(std::iter::empty())
            } else {
                Box::new(st.pods.values().filter_map(with_node(st)))
            };
            inter_pod_scores(&c, all, st.with_terms.values().filter_map(with_node(st)), &ns_labels)
        } else {
            None
        };
        let s = scores(&c, &views, inter.as_ref());
        let best = s.iter().copied().fold(f64::MIN, f64::max);
        let ties: Vec<usize> = (0..s.len()).filter(|j| s[*j] >= best - 1e-9).collect();
        return (Decision::Fit(feasible[ties[rand as usize % ties.len()]]), processed);
    }

    let mut message = format!("0/{} nodes are available: {}.", st.live, sorted_reasons(&reasons));
    if pod.spec.as_ref().and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        message.push_str(" preemption: not eligible due to preemptionPolicy=Never.");
        return (Decision::NoFit { message, preempt: None, clear: false }, processed);
    }
    let terminating_victim = nominated
        .as_ref()
        .and_then(|n| st.by_name.get(n))
        .is_some_and(|i| st.nodes[*i].pods.iter().any(|p| p.terminating && p.priority < c.priority));
    if terminating_victim {
        message.push_str(" preemption: not eligible due to a terminating pod on the nominated node.");
        return (Decision::NoFit { message, preempt: None, clear: false }, processed);
    }
    let mut why: HashMap<Cow<'static, str>, usize> = HashMap::new();
    if st.live > resolvable.len() {
        why.insert(Cow::Borrowed(preempt::NOT_HELPFUL), st.live - resolvable.len());
    }
    let enough = (st.live / 10).max(100);
    let mut candidates = Vec::new();
    let offset = if resolvable.is_empty() { 0 } else { rand as usize % resolvable.len() };
    for k in 0..resolvable.len() {
        let i = resolvable[(offset + k) % resolvable.len()];
        let n = &st.nodes[i];
        let Some(f) = n.facts.as_ref() else { continue };
        match preempt::select_victims(&c, f, &n.pods, extra.get(f.name.as_str()).copied().unwrap_or_default(), &ns_labels) {
            Ok(v) => {
                candidates.push((i, v));
                if candidates.len() >= enough {
                    break;
                }
            }
            Err(m) => {
                for r in m.reasons {
                    *why.entry(r).or_default() += 1;
                }
            }
        }
    }
    match preempt::pick(candidates) {
        Some(best) => (Decision::NoFit { message, preempt: Some(best), clear: false }, processed),
        None => {
            message.push_str(&format!(" preemption: 0/{} nodes are available: {}.", st.live, sorted_reasons(&why)));
            (Decision::NoFit { message, preempt: None, clear: true }, processed)
        }
    }
}

/// Runs one cycle for `pod` and records its result in the cache.
fn schedule_one(st: &mut State, pod: Arc<Pod>) -> Outcome {
    let rand = st.random();
    let (decision, processed) = evaluate(st, &pod, rand);
    if !st.nodes.is_empty() {
        st.next_start = (st.next_start + processed) % st.nodes.len();
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    match decision {
        Decision::Fit(i) => {
            let node = st.nodes[i].facts.as_ref().map(|f| f.name.clone()).unwrap_or_default();
            st.assume(pod.clone(), &node);
            Outcome::Bind { pod, node }
        }
        Decision::NoFit { message, preempt, clear } => {
            st.unschedulable(&uid);
            let mut nominate = None;
            let mut preemption = None;
            if let Some((i, victims)) = preempt {
                let node = st.nodes[i].facts.as_ref().map(|f| f.name.clone()).unwrap_or_default();
                let prio = model::priority(&pod);
                let lower: Vec<String> =
                    st.nominated.iter().filter(|(u, (n, p, _))| *n == node && *p < prio && **u != uid).map(|(u, _)| u.clone()).collect();
                let cleared = lower
                    .iter()
                    .filter_map(|u| {
                        st.nominated.remove(u);
                        st.pending.get(u).map(|p| p.pod.clone())
                    })
                    .collect();
                st.nominated.insert(uid, (node.clone(), prio, pod_requests(&pod, false)));
                nominate = Some(Some(node.clone()));
                preemption = Some(Preemption { node, victims: victims.iter().map(|v| Arc::new(v.identity())).collect(), cleared });
            } else if clear && (st.nominated.remove(&uid).is_some() || pod.status.as_ref().and_then(|s| s.nominated_node_name.as_ref()).is_some()) {
                nominate = Some(None);
            }
            Outcome::Unschedulable { pod, message, nominate, preemption }
        }
    }
}

type Shared = Arc<Mutex<State>>;

/// Feeds one watch into the cache.
async fn follow<K, S>(events: S, st: Shared, wake: Arc<Notify>, apply: impl Fn(&mut State, watcher::Event<K>) -> bool)
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    let mut events = std::pin::pin!(events);
    while let Some(ev) = events.next().await {
        match ev {
            Ok(ev) => {
                if apply(&mut st.lock().unwrap(), ev) {
                    wake.notify_one();
                }
            }
            Err(e) => tracing::debug!("scheduler watch: {e}"),
        }
    }
}

pub async fn run(client: Client) {
    let st: Shared = Arc::new(Mutex::new(State::default()));
    let wake = Arc::new(Notify::new());
    let cfg = watcher::Config::default;
    let nodes = watcher(Api::<Node>::all(client.clone()), cfg()).default_backoff();
    tokio::spawn(follow(nodes, st.clone(), wake.clone(), |s, ev| {
        match ev {
            watcher::Event::Apply(n) | watcher::Event::InitApply(n) => s.node_applied(&n),
            watcher::Event::Delete(n) => s.node_deleted(&n.name_any()),
            watcher::Event::Init => {}
            watcher::Event::InitDone => s.nodes_synced = true,
        }
        true
    }));
    let pods = watcher(Api::<Pod>::all(client.clone()), cfg()).default_backoff();
    tokio::spawn(follow(pods, st.clone(), wake.clone(), |s, ev| match ev {
        watcher::Event::Apply(p) | watcher::Event::InitApply(p) => s.pod_applied(Arc::new(p)),
        watcher::Event::Delete(p) => {
            s.pod_deleted(p.metadata.uid.as_deref().unwrap_or(""));
            true
        }
        watcher::Event::Init => {
            s.pods_relisting();
            false
        }
        watcher::Event::InitDone => {
            s.pods_relisted();
            true
        }
    }));
    let namespaces = watcher(Api::<Namespace>::all(client.clone()), cfg()).default_backoff();
    tokio::spawn(follow(namespaces, st.clone(), wake.clone(), |s, ev| {
        match ev {
            watcher::Event::Apply(n) | watcher::Event::InitApply(n) => {
                s.ns_labels.insert(n.name_any(), n.metadata.labels.clone().unwrap_or_default());
            }
            watcher::Event::Delete(n) => {
                s.ns_labels.remove(&n.name_any());
            }
            _ => {}
        }
        false
    }));

    // Bindings and reports go out concurrently, a bounded number at a time.
    let permits = Arc::new(Semaphore::new(256));
    let mut since_yield = 0;
    loop {
        let outcome = {
            let mut s = st.lock().unwrap();
            if !(s.nodes_synced && s.pods_synced) { None } else { s.next(Instant::now()).map(|pod| schedule_one(&mut s, pod)) }
        };
        let Some(outcome) = outcome else {
            let wait = st.lock().unwrap().next_wake();
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        };
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let (client, st, wake) = (client.clone(), st.clone(), wake.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match outcome {
                Outcome::Bind { pod, node } => bind(&client, &st, &wake, pod, &node).await,
                Outcome::Unschedulable { pod, message, nominate, preemption } => {
                    if let Some(p) = preemption {
                        preempt_victims(&client, &pod, &p).await;
                    }
                    report_unschedulable(&client, &pod, &message, nominate).await;
                }
            }
        });
        since_yield += 1;
        if since_yield >= 64 {
            since_yield = 0;
            tokio::task::yield_now().await;
        }
    }
}

fn pods_in(client: &Client, pod: &Pod) -> Api<Pod> {
    Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default())
}

async fn bind(client: &Client, st: &Shared, wake: &Notify, pod: Arc<Pod>, node: &str) {
    let name = pod.name_any();
    let binding = Binding {
        metadata: ObjectMeta { name: Some(name.clone()), namespace: pod.namespace(), ..Default::default() },
        target: ObjectReference { api_version: Some("v1".into()), kind: Some("Node".into()), name: Some(node.into()), ..Default::default() },
    };
    match pods_in(client, &pod).create_subresource::<Binding, serde_json::Value>("binding", &name, &PostParams::default(), &binding).await {
        Ok(_) => {
            let note = format!("Successfully assigned {}/{name} to {node}", pod.namespace().unwrap_or_default());
            event(client, &pod, None, "Normal", "Scheduled", "Scheduling", &note).await;
        }
        Err(e) => {
            tracing::debug!(pod = %name, "binding to {node}: {e}");
            // Gone, or bound already by someone else: nothing to retry.
            let gone = matches!(&e, kube::Error::Api(s) if s.code == 404 || s.code == 409);
            st.lock().unwrap().bind_failed(pod, gone);
            wake.notify_one();
        }
    }
}

/// Deletes the victims as upstream's preemption does: each first gets the
/// `DisruptionTarget` condition, then is deleted (with its grace period),
/// then a `Preempted` event; lower-priority pods nominated there lose it.
async fn preempt_victims(client: &Client, preemptor: &Pod, p: &Preemption) {
    for v in &p.victims {
        let api = pods_in(client, v);
        let cond = json!({"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
            "message": "default-scheduler: preempting to accommodate a higher priority pod", "lastTransitionTime": now()});
        let patch = json!({"status": {"conditions": [cond]}});
        if let Err(e) = api.patch_status(&v.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await {
            tracing::debug!(pod = %v.name_any(), "marking a preemption victim: {e}");
        }
        let dp = DeleteParams { preconditions: Some(Preconditions { uid: v.uid(), resource_version: None }), ..Default::default() };
        if let Err(e) = api.delete(&v.name_any(), &dp).await {
            tracing::debug!(pod = %v.name_any(), "deleting a preemption victim: {e}");
            continue;
        }
        let note = format!("Preempted by pod {} on node {}", preemptor.uid().unwrap_or_default(), p.node);
        event(client, v, Some(preemptor), "Normal", "Preempted", "Preempting", &note).await;
    }
    for c in &p.cleared {
        let patch = json!({"status": {"nominatedNodeName": null}});
        let _ = pods_in(client, c).patch_status(&c.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await;
    }
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// `PodScheduled=False` with the message, the nomination if it changed,
/// and a FailedScheduling event when the message is new.
async fn report_unschedulable(client: &Client, pod: &Pod, message: &str, nominate: Option<Option<String>>) {
    let already = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "PodScheduled" && c.status == "False" && c.message.as_deref() == Some(message)));
    if already && nominate.is_none() {
        return;
    }
    let mut status = serde_json::Map::new();
    if !already {
        let cond = json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message, "lastTransitionTime": now(), "lastProbeTime": null});
        status.insert("conditions".into(), json!([cond]));
    }
    if let Some(n) = nominate {
        status.insert("nominatedNodeName".into(), json!(n));
    }
    let patch = json!({ "status": status });
    if let Err(e) = pods_in(client, pod).patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await {
        tracing::debug!(pod = %pod.name_any(), "unschedulable status: {e}");
    }
    if !already {
        event(client, pod, None, "Warning", "FailedScheduling", "Scheduling", message).await;
    }
}

fn reference(p: &Pod) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(p.name_any()),
        namespace: p.namespace(),
        uid: p.uid(),
        ..Default::default()
    }
}

/// An events.k8s.io/v1 Event about `pod`, as the scheduler reports it.
async fn event(client: &Client, pod: &Pod, related: Option<&Pod>, type_: &str, reason: &str, action: &str, note: &str) {
    let ns = pod.namespace().unwrap_or_default();
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let t = k8s_openapi::jiff::Timestamp::now();
    let ev = Event {
        // Named as client-go's recorder names events: the object, then the time in hex nanoseconds.
        metadata: ObjectMeta { name: Some(format!("{}.{:x}", pod.name_any(), t.as_nanosecond())), namespace: Some(ns), ..Default::default() },
        event_time: Some(MicroTime(t)),
        action: Some(action.into()),
        reason: Some(reason.into()),
        note: Some(note.into()),
        type_: Some(type_.into()),
        reporting_controller: Some("default-scheduler".into()),
        reporting_instance: Some("default-scheduler-rkube".into()),
        regarding: Some(reference(pod)),
        related: related.map(reference),
        ..Default::default()
    };
    if let Err(e) = events.create(&PostParams::default(), &ev).await {
        tracing::debug!("scheduler event: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: serde_json::Value, cpu: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"}}}))
        .unwrap()
    }

    fn pod(name: &str, spec: serde_json::Value) -> Arc<Pod> {
        let mut spec = spec;
        spec.as_object_mut().unwrap().entry("containers").or_insert(json!([{"name": "c"}]));
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default", "uid": name, "labels": {"app": "web"}}, "spec": spec}))
                .unwrap(),
        )
    }

    fn cycle(st: &mut State, p: Arc<Pod>) -> Outcome {
        st.pod_applied(p);
        let next = st.next(Instant::now()).unwrap();
        schedule_one(st, next)
    }

    fn cluster(n: usize) -> State {
        let mut st = State::default();
        (st.nodes_synced, st.pods_synced) = (true, true);
        for i in 0..n {
            st.node_applied(&node(&format!("n{i}"), json!({"kubernetes.io/hostname": format!("n{i}"), "zone": format!("z{}", i % 2)}), "4"));
        }
        st
    }

    #[test]
    fn feasible_nodes_to_find() {
        assert_eq!(feasible_to_find(3), 3);
        assert_eq!(feasible_to_find(500), 230);
        assert_eq!(feasible_to_find(5000), 500);
        assert_eq!(feasible_to_find(100_000), 5000);
    }

    #[test]
    fn anti_affinity_spreads_then_reports_upstreams_message() {
        let mut st = cluster(3);
        let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
        let mut nodes = std::collections::HashSet::new();
        for i in 0..3 {
            match cycle(&mut st, pod(&format!("w{i}"), anti.clone())) {
                Outcome::Bind { node, .. } => assert!(nodes.insert(node)),
                _ => panic!("replica {i} did not fit"),
            }
        }
        match cycle(&mut st, pod("w3", anti)) {
            Outcome::Unschedulable { message, preemption, .. } => {
                assert_eq!(
                    message,
                    "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
                );
                assert!(preemption.is_none());
            }
            _ => panic!("the fourth replica fits"),
        }
    }

    #[test]
    fn messages_count_reasons_across_nodes() {
        let mut st = cluster(3);
        st.node_applied(
            &serde_json::from_value(json!({"metadata": {"name": "n0"}, "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {"cpu": "4", "pods": "110"}}}))
            .unwrap(),
        );
        let p = pod("big", json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "5"}}}], "preemptionPolicy": "Never"}));
        match cycle(&mut st, p) {
            Outcome::Unschedulable { message, .. } => assert_eq!(
                message,
                "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."
            ),
            _ => panic!("fits"),
        }
        let mut st = cluster(0);
        match cycle(&mut st, pod("p", json!({}))) {
            Outcome::Unschedulable { message, .. } => assert_eq!(message, "no nodes available to schedule pods"),
            _ => panic!("fits"),
        }
    }

    #[test]
    fn preemption_nominates_and_keeps_the_room() {
        let mut st = cluster(2);
        let cpu = |c: &str, prio: i32| json!({"priority": prio, "containers": [{"name": "c", "resources": {"requests": {"cpu": c}}}]});
        for (i, prio) in [(0, 1), (1, 5)] {
            assert!(matches!(cycle(&mut st, pod(&format!("low{i}"), cpu("3", prio))), Outcome::Bind { .. }));
        }
        match cycle(&mut st, pod("high", cpu("3", 100))) {
            Outcome::Unschedulable { message, nominate, preemption: Some(p), .. } => {
                assert_eq!(message, "0/2 nodes are available: 2 Insufficient cpu.");
                assert_eq!(p.victims.iter().map(|v| v.name_any()).collect::<Vec<_>>(), ["low0"], "the lowest priority goes");
                assert_eq!(nominate, Some(Some(p.node.clone())));
            }
            _ => panic!("no preemption"),
        }
        // While the victim goes, a lower-priority pod may not take the room.
        st.pod_deleted("low0");
        match cycle(&mut st, pod("mid", cpu("2", 50))) {
            Outcome::Unschedulable { message, .. } => assert!(message.starts_with("0/2 nodes are available: 2 Insufficient cpu."), "{message}"),
            _ => panic!("the nominated room was taken"),
        }
        let high = st.pending["high"].pod.clone();
        st.pending.get_mut("high").unwrap().queue = cache::Queue::InFlight;
        assert!(matches!(schedule_one(&mut st, high), Outcome::Bind { .. }));
    }

    #[test]
    fn topology_spread_over_zones() {
        let mut st = cluster(4);
        let tsc = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "web"}}}]});
        let mut zones = HashMap::<String, usize>::new();
        for i in 0..6 {
            let Outcome::Bind { node, .. } = cycle(&mut st, pod(&format!("w{i}"), tsc.clone())) else { panic!("w{i}") };
            let z = st.node_labels(&node).unwrap()["zone"].clone();
            *zones.entry(z).or_default() += 1;
            let (a, b) = (zones.get("z0").copied().unwrap_or(0), zones.get("z1").copied().unwrap_or(0));
            assert!(a.abs_diff(b) <= 1, "{zones:?}");
        }
    }

    #[test]
    fn spreads_pods_without_requests() {
        let mut st = cluster(3);
        let mut nodes = std::collections::HashSet::new();
        for i in 0..3 {
            let Outcome::Bind { node, .. } = cycle(&mut st, pod(&format!("p{i}"), json!({}))) else { panic!() };
            nodes.insert(node);
        }
        assert_eq!(nodes.len(), 3);
    }
}
