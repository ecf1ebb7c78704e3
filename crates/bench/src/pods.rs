//! `rkube-bench --pods`: pods in real containers on the local node agent.
//! The bench re-runs itself in fresh network, PID and mount namespaces
//! (as the node-agent tests do) beside a registry on 127.0.0.1:5000 there,
//! then measures create → Running as a watch sees it, bursts, throughput
//! and memory.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::{Client, Server, rss_kib, tls_config};

const INNER: &str = "RKUBE_BENCH_IN_NAMESPACES";

/// Runs the pod benchmark, in its own namespaces.
pub async fn run(bin: &Path, images: &Path, out: &Path, sequential: usize) -> Result<()> {
    if std::env::var_os(INNER).is_none() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/images.sh");
        let st = Command::new(&script).arg(images).status().context("running scripts/images.sh")?;
        if !st.success() {
            bail!("building the test images failed");
        }
        let dir = tempfile::tempdir()?;
        let reg = dir.path().join("registry.yml");
        let storage = images.join("registry").canonicalize()?;
        std::fs::write(
            &reg,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n  maintenance:\n    readonly:\n      enabled: true\nhttp:\n  addr: 127.0.0.1:5000\n",
                storage.display()
            ),
        )?;
        let me = std::env::current_exe()?;
        let sh = format!(
            "mount -t tmpfs tmpfs /run && ip link set lo up && docker-registry serve {} >/dev/null 2>&1 & \
             for i in $(seq 100); do curl -sf http://127.0.0.1:5000/v2/ >/dev/null && break; sleep 0.05; done; \"$0\" \"$@\" & wait $!",
            reg.display()
        );
        let st = Command::new("unshare")
            .args(["--net", "--pid", "--mount", "--fork", "--mount-proc", "--kill-child", "sh", "-c", &sh])
            .arg(&me)
            .args(std::env::args().skip(1))
            .env(INNER, "1")
            .status()?;
        if !st.success() {
            bail!("the pod benchmark failed");
        }
        return Ok(());
    }
    inner(bin, out, sequential).await
}

fn pod(name: &str, group: &str) -> Bytes {
    Bytes::from(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"bench": group}},
               "spec": {"terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "c", "image": "127.0.0.1:5000/busybox:1", "command": ["sleep", "3600"]}]}})
        .to_string(),
    )
}

/// When each pod was first seen Running with its containers ready.
type Seen = Arc<Mutex<HashMap<String, Instant>>>;

async fn watch(client: Client, seen: Seen) -> Result<()> {
    let mut conn = client.conns[0].clone();
    let req = Request::builder()
        .uri(format!("https://{}/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=3600", client.authority))
        .body(Full::new(Bytes::new()))?;
    conn.ready().await?;
    let mut body = conn.send_request(req).await?.into_body();
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        buf.extend_from_slice(&data);
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let Ok(ev) = serde_json::from_slice::<Value>(&line) else { continue };
            let o = &ev["object"];
            let ready = o["status"]["containerStatuses"].as_array().is_some_and(|c| !c.is_empty() && c.iter().all(|c| c["ready"] == true));
            if o["status"]["phase"] == "Running" && ready {
                let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
                seen.lock().unwrap().entry(name).or_insert_with(Instant::now);
            }
        }
    }
    Ok(())
}

