//! End-to-end harness for rkctl: starts the real `rkube server` (found next to
//! the rkctl binary) on a free loopback port with its own data directory, and
//! runs rkctl and the real kubectl against it with the admin kubeconfig the
//! server writes. Each test owns its server.
//!
//! `Server::start_node_agent` runs the server with its real node agent
//! (containerd, runc, CNI) in new network, PID and mount namespaces, beside a
//! registry on 127.0.0.1:5000 there serving the images `scripts/images.sh`
//! builds; rkctl and kubectl then run in that network namespace.

#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub fn rkctl_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rkctl")
}

/// `rkube` is built into the same directory (the test command runs
/// `cargo build --bins` first); `RKCTL_TEST_RKUBE` names another build.
pub fn rkube_bin() -> PathBuf {
    std::env::var_os("RKCTL_TEST_RKUBE").map(PathBuf::from).unwrap_or_else(|| std::path::Path::new(rkctl_bin()).with_file_name("rkube"))
}

/// Flags every test server gets. A server that can run a real node agent
/// offers `--no-node-agent`; these tests need none (simulated nodes suffice).
fn server_flags() -> &'static [String] {
    static FLAGS: OnceLock<Vec<String>> = OnceLock::new();
    FLAGS.get_or_init(|| {
        let help = Command::new(rkube_bin()).args(["server", "--help"]).output().expect("running rkube server --help");
        let help = String::from_utf8_lossy(&help.stdout);
        if help.contains("--no-node-agent") { vec!["--no-node-agent".into()] } else { Vec::new() }
    })
}

pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub root: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    args: Vec<String>,
    /// Set when the server runs under `unshare` with a real node agent;
    /// commands then enter its network namespace.
    netns: bool,
    /// The `unshare` process's PID (it lives in that network namespace).
    ns_pid: u32,
}

/// The registry of the node-agent servers, inside their network namespace.
pub const REGISTRY: &str = "127.0.0.1:5000";
pub const BUSYBOX: &str = "127.0.0.1:5000/busybox:1";

impl Server {
    /// A server with two simulated nodes, so pods go Running.
    pub fn start() -> Server {
        Server::start_with(&["--fake-nodes", "2"])
    }

    pub fn start_with(args: &[&str]) -> Server {
        let mut last = String::new();
        for _ in 0..5 {
            let root = tempfile::Builder::new().prefix("rkctl-e2e-").tempdir().unwrap();
            let kubeconfig = root.path().join("data").join("admin.kubeconfig");
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let mut s = Server { child: None, port, root, kubeconfig, args: args.iter().map(|a| a.to_string()).collect(), netns: false, ns_pid: 0 };
            match s.spawn() {
                Ok(()) => return s,
                Err(e) => last = e,
            }
        }
        panic!("the server did not start: {last}");
    }

