//! The agent's own HTTP endpoint, which the API server calls for
//! `pods/log` (and the streaming subresources). Every request must carry
//! the API server's bearer token.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use kube::ResourceExt;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt};

use crate::agent::Ctx;
use crate::cri::api;

pub(crate) type Body = BoxBody<Bytes, Infallible>;

pub(crate) async fn serve(ctx: Arc<Ctx>, listener: tokio::net::TcpListener) {
    loop {
        let Ok((sock, _)) = listener.accept().await else { continue };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(handle(ctx, req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(sock), svc)
                .await;
        });
    }
}

pub(crate) fn text(code: StatusCode, msg: impl Into<String>) -> Response<Body> {
    Response::builder().status(code).header("content-type", "text/plain").body(Full::new(Bytes::from(msg.into())).boxed()).unwrap()
}

async fn handle(ctx: Arc<Ctx>, req: Request<Incoming>) -> Response<Body> {
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    if auth.strip_prefix("Bearer ") != Some(ctx.cfg.proxy_token.as_str()) {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let path: Vec<String> = req.uri().path().trim_matches('/').split('/').map(str::to_string).collect();
    let query: std::collections::HashMap<String, String> = req.uri().query().map(url_pairs).unwrap_or_default();
    let pairs: Vec<(String, String)> = req.uri().query().map(url_pair_list).unwrap_or_default();
    let flag = |k: &str| pairs.iter().any(|(n, v)| n == k && (v == "true" || v == "1"));
    let url = match path.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["containerLogs", ns, pod, container] => return logs(&ctx, ns, pod, container, &query).await,
        [sub @ ("exec" | "attach"), ns, pod, container] => {
            let Some(id) = container_id(&ctx, ns, pod, container) else {
                return text(StatusCode::BAD_REQUEST, format!("container {container} is not running in pod {pod}"));
            };
            let mut rt = ctx.cri.rt.clone();
            let (tty, stdin, stdout, stderr) = (flag("tty"), flag("stdin"), flag("stdout"), flag("stderr"));
            if *sub == "exec" {
                let cmd = pairs.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect();
                rt.exec(api::ExecRequest { container_id: id, cmd, tty, stdin, stdout, stderr }).await.map(|r| r.into_inner().url)
            } else {
                rt.attach(api::AttachRequest { container_id: id, tty, stdin, stdout, stderr }).await.map(|r| r.into_inner().url)
            }
        }
        ["portForward", ns, pod] => {
            let Some(uid) = pod_uid(&ctx, ns, pod) else { return text(StatusCode::NOT_FOUND, format!("pod {ns}/{pod} is not running on this node")) };
            let filter = api::PodSandboxFilter {
                label_selector: [(crate::pod::LABEL_POD_UID.to_string(), uid)].into(),
                state: Some(api::PodSandboxStateValue { state: api::PodSandboxState::SandboxReady as i32 }),
                ..Default::default()
            };
            let mut rt = ctx.cri.rt.clone();
            let sandbox = rt
                .list_pod_sandbox(api::ListPodSandboxRequest { filter: Some(filter) })
                .await
                .ok()
                .and_then(|r| r.into_inner().items.into_iter().next());
            let Some(sandbox) = sandbox else { return text(StatusCode::BAD_REQUEST, format!("pod {pod} has no running sandbox")) };
            // WebSocket port-forward names its ports in the query (`ports=80,443`);
            // containerd takes them from the CRI request. SPDY names them per stream.
            let port: Vec<i32> =
                pairs.iter().filter(|(k, _)| k == "ports").flat_map(|(_, v)| v.split(',').filter_map(|p| p.trim().parse().ok()).collect::<Vec<i32>>()).collect();
            rt.port_forward(api::PortForwardRequest { pod_sandbox_id: sandbox.id, port }).await.map(|r| r.into_inner().url)
        }
        _ => return text(StatusCode::NOT_FOUND, "not found"),
    };
    use crate::bridge::{self, Session};
    match url {
        // WebSocket protocols containerd does not speak end here (see `bridge`);
        // everything else (SPDY, WebSocket v4 and older) goes to it as it is.
        Ok(url) if path[0] == "portForward" && bridge::offers(&req, bridge::PORT_FORWARD_TUNNEL) => {
            bridge::serve(req, &url, Session::PortForward).await
        }
        Ok(url) if path[0] != "portForward" && bridge::offers(&req, bridge::V5) => {
            let session = Session::Exec { stdin: flag("stdin"), stdout: flag("stdout"), stderr: flag("stderr"), tty: flag("tty") };
            bridge::serve(req, &url, session).await
        }
        Ok(url) => upgrade(req, &url).await,
        Err(e) => text(StatusCode::BAD_REQUEST, e.message().to_string()),
    }
}

