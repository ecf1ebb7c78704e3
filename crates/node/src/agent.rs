//! The real node agent: registers this machine as a Node, renews its Lease,
//! and keeps the pods bound to it running through CRI. Level-triggered:
//! one worker per pod reconciles the pod's spec against what the runtime
//! has, woken by pod changes, by the relist of containers (PLEG) and by its
//! own timers (probes, back-off).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::{Notify, watch};

use crate::containerd::{self, Containerd};
use crate::cri::{Cri, api};

/// How the agent is set up; `rkube server` and `rkube node` fill it in.
#[derive(Clone)]
pub struct Config {
    pub node_name: String,
    /// The agent's own directory: containerd, pod volumes, logs.
    pub dir: PathBuf,
    /// An existing CRI endpoint; when `None` rkube starts its own containerd.
    pub runtime_endpoint: Option<String>,
    pub pause_image: String,
    pub insecure_registries: Vec<String>,
    pub pod_cidr: String,
    /// The CNI bridge's name (at most 15 bytes).
    pub bridge: String,
    /// The node's InternalIP; the agent's API listens there on `port`.
    pub address: IpAddr,
    pub port: u16,
    /// What the API server presents to reach logs, exec and port-forward.
    pub proxy_token: String,
    /// Hard eviction thresholds: crossing one sets a pressure condition.
    pub eviction_hard: crate::pressure::Thresholds,
}

/// Shared by the pod workers.
pub(crate) struct Ctx {
    pub client: Client,
    pub cri: Cri,
    pub cfg: Config,
    workers: Mutex<HashMap<String, WorkerHandle>>,
}

struct WorkerHandle {
    pod: watch::Sender<Option<Arc<Pod>>>,
    poke: Arc<Notify>,
}

/// A running agent; `stop` ends it (containers keep running and are
/// adopted by the next start, as with the kubelet).
pub struct Agent {
    containerd: Option<Containerd>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Agent {
    pub async fn start(client: Client, cfg: Config) -> Result<Agent> {
        std::fs::create_dir_all(&cfg.dir).with_context(|| format!("creating {}", cfg.dir.display()))?;
        let (containerd, cri) = match &cfg.runtime_endpoint {
            Some(ep) => (None, Cri::connect(ep).await?),
            None => {
                let conflist = cni_conflist(&cfg);
                let opts = containerd::Options {
                    dir: &cfg.dir.join("containerd"),
                    pause_image: &cfg.pause_image,
                    insecure_registries: &cfg.insecure_registries,
                    cni_conflist: &conflist,
                };
                let (c, cri) = Containerd::start(&opts).await?;
                (Some(c), cri)
            }
        };
        let version = cri.rt.clone().version(api::VersionRequest { version: "v1".into() }).await?.into_inner();
        let runtime = format!("{}://{}", version.runtime_name, version.runtime_version);
        let mut node = NodeState::new(&cfg, runtime);
        register(&client, &cfg, &node).await?;
        let ctx = Arc::new(Ctx { client: client.clone(), cri, cfg: cfg.clone(), workers: Mutex::new(HashMap::new()) });
        let listener = tokio::net::TcpListener::bind((cfg.address, cfg.port))
            .await
            .with_context(|| format!("binding the node agent's port {}:{}", cfg.address, cfg.port))?;
        let tasks = vec![
            tokio::spawn({
                let name = cfg.node_name.clone();
                crate::fake::lease_loop(client.clone(), "rkube-node", move || vec![name.clone()])
            }),
            tokio::spawn({
                let (client, cfg) = (client.clone(), cfg.clone());
                async move {
                    // Pressure conditions, re-measured every 10 s and reported when they change.
                    loop {
                        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                        if node.remeasure(&cfg)
                            && let Err(e) = report_status(&client, &cfg, &node).await
                        {
                            tracing::warn!("reporting the node's conditions: {e:#}");
                        }
                    }
                }
            }),
            tokio::spawn(watch_pods(ctx.clone())),
            tokio::spawn(pleg(ctx.clone())),
            tokio::spawn(crate::serve::serve(ctx.clone(), listener)),
        ];
        tracing::info!(node = %cfg.node_name, runtime = %version.runtime_version, "node agent running pods");
        Ok(Agent { containerd, tasks })
    }

    pub async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(c) = self.containerd {
            c.stop().await;
        }
    }
}

