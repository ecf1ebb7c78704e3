//! Shell completion for bash, zsh and fish: the scripts parse in their
//! shells, and pressing Tab in a real zsh and a real fish (in tmux)
//! completes verbs, resource types from discovery and object names from the
//! server.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Server, Tmux, rkctl_bin};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn the_scripts_parse_in_their_shells() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, check, marker) in [
        ("bash", &["bash", "-n"][..], "complete -o default -F _rkctl rkctl"),
        ("zsh", &["zsh", "-n"], "#compdef rkctl"),
        ("fish", &["fish", "-n"], "complete -c rkctl"),
    ] {
        let out = Command::new(rkctl_bin()).args(["completion", shell]).output().unwrap();
        assert!(out.status.success());
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker) && script.contains("rkctl __complete"), "{shell}:\n{script}");
        let path = dir.path().join(format!("rkctl.{shell}"));
        std::fs::write(&path, &script).unwrap();
        let parsed = Command::new(check[0]).args(&check[1..]).arg(&path).output().unwrap();
        assert!(parsed.status.success(), "{shell} rejects the script: {}\n{script}", String::from_utf8_lossy(&parsed.stderr));
    }
    let bad = Command::new(rkctl_bin()).args(["completion", "tcsh"]).output().unwrap();
    assert!(!bad.status.success());
}

/// A server with names to complete: configmaps, a pod, a second namespace.
fn server_with_names() -> Server {
    let s = Server::start();
    s.k(&["create", "namespace", "team"]);
    s.k(&["create", "configmap", "alpha-cm"]);
    s.k(&["create", "configmap", "beta-cm"]);
    s.k(&["create", "configmap", "in-team", "-n", "team"]);
    s.k(&["run", "web-1", "--image=busybox"]);
    s
}

/// What to type, and the command line Tab must turn it into.
const CASES: &[(&str, &str)] = &[
    ("rkctl port-f", "rkctl port-forward"),
    ("rkctl get configm", "rkctl get configmaps"),
    ("rkctl get configmaps al", "rkctl get configmaps alpha-cm"),
    ("rkctl get configmaps -n te", "rkctl get configmaps -n team"),
    ("rkctl -n team get configmaps in", "rkctl -n team get configmaps in-team"),
    ("rkctl exec we", "rkctl exec web-1"),
];

/// Types each case into the shell in `t`, presses Tab, checks the line,
/// and clears it.
fn type_and_complete(t: &Tmux, shell: &str) {
    for (typed, want) in CASES {
        t.send_keys(typed);
        t.send_keys("Tab");
        t.wait_for(&format!("{shell} completing {typed:?} to {want:?}"), WAIT, |screen| screen.lines().any(|l| l.trim_end().ends_with(want)));
        t.send_keys("C-u");
        t.wait_for("the line cleared", WAIT, |screen| !screen.lines().any(|l| l.trim_end().ends_with(want)));
    }
}

fn env_prefix(s: &Server, home: &std::path::Path) -> String {
    let dir = std::path::Path::new(rkctl_bin()).parent().unwrap().display().to_string();
    format!(
        "env HOME={home} XDG_CONFIG_HOME={home}/config XDG_DATA_HOME={home}/data ZDOTDIR={home} PATH={dir}:{path} KUBECONFIG={kc}",
        home = home.display(),
        path = std::env::var("PATH").unwrap(),
        kc = s.kubeconfig.display()
    )
}

#[test]
fn zsh_completes_verbs_types_and_names_from_the_server() {
    let s = server_with_names();
    let home = s.root.path().join("zsh-home");
    std::fs::create_dir_all(&home).unwrap();
    let t = Tmux::start(&format!("{} zsh -f -i", env_prefix(&s, &home)), 120, 30);
    t.send_keys("PS1='zsh> '; autoload -U compinit && compinit -u && source <(rkctl completion zsh) && echo ready-$((1+1))");
    t.send_keys("Enter");
    t.wait_for("zsh with the completion loaded", WAIT, |screen| screen.contains("ready-2"));
    type_and_complete(&t, "zsh");
    // With several candidates, a second Tab lists them all.
    t.send_keys("rkctl get configmaps ");
    t.send_keys("Tab");
    t.send_keys("Tab");
    t.wait_for("zsh listing the configmaps", WAIT, |screen| screen.contains("alpha-cm") && screen.contains("beta-cm"));
}

#[test]
fn fish_completes_verbs_types_and_names_from_the_server() {
    let s = server_with_names();
    let home = s.root.path().join("fish-home");
    std::fs::create_dir_all(&home).unwrap();
    let init = "set -g fish_greeting; function fish_prompt; echo -n 'fish> '; end; rkctl completion fish | source; echo ready-(math 1+1)";
    let t = Tmux::start(&format!("{} fish -C \"{init}\"", env_prefix(&s, &home)), 120, 30);
    t.wait_for("fish with the completion loaded", WAIT, |screen| screen.contains("ready-2"));
    type_and_complete(&t, "fish");
    t.send_keys("rkctl get configmaps ");
    t.send_keys("Tab");
    t.wait_for("fish listing the configmaps", WAIT, |screen| screen.contains("alpha-cm") && screen.contains("beta-cm"));
}