fn url_pairs(q: &str) -> std::collections::HashMap<String, String> {
    url_pair_list(q).into_iter().collect()
}

/// Query pairs in order, repeated keys kept (exec's `command`).
fn url_pair_list(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The runtime's ID of a container of a pod this node runs.
fn container_id(ctx: &Ctx, ns: &str, pod: &str, container: &str) -> Option<String> {
    let p = ctx.pod_by_name(ns, pod)?;
    let st = p.status.as_ref()?;
    st.container_statuses
        .iter()
        .chain(st.init_container_statuses.iter())
        .flatten()
        .find(|c| c.name == container)?
        .container_id
        .as_deref()?
        .split_once("://")
        .map(|(_, id)| id.to_string())
}

fn is_upgrade_header(name: &http::HeaderName) -> bool {
    let n = name.as_str();
    n == "connection" || n == "upgrade" || n.starts_with("sec-websocket-") || n == "x-stream-protocol-version"
}

/// Forwards the caller's upgrade (SPDY or WebSocket) to the runtime's
/// streaming URL and splices the two once both switched protocols.
async fn upgrade(mut req: Request<Incoming>, url: &str) -> Response<Body> {
    let headers = req.headers().iter().filter(|(k, _)| is_upgrade_header(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut resp = match dial_runtime(url, req.method().clone(), headers).await {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    let mut answer = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    for (k, v) in resp.headers() {
        if is_upgrade_header(k) {
            answer = answer.header(k, v);
        }
    }
    let client = hyper::upgrade::on(&mut req);
    let runtime = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        let (Ok(c), Ok(r)) = futures::future::join(client, runtime).await else { return };
        let _ = tokio::io::copy_bidirectional(&mut hyper_util::rt::TokioIo::new(c), &mut hyper_util::rt::TokioIo::new(r)).await;
    });
    answer.body(Full::new(Bytes::new()).boxed()).unwrap()
}

/// Sends an upgrade request to the runtime's streaming `url` and returns its
/// 101 answer (upgrade it with `hyper::upgrade::on`); anything else comes
/// back as the answer to give the caller.
pub(crate) async fn dial_runtime(url: &str, method: http::Method, headers: Vec<(http::HeaderName, http::HeaderValue)>) -> Result<Response<Incoming>, Response<Body>> {
    let Some((addr, path)) = url.strip_prefix("http://").and_then(|r| r.find('/').map(|i| (r[..i].to_string(), r[i..].to_string()))) else {
        return Err(text(StatusCode::INTERNAL_SERVER_ERROR, format!("unexpected streaming URL {url}")));
    };
    let mut out = Request::builder().method(method).uri(path).header("host", &addr);
    for (k, v) in headers {
        out = out.header(k, v);
    }
    let Ok(out) = out.body(http_body_util::Empty::<Bytes>::new()) else { return Err(text(StatusCode::BAD_REQUEST, "bad request")) };
    let attempt = async {
        let sock = tokio::net::TcpStream::connect(&addr).await?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(sock)).await?;
        tokio::spawn(conn.with_upgrades());
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(send.send_request(out).await?)
    };
    let resp = attempt.await.map_err(|e| text(StatusCode::BAD_GATEWAY, format!("reaching the runtime's streaming server: {e}")))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = resp.status();
        let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        return Err(Response::builder().status(status).body(Full::new(body).boxed()).unwrap());
    }
    Ok(resp)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The UID of the pod this node runs under that namespace and name.
fn pod_uid(ctx: &Ctx, ns: &str, name: &str) -> Option<String> {
    ctx.pod_by_name(ns, name).and_then(|p| p.uid())
}

/// The attempts of a container's logs, oldest first.
fn attempts(dir: &Path) -> Vec<(u32, PathBuf)> {
    let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_suffix(".log").and_then(|n| n.parse().ok()).map(|n| (n, e.path()))
        })
        .collect();
    v.sort();
    v
}

