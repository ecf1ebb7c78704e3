//! One pod's worker: makes the runtime match the pod (sandbox, init
//! containers in order, then containers, restarts with back-off, probes),
//! reports the pod's status as upstream does, and tears everything down
//! when the pod goes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::ResourceExt;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::agent::{Ctx, finalize_delete, patch_status};
use crate::cri::api;
use crate::spec;

pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
const ANN_RESTARTS: &str = "io.kubernetes.container.restartCount";

const BACKOFF_START: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// A quantity string as milli-units (cpu).
pub fn quantity_millis(q: &str) -> i64 {
    (quantity(q) * 1000.0).round() as i64
}

/// A quantity string as units (bytes).
pub fn quantity_bytes(q: &str) -> i64 {
    quantity(q).round() as i64
}

fn quantity(q: &str) -> f64 {
    let (num, suffix) = q.split_at(q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len()));
    let n: f64 = num.parse().unwrap_or(0.0);
    let k = 1024f64;
    n * match suffix {
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => k,
        "Mi" => k * k,
        "Gi" => k * k * k,
        "Ti" => k * k * k * k,
        _ => 1.0,
    }
}

fn rfc3339(nanos: i64) -> Value {
    if nanos <= 0 {
        return Value::Null;
    }
    k8s_openapi::jiff::Timestamp::from_nanosecond(nanos as i128)
        .map(|t| json!(t.round(k8s_openapi::jiff::Unit::Second).unwrap_or(t).to_string()))
        .unwrap_or(Value::Null)
}

fn now_rfc3339() -> String {
    let t = k8s_openapi::jiff::Timestamp::now();
    t.round(k8s_openapi::jiff::Unit::Second).unwrap_or(t).to_string()
}

#[derive(Default, Clone, Copy)]
struct ProbeState {
    next: Option<Instant>,
    successes: i32,
    failures: i32,
    ok: bool,
}

#[derive(Default)]
struct Ctr {
    id: Option<String>,
    status: Option<api::ContainerStatus>,
    /// The previous instance, once it has terminated (kept in the runtime
    /// for `logs --previous`).
    last: Option<api::ContainerStatus>,
    last_id: Option<String>,
    last_message: Option<String>,
    message: Option<String>,
    restarts: i32,
    /// Why it is not running (ErrImagePull, CrashLoopBackOff, …).
    waiting: Option<(String, String)>,
    backoff: Duration,
    not_before: Option<Instant>,
    /// Liveness, readiness, startup.
    probes: [ProbeState; 3],
}

impl Ctr {
    fn state(&self) -> i32 {
        self.status.as_ref().map(|s| s.state).unwrap_or(-1)
    }
    fn exit_code(&self) -> Option<i32> {
        self.status.as_ref().filter(|s| s.state == api::ContainerState::ContainerExited as i32).map(|s| s.exit_code)
    }
    fn running(&self) -> bool {
        self.state() == api::ContainerState::ContainerRunning as i32
    }
}

struct Sandbox {
    id: String,
    ip: String,
    config: api::PodSandboxConfig,
}

pub(crate) struct Worker {
    ctx: Arc<Ctx>,
    uid: String,
    sandbox: Option<Sandbox>,
    volumes: BTreeMap<String, PathBuf>,
    ctrs: HashMap<String, Ctr>,
    reported: Option<Value>,
    start_time: Option<String>,
    /// Set once the pod reached Succeeded or Failed: nothing restarts.
    terminal: Option<&'static str>,
    /// Why the sandbox or volumes could not be set up.
    setup_error: Option<String>,
    /// When configMap, secret, downward API and token volumes were last written.
    volumes_synced: Option<Instant>,
}

/// The longest a postStart hook may run.
const HOOK_TIMEOUT: Duration = Duration::from_secs(120);

/// How often volumes with API content are rewritten from their sources.
const VOLUME_RESYNC: Duration = Duration::from_secs(20);

impl Worker {
    pub fn new(ctx: Arc<Ctx>, uid: String) -> Worker {
        Worker {
            ctx,
            uid,
            sandbox: None,
            volumes: BTreeMap::new(),
            ctrs: HashMap::new(),
            reported: None,
            start_time: None,
            terminal: None,
            setup_error: None,
            volumes_synced: None,
        }
    }

