//! The HTTPS transport: rustls with client-certificate authentication, HTTP/1.1
//! and HTTP/2 by ALPN, one hyper connection task per client. The certificate's
//! common name is the user and its organizations are the groups, as upstream's
//! x509 authenticator reads them. Requests without a verified certificate are
//! anonymous (the API answers them 401 except for health and version).

use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::{ApiServer, BoxError, User};

/// A rustls server configuration that serves `cert_pem`/`key_pem` and verifies
/// optional client certificates against `client_ca_pem`.
pub fn tls_config(cert_pem: &str, key_pem: &str, client_ca_pem: &str) -> Result<Arc<rustls::ServerConfig>, BoxError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_bytes()).collect::<Result<_, _>>()?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_bytes())?.ok_or("no private key in PEM")?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut client_ca_pem.as_bytes()) {
        roots.add(ca?)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).allow_unauthenticated().build()?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The user a verified client certificate names.
pub fn user_from_cert(der: &[u8]) -> Option<User> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    let groups: Vec<String> = subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string)).collect();
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    Some(User::new(&name, &groups))
}

/// Accepts connections until the listener fails; each runs on its own task.
pub async fn serve(srv: ApiServer, listener: TcpListener, tls: Arc<rustls::ServerConfig>) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let srv = srv.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
            };
            let user = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| user_from_cert(c));
            let svc = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                if let Some(u) = &user {
                    req.extensions_mut().insert(u.clone());
                }
                let srv = srv.clone();
                async move { Ok::<_, std::convert::Infallible>(srv.handle(req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc).await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
}
