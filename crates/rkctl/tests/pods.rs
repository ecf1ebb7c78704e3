//! rkctl `logs`, `exec`, `attach` and `port-forward` against real pods:
//! rkube's own node agent runs them in containers (containerd, runc, CNI)
//! inside namespaces the test makes, and rkctl and the real kubectl talk to
//! it from there.

mod common;

use std::time::{Duration, Instant};

use common::{BUSYBOX, Server, Tmux, rkctl_bin};

const WAIT: Duration = Duration::from_secs(60);

/// Applies `manifest` with kubectl and waits until the pods are Ready.
fn run_pods(s: &Server, manifest: &str, pods: &[&str]) {
    s.k_apply(manifest);
    for p in pods {
        let out = s.kubectl(&["wait", "--for=condition=Ready", &format!("pod/{p}"), "--timeout=60s"]);
        assert!(
            out.status.success(),
            "pod {p} not ready: {}\nevents:\n{}\nlog:\n{}",
            String::from_utf8_lossy(&out.stderr),
            s.k(&["get", "events"]),
            s.log()
        );
    }
}

fn ticker(name: &str, app: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\nspec:\n  containers:\n  - name: main\n    image: {BUSYBOX}\n    command: [sh, -c, 'for i in $(seq 15); do echo {name} line $i; done; i=0; while true; do echo {name} tick $i; i=$((i+1)); sleep 0.2; done']\n---\n"
    )
}

/// The number at the end of a `… tick N` line.
fn tick(l: &str) -> Option<u64> {
    l.rsplit_once(" tick ").and_then(|(_, n)| n.parse().ok())
}

#[test]
fn logs_by_name_and_selector_match_kubectl_and_follow() {
    let s = Server::start_node_agent();
    let two = "apiVersion: v1\nkind: Pod\nmetadata: {name: pair}\nspec:\n  containers:\n  - {name: first, image: \"127.0.0.1:5000/busybox:1\", command: [sh, -c, 'echo from first; sleep 3600']}\n  - {name: second, image: \"127.0.0.1:5000/busybox:1\", command: [sh, -c, 'echo from second; echo err >&2; sleep 3600']}\n";
    run_pods(&s, &format!("{}{}{two}", ticker("tick-a", "tick"), ticker("tick-b", "tick")), &["tick-a", "tick-b", "pair"]);
    // Everything before the ticks is in the logs once they tick.
    for p in ["tick-a", "tick-b"] {
        common::eventually(&format!("{p} ticking"), WAIT, || s.k(&["logs", p]).contains(" tick 1\n").then_some(()));
    }
    // Plain logs of a pod with two containers: kubectl's "Defaulted
    // container" note, -c, --all-containers, --prefix, --tail.
    for args in [
        &["logs", "pair"][..],
        &["logs", "pair", "-c", "second"],
        &["logs", "pair", "--all-containers", "--prefix"],
        &["logs", "pod/pair", "-c", "nope"],
        &["logs", "pair", "-c", "second", "--tail", "1", "--prefix"],
        &["logs", "-l", "app=nothing"],
    ] {
        s.same(args);
    }
    // Selected pods: 10 lines each by default, one pod after the other,
    // with [pod/NAME/CONTAINER] prefixes on request. The ticks move, so
    // compare only the lines written before them.
    let fixed = |out: &str| -> Vec<String> { out.lines().filter(|l| l.contains(" line ")).map(str::to_string).collect() };
    for args in [&["logs", "-l", "app=tick", "--prefix", "--tail", "100000"][..], &["logs", "-l", "app=tick", "--tail", "100000"]] {
        // kubectl takes the sources in no fixed order (each one's lines stay
        // together), so the lines are compared sorted.
        let (ours, theirs) = (s.r(args), s.k(args));
        let sorted = |out: &str| {
            let mut v = fixed(out);
            v.sort();
            v
        };
        assert_eq!(sorted(&ours), sorted(&theirs), "{args:?}\n--- rkctl\n{ours}\n--- kubectl\n{theirs}");
        assert!(!fixed(&ours).is_empty(), "{ours}");
    }
    let prefixed = s.r(&["logs", "-l", "app=tick", "--prefix", "--tail", "100000"]);
    assert!(prefixed.contains("[pod/tick-a/main] tick-a line 15\n") && prefixed.contains("[pod/tick-b/main] tick-b line 1\n"), "{prefixed}");
    let default_tail = s.r(&["logs", "-l", "app=tick"]);
    assert_eq!(default_tail.lines().count(), 20, "10 lines of each pod by default with a selector:\n{default_tail}");
    // Too many streams to follow is refused as kubectl refuses it.
    s.same(&["logs", "-f", "-l", "app=tick", "--max-log-requests", "1"]);

    // -f on one pod keeps streaming new lines.
    let mut f = s.spawn_rkctl(&["logs", "-f", "tick-a", "--tail", "1"]);
    let first = tick(&f.expect_line("a tick", WAIT, |l| tick(l).is_some())).unwrap();
    f.expect_line("five more ticks", Duration::from_secs(20), |l| tick(l).is_some_and(|n| n >= first + 5));
    drop(f);
    // -f with a selector streams every pod at once, each line prefixed.
    let mut f = s.spawn_rkctl(&["logs", "-f", "-l", "app=tick", "--prefix", "--tail", "1"]);
    for pod in ["tick-a", "tick-b"] {
        let tag = format!("[pod/{pod}/main] {pod} tick ");
        let first = tick(&f.expect_line(&format!("a tick of {pod}"), WAIT, |l| l.starts_with(&tag))).unwrap();
        f.expect_line(&format!("more ticks of {pod}"), Duration::from_secs(20), |l| l.starts_with(&tag) && tick(l).is_some_and(|n| n >= first + 5));
    }
}