/// The pod network: a bridge with the node's pod CIDR, host-local
/// addresses, port mappings for hostPort. No masquerading: pods reach each
/// other and the node, nothing else is set up.
fn cni_conflist(cfg: &Config) -> String {
    json!({
        "cniVersion": "0.4.0",
        "name": format!("rkube-{}", cfg.bridge),
        "plugins": [
            {"type": "bridge", "bridge": cfg.bridge, "isGateway": true, "ipMasq": false, "hairpinMode": true,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": cfg.pod_cidr}]], "dataDir": cfg.dir.join("cni-ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    })
    .to_string()
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// What the node reports about itself, and since when each condition holds.
struct NodeState {
    runtime: String,
    /// Memory, disk and PID pressure.
    pressure: [bool; 3],
    since: [String; 3],
    ready_since: String,
}

impl NodeState {
    fn new(cfg: &Config, runtime: String) -> NodeState {
        let t = k8s_openapi::jiff::Timestamp::now().to_string();
        let (m, d, p) = cfg.eviction_hard.measure(&cfg.dir);
        NodeState { runtime, pressure: [m, d, p], since: [t.clone(), t.clone(), t.clone()], ready_since: t }
    }

    /// Measures again; true when a condition changed.
    fn remeasure(&mut self, cfg: &Config) -> bool {
        let (m, d, p) = cfg.eviction_hard.measure(&cfg.dir);
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let mut changed = false;
        for (i, v) in [m, d, p].into_iter().enumerate() {
            if self.pressure[i] != v {
                self.pressure[i] = v;
                self.since[i] = now.clone();
                changed = true;
            }
        }
        changed
    }
}

/// Creates or updates this node with server-side apply: labels, pod CIDR,
/// then its status.
async fn register(client: &Client, cfg: &Config, st: &NodeState) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let name = &cfg.node_name;
    let pp = PatchParams::apply("rkube-node").force();
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64")}},
        "spec": {"podCIDR": cfg.pod_cidr, "podCIDRs": [cfg.pod_cidr]},
    });
    nodes.patch(name, &pp, &Patch::Apply(&node)).await.context("registering the node")?;
    report_status(client, cfg, st).await
}

/// Applies the node's whole status (capacity, conditions, addresses, node
/// info): one field manager owns it, so each apply says everything.
async fn report_status(client: &Client, cfg: &Config, st: &NodeState) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let name = &cfg.node_name;
    let pp = PatchParams::apply("rkube-node").force();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let resources =
        json!({"cpu": cpus.to_string(), "memory": format!("{}Ki", crate::agent_memory_bytes() / 1024), "pods": "110", "ephemeral-storage": "100Gi"});
    let t = k8s_openapi::jiff::Timestamp::now().to_string();
    let cond = |type_: &str, status: &str, reason: &str, message: &str, since: &str| json!({"type": type_, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": t, "lastTransitionTime": since});
    let pressure = |i: usize, type_: &str, ok: (&str, &str), bad: (&str, &str)| {
        let (status, (reason, message)) = if st.pressure[i] { ("True", bad) } else { ("False", ok) };
        cond(type_, status, reason, message, &st.since[i])
    };
    let uname = |f: &str| read_trim(&format!("/proc/sys/kernel/{f}"));
    let os_image = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())))
        .unwrap_or_else(|| "Linux".into());
    let status = json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "status": {
            "capacity": resources, "allocatable": resources,
            "conditions": [
                pressure(0, "MemoryPressure", ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"), ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available")),
                pressure(1, "DiskPressure", ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"), ("KubeletHasDiskPressure", "kubelet has disk pressure")),
                pressure(2, "PIDPressure", ("KubeletHasSufficientPID", "kubelet has sufficient PID available"), ("KubeletHasInsufficientPID", "kubelet has insufficient PID available")),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status", &st.ready_since),
            ],
            "addresses": [{"type": "InternalIP", "address": cfg.address.to_string()}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": cfg.port}},
            "nodeInfo": {
                "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
                "operatingSystem": "linux",
                "kubeletVersion": concat!("v1.37.0-rkube-", env!("CARGO_PKG_VERSION")),
                "kubeProxyVersion": "",
                "containerRuntimeVersion": st.runtime,
                "osImage": os_image,
                "kernelVersion": uname("osrelease"),
                "machineID": read_trim("/etc/machine-id"),
                "systemUUID": read_trim("/etc/machine-id"),
                "bootID": uname("random/boot_id"),
            },
        }
    });
    nodes.patch_status(name, &pp, &Patch::Apply(&status)).await.context("reporting the node's status")?;
    Ok(())
}

