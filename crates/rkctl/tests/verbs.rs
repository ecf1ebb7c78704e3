//! The other verbs and kubeconfig handling, against a real server and, where
//! outputs should agree, the real kubectl.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Server, eventually, rkctl_bin};

const WAIT: Duration = Duration::from_secs(30);

fn jp(s: &Server, args: &[&str], path: &str) -> String {
    let mut a = args.to_vec();
    let p = format!("jsonpath={path}");
    a.extend(["-o", &p]);
    s.k(&a)
}

#[test]
fn discovery_listings_match_kubectl() {
    let s = Server::start();
    s.same(&["api-resources"]);
    s.same(&["api-resources", "-o", "name"]);
    s.same(&["api-resources", "--namespaced=false"]);
    s.same(&["api-resources", "--api-group", "apps", "--no-headers"]);
    s.same(&["api-versions"]);
    let v = s.r(&["version"]);
    let server_line = s.k(&["version"]).lines().find(|l| l.starts_with("Server Version")).unwrap().to_string();
    assert!(v.contains(&server_line), "{v}");
}

/// A command with no `--kubeconfig`, so `KUBECONFIG` decides.
fn with_env(bin: &str, kubeconfig: &str, args: &[&str]) -> String {
    let mut c = Command::new(bin);
    c.args(args).env("KUBECONFIG", kubeconfig).env("HOME", "/nonexistent");
    if bin == "kubectl" {
        c.arg("--cache-dir").arg(std::env::temp_dir().join(format!("rkctl-kcache-{}", std::process::id())));
    }
    let out = c.output().unwrap();
    format!("[{}] {}{}", out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn kubeconfig_chains_contexts_and_config_edits() {
    let s = Server::start();
    s.k(&["create", "namespace", "team"]);
    s.k(&["create", "configmap", "in-team", "-n", "team"]);
    // File A: the server's own kubeconfig (cluster, user, context "rkube").
    // File B: a second context on the same cluster, in namespace "team".
    let a = s.write_file("a.kubeconfig", &std::fs::read_to_string(&s.kubeconfig).unwrap());
    let b = s.write_file(
        "b.kubeconfig",
        "apiVersion: v1\nkind: Config\ncontexts:\n- name: team\n  context: {cluster: rkube, user: admin, namespace: team}\n",
    );
    let chain = format!("{a}:{b}");
    for args in [
        &["config", "view"][..],
        &["config", "get-contexts"],
        &["config", "current-context"],
        &["get", "cm", "-o", "name"],
        &["--context", "team", "get", "cm", "-o", "name"],
    ] {
        assert_eq!(with_env(rkctl_bin(), &chain, args), with_env("kubectl", &chain, args), "{args:?}");
    }
    assert!(with_env(rkctl_bin(), &chain, &["--context", "team", "get", "cm", "-o", "name"]).contains("configmap/in-team"));
    assert_eq!(with_env(rkctl_bin(), &chain, &["config", "use-context", "team"]), "[0] Switched to context \"team\".\n");
    assert!(std::fs::read_to_string(&a).unwrap().contains("current-context: team"), "current-context is written to the first file");
    assert_eq!(with_env("kubectl", &chain, &["config", "current-context"]), "[0] team\n", "kubectl reads what rkctl wrote");
    assert!(with_env(rkctl_bin(), &chain, &["get", "cm"]).contains("in-team"));
    assert_eq!(with_env(rkctl_bin(), &chain, &["config", "set-context", "--current", "--namespace=default"]), "[0] Context \"team\" modified.\n");
    assert!(std::fs::read_to_string(&b).unwrap().contains("namespace: default"), "the context is edited where it is defined");
    let (ours, theirs) = (with_env(rkctl_bin(), &chain, &["get", "cm", "in-team"]), with_env("kubectl", &chain, &["get", "cm", "in-team"]));
    assert!(ours.starts_with("[1] Error from server (NotFound): configmaps \"in-team\" not found"), "now in namespace default: {ours}");
    assert_eq!(ours, theirs);
    assert!(with_env(rkctl_bin(), &chain, &["config", "use-context", "nope"]).contains("no context exists with the name: \"nope\""));
}

#[test]
fn exec_credential_plugins() {
    let s = Server::start();
    let data = s.kubeconfig.parent().unwrap();
    let pem = |f: &str| std::fs::read_to_string(data.join(f)).unwrap();
    let cred = serde_json::json!({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
        "status": {"clientCertificateData": pem("admin.crt"), "clientKeyData": pem("admin.key")}});
    let cred = cred.to_string();
    let cred_file = s.write_file("cred.json", &cred);
    let kc = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: 'https://127.0.0.1:{}', certificate-authority: '{}'}}\nusers:\n- name: u\n  user:\n    exec: {{apiVersion: client.authentication.k8s.io/v1, command: cat, args: ['{cred_file}'], interactiveMode: Never}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
        s.port,
        data.join("ca.crt").display()
    );
    let kc = s.write_file("exec.kubeconfig", &kc);
    let ours = with_env(rkctl_bin(), &kc, &["get", "ns", "default", "-o", "name"]);
    assert_eq!(ours, "[0] namespace/default\n");
    assert_eq!(ours, with_env("kubectl", &kc, &["get", "ns", "default", "-o", "name"]));
}

/// `rollout status`, failing with the cluster's state for diagnosis.
fn rollout_status(s: &Server) -> String {
    let out = s.rkctl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "rollout status failed: {}{text}\ncluster:\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.k(&["get", "deploy,rs,pods", "-o", "wide"])
    );
    text
}

