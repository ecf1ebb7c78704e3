//! The node agent with real containers: containerd, runc and CNI started
//! by rkube, images from a real registry on 127.0.0.1 (inside the test's
//! own network namespace), driven by the real kubectl.

mod common;

use std::time::{Duration, Instant};

use common::{BUSYBOX, Server};
use serde_json::Value;

/// Polls `kubectl get pod NAME -o json` until `pred` holds.
fn wait_pod(s: &Server, name: &str, timeout: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let out = s.kubectl(&["get", "pod", name, "-o", "json"]);
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            if pred(&v) {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "pod {name}: {what} within {timeout:?}; last:\n{}\nevents:\n{}\nlog:\n{}",
                    serde_json::to_string_pretty(&v["status"]).unwrap(),
                    s.ok(&["get", "events"]),
                    s.log()
                );
            }
        } else if Instant::now() > deadline {
            panic!("pod {name} not found; log:\n{}", s.log());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn phase(v: &Value) -> &str {
    v["status"]["phase"].as_str().unwrap_or("")
}

fn ready(v: &Value) -> bool {
    v["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// No container processes, overlay mounts or pod network namespaces left
/// inside the server's namespaces.
fn assert_clean(s: &Server) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ps = s.in_namespaces(&["ps", "-eo", "args"]);
        let leftover: Vec<&str> =
            ps.lines().map(str::trim).filter(|l| l.starts_with("sleep") || l.starts_with("httpd") || l.contains("containerd-shim")).collect();
        let mounts = s.in_namespaces(&["cat", "/proc/self/mounts"]);
        let overlays = mounts.lines().filter(|l| l.starts_with("overlay") || l.contains("/pods/")).count();
        let netns = s.in_namespaces(&["ls", "/var/run/netns"]);
        if leftover.is_empty() && overlays == 0 && netns.trim().is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!("left behind: processes {leftover:?}, {overlays} mounts, netns {netns:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_pod_that_prints_and_exits_completes_with_its_log_and_leaves_nothing_behind() {
    let s = Server::start_node_agent();
    let nodes = s.ok(&["get", "nodes", "-o", "wide"]);
    assert!(nodes.contains("node-1") && nodes.contains(" Ready ") && nodes.contains("containerd://"), "{nodes}");
    s.ok(&["run", "hello", "--image", BUSYBOX, "--restart=Never", "--", "sh", "-c", "echo hello from a container; sleep 0.3; echo to stderr >&2"]);
    let v = wait_pod(&s, "hello", Duration::from_secs(60), "Succeeded", |v| phase(v) == "Succeeded");
    let cs = &v["status"]["containerStatuses"][0];
    assert_eq!(cs["state"]["terminated"]["exitCode"], 0, "{cs}");
    assert_eq!(cs["state"]["terminated"]["reason"], "Completed", "{cs}");
    assert!(cs["containerID"].as_str().unwrap().starts_with("containerd://"), "{cs}");
    assert!(cs["imageID"].as_str().unwrap().contains("sha256:"), "{cs}");
    assert!(v["status"]["podIP"].as_str().unwrap().starts_with("10.42.0."), "{}", v["status"]);
    assert_eq!(v["status"]["qosClass"], "BestEffort");
    assert!(s.ok(&["get", "pod", "hello"]).contains("Completed"));
    assert_eq!(s.ok(&["logs", "hello"]), "hello from a container\nto stderr\n");
    assert_eq!(s.ok(&["logs", "hello", "--tail", "1"]), "to stderr\n");
    let stamped = s.ok(&["logs", "hello", "--timestamps"]);
    assert!(stamped.lines().all(|l| l.split(' ').next().unwrap().parse::<k8s_openapi::jiff::Timestamp>().is_ok()), "{stamped}");
    let events = s.ok(&["get", "events", "--field-selector", "involvedObject.name=hello"]);
    for reason in ["Scheduled", "Pulled", "Created", "Started"] {
        assert!(events.contains(reason), "no {reason} event:\n{events}");
    }
    s.ok(&["delete", "pod", "hello"]);
    assert_clean(&s);
}

#[test]
fn configmaps_reach_the_container_as_env_and_files() {
    let s = Server::start_node_agent();
    let manifest = format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{greeting: "hi there", app.conf: "mode=fast"}}
---
apiVersion: v1
kind: Pod
metadata: {{name: reader, labels: {{app: reader}}}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {BUSYBOX}
    command: ["sh", "-c", "echo greeting=$GREETING pod=$POD_NAME ns=$POD_NS; cat /etc/settings/app.conf; echo; echo $(EXPANDED)"]
    env:
    - {{name: GREETING, valueFrom: {{configMapKeyRef: {{name: settings, key: greeting}}}}}}
    - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    - {{name: POD_NS, valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}}}
    - {{name: EXPANDED, value: "x-$(POD_NAME)"}}
    volumeMounts: [{{name: cfg, mountPath: /etc/settings, readOnly: true}}]
  volumes: [{{name: cfg, configMap: {{name: settings}}}}]
"#
    );
    s.ok_stdin(&["apply", "-f", "-"], &manifest);
    wait_pod(&s, "reader", Duration::from_secs(60), "Succeeded", |v| phase(v) == "Succeeded");
    assert_eq!(s.ok(&["logs", "reader"]), "greeting=hi there pod=reader ns=default\nmode=fast\nx-reader\n");
}

#[test]
fn a_crashing_container_backs_off_with_rising_restarts_and_keeps_its_previous_log() {
    let s = Server::start_node_agent();
    s.ok(&["run", "crash", "--image", BUSYBOX, "--", "sh", "-c", "echo dying; exit 3"]);
    let v = wait_pod(&s, "crash", Duration::from_secs(60), "restarted twice in CrashLoopBackOff", |v| {
        let cs = &v["status"]["containerStatuses"][0];
        cs["restartCount"].as_i64().unwrap_or(0) >= 2 && cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    let cs = &v["status"]["containerStatuses"][0];
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 3, "{cs}");
    assert_eq!(phase(&v), "Running");
    assert!(s.ok(&["get", "pod", "crash"]).contains("CrashLoopBackOff"));
    assert_eq!(s.ok(&["logs", "crash", "--previous"]), "dying\n");
    let events = s.ok(&["get", "events", "--field-selector", "involvedObject.name=crash"]);
    assert!(events.contains("BackOff"), "{events}");
}

#[test]
fn readiness_probes_gate_ready_and_pods_reach_each_other_by_ip() {
    let s = Server::start_node_agent();
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  containers:
  - name: httpd
    image: {BUSYBOX}
    command: ["sh", "-c", "sleep 2; exec httpd -f -p 8080 -h /var/www"]
    ports: [{{name: http, containerPort: 8080}}]
    readinessProbe: {{httpGet: {{path: /, port: http}}, periodSeconds: 1}}
    livenessProbe: {{exec: {{command: ["true"]}}, periodSeconds: 1}}
"#
    );
    s.ok_stdin(&["apply", "-f", "-"], &manifest);
    let v = wait_pod(&s, "web", Duration::from_secs(60), "Running", |v| phase(v) == "Running");
    assert!(!ready(&v) || v["status"]["containerStatuses"][0]["state"]["running"]["startedAt"].is_string());
    let v = wait_pod(&s, "web", Duration::from_secs(60), "Ready", ready);
    let ip = v["status"]["podIP"].as_str().unwrap().to_string();
    s.ok(&[
        "run",
        "client",
        "--image",
        BUSYBOX,
        "--restart=Never",
        "--",
        "sh",
        "-c",
        &format!("wget -qO- http://{ip}:8080/ && ping -c 1 -W 2 {ip} >/dev/null && echo ping ok"),
    ]);
    wait_pod(&s, "client", Duration::from_secs(60), "Succeeded", |v| phase(v) == "Succeeded" || phase(v) == "Failed");
    assert_eq!(s.ok(&["logs", "client"]), "hello from rkube\nping ok\n");
    let v = wait_pod(&s, "web", Duration::from_secs(5), "still Ready, never restarted", ready);
    assert_eq!(v["status"]["containerStatuses"][0]["restartCount"], 0);
}

#[test]
fn a_deployment_runs_on_the_real_node_and_its_deletion_stops_everything() {
    let s = Server::start_node_agent();
    s.ok(&["create", "deployment", "sleepers", "--image", BUSYBOX, "--replicas", "5", "--", "sleep", "3600"]);
    s.ok(&["rollout", "status", "deployment/sleepers", "--timeout", "90s"]);
    let pods = s.get_json(&["pods", "-l", "app=sleepers"]);
    let items = pods["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    let mut ips: Vec<&str> = items.iter().map(|p| p["status"]["podIP"].as_str().unwrap()).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 5, "every pod has its own IP");
    assert!(items.iter().all(|p| phase(p) == "Running" && ready(p)));
    let ps = s.in_namespaces(&["ps", "-eo", "args"]);
    assert_eq!(ps.lines().filter(|l| l.trim() == "sleep 3600").count(), 5, "{ps}");
    s.ok(&["delete", "deployment", "sleepers"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s.ok(&["get", "pods", "-o", "name"]).trim().is_empty() {
        assert!(Instant::now() < deadline, "pods remain:\n{}", s.ok(&["get", "pods"]));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_clean(&s);
}

#[test]
fn exec_cp_port_forward_and_follow_logs_stream_through_the_api_server() {
    let s = Server::start_node_agent();
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  containers:
  - name: httpd
    image: {BUSYBOX}
    command: ["httpd", "-f", "-p", "8080", "-h", "/var/www"]
  - name: other
    image: {BUSYBOX}
    command: ["httpd", "-f", "-p", "9090", "-h", "/etc"]
  - name: ticker
    image: {BUSYBOX}
    command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]
"#
    );
    s.ok_stdin(&["apply", "-f", "-"], &manifest);
    wait_pod(&s, "web", Duration::from_secs(60), "Ready", ready);

    // exec: output, stderr and the exit code come back (kubectl 1.32 tries
    // WebSocket, then SPDY; 1.28 speaks SPDY only).
    for kubectl in ["kubectl", "/usr/lib/google-cloud-sdk/bin/kubectl.1.28"] {
        let mut c = s.kubectl_bin_cmd(kubectl, &["exec", "web", "-c", "httpd", "--", "sh", "-c", "echo out; echo err >&2; exit 7"]);
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(7), "{kubectl}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n", "{kubectl}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("err"), "{kubectl}");
    }
    // kubectl 1.32 gets WebSocket (v5) when there is no stdin…
    let out = s.kubectl(&["-v=6", "exec", "web", "-c", "httpd", "--", "echo", "over websocket"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "over websocket\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("The subprotocol is v5.channel.k8s.io"), "{}", String::from_utf8_lossy(&out.stderr));
    // …and with stdin, where closing stdin must reach the process (v5's
    // close signal, carried to containerd over SPDY); kubectl 1.28 speaks SPDY.
    for kubectl in ["kubectl", "/usr/lib/google-cloud-sdk/bin/kubectl.1.28"] {
        let run = |args: &[&str], input: &[u8]| {
            let mut c = s.kubectl_bin_cmd(kubectl, args);
            let mut child = c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
            let mut w = child.stdin.take().unwrap();
            let input = input.to_vec();
            let feeder = std::thread::spawn(move || std::io::Write::write_all(&mut w, &input));
            let out = child.wait_with_output().unwrap();
            feeder.join().unwrap().unwrap();
            assert!(out.status.success(), "{kubectl} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            out
        };
        let out = run(&["-v=6", "exec", "-i", "web", "-c", "httpd", "--", "sh", "-c", "read x; echo got $x"], b"hello\n");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "got hello\n");
        let v5 = String::from_utf8_lossy(&out.stderr).contains("The subprotocol is v5.channel.k8s.io");
        assert_eq!(v5, kubectl == "kubectl", "{kubectl}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&run(&["exec", "-i", "web", "-c", "httpd", "--", "cat"], b"to the end\n").stdout), "to the end\n");
        // A megabyte through stdin and back.
        let big: Vec<u8> = (0..1_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let out = run(&["exec", "-i", "web", "-c", "httpd", "--", "wc", "-c"], &big);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1000000", "{kubectl}");
    }
    // exec -it: the process gets a terminal (script gives kubectl one).
    let cmd = s.kubectl_cmd(&["exec", "-it", "web", "-c", "httpd", "--", "sh", "-c", "tty; echo done"]);
    let quote = |a: &std::ffi::OsStr| format!("'{}'", a.to_string_lossy().replace('\'', "'\\''"));
    let line: Vec<String> = std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(quote).collect();
    let line = line.join(" ");
    let out = std::process::Command::new("script").args(["-qec", &line, "/dev/null"]).stdin(std::process::Stdio::piped()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("/dev/pts/") && text.contains("done"), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let err = s.fails(&["exec", "web", "-c", "nope", "--", "true"]);
    assert!(err.contains("container nope is not valid for pod web"), "{err}");

    // cp both ways (tar through exec).
    let local = s.write_file("upload.txt", "uploaded content\n");
    s.ok(&["cp", &local, "web:/tmp/upload.txt", "-c", "httpd"]);
    assert_eq!(s.ok(&["exec", "web", "-c", "httpd", "--", "cat", "/tmp/upload.txt"]), "uploaded content\n");
    let down = s.root.path().join("index.html");
    s.ok(&["cp", "web:/var/www/index.html", down.to_str().unwrap(), "-c", "httpd"]);
    assert_eq!(std::fs::read_to_string(&down).unwrap(), "hello from rkube\n");

    // port-forward: two ports, concurrent connections; kubectl 1.32 tunnels
    // SPDY through a WebSocket, 1.28 speaks SPDY.
    for (kubectl, base) in [("kubectl", 18000u16), ("/usr/lib/google-cloud-sdk/bin/kubectl.1.28", 28000)] {
        let (p1, p2) = (format!("{}:8080", base + 80), format!("{}:9090", base + 90));
        let mut child = s
            .kubectl_bin_cmd(kubectl, &["-v=7", "port-forward", "pod/web", &p1, &p2])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        while let Some(Ok(l)) = lines.next() {
            if l.contains(&format!("{}", base + 90)) {
                break;
            }
        }
        let curl = |url: String| {
            let pid = s.server_pid().to_string();
            std::thread::spawn(move || std::process::Command::new("nsenter").args(["-t", &pid, "-n", "--", "curl", "-sf", &url]).output().unwrap())
        };
        let gets: Vec<_> = (0..4)
            .map(|i| curl(if i % 2 == 0 { format!("http://127.0.0.1:{}/", base + 80) } else { format!("http://127.0.0.1:{}/passwd", base + 90) }))
            .collect();
        for (i, g) in gets.into_iter().enumerate() {
            let out = g.join().unwrap();
            assert!(out.status.success(), "{kubectl}: request {i} through port-forward failed");
            let body = String::from_utf8_lossy(&out.stdout);
            assert!(if i % 2 == 0 { body == "hello from rkube\n" } else { body.contains("root:x:0:0") }, "{body}");
        }
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        let tunnelled = log.contains("SPDY/3.1+portforward.k8s.io") && log.contains("101 Switching Protocols");
        assert_eq!(tunnelled, kubectl == "kubectl", "{kubectl}: {log}");
    }

    // attach: stdin reaches the container's main process, its output comes
    // back. Each kubectl gets a pod of its own: what one attach does to the
    // container's stdin when it ends cannot touch the other's.
    // (The repeats: containerd starts copying an attach's stdin before it
    // hooks up its stdout, so an answer written once, at once, can be lost;
    // kubectl 1.28 over SPDY lost it even after a 0.5 s pause.)
    for (kubectl, word) in [("kubectl", "one"), ("/usr/lib/google-cloud-sdk/bin/kubectl.1.28", "two")] {
        let pod = format!("attached-{word}");
        let attached = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}}}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: main\n    image: {BUSYBOX}\n    stdin: true\n    command: [sh, -c, 'read l; for i in 1 2 3 4 5 6 7 8 9 10; do echo got $l; sleep 0.3; done']\n"
        );
        s.ok_stdin(&["apply", "-f", "-"], &attached);
        wait_pod(&s, &pod, Duration::from_secs(60), "Running", |v| phase(v) == "Running");
        // (stdin stays open until the answer is seen: closing it ends an attach.)
        let mut c = s.kubectl_bin_cmd(kubectl, &["attach", "-i", &pod]);
        let mut child = c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, format!("{word}\n").as_bytes()).unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        let line = lines.next().map(|l| l.unwrap()).unwrap_or_default();
        assert_eq!(line, format!("got {word}"), "{kubectl}");
        drop(stdin);
        let _ = child.wait();
        wait_pod(&s, &pod, Duration::from_secs(30), "Succeeded", |v| phase(v) == "Succeeded");
    }

    // logs -f keeps streaming new lines.
    let mut f = s.spawn_kubectl(&["logs", "-f", "web", "-c", "ticker", "--tail", "1"]);
    let first = f.expect_line("a tick", Duration::from_secs(10), |l| l.starts_with("tick "));
    let n: u64 = first.trim_start_matches("tick ").parse().unwrap();
    f.expect_line("five more ticks", Duration::from_secs(10), |l| l.trim_start_matches("tick ").parse::<u64>().is_ok_and(|m| m >= n + 5));
}

#[test]
fn deleting_a_pod_stops_it_gracefully_within_its_grace_period() {
    let s = Server::start_node_agent();
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: polite}}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: main
    image: {BUSYBOX}
    command: ["sh", "-c", "trap 'echo got TERM; sleep 1; exit 0' TERM; while true; do sleep 0.1; done"]
---
apiVersion: v1
kind: Pod
metadata: {{name: stubborn}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: {BUSYBOX}
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]
"#
    );
    s.ok_stdin(&["apply", "-f", "-"], &manifest);
    wait_pod(&s, "polite", Duration::from_secs(60), "Running", |v| phase(v) == "Running");
    wait_pod(&s, "stubborn", Duration::from_secs(60), "Running", |v| phase(v) == "Running");
    let started = Instant::now();
    s.ok(&["delete", "pod", "polite", "stubborn", "--wait=false"]);
    let v = s.get_json(&["pod", "polite"]);
    assert_eq!(v["metadata"]["deletionGracePeriodSeconds"], 30, "{}", v["metadata"]);
    assert!(s.ok(&["get", "pod", "polite"]).contains("Terminating"));
    // Both go: the polite one when it exits on SIGTERM, the stubborn one
    // when its 2 s run out and it is killed; neither waits 30 s.
    s.ok(&["wait", "--for=delete", "pod/polite", "pod/stubborn", "--timeout=25s"]);
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2), "the stubborn pod was given its grace period ({took:?})");
    assert_clean(&s);
}

