//! `get -w`: the live table in a real terminal (tmux), and the line-per-event
//! output when stdout is a pipe, including across a server restart.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Server, Tmux, eventually, rows_with};

const WAIT: Duration = Duration::from_secs(30);

fn job_pod(name: &str, secs: u32) -> String {
    common::pod_yaml(name, secs, "")
}

/// The live view in a 150×40 terminal. tmux hands commands the server's
/// environment, so colour is switched on explicitly.
fn live(s: &Server, args: &str) -> Tmux {
    let cmd = format!("env -u NO_COLOR {} --kubeconfig {} {args}", common::rkctl_bin(), s.kubeconfig.display());
    Tmux::start(&cmd, 150, 40)
}

#[test]
fn live_view_redraws_rows_in_place_and_marks_changes() {
    let s = Server::start();
    s.k(&["create", "deployment", "web", "--image=nginx", "--replicas=1"]);
    s.pod("mmm", 600, None);
    let t = live(&s, "get pods,deployments -w");
    let first = t.wait_for("the initial table", WAIT, |sc| sc.contains("deployment.apps/web") && sc.contains("pod/mmm") && sc.contains("watching"));
    let header = &first.lines().next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("READY") && header.contains("STATUS") && header.contains("RESTARTS") && header.contains("AGE"),
        "{first}"
    );
    // A new pod sorts first; it starts (READY rises: ↑), runs a few seconds,
    // then completes (STATUS changes: Δ, READY drops: ↓).
    s.k_apply(&job_pod("aaa-job", 5));
    let sc = t.wait_for("the job running, marked", WAIT, |sc| rows_with(sc, "pod/aaa-job").first().is_some_and(|(_, l)| l.contains("1/1 ↑")));
    assert_eq!(rows_with(&sc, "pod/aaa-job")[0].0, 1, "the first pod sits right under the header:\n{sc}");
    let mmm_line = rows_with(&sc, "pod/mmm")[0].0;
    let sc = t.wait_for("the job completed, marked", WAIT, |sc| {
        rows_with(sc, "pod/aaa-job").first().is_some_and(|(_, l)| l.contains("Completed Δ") && l.contains("0/1 ↓"))
    });
    let job = rows_with(&sc, "pod/aaa-job");
    assert_eq!(job.len(), 1, "one row per object:\n{sc}");
    assert_eq!(job[0].0, 1, "the row was redrawn in place:\n{sc}");
    assert_eq!(rows_with(&sc, "pod/mmm")[0].0, mmm_line, "other rows stay put:\n{sc}");
    // Status words are coloured on a terminal.
    let colored = t.capture(true);
    assert!(colored.contains("\x1b[32mRunning"), "Running is green:\n{colored}");

    // More pods: each shows once, in name order, below the ones before.
    s.k_apply(&job_pod("zzz-1", 600));
    s.k_apply(&job_pod("zzz-2", 600));
    let sc = t.wait_for("the new pods", WAIT, |sc| sc.contains("pod/zzz-1") && sc.contains("pod/zzz-2"));
    let (a, m, z1, z2) = (rows_with(&sc, "pod/aaa-job"), rows_with(&sc, "pod/mmm"), rows_with(&sc, "pod/zzz-1"), rows_with(&sc, "pod/zzz-2"));
    assert!(a.len() == 1 && m.len() == 1 && z1.len() == 1 && z2.len() == 1, "{sc}");
    assert!(a[0].0 < m[0].0 && m[0].0 < z1[0].0 && z1[0].0 < z2[0].0, "{sc}");

    // A deleted row fades (still shown for a moment), then goes.
    s.k(&["delete", "pod", "zzz-1", "--wait=false"]);
    t.wait_for("the deleted row to go", WAIT, |sc| !sc.contains("pod/zzz-1") && sc.contains("pod/zzz-2"));
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
    s.pod("web-1", 600, None);
    let cmd = format!("NO_COLOR=1 {} --kubeconfig {} get pods -o wide -w", common::rkctl_bin(), s.kubeconfig.display());
    let t = Tmux::start(&cmd, 60, 20);
    let sc = t.wait_for("a running pod", WAIT, |sc| sc.contains("web-") && sc.contains("Running"));
    for l in sc.lines() {
        assert!(l.chars().count() <= 60, "a line wider than the terminal: {l:?}");
    }
    let header = sc.lines().next().unwrap();
    assert!(header.starts_with("NAME") && header.contains("STATUS"), "{sc}");
    assert!(!header.contains("NOMINATED NODE"), "low-priority wide columns are dropped first:\n{sc}");
    let raw = t.capture(true);
    assert!(!raw.contains("\x1b["), "NO_COLOR: no colour at all:\n{raw:?}");
}

#[test]
fn live_view_survives_a_server_restart() {
    let mut s = Server::start();
    s.pod("web-1", 600, None);
    s.pod("web-2", 600, None);
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
    s.pod("web-1", 600, None);
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
    let mut r = Lines::spawn(s.rkctl_cmd(&["get", "pods", "-w"]));
    s.k_apply(&job_pod("before", 600));
    let first = r.until("the first pod", |l| l.starts_with("before")).to_vec();
    assert!(first[0].starts_with("NAME "), "the header comes with the first row: {first:#?}");
    s.kill();
    s.restart();
    s.k_apply(&job_pod("after", 600));
    r.until("a pod created after the restart", |l| l.starts_with("after"));
    assert!(r.child.try_wait().unwrap().is_none(), "the watch did not stop");
    let headers = r.seen.iter().filter(|l| l.starts_with("NAME")).count();
    assert_eq!(headers, 1, "no second table after reconnecting: {:#?}", r.seen);
}

#[test]
fn watch_prints_objects_and_event_types() {
    let s = Server::start();
    s.pod("solo", 600, None);
    let mut r = Lines::spawn(s.rkctl_cmd(&["get", "pod", "solo", "-w", "-o", "json", "--output-watch-events"]));
    let docs = |lines: &[String]| -> Vec<serde_json::Value> {
        serde_json::Deserializer::from_str(&lines.join("\n")).into_iter::<serde_json::Value>().map_while(Result::ok).collect()
    };
    let first = docs(r.until("the first event", |l| l == "}"));
    assert_eq!(first[0]["type"], "ADDED");
    assert_eq!(first[0]["object"]["metadata"]["name"], "solo");
    assert!(first[0]["object"]["metadata"].get("managedFields").is_none(), "managed fields are left out as kubectl does");
    s.k(&["label", "pod", "solo", "touched=yes"]);
    r.until("the MODIFIED event", |l| l.contains("\"touched\": \"yes\""));
    r.until("its end", |l| l == "}");
    let evs = docs(&r.seen);
    assert_eq!(evs.last().unwrap()["type"], "MODIFIED", "{evs:#?}");
    assert_eq!(evs.last().unwrap()["object"]["metadata"]["labels"]["touched"], "yes");
}
