//! `rkube-bench`: starts a real `rkube server` on loopback and measures it as a
//! client would: time from exec to `/readyz`, idle memory, CRUD throughput and
//! latency at several concurrencies, and watch fan-out latency. Prints a table
//! and writes every figure as JSON. Figures come from here, never from tests.
//! `--pods` measures pods in real containers instead (see `pods.rs`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Parser;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[derive(Parser)]
#[command(about = "Benchmarks rkube: start-up, memory, CRUD throughput and latency, watch fan-out")]
struct Args {
    /// The rkube binary (default: `rkube` next to this program).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Where to write the figures.
    #[arg(long, default_value = "bench.json")]
    out: PathBuf,
    /// Operations per CRUD phase.
    #[arg(long, default_value_t = 20_000)]
    ops: usize,
    /// Concurrent watchers in the fan-out test.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Address for the server (default: a free loopback port).
    #[arg(long)]
    bind: Option<String>,
    /// Simulated nodes in the workload phase.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Replicas of the Deployment in the workload phase.
    #[arg(long, default_value_t = 5000)]
    replicas: usize,
    /// Instead of the API figures: pods in real containers on the local node
    /// agent (containerd, runc, CNI), in namespaces of the bench's own.
    #[arg(long)]
    pods: bool,
    /// Instead of the API figures: the scheduling scale run. A Deployment of
    /// `--replicas` on `--nodes` simulated nodes, then `--pending` bare pods
    /// bound on `--bind-nodes` nodes, and the server's memory and write
    /// latency while holding them.
    #[arg(long)]
    scale: bool,
    /// Pods created at once in the `--scale` binding phase.
    #[arg(long, default_value_t = 10_000)]
    pending: usize,
    /// Simulated nodes in the `--scale` binding phase.
    #[arg(long, default_value_t = 5000)]
    bind_nodes: usize,
    /// Instead of the API figures: `rkctl` and `kubectl` side by side as
    /// whole processes (start-up of a `get`, `get pods` with `--cli-pods`
    /// pods); writes bench-cli.json.
    #[arg(long)]
    cli: bool,
    /// Pods listed in the `--cli` run.
    #[arg(long, default_value_t = 10_000)]
    cli_pods: usize,
    /// The kubectl to compare with in the `--cli` run.
    #[arg(long, default_value = "/usr/bin/kubectl")]
    kubectl: PathBuf,
    /// Pods started one after another in the `--pods` run.
    #[arg(long, default_value_t = 200)]
    sequential: usize,
    /// Where `scripts/images.sh` keeps the test images.
    #[arg(long, default_value = "target/e2e-images")]
    images: PathBuf,
}

mod cli;
mod pods;

type Body = Full<Bytes>;

/// A pool of HTTP/2 connections; requests are spread over them.
#[derive(Clone)]
struct Client {
    conns: Arc<Vec<SendRequest<Body>>>,
    authority: String,
}

fn tls_config(dir: &Path) -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut std::fs::read(dir.join("ca.crt"))?.as_slice()) {
        roots.add(c?)?;
    }
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut std::fs::read(dir.join("admin.crt"))?.as_slice()).collect::<Result<_, _>>()?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut std::fs::read(dir.join("admin.key"))?.as_slice())?.context("admin.key")?;
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

impl Client {
    async fn connect(addr: &str, tls: Arc<rustls::ClientConfig>, n: usize) -> Result<Client> {
        let mut conns = Vec::new();
        for _ in 0..n {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let stream = TlsConnector::from(tls.clone()).connect(ServerName::try_from("localhost")?, tcp).await?;
            let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .initial_stream_window_size(4 << 20)
                .initial_connection_window_size(16 << 20)
                .handshake(TokioIo::new(stream))
                .await?;
            tokio::spawn(conn);
            conns.push(send);
        }
        Ok(Client { conns: Arc::new(conns), authority: addr.to_string() })
    }

    async fn send(&self, i: usize, method: Method, path: &str, body: Option<Bytes>) -> Result<(StatusCode, Bytes)> {
        self.send_as(i, method, path, "application/json", body).await
    }