    pub async fn run(mut self, mut rx: watch::Receiver<Option<Arc<Pod>>>, poke: Arc<Notify>) {
        loop {
            let pod = rx.borrow_and_update().clone();
            let Some(pod) = pod else {
                self.teardown(None, 2).await;
                return;
            };
            if pod.metadata.deletion_timestamp.is_some() {
                let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(30);
                self.teardown(Some(&pod), grace).await;
                finalize_delete(&self.ctx.client, &pod).await;
                return;
            }
            let next = match self.sync(&pod).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(pod = %pod.name_any(), "syncing: {e:#}");
                    Instant::now() + Duration::from_secs(2)
                }
            };
            let next = match self.volumes_synced {
                Some(t) if self.terminal.is_none() => next.min(t + VOLUME_RESYNC),
                _ => next,
            };
            self.report(&pod).await;
            tokio::select! {
                r = rx.changed() => if r.is_err() { self.teardown(None, 2).await; return; },
                _ = poke.notified() => {}
                _ = tokio::time::sleep_until(next) => {}
            }
        }
    }

    fn event(&self, pod: &Pod, container: Option<&str>, type_: &str, reason: &str, message: String) {
        crate::events::emit(&self.ctx, pod, container, type_, reason, message);
    }

    /// One pass: returns when the worker next needs to run on its own.
    async fn sync(&mut self, pod: &Pod) -> Result<Instant> {
        let far = Instant::now() + Duration::from_secs(60);
        if self.terminal.is_some() {
            return Ok(far);
        }
        let spec = pod.spec.clone().ok_or_else(|| anyhow!("pod has no spec"))?;
        if self.start_time.is_none() {
            self.start_time = Some(pod.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0.to_string()).unwrap_or_else(now_rfc3339));
        }
        if self.sandbox.is_none() {
            if let Err((reason, e)) = self.setup(pod).await {
                let msg = format!("{e:#}");
                // Said once per distinct failure, not on every retry.
                if self.setup_error.as_ref() != Some(&msg) {
                    self.event(pod, None, "Warning", reason, msg.clone());
                }
                self.setup_error = Some(msg);
                return Ok(Instant::now() + Duration::from_secs(2));
            }
            self.setup_error = None;
            self.volumes_synced = Some(Instant::now());
        } else if self.volumes_synced.is_some_and(|t| t.elapsed() >= VOLUME_RESYNC) {
            // Running containers see updated keys and renewed tokens.
            if let Err(e) = spec::prepare_volumes(&self.ctx.client, &self.ctx.cfg.dir, pod).await {
                tracing::warn!(pod = %pod.name_any(), "refreshing volumes: {e:#}");
            }
            self.volumes_synced = Some(Instant::now());
        }
        self.refresh().await;
        let policy = spec.restart_policy.clone().unwrap_or_else(|| "Always".into());
        let mut next = far;
        // Init containers, in order; each must succeed before the next.
        for c in spec.init_containers.iter().flatten() {
            let ctr = self.ctrs.entry(c.name.clone()).or_default();
            match ctr.exit_code() {
                Some(0) => continue,
                Some(_) if policy == "Never" => {
                    self.terminal = Some("Failed");
                    self.stop_sandbox().await;
                    return Ok(far);
                }
                _ if ctr.running() => return Ok(far),
                _ => {
                    if let Some(t) = self.start_when_due(pod, c).await {
                        next = next.min(t);
                    }
                    return Ok(next);
                }
            }
        }
        for c in &spec.containers {
            let ctr = self.ctrs.entry(c.name.clone()).or_default();
            if ctr.running() {
                if let Some(t) = self.probe(pod, c).await {
                    next = next.min(t);
                }
                continue;
            }
            let restart = match ctr.exit_code() {
                None => true,
                Some(code) => policy == "Always" || (policy == "OnFailure" && code != 0),
            };
            if restart && let Some(t) = self.start_when_due(pod, c).await {
                next = next.min(t);
            }
        }
        // All done and nothing restarts: the pod is over.
        let all_exited: Vec<Option<i32>> = spec.containers.iter().map(|c| self.ctrs.get(&c.name).and_then(|x| x.exit_code())).collect();
        if all_exited.iter().all(|e| e.is_some()) {
            let failed = all_exited.iter().any(|e| *e != Some(0));
            let done = match policy.as_str() {
                "Never" => true,
                "OnFailure" => !failed,
                _ => false,
            };
            if done {
                self.terminal = Some(if failed { "Failed" } else { "Succeeded" });
                self.stop_sandbox().await;
            }
        }
        Ok(next)
    }

    /// Volumes, then the sandbox (adopted when one from an earlier agent
    /// run is still ready).
    async fn setup(&mut self, pod: &Pod) -> Result<(), (&'static str, anyhow::Error)> {
        self.volumes = spec::prepare_volumes(&self.ctx.client, &self.ctx.cfg.dir, pod).await.map_err(|e| ("FailedMount", e))?;
        self.sandbox(pod).await.map_err(|e| ("FailedCreatePodSandBox", e))
    }

    async fn sandbox(&mut self, pod: &Pod) -> Result<()> {
        let config = sandbox_config(&self.ctx.cfg, pod);
        let mut rt = self.ctx.cri.rt.clone();
        let filter = api::PodSandboxFilter { label_selector: [(LABEL_POD_UID.to_string(), self.uid.clone())].into(), ..Default::default() };
        let existing = rt.list_pod_sandbox(api::ListPodSandboxRequest { filter: Some(filter) }).await?.into_inner().items;
        let ready = existing.iter().filter(|s| s.state == api::PodSandboxState::SandboxReady as i32).max_by_key(|s| s.created_at);
        let id = match ready {
            Some(s) => s.id.clone(),
            None => {
                let mut config = config.clone();
                if let Some(m) = config.metadata.as_mut() {
                    m.attempt = existing.len() as u32;
                }
                let r = rt.run_pod_sandbox(api::RunPodSandboxRequest { config: Some(config), runtime_handler: String::new() }).await;
                match r {
                    Ok(r) => r.into_inner().pod_sandbox_id,
                    Err(e) => return Err(anyhow!("Failed to create pod sandbox: {}", e.message())),
                }
            }
        };
        let st = rt.pod_sandbox_status(api::PodSandboxStatusRequest { pod_sandbox_id: id.clone(), verbose: false }).await?.into_inner();
        let ip = st.status.and_then(|s| s.network).map(|n| n.ip).unwrap_or_default();
        let ip = if ip.is_empty() && host_network(pod) { self.ctx.cfg.address.to_string() } else { ip };
        // Adopt the sandbox's containers: the latest attempt of each name.
        let cf = api::ContainerFilter { pod_sandbox_id: id.clone(), ..Default::default() };
        let list = rt.list_containers(api::ListContainersRequest { filter: Some(cf) }).await?.into_inner().containers;
        let mut latest: HashMap<String, &api::Container> = HashMap::new();
        for c in &list {
            let name = c.labels.get(LABEL_CONTAINER_NAME).cloned().unwrap_or_default();
            let attempt = c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
            if latest.get(&name).is_none_or(|o| o.metadata.as_ref().map(|m| m.attempt).unwrap_or(0) < attempt) {
                latest.insert(name, c);
            }
        }
        for (name, c) in latest {
            let ctr = self.ctrs.entry(name).or_default();
            ctr.id = Some(c.id.clone());
            ctr.restarts = c.annotations.get(ANN_RESTARTS).and_then(|r| r.parse().ok()).unwrap_or(0);
        }
        self.sandbox = Some(Sandbox { id, ip, config });
        Ok(())
    }

    /// Reads the current state of every known container from the runtime.
    async fn refresh(&mut self) {
        let mut rt = self.ctx.cri.rt.clone();
        let term_dir = spec::pod_dir(&self.ctx.cfg.dir, &self.uid).join("termination");
        for (name, ctr) in self.ctrs.iter_mut() {
            let Some(id) = ctr.id.clone() else { continue };
            match rt.container_status(api::ContainerStatusRequest { container_id: id, verbose: false }).await {
                Ok(r) => {
                    let st = r.into_inner().status;
                    let exited = st.as_ref().is_some_and(|s| s.state == api::ContainerState::ContainerExited as i32);
                    if exited && ctr.message.is_none() {
                        let attempt = st.as_ref().and_then(|s| s.metadata.as_ref()).map(|m| m.attempt).unwrap_or(0);
                        let msg = std::fs::read_to_string(term_dir.join(format!("{name}-{attempt}"))).unwrap_or_default();
                        ctr.message = Some(msg.chars().take(4096).collect());
                    }
                    ctr.status = st;
                }
                Err(e) if e.code() == tonic::Code::NotFound => {
                    ctr.id = None;
                    ctr.status = None;
                }
                Err(_) => {}
            }
        }
    }

    /// Starts (or restarts) a container now, or says when back-off allows it.
    async fn start_when_due(&mut self, pod: &Pod, c: &Container) -> Option<Instant> {
        let now = Instant::now();
        let ctr = self.ctrs.get_mut(&c.name)?;
        let restarting = ctr.exit_code().is_some();
        if restarting && ctr.not_before.is_none() {
            // First restart right away, then 10 s, 20 s, … up to 5 min.
            if ctr.backoff.is_zero() {
                ctr.backoff = BACKOFF_START;
            } else {
                ctr.not_before = Some(now + ctr.backoff);
                let msg = format!(
                    "back-off {}s restarting failed container={} pod={}_{}({})",
                    ctr.backoff.as_secs(),
                    c.name,
                    pod.name_any(),
                    pod.namespace().unwrap_or_default(),
                    self.uid
                );
                ctr.waiting = Some(("CrashLoopBackOff".into(), msg.clone()));
                ctr.backoff = (ctr.backoff * 2).min(BACKOFF_MAX);
                crate::events::emit(&self.ctx, pod, Some(&c.name), "Warning", "BackOff", "Back-off restarting failed container".into());
            }
        }
        if let Some(t) = ctr.not_before
            && t > now
        {
            return Some(t);
        }
        self.start(pod, c).await.err()
    }

    /// Pulls if needed, creates and starts one container. On failure the
    /// container waits with the upstream reason and the retry time is
    /// returned.
    async fn start(&mut self, pod: &Pod, c: &Container) -> Result<(), Instant> {
        let image = c.image.clone().unwrap_or_default();
        let sandbox_config = self.sandbox.as_ref().map(|s| s.config.clone());
        let sandbox_id = self.sandbox.as_ref().map(|s| s.id.clone()).unwrap_or_default();
        if let Err((reason, msg)) = self.ensure_image(pod, c, &image, sandbox_config.clone()).await {
            let ctr = self.ctrs.entry(c.name.clone()).or_default();
            let retry = ctr.backoff.max(BACKOFF_START);
            // ErrImagePull the first time, ImagePullBackOff while waiting.
            let shown =
                if ctr.waiting.as_ref().is_some_and(|w| w.0 == "ErrImagePull" || w.0 == "ImagePullBackOff") { "ImagePullBackOff" } else { reason };
            ctr.waiting = Some((shown.into(), msg));
            ctr.backoff = (retry * 2).min(BACKOFF_MAX);
            let t = Instant::now() + retry;
            ctr.not_before = Some(t);
            return Err(t);
        }
        let ctr = self.ctrs.entry(c.name.clone()).or_default();
        let restarts = if ctr.id.is_some() { ctr.restarts + 1 } else { ctr.restarts };
        let attempt = restarts as u32;
        let config = match self.container_config(pod, c, attempt, restarts).await {
            Ok(cfg) => cfg,
            Err(e) => {
                let ctr = self.ctrs.entry(c.name.clone()).or_default();
                ctr.waiting = Some(("CreateContainerConfigError".into(), format!("{e:#}")));
                self.event(pod, Some(&c.name), "Warning", "Failed", format!("Error: {e:#}"));
                return Err(Instant::now() + Duration::from_secs(2));
            }
        };
        let mut rt = self.ctx.cri.rt.clone();
        let created = rt.create_container(api::CreateContainerRequest { pod_sandbox_id: sandbox_id, config: Some(config), sandbox_config }).await;
        let id = match created {
            Ok(r) => r.into_inner().container_id,
            Err(e) => {
                let ctr = self.ctrs.entry(c.name.clone()).or_default();
                ctr.waiting = Some(("CreateContainerError".into(), e.message().to_string()));
                self.event(pod, Some(&c.name), "Warning", "Failed", format!("Error: {}", e.message()));
                return Err(Instant::now() + Duration::from_secs(2));
            }
        };
        self.event(pod, Some(&c.name), "Normal", "Created", format!("Created container: {}", c.name));
        let started = rt.start_container(api::StartContainerRequest { container_id: id.clone() }).await;
        let ctr = self.ctrs.entry(c.name.clone()).or_default();
        // The old instance becomes lastState; the new one starts fresh.
        if ctr.status.is_some() {
            ctr.last = ctr.status.take();
            ctr.last_message = ctr.message.take();
        }
        if let Some(old) = ctr.id.replace(id.clone())
            && let Some(older) = ctr.last_id.replace(old)
        {
            let _ = rt.remove_container(api::RemoveContainerRequest { container_id: older }).await;
        }
        ctr.restarts = restarts;
        ctr.not_before = None;
        ctr.probes = Default::default();
        if let Err(e) = started {
            ctr.waiting = Some(("RunContainerError".into(), e.message().to_string()));
            self.event(pod, Some(&c.name), "Warning", "Failed", format!("Error: {}", e.message()));
            return Err(Instant::now() + Duration::from_secs(2));
        }
        ctr.waiting = None;
        self.event(pod, Some(&c.name), "Normal", "Started", format!("Started container {}", c.name));
        // postStart runs before the container counts as started; when it
        // fails the container is killed and restarts by the pod's policy.
        if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let ip = self.sandbox.as_ref().map(|s| s.ip.clone()).unwrap_or_default();
            if let Err(msg) = crate::probe::hook(&self.ctx.cri, h, &id, &ip, c, HOOK_TIMEOUT).await {
                self.event(pod, Some(&c.name), "Warning", "FailedPostStartHook", msg);
                let grace = pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
                let _ = rt.stop_container(api::StopContainerRequest { container_id: id.clone(), timeout: grace }).await;
            }
        }
        if let Ok(r) = rt.container_status(api::ContainerStatusRequest { container_id: id, verbose: false }).await {
            let ctr = self.ctrs.entry(c.name.clone()).or_default();
            ctr.status = r.into_inner().status;
        }
        Ok(())
    }

    async fn ensure_image(
        &self,
        pod: &Pod,
        c: &Container,
        image: &str,
        sandbox: Option<api::PodSandboxConfig>,
    ) -> Result<(), (&'static str, String)> {
        let mut img = self.ctx.cri.img.clone();
        let spec = api::ImageSpec { image: image.to_string(), ..Default::default() };
        let tagged_latest = !image.rsplit('/').next().unwrap_or("").contains(':') || image.ends_with(":latest");
        let policy = c.image_pull_policy.clone().unwrap_or_else(|| if tagged_latest { "Always".into() } else { "IfNotPresent".into() });
        let present = img
            .image_status(api::ImageStatusRequest { image: Some(spec.clone()), verbose: false })
            .await
            .ok()
            .and_then(|r| r.into_inner().image)
            .is_some();
        if present && policy != "Always" {
            self.event(pod, Some(&c.name), "Normal", "Pulled", format!("Container image {image:?} already present on machine"));
            return Ok(());
        }
        if policy == "Never" {
            let msg = format!("Container image {image:?} is not present with pull policy of Never");
            self.event(pod, Some(&c.name), "Warning", "ErrImageNeverPull", msg.clone());
            return Err(("ErrImageNeverPull", msg));
        }
        self.event(pod, Some(&c.name), "Normal", "Pulling", format!("Pulling image {image:?}"));
        let started = std::time::Instant::now();
        match img.pull_image(api::PullImageRequest { image: Some(spec), auth: None, sandbox_config: sandbox }).await {
            Ok(_) => {
                self.event(
                    pod,
                    Some(&c.name),
                    "Normal",
                    "Pulled",
                    format!("Successfully pulled image {image:?} in {:.3}s", started.elapsed().as_secs_f64()),
                );
                Ok(())
            }
            Err(e) => {
                let msg = format!("Failed to pull image {image:?}: {}", e.message());
                self.event(pod, Some(&c.name), "Warning", "Failed", msg.clone());
                Err(("ErrImagePull", msg))
            }
        }
    }

    async fn container_config(&self, pod: &Pod, c: &Container, attempt: u32, restarts: i32) -> Result<api::ContainerConfig> {
        let spec = pod.spec.clone().unwrap_or_default();
        let env = spec::environment(&self.ctx.client, pod, c).await?;
        let mut mounts = spec::mounts(c, &self.volumes)?;
        let term_path = c.termination_message_path.clone().unwrap_or_else(|| "/dev/termination-log".into());
        let term_dir = spec::pod_dir(&self.ctx.cfg.dir, &self.uid).join("termination");
        std::fs::create_dir_all(&term_dir)?;
        let term_file = term_dir.join(format!("{}-{attempt}", c.name));
        std::fs::write(&term_file, b"").context("creating the termination message file")?;
        mounts.push(api::Mount { container_path: term_path, host_path: term_file.to_string_lossy().into_owned(), ..Default::default() });
        let psc = spec.security_context.clone().unwrap_or_default();
        let sc = c.security_context.clone().unwrap_or_default();
        let caps = sc.capabilities.clone().unwrap_or_default();
        let limits = c.resources.as_ref().and_then(|r| r.limits.clone()).unwrap_or_default();
        let requests = c.resources.as_ref().and_then(|r| r.requests.clone()).unwrap_or_default();
        let cpu_req = requests.get("cpu").or(limits.get("cpu")).map(|q| quantity_millis(&q.0));
        let mut resources = api::LinuxContainerResources { cpu_shares: cpu_req.map(|m| (m * 1024 / 1000).max(2)).unwrap_or(2), ..Default::default() };
        if let Some(l) = limits.get("cpu") {
            resources.cpu_period = 100_000;
            resources.cpu_quota = (quantity_millis(&l.0) * 100).max(1000);
        }
        if let Some(l) = limits.get("memory") {
            resources.memory_limit_in_bytes = quantity_bytes(&l.0);
        }
        let labels: std::collections::HashMap<String, String> = [
            (LABEL_POD_UID, self.uid.clone()),
            (LABEL_POD_NAME, pod.name_any()),
            (LABEL_POD_NAMESPACE, pod.namespace().unwrap_or_default()),
            (LABEL_CONTAINER_NAME, c.name.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let expand = |v: &Option<Vec<String>>| v.iter().flatten().map(|s| spec::expand(s, &env)).collect::<Vec<_>>();
        let ns = self
            .sandbox
            .as_ref()
            .and_then(|s| s.config.linux.as_ref())
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone());
        Ok(api::ContainerConfig {
            metadata: Some(api::ContainerMetadata { name: c.name.clone(), attempt }),
            image: Some(api::ImageSpec { image: c.image.clone().unwrap_or_default(), ..Default::default() }),
            command: expand(&c.command),
            args: expand(&c.args),
            working_dir: c.working_dir.clone().unwrap_or_default(),
            envs: env.iter().map(|(k, v)| api::KeyValue { key: k.clone(), value: v.clone() }).collect(),
            mounts,
            labels,
            annotations: [(ANN_RESTARTS.to_string(), restarts.to_string())].into(),
            log_path: format!("{}/{attempt}.log", c.name),
            stdin: c.stdin.unwrap_or(false),
            stdin_once: c.stdin_once.unwrap_or(false),
            tty: c.tty.unwrap_or(false),
            linux: Some(api::LinuxContainerConfig {
                resources: Some(resources),
                security_context: Some(api::LinuxContainerSecurityContext {
                    capabilities: Some(api::Capability {
                        add_capabilities: caps.add.unwrap_or_default(),
                        drop_capabilities: caps.drop.unwrap_or_default(),
                        ..Default::default()
                    }),
                    privileged: sc.privileged.unwrap_or(false),
                    namespace_options: ns,
                    run_as_user: sc.run_as_user.or(psc.run_as_user).map(|v| api::Int64Value { value: v }),
                    run_as_group: sc.run_as_group.or(psc.run_as_group).map(|v| api::Int64Value { value: v }),
                    readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
                    supplemental_groups: psc.supplemental_groups.clone().unwrap_or_default(),
                    no_new_privs: sc.allow_privilege_escalation == Some(false),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        })
    }

    /// Runs due probes of a running container; kills it when liveness fails.
    /// Returns when the next probe is due.
    async fn probe(&mut self, pod: &Pod, c: &Container) -> Option<Instant> {
        let ip = self.sandbox.as_ref().map(|s| s.ip.clone()).unwrap_or_default();
        let now = Instant::now();
        let ctr = self.ctrs.get_mut(&c.name)?;
        let id = ctr.id.clone()?;
        let started_at = ctr.status.as_ref().map(|s| s.started_at).unwrap_or(0);
        let since_start = Duration::from_nanos((k8s_openapi::jiff::Timestamp::now().as_nanosecond() as i64 - started_at).max(0) as u64);
        let mut next: Option<Instant> = None;
        let startup_done = c.startup_probe.is_none() || ctr.probes[2].ok;
        for (i, probe) in [&c.liveness_probe, &c.readiness_probe, &c.startup_probe].into_iter().enumerate() {
            let Some(p) = probe else { continue };
            if i != 2 && !startup_done {
                continue;
            }
            if i == 2 && startup_done {
                continue;
            }
            let st = &mut ctr.probes[i];
            let initial = Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64);
            let due = st.next.unwrap_or(now + initial.saturating_sub(since_start));
            if due > now {
                next = Some(next.map_or(due, |n| n.min(due)));
                st.next = Some(due);
                continue;
            }
            let ok = crate::probe::run(&self.ctx.cri, p, &id, &ip, c).await;
            let st = &mut ctr.probes[i];
            if ok {
                st.successes += 1;
                st.failures = 0;
                if st.successes >= p.success_threshold.unwrap_or(1).max(1) {
                    st.ok = true;
                }
            } else {
                st.failures += 1;
                st.successes = 0;
                if st.failures >= p.failure_threshold.unwrap_or(3).max(1) {
                    st.ok = false;
                }
            }
            let period = Duration::from_secs(p.period_seconds.unwrap_or(10).max(1) as u64);
            st.next = Some(Instant::now() + period);
            next = Some(next.map_or(now + period, |n| n.min(now + period)));
            let failed_out = !ok && st.failures >= p.failure_threshold.unwrap_or(3).max(1);
            if !ok {
                let kind = ["Liveness", "Readiness", "Startup"][i];
                crate::events::emit(&self.ctx, pod, Some(&c.name), "Warning", "Unhealthy", format!("{kind} probe failed"));
            }
            if failed_out && (i == 0 || i == 2) {
                // Liveness (or startup) failed: the container is killed and
                // restarted according to the pod's restart policy.
                let kind = if i == 0 { "liveness" } else { "startup" };
                crate::events::emit(
                    &self.ctx,
                    pod,
                    Some(&c.name),
                    "Normal",
                    "Killing",
                    format!("Container {} failed {kind} probe, will be restarted", c.name),
                );
                let grace = pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
                let grace = self.pre_stop(pod, c, &id, &ip, grace).await;
                let _ = self.ctx.cri.rt.clone().stop_container(api::StopContainerRequest { container_id: id.clone(), timeout: grace }).await;
                return Some(Instant::now());
            }
        }
        next
    }

    /// Runs the container's preStop hook within the grace period and returns
    /// what is left of it for the stop (at least 2 s, as upstream).
    async fn pre_stop(&self, pod: &Pod, c: &Container, id: &str, ip: &str, grace: i64) -> i64 {
        let Some(h) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) else { return grace };
        let started = Instant::now();
        let budget = Duration::from_secs(grace.max(0) as u64);
        if let Err(msg) = crate::probe::hook(&self.ctx.cri, h, id, ip, c, budget).await {
            crate::events::emit(&self.ctx, pod, Some(&c.name), "Warning", "FailedPreStopHook", msg);
        }
        (grace - started.elapsed().as_secs() as i64).max(2)
    }

    async fn stop_sandbox(&mut self) {
        if let Some(s) = &self.sandbox {
            let _ = self.ctx.cri.rt.clone().stop_pod_sandbox(api::StopPodSandboxRequest { pod_sandbox_id: s.id.clone() }).await;
        }
    }

    /// Stops the containers (SIGTERM, then SIGKILL after `grace` seconds,
    /// all at once), removes them and the sandbox, and cleans the volumes.
    async fn teardown(&mut self, pod: Option<&Pod>, grace: i64) {
        let mut rt = self.ctx.cri.rt.clone();
        let filter = api::PodSandboxFilter { label_selector: [(LABEL_POD_UID.to_string(), self.uid.clone())].into(), ..Default::default() };
        let sandboxes =
            rt.list_pod_sandbox(api::ListPodSandboxRequest { filter: Some(filter) }).await.map(|r| r.into_inner().items).unwrap_or_default();
        let mut ids: Vec<String> = sandboxes.iter().map(|s| s.id.clone()).collect();
        if let Some(s) = &self.sandbox
            && !ids.contains(&s.id)
        {
            ids.push(s.id.clone());
        }
        for sid in &ids {
            let cf = api::ContainerFilter { pod_sandbox_id: sid.clone(), ..Default::default() };
            let list =
                rt.list_containers(api::ListContainersRequest { filter: Some(cf) }).await.map(|r| r.into_inner().containers).unwrap_or_default();
            let running: Vec<&api::Container> = list.iter().filter(|c| c.state == api::ContainerState::ContainerRunning as i32).collect();
            if let Some(pod) = pod {
                for c in &running {
                    let name = c.labels.get(LABEL_CONTAINER_NAME).cloned().unwrap_or_default();
                    crate::events::emit(&self.ctx, pod, Some(&name), "Normal", "Killing", format!("Stopping container {name}"));
                }
            }
            let ip = self.sandbox.as_ref().map(|s| s.ip.clone()).unwrap_or_default();
            let this = &*self;
            let stops = running.iter().map(|c| {
                let mut rt = rt.clone();
                let id = c.id.clone();
                let name = c.labels.get(LABEL_CONTAINER_NAME).cloned().unwrap_or_default();
                let ip = ip.clone();
                async move {
                    let spec = pod.and_then(|p| p.spec.as_ref()).and_then(|s| s.containers.iter().find(|c| c.name == name));
                    let grace = match (pod, spec) {
                        (Some(pod), Some(spec)) => this.pre_stop(pod, spec, &id, &ip, grace).await,
                        _ => grace,
                    };
                    rt.stop_container(api::StopContainerRequest { container_id: id, timeout: grace.max(0) }).await
                }
            });
            futures::future::join_all(stops).await;
            for c in &list {
                let _ = rt.remove_container(api::RemoveContainerRequest { container_id: c.id.clone() }).await;
            }
            let _ = rt.stop_pod_sandbox(api::StopPodSandboxRequest { pod_sandbox_id: sid.clone() }).await;
            let _ = rt.remove_pod_sandbox(api::RemovePodSandboxRequest { pod_sandbox_id: sid.clone() }).await;
        }
        spec::cleanup_volumes(&self.ctx.cfg.dir, &self.uid).await;
        self.sandbox = None;
    }

    /// Writes the pod's status when it differs from what was last written.
    async fn report(&mut self, pod: &Pod) {
        let status = self.status(pod);
        if self.reported.as_ref() == Some(&status) {
            return;
        }
        match patch_status(&self.ctx.client, pod, &status).await {
            Ok(()) => self.reported = Some(status),
            Err(e) => tracing::debug!(pod = %pod.name_any(), "reporting status: {e}"),
        }
    }

    fn container_status(&self, c: &Container, init: bool) -> Value {
        let ctr = self.ctrs.get(&c.name);
        let state = |st: &api::ContainerStatus, msg: Option<&String>, id: &str| -> Value {
            if st.state == api::ContainerState::ContainerRunning as i32 {
                json!({"running": {"startedAt": rfc3339(st.started_at)}})
            } else if st.state == api::ContainerState::ContainerExited as i32 {
                let reason = if !st.reason.is_empty() {
                    st.reason.clone()
                } else if st.exit_code == 0 {
                    "Completed".into()
                } else {
                    "Error".into()
                };
                let mut t = json!({"exitCode": st.exit_code, "reason": reason, "startedAt": rfc3339(st.started_at), "finishedAt": rfc3339(st.finished_at), "containerID": format!("containerd://{id}")});
                let message = msg.cloned().filter(|m| !m.is_empty()).or_else(|| Some(st.message.clone()).filter(|m| !m.is_empty()));
                if let Some(m) = message {
                    t["message"] = json!(m);
                }
                json!({"terminated": t})
            } else {
                json!({"waiting": {"reason": "ContainerCreating"}})
            }
        };
        let mut s = json!({"name": c.name, "image": c.image, "imageID": "", "ready": false, "restartCount": ctr.map(|x| x.restarts).unwrap_or(0), "started": false, "lastState": {}});
        let Some(ctr) = ctr else {
            s["state"] = json!({"waiting": {"reason": if init { "PodInitializing" } else { "ContainerCreating" }}});
            return s;
        };
        if let Some(st) = &ctr.status {
            let id = st.id.clone();
            s["state"] = state(st, ctr.message.as_ref(), &id);
            s["containerID"] = json!(format!("containerd://{id}"));
            s["imageID"] = json!(st.image_ref);
            let running = st.state == api::ContainerState::ContainerRunning as i32;
            let started = running && (c.startup_probe.is_none() || ctr.probes[2].ok);
            s["started"] = json!(started);
            let ready = if init {
                st.state == api::ContainerState::ContainerExited as i32 && st.exit_code == 0
            } else {
                started && (c.readiness_probe.is_none() || ctr.probes[1].ok)
            };
            s["ready"] = json!(ready);
        } else {
            s["state"] = json!({"waiting": {"reason": if init { "PodInitializing" } else { "ContainerCreating" }}});
        }
        if let Some((reason, message)) = &ctr.waiting {
            s["state"] = json!({"waiting": {"reason": reason, "message": message}});
            s["ready"] = json!(false);
            s["started"] = json!(false);
            // While waiting to restart, the exited instance is lastState.
            if let Some(st) = &ctr.status
                && st.state == api::ContainerState::ContainerExited as i32
            {
                s["lastState"] = state(st, ctr.message.as_ref(), &st.id);
                return s;
            }
        }
        if let Some(last) = &ctr.last {
            s["lastState"] = state(last, ctr.last_message.as_ref(), &last.id);
        }
        s
    }

    fn status(&self, pod: &Pod) -> Value {
        let spec = pod.spec.clone().unwrap_or_default();
        let init: Vec<Value> = spec.init_containers.iter().flatten().map(|c| self.container_status(c, true)).collect();
        let main: Vec<Value> = spec.containers.iter().map(|c| self.container_status(c, false)).collect();
        let initialized = init.iter().all(|s| s["ready"] == json!(true));
        let all_ready = !main.is_empty() && main.iter().all(|s| s["ready"] == json!(true));
        // Upstream's rule: a container waiting for the first time keeps the
        // pod Pending; one waiting to restart counts as stopped.
        let (mut running, mut waiting, mut stopped) = (0, 0, 0);
        for s in &main {
            if s["state"].get("running").is_some() {
                running += 1;
            } else if s["state"].get("terminated").is_some() || s["lastState"].get("terminated").is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        }
        let phase = match self.terminal {
            Some(p) => p,
            None if !initialized || waiting > 0 => "Pending",
            None if running > 0 || stopped > 0 => "Running",
            None => "Pending",
        };
        let terminal = self.terminal.is_some();
        let old = pod.status.clone().unwrap_or_default();
        let old_conditions = old.conditions.clone().unwrap_or_default();
        let t = now_rfc3339();
        let cond = |type_: &str, ok: bool, reason: Option<&str>| {
            let status = if ok { "True" } else { "False" };
            let since = old_conditions
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0.to_string())
                .unwrap_or_else(|| t.clone());
            let mut c = json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
            if let Some(r) = reason {
                c["reason"] = json!(r);
            }
            c
        };
        let unready_reason = if terminal {
            Some("PodCompleted")
        } else if !initialized {
            Some("ContainersNotInitialized")
        } else {
            Some("ContainersNotReady")
        };
        let mut conditions = vec![
            cond("PodReadyToStartContainers", self.sandbox.is_some() && !terminal, None),
            cond("Initialized", initialized, if initialized { None } else { Some("ContainersNotInitialized") }),
            cond("Ready", all_ready && !terminal, if all_ready && !terminal { None } else { unready_reason }),
            cond("ContainersReady", all_ready && !terminal, if all_ready && !terminal { None } else { unready_reason }),
        ];
        if let Some(ps) = old_conditions.iter().find(|c| c.type_ == "PodScheduled") {
            conditions.push(serde_json::to_value(ps).unwrap_or_default());
        }
        let host_ip = self.ctx.cfg.address.to_string();
        let mut status = json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
            "startTime": self.start_time,
            "containerStatuses": main,
        });
        if !init.is_empty() {
            status["initContainerStatuses"] = json!(init);
        }
        if let Some(s) = self.sandbox.as_ref().filter(|s| !s.ip.is_empty()) {
            status["podIP"] = json!(s.ip);
            status["podIPs"] = json!([{"ip": s.ip}]);
        } else if let Some(ip) = &old.pod_ip {
            status["podIP"] = json!(ip);
        }
        if let Some(e) = &self.setup_error {
            status["message"] = json!(e);
        }
        status
    }
}

