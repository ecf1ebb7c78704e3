//! The scheduler on simulated nodes, through the real kubectl: pod
//! anti-affinity, topology spread, host ports and priority preemption, with
//! upstream's FailedScheduling messages for the pods that cannot fit.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Server, eventually, str_at};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);

fn pods(s: &Server, selector: &str) -> Vec<Value> {
    s.get_json(&["pods", "-l", selector])["items"].as_array().cloned().unwrap_or_default()
}

fn node_of(p: &Value) -> Option<&str> {
    p["spec"]["nodeName"].as_str()
}

/// The message of a pod's `PodScheduled=False` condition, once it has one.
fn unschedulable_message(s: &Server, pod: &str) -> String {
    eventually(&format!("{pod} marked unschedulable"), T, || {
        let p = s.get_json(&["pod", pod]);
        let conds = p["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let c = conds.into_iter().find(|c| c["type"] == "PodScheduled" && c["status"] == "False")?;
        assert_eq!(c["reason"], "Unschedulable", "{c}");
        assert!(node_of(&p).is_none(), "{p:#}");
        Some(c["message"].as_str().unwrap().to_string())
    })
}

/// Waits until the pod's PodScheduled message is `want`, so that a retry
/// that refines it is not mistaken for the answer.
fn wait_message(s: &Server, pod: &str, want: &str) {
    let mut last = String::new();
    let ok = eventually(&format!("{pod}'s message"), T, || {
        last = unschedulable_message(s, pod);
        (last == want).then_some(true)
    });
    assert!(ok, "{last}");
}

/// Messages of the events with `reason` about `pod`.
fn events(s: &Server, reason: &str, pod: &str) -> Vec<String> {
    let sel = format!("reason={reason},involvedObject.name={pod}");
    let list = s.get_json(&["events", "--field-selector", &sel]);
    list["items"].as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap_or("").to_string()).collect()
}

fn apply(s: &Server, obj: &Value) {
    s.ok_stdin(&["apply", "-f", "-"], &obj.to_string());
}

fn deployment(name: &str, replicas: u32, spec: Value) -> Value {
    let mut pod = json!({"containers": [{"name": "c", "image": "busybox"}]});
    pod.as_object_mut().unwrap().extend(spec.as_object().unwrap().clone());
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": pod}}})
}

fn pod(name: &str, labels: Value, spec: Value) -> Value {
    let mut p = json!({"containers": [{"name": "c", "image": "busybox"}]});
    p.as_object_mut().unwrap().extend(spec.as_object().unwrap().clone());
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": p})
}

fn running_on(s: &Server, name: &str) -> String {
    eventually(&format!("{name} running"), T, || {
        let p = s.get_json(&["pod", name]);
        (p["status"]["phase"] == "Running").then(|| str_at(&p, "/spec/nodeName").to_string())
    })
}

#[test]
fn anti_affinity_puts_one_replica_per_node_and_leaves_the_extra_pending() {
    let s = Server::start_with(&["--fake-nodes", "3"]);
    let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    apply(&s, &deployment("web", 4, anti));
    let (placed, pending) = eventually("3 replicas placed, 1 pending", T, || {
        let p = pods(&s, "app=web");
        let (placed, pending): (Vec<Value>, Vec<Value>) = p.into_iter().partition(|p| node_of(p).is_some());
        (placed.len() == 3 && pending.len() == 1).then_some((placed, pending))
    });
    let mut nodes: Vec<&str> = placed.iter().filter_map(node_of).collect();
    nodes.sort();
    assert_eq!(nodes, ["fake-node-0", "fake-node-1", "fake-node-2"]);
    let extra = str_at(&pending[0], "/metadata/name").to_string();
    let want = "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. \
                preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.";
    wait_message(&s, &extra, want);
    let ev = eventually("the FailedScheduling event", T, || Some(events(&s, "FailedScheduling", &extra)).filter(|e| !e.is_empty()));
    assert!(ev.iter().any(|m| m == want), "{ev:?}");

    // A fourth node gives the extra replica its place.
    s.ok_stdin(
        &["apply", "-f", "-"],
        &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "added", "labels": {"kubernetes.io/hostname": "added"}},
            "status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": "10"}, "capacity": {"cpu": "4", "memory": "4Gi", "pods": "10"},
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}]}})
        .to_string(),
    );
    // kubectl apply writes no status; the status subresource holds it.
    s.ok(&[
        "patch",
        "node",
        "added",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"allocatable":{"cpu":"4","memory":"4Gi","pods":"10"},"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"ready"}]}}"#,
    ]);
    let node = eventually("the extra replica bound", T, || node_of(&s.get_json(&["pod", &extra])).map(str::to_string));
    assert_eq!(node, "added");
}

