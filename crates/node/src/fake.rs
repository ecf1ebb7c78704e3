//! Simulated nodes (like kwok): each fake node registers a Node with
//! capacity and a Ready condition, renews its Lease in `kube-node-lease`,
//! and moves the pods bound to it to Running with ready containers and a
//! pod IP, without running anything.
//!
//! Fake nodes are the Nodes labelled `rkube.io/fake-node=true`: the
//! `--fake-nodes N` ones, and any a user creates with that label at run
//! time (their status is filled in); deleting one ends its simulation.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

/// The label that makes a Node simulated.
pub const FAKE_LABEL: &str = "rkube.io/fake-node";

/// Simulated nodes: `fake-node-0` … `fake-node-{n-1}` registered at start,
/// plus any labelled Node created later.
pub struct FakeNodes {
    pub client: Client,
    pub count: usize,
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// A loopback address for fake node or pod `i` (nothing listens there).
fn address(net: u8, i: usize) -> String {
    format!("127.{net}.{}.{}", (i / 250) % 250, i % 250 + 1)
}

pub fn node_name(i: usize) -> String {
    format!("fake-node-{i}")
}

fn node(i: usize) -> Node {
    node_named(&node_name(i), i)
}

fn node_named(name: &str, i: usize) -> Node {
    let name = name.to_string();
    let resources: BTreeMap<String, Quantity> = [("cpu", "32"), ("memory", "256Gi"), ("pods", "110"), ("ephemeral-storage", "1Ti")]
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect();
    let condition = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(now()),
        last_transition_time: Some(now()),
    };
    Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(
                [
                    ("kubernetes.io/hostname", name.as_str()),
                    ("kubernetes.io/os", "linux"),
                    ("kubernetes.io/arch", "amd64"),
                    ("type", "fake"),
                    (FAKE_LABEL, "true"),
                ]
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            annotations: Some([("node.alpha.kubernetes.io/ttl".to_string(), "0".to_string())].into()),
            ..Default::default()
        },
        spec: Some(NodeSpec { pod_cidr: Some(format!("127.{}.{}.0/24", 100 + (i / 250) % 100, i % 250)), ..Default::default() }),
        status: Some(NodeStatus {
            capacity: Some(resources.clone()),
            allocatable: Some(resources),
            conditions: Some(vec![
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ]),
            addresses: Some(vec![
                NodeAddress { type_: "InternalIP".into(), address: address(1, i) },
                NodeAddress { type_: "Hostname".into(), address: name.clone() },
            ]),
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".into(),
                operating_system: "linux".into(),
                kubelet_version: "v1.37.0-rkube-fake".into(),
                kube_proxy_version: String::new(),
                container_runtime_version: "fake://1.0.0".into(),
                os_image: "rkube simulated node".into(),
                kernel_version: "0.0.0-fake".into(),
                machine_id: format!("fake{i:028}"),
                system_uuid: format!("fake-{i}"),
                boot_id: format!("fake-boot-{i}"),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// The fake nodes being simulated, by name, with their InternalIP.
type Known = Arc<RwLock<HashMap<String, String>>>;

impl FakeNodes {
    /// Registers the nodes, then simulates every labelled node (those and
    /// any created later), forever.
    pub async fn run(self) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        for i in 0..self.count {
            let n = node(i);
            match nodes.create(&PostParams::default(), &n).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    // Re-registered after a restart: make it Ready again.
                    let patch = json!({"status": n.status});
                    let _ = nodes.patch_status(&n.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await;
                }
                Err(e) => tracing::warn!(node = %n.name_any(), "registering a fake node: {e}"),
            }
        }
        let known: Known = Default::default();
        let names = known.clone();
        tokio::spawn(lease_loop(self.client.clone(), "rkube-fake-node", move || names.read().unwrap().keys().cloned().collect()));
        let mut pods_started = false;
        let cfg = watcher::Config::default().labels(&format!("{FAKE_LABEL}=true"));
        let mut events = watcher(nodes.clone(), cfg).default_backoff().boxed();
        while let Some(ev) = events.next().await {
            let (node, gone) = match ev {
                Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n)) => (n, false),
                Ok(watcher::Event::Delete(n)) => (n, true),
                _ => continue,
            };
            let name = node.name_any();
            if gone {
                known.write().unwrap().remove(&name);
                continue;
            }
            if known.read().unwrap().contains_key(&name) {
                continue;
            }
            let ip = match internal_ip(&node) {
                Some(ip) => ip,
                None => {
                    // Created by hand: give it what a registered fake node has.
                    let i = 10_000 + known.read().unwrap().len();
                    let filled = node_named(&name, i);
                    let patch = json!({"status": filled.status});
                    if let Err(e) = nodes.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                        tracing::warn!(node = %name, "adopting a fake node: {e}");
                        continue;
                    }
                    address(1, i)
                }
            };
            known.write().unwrap().insert(name.clone(), ip);
            // Its first lease now, not at the next round.
            let client = self.client.clone();
            tokio::spawn(async move { renew_leases(&client, &[name], "rkube-fake-node").await });
            if !pods_started {
                pods_started = true;
                tokio::spawn(pods(self.client.clone(), known.clone()));
            }
        }
    }
}