fn host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false)
}

/// The sandbox for a pod: identity, hostname, logs, host ports, namespaces.
fn sandbox_config(cfg: &crate::agent::Config, pod: &Pod) -> api::PodSandboxConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let (name, ns, uid) = (pod.name_any(), pod.namespace().unwrap_or_default(), pod.uid().unwrap_or_default());
    let mode =
        |host: Option<bool>, otherwise: api::NamespaceMode| if host.unwrap_or(false) { api::NamespaceMode::Node as i32 } else { otherwise as i32 };
    let pid_default = if spec.share_process_namespace.unwrap_or(false) { api::NamespaceMode::Pod } else { api::NamespaceMode::Container };
    let ports = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.unwrap_or(0) > 0)
        .map(|p| api::PortMapping {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => api::Protocol::Udp as i32,
                Some("SCTP") => api::Protocol::Sctp as i32,
                _ => api::Protocol::Tcp as i32,
            },
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or(0),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect();
    let mut labels: std::collections::HashMap<String, String> = pod.labels().clone().into_iter().collect();
    labels.insert(LABEL_POD_UID.into(), uid.clone());
    labels.insert(LABEL_POD_NAME.into(), name.clone());
    labels.insert(LABEL_POD_NAMESPACE.into(), ns.clone());
    let psc = spec.security_context.clone().unwrap_or_default();
    // A host-network pod shares the node's UTS namespace and keeps its name.
    let hostname = if spec.host_network.unwrap_or(false) {
        String::new()
    } else {
        spec.hostname.clone().unwrap_or_else(|| name.chars().take(63).collect::<String>().trim_end_matches(['-', '.']).to_string())
    };
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata { name: name.clone(), uid: uid.clone(), namespace: ns.clone(), attempt: 0 }),
        hostname,
        log_directory: log_dir(&cfg.dir, &ns, &name, &uid).to_string_lossy().into_owned(),
        port_mappings: ports,
        labels,
        annotations: pod.annotations().clone().into_iter().collect(),
        linux: Some(api::LinuxPodSandboxConfig {
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(api::NamespaceOption {
                    network: mode(spec.host_network, api::NamespaceMode::Pod),
                    pid: mode(spec.host_pid, pid_default),
                    ipc: mode(spec.host_ipc, api::NamespaceMode::Pod),
                    ..Default::default()
                }),
                run_as_user: psc.run_as_user.map(|v| api::Int64Value { value: v }),
                run_as_group: psc.run_as_group.map(|v| api::Int64Value { value: v }),
                supplemental_groups: psc.supplemental_groups.unwrap_or_default(),
                ..Default::default()
            }),
            sysctls: psc.sysctls.unwrap_or_default().into_iter().map(|s| (s.name, s.value)).collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Where a pod's container logs are written: `<dir>/logs/<ns>_<name>_<uid>/<container>/<attempt>.log`.
pub fn log_dir(root: &std::path::Path, ns: &str, name: &str, uid: &str) -> PathBuf {
    root.join("logs").join(format!("{ns}_{name}_{uid}"))
}

/// Removes sandboxes (and their containers) whose pods this node no longer
/// has, e.g. deleted while the agent was down.
pub(crate) async fn remove_orphans(ctx: Arc<Ctx>, pods: HashSet<String>) {
    let mut rt = ctx.cri.rt.clone();
    let Ok(list) = rt.list_pod_sandbox(api::ListPodSandboxRequest::default()).await else { return };
    let orphans: HashSet<String> =
        list.into_inner().items.into_iter().filter_map(|s| s.labels.get(LABEL_POD_UID).cloned()).filter(|uid| !pods.contains(uid)).collect();
    for uid in orphans {
        tracing::info!(%uid, "removing the sandbox of a pod that no longer exists");
        Worker::new(ctx.clone(), uid).teardown(None, 2).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity_millis("250m"), 250);
        assert_eq!(quantity_millis("2"), 2000);
        assert_eq!(quantity_bytes("64Mi"), 64 << 20);
        assert_eq!(quantity_bytes("1G"), 1_000_000_000);
    }
}
