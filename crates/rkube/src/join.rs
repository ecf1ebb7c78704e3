//! Joining nodes. The server keeps a join token `rk1.<ca-hash>.<secret>` in
//! its data directory: the secret authenticates nodes (and is what the API
//! server presents to every node agent), the hash pins the cluster CA, which
//! a joining node reads from `kube-public/cluster-info` before it trusts the
//! server.

use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};

fn ca_hash(ca_pem: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, ca_pem.as_bytes());
    d.as_ref().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The server's join token, made on first start.
pub fn ensure_token(dir: &Path, ca_pem: &str) -> Result<String> {
    let path = dir.join("join-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_string();
        if parse(&t).is_ok_and(|(h, _)| h == ca_hash(ca_pem)) {
            return Ok(t);
        }
    }
    let token = format!("rk1.{}.{}", ca_hash(ca_pem), uuid::Uuid::new_v4().simple());
    std::fs::write(&path, format!("{token}\n")).context("writing the join token")?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(token)
}

/// (CA hash, secret) of a token.
pub fn parse(token: &str) -> Result<(String, String)> {
    let mut parts = token.trim().splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("rk1"), Some(h), Some(s)) if h.len() == 32 && !s.is_empty() => Ok((h.to_string(), s.to_string())),
        _ => bail!("malformed join token: expected rk1.<hash>.<secret>, as printed by `rkube server` and kept in its data directory's join-token"),
    }
}

/// Publishes the CA where joining nodes look for it.
pub async fn publish_cluster_info(client: kube::Client, ca_pem: &str, server_url: &str) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(client, "kube-public");
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-info"},
        "data": {"ca.crt": ca_pem, "server": server_url}});
    cms.patch("cluster-info", &PatchParams::apply("rkube").force(), &Patch::Apply(&cm)).await.context("publishing kube-public/cluster-info")?;
    Ok(())
}

/// A client for `server` authenticated by the token, trusting only the CA
/// whose hash the token names.
pub async fn client(server: &str, token: &str) -> Result<kube::Client> {
    let (hash, secret) = parse(token)?;
    let uri: http::Uri = server.parse().with_context(|| format!("bad server URL {server}"))?;
    let mut cfg = kube::Config::new(uri.clone());
    cfg.accept_invalid_certs = true;
    cfg.auth_info.token = Some(secret.clone().into());
    let insecure = kube::Client::try_from(cfg)?;
    let cms: Api<ConfigMap> = Api::namespaced(insecure, "kube-public");
    let cm = match cms.get("cluster-info").await {
        Ok(cm) => cm,
        Err(kube::Error::Api(e)) if e.code == 401 => bail!("the server at {server} refused the join token (401 Unauthorized)"),
        Err(e) => return Err(e).with_context(|| format!("reading the cluster CA from {server}")),
    };
    let ca = cm.data.and_then(|d| d.get("ca.crt").cloned()).context("kube-public/cluster-info has no ca.crt")?;
    if ca_hash(&ca) != hash {
        bail!("the server's CA does not match the join token's hash: refusing to trust {server}");
    }
    let der: Vec<Vec<u8>> = ca
        .split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .filter_map(|b| b.split("-----END CERTIFICATE-----").next())
        .map(|b| base64::engine::general_purpose::STANDARD.decode(b.split_whitespace().collect::<String>()))
        .collect::<Result<_, _>>()?;
    let mut cfg = kube::Config::new(uri);
    cfg.root_cert = Some(der);
    cfg.auth_info.token = Some(secret.into());
    Ok(kube::Client::try_from(cfg)?)
}