fn internal_ip(n: &Node) -> Option<String> {
    n.status.as_ref()?.addresses.as_ref()?.iter().find(|a| a.type_ == "InternalIP").map(|a| a.address.clone())
}

/// Renews the Lease of every node `names` gives, every 10 s, as the kubelet does.
/// The renewals of one round are spread over its 10 s, each on its own, as
/// independent kubelets send them: thousands of simulated nodes renewed one
/// (or a few) at a time took longer than the 40 s a lease lasts once the
/// server was busy, and every node then went NotReady at once. The bound on
/// renewals in flight is only a safety net.
pub(crate) async fn lease_loop(client: Client, manager: &'static str, names: impl Fn() -> Vec<String>) {
    const ROUND: Duration = Duration::from_secs(10);
    let inflight = Arc::new(tokio::sync::Semaphore::new(1024));
    loop {
        let start = tokio::time::Instant::now();
        let names = names();
        let step = ROUND / names.len().max(1) as u32;
        for (i, name) in names.into_iter().enumerate() {
            tokio::time::sleep_until(start + step * i as u32).await;
            let Ok(permit) = inflight.clone().acquire_owned().await else { return };
            let client = client.clone();
            tokio::spawn(async move {
                renew_leases(&client, &[name], manager).await;
                drop(permit);
            });
        }
        tokio::time::sleep_until(start + ROUND).await;
    }
}

/// Renews the Lease of each named node once: its renew time is patched, and
/// a lease that does not exist yet is created by server-side apply.
pub(crate) async fn renew_leases(client: &Client, names: &[String], manager: &'static str) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    for name in names {
        let spec = LeaseSpec {
            holder_identity: Some(name.clone()),
            lease_duration_seconds: Some(40),
            renew_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
            ..Default::default()
        };
        let pp = PatchParams { field_manager: Some(manager.into()), ..Default::default() };
        let renewed = match leases.patch(name, &pp, &Patch::Merge(json!({"spec": spec}))).await {
            Err(kube::Error::Api(e)) if e.code == 404 => {
                let lease = Lease { metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() }, spec: Some(spec) };
                let mut body = serde_json::to_value(&lease).unwrap_or_default();
                body["apiVersion"] = json!("coordination.k8s.io/v1");
                body["kind"] = json!("Lease");
                leases.patch(name, &PatchParams::apply(manager).force(), &Patch::Apply(body)).await
            }
            r => r,
        };
        if let Err(e) = renewed {
            tracing::debug!(node = %name, "renewing a node's lease: {e}");
        }
    }
}