/// Watches the pods bound to this node and hands each to its worker.
async fn watch_pods(ctx: Arc<Ctx>) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.cfg.node_name));
    let mut stream = watcher(api, cfg).default_backoff().boxed();
    // Pods seen in the current list, to find those deleted while the watch
    // was down.
    let mut listing: Option<std::collections::HashSet<String>> = None;
    while let Some(ev) = stream.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::debug!("watching pods: {e}");
                continue;
            }
        };
        match ev {
            watcher::Event::Apply(p) => dispatch(&ctx, p),
            watcher::Event::Delete(p) => {
                if let Some(uid) = p.uid()
                    && let Some(w) = ctx.workers.lock().unwrap().get(&uid)
                {
                    let _ = w.pod.send(None);
                }
            }
            watcher::Event::Init => listing = Some(Default::default()),
            watcher::Event::InitApply(p) => {
                if let (Some(l), Some(uid)) = (listing.as_mut(), p.uid()) {
                    l.insert(uid);
                }
                dispatch(&ctx, p);
            }
            watcher::Event::InitDone => {
                let seen = listing.take().unwrap_or_default();
                for (uid, w) in ctx.workers.lock().unwrap().iter() {
                    if !seen.contains(uid) {
                        let _ = w.pod.send(None);
                    }
                }
                // Sandboxes of pods this node no longer has (deleted while
                // the agent was down) are removed.
                tokio::spawn(crate::pod::remove_orphans(ctx.clone(), seen));
            }
        }
    }
}

fn dispatch(ctx: &Arc<Ctx>, pod: Pod) {
    let Some(uid) = pod.uid() else { return };
    let mut workers = ctx.workers.lock().unwrap();
    if let Some(w) = workers.get(&uid) {
        let _ = w.pod.send(Some(Arc::new(pod)));
        return;
    }
    let (tx, rx) = watch::channel(Some(Arc::new(pod)));
    let poke = Arc::new(Notify::new());
    workers.insert(uid.clone(), WorkerHandle { pod: tx, poke: poke.clone() });
    let ctx2 = ctx.clone();
    tokio::spawn(async move {
        crate::pod::Worker::new(ctx2.clone(), uid.clone()).run(rx, poke).await;
        ctx2.workers.lock().unwrap().remove(&uid);
    });
}

/// The pod lifecycle event generator: relists containers every second and
/// pokes the worker of any pod whose containers changed state, so exits
/// are noticed without a poll per pod.
async fn pleg(ctx: Arc<Ctx>) {
    let mut seen: HashMap<String, (i32, String)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Ok(list) = ctx.cri.rt.clone().list_containers(api::ListContainersRequest::default()).await else { continue };
        let mut now: HashMap<String, (i32, String)> = HashMap::new();
        for c in list.into_inner().containers {
            let uid = c.labels.get(crate::pod::LABEL_POD_UID).cloned().unwrap_or_default();
            now.insert(c.id, (c.state, uid));
        }
        let mut changed: BTreeMap<String, ()> = BTreeMap::new();
        for (id, (state, uid)) in &now {
            if seen.get(id).map(|s| s.0) != Some(*state) {
                changed.insert(uid.clone(), ());
            }
        }
        for (id, (_, uid)) in &seen {
            if !now.contains_key(id) {
                changed.insert(uid.clone(), ());
            }
        }
        seen = now;
        let workers = ctx.workers.lock().unwrap();
        for uid in changed.keys() {
            if let Some(w) = workers.get(uid) {
                w.poke.notify_one();
            }
        }
    }
}

/// Deletes the pod object for good once its containers are gone (the
/// kubelet's final, zero-grace delete), guarded by its UID.
pub(crate) async fn finalize_delete(client: &Client, pod: &Pod) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let dp = kube::api::DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(kube::api::Preconditions { uid: pod.uid(), resource_version: None }),
        ..Default::default()
    };
    if let Err(e) = pods.delete(&pod.name_any(), &dp).await {
        tracing::debug!(pod = %pod.name_any(), "final delete: {e}");
    }
}

/// Patches `pods/status` with the agent's view.
pub(crate) async fn patch_status(client: &Client, pod: &Pod, status: &serde_json::Value) -> Result<(), kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    pods.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await.map(|_| ())
}

impl Ctx {
    /// The pod this node runs under that namespace and name, if any.
    pub(crate) fn pod_by_name(&self, ns: &str, name: &str) -> Option<Arc<Pod>> {
        let workers = self.workers.lock().unwrap();
        workers.values().filter_map(|w| w.pod.borrow().clone()).find(|p| p.namespace().as_deref() == Some(ns) && p.name_any() == name)
    }
}
