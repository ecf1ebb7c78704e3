//! Runs rkube's own containerd (Debian's `containerd` with `runc`) under the
//! data directory, configured for CRI: our sandbox image, CNI from
//! `/usr/lib/cni` with a config we write, plain-HTTP registries we are told
//! about, and the streaming server on loopback.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

/// Where CNI plugins come from (Debian's `containernetworking-plugins`).
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";

pub struct Options<'a> {
    pub dir: &'a Path,
    pub pause_image: &'a str,
    /// `host:port` registries reached over plain HTTP.
    pub insecure_registries: &'a [String],
    /// The CNI network config (a conflist) to install.
    pub cni_conflist: &'a str,
}

/// A containerd we started; stopped with SIGTERM when `stop` is called and
/// killed if dropped.
pub struct Containerd {
    child: Child,
    pub socket: PathBuf,
}

/// Checks the binaries are there, so a missing package is one clear error.
pub fn check_installed() -> Result<()> {
    let missing: Vec<&str> = ["containerd", "runc", "containerd-shim-runc-v2"].into_iter().filter(|b| which(b).is_none()).collect();
    if !missing.is_empty() {
        bail!(
            "cannot run containers: {} not found; install the Debian packages containerd and runc (apt-get install containerd runc containernetworking-plugins)",
            missing.join(", ")
        );
    }
    for p in ["bridge", "host-local", "loopback", "portmap"] {
        if !Path::new(CNI_BIN_DIR).join(p).exists() {
            bail!("cannot network pods: {CNI_BIN_DIR}/{p} not found; install the Debian package containernetworking-plugins");
        }
    }
    Ok(())
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(bin)).find(|p| p.is_file()))
}

fn config(o: &Options, socket: &Path) -> String {
    let d = o.dir.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  # Some machines (and containers) refuse a lower OOM score than ours.
  restrict_oom_score_adj = true
  enable_selinux = false
  max_container_log_line_size = 16384
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{runc}"
        Root = "{d}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{d}/cni"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{d}/certs.d"
"#,
        sock = socket.display(),
        pause = o.pause_image,
        runc = which("runc").unwrap_or_else(|| PathBuf::from("runc")).display(),
    )
}

impl Containerd {
    /// Writes the configuration and starts containerd, waiting until its
    /// CRI socket answers.
    pub async fn start(o: &Options<'_>) -> Result<(Containerd, crate::cri::Cri)> {
        check_installed()?;
        let dir = o.dir;
        std::fs::create_dir_all(dir.join("cni")).context("creating the containerd directory")?;
        let socket = dir.join("containerd.sock");
        std::fs::write(dir.join("config.toml"), config(o, &socket))?;
        std::fs::write(dir.join("cni").join("10-rkube.conflist"), o.cni_conflist)?;
        for r in o.insecure_registries {
            let hosts = dir.join("certs.d").join(r);
            std::fs::create_dir_all(&hosts)?;
            std::fs::write(
                hosts.join("hosts.toml"),
                format!("server = \"http://{r}\"\n\n[host.\"http://{r}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"),
            )?;
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("containerd.log"))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting containerd")?;
        let mut me = Containerd { child, socket };
        let cri = tokio::select! {
            r = crate::cri::Cri::wait(&me.socket, Duration::from_secs(20)) => r.with_context(|| format!("containerd did not come up; see {}", dir.join("containerd.log").display()))?,
            s = me.child.wait() => bail!("containerd exited at start ({}); see {}", s?, dir.join("containerd.log").display()),
        };
        Ok((me, cri))
    }

    /// SIGTERM, then up to 10 s for containerd to exit. Containers keep
    /// running under their shims, as with the kubelet, and are adopted on
    /// the next start.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
            if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_ok() {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}