#[test]
fn a_second_node_joins_with_the_join_token_and_runs_its_pods() {
    let s = Server::start_node_agent();
    let token = std::fs::read_to_string(s.data_dir().join("join-token")).unwrap().trim().to_string();
    let node2 = s.root.path().join("node2");
    let join = |token: &str| {
        let mut c = std::process::Command::new("nsenter");
        c.args([
            "-t",
            &s.server_pid().to_string(),
            "-n",
            "-m",
            "-p",
            "--",
            env!("CARGO_BIN_EXE_rkube"),
            "node",
            "--server",
            "https://127.0.0.1:6443",
            "--token",
            token,
        ])
        .arg("--data-dir")
        .arg(&node2)
        .args(["--node-name", "node-2", "--pod-cidr", "10.42.1.0/24", "--bridge", "rkube1", "--agent-port", "10251"])
        .args(["--pause-image", "127.0.0.1:5000/pause:1", "--insecure-registry", common::REGISTRY]);
        c
    };
    // A wrong token is refused with a clear error, and nothing registers.
    let (hash, _) = token.rsplit_once('.').unwrap();
    let out = join(&format!("{hash}.wrong")).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused the join token"), "{err}");
    let out = join("not-a-token").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("malformed join token"));
    assert!(s.fails(&["get", "node", "node-2"]).contains("NotFound"));

    let log = std::fs::File::create(s.root.path().join("node2.log")).unwrap();
    let mut agent = join(&token).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = s.kubectl(&["get", "node", "node-2", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status} {.spec.podCIDR}"]);
        if String::from_utf8_lossy(&out.stdout) == "True 10.42.1.0/24" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node-2 not Ready; its log:\n{}",
            std::fs::read_to_string(s.root.path().join("node2.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: two}}\nspec:\n  nodeName: node-2\n  restartPolicy: Never\n  containers: [{{name: c, image: \"{BUSYBOX}\", command: [sh, -c, 'echo running on node two']}}]\n"
    );
    s.ok_stdin(&["apply", "-f", "-"], &manifest);
    let v = wait_pod(&s, "two", Duration::from_secs(60), "Succeeded on node-2", |v| phase(v) == "Succeeded");
    assert!(v["status"]["podIP"].as_str().unwrap().starts_with("10.42.1."), "{}", v["status"]);
    assert_eq!(s.ok(&["logs", "two"]), "running on node two\n");
    let _ = agent.kill();
}

#[test]
fn init_containers_run_first_and_host_ports_and_host_network_work() {
    let s = Server::start_node_agent();
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: inits}}
spec:
  initContainers:
  - {{name: first, image: "{BUSYBOX}", command: [sh, -c, "echo one > /work/order"], volumeMounts: [{{name: w, mountPath: /work}}]}}
  - {{name: second, image: "{BUSYBOX}", command: [sh, -c, "echo two >> /work/order"], volumeMounts: [{{name: w, mountPath: /work}}]}}
  containers:
  - name: web
    image: "{BUSYBOX}"
    command: [sh, -c, "cp /work/order /var/www/order; exec httpd -f -p 80 -h /var/www"]
    ports: [{{containerPort: 80, hostPort: 8088}}]
    volumeMounts: [{{name: w, mountPath: /work}}]
  volumes: [{{name: w, emptyDir: {{}}}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: hostnet}}
