//! The `rkube` binary: flags, certificates, the admin kubeconfig, and wiring
//! of the store and the API server. No logic of its own beyond start-up.

mod join;
mod pki;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: the server builds and drops many small
/// JSON trees, and a profile of pod creation showed glibc's malloc and free
/// taking about a third of all CPU time.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Joins this machine to a cluster as a node that runs pods.
    Node(JoinArgs),
}

#[derive(Parser)]
struct JoinArgs {
    /// The API server, e.g. https://10.0.0.1:6443.
    #[arg(long)]
    server: String,
    /// The join token `rkube server` printed (also in its data directory).
    #[arg(long)]
    token: String,
    /// Where the agent keeps containerd, volumes and logs.
    #[arg(long, default_value = ".rkube-node")]
    data_dir: PathBuf,
    #[command(flatten)]
    node: NodeArgs,
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
    /// without containers. More can be added at any time by creating a Node
    /// labelled `rkube.io/fake-node=true`.
    #[arg(long, default_value_t = 0)]
    fake_nodes: usize,
    #[command(flatten)]
    node: NodeArgs,
}

/// The local node agent, which runs pods in real containers.
#[derive(Parser)]
struct NodeArgs {
    /// Serve the API (and any fake nodes) without running pods here.
    #[arg(long)]
    no_node_agent: bool,
    /// A CRI endpoint to use (unix socket); without it rkube starts its own
    /// containerd under the data directory.
    #[arg(long)]
    container_runtime_endpoint: Option<String>,
    /// This node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// The node's InternalIP; the agent's port listens there.
    #[arg(long, default_value = "127.0.0.1")]
    node_ip: std::net::IpAddr,
    /// The port of the agent's API (logs, exec, port-forward) for the API server.
    #[arg(long, default_value_t = 10250)]
    agent_port: u16,
    /// Addresses given to this node's pods.
    #[arg(long, default_value = "10.42.0.0/24")]
    pod_cidr: String,
    /// The Linux bridge pods attach to.
    #[arg(long, default_value = "rkube0")]
    bridge: String,
    /// The pod sandbox image.
    #[arg(long, default_value = "registry.k8s.io/pause:3.10")]
    pause_image: String,
    /// A registry (host:port) reached over plain HTTP; repeatable.
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// Hard eviction thresholds (as the kubelet's): crossing one reports
    /// the node's MemoryPressure, DiskPressure or PIDPressure.
    #[arg(long, default_value = node::pressure::DEFAULT_EVICTION_HARD)]
    eviction_hard: String,
}

impl NodeArgs {
    fn config(&self, dir: PathBuf, proxy_token: String) -> Result<node::Config> {
        Ok(node::Config {
            node_name: self.node_name.clone().unwrap_or_else(host_name),
            dir,
            runtime_endpoint: self.container_runtime_endpoint.clone(),
            pause_image: self.pause_image.clone(),
            insecure_registries: self.insecure_registries.clone(),
            pod_cidr: self.pod_cidr.clone(),
            bridge: self.bridge.clone(),
            address: self.node_ip,
            port: self.agent_port,
            proxy_token,
            eviction_hard: node::pressure::Thresholds::parse(&self.eviction_hard).context("--eviction-hard")?,
        })
    }
}

/// `rkube node`: trusts the cluster through the join token, then runs the
/// agent until SIGINT or SIGTERM.
async fn join_node(args: JoinArgs) -> Result<()> {
    let client = join::client(&args.server, &args.token).await?;
    let (_, secret) = join::parse(&args.token)?;
    let cfg = args.node.config(args.data_dir, secret)?;
    let name = cfg.node_name.clone();
    let agent = node::Agent::start(client, cfg).await?;
    println!("node {name} joined {}", args.server);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    agent.stop().await;
    Ok(())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_lowercase())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "rkube".into())
}