const WEB: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
  - name: httpd
    image: "127.0.0.1:5000/busybox:1"
    command: [httpd, -f, -p, "8080", -h, /var/www]
    ports: [{name: http, containerPort: 8080}]
  - name: other
    image: "127.0.0.1:5000/busybox:1"
    command: [httpd, -f, -p, "9090", -h, /etc]
"#;

#[test]
fn exec_passes_stdin_and_returns_the_exit_code_as_kubectl() {
    let s = Server::start_node_agent();
    run_pods(&s, WEB, &["web"]);
    // Output, stderr, the exit code and kubectl's notes, byte for byte.
    for args in [
        &["exec", "web", "--", "sh", "-c", "echo out; echo err >&2; exit 7"][..],
        &["exec", "web", "-c", "other", "--", "cat", "/etc/passwd"],
        &["exec", "pod/web", "-c", "httpd", "--", "sh", "-c", "exit 0"],
        &["exec", "-q", "web", "--", "false"],
        &["exec", "web", "-c", "nope", "--", "true"],
        &["exec", "nothere", "--", "true"],
    ] {
        s.same(args);
    }
    let out = s.rkctl(&["exec", "web", "-c", "httpd", "--", "sh", "-c", "exit 42"]);
    assert_eq!(out.status.code(), Some(42));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "command terminated with exit code 42\n");
    // stdin reaches the command: a line it reads, and all of it up to the
    // end (cat ends only once stdin is closed).
    let out = s.rkctl_stdin(&["exec", "-i", "web", "-c", "httpd", "--", "sh", "-c", "read x; echo got $x"], "hello\n");
    assert_eq!((out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned()), (Some(0), "got hello\n".into()));
    let big: String = (0..2000).map(|i| format!("line {i} of the input\n")).collect();
    let out = s.rkctl_stdin(&["exec", "-i", "web", "-c", "httpd", "--", "cat"], &big);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), big);
    let out = s.rkctl_stdin(&["exec", "-i", "web", "-c", "httpd", "--", "sh", "-c", "wc -l; exit 3"], &big);
    assert_eq!((out.status.code(), String::from_utf8_lossy(&out.stdout).trim().to_string()), (Some(3), "2000".into()));
    // A workload or Service target picks one of its pods.
    s.k(&["expose", "pod/web", "--port", "80", "--target-port", "8080"]);
    assert_eq!(s.r(&["exec", "svc/web", "-c", "httpd", "--", "hostname"]), "web\n");
}