spec:
  hostNetwork: true
  containers:
  - {{name: web, image: "{BUSYBOX}", command: [httpd, -f, -p, "127.0.0.1:8099", -h, /var/www]}}
"#
    );
    s.ok_stdin(&["apply", "-f", "-"], &manifest);
    let v = wait_pod(&s, "inits", Duration::from_secs(60), "Running", |v| phase(v) == "Running" && ready(v));
    let init = v["status"]["initContainerStatuses"].as_array().unwrap();
    assert!(init.iter().all(|c| c["state"]["terminated"]["exitCode"] == 0), "{init:?}");
    // hostPort: the node's address (127.0.0.1 in the test's namespace) forwards to the pod.
    let curl = |url: &str| s.in_namespaces(&["curl", "-sf", url]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let order = loop {
        let out = std::process::Command::new("nsenter")
            .args(["-t", &s.server_pid().to_string(), "-n", "--", "curl", "-sf", "http://127.0.0.1:8088/order"])
            .output()
            .unwrap();
        if out.status.success() {
            break String::from_utf8(out.stdout).unwrap();
        }
        assert!(Instant::now() < deadline, "hostPort 8088 never answered");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(order, "one\ntwo\n", "init containers ran in order");
    // hostNetwork: the pod's address is the node's and it listens in the node's network.
    let v = wait_pod(&s, "hostnet", Duration::from_secs(60), "Running", |v| phase(v) == "Running" && ready(v));
    assert_eq!(v["status"]["podIP"], "127.0.0.1");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::process::Command::new("nsenter")
        .args(["-t", &s.server_pid().to_string(), "-n", "--", "curl", "-sf", "http://127.0.0.1:8099/"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "the host-network pod never answered on the node's loopback");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(curl("http://127.0.0.1:8099/"), "hello from rkube\n");
}

#[test]
fn a_restarted_agent_adopts_running_containers_instead_of_restarting_them() {
    let s = Server::start_node_agent();
    s.ok(&["run", "steady", "--image", BUSYBOX, "--", "sleep", "3600"]);
    let before = wait_pod(&s, "steady", Duration::from_secs(60), "Running", |v| phase(v) == "Running" && ready(v));
    let id = before["status"]["containerStatuses"][0]["containerID"].clone();
    // Stop the server (and with it the agent and containerd) gracefully;
    // the container keeps running under its shim.
    let init = s.server_pid();
    let pgrep = std::process::Command::new("pgrep").args(["-P", &init.to_string(), "-f", "rkube server"]).output().unwrap();
    let rkube: u32 = String::from_utf8_lossy(&pgrep.stdout).trim().parse().expect("the rkube process");
    assert!(std::process::Command::new("kill").args(["-TERM", &rkube.to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::path::Path::new(&format!("/proc/{rkube}")).exists()
        && std::fs::read_to_string(format!("/proc/{rkube}/stat")).is_ok_and(|st| !st.contains(") Z "))
    {
        assert!(Instant::now() < deadline, "rkube did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(s.in_namespaces(&["ps", "-eo", "args"]).lines().filter(|l| l.trim() == "sleep 3600").count(), 1, "the container survived");
    // Start it again in the same namespaces, on the same data directory.
    let log = std::fs::OpenOptions::new().append(true).open(s.log_path()).unwrap();
    let _again = std::process::Command::new("nsenter")
        .args(["-t", &init.to_string(), "-n", "-m", "-p", "--", env!("CARGO_BIN_EXE_rkube"), "server", "--data-dir"])
        .arg(s.data_dir())
        .args([
            "--bind",
            "127.0.0.1:6443",
            "--pause-image",
            "127.0.0.1:5000/pause:1",
            "--insecure-registry",
            common::REGISTRY,
            "--node-name",
            "node-1",
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s.kubectl(&["get", "--raw", "/readyz"]).status.success() {
        assert!(Instant::now() < deadline, "the restarted server never became ready:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Labels let the new agent find the sandbox and container again: same
    // container, no restart, still Ready; and it still manages the pod.
    std::thread::sleep(Duration::from_secs(3));
    let after = wait_pod(&s, "steady", Duration::from_secs(30), "Ready", ready);
    assert_eq!(after["status"]["containerStatuses"][0]["containerID"], id, "{}", after["status"]);
    assert_eq!(after["status"]["containerStatuses"][0]["restartCount"], 0);
    assert_eq!(s.in_namespaces(&["ps", "-eo", "args"]).lines().filter(|l| l.trim() == "sleep 3600").count(), 1);
    s.ok(&["delete", "pod", "steady", "--grace-period=1"]);
    assert_clean(&s);
}

#[test]
fn a_pod_reads_its_service_account_token_and_sees_config_map_updates() {
    let s = Server::start_node_agent();
    let manifest = format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: live}}
data: {{mode: slow, gone: soon}}
---
apiVersion: v1
kind: Pod
metadata: {{name: watcher}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {BUSYBOX}
    command: ["sleep", "3600"]
    volumeMounts: [{{name: cfg, mountPath: /etc/live}}]
  volumes: [{{name: cfg, configMap: {{name: live}}}}]
"#
    );
    s.ok_stdin(&["apply", "-f", "-"], &manifest);
    wait_pod(&s, "watcher", Duration::from_secs(60), "Running", |v| phase(v) == "Running");
    let cat = |path: &str| s.ok(&["exec", "watcher", "--", "cat", path]);
    let sa = "/var/run/secrets/kubernetes.io/serviceaccount";
    assert_eq!(cat(&format!("{sa}/namespace")), "default");
    assert_eq!(cat(&format!("{sa}/ca.crt")), std::fs::read_to_string(s.data_dir().join("ca.crt")).unwrap());
    // The token in the pod is the pod's identity towards the API server.
    let token = cat(&format!("{sa}/token"));
    let url = format!("https://127.0.0.1:{}", s.port);
    let args = ["--kubeconfig=/dev/null", "--server", &url, "--insecure-skip-tls-verify", "--token", &token, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"];
    let out = s.kubectl_cmd(&args).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "system:serviceaccount:default:default", "{}", common::stderr(&out));
    let review = format!(r#"{{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{{"token":"{token}"}}}}"#);
    let out = s.ok_stdin(&["create", "-f", "-", "-o", "jsonpath={.status.user.extra.authentication\\.kubernetes\\.io/pod-name[0]}"], &review);
    assert_eq!(out, "watcher");

    // Updated and removed keys reach the running container.
    assert_eq!(cat("/etc/live/mode"), "slow");
    s.ok(&["patch", "configmap", "live", "--type=json", "-p", r#"[{"op":"replace","path":"/data/mode","value":"fast"},{"op":"remove","path":"/data/gone"}]"#]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ls = s.ok(&["exec", "watcher", "--", "ls", "/etc/live"]);
        if cat("/etc/live/mode") == "fast" && !ls.contains("gone") {
            break;
        }
        assert!(Instant::now() < deadline, "the volume still shows the old data: {ls}");
        std::thread::sleep(Duration::from_millis(500));
    }
    s.ok(&["delete", "pod", "watcher"]);
    assert_clean(&s);
}

#[test]
fn lifecycle_hooks_run_after_start_and_before_stop() {
    let s = Server::start_node_agent();
    let out = s.root.path().join("hooks");
    std::fs::create_dir_all(&out).unwrap();
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: hooked}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: {BUSYBOX}
    command: ["sh", "-c", "test -f /out/post && echo saw-post; sleep 3600"]
    volumeMounts: [{{name: out, mountPath: /out}}]
    lifecycle:
      postStart: {{exec: {{command: ["sh", "-c", "echo post > /out/post"]}}}}
      preStop: {{exec: {{command: ["sh", "-c", "echo stop > /out/prestop"]}}}}
  volumes: [{{name: out, hostPath: {{path: {dir}}}}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: badhook}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {BUSYBOX}
    command: ["sleep", "3600"]
    lifecycle:
      postStart: {{exec: {{command: ["sh", "-c", "echo nope; exit 3"]}}}}
"#,
        dir = out.display()
    );
    s.ok_stdin(&["apply", "-f", "-"], &manifest);
    wait_pod(&s, "hooked", Duration::from_secs(60), "Running", |v| phase(v) == "Running");
    assert_eq!(std::fs::read_to_string(out.join("post")).unwrap(), "post\n");
    assert!(!out.join("prestop").exists());

    // A failing postStart kills the container: with restartPolicy Never the pod fails.
    let v = wait_pod(&s, "badhook", Duration::from_secs(60), "Failed", |v| phase(v) == "Failed");
    assert!(v["status"]["containerStatuses"][0]["state"]["terminated"].is_object(), "{v:#}");
    let events = s.ok(&["get", "events", "--field-selector=involvedObject.name=badhook"]);
    assert!(events.contains("FailedPostStartHook") && events.contains("exited with 3") && events.contains("nope"), "{events}");

    s.ok(&["delete", "pod", "hooked", "badhook"]);
    assert_eq!(std::fs::read_to_string(out.join("prestop")).unwrap(), "stop\n");
    assert_clean(&s);
}

#[test]
fn pressure_conditions_follow_the_eviction_thresholds() {
    // A threshold no machine meets: the node reports memory pressure at once.
    let s = Server::start_node_agent_with(&["--eviction-hard", "memory.available<1000Ti,nodefs.available<1%"]);
    let node = common::eventually("the node registered", Duration::from_secs(30), || {
        let out = s.kubectl(&["get", "node", "node-1", "-o", "json"]);
        out.status.success().then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap())
    });
    let cond = |t: &str| node["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == t).cloned().unwrap();
    assert_eq!((cond("MemoryPressure")["status"].as_str(), cond("MemoryPressure")["reason"].as_str()), (Some("True"), Some("KubeletHasInsufficientMemory")));
    assert_eq!(cond("DiskPressure")["status"], "False");
    assert_eq!(cond("PIDPressure")["status"], "False");
    assert_eq!(cond("Ready")["status"], "True");
    let err = std::process::Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(["server", "--data-dir", s.root.path().join("other").to_str().unwrap(), "--eviction-hard", "cpu.available<1"])
        .output()
        .unwrap();
    assert!(!err.status.success() && String::from_utf8_lossy(&err.stderr).contains("unknown eviction signal \"cpu.available\""), "{err:?}");
}