/// One line of the CRI log format: `<time> <stream> <P|F> <text>`.
struct LogLine<'a> {
    time: &'a str,
    partial: bool,
    text: &'a str,
}

fn parse_line(l: &str) -> Option<LogLine<'_>> {
    let mut it = l.splitn(4, ' ');
    let time = it.next()?;
    let _stream = it.next()?;
    let tag = it.next()?;
    Some(LogLine { time, partial: tag == "P", text: it.next().unwrap_or("") })
}

struct LogOptions {
    timestamps: bool,
    since: Option<k8s_openapi::jiff::Timestamp>,
    tail: Option<usize>,
    limit: Option<usize>,
}

impl LogOptions {
    /// Renders complete CRI lines as the user sees them.
    fn render(&self, lines: &[String]) -> Vec<u8> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut pending = String::new();
        for l in lines {
            let Some(p) = parse_line(l) else { continue };
            if let Some(since) = self.since
                && p.time.parse::<k8s_openapi::jiff::Timestamp>().is_ok_and(|t| t < since)
            {
                continue;
            }
            if pending.is_empty() && self.timestamps {
                pending.push_str(p.time);
                pending.push(' ');
            }
            pending.push_str(p.text);
            if !p.partial {
                pending.push('\n');
                out.push(std::mem::take(&mut pending).into_bytes());
            }
        }
        if let Some(n) = self.tail {
            let skip = out.len().saturating_sub(n);
            out.drain(..skip);
        }
        out.concat()
    }
}

