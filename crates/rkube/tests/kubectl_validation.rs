//! Upstream's per-kind validation, seen through the real kubectl: every
//! failure of a write is one 422 listing all causes, and nothing is stored.

mod common;

use common::{Server, logged_status};

fn refused(s: &Server, manifest: &str) -> String {
    let f = s.write_file("bad.yaml", manifest);
    let out = s.kubectl(&["create", "-f", &f, "-v=6"]);
    assert!(!out.status.success(), "created:\n{manifest}");
    assert_eq!(logged_status(&out), Some(422), "{}", common::stderr(&out));
    common::stderr(&out)
}

#[test]
fn invalid_pods_deployments_and_services_are_422_with_every_cause() {
    let s = Server::start();
    let err = refused(
        &s,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: Bad_Name, image: busybox}\n  - {name: b, image: busybox, ports: [{containerPort: 70000}]}\n  - {name: b}\n",
    );
    assert!(err.contains(r#"The Pod "p" is invalid"#), "{err}");
    assert!(err.contains(r#"spec.containers[0].name: Invalid value: "Bad_Name""#), "{err}");
    assert!(err.contains("spec.containers[1].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"), "{err}");
    assert!(err.contains(r#"spec.containers[2].name: Duplicate value: "b""#), "{err}");
    assert!(err.contains("spec.containers[2].image: Required value"), "{err}");
    assert!(s.fails(&["get", "pod", "p"]).contains("NotFound"));

    let err = refused(&s, "apiVersion: v1\nkind: Pod\nmetadata: {name: empty}\nspec:\n  containers: []\n");
    assert!(err.contains("spec.containers: Required value"), "{err}");

    let err = refused(
        &s,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: b}}\n    spec: {containers: [{name: c, image: busybox}]}\n",
    );
    assert!(err.contains("spec.template.metadata.labels: Invalid value") && err.contains("`selector` does not match template `labels`"), "{err}");

    let err = refused(&s, "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\nspec:\n  ports:\n  - {port: 0}\n  - {name: b, port: 80}\n");
    assert!(err.contains("spec.ports[0].name: Required value"), "{err}");
    assert!(err.contains("spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"), "{err}");
    assert!(s.fails(&["get", "service", "svc"]).contains("NotFound"));
}

#[test]
fn pod_spec_is_immutable_except_images() {
    let s = Server::start();
    s.ok(&["run", "imm", "--image=busybox:1.36"]);
    s.ok(&["set", "image", "pod/imm", "imm=busybox:1.37"]);
    assert_eq!(s.ok(&["get", "pod", "imm", "-o", "jsonpath={.spec.containers[0].image}"]), "busybox:1.37");
    let err = s.fails(&["set", "env", "pod/imm", "A=1"]);
    assert!(err.contains("pod updates may not change fields other than"), "{err}");
    assert!(s.get_json(&["pod", "imm"])["spec"]["containers"][0].get("env").is_none());
}

#[test]
fn quantities_are_normalised_and_jobs_select_their_pods() {
    let s = Server::start();
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: q}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources:\n      requests: {cpu: 1000m, memory: 1024Mi}\n      limits: {cpu: 1.5, memory: 2Gi}\n";
    s.ok_stdin(&["create", "-f", "-"], pod);
    let r = &s.get_json(&["pod", "q"])["spec"]["containers"][0]["resources"];
    assert_eq!(r["requests"], serde_json::json!({"cpu": "1", "memory": "1Gi"}), "{r:#}");
    assert_eq!(r["limits"], serde_json::json!({"cpu": "1500m", "memory": "2Gi"}), "{r:#}");
    let bad = pod.replace("cpu: 1000m", "cpu: lots");
    let err = String::from_utf8_lossy(&s.kubectl_stdin(&["create", "-f", "-"], &bad.replace("name: q", "name: q2")).stderr).to_string();
    assert!(err.contains("quantities must match the regular expression"), "{err}");

    s.ok(&["create", "job", "j", "--image=busybox"]);
    let job = s.get_json(&["job", "j"]);
    let uid = job["metadata"]["uid"].as_str().unwrap();
    assert_eq!(job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"], uid, "{job:#}");
    assert_eq!(job["spec"]["template"]["metadata"]["labels"]["job-name"], "j", "{job:#}");
    assert_eq!(job["spec"]["backoffLimit"], 6);
    assert_eq!(job["spec"]["completions"], 1);
}

/// Kinds without PATCH (a `List`, review requests) are validated by kubectl
/// itself against `/openapi/v2` in protobuf, as upstream serves it.
#[test]
fn lists_and_reviews_are_validated_client_side_from_the_protobuf_openapi() {
    let s = Server::start();
    let list = |items: &str| format!(r#"{{"apiVersion":"v1","kind":"List","items":[{items}]}}"#);
    let out = s.ok_stdin(&["create", "-f", "-"], &list(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"x":"hello"}}"#));
    assert_eq!(out.trim(), "configmap/a created");
    let out = s.kubectl_stdin(&["create", "-f", "-"], &list(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"},"datta":{"x":"y"}}"#));
    let err = common::stderr(&out);
    assert!(err.contains(r#"unknown field "datta" in io.k8s.api.core.v1.ConfigMap"#), "{err}");
    let deploy = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":"three","selector":{"matchLabels":{"a":"b"}},
        "template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"a","image":"b"}]}}}}"#;
    let err = common::stderr(&s.kubectl_stdin(&["create", "-f", "-"], &list(deploy)));
    assert!(err.contains(r#"invalid type for io.k8s.api.apps.v1.DeploymentSpec.replicas: got "string", expected "integer""#), "{err}");
    assert!(s.fails(&["get", "configmap", "b"]).contains("NotFound"));
    assert!(s.fails(&["get", "deployment", "d"]).contains("NotFound"));

    // What `get -o yaml` prints is a List, and applies back as it is.
    let dump = s.ok(&["get", "configmaps", "--field-selector=metadata.name=a", "-o", "yaml"]).replace("x: hello", "x: bye");
    assert!(dump.contains("kind: List"), "{dump}");
    s.ok(&["delete", "configmap", "a"]);
    s.ok_stdin(&["apply", "-f", "-"], &dump);
    assert_eq!(s.ok(&["get", "configmap", "a", "-o", "jsonpath={.data.x}"]), "bye");

    let review = r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"x"}}"#;
    let out = s.ok_stdin(&["create", "-f", "-", "-o", "jsonpath={.status.authenticated}"], review);
    assert_eq!(out, "");
}