    /// A server whose node agent runs pods in real containers, in its own
    /// network, PID and mount namespaces; everything it starts dies with it.
    pub fn start_node_agent() -> Server {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let images = repo.join("target/e2e-images");
        let built = Command::new(repo.join("scripts/images.sh")).arg(&images).status().expect("running scripts/images.sh");
        assert!(
            built.success(),
            "scripts/images.sh failed: it needs umoci, skopeo, docker-registry and busybox-static (scripts/test.sh installs them)"
        );
        let root = tempfile::Builder::new().prefix("rkctl-node-").tempdir().unwrap();
        let registry = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n  maintenance:\n    readonly:\n      enabled: true\nhttp:\n  addr: {REGISTRY}\n",
            images.join("registry").canonicalize().expect("the image registry directory").display()
        );
        std::fs::write(root.path().join("registry.yml"), registry).unwrap();
        let kubeconfig = root.path().join("data").join("admin.kubeconfig");
        let args = ["--pause-image", "127.0.0.1:5000/pause:1", "--insecure-registry", REGISTRY, "--node-name", "node-1"];
        let mut s = Server { child: None, port: 6443, root, kubeconfig, args: args.iter().map(|a| a.to_string()).collect(), netns: true, ns_pid: 0 };
        s.spawn().unwrap_or_else(|e| panic!("the server did not start: {e}"));
        s
    }

    /// The `unshare` process of a node-agent server (in its network namespace).
    pub fn ns_pid(&self) -> u32 {
        self.ns_pid
    }

    /// A command run in the server's network namespace (plain otherwise).
    pub fn in_netns(&self, bin: impl AsRef<std::ffi::OsStr>) -> Command {
        if !self.netns {
            return Command::new(bin);
        }
        let mut c = Command::new("nsenter");
        c.arg("-t").arg(self.ns_pid.to_string()).args(["-n", "--"]).arg(bin);
        c
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("server.log")).unwrap_or_default()
    }

    /// The one place a server process is started.
    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.root.path().join("server.log")).map_err(|e| e.to_string())?;
        let mut cmd = if self.netns {
            // New network, PID and mount namespaces with their own /run
            // (containerd keeps pod network namespaces there) and the
            // registry; the shell is PID 1 there, so killing `unshare`
            // ends the server, containerd, the shims and the containers.
            let script = format!(
                "mount -t tmpfs tmpfs /run && ip link set lo up && docker-registry serve {reg} >{log} 2>&1 & \
                 for i in $(seq 100); do curl -sf http://{REGISTRY}/v2/ >/dev/null && break; sleep 0.05; done; \
                 \"$0\" \"$@\" & wait",
                reg = self.root.path().join("registry.yml").display(),
                log = self.root.path().join("registry.log").display()
            );
            let mut c = Command::new("unshare");
            c.args(["--net", "--pid", "--mount", "--fork", "--mount-proc", "--kill-child", "sh", "-c", &script]).arg(rkube_bin());
            c
        } else {
            Command::new(rkube_bin())
        };
        let mut child = cmd
            .arg("server")
            .arg("--data-dir")
            .arg(self.root.path().join("data"))
            .arg("--bind")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(if self.netns { &[][..] } else { server_flags() })
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawning rkube: {e}"))?;
        self.ns_pid = child.id();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("rkube exited with {st}; log:\n{}", self.log()));
            }
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
                return Err(format!("rkube not ready in {READY_TIMEOUT:?}; log:\n{}", self.log()));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server (every open watch ends abruptly).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(200)),
                Err(e) => panic!("restarting the server: {e}"),
            }
        }
    }

    fn cmd(&self, bin: &str, args: &[&str]) -> Command {
        let mut c = self.in_netns(bin);
        c.arg("--kubeconfig").arg(&self.kubeconfig);
        // Before the command's own arguments, which may end with `-- CMD …`.
        if bin == "kubectl" {
            c.arg("--cache-dir").arg(self.root.path().join("kubecache"));
        }
        c.args(args).env_remove("KUBECONFIG").env_remove("NO_COLOR").stdin(Stdio::null());
        c
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.cmd("kubectl", args).output().expect("running kubectl")
    }

    pub fn rkctl(&self, args: &[&str]) -> Output {
        self.cmd(rkctl_bin(), args).output().expect("running rkctl")
    }

    pub fn rkctl_cmd(&self, args: &[&str]) -> Command {
        self.cmd(rkctl_bin(), args)
    }

    pub fn rkctl_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self.cmd(rkctl_bin(), args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs kubectl and asserts success.
    pub fn k(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.status.success(), "kubectl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs rkctl and asserts success.
    pub fn r(&self, args: &[&str]) -> String {
        let out = self.rkctl(args);
        assert!(
            out.status.success(),
            "rkctl {args:?} failed: {}\nstdout: {}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// kubectl applying a manifest from stdin.
    pub fn k_apply(&self, manifest: &str) {
        let mut child =
            self.cmd("kubectl", &["apply", "-f", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(manifest.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "kubectl apply failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Gives a Deployment up to 20 s to report `n` available replicas, so
    /// that its columns stop moving. Not an assertion: the comparisons that
    /// follow retry and see the same state whether or not it settled.
    pub fn settle(&self, name: &str, n: u32) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let want = n.to_string();
        while self.k(&["get", "deploy", name, "-o", "jsonpath={.status.availableReplicas}"]) != want && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Creates a bare pod (no controller involved) and waits until it runs.
    /// `run_secs` makes it complete after that long; `node` pins it.
    pub fn pod(&self, name: &str, run_secs: u32, node: Option<&str>) {
        let node = node.map(|n| format!("  nodeName: {n}\n")).unwrap_or_default();
        self.k_apply(&pod_yaml(name, run_secs, &node));
        eventually(&format!("pod {name} running"), Duration::from_secs(30), || {
            let phase = self.k(&["get", "pod", name, "-o", "jsonpath={.status.phase}"]);
            (phase == "Running" || phase == "Succeeded").then_some(())
        });
    }

    pub fn write_file(&self, name: &str, contents: &str) -> String {
        let p = self.root.path().join(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, contents).unwrap();
        p.to_str().unwrap().to_string()
    }

    /// Asserts rkctl and kubectl print the same bytes (stdout and stderr)
    /// and exit alike for `args`. AGE cells tick at second boundaries: ages
    /// of the same width may differ, and a mismatch is retried a few times.
    pub fn same(&self, args: &[&str]) {
        let mut last = (String::new(), String::new());
        for _ in 0..5 {
            let (a, b) = (self.rkctl(args), self.kubectl(args));
            let show = |o: &Output| {
                format!("[exit {}]\n{}{}", o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
            };
            let (x, y) = (show(&a), show(&b));
            if x == y || mask_ages(&x) == mask_ages(&y) {
                return;
            }
            last = (x, y);
            thread::sleep(Duration::from_millis(300));
        }
        panic!("rkctl and kubectl differ for {args:?}\n--- rkctl\n{}\n--- kubectl\n{}", last.0, last.1);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Blanks out age tokens (`5s`, `3m20s`, `2d`) keeping their width, so two
/// outputs taken a second apart compare equal, alignment and all.
pub fn mask_ages(s: &str) -> String {
    let is_age = |t: &str| {
        let mut groups = 0;
        let mut digits = 0;
        for c in t.chars() {
            match c {
                '0'..='9' => digits += 1,
                's' | 'm' | 'h' | 'd' | 'y' if digits > 0 => {
                    groups += 1;
                    digits = 0;
                }
                _ => return false,
            }
        }
        digits == 0 && (1..=2).contains(&groups)
    };
    s.split_inclusive(|c: char| c.is_whitespace())
        .map(|t| {
            let word = t.trim_end();
            if is_age(word) { "#".repeat(word.len()) + &t[word.len()..] } else { t.to_string() }
        })
        .collect()
}

/// A pod for simulated nodes that completes after `run_secs`.
pub fn pod_yaml(name: &str, run_secs: u32, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: {name}}}\n  annotations: {{rkube.io/fake-run-seconds: \"{run_secs}\"}}\nspec:\n  restartPolicy: Never\n{extra_spec}  containers: [{{name: c, image: busybox}}]\n"
    )
}

/// Polls `f` until it returns `Some`, or panics after `timeout`.
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// A tmux session running a command in a real terminal; killed on drop.
pub struct Tmux {
    pub name: String,
}

impl Tmux {
    pub fn start(cmd: &str, width: u16, height: u16) -> Tmux {
        let name = format!("rkctl-{}-{}", std::process::id(), rand_suffix());
        let st = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name, "-x", &width.to_string(), "-y", &height.to_string(), cmd])
            .env_remove("NO_COLOR")
            .status()
            .expect("running tmux");
        assert!(st.success(), "tmux new-session failed");
        Tmux { name }
    }

    /// The screen, with colour escapes when `escapes`.
    pub fn capture(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", &self.name];
        if escapes {
            args.push("-e");
        }
        let out = Command::new("tmux").args(&args).output().expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn send_keys(&self, keys: &str) {
        Command::new("tmux").args(["send-keys", "-t", &self.name, keys]).status().unwrap();
    }

    /// Waits until the plain screen satisfies `pred`, returning it.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.capture(false);
            if pred(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; screen:\n{s}");
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.name]).status();
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // A counter too: two sessions of one test must never share a name.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish() % 1_000_000 * 1000 + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 1000
}

/// The lines of a screen that contain `needle`, with their row numbers.
pub fn rows_with(screen: &str, needle: &str) -> Vec<(usize, String)> {
    screen.lines().enumerate().filter(|(_, l)| l.contains(needle)).map(|(i, l)| (i, l.to_string())).collect()
}

/// A long-running rkctl (`logs -f`, `port-forward`) whose stdout lines
/// arrive on a channel; killed on drop.
pub struct Background {
    pub child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Server {
    pub fn spawn_rkctl(&self, args: &[&str]) -> Background {
        use std::io::BufRead;
        let mut child = self.rkctl_cmd(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("running rkctl");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Background { child, lines }
    }
}

impl Background {
    /// Waits for a stdout line satisfying `pred`, returning it; panics with
    /// every line seen (and stderr) when `timeout` passes first.
    pub fn expect_line(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) if pred(&l) => return l,
                Ok(l) => seen.push(l),
                Err(_) => {
                    let _ = self.child.kill();
                    let mut err = String::new();
                    if let Some(mut e) = self.child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut e, &mut err);
                    }
                    panic!("no line with {what} within {timeout:?}; lines seen: {seen:#?}; stderr: {err}");
                }
            }
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
