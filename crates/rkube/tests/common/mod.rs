//! End-to-end harness: starts the real `rkube` binary on a free loopback port
//! with a fresh data directory and drives it with the real `kubectl` (and, for
//! some tests, kube-rs). Every test owns its server, so tests can run in
//! parallel and never depend on each other.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long a server gets to become ready. Generous because the machine is
/// shared with parallel builds and other tests.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub const KUBECTL: &str = "kubectl";

/// A running server with its own temporary directory. Killed on drop.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    /// Holds the data directory, the server's log and kubectl's cache.
    pub root: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    /// Extra `rkube server` flags (e.g. `--fake-nodes 3`).
    args: Vec<String>,
    /// Set for a server whose node agent runs real containers: it lives in
    /// its own network, PID and mount namespaces, and this is the `unshare`
    /// process holding them (kubectl enters its network namespace).
    netns: bool,
    /// The `unshare` process's PID while it runs.
    ns_pid: u32,
}

/// The registry the node-agent tests pull from, inside the server's
/// network namespace (so 127.0.0.1 there, never the host's network).
pub const REGISTRY: &str = "127.0.0.1:5000";
pub const BUSYBOX: &str = "127.0.0.1:5000/busybox:1";

/// Asks the kernel for a currently free loopback port. Another process may
/// take it before the server binds it; `Server::start` retries in that case.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral port").local_addr().unwrap().port()
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// A server started with extra flags.
    pub fn start_with(args: &[&str]) -> Server {
        let mut last_err = String::new();
        // Each attempt gets a fresh directory because the certificates and
        // kubeconfig name the port the first start was given.
        for _ in 0..5 {
            let root = tempfile::Builder::new().prefix("rkube-e2e-").tempdir().expect("creating a temp dir");
            let kubeconfig = root.path().join("data").join("admin.kubeconfig");
            let mut s = Server {
                child: None,
                port: free_port(),
                root,
                kubeconfig,
                args: args.iter().map(|a| a.to_string()).collect(),
                netns: false,
                ns_pid: 0,
            };
            match s.spawn() {
                Ok(()) => {
                    // The fake nodes register once the API is up: tests that name them need them there.
                    if let Some(n) = args.iter().position(|a| *a == "--fake-nodes").and_then(|i| args.get(i + 1)?.parse::<usize>().ok()) {
                        eventually("the fake nodes registered", Duration::from_secs(30), || {
                            (s.get_json(&["nodes"])["items"].as_array().is_some_and(|a| a.len() >= n)).then_some(())
                        });
                    }
                    return s;
                }
                Err(e) => last_err = e,
            }
        }
        panic!("the server did not start: {last_err}");
    }

    /// A server with a real node agent (containerd, runc, CNI) in fresh
    /// network, PID and mount namespaces, beside a registry on 127.0.0.1:5000
    /// there serving the test images (built by `scripts/images.sh`).
    /// Everything it started dies with it.
    pub fn start_node_agent() -> Server {
        Server::start_node_agent_with(&[])
    }

    /// `start_node_agent` with more server flags.
    pub fn start_node_agent_with(extra: &[&str]) -> Server {
        let images = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/e2e-images");
        let built = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/images.sh"))
            .arg(&images)
            .status()
            .expect("running scripts/images.sh");
        assert!(
            built.success(),
            "scripts/images.sh failed: the node-agent tests need umoci, skopeo, docker-registry and busybox-static (scripts/test.sh installs them)"
        );
        let root = tempfile::Builder::new().prefix("rkube-node-").tempdir().expect("creating a temp dir");
        let kubeconfig = root.path().join("data").join("admin.kubeconfig");
        let registry = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n  maintenance:\n    readonly:\n      enabled: true\nhttp:\n  addr: {REGISTRY}\n",
            images.join("registry").canonicalize().expect("the image registry directory").display()
        );
        std::fs::write(root.path().join("registry.yml"), registry).unwrap();
        let mut args = vec!["--pause-image", "127.0.0.1:5000/pause:1", "--insecure-registry", REGISTRY, "--node-name", "node-1"];
        args.extend_from_slice(extra);
        let mut s = Server { child: None, port: 6443, root, kubeconfig, args: args.iter().map(|a| a.to_string()).collect(), netns: true, ns_pid: 0 };
        s.spawn().unwrap_or_else(|e| panic!("the server did not start: {e}"));
        s
    }

    /// The PID of the server itself (inside its namespaces, when it has them).
    pub fn server_pid(&self) -> u32 {
        let id = self.child.as_ref().expect("server running").id();
        if !self.netns {
            return id;
        }
        let out = Command::new("pgrep").arg("-P").arg(id.to_string()).output().expect("running pgrep");
        String::from_utf8_lossy(&out.stdout).trim().lines().next().and_then(|l| l.parse().ok()).expect("the server under unshare")
    }

    /// Runs a command inside the server's namespaces (network, mount, PID),
    /// e.g. to look at its processes and mounts; returns stdout.
    pub fn in_namespaces(&self, cmd: &[&str]) -> String {
        let out = Command::new("nsenter")
            .arg("-t")
            .arg(self.server_pid().to_string())
            .args(["-n", "-m", "-p", "--"])
            .args(cmd)
            .output()
            .expect("running nsenter");
        assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.root.path().join("server.log")
    }

    /// The server's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).map_err(|e| e.to_string())?;
        let mut cmd = if self.netns {
            // unshare: new network, PID and mount namespaces (with its own
            // /run, where containerd keeps pod network namespaces). When it
            // is killed, the shell (PID 1 there, reaping the shims that
            // daemonize) dies and takes the server, containerd, the shims
            // and every container with it.
            let mut c = Command::new("unshare");
            let script = format!(
                "mount -t tmpfs tmpfs /run && ip link set lo up && docker-registry serve {reg} >{log} 2>&1 & \
                 for i in $(seq 100); do curl -sf http://{REGISTRY}/v2/ >/dev/null && break; sleep 0.05; done; \
                 \"$0\" \"$@\" & wait",
                reg = self.root.path().join("registry.yml").display(),
                log = self.root.path().join("registry.log").display()
            );
            c.args(["--net", "--pid", "--mount", "--fork", "--mount-proc", "--kill-child", "sh", "-c", &script, env!("CARGO_BIN_EXE_rkube")]);
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_rkube"))
        };
        let mut child = cmd
            .arg("server")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--bind")
            .arg(format!("127.0.0.1:{}", self.port))
            // Only the node-agent tests (tests/node_agent.rs) run containers.
            .args(if self.netns { &[][..] } else { &["--no-node-agent"][..] })
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawning rkube: {e}"))?;
        self.ns_pid = child.id();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("rkube exited with {status} before becoming ready; log:\n{}", self.log()));
            }
            // The kubeconfig exists once the certificates are made; /readyz
            // answering "ok" proves this process (not an earlier one) serves.
            if self.kubeconfig.exists() {
                let out = self.kubectl(&["get", "--raw", "/readyz"]);
                if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok" {
                    self.child = Some(child);
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("rkube was not ready within {READY_TIMEOUT:?}; log:\n{}", self.log()));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs the server, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGINT (the server's graceful shutdown signal) with the `kill`
    /// command, since the standard library can only send SIGKILL, and waits
    /// for the process to exit.
    pub fn stop_gracefully(&mut self) {
        let Some(mut c) = self.child.take() else { return };
        let sent = Command::new("kill").arg("-INT").arg(c.id().to_string()).status().expect("running kill");
        assert!(sent.success(), "kill -INT failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("the server did not exit within 20 s of SIGINT; log:\n{}", self.log());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server again on the same data directory and port, so the
    /// existing kubeconfig (and its certificates) keep working.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return,
                // The port can briefly be unavailable right after the kill.
                Err(e) if Instant::now() < deadline => {
                    eprintln!("restart attempt failed, retrying: {}", e.lines().next().unwrap_or(""));
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("restarting the server: {e}"),
            }
        }
    }

    /// A kubectl command bound to this server; its discovery cache lives in
    /// the test's temp dir so no state leaks between tests or runs.
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        self.kubectl_bin_cmd(KUBECTL, args)
    }

    /// Like `kubectl_cmd` with another kubectl binary (another version).
    pub fn kubectl_bin_cmd(&self, kubectl: &str, args: &[&str]) -> Command {
        let mut c = if self.netns {
            let mut c = Command::new("nsenter");
            c.arg("-t").arg(self.ns_pid.to_string()).args(["-n", "--", kubectl]);
            c
        } else {
            Command::new(kubectl)
        };
        c.arg("--kubeconfig").arg(&self.kubeconfig).arg("--cache-dir").arg(self.root.path().join("kubecache")).args(args);
        c.env_remove("KUBECONFIG").stdin(Stdio::null());
        c
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args).output().expect("running kubectl")
    }

    /// Runs kubectl with `input` on stdin (for `-f -`).
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut c = self.kubectl_cmd(args);
        let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("running kubectl");
        child.stdin.take().unwrap().write_all(input.as_bytes()).expect("writing kubectl's stdin");
        child.wait_with_output().expect("waiting for kubectl")
    }

    /// Runs kubectl, asserts it succeeded and returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert_success(args, &out);
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn ok_stdin(&self, args: &[&str], input: &str) -> String {
        let out = self.kubectl_stdin(args, input);
        assert_success(args, &out);
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs kubectl, asserts it failed and returns its stderr without
    /// kubectl's version skew warning.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(!out.status.success(), "kubectl {args:?} succeeded unexpectedly; stdout:\n{}", String::from_utf8_lossy(&out.stdout));
        stderr(&out)
    }

    /// `kubectl get -o json` parsed.
    pub fn get_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let s = self.ok(&a);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("kubectl {a:?} printed invalid JSON ({e}):\n{s}"))
    }

    /// Writes `contents` to a file in the test's temp dir and returns its path.
    pub fn write_file(&self, name: &str, contents: &str) -> String {
        let p = self.root.path().join(name);
        std::fs::write(&p, contents).unwrap();
        p.to_str().unwrap().to_string()
    }

    /// Starts a long-running kubectl (for `get -w`, `wait`) whose stdout lines
    /// arrive on a channel, so the test can wait for them with a timeout.
    pub fn spawn_kubectl(&self, args: &[&str]) -> Background {
        let mut child = self.kubectl_cmd(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("running kubectl");
        let lines = lines_of(child.stdout.take().unwrap());
        Background { child, lines }
    }

    /// A kube-rs client for this server, built from the admin kubeconfig.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("reading the kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await.expect("building a kube config");
        kube::Client::try_from(cfg).expect("building a kube client")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn lines_of(out: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    rx
}

/// A kubectl running in the background; killed on drop.
pub struct Background {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
}

impl Background {
    /// Waits for a stdout line satisfying `pred`, returning it, and panics
    /// with everything seen so far when `timeout` passes first.
    pub fn expect_line(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if pred(&l) => return l,
                Ok(l) => seen.push(l),
                Err(_) => {
                    let _ = self.child.kill();
                    let err = self.child.stderr.take().map(|mut e| {
                        let mut s = String::new();
                        let _ = std::io::Read::read_to_string(&mut e, &mut s);
                        s
                    });
                    panic!("no line with {what} within {timeout:?}; lines seen: {seen:#?}; stderr: {}", err.unwrap_or_default());
                }
            }
        }
    }

    /// Waits for the process to exit and returns whether it succeeded.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("background kubectl did not exit within {timeout:?}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// kubectl's stderr without its client/server version skew warning.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).lines().filter(|l| !l.contains("version difference between client")).collect::<Vec<_>>().join("\n")
}

pub fn assert_success(args: &[&str], out: &Output) {
    assert!(
        out.status.success(),
        "kubectl {args:?} failed with {}; stderr:\n{}\nstdout:\n{}",
        out.status,
        stderr(out),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The HTTP status of the last request kubectl logged at `-v=6`, e.g.
/// `POST https://127.0.0.1:1234/api/v1/... 422 Unprocessable Entity in 5 milliseconds`.
pub fn logged_status(out: &Output) -> Option<u16> {
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines()
        .filter(|l| l.contains("https://"))
        .filter_map(|l| {
            let mut words = l.split_whitespace().skip_while(|w| !w.starts_with("https://"));
            words.next()?;
            words.next()?.parse::<u16>().ok()
        })
        .next_back()
}

/// Polls `f` until it returns `Some`, or panics after `timeout`.
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Reads a string field by JSON pointer, panicking with the object if absent.
pub fn str_at<'a>(v: &'a serde_json::Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(|x| x.as_str()).unwrap_or_else(|| panic!("{ptr} missing in {v:#}"))
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