#[test]
fn exec_and_attach_with_a_terminal() {
    let s = Server::start_node_agent();
    let tty = "apiVersion: v1\nkind: Pod\nmetadata: {name: shell}\nspec:\n  containers:\n  - {name: sh, image: \"127.0.0.1:5000/busybox:1\", command: [sh], stdin: true, tty: true}\n";
    run_pods(&s, &format!("{WEB}---\n{tty}"), &["web", "shell"]);
    let status = s.root.path().join("exit-status");
    // rkctl in a real terminal (tmux), inside the server's network namespace.
    let run = |args: &str| {
        format!(
            "nsenter -t {pid} -n -- {rkctl} --kubeconfig {kc} {args}; echo \"exited $?\" > {st}; sleep 60",
            pid = s.ns_pid(),
            rkctl = rkctl_bin(),
            kc = s.kubeconfig.display(),
            st = status.display()
        )
    };
    let t = Tmux::start(&run("exec -it web -c httpd -- sh"), 100, 30);
    t.send_keys("echo $((6*7)) $(tty)");
    t.send_keys("Enter");
    // The command ran on a terminal in the container, and its size followed ours.
    t.wait_for("the remote shell's answer", WAIT, |screen| screen.contains("42 /dev/pts/"));
    t.send_keys("stty size");
    t.send_keys("Enter");
    // (tmux keeps a row for its status line.)
    t.wait_for("the terminal size", WAIT, |screen| screen.lines().any(|l| l.trim() == "30 100" || l.trim() == "29 100"));
    t.send_keys("exit 5");
    t.send_keys("Enter");
    common::eventually("rkctl to exit", WAIT, || std::fs::read_to_string(&status).ok().filter(|s| !s.is_empty()));
    assert_eq!(std::fs::read_to_string(&status).unwrap(), "exited 5\n");
    // attach -it reaches the container's own shell.
    std::fs::remove_file(&status).unwrap();
    // (The first session stays: ending tmux's last one ends its server,
    // which a new session started at once can race with.)
    let t = Tmux::start(&run("attach -it shell"), 100, 30);
    t.wait_for("attach's hint", WAIT, |screen| screen.contains("If you don't see a command prompt, try pressing enter."));
    t.send_keys("echo attached-$((40+2))");
    t.send_keys("Enter");
    t.wait_for("the attached shell's answer", WAIT, |screen| screen.contains("attached-42"));
}

#[test]
fn port_forward_serves_several_ports_and_concurrent_connections() {
    let s = Server::start_node_agent();
    run_pods(&s, WEB, &["web"]);
    // A named container port and a number; an ephemeral local port.
    let mut pf = s.spawn_rkctl(&["port-forward", "pod/web", "18080:http", "19090:9090", ":8080"]);
    pf.expect_line("the first port", WAIT, |l| l == "Forwarding from 127.0.0.1:18080 -> 8080");
    pf.expect_line("the second port", WAIT, |l| l == "Forwarding from 127.0.0.1:19090 -> 9090");
    let ephemeral = pf
        .expect_line("the ephemeral port", WAIT, |l| l.starts_with("Forwarding from 127.0.0.1:") && l.ends_with(" -> 8080") && !l.contains(":18080"));
    let ephemeral: u16 = ephemeral.trim_start_matches("Forwarding from 127.0.0.1:").split(' ').next().unwrap().parse().unwrap();
    let fetch = |url: String| {
        let mut c = s.in_netns("curl");
        c.args(["-sS", "--max-time", "20", &url]);
        std::thread::spawn(move || c.output().unwrap())
    };
    let urls: Vec<(String, &str)> = (0..12)
        .map(|i| match i % 3 {
            0 => ("http://127.0.0.1:18080/".to_string(), "hello from rkube\n"),
            1 => ("http://127.0.0.1:19090/passwd".to_string(), "root:x:0:0:root:/root:/bin/sh\n"),
            _ => (format!("http://[::1]:{ephemeral}/"), "hello from rkube\n"),
        })
        .collect();
    let gets: Vec<_> = urls.iter().map(|(u, _)| fetch(u.clone())).collect();
    for ((url, want), g) in urls.iter().zip(gets) {
        let out = g.join().unwrap();
        assert!(out.status.success(), "GET {url}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(want), "GET {url}: {}", String::from_utf8_lossy(&out.stdout));
    }
    pf.expect_line("a connection note", WAIT, |l| l == "Handling connection for 18080");
    // --address, and a Service port leading to the pod's target port.
    s.k(&["expose", "pod/web", "--port", "80", "--target-port", "http"]);
    let mut svc = s.spawn_rkctl(&["port-forward", "--address", "127.0.0.1", "svc/web", "18081:80"]);
    svc.expect_line("the service's port", WAIT, |l| l == "Forwarding from 127.0.0.1:18081 -> 8080");
    let out = fetch("http://127.0.0.1:18081/".into()).join().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from rkube\n", "{}", String::from_utf8_lossy(&out.stderr));
    let refused = fetch("http://[::1]:18081/".into()).join().unwrap();
    assert!(!refused.status.success(), "--address 127.0.0.1 listens there only");
    // As kubectl's, port-forward ends when its pod goes.
    s.k(&["delete", "pod", "web", "--wait=false", "--grace-period=1"]);
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = pf.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "port-forward still running after its pod was deleted");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(pf.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "port-forward exited {status} after its pod went");
    assert!(stderr.contains("error: lost connection to pod"), "{stderr}");
}