async fn wait_for(seen: &Seen, names: &[String], timeout: Duration) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        {
            let s = seen.lock().unwrap();
            if names.iter().all(|n| s.contains_key(n)) {
                return Ok(names.iter().map(|n| s[n]).max().unwrap_or_else(Instant::now));
            }
        }
        if Instant::now() > deadline {
            let s = seen.lock().unwrap();
            let missing: Vec<&String> = names.iter().filter(|n| !s.contains_key(*n)).collect();
            bail!("{} of {} pods not Running within {timeout:?}: {:?}", missing.len(), names.len(), &missing[..missing.len().min(5)]);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn create(client: &Client, i: usize, body: Bytes) -> Result<()> {
    let (code, b) = client.send(i, Method::POST, "/api/v1/namespaces/default/pods", Some(body)).await?;
    if !code.is_success() {
        bail!("creating a pod: {code} {}", String::from_utf8_lossy(&b));
    }
    Ok(())
}

async fn delete_group(client: &Client, group: &str) -> Result<()> {
    client.send(0, Method::DELETE, &format!("/api/v1/namespaces/default/pods?labelSelector=bench%3D{group}"), None).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, body) = client.send(0, Method::GET, &format!("/api/v1/namespaces/default/pods?labelSelector=bench%3D{group}"), None).await?;
        let v: Value = serde_json::from_slice(&body)?;
        if v["items"].as_array().is_none_or(|a| a.is_empty()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("pods of {group} not gone after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pid_of(name: &str) -> Option<u32> {
    let out = Command::new("pgrep").args(["-x", name]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().next()?.trim().parse().ok()
}

fn shims_rss_kib() -> u64 {
    let out = Command::new("pgrep").args(["-f", "containerd-shim"]).output().map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out).lines().filter_map(|l| l.trim().parse().ok()).map(rss_kib).sum()
}

async fn inner(bin: &Path, out: &Path, sequential: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let bind = "127.0.0.1:6443";
    // The agent runs as its own process (`rkube node`, joined with the
    // server's token), so its memory is measured apart from the API server's.
    let child = Command::new(bin)
        .args(["server", "--data-dir"])
        .arg(dir.path())
        .args(["--bind", bind, "--no-node-agent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let srv = Server(child);
    let t = Instant::now();
    let client = loop {
        if t.elapsed() > Duration::from_secs(30) {
            bail!("the server did not start");
        }
        if let Ok(tls) = tls_config(dir.path())
            && let Ok(c) = Client::connect(bind, tls, 4).await
            && let Ok((StatusCode::OK, _)) = c.send(0, Method::GET, "/readyz", None).await
        {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let node_dir = tempfile::tempdir()?;
    let token = std::fs::read_to_string(dir.path().join("join-token"))?;
    let agent = Server(
        Command::new(bin)
            .args(["node", "--server", &format!("https://{bind}"), "--token", token.trim(), "--data-dir"])
            .arg(node_dir.path())
            .args(["--node-name", "bench-node", "--pause-image", "127.0.0.1:5000/pause:1", "--insecure-registry", "127.0.0.1:5000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let seen: Seen = Default::default();
    let watcher = tokio::spawn(watch(Client::connect(bind, tls_config(dir.path())?, 1).await?, seen.clone()));
    // The node registers and the image is pulled once (warm image).
    let t = Instant::now();
    loop {
        let (code, _) = client.send(0, Method::GET, "/api/v1/nodes/bench-node", None).await?;
        if code == StatusCode::OK {
            break;
        }
        if t.elapsed() > Duration::from_secs(30) {
            bail!("the node agent did not register");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    create(&client, 0, pod("warm", "warm")).await?;
    wait_for(&seen, &["warm".into()], Duration::from_secs(60)).await?;
    delete_group(&client, "warm").await?;

    // Sequential: one pod at a time, create → Running seen by the watch.
    let mut lat = Vec::with_capacity(sequential);
    for i in 0..sequential {
        let name = format!("seq-{i}");
        let t = Instant::now();
        create(&client, i, pod(&name, "seq")).await?;
        let at = wait_for(&seen, std::slice::from_ref(&name), Duration::from_secs(60)).await?;
        lat.push(at.duration_since(t));
        // A node holds 110 pods, as upstream's default: each goes after it ran.
        let c = client.clone();
        tokio::spawn(async move { c.send(i, Method::DELETE, &format!("/api/v1/namespaces/default/pods/{name}"), None).await });
    }
    lat.sort();
    let pct = |l: &[Duration], p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "pods     {sequential} sequential: create → Running p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );
    let seq = json!({"pods": sequential, "p50_ms": pct(&lat, 0.5), "p99_ms": pct(&lat, 0.99), "max_ms": pct(&lat, 1.0)});
    delete_group(&client, "seq").await?;

    // Bursts: N pods created at once, until the last is Running.
    let mut bursts = Vec::new();
    let mut rss = json!({});
    for (n, group) in [(30usize, "burst"), (100, "sustained")] {
        let names: Vec<String> = (0..n).map(|i| format!("{group}-{i}")).collect();
        let t = Instant::now();
        let creates = names.iter().enumerate().map(|(i, name)| {
            let c = client.clone();
            let body = pod(name, group);
            async move { create(&c, i, body).await }
        });
        for r in futures::future::join_all(creates).await {
            r?;
        }
        let at = wait_for(&seen, &names, Duration::from_secs(180)).await?;
        let took = at.duration_since(t).as_secs_f64();
        println!("pods     {n} at once: all Running in {took:.2} s ({:.1} pod starts/s)", n as f64 / took);
        bursts.push(json!({"pods": n, "all_running_s": took, "starts_per_sec": n as f64 / took}));
        if n == 30 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let server = rss_kib(srv.0.id()) as f64 / 1024.0;
            let node = rss_kib(agent.0.id()) as f64 / 1024.0;
            let containerd = pid_of("containerd").map(rss_kib).unwrap_or(0) as f64 / 1024.0;
            let shims = shims_rss_kib() as f64 / 1024.0;
            println!(
                "memory   with 30 pods: node agent {node:.1} MiB, containerd {containerd:.1} MiB, shims {shims:.1} MiB in all; API server (with controllers) {server:.1} MiB"
            );
            rss = json!({"pods": 30, "agent_mib": node, "server_mib": server, "containerd_mib": containerd, "shims_mib": shims});
        }
        delete_group(&client, group).await?;
    }
    watcher.abort();
    let report = json!({"machine": {"cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)}, "sequential": seq, "bursts": bursts, "memory": rss});
    std::fs::write(out, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("figures written to {}", out.display());
    drop(agent);
    drop(srv);
    Ok(())
}