#[test]
fn topology_spread_keeps_zones_within_max_skew() {
    let s = Server::start_with(&["--fake-nodes", "4"]);
    for (n, z) in [("fake-node-0", "a"), ("fake-node-1", "a"), ("fake-node-2", "b")] {
        s.ok(&["label", "node", n, &format!("topology.kubernetes.io/zone={z}")]);
    }
    let tsc = |policy: &str| {
        json!({"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "spread"}}, "nodeAffinityPolicy": policy})
    };
    apply(&s, &deployment("spread", 4, json!({"topologySpreadConstraints": [tsc("Honor")]})));
    let placed = eventually("4 replicas placed", T, || {
        let p = pods(&s, "app=spread");
        (p.len() == 4 && p.iter().all(|p| node_of(p).is_some())).then_some(p)
    });
    let mut zones: HashMap<&str, usize> = HashMap::new();
    for p in &placed {
        let n = node_of(p).unwrap();
        assert_ne!(n, "fake-node-3", "a node without the zone label is no domain: {p:#}");
        *zones.entry(if n == "fake-node-2" { "b" } else { "a" }).or_default() += 1;
    }
    assert_eq!(zones, HashMap::from([("a", 2), ("b", 2)]));

    // Pinned to zone b (and counting every zone): the first extra pod
    // makes it 3 against 2, the second would make the skew 2.
    let pinned = json!({"nodeSelector": {"topology.kubernetes.io/zone": "b"}, "topologySpreadConstraints": [tsc("Ignore")]});
    apply(&s, &pod("extra-1", json!({"app": "spread"}), pinned.clone()));
    assert_eq!(running_on(&s, "extra-1"), "fake-node-2");
    apply(&s, &pod("extra-2", json!({"app": "spread"}), pinned));
    wait_message(
        &s,
        "extra-2",
        "0/4 nodes are available: 1 node(s) didn't match pod topology spread constraints, 3 node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/4 nodes are available: 1 No preemption victims found for incoming pod, 3 Preemption is not helpful for scheduling.",
    );
    // Another replica in zone a evens it out, and the pending pod binds.
    s.ok(&["scale", "deployment", "spread", "--replicas=5"]);
    assert_eq!(running_on(&s, "extra-2"), "fake-node-2");
}

#[test]
fn host_ports_are_taken_once_per_node() {
    let s = Server::start_with(&["--fake-nodes", "2"]);
    let port = |proto: &str| json!({"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80, "hostPort": 8080, "protocol": proto}]}]});
    apply(&s, &pod("a", json!({}), port("TCP")));
    apply(&s, &pod("b", json!({}), port("TCP")));
    let (na, nb) = (running_on(&s, "a"), running_on(&s, "b"));
    assert_ne!(na, nb, "two pods on one host port share no node");
    apply(&s, &pod("c", json!({}), port("TCP")));
    wait_message(
        &s,
        "c",
        "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports. \
         preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.",
    );
    // The same port over UDP is free.
    apply(&s, &pod("udp", json!({}), port("UDP")));
    running_on(&s, "udp");
    // When a holder goes, the waiting pod takes its node.
    s.ok(&["delete", "pod", "a", "--wait=true"]);
    assert_eq!(running_on(&s, "c"), na);
}

#[test]
fn a_higher_priority_pod_preempts_a_lower_one() {
    let s = Server::start_with(&["--fake-nodes", "1"]);
    s.ok(&["create", "priorityclass", "low", "--value=100"]);
    s.ok(&["create", "priorityclass", "high", "--value=1000"]);
    // The pods name their class and the same value the Priority admission
    // plugin would fill in (upstream accepts a matching value).
    let cpu = |class: &str, value: i32, extra: Value| {
        let mut spec = json!({"priorityClassName": class, "priority": value,
            "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "20"}}}]});
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        spec
    };
    apply(&s, &pod("low", json!({}), cpu("low", 100, json!({}))));
    running_on(&s, "low");
    let low_uid = str_at(&s.get_json(&["pod", "low"]), "/metadata/uid").to_string();

    // An equal-priority pod cannot preempt.
    apply(&s, &pod("peer", json!({}), cpu("low", 100, json!({}))));
    wait_message(
        &s,
        "peer",
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
    );
    s.ok(&["delete", "pod", "peer"]);

    apply(&s, &pod("high", json!({}), cpu("high", 1000, json!({}))));
    assert_eq!(running_on(&s, "high"), "fake-node-0");
    let high = s.get_json(&["pod", "high"]);
    assert_eq!(high["status"]["nominatedNodeName"], "fake-node-0", "{high:#}");
    eventually("the victim gone", T, || (!s.kubectl(&["get", "pod", "low"]).status.success()).then_some(()));
    let ev = eventually("the Preempted event", T, || Some(events(&s, "Preempted", "low")).filter(|e| !e.is_empty()));
    assert_eq!(ev, [format!("Preempted by pod {} on node fake-node-0", str_at(&high, "/metadata/uid"))], "victim {low_uid}");
    let scheduled = events(&s, "Scheduled", "high");
    assert_eq!(scheduled, ["Successfully assigned default/high to fake-node-0"]);

    // preemptionPolicy: Never waits instead of evicting.
    apply(&s, &pod("polite", json!({}), cpu("high", 1000, json!({"preemptionPolicy": "Never"}))));
    wait_message(&s, "polite", "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.");
    assert_eq!(s.get_json(&["pod", "high"])["status"]["phase"], "Running");
}
