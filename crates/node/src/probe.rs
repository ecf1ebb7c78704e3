//! Container probes: exec (through CRI), httpGet and tcpSocket (from the
//! node to the pod's IP), grpc (the standard health service); and lifecycle hooks (postStart, preStop), which
//! share exec and httpGet with probes and add sleep.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, HTTPGetAction, LifecycleHandler, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cri::{Cri, api};

/// A named port resolves through the container's ports.
fn port(p: &IntOrString, c: &Container) -> Option<u16> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => {
            c.ports.iter().flatten().find(|cp| cp.name.as_deref() == Some(name)).and_then(|cp| u16::try_from(cp.container_port).ok())
        }
    }
}

/// True when the probe succeeds within its timeout.
pub async fn run(cri: &Cri, p: &Probe, container_id: &str, pod_ip: &str, c: &Container) -> bool {
    let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(e) = &p.exec {
        let req =
            api::ExecSyncRequest { container_id: container_id.into(), cmd: e.command.clone().unwrap_or_default(), timeout: timeout.as_secs() as i64 };
        return matches!(tokio::time::timeout(timeout + Duration::from_secs(1), cri.rt.clone().exec_sync(req)).await, Ok(Ok(r)) if r.get_ref().exit_code == 0);
    }
    if let Some(h) = &p.http_get {
        return matches!(http_get(h, c, pod_ip, timeout).await, Some(code) if (200..400).contains(&code));
    }
    if let Some(t) = &p.tcp_socket {
        let Some(port) = port(&t.port, c) else { return false };
        let host = t.host.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| pod_ip.to_string());
        return matches!(tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host.as_str(), port))).await, Ok(Ok(_)));
    }
    if let Some(g) = &p.grpc {
        let Ok(port) = u16::try_from(g.port) else { return false };
        return grpc_serving(pod_ip, port, g.service.as_deref().unwrap_or(""), timeout).await;
    }
    false
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

/// The standard gRPC health check (`grpc.health.v1.Health/Check`) says SERVING.
async fn grpc_serving(host: &str, port: u16, service: &str, timeout: Duration) -> bool {
    let attempt = async {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{host}:{port}"))
            .ok()?
            .user_agent("kube-probe/1.37")
            .ok()?
            .connect_timeout(timeout)
            .connect()
            .await
            .ok()?;
        let mut grpc = tonic::client::Grpc::new(ch);
        grpc.ready().await.ok()?;
        let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
        let path = http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
        let r = grpc.unary(tonic::Request::new(HealthCheckRequest { service: service.into() }), path, codec).await.ok()?;
        Some(r.into_inner().status == 1)
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)))
}

/// The status code of an httpGet action against the pod, if it answered in time.
async fn http_get(h: &HTTPGetAction, c: &Container, pod_ip: &str, timeout: Duration) -> Option<u16> {
    let port = port(&h.port, c)?;
    let host = h.host.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| pod_ip.to_string());
    let path = h.path.clone().unwrap_or_else(|| "/".into());
    let mut headers = String::new();
    for hh in h.http_headers.iter().flatten() {
        headers.push_str(&format!("{}: {}\r\n", hh.name, hh.value));
    }
    let req = format!("GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.37\r\nAccept: */*\r\n{headers}\r\n");
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect((host.as_str(), port)).await.ok()?;
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = vec![0u8; 64];
        let n = s.read(&mut buf).await.ok()?;
        let line = String::from_utf8_lossy(&buf[..n]).to_string();
        line.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(timeout, attempt).await.ok().flatten()
}

/// Runs a lifecycle hook to completion within `timeout`; the error is the
/// message upstream's kubelet puts in its FailedPostStartHook/FailedPreStopHook event.
pub async fn hook(cri: &Cri, h: &LifecycleHandler, container_id: &str, pod_ip: &str, c: &Container, timeout: Duration) -> Result<(), String> {
    if let Some(e) = &h.exec {
        let cmd = e.command.clone().unwrap_or_default();
        let req = api::ExecSyncRequest { container_id: container_id.into(), cmd: cmd.clone(), timeout: timeout.as_secs() as i64 };
        return match tokio::time::timeout(timeout + Duration::from_secs(1), cri.rt.clone().exec_sync(req)).await {
            Ok(Ok(r)) if r.get_ref().exit_code == 0 => Ok(()),
            Ok(Ok(r)) => {
                let r = r.into_inner();
                let out = String::from_utf8_lossy(&[r.stdout, r.stderr].concat()).trim().to_string();
                Err(format!("Exec lifecycle hook ({cmd:?}) for Container {:?} failed - error: command exited with {}, message: {out:?}", c.name, r.exit_code))
            }
            Ok(Err(e)) => Err(format!("Exec lifecycle hook ({cmd:?}) for Container {:?} failed - error: {}", c.name, e.message())),
            Err(_) => Err(format!("Exec lifecycle hook ({cmd:?}) for Container {:?} timed out", c.name)),
        };
    }
    if let Some(g) = &h.http_get {
        return match http_get(g, c, pod_ip, timeout).await {
            Some(code) if (200..400).contains(&code) => Ok(()),
            Some(code) => Err(format!("HTTP lifecycle hook ({}) for Container {:?} failed - error: HTTP status code {code}", g.path.as_deref().unwrap_or("/"), c.name)),
            None => Err(format!("HTTP lifecycle hook ({}) for Container {:?} failed - error: no answer", g.path.as_deref().unwrap_or("/"), c.name)),
        };
    }
    if let Some(s) = &h.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64).min(timeout)).await;
        return Ok(());
    }
    Err(format!("lifecycle hook for Container {:?}: only exec, httpGet and sleep handlers are supported", c.name))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    /// Against the real gRPC health service (tonic-health): SERVING passes,
    /// NOT_SERVING, an unknown service and a closed port fail.
    #[tokio::test]
    async fn grpc_health_checks() {
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter.set_service_status("ready", tonic_health::ServingStatus::Serving).await;
        reporter.set_service_status("sick", tonic_health::ServingStatus::NotServing).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming));
        let t = Duration::from_secs(2);
        assert!(super::grpc_serving("127.0.0.1", port, "", t).await);
        assert!(super::grpc_serving("127.0.0.1", port, "ready", t).await);
        assert!(!super::grpc_serving("127.0.0.1", port, "sick", t).await);
        assert!(!super::grpc_serving("127.0.0.1", port, "unknown", t).await);
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        assert!(!super::grpc_serving("127.0.0.1", closed, "", t).await);
    }
}
