//! `rkube-bench --cli`: `rkctl` against the real `kubectl`, side by side, as
//! whole processes on the same server: start-up of a simple `get`, and
//! `get pods` printing a table of many pods (bound and Running on simulated
//! nodes, so every column has something to show); then the live view
//! (`rkctl get pods -w` in a tmux terminal) while pods change 200 times a
//! second: its memory, and events and frames as it counts them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use crate::{Client, fake_cluster, phase, rss_kib};

const CHANGES_PER_SEC: usize = 200;
const LIVE_SECS: usize = 20;

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
    report["live"] = live(rkctl, &kubeconfig, &client, pods).await?;
    std::fs::write(out, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("wrote {}", out.display());
    Ok(())
}

/// `rkctl get pods -w` on a 200×50 tmux terminal while the pods' labels
/// change `CHANGES_PER_SEC` times a second for `LIVE_SECS` seconds.
async fn live(rkctl: &Path, kubeconfig: &Path, client: &Client, pods: usize) -> Result<Value> {
    let dir = tempfile::tempdir()?;
    let stats = dir.path().join("stats");
    let pidfile = dir.path().join("pid");
    let session = format!("rkube-bench-{}", std::process::id());
    let cmd = format!(
        "echo $$ > {}; exec env RKCTL_STATS=1 {} --kubeconfig {} get pods -w 2> {}",
        pidfile.display(),
        rkctl.display(),
        kubeconfig.display(),
        stats.display()
    );
    let st = Command::new("tmux").args(["new-session", "-d", "-x", "200", "-y", "50", "-s", &session, &cmd]).status()?;
    if !st.success() {
        bail!("tmux new-session failed");
    }
    let kill = || Command::new("tmux").args(["kill-session", "-t", &session]).stderr(Stdio::null()).status();
    let t = Instant::now();
    let pid: u32 = loop {
        if let Some(p) = std::fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse().ok()) {
            break p;
        }
        if t.elapsed() > Duration::from_secs(10) {
            kill()?;
            bail!("the live view did not start");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Let the first list arrive and draw.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut peak = rss_kib(pid);
    let total = CHANGES_PER_SEC * LIVE_SECS;
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut sent = 0;
    while sent < total {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() * CHANGES_PER_SEC as f64) as usize;
        let mut batch = Vec::new();
        while sent < due.min(total) {
            let (i, c) = (sent, client.clone());
            let patch = json!({"metadata": {"labels": {"step": (sent / pods).to_string()}}});
            batch.push(tokio::spawn(async move {
                c.send_as(
                    i,
                    Method::PATCH,
                    &format!("/api/v1/namespaces/default/pods/pod-{:05}", i % pods),
                    "application/merge-patch+json",
                    Some(Bytes::from(patch.to_string())),
                )
                .await
            }));
            sent += 1;
        }
        for b in batch {
            b.await??;
        }
        peak = peak.max(rss_kib(pid));
    }
    let driven = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    peak = peak.max(rss_kib(pid));
    Command::new("tmux").args(["send-keys", "-t", &session, "q"]).status()?;
    let t = Instant::now();
    let line = loop {
        let text = std::fs::read_to_string(&stats).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.starts_with("rkctl: ")) {
            break l.to_string();
        }
        if t.elapsed() > Duration::from_secs(10) {
            kill()?;
            bail!("the live view printed no statistics: {text}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = kill();
    // "rkctl: E events, F frames in S s (R frames/s)"
    let words: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize| words.get(i).and_then(|w| w.trim_start_matches('(').parse::<f64>().ok()).unwrap_or(0.0);
    let (events, frames, secs) = (num(1), num(3), num(6));
    let rate = total as f64 / driven;
    let mib = peak as f64 / 1024.0;
    println!(
        "live     {total} changes at {rate:.0}/s: {events:.0} events seen, {frames:.0} frames in {secs:.1} s ({:.1} frames/s); peak RSS {mib:.1} MiB",
        frames / secs
    );
    if events < total as f64 {
        bail!("the live view saw {events} events of {total} changes");
    }
    Ok(
        json!({"changes": total, "changes_per_sec": rate, "events": events, "frames": frames, "secs": secs, "frames_per_sec": frames / secs, "peak_rss_mib": mib}),
    )
}