    async fn send_as(&self, i: usize, method: Method, path: &str, content_type: &str, body: Option<Bytes>) -> Result<(StatusCode, Bytes)> {
        let mut c = self.conns[i % self.conns.len()].clone();
        let req = Request::builder()
            .method(method)
            .uri(format!("https://{}{}", self.authority, path))
            .header("content-type", content_type)
            .body(Full::new(body.unwrap_or_default()))?;
        c.ready().await?;
        let resp = c.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }
}

/// Latency percentiles and throughput of one phase.
fn summarize(name: &str, conc: usize, lat: &mut [Duration], wall: Duration) -> Value {
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1000.0;
    let ops = lat.len() as f64 / wall.as_secs_f64();
    println!("{name:<8} c={conc:<3} {ops:>9.0} ops/s   p50 {:>7.2} ms   p99 {:>7.2} ms", pct(0.50), pct(0.99));
    json!({"op": name, "concurrency": conc, "ops": lat.len(), "ops_per_sec": ops.round(), "p50_ms": pct(0.50), "p99_ms": pct(0.99)})
}

/// Runs `total` operations with `conc` workers; `op(i)` performs operation i.
async fn phase<F, Fut>(name: &str, conc: usize, total: usize, op: F) -> Result<Value>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<StatusCode>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (op, next) = (op.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                let code = op(i).await?;
                if !code.is_success() {
                    bail!("operation {i} answered {code}");
                }
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(summarize(name, conc, &mut all, start.elapsed()))
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the server and returns it with the time until `/readyz` answered 200.
async fn start(bin: &Path, dir: &Path, bind: &str) -> Result<(Server, Duration)> {
    let t = Instant::now();
    let child = Command::new(bin)
        .args(["server", "--data-dir"])
        .arg(dir)
        .args(["--bind", bind, "--no-node-agent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut server = Server(child);
    // /readyz needs no client certificate; the CA appears once the server made it.
    loop {
        if t.elapsed() > Duration::from_secs(30) {
            bail!("server not ready after 30 s");
        }
        if let Some(status) = server.0.try_wait()? {
            bail!("server exited before it was ready: {status}");
        }
        if dir.join("admin.key").exists()
            && let Ok(tls) = tls_config(dir)
            && let Ok(c) = Client::connect(bind, tls, 1).await
            && let Ok((StatusCode::OK, _)) = c.send(0, Method::GET, "/readyz", None).await
        {
            return Ok((server, t.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A CRD with one CEL rule, in group `group`.
fn crd(plural: &str, group: &str) -> Bytes {
    let kind: String = plural.trim_end_matches('s').chars().enumerate().map(|(i, c)| if i == 0 { c.to_ascii_uppercase() } else { c }).collect();
    Bytes::from(
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {"group": group, "scope": "Namespaced", "names": {"plural": plural, "kind": kind},
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-validations": [{"rule": "self.min <= self.max"}],
                             "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}, "note": {"type": "string", "maxLength": 64}}}}}}}]},
        })
        .to_string(),
    )
}

/// CRDs: time from creating one to its first object stored, create
/// throughput of objects checked by a CEL rule, and memory per installed CRD.
async fn crds(client: &Client, pid: u32, ops: usize) -> Result<Value> {
    let cr = |i: usize| {
        Bytes::from(json!({"apiVersion": "bench.example.com/v1", "kind": "Item", "metadata": {"name": format!("i-{i}")}, "spec": {"min": 1, "max": 2, "note": "x"}}).to_string())
    };
    let t = Instant::now();
    let (code, _) =
        client.send(0, Method::POST, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", Some(crd("items", "bench.example.com"))).await?;
    if !code.is_success() {
        bail!("creating the CRD: {code}");
    }
    let path = "/apis/bench.example.com/v1/namespaces/default/items";
    let established = loop {
        let (_, body) = client.send(0, Method::GET, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/items.bench.example.com", None).await?;
        let v: Value = serde_json::from_slice(&body)?;
        if v["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Established" && c["status"] == "True")) {
            break t.elapsed();
        }
        if t.elapsed() > Duration::from_secs(10) {
            bail!("the CRD was not established within 10 s");
        }
    };
    let first = loop {
        let (code, _) = client.send(0, Method::POST, path, Some(cr(usize::MAX))).await?;
        if code == StatusCode::CREATED {
            break t.elapsed();
        }
        if t.elapsed() > Duration::from_secs(10) {
            bail!("no object could be created within 10 s: {code}");
        }
    };
    println!("crd      established {:.1} ms, first object {:.1} ms", established.as_secs_f64() * 1e3, first.as_secs_f64() * 1e3);
    let c = client.clone();
    let creates = phase("cr+cel", 64, ops, move |i| {
        let c = c.clone();
        async move { Ok(c.send(i, Method::POST, path, Some(cr(i))).await?.0) }
    })
    .await?;

    let n = 200;
    let before = rss_kib(pid);
    for i in 0..n {
        let (code, _) = client
            .send(i, Method::POST, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", Some(crd("things", &format!("g{i}.bench.example.com"))))
            .await?;
        if !code.is_success() {
            bail!("creating CRD {i}: {code}");
        }
    }
    // Every CRD served: its group appears in discovery.
    let t = Instant::now();
    loop {
        let (_, body) = client.send(0, Method::GET, "/apis", None).await?;
        let v: Value = serde_json::from_slice(&body)?;
        let groups = v["groups"]
            .as_array()
            .map(|g| g.iter().filter(|g| g["name"].as_str().is_some_and(|n| n.ends_with(".bench.example.com") && n.starts_with('g'))).count())
            .unwrap_or(0);
        if groups == n {
            break;
        }
        if t.elapsed() > Duration::from_secs(30) {
            bail!("only {groups} of {n} CRDs served after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Their OpenAPI documents too, as kubectl would fetch them.
    let (code, _) = client.send(0, Method::GET, "/openapi/v3", None).await?;
    if code != StatusCode::OK {
        bail!("/openapi/v3: {code}");
    }
    let per_crd = (rss_kib(pid) as f64 - before as f64) / n as f64;
    println!("crd      {n} CRDs installed and their OpenAPI rendered: {per_crd:.0} KiB RSS each");
    Ok(
        json!({"established_ms": established.as_secs_f64() * 1e3, "first_object_ms": first.as_secs_f64() * 1e3, "cel_creates": creates, "rss_per_crd_kib": per_crd, "crds_installed": n}),
    )
}

/// Controllers, scheduler and simulated nodes: a server with `nodes` fake
/// nodes; the time until they are all Ready, then a Deployment of
/// `replicas` pods from create until every pod is available.
async fn workloads(bin: &Path, nodes: usize, replicas: usize) -> Result<Value> {
    let (srv, client, _dir, ready_nodes) = fake_cluster(bin, nodes).await?;
    println!("nodes    {nodes} fake nodes Ready {:.2} s after exec", ready_nodes.as_secs_f64());
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "scale"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "scale"}},
                 "template": {"metadata": {"labels": {"app": "scale"}}, "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}});
    let t = Instant::now();
    let (code, _) = client.send(0, Method::POST, "/apis/apps/v1/namespaces/default/deployments", Some(Bytes::from(deploy.to_string()))).await?;
    if !code.is_success() {
        bail!("creating the deployment: {code}");
    }
    let all = loop {
        let (_, body) = client.send(0, Method::GET, "/apis/apps/v1/namespaces/default/deployments/scale", None).await?;
        let v: Value = serde_json::from_slice(&body)?;
        if v["status"]["availableReplicas"].as_u64() == Some(replicas as u64) {
            break t.elapsed();
        }
        if t.elapsed() > Duration::from_secs(600) {
            bail!("{} of {replicas} available after 600 s", v["status"]["availableReplicas"]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let rate = replicas as f64 / all.as_secs_f64();
    let rss = rss_kib(srv.0.id()) as f64 / 1024.0;
    println!("deploy   {replicas} replicas on {nodes} nodes all available in {:.1} s ({rate:.0} pods/s); server RSS {rss:.0} MiB", all.as_secs_f64());
    Ok(
        json!({"nodes": nodes, "nodes_ready_s": ready_nodes.as_secs_f64(), "replicas": replicas, "all_available_s": all.as_secs_f64(), "pods_per_sec": rate, "rss_mib": rss}),
    )
}

/// A server with `nodes` simulated nodes, running (the time until all are Ready).
async fn fake_cluster(bin: &Path, nodes: usize) -> Result<(Server, Client, tempfile::TempDir, Duration)> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let bind = format!("127.0.0.1:{port}");
    let t = Instant::now();
    let child = Command::new(bin)
        .args(["server", "--data-dir"])
        .arg(dir.path())
        .args(["--bind", &bind, "--no-node-agent", "--fake-nodes", &nodes.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let srv = Server(child);
    let client = loop {
        if t.elapsed() > Duration::from_secs(30) {
            bail!("the server did not start");
        }
        if let Ok(tls) = tls_config(dir.path())
            && let Ok(c) = Client::connect(&bind, tls, 8).await
            && let Ok((StatusCode::OK, _)) = c.send(0, Method::GET, "/readyz", None).await
        {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    loop {
        let (_, body) = client.send(0, Method::GET, "/api/v1/nodes", None).await?;
        let v: Value = serde_json::from_slice(&body)?;
        let ready = v["items"].as_array().map(|a| {
            a.iter()
                .filter(|n| n["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True")))
                .count()
        });
        if ready.unwrap_or(0) >= nodes {
            return Ok((srv, client, dir, t.elapsed()));
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!("only {ready:?} of {nodes} nodes Ready after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `pending` bare pods created at once on `nodes` simulated nodes: how fast
/// the scheduler binds them (first create to last bind), then the server's
/// RSS and the latency of writes while it holds them.
async fn binding(bin: &Path, nodes: usize, pending: usize) -> Result<Value> {
    let (srv, client, _dir, ready) = fake_cluster(bin, nodes).await?;
    println!("nodes    {nodes} fake nodes Ready {:.2} s after exec", ready.as_secs_f64());
    let t = Instant::now();
    let c = client.clone();
    let create = phase("pod create", 64, pending, move |i| {
        let c = c.clone();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("p-{i}")},
            "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}});
        async move { Ok(c.send(i, Method::POST, "/api/v1/namespaces/default/pods", Some(Bytes::from(pod.to_string()))).await?.0) }
    })
    .await?;
    let created = t.elapsed();
    let bound = loop {
        let (_, body) = client.send(0, Method::GET, "/api/v1/pods?fieldSelector=spec.nodeName%3D&limit=1", None).await?;
        let v: Value = serde_json::from_slice(&body)?;
        if v["items"].as_array().is_some_and(|a| a.is_empty()) {
            break t.elapsed();
        }
        if t.elapsed() > Duration::from_secs(900) {
            bail!("pods still unbound after 900 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let rate = pending as f64 / bound.as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = rss_kib(srv.0.id()) as f64 / 1024.0;
    println!(
        "binding  {pending} pods on {nodes} nodes: created in {:.1} s, all bound {:.1} s after the first create ({rate:.0} pods/s); RSS {rss:.0} MiB",
        created.as_secs_f64(),
        bound.as_secs_f64()
    );
    let c = client.clone();
    let writes = phase("create while holding", 16, 2000, move |i| {
        let c = c.clone();
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("held-{i}")}, "data": {"k": "v"}});
        async move { Ok(c.send(i, Method::POST, "/api/v1/namespaces/default/configmaps", Some(Bytes::from(cm.to_string()))).await?.0) }
    })
    .await?;
    let queued = queued_binding(&client, nodes, pending).await?;
    Ok(json!({"nodes": nodes, "nodes_ready_s": ready.as_secs_f64(), "pods": pending, "created_s": created.as_secs_f64(), "pod_create": create,
              "all_bound_s": bound.as_secs_f64(), "pods_bound_per_sec": rate, "rss_mib": rss, "writes_while_holding": writes,
              "queued": queued}))
}

/// Pods unbound in default, and how many of them the scheduler has tried (PodScheduled=False).
async fn unbound(client: &Client) -> Result<(usize, usize)> {
    let (_, body) = client.send(0, Method::GET, "/api/v1/namespaces/default/pods?fieldSelector=spec.nodeName%3D", None).await?;
    let v: Value = serde_json::from_slice(&body)?;
    let items = v["items"].as_array().cloned().unwrap_or_default();
    let tried = items
        .iter()
        .filter(|p| p["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "PodScheduled" && c["status"] == "False")))
        .count();
    Ok((items.len(), tried))
}

/// The scheduler alone: `pending` pods wait, already tried, while every node
/// is cordoned; then the nodes are uncordoned and the time from the first
/// uncordon to the last bind is the rate at which a queue of pending pods is
/// bound (the pods' own creation is not in it).
async fn queued_binding(client: &Client, nodes: usize, pending: usize) -> Result<Value> {
    let cordon = |on: bool| {
        let c = client.clone();
        move |i: usize| {
            let c = c.clone();
            let body = Bytes::from(json!({"spec": {"unschedulable": on}}).to_string());
            async move { Ok(c.send_as(i, Method::PATCH, &format!("/api/v1/nodes/fake-node-{i}"), "application/merge-patch+json", Some(body)).await?.0) }
        }
    };
    phase("cordon", 64, nodes, cordon(true)).await?;
    // Until the scheduler has seen every cordon.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c = client.clone();
    phase("queued pod create", 64, pending, move |i| {
        let c = c.clone();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("q-{i}")},
            "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}});
        async move { Ok(c.send(i, Method::POST, "/api/v1/namespaces/default/pods", Some(Bytes::from(pod.to_string()))).await?.0) }
    })
    .await?;
    let t = Instant::now();
    // Those bound before the scheduler saw a cordon are not counted.
    let pending = loop {
        let (left, tried) = unbound(client).await?;
        if tried == left {
            break left;
        }
        if t.elapsed() > Duration::from_secs(300) {
            bail!("the scheduler tried {tried} of {left} cordoned-out pods in 300 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Past the scheduler's first back-off (1 s), so that nothing waits on it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = Instant::now();
    let uncordon = phase("uncordon", 64, nodes, cordon(false)).await?;
    let bound = loop {
        let (_, body) = client.send(0, Method::GET, "/api/v1/pods?fieldSelector=spec.nodeName%3D&limit=1", None).await?;
        if serde_json::from_slice::<Value>(&body)?["items"].as_array().is_some_and(|a| a.is_empty()) {
            break t.elapsed();
        }
        if t.elapsed() > Duration::from_secs(600) {
            bail!("queued pods still unbound after 600 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let rate = pending as f64 / bound.as_secs_f64();
    println!("queued   {pending} pending pods bound {:.1} s after the first of {nodes} uncordons ({rate:.0} pods/s)", bound.as_secs_f64());
    Ok(json!({"pods": pending, "uncordon": uncordon, "all_bound_s": bound.as_secs_f64(), "pods_bound_per_sec": rate}))
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = Args::parse();
    if args.bind.is_none() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        args.bind = Some(format!("127.0.0.1:{port}"));
    }
    let bind = args.bind.clone().unwrap();
    let bin = args.server.clone().unwrap_or_else(|| std::env::current_exe().unwrap().with_file_name("rkube"));
    if args.pods {
        let out = if args.out == Path::new("bench.json") { PathBuf::from("bench-pods.json") } else { args.out.clone() };
        return pods::run(&bin, &args.images, &out, args.sequential).await;
    }
    if args.cli {
        let out = if args.out == Path::new("bench.json") { PathBuf::from("bench-cli.json") } else { args.out.clone() };
        return cli::run(&bin, &bin.with_file_name("rkctl"), &args.kubectl, args.cli_pods, &out).await;
    }
    if args.scale {
        let out = if args.out == Path::new("bench.json") { PathBuf::from("bench-scale.json") } else { args.out.clone() };
        let mut report = json!({"machine": {"cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)}});
        report["workloads"] = workloads(&bin, args.nodes, args.replicas).await?;
        report["binding"] = binding(&bin, args.bind_nodes, args.pending).await?;
        std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")?;
        println!("wrote {}", out.display());
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let mut report = json!({"machine": {"cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)}});

    // Cold start: certificates are made; warm start: they and the store exist.
    let (srv, cold) = start(&bin, dir.path(), &bind).await?;
    drop(srv);
    let (srv, warm) = start(&bin, dir.path(), &bind).await?;
    println!("ready    cold {:.1} ms   warm {:.1} ms", cold.as_secs_f64() * 1e3, warm.as_secs_f64() * 1e3);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib(srv.0.id());
    println!("idle RSS {:.1} MiB", idle as f64 / 1024.0);
    report["startup"] =
        json!({"cold_ready_ms": cold.as_secs_f64() * 1e3, "warm_ready_ms": warm.as_secs_f64() * 1e3, "idle_rss_mib": idle as f64 / 1024.0});

    let tls = tls_config(dir.path())?;
    let client = Client::connect(&bind, tls.clone(), 8).await?;

    // The embedded OpenAPI definitions: their size, the time to decode them
    // (measured here, in process), and what they add to the server's memory
    // once its first OpenAPI document is rendered.
    let t = Instant::now();
    let defs = schema::openapi::definitions().schemas.len();
    let decode_ms = t.elapsed().as_secs_f64() * 1e3;
    let before = rss_kib(srv.0.id());
    let t = Instant::now();
    let (code, doc) = client.send(0, Method::GET, "/openapi/v3/apis/apps/v1", None).await?;
    let first_doc_ms = t.elapsed().as_secs_f64() * 1e3;
    if code != StatusCode::OK {
        bail!("/openapi/v3/apis/apps/v1: {code}");
    }
    let (code, v2) = client.send(0, Method::GET, "/openapi/v2", None).await?;
    if code != StatusCode::OK {
        bail!("/openapi/v2: {code}");
    }
    let after = rss_kib(srv.0.id());
    println!(
        "schemas  {defs} definitions, {:.0} KiB embedded, decode {decode_ms:.1} ms, first v3 document {first_doc_ms:.1} ms ({} KiB), v2 {} KiB, RSS +{:.1} MiB",
        schema::openapi::EMBEDDED_BYTES as f64 / 1024.0,
        doc.len() / 1024,
        v2.len() / 1024,
        (after as f64 - before as f64) / 1024.0
    );
    report["schemas"] = json!({
        "definitions": defs, "embedded_kib": schema::openapi::EMBEDDED_BYTES as f64 / 1024.0, "decode_ms": decode_ms,
        "first_v3_document_ms": first_doc_ms, "rss_added_mib": (after as f64 - before as f64) / 1024.0,
    });
    let mut crud = Vec::new();
    for conc in [1usize, 64] {
        let ns = format!("bench-{conc}");
        let (code, _) = client.send(0, Method::POST, "/api/v1/namespaces", Some(Bytes::from(json!({"metadata": {"name": ns}}).to_string()))).await?;
        if !code.is_success() {
            bail!("creating namespace {ns}: {code}");
        }
        // Fewer operations at concurrency 1: latency, not throughput, is the point there.
        let total = if conc == 1 { args.ops / 10 } else { args.ops };
        let base = format!("/api/v1/namespaces/{ns}/configmaps");
        let cm = |i: usize, v: &str, rv: Option<&str>| {
            let mut o = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}"), "labels": {"bench": "yes"}}, "data": {"key": v, "pad": "x".repeat(200)}});
            if let Some(rv) = rv {
                o["metadata"]["resourceVersion"] = json!(rv);
            }
            Bytes::from(o.to_string())
        };
        let (c, b) = (client.clone(), base.clone());
        crud.push(
            phase("create", conc, total, move |i| {
                let (c, b, body) = (c.clone(), b.clone(), cm(i, "a", None));
                async move { Ok(c.send(i, Method::POST, &b, Some(body)).await?.0) }
            })
            .await?,
        );
        let (c, b) = (client.clone(), base.clone());
        crud.push(
            phase("get", conc, total, move |i| {
                let (c, b) = (c.clone(), b.clone());
                async move { Ok(c.send(i, Method::GET, &format!("{b}/cm-{i}"), None).await?.0) }
            })
            .await?,
        );
        let (c, b) = (client.clone(), base.clone());
        crud.push(
            phase("list100", conc, (total / 20).max(10), move |i| {
                let (c, b) = (c.clone(), b.clone());
                async move { Ok(c.send(i, Method::GET, &format!("{b}?limit=100"), None).await?.0) }
            })
            .await?,
        );
        let (c, b) = (client.clone(), base.clone());
        crud.push(
            phase("update", conc, total, move |i| {
                // An unconditional update (no resourceVersion), as `kubectl replace --force` is not.
                let (c, b, body) = (c.clone(), b.clone(), cm(i, "b", None));
                async move { Ok(c.send(i, Method::PUT, &format!("{b}/cm-{i}"), Some(body)).await?.0) }
            })
            .await?,
        );
        let (c, b) = (client.clone(), base.clone());
        crud.push(
            phase("patch", conc, total, move |i| {
                let (c, b) = (c.clone(), b.clone());
                let body = Bytes::from(json!({"data": {"key": format!("p{i}")}}).to_string());
                async move { Ok(c.send_as(i, Method::PATCH, &format!("{b}/cm-{i}"), "application/merge-patch+json", Some(body)).await?.0) }
            })
            .await?,
        );
        let (c, b) = (client.clone(), base.clone());
        crud.push(
            phase("apply", conc, total, move |i| {
                // Server-side apply by a second manager of a field nobody else owns.
                let (c, b) = (c.clone(), b.clone());
                let body = Bytes::from(
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}")}, "data": {"applied": format!("a{i}")}})
                        .to_string(),
                );
                async move {
                    Ok(c.send_as(i, Method::PATCH, &format!("{b}/cm-{i}?fieldManager=bench"), "application/apply-patch+yaml", Some(body)).await?.0)
                }
            })
            .await?,
        );
        let (c, b) = (client.clone(), base.clone());
        crud.push(
            phase("delete", conc, total, move |i| {
                let (c, b) = (c.clone(), b.clone());
                async move { Ok(c.send(i, Method::DELETE, &format!("{b}/cm-{i}"), None).await?.0) }
            })
            .await?,
        );
    }
    report["crud"] = json!(crud);

    // Watch fan-out: every watcher must see one new object; latency is from
    // just before the create request to each watcher's receipt.
    let ns = "bench-watch";
    client.send(0, Method::POST, "/api/v1/namespaces", Some(Bytes::from(json!({"metadata": {"name": ns}}).to_string()))).await?;
    let wclient = Client::connect(&bind, tls.clone(), (args.watchers / 100).max(1)).await?;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(args.watchers);
    let (go_tx, _) = tokio::sync::broadcast::channel::<Instant>(1);
    let mut watchers = Vec::new();
    for i in 0..args.watchers {
        let (c, ready, mut go) = (wclient.clone(), ready_tx.clone(), go_tx.subscribe());
        let path = format!("/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion=0&timeoutSeconds=120");
        watchers.push(tokio::spawn(async move {
            let mut conn = c.conns[i % c.conns.len()].clone();
            let req = Request::builder().uri(format!("https://{}{}", c.authority, path)).body(Full::new(Bytes::new()))?;
            conn.ready().await?;
            let resp = conn.send_request(req).await?;
            let mut body = resp.into_body();
            ready.send(()).await.ok();
            let start = go.recv().await?;
            while let Some(frame) = body.frame().await {
                if frame?.data_ref().is_some_and(|d| d.windows(5).any(|w| w == b"ADDED")) {
                    return Ok::<_, anyhow::Error>(start.elapsed());
                }
            }
            bail!("watch ended without the event")
        }));
    }
    for _ in 0..args.watchers {
        ready_rx.recv().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    go_tx.send(Instant::now())?;
    client
        .send(0, Method::POST, &format!("/api/v1/namespaces/{ns}/configmaps"), Some(Bytes::from(json!({"metadata": {"name": "fan"}}).to_string())))
        .await?;
    let mut lat = Vec::new();
    for w in watchers {
        lat.push(w.await??);
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1000.0;
    println!("watch    {} watchers   p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms", lat.len(), pct(0.5), pct(0.99), pct(1.0));
    report["watch_fanout"] = json!({"watchers": lat.len(), "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": pct(1.0)});
    report["crds"] = crds(&client, srv.0.id(), args.ops / 4).await?;
    report["rss_after_mib"] = json!(rss_kib(srv.0.id()) as f64 / 1024.0);
    drop(srv);
    report["workloads"] = workloads(&bin, args.nodes, args.replicas).await?;
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("wrote {}", args.out.display());
    Ok(())
}