async fn logs(ctx: &Arc<Ctx>, ns: &str, pod: &str, container: &str, q: &std::collections::HashMap<String, String>) -> Response<Body> {
    let Some(uid) = pod_uid(ctx, ns, pod) else {
        return text(StatusCode::NOT_FOUND, format!("pod {ns}/{pod} is not running on node {}", ctx.cfg.node_name));
    };
    let dir = crate::pod::log_dir(&ctx.cfg.dir, ns, pod, &uid).join(container);
    let all = attempts(&dir);
    let previous = q.get("previous").is_some_and(|v| v == "true");
    let chosen = if previous { all.len().checked_sub(2).map(|i| all[i].clone()) } else { all.last().cloned() };
    let Some((attempt, file)) = chosen else {
        let msg = if previous {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating")
        };
        return text(StatusCode::BAD_REQUEST, msg);
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    let since = match (q.get("sinceSeconds"), q.get("sinceTime")) {
        (Some(s), _) => s.parse::<i64>().ok().and_then(|s| now.checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(s)).ok()),
        (None, Some(t)) => t.parse().ok(),
        _ => None,
    };
    let opts = LogOptions {
        timestamps: q.get("timestamps").is_some_and(|v| v == "true"),
        since,
        tail: q.get("tailLines").and_then(|v| v.parse().ok()),
        limit: q.get("limitBytes").and_then(|v| v.parse().ok()),
    };
    let follow = q.get("follow").is_some_and(|v| v == "true") && !previous;
    let Ok(f) = tokio::fs::File::open(&file).await else {
        return text(StatusCode::NOT_FOUND, format!("no log for container {container:?}"));
    };
    let mut reader = tokio::io::BufReader::new(f);
    let mut lines = Vec::new();
    let mut buf = String::new();
    while reader.read_line(&mut buf).await.unwrap_or(0) > 0 && buf.ends_with('\n') {
        lines.push(buf.trim_end_matches('\n').to_string());
        buf.clear();
    }
    let mut first = opts.render(&lines);
    if let Some(l) = opts.limit {
        first.truncate(l);
    }
    if !follow {
        return Response::builder().header("content-type", "text/plain").body(Full::new(Bytes::from(first)).boxed()).unwrap();
    }
    // Following: send what is there, then new lines as they are written,
    // until the container stops (its attempt is no longer the newest, or
    // the runtime reports it exited) or the client goes away.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let ctx = ctx.clone();
    let (uid, container) = (uid.to_string(), container.to_string());
    let opts = LogOptions { since: None, tail: None, ..opts };
    tokio::spawn(async move {
        if !first.is_empty() && tx.send(Bytes::from(first)).await.is_err() {
            return;
        }
        let pos = buf.len() as u64;
        let _ = reader.seek(std::io::SeekFrom::Current(-(pos as i64))).await;
        buf.clear();
        let mut idle = 0u32;
        loop {
            match reader.read_line(&mut buf).await {
                Ok(n) if n > 0 && buf.ends_with('\n') => {
                    idle = 0;
                    let out = opts.render(&[buf.trim_end_matches('\n').to_string()]);
                    buf.clear();
                    if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
                        return;
                    }
                    continue;
                }
                Ok(n) if n > 0 => {
                    // Half a line: rewind and wait for the rest.
                    let _ = reader.seek(std::io::SeekFrom::Current(-(n as i64))).await;
                    buf.clear();
                }
                _ => {}
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            idle += 1;
            if idle.is_multiple_of(5) && !still_running(&ctx, &uid, &container, attempt).await {
                // One last read for anything written just before the exit.
                if idle > 5 {
                    return;
                }
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx)) });
    Response::builder().header("content-type", "text/plain").body(BodyExt::boxed(StreamBody::new(stream))).unwrap()
}

async fn still_running(ctx: &Ctx, uid: &str, container: &str, attempt: u32) -> bool {
    let filter = api::ContainerFilter { label_selector: [(crate::pod::LABEL_POD_UID.to_string(), uid.to_string())].into(), ..Default::default() };
    let Ok(r) = ctx.cri.rt.clone().list_containers(api::ListContainersRequest { filter: Some(filter) }).await else { return false };
    r.into_inner().containers.iter().any(|c| {
        c.metadata.as_ref().is_some_and(|m| m.name == container && m.attempt == attempt) && c.state == api::ContainerState::ContainerRunning as i32
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_log_lines() {
        let lines = vec![
            "2026-01-01T00:00:00.1Z stdout F one".to_string(),
            "2026-01-01T00:00:01.1Z stdout P tw".to_string(),
            "2026-01-01T00:00:01.2Z stdout F o".to_string(),
            "2026-01-01T00:00:02.1Z stderr F three".to_string(),
        ];
        let o = LogOptions { timestamps: false, since: None, tail: None, limit: None };
        assert_eq!(String::from_utf8(o.render(&lines)).unwrap(), "one\ntwo\nthree\n");
        let o = LogOptions { timestamps: true, since: None, tail: Some(1), limit: None };
        assert_eq!(String::from_utf8(o.render(&lines)).unwrap(), "2026-01-01T00:00:02.1Z three\n");
        let o = LogOptions { timestamps: false, since: Some("2026-01-01T00:00:01Z".parse().unwrap()), tail: None, limit: None };
        assert_eq!(String::from_utf8(o.render(&lines)).unwrap(), "two\nthree\n");
        assert_eq!(percent_decode("a%20b+c%3D"), "a b c=");
    }
}
