//! The commands that stream to and from a pod through the API server over
//! WebSocket: `exec`, `attach` and `port-forward`. The target is a pod, or a
//! workload or Service whose selector picks one, as kubectl resolves it.
//!
//! The remote command's exit code becomes ours, with kubectl's
//! "command terminated with exit code N" on stderr.

use std::io::{IsTerminal, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, AttachedProcess, TerminalSize};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::client::{Ctx, Error, Result, enc, err};
use crate::discovery::Discovery;

/// The pod a target names: `NAME` or `pod/NAME`, or `TYPE/NAME` of anything
/// with a selector (Deployment, ReplicaSet, StatefulSet, Job, Service, …),
/// whose first running pod is taken, as kubectl does.
pub async fn resolve_pod(ctx: &Ctx, target: &str) -> Result<Value> {
    let ns = &ctx.namespace;
    let (kind, name) = target.split_once('/').unwrap_or(("pod", target));
    if matches!(kind, "pod" | "pods" | "po") {
        return ctx.get(&format!("/api/v1/namespaces/{ns}/pods/{name}")).await;
    }
    let disc = Discovery::load(ctx).await?;
    let res = disc.resolve_one(kind)?;
    let o = ctx.get(&res.url(Some(ns), Some(name))).await?;
    let sel = &o["spec"]["selector"];
    // Services have a plain map; workloads a LabelSelector.
    let labels = if res.kind == "Service" { sel } else { &sel["matchLabels"] };
    let mut parts: Vec<String> = labels.as_object().into_iter().flatten().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let vals: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let key = e["key"].as_str().unwrap_or_default();
        parts.push(match e["operator"].as_str() {
            Some("In") => format!("{key} in ({})", vals.join(",")),
            Some("NotIn") => format!("{key} notin ({})", vals.join(",")),
            Some("Exists") => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    if parts.is_empty() {
        return err(format!("cannot attach to {}/{name}: it selects no pods", res.kind_group()));
    }
    let list = ctx.get(&format!("/api/v1/namespaces/{ns}/pods?labelSelector={}", enc(&parts.join(",")))).await?;
    let mut pods: Vec<Value> = list["items"].as_array().cloned().unwrap_or_default();
    // Running before pending, then the oldest, so repeated calls agree.
    pods.sort_by_key(|p| (p["status"]["phase"] != "Running", p["metadata"]["creationTimestamp"].as_str().unwrap_or_default().to_string()));
    pods.into_iter().next().ok_or_else(|| Error::Msg(format!("no pods found for {}/{name}", res.kind_group())))
}

/// The container to use: `-c`, else the pod's
/// `kubectl.kubernetes.io/default-container`, else its first; with more to
/// choose from, kubectl's "Defaulted container" note goes to stderr.
pub fn pick_container(pod: &Value, wanted: Option<&str>, quiet: bool) -> Result<String> {
    if let Some(c) = wanted {
        return Ok(c.to_string());
    }
    let names = |key: &str| -> Vec<String> {
        pod["spec"][key].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str().map(str::to_string)).collect()
    };
    let containers = names("containers");
    let annotated = pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"].as_str();
    let chosen = match annotated.filter(|a| containers.iter().any(|c| c == a)) {
        Some(a) => a.to_string(),
        None => containers.first().cloned().ok_or_else(|| Error::Msg("pod has no containers".into()))?,
    };
    if containers.len() + names("initContainers").len() > 1 && annotated.is_none() && !quiet {
        let mut all = containers.clone();
        all.extend(names("initContainers").into_iter().map(|c| format!("{c} (init)")));
        eprintln!("Defaulted container \"{chosen}\" out of: {}", all.join(", "));
    }
    Ok(chosen)
}

fn pod_name(pod: &Value) -> String {
    pod["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// POD or TYPE/NAME (e.g. deploy/web: one of its pods).
    pub target: String,
    /// The container (default: the pod's default container or its first).
    #[arg(short, long)]
    pub container: Option<String>,
    /// Pass stdin to the container.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Stdin is a terminal (raw mode, the remote side gets a TTY).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Print nothing but the command's output.
    #[arg(short, long)]
    pub quiet: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct AttachArgs {
    /// POD or TYPE/NAME.
    pub target: String,
    #[arg(short, long)]
    pub container: Option<String>,
    /// Pass stdin to the container.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Stdin is a terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    #[arg(short, long)]
    pub quiet: bool,
}

/// Whether a TTY can be used: asked for, with stdin, and stdin is one.
fn use_tty(tty: bool, stdin: bool, quiet: bool) -> bool {
    // Without stdin kubectl drops the TTY silently.
    if !tty || !stdin {
        return false;
    }
    if !std::io::stdin().is_terminal() {
        if !quiet {
            eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
        }
        return false;
    }
    true
}

fn params(container: String, stdin: bool, tty: bool) -> AttachParams {
    AttachParams {
        container: Some(container),
        stdin,
        stdout: true,
        // With a TTY the remote side merges stderr into the terminal.
        stderr: !tty,
        tty,
        max_stdout_buf_size: Some(64 * 1024),
        max_stderr_buf_size: Some(64 * 1024),
        max_stdin_buf_size: Some(64 * 1024),
    }
}

pub async fn exec(ctx: &Ctx, a: &ExecArgs) -> Result<()> {
    let pod = resolve_pod(ctx, &a.target).await?;
    let container = pick_container(&pod, a.container.as_deref(), a.quiet)?;
    let tty = use_tty(a.tty, a.stdin, a.quiet);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let proc = api.exec(&pod_name(&pod), a.command.clone(), &params(container, a.stdin, tty)).await?;
    run_attached(proc, a.stdin, tty).await
}

pub async fn attach(ctx: &Ctx, a: &AttachArgs) -> Result<()> {
    let pod = resolve_pod(ctx, &a.target).await?;
    let container = pick_container(&pod, a.container.as_deref(), a.quiet)?;
    let tty = use_tty(a.tty, a.stdin, a.quiet);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    if !a.quiet {
        eprintln!("If you don't see a command prompt, try pressing enter.");
    }
    let proc = api.attach(&pod_name(&pod), &params(container, a.stdin, tty)).await?;
    run_attached(proc, a.stdin, tty).await
}

/// Puts the terminal in raw mode for as long as it lives.
struct RawMode;

impl RawMode {
    fn on() -> Result<RawMode> {
        crossterm::terminal::enable_raw_mode()?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// Copies a remote stream to a local one until it ends.
async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl Write) -> std::io::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
        to.flush()?;
    }
}

/// Wires our stdio to the remote process, waits for it to end and turns
/// its final Status into our exit code.
async fn run_attached(mut proc: AttachedProcess, stdin: bool, tty: bool) -> Result<()> {
    let _raw = if tty { Some(RawMode::on()?) } else { None };
    let status = proc.take_status().ok_or_else(|| Error::Msg("no status channel".into()))?;
    let out = proc.stdout().map(|r| pump(r, std::io::stdout()).boxed_local());
    let errs = proc.stderr().map(|r| pump(r, std::io::stderr()).boxed_local());
    // The remote side is done once its output ends (it ends at the status).
    let output = async move {
        let (a, b) = futures::join!(
            async {
                match out {
                    Some(f) => f.await,
                    None => Ok(()),
                }
            },
            async {
                match errs {
                    Some(f) => f.await,
                    None => Ok(()),
                }
            }
        );
        a.and(b)
    };
    let writer = if stdin { proc.stdin() } else { None };
    // Feeds stdin until it ends, then closes it (over `v5.channel.k8s.io`
    // a signal; a server speaking only v4 can be told only by closing the
    // whole connection). Never finishes by itself: the output alone
    // decides when we are done.
    let feed = async move {
        if let Some(mut writer) = writer {
            // A plain thread reads stdin: a blocked read must not keep the
            // runtime from shutting down when the remote command ends first.
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 32 * 1024];
                let mut input = std::io::stdin().lock();
                while let Ok(n) = input.read(&mut buf) {
                    if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            });
            while let Some(chunk) = rx.recv().await {
                if writer.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            let _ = writer.shutdown().await;
        }
        std::future::pending::<()>().await
    };
    if let Some(size) = tty.then(|| proc.terminal_size()).flatten() {
        tokio::spawn(follow_terminal_size(size));
    }
    tokio::select! {
        r = output => r?,
        _ = feed => {}
    }
    let st = status.await;
    let joined = proc.join().await;
    drop(_raw);
    match st {
        Some(s) if s.status.as_deref() == Some("Success") => Ok(()),
        Some(s) if s.reason.as_deref() == Some("NonZeroExitCode") => {
            let code = s
                .details
                .as_ref()
                .and_then(|d| d.causes.as_ref())
                .into_iter()
                .flatten()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .and_then(|c| c.message.as_deref())
                .and_then(|m| m.parse::<i64>().ok())
                .unwrap_or(1);
            eprintln!("command terminated with exit code {code}");
            Err(Error::Exit(u8::try_from(code).unwrap_or(1)))
        }
        Some(s) => err(s.message.unwrap_or_else(|| "the remote command failed".into())),
        None => joined.map_err(|e| Error::Msg(e.to_string())),
    }
}

/// Tells the remote TTY the local terminal's size, now and when it changes.
async fn follow_terminal_size(mut tx: futures::channel::mpsc::Sender<TerminalSize>) {
    use futures::SinkExt;
    let mut last = (0, 0);
    loop {
        if let Ok((width, height)) = crossterm::terminal::size()
            && (width, height) != last
        {
            last = (width, height);
            if tx.send(TerminalSize { width, height }).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[derive(clap::Args, Debug)]
pub struct PortForwardArgs {
    /// POD or TYPE/NAME (e.g. svc/web, deploy/web: one of its pods).
    pub target: String,
    /// LOCAL:REMOTE, PORT (the same on both sides) or :REMOTE (any free
    /// local port). REMOTE may name a container port, or a Service port.
    #[arg(required = true)]
    pub ports: Vec<String>,
    /// Addresses to listen on, comma-separated: IPs or `localhost`
    /// (127.0.0.1 and ::1).
    #[arg(long, default_value = "localhost", value_delimiter = ',')]
    pub address: Vec<String>,
}

/// The remote port a Service port (number or name) leads to on `pod`.
fn service_target(svc: &Value, port: &str) -> Result<String> {
    let sp = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"].as_str() == Some(port) || p["port"].as_i64().map(|n| n.to_string()).as_deref() == Some(port))
        .ok_or_else(|| Error::Msg(format!("Service {} does not have a service port {port}", pod_name(svc))))?;
    Ok(match &sp["targetPort"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => sp["port"].to_string(),
    })
}

/// A container port of the pod by number or name.
fn container_port(pod: &Value, port: &str) -> Result<u16> {
    if let Ok(n) = port.parse::<u16>() {
        return Ok(n);
    }
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find(|p| p["name"].as_str() == Some(port))
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| Error::Msg(format!("Pod '{}' does not have a named port '{port}'", pod_name(pod))))
}

pub async fn port_forward(ctx: &Ctx, a: &PortForwardArgs) -> Result<()> {
    let pod = resolve_pod(ctx, &a.target).await?;
    if pod["status"]["phase"] != "Running" {
        return err(format!(
            "unable to forward port because pod is not running. Current status={}",
            pod["status"]["phase"].as_str().unwrap_or("Unknown")
        ));
    }
    let svc = match a.target.split_once('/') {
        Some(("svc" | "service" | "services", name)) => Some(ctx.get(&format!("/api/v1/namespaces/{}/services/{name}", ctx.namespace)).await?),
        _ => None,
    };
    let mut addrs: Vec<IpAddr> = Vec::new();
    for a in &a.address {
        match a.as_str() {
            "localhost" => addrs.extend([IpAddr::from(Ipv4Addr::LOCALHOST), IpAddr::from(Ipv6Addr::LOCALHOST)]),
            ip => addrs.push(ip.parse().map_err(|_| Error::Msg(format!("{ip} is not a valid IP")))?),
        }
    }
    let mut listeners = Vec::new();
    for spec in &a.ports {
        let (local, remote) = spec.split_once(':').unwrap_or((spec, spec));
        let remote = match &svc {
            Some(s) => service_target(s, remote)?,
            None => remote.to_string(),
        };
        let remote = container_port(&pod, &remote)?;
        let mut local: u16 = if local.is_empty() { 0 } else { local.parse().map_err(|_| Error::Msg(format!("invalid port {spec}")))? };
        let mut bound = 0;
        for ip in &addrs {
            match tokio::net::TcpListener::bind(SocketAddr::new(*ip, local)).await {
                Ok(l) => {
                    // `:REMOTE` picks a port once; the other addresses share it.
                    local = l.local_addr()?.port();
                    let shown = l.local_addr()?;
                    println!("Forwarding from {shown} -> {remote}");
                    listeners.push((l, local, remote));
                    bound += 1;
                }
                // `localhost` without IPv6 is fine, as for kubectl.
                Err(e) if ip.is_ipv6() && a.address.iter().any(|x| x == "localhost") => {
                    let _ = e;
                }
                Err(e) => return err(format!("unable to listen on port {local}: {e}")),
            }
        }
        if bound == 0 {
            return err(format!("unable to listen on any of the requested ports: [{spec}]"));
        }
    }
    std::io::stdout().flush()?;
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let name = pod_name(&pod);
    let serve = listeners.into_iter().map(|(l, local, remote)| {
        let (api, name) = (api.clone(), name.clone());
        async move {
            loop {
                let (sock, _) = l.accept().await?;
                println!("Handling connection for {local}");
                let _ = std::io::stdout().flush();
                let (api, name) = (api.clone(), name.clone());
                // Each connection gets its own stream to the pod, so many
                // run at once and one failing leaves the others alone.
                tokio::spawn(async move {
                    if let Err(e) = forward(&api, &name, remote, sock).await {
                        eprintln!("E0000 an error occurred forwarding {local} -> {remote}: {e}");
                    }
                });
            }
            #[allow(unreachable_code)]
            Ok::<(), Error>(())
        }
    });
    tokio::select! {
        r = futures::future::try_join_all(serve) => r.map(|_| ()),
        // kubectl's port-forward ends when its pod does.
        e = pod_gone(&api, &name, pod["metadata"]["uid"].as_str().unwrap_or_default()) => Err(e),
    }
}

/// Returns once the pod is deleted, replaced by another of the same name, or
/// no longer running, following it with a watch.
async fn pod_gone(api: &Api<Pod>, name: &str, uid: &str) -> Error {
    use futures::StreamExt;
    use kube::api::{WatchEvent, WatchParams};
    let running = |p: &Pod| p.metadata.uid.as_deref() == Some(uid) && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    loop {
        let pod = match api.get_opt(name).await {
            Ok(Some(p)) if running(&p) => p,
            Ok(_) => break,
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let rv = pod.metadata.resource_version.clone().unwrap_or_default();
        let Ok(events) = api.watch(&WatchParams::default().fields(&format!("metadata.name={name}")), &rv).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let mut events = std::pin::pin!(events);
        while let Some(ev) = events.next().await {
            match ev {
                Ok(WatchEvent::Deleted(_)) => return lost(),
                Ok(WatchEvent::Modified(p)) if !running(&p) => return lost(),
                Ok(WatchEvent::Error(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    lost()
}

fn lost() -> Error {
    Error::Msg("lost connection to pod".into())
}

async fn forward(api: &Api<Pod>, name: &str, port: u16, mut sock: tokio::net::TcpStream) -> Result<()> {
    let mut pf = api.portforward(name, &[port]).await?;
    let mut upstream = pf.take_stream(port).ok_or_else(|| Error::Msg("no stream for the port".into()))?;
    let failed = pf.take_error(port);
    let copy = tokio::io::copy_bidirectional(&mut sock, &mut upstream);
    let result = match failed {
        Some(f) => {
            tokio::select! {
                r = copy => r.map(|_| ()).map_err(Error::from),
                Some(e) = f => Err(Error::Msg(e)),
            }
        }
        None => copy.await.map(|_| ()).map_err(Error::from),
    };
    drop(upstream);
    // A stream the pod's side ended early shows up only here.
    let joined = pf.join().await.map_err(|e| Error::Msg(format!("lost connection to pod: {e}")));
    result.and(joined)
}