/// mimalloc commits each arena it reserves up front by default; committing as
/// pages are used keeps an idle server at about 38 MiB instead of 65. The
/// option is read when the allocator starts, before `main`, and this crate
/// has no unsafe code to set it later: so the process re-executes itself
/// once with it in the environment (a value already there is kept).
#[cfg(feature = "mimalloc")]
fn tune_allocator() {
    use std::os::unix::process::CommandExt;
    const VAR: &str = "MIMALLOC_ARENA_EAGER_COMMIT";
    if std::env::var_os(VAR).is_some() {
        return;
    }
    let mut args = std::env::args_os();
    let (Ok(exe), Some(arg0)) = (std::env::current_exe(), args.next()) else { return };
    // exec returns only when it failed; the server then runs as it is.
    let e = std::process::Command::new(exe).arg0(arg0).args(args).env(VAR, "0").exec();
    eprintln!("rkube: re-executing with {VAR}=0: {e}");
}

fn main() -> Result<()> {
    #[cfg(feature = "mimalloc")]
    tune_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.cmd {
        Cmd::Server(args) => rt.block_on(server(args)),
        Cmd::Node(args) => rt.block_on(join_node(args)),
    }
}

async fn server(args: ServerArgs) -> Result<()> {
    // Flags are checked before anything starts.
    node::pressure::Thresholds::parse(&args.node.eviction_hard).context("--eviction-hard")?;
    let url = format!("https://{}", args.bind);
    let pki = pki::ensure(&args.data_dir, &url, &args.tls_san).context("preparing certificates")?;
    let tls = apiserver::server::tls_config(&pki.server_cert_pem, &pki.server_key_pem, &pki.ca_pem).map_err(|e| anyhow::anyhow!(e))?;
    let store = store::embedded::Embedded::open(&args.data_dir.join("state.redb")).map_err(|e| anyhow::anyhow!("opening the store: {e}"))?;
    let srv = apiserver::ApiServer::new(store as Arc<dyn store::Store>, args.bind.to_string()).await.map_err(|e| anyhow::anyhow!(e))?;
    srv.set_service_account_key(&pki.service_account_key).map_err(|e| anyhow::anyhow!(e))?;
    let listener = tokio::net::TcpListener::bind(args.bind).await.with_context(|| format!("binding {}", args.bind))?;
    // Controllers, the scheduler and the fake nodes are clients of the
    // router in process, each with its own identity.
    let client = |user: &str| kube::Client::new(srv.as_user(apiserver::User::new(user, &["system:masters"])), "default");
    tokio::spawn(controllers::run(client("system:kube-controller-manager"), pki.ca_pem.clone()));
    tokio::spawn(scheduler::run(client("system:kube-scheduler")));
    // Simulates the --fake-nodes ones and any Node labelled rkube.io/fake-node=true later.
    tokio::spawn(node::FakeNodes { client: client("system:node:fake"), count: args.fake_nodes }.run());
    tracing::info!(address = %url, "serving");
    println!("kubeconfig: {}", pki.kubeconfig.display());
    let join_token = join::ensure_token(&args.data_dir, &pki.ca_pem)?;
    let (_, secret) = join::parse(&join_token)?;
    srv.set_node_proxy_token(&secret);
    srv.add_token(&secret, apiserver::User::new("system:node:joined", &["system:nodes", "system:masters"]));
    let serving = tokio::spawn(apiserver::server::serve(srv.clone(), listener, tls));
    join::publish_cluster_info(client("system:apiserver"), &pki.ca_pem, &url).await?;
    println!("join a node: rkube node --server {url} --token {join_token}");
    // The API serves even when pods cannot run here: a missing containerd
    // is one clear error in the log.
    let agent = if args.node.no_node_agent {
        None
    } else {
        let cfg = args.node.config(args.data_dir.join("node"), secret)?;
        match node::Agent::start(client("system:node:local"), cfg).await {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::error!("the node agent is not running, so pods will not start on this machine: {e:#}");
                None
            }
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = serving => r.context("serving")?.context("serving")?,
        _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
        _ = term.recv() => tracing::info!("shutting down"),
    }
    if let Some(a) = agent {
        a.stop().await;
    }
    Ok(())
}
