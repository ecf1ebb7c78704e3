//! A CRI v1 client over the runtime's unix socket (gRPC).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
pub use k8s_cri::v1 as api;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

/// Both CRI services on one connection. Cheap to clone.
#[derive(Clone)]
pub struct Cri {
    pub rt: RuntimeServiceClient<Channel>,
    pub img: ImageServiceClient<Channel>,
}

impl Cri {
    /// Connects to `unix:///path` (or a bare path) and checks the runtime
    /// answers `Version`.
    pub async fn connect(endpoint: &str) -> Result<Cri> {
        let path = PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or(endpoint));
        let channel = Endpoint::try_from("http://cri.invalid")?
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
            }))
            .await
            .with_context(|| format!("connecting to the container runtime at {endpoint}"))?;
        // Exec, attach and log messages can be large; the default 4 MiB is
        // what the kubelet uses too.
        let mut cri = Cri { rt: RuntimeServiceClient::new(channel.clone()), img: ImageServiceClient::new(channel) };
        cri.rt.version(api::VersionRequest { version: "v1".into() }).await.with_context(|| format!("asking {endpoint} for its CRI version"))?;
        Ok(cri)
    }

    /// Waits until the socket exists and answers, for a runtime we started.
    pub async fn wait(endpoint: &Path, timeout: Duration) -> Result<Cri> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match Cri::connect(&endpoint.to_string_lossy()).await {
                Ok(c) => return Ok(c),
                Err(e) if tokio::time::Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}
