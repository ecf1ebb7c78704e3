//! The Python `kubernetes` client from PyPI drives a workload scenario
//! unmodified (installed by the test command).

mod common;

use std::process::Command;

use common::Server;

#[test]
fn python_kubernetes_client_runs_a_workload_scenario() {
    let s = Server::start_with(&["--fake-nodes", "2"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/scenario.py");
    let out = Command::new("python3").arg(script).arg(&s.kubeconfig).output().expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the Python scenario failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for step in ["namespace created", "deployment available", "watch saw 3 running pods", "pods on fake nodes", "namespace deleted"] {
        assert!(stdout.lines().any(|l| l == step), "missing step {step:?}:\n{stdout}");
    }
}
