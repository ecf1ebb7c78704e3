//! `get -w`: the live table in a real terminal (tmux), and the line-per-event
//! output when stdout is a pipe, including across a server restart.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Server, Tmux, eventually, rows_with};

const WAIT: Duration = Duration::from_secs(30);

/// A pod that runs for a few seconds on a simulated node, then completes.
fn job_pod(name: &str, secs: u32) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations: {{rkube.io/fake-run-seconds: \"{secs}\"}}\nspec:\n  restartPolicy: Never\n  containers: [{{name: c, image: busybox}}]\n"
    )
}

fn live(s: &Server, args: &str) -> Tmux {
    let cmd = format!("{} --kubeconfig {} {args}", common::rkctl_bin(), s.kubeconfig.display());
    Tmux::start(&cmd, 150, 40)
}

#[test]
fn live_view_redraws_rows_in_place_and_marks_changes() {
    let s = Server::start();
    s.k(&["create", "deployment", "web", "--image=nginx", "--replicas=2"]);
    eventually("web available", WAIT, || (s.k(&["get", "deploy", "web", "-o", "jsonpath={.status.availableReplicas}"]) == "2").then_some(()));
    let t = live(&s, "get pods,deployments -w");
    t.wait_for("the initial table", WAIT, |sc| sc.contains("deployment.apps/web") && sc.contains("watching"));
    // A new pod sorts first; it runs for a few seconds, then completes.
    s.k_apply(&job_pod("aaa-job", 5));
    let first = t.wait_for("the job running", WAIT, |sc| rows_with(sc, "pod/aaa-job").first().is_some_and(|(_, l)| l.contains("Running")));
    let job_line = rows_with(&first, "pod/aaa-job");
    assert_eq!(job_line.len(), 1, "{first}");
    assert_eq!(job_line[0].0, 1, "the first pod sits right under the header:\n{first}");
    let header = &first.lines().next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("READY") && header.contains("STATUS") && header.contains("RESTARTS") && header.contains("AGE"),
        "{first}"
    );

    // The job finishes: its STATUS changes (Δ) and READY drops (↓).
    let sc = t.wait_for("the job completed, marked", WAIT, |sc| {
        rows_with(sc, "pod/aaa-job").first().is_some_and(|(_, l)| l.contains("Completed Δ") && l.contains("0/1 ↓"))
    });
    let job = rows_with(&sc, "pod/aaa-job");
    assert_eq!(job.len(), 1, "one row per object:\n{sc}");
    assert_eq!(job[0].0, 1, "the row was redrawn in place:\n{sc}");
    // Scaled up, the Deployment's READY count rises (↑).
    s.k(&["scale", "deployment", "web", "--replicas=3"]);
    let sc = t
        .wait_for("the deployment scaled, marked", WAIT, |sc| rows_with(sc, "deployment.apps/web").first().is_some_and(|(_, l)| l.contains("3/3 ↑")));
    let pods: Vec<_> = sc.lines().filter(|l| l.starts_with("pod/web-")).collect();
    assert_eq!(pods.len(), 3, "three web pods, each once:\n{sc}");
    let mut names: Vec<&str> = pods.iter().map(|l| l.split_whitespace().next().unwrap()).collect();
    names.dedup();
    assert_eq!(names.len(), 3, "{sc}");
    // Status words are coloured on a terminal.
    let colored = t.capture(true);
    assert!(colored.contains("\x1b[32mRunning"), "Running is green:\n{colored}");

    // A deleted row fades (still shown for a moment), then goes.
    let victim = names[0].trim_start_matches("pod/").to_string();
    s.k(&["delete", "pod", &victim, "--wait=false"]);
    t.wait_for("the deleted row to go", WAIT, |sc| !sc.contains(&victim));
    let sc = t.capture(false);
    assert_eq!(rows_with(&sc, "pod/aaa-job")[0].0, 1, "{sc}");

    // The markers expire after a few seconds.
    t.wait_for("the markers to expire", WAIT, |sc| !sc.contains('Δ') && !sc.contains('↑') && !sc.contains('↓'));
    t.send_keys("q");
    eventually("rkctl to quit on q", WAIT, || {
        let alive = std::process::Command::new("tmux").args(["has-session", "-t", &t.name]).status().unwrap().success();
        (!alive).then_some(())
    });
}

#[test]
fn live_view_drops_columns_to_fit_and_never_wraps() {
    let s = Server::start();
    s.k(&["create", "deployment", "web", "--image=nginx", "--replicas=1"]);
    let cmd = format!("{} --kubeconfig {} get pods -o wide -w", common::rkctl_bin(), s.kubeconfig.display());
    let t = Tmux::start(&cmd, 60, 20);
    let sc = t.wait_for("a running pod", WAIT, |sc| sc.contains("web-") && sc.contains("Running"));
    for l in sc.lines() {
        assert!(l.chars().count() <= 60, "a line wider than the terminal: {l:?}");
    }
    let header = sc.lines().next().unwrap();
    assert!(header.starts_with("NAME") && header.contains("STATUS"), "{sc}");
    assert!(!header.contains("NOMINATED NODE"), "low-priority wide columns are dropped first:\n{sc}");
}

