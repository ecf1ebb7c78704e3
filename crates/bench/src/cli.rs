//! `rkube-bench --cli`: `rkctl` against the real `kubectl`, side by side, as
//! whole processes on the same server: start-up of a simple `get`, and
//! `get pods` printing a table of many pods (bound and Running on simulated
//! nodes, so every column has something to show).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use crate::{fake_cluster, phase};

/// Runs `tool args` `runs` times; the median wall time, after one warm-up run
/// whose output must have `lines` lines.
fn timed(tool: &Path, kubeconfig: &Path, args: &[&str], runs: usize, lines: usize) -> Result<f64> {
    let run = || -> Result<(Duration, usize)> {
        let t = Instant::now();
        let out = Command::new(tool).arg("--kubeconfig").arg(kubeconfig).args(args).stderr(Stdio::null()).output()?;
        let took = t.elapsed();
        if !out.status.success() {
            bail!("{} {args:?} failed: {}", tool.display(), out.status);
        }
        Ok((took, out.stdout.iter().filter(|b| **b == b'\n').count()))
    };
    let (_, got) = run()?;
    if got != lines {
        bail!("{} {args:?} printed {got} lines, expected {lines}", tool.display());
    }
    let mut times: Vec<f64> = (0..runs).map(|_| run().map(|(t, _)| t.as_secs_f64() * 1e3)).collect::<Result<_>>()?;
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

pub async fn run(bin: &Path, rkctl: &Path, kubectl: &Path, pods: usize, out: &Path) -> Result<()> {
    let (_srv, client, dir, _) = fake_cluster(bin, 100).await?;
    let kubeconfig: PathBuf = dir.path().join("admin.kubeconfig");
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "empty"}});
    client.send(0, Method::POST, "/api/v1/namespaces", Some(Bytes::from(ns.to_string()))).await?;
    let c = client.clone();
    phase("pod create", 64, pods, move |i| {
        let c = c.clone();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("pod-{i:05}"), "labels": {"app": "cli"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        async move { Ok(c.send(i, Method::POST, "/api/v1/namespaces/default/pods", Some(Bytes::from(pod.to_string()))).await?.0) }
    })
    .await?;
    let t = Instant::now();
    loop {
        let (_, body) = client.send(0, Method::GET, "/api/v1/pods?fieldSelector=status.phase%21%3DRunning&limit=1", None).await?;
        let v: Value = serde_json::from_slice(&body)?;
        if v["items"].as_array().is_some_and(|a| a.is_empty()) {
            break;
        }
        if t.elapsed() > Duration::from_secs(300) {
            bail!("pods not Running after 300 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut report = json!({"machine": {"cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)}, "pods": pods});
    for (name, tool) in [("rkctl", rkctl), ("kubectl", kubectl)] {
        // "No resources found" goes to stderr: nothing on stdout.
        let start = timed(tool, &kubeconfig, &["get", "pods", "-n", "empty"], 21, 0)?;
        let table = timed(tool, &kubeconfig, &["get", "pods"], 7, pods + 1)?;
        let wide = timed(tool, &kubeconfig, &["get", "pods", "-o", "wide"], 7, pods + 1)?;
        println!("{name:<8} get (empty namespace) {start:>7.1} ms   get pods ({pods}) {table:>7.1} ms   -o wide {wide:>7.1} ms   (medians)");
        report[name] = json!({"get_empty_ms": start, "get_pods_ms": table, "get_pods_wide_ms": wide});
    }
    std::fs::write(out, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("wrote {}", out.display());
    Ok(())
}
