//! Container probes: exec (through CRI), httpGet and tcpSocket (from the
//! node to the pod's IP).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
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
        let Some(port) = port(&h.port, c) else { return false };
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
            let code: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some((200..400).contains(&code))
        };
        return matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)));
    }
    if let Some(t) = &p.tcp_socket {
        let Some(port) = port(&t.port, c) else { return false };
        let host = t.host.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| pod_ip.to_string());
        return matches!(tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host.as_str(), port))).await, Ok(Ok(_)));
    }
    // gRPC probes would need a gRPC health client; they fail visibly
    // rather than pass silently.
    false
}
