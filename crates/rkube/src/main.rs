//! The `rkube` binary: flags, certificates, the admin kubeconfig, and wiring
//! of the store and the API server. No logic of its own beyond start-up.

mod pki;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "rkube", version, about = "Kubernetes in one small Rust program")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs a single-node cluster: API server with its embedded store.
    Server(ServerArgs),
}

#[derive(Parser)]
struct ServerArgs {
    /// Where state, certificates and the admin kubeconfig live.
    #[arg(long, default_value = ".rkube")]
    data_dir: PathBuf,
    /// Address to serve HTTPS on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    bind: SocketAddr,
    /// Extra names or IPs for the serving certificate.
    #[arg(long = "tls-san")]
    tls_san: Vec<String>,
    /// Simulated nodes to register (`fake-node-0`…): their pods go Running
    /// without containers.
    #[arg(long, default_value_t = 0)]
    fake_nodes: usize,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.cmd {
        Cmd::Server(args) => rt.block_on(server(args)),
    }
}

async fn server(args: ServerArgs) -> Result<()> {
    let url = format!("https://{}", args.bind);
    let pki = pki::ensure(&args.data_dir, &url, &args.tls_san).context("preparing certificates")?;
    let tls = apiserver::server::tls_config(&pki.server_cert_pem, &pki.server_key_pem, &pki.ca_pem).map_err(|e| anyhow::anyhow!(e))?;
    let store = store::embedded::Embedded::open(&args.data_dir.join("state.redb")).map_err(|e| anyhow::anyhow!("opening the store: {e}"))?;
    let srv = apiserver::ApiServer::new(store as Arc<dyn store::Store>, args.bind.to_string()).await.map_err(|e| anyhow::anyhow!(e))?;
    let listener = tokio::net::TcpListener::bind(args.bind).await.with_context(|| format!("binding {}", args.bind))?;
    // Controllers, the scheduler and the fake nodes are clients of the
    // router in process, each with its own identity.
    let client = |user: &str| kube::Client::new(srv.as_user(apiserver::User::new(user, &["system:masters"])), "default");
    tokio::spawn(controllers::run(client("system:kube-controller-manager")));
    tokio::spawn(scheduler::run(client("system:kube-scheduler")));
    if args.fake_nodes > 0 {
        tokio::spawn(node::FakeNodes { client: client("system:node:fake"), count: args.fake_nodes }.run());
    }
    tracing::info!(address = %url, "serving");
    println!("kubeconfig: {}", pki.kubeconfig.display());
    tokio::select! {
        r = apiserver::server::serve(srv, listener, tls) => r.context("serving")?,
        _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
    }
    Ok(())
}
