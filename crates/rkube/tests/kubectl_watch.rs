//! `kubectl get -w` sees every change as it happens.

mod common;

use std::time::Duration;

use common::Server;

const T: Duration = Duration::from_secs(30);

/// Drives create, label and delete of `w1` while `watch` runs, checking each
/// event with `matches(line, event, name)`.
fn create_modify_delete(s: &Server, args: &[&str], matches: fn(&str, &str, &str) -> bool) {
    // A marker that exists before the watch starts: its ADDED line proves the
    // initial list is done, and the watch continues from that list's
    // resourceVersion, so nothing created afterwards can be missed.
    s.ok(&["create", "configmap", "marker", "--from-literal=a=b"]);
    let mut w = s.spawn_kubectl(args);
    w.expect_line("ADDED marker", T, |l| matches(l, "ADDED", "marker"));

    s.ok(&["create", "configmap", "w1", "--from-literal=a=b"]);
    w.expect_line("ADDED w1", T, |l| matches(l, "ADDED", "w1"));
    s.ok(&["label", "configmap", "w1", "stage=two"]);
    w.expect_line("MODIFIED w1", T, |l| matches(l, "MODIFIED", "w1"));
    let v2 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: w1\n  labels:\n    stage: two\ndata:\n  a: changed\n";
    s.ok_stdin(&["replace", "-f", "-", "--validate=false"], v2);
    w.expect_line("MODIFIED w1 (replace)", T, |l| matches(l, "MODIFIED", "w1"));
    s.ok(&["delete", "configmap", "w1"]);
    w.expect_line("DELETED w1", T, |l| matches(l, "DELETED", "w1"));
}

#[test]
fn get_watch_table_shows_added_modified_deleted() {
    let s = Server::start();
    create_modify_delete(&s, &["get", "configmaps", "-w", "--output-watch-events"], |line, event, name| {
        let w: Vec<&str> = line.split_whitespace().collect();
        w.len() >= 2 && w[0] == event && w[1] == name
    });
}

#[test]
fn get_watch_name_shows_added_modified_deleted() {
    let s = Server::start();
    // kubectl's name printer prints one name per event and no event type,
    // so each step waits for the next line naming the object.
    create_modify_delete(&s, &["get", "configmaps", "-w", "--output-watch-events", "-o", "name"], |line, _event, name| {
        line.trim() == format!("configmap/{name}")
    });
}