#[test]
fn workload_verbs() {
    let s = Server::start();
    // No replicas: rollouts then depend on the controllers' bookkeeping, not
    // on pods becoming ready.
    s.k(&["create", "deployment", "web", "--image=nginx:1", "--replicas=0"]);
    assert_eq!(s.r(&["wait", "--for=condition=Available", "deploy/web", "--timeout=30s"]), "deployment.apps/web condition met\n");
    assert_eq!(s.r(&["scale", "deploy", "web", "--replicas=3"]), "deployment.apps/web scaled\n");
    assert_eq!(jp(&s, &["get", "deploy", "web"], "{.spec.replicas}"), "3");
    assert_eq!(s.r(&["scale", "deployment/web", "--replicas=0"]), "deployment.apps/web scaled\n");
    let st = rollout_status(&s);
    assert!(st.ends_with("deployment \"web\" successfully rolled out\n"), "{st}");
    assert_eq!(s.r(&["rollout", "restart", "deploy/web"]), "deployment.apps/web restarted\n");
    let at = jp(&s, &["get", "deploy", "web"], "{.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}");
    assert!(at.ends_with('Z') && at.len() == 20, "restartedAt: {at:?}");
    rollout_status(&s);
    eventually("two revisions", WAIT, || (s.k(&["get", "rs", "-o", "name"]).lines().count() == 2).then_some(()));
    assert_eq!(s.r(&["rollout", "undo", "deploy/web"]), "deployment.apps/web rolled back\n");
    assert_eq!(jp(&s, &["get", "deploy", "web"], "{.spec.template.metadata.annotations}"), "", "the earlier template came back whole");
    rollout_status(&s);
    s.pod("solo", 600, None);
    assert_eq!(s.r(&["wait", "--for=condition=Ready", "pod/solo"]), "pod/solo condition met\n");
    assert_eq!(s.r(&["wait", "--for=jsonpath={.status.phase}=Running", "pod", "-l", "app=solo"]), "pod/solo condition met\n");
    let out = s.rkctl(&["wait", "--for=condition=Nope", "deploy/web", "--timeout=1s"]);
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "error: timed out waiting for the condition on deployments.apps/web\n");
    s.k(&["delete", "deploy", "web", "--wait=false"]);
    assert_eq!(s.r(&["wait", "--for=delete", "deploy/web", "--timeout=20s"]), "deployment.apps/web condition met\n");
}

#[test]
fn node_verbs() {
    let s = Server::start();
    s.pod("a", 600, Some("fake-node-1"));
    s.pod("b", 600, Some("fake-node-1"));
    assert_eq!(s.r(&["cordon", "fake-node-0"]), "node/fake-node-0 cordoned\n");
    assert_eq!(s.r(&["cordon", "fake-node-0"]), s.k(&["cordon", "fake-node-0"]), "already cordoned, said alike");
    assert_eq!(jp(&s, &["get", "node", "fake-node-0"], "{.spec.unschedulable}"), "true");
    assert_eq!(s.r(&["uncordon", "fake-node-0"]), "node/fake-node-0 uncordoned\n");
    let refused = s.rkctl(&["drain", "fake-node-1"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cannot delete Pods that declare no controller"), "{refused:?}");
    let out = s.r(&["drain", "fake-node-1", "--force"]);
    assert!(out.contains("evicting pod default/a") && out.ends_with("node/fake-node-1 drained\n"), "{out}");
    assert_eq!(s.k(&["get", "pods", "-o", "name"]), "", "the pods were evicted");
    assert_eq!(jp(&s, &["get", "node", "fake-node-1"], "{.spec.unschedulable}"), "true");
}

#[test]
fn describe_explain_and_completion() {
    let s = Server::start();
    s.k(&["create", "deployment", "web", "--image=nginx"]);
    let d = s.r(&["describe", "deployment", "web"]);
    assert!(d.starts_with("Name:         web\nNamespace:    default\n"), "{d}");
    assert!(d.contains("Spec:\n  progressDeadlineSeconds: 600\n"), "{d}");
    let e = s.r(&["explain", "deployments.spec.replicas"]);
    assert!(e.contains("FIELD: replicas <integer>") && e.contains("Number of desired pods"), "{e}");
    let e = s.r(&["explain", "pods.spec"]);
    assert!(e.contains("containers\t<[]Object> -required-"), "{e}");
    // The bash script asks rkctl for candidates, including the server's names.
    let script = s.r(&["completion", "bash"]);
    let dir = std::path::Path::new(rkctl_bin()).parent().unwrap().display().to_string();
    let run = |words: &str| {
        let prog = format!("{script}\nCOMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); _rkctl; printf '%s\\n' \"${{COMPREPLY[@]}}\"");
        let out = Command::new("bash")
            .arg("-c")
            .arg(prog)
            .env("PATH", format!("{dir}:{}", std::env::var("PATH").unwrap()))
            .env("KUBECONFIG", &s.kubeconfig)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(run("rkctl ro"), "rollout\n");
    assert!(run("rkctl get deploy").lines().any(|l| l == "deployments"), "resource types come from discovery");
    assert_eq!(run("rkctl get deployments w"), "web\n", "object names come from the server");
    assert!(run("rkctl get pods --show-l").contains("--show-labels"));
    for shell in ["zsh", "fish"] {
        assert!(s.r(&["completion", shell]).contains("rkctl __complete"), "{shell}");
    }
}