#[test]
fn live_view_survives_a_server_restart() {
    let mut s = Server::start();
    s.k(&["create", "deployment", "web", "--image=nginx", "--replicas=2"]);
    eventually("web available", WAIT, || (s.k(&["get", "deploy", "web", "-o", "jsonpath={.status.availableReplicas}"]) == "2").then_some(()));
    let t = live(&s, "get pods -w");
    let before = t.wait_for("two running pods", WAIT, |sc| sc.matches("Running").count() == 2 && sc.contains("watching"));
    let names: Vec<String> = before.lines().filter(|l| l.starts_with("web-")).map(|l| l.split_whitespace().next().unwrap().to_string()).collect();
    assert_eq!(names.len(), 2, "{before}");

    s.kill();
    t.wait_for("the lost-connection status line", WAIT, |sc| sc.contains("connection lost"));
    s.restart();
    t.wait_for("the connection back", WAIT, |sc| sc.contains("connection back") || (sc.contains("watching") && !sc.contains("lost")));
    s.k_apply(&job_pod("new-pod", 600));
    let sc = t.wait_for("the pod created after the restart", WAIT, |sc| sc.contains("new-pod"));
    for n in &names {
        assert_eq!(rows_with(&sc, n).len(), 1, "{n} shown once after the relist:\n{sc}");
    }
    assert_eq!(rows_with(&sc, "new-pod").len(), 1, "{sc}");
    assert!(!sc.contains("connection lost"), "{sc}");
}

/// A background process whose stdout lines arrive on a channel.
struct Lines {
    child: Child,
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn spawn(mut cmd: std::process::Command) -> Lines {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Lines { child, rx, seen: Vec::new() }
    }

    /// Reads until a line satisfies `pred`; returns every line read so far.
    fn until(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> &[String] {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) => {
                    let hit = pred(&l);
                    self.seen.push(l);
                    if hit {
                        return &self.seen;
                    }
                }
                Err(_) => panic!("no line with {what}; lines: {:#?}", self.seen),
            }
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn watch_lines_match_kubectl_when_not_a_terminal() {
    let s = Server::start();
    s.k(&["create", "deployment", "web", "--image=nginx", "--replicas=1"]);
    eventually("web available", WAIT, || (s.k(&["get", "deploy", "web", "-o", "jsonpath={.status.availableReplicas}"]) == "1").then_some(()));
    let args = ["get", "pods", "-w", "--output-watch-events"];
    let mut kubectl = std::process::Command::new("kubectl");
    kubectl.arg("--kubeconfig").arg(&s.kubeconfig).args(args);
    let (mut k, mut r) = (Lines::spawn(kubectl), Lines::spawn(s.rkctl_cmd(&args)));
    k.until("the first row", |l| l.starts_with("ADDED"));
    r.until("the first row", |l| l.starts_with("ADDED"));
    // A pod whose name is longer than any so far: the columns widen as kubectl's do.
    s.k_apply(&job_pod("a-pod-with-a-rather-long-name", 1));
    let done = |l: &str| l.contains("a-pod-with-a-rather-long-name") && l.contains("Completed");
    let kl = k.until("the pod completed", done).to_vec();
    let rl = r.until("the pod completed", done).to_vec();
    let strip_age = |v: &[String]| v.iter().map(|l| l.rsplit_once(' ').map_or(l.clone(), |(a, _)| a.to_string())).collect::<Vec<_>>();
    assert_eq!(strip_age(&rl), strip_age(&kl), "same lines as kubectl (ages aside)");
    assert!(rl.len() >= 4, "{rl:#?}");
    s.k(&["delete", "pod", "a-pod-with-a-rather-long-name", "--wait=false"]);
    r.until("the DELETED line", |l| l.starts_with("DELETED") && l.contains("a-pod-with-a-rather-long-name"));
}

#[test]
fn watch_lines_go_on_across_a_server_restart() {
    let mut s = Server::start();
    s.k(&["create", "deployment", "web", "--image=nginx", "--replicas=1"]);
    let mut r = Lines::spawn(s.rkctl_cmd(&["get", "pods", "-w"]));
    r.until("the header", |l| l.starts_with("NAME"));
    s.k_apply(&job_pod("before", 600));
    r.until("the first pod", |l| l.starts_with("before"));
    s.kill();
    s.restart();
    s.k_apply(&job_pod("after", 600));
    r.until("a pod created after the restart", |l| l.starts_with("after"));
    assert!(r.child.try_wait().unwrap().is_none(), "the watch did not stop");
    let headers = r.seen.iter().filter(|l| l.starts_with("NAME")).count();
    assert_eq!(headers, 1, "no second table after reconnecting: {:#?}", r.seen);
}