/// Moves pods bound to a fake node to Running, ready, with an IP.
///
/// The watch is never held up by the status writes: they queue in their own
/// tasks (a bounded number at a time), each keeping only what it writes. A
/// watch loop that waited for its writes fell behind the server's buffer
/// under load, was closed and relisted every pod, over and over.
async fn pods(client: Client, known: Known) {
    let api: Api<Pod> = Api::all(client.clone());
    let mut next_ip = 0usize;
    let inflight = Arc::new(tokio::sync::Semaphore::new(64));
    // Pods not yet bound are no node's business: the watch skips them.
    let cfg = watcher::Config::default().fields("spec.nodeName!=");
    let mut stream = watcher(api, cfg).default_backoff().applied_objects().boxed();
    while let Some(ev) = stream.next().await {
        let Ok(pod) = ev else { continue };
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else { continue };
        let Some(host_ip) = known.read().unwrap().get(&node).cloned() else { continue };
        if pod.metadata.deletion_timestamp.is_some() {
            // Nothing to stop: the pod goes at once, as a kubelet's final delete.
            let client = client.clone();
            tokio::spawn(async move { crate::agent::finalize_delete(&client, &pod).await });
            continue;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
        if phase != "Pending" {
            continue;
        }
        next_ip += 1;
        let ip = address(3, next_ip);
        // Pods that do not restart forever (Jobs) run for a while, then exit:
        // `rkube.io/fake-run-seconds` (default 1) and `rkube.io/fake-exit-code` (default 0).
        let restarts = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always") == "Always";
        let ann = pod.annotations();
        let run_for = ann.get("rkube.io/fake-run-seconds").and_then(|s| s.parse::<f64>().ok()).unwrap_or(1.0);
        let exit_code: i32 = ann.get("rkube.io/fake-exit-code").and_then(|s| s.parse().ok()).unwrap_or(0);
        let run = FakeRun {
            name: pod.name_any(),
            uid: pod.uid().unwrap_or_default(),
            containers: pod.spec.iter().flat_map(|s| s.containers.iter()).map(|c| (c.name.clone(), c.image.clone().unwrap_or_default())).collect(),
        };
        let (client, ns) = (client.clone(), pod.namespace().unwrap_or_default());
        let inflight = inflight.clone();
        tokio::spawn(async move {
            let Ok(permit) = inflight.clone().acquire_owned().await else { return };
            let t = now();
            let cond = |type_: &str| json!({"type": type_, "status": "True", "lastTransitionTime": t, "lastProbeTime": null});
            let status = json!({"status": {
                "phase": "Running",
                "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"), cond("ContainersReady"), cond("PodScheduled")],
                "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
                "podIP": ip, "podIPs": [{"ip": ip}],
                "startTime": t,
                "containerStatuses": run.statuses(true, json!({"running": {"startedAt": t}})),
            }});
            let started = patch_pod_status(&client, &ns, &run.name, &status).await;
            drop(permit);
            if let Err(e) = started {
                tracing::debug!(pod = %run.name, "starting a fake pod: {e}");
                return;
            }
            if restarts {
                return;
            }
            tokio::time::sleep(Duration::from_secs_f64(run_for.max(0.0))).await;
            let Ok(_permit) = inflight.acquire_owned().await else { return };
            let t = now();
            let (phase, reason) = if exit_code == 0 { ("Succeeded", "Completed") } else { ("Failed", "Error") };
            let containers = run.statuses(false, json!({"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": t, "finishedAt": t}}));
            let cond = |type_: &str, status: &str| json!({"type": type_, "status": status, "lastTransitionTime": t, "lastProbeTime": null});
            let done = json!({"status": {"phase": phase, "containerStatuses": containers,
                "conditions": [cond("PodReadyToStartContainers", "False"), cond("Initialized", "True"), cond("Ready", "False"), cond("ContainersReady", "False"), cond("PodScheduled", "True")]}});
            if let Err(e) = patch_pod_status(&client, &ns, &run.name, &done).await {
                tracing::debug!(pod = %run.name, "finishing a fake pod: {e}");
            }
        });
    }
}

/// A merge patch of a pod's status whose answer is not decoded: the fake
/// node keeps nothing of it, and decoding every pod back was a good part of
/// its cost.
async fn patch_pod_status(client: &Client, ns: &str, name: &str, patch: &serde_json::Value) -> kube::Result<()> {
    let req = kube::core::Request::new(format!("/api/v1/namespaces/{ns}/pods"))
        .patch_subresource("status", name, &PatchParams::default(), &Patch::Merge(patch))
        .map_err(kube::Error::BuildRequest)?;
    client.request_text(req).await.map(drop)
}

/// What a fake pod's status writes need of it.
struct FakeRun {
    name: String,
    uid: String,
    /// Name and image of each container.
    containers: Vec<(String, String)>,
}

impl FakeRun {
    /// Every container in `state`, ready (and started) or not.
    fn statuses(&self, ready: bool, state: serde_json::Value) -> Vec<serde_json::Value> {
        self.containers
            .iter()
            .map(|(name, image)| {
                json!({"name": name, "image": image, "imageID": format!("fake://{image}"),
                       "containerID": format!("fake://{}-{name}", self.uid),
                       "ready": ready, "started": ready, "restartCount": 0, "state": state})
            })
            .collect()
    }
}

