//! Pod subresources served by the pod's node agent (`log` for now): the
//! API server finds the node's address and agent port in the Node object
//! and forwards the request with its own bearer token, streaming the
//! answer back.

use std::convert::Infallible;

use api::ApiError;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, StreamBody};
use serde_json::Value;

use crate::{Inner, ResBody};

type Result<T> = std::result::Result<T, ApiError>;

fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The container a log request means: the one named, or the pod's only one.
pub(crate) fn container_for(pod: &Value, requested: Option<&str>) -> Result<String> {
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let names = |key: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{key}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    };
    let (containers, init) = (names("containers"), names("initContainers"));
    match requested.filter(|c| !c.is_empty()) {
        Some(c) if containers.iter().chain(init.iter()).any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}"))),
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]{}",
            containers.join(" "),
            if init.is_empty() { String::new() } else { format!(" or one of the init containers: [{}]", init.join(" ")) }
        ))),
    }
}

/// `host:port` of the agent running the pod.
fn agent_address(inner: &Inner, pod: &Value) -> Result<String> {
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let node = pod.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty());
    let Some(node) = node else { return Err(ApiError::bad_request(format!("pod {name} does not have a host assigned"))) };
    let obj = inner.cache.resource("nodes").get(&format!("/registry/nodes/{node}")).ok_or_else(|| ApiError::not_found("", "nodes", node))?;
    let v = obj.value();
    let addr = v
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .map(str::to_string);
    let port = v.pointer("/status/daemonEndpoints/kubeletEndpoint/Port").and_then(Value::as_u64).filter(|p| *p > 0);
    match (addr, port) {
        (Some(a), Some(p)) if a.contains(':') => Ok(format!("[{a}]:{p}")),
        (Some(a), Some(p)) => Ok(format!("{a}:{p}")),
        _ => Err(ApiError::new(503, "ServiceUnavailable", format!("node {node} has no agent endpoint to reach pod {name}"), None)),
    }
}

/// Sends one request to the agent at `addr` on a fresh connection that can
/// be upgraded.
async fn send(addr: &str, req: Request<Empty<Bytes>>) -> Result<Response<hyper::body::Incoming>> {
    let unavailable = |e: String| ApiError::new(503, "ServiceUnavailable", format!("error reaching the node agent at {addr}: {e}"), None);
    let sock = tokio::net::TcpStream::connect(addr).await.map_err(|e| unavailable(e.to_string()))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(sock)).await.map_err(|e| unavailable(e.to_string()))?;
    tokio::spawn(conn.with_upgrades());
    sender.send_request(req).await.map_err(|e| unavailable(e.to_string()))
}

/// GET `path?query` on the pod's agent; the answer streams back as is.
pub(crate) async fn get(inner: &Inner, pod: &Value, path: &str, query: &[(&str, String)]) -> Result<Response<ResBody>> {
    let addr = agent_address(inner, pod)?;
    let qs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", encode_component(v))).collect();
    let uri = if qs.is_empty() { path.to_string() } else { format!("{path}?{}", qs.join("&")) };
    let req = Request::get(uri)
        .header("host", &addr)
        .header("authorization", format!("Bearer {}", inner.node_proxy_token.read().unwrap()))
        .body(Empty::<Bytes>::new())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let resp = send(&addr, req).await?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let msg = String::from_utf8_lossy(&body).trim().to_string();
        return Err(match status {
            StatusCode::NOT_FOUND => ApiError::new(404, "NotFound", msg, None),
            StatusCode::BAD_REQUEST => ApiError::bad_request(msg),
            s => ApiError::new(s.as_u16(), "InternalError", msg, None),
        });
    }
    let body = resp.into_body();
    let stream = futures::stream::unfold(body, |mut b| async move {
        match b.frame().await {
            Some(Ok(f)) => Some((Ok::<_, Infallible>(f), b)),
            _ => None,
        }
    });
    Ok(Response::builder().status(StatusCode::OK).header("content-type", "text/plain").body(BodyExt::boxed(StreamBody::new(stream))).unwrap())
}

/// Headers of an upgrade that must reach the other end unchanged.
fn is_upgrade_header(name: &http::HeaderName) -> bool {
    let n = name.as_str();
    n == "connection" || n == "upgrade" || n.starts_with("sec-websocket-") || n == "x-stream-protocol-version"
}

/// pods/exec, attach and portforward: the client's upgrade (SPDY or
/// WebSocket) is forwarded to the agent with our token; once both sides
/// switch protocols the bytes are spliced. A refused upgrade comes back as
/// a Status, so clients fall back from WebSocket to SPDY as upstream.
pub(crate) async fn upgrade<B>(inner: &Inner, pod: &Value, mut req: Request<B>, path: &str) -> Result<Response<ResBody>> {
    let addr = agent_address(inner, pod)?;
    let uri = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut out = Request::builder()
        .method(req.method().clone())
        .uri(uri)
        .header("host", &addr)
        .header("authorization", format!("Bearer {}", inner.node_proxy_token.read().unwrap()));
    for (k, v) in req.headers() {
        if is_upgrade_header(k) {
            out = out.header(k, v);
        }
    }
    let out = out.body(Empty::<Bytes>::new()).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut resp = send(&addr, out).await?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = resp.status();
        let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let msg = String::from_utf8_lossy(&body).trim().to_string();
        return Err(ApiError::new(status.as_u16(), if status == StatusCode::NOT_FOUND { "NotFound" } else { "BadRequest" }, msg, None));
    }
    let mut answer = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    for (k, v) in resp.headers() {
        if is_upgrade_header(k) {
            answer = answer.header(k, v);
        }
    }
    let client = hyper::upgrade::on(&mut req);
    let agent = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        let (Ok(c), Ok(a)) = futures::future::join(client, agent).await else { return };
        let _ = tokio::io::copy_bidirectional(&mut hyper_util::rt::TokioIo::new(c), &mut hyper_util::rt::TokioIo::new(a)).await;
    });
    Ok(answer.body(BodyExt::boxed(Empty::<Bytes>::new().map_err(|never| match never {}))).unwrap())
}
