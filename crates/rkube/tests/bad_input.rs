//! Requests the server must refuse with upstream's status codes and
//! messages, storing nothing.

mod common;

use common::{Server, logged_status, stderr};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

/// POSTs `body` to `path` with `kubectl create --raw` at `-v=6` (which logs
/// the response status) and returns the status and kubectl's stderr.
fn post(s: &Server, path: &str, body: &str) -> (u16, String) {
    let file = s.write_file("body", body);
    let out = s.kubectl(&["create", "--raw", path, "-f", &file, "-v=6"]);
    assert!(!out.status.success(), "POST {path} succeeded: {}", String::from_utf8_lossy(&out.stdout));
    let code = logged_status(&out).unwrap_or_else(|| panic!("no status logged:\n{}", stderr(&out)));
    (code, stderr(&out))
}

/// Every configmap in every namespace (namespace, name, data count) from the
/// server-side table, so the test can show a refused request left no trace.
/// AGE is dropped because it changes while the test runs.
fn all_configmaps(s: &Server) -> Vec<String> {
    s.ok(&["get", "configmaps", "-A", "--no-headers"]).lines().map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).collect()
}

fn configmap(name: &str, namespace: Option<&str>, extra_meta: &str) -> String {
    let ns = namespace.map(|n| format!(",\"namespace\":\"{n}\"")).unwrap_or_default();
    format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"{ns}{extra_meta}}},"data":{{"k":"v"}}}}"#)
}

#[test]
fn malformed_json_is_400() {
    let s = Server::start();
    s.ok(&["create", "namespace", "other"]);
    let before = all_configmaps(&s);
    let (code, err) = post(&s, CMS, r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"half""#);
    assert_eq!(code, 400, "{err}");
    assert!(err.contains("BadRequest"), "{err}");
    assert_eq!(all_configmaps(&s), before);
}

#[test]
fn namespace_contradicting_the_url_is_400() {
    let s = Server::start();
    s.ok(&["create", "namespace", "other"]);
    let before = all_configmaps(&s);
    let (code, err) = post(&s, CMS, &configmap("misplaced", Some("other"), ""));
    assert_eq!(code, 400, "{err}");
    assert!(err.contains("BadRequest"), "{err}");
    assert!(err.contains("does not match the namespace"), "{err}");
    for ns in ["default", "other"] {
        let e = s.fails(&["get", "configmap", "misplaced", "-n", ns]);
        assert!(e.contains("NotFound"), "{e}");
    }
    assert_eq!(all_configmaps(&s), before);
}

#[test]
fn invalid_name_is_422() {
    let s = Server::start();
    let before = all_configmaps(&s);
    let (code, err) = post(&s, CMS, &configmap("Bad_Name", None, ""));
    assert_eq!(code, 422, "{err}");
    assert!(err.contains(r#"The ConfigMap "Bad_Name" is invalid"#), "{err}");
    assert!(err.contains("metadata.name: Invalid value: \"Bad_Name\""), "{err}");
    assert!(err.contains("a lowercase RFC 1123 subdomain must consist of"), "{err}");
    assert_eq!(all_configmaps(&s), before);

    // kubectl's own create path reports the same upstream error.
    let file = s.write_file("bad.json", &configmap("Bad_Name", None, ""));
    let err = s.fails(&["create", "-f", &file]);
    assert!(err.contains("a lowercase RFC 1123 subdomain must consist of"), "{err}");
    assert_eq!(all_configmaps(&s), before);
}

#[test]
fn label_value_too_long_is_422() {
    let s = Server::start();
    let before = all_configmaps(&s);
    let long = "v".repeat(64);
    let (code, err) = post(&s, CMS, &configmap("long-label", None, &format!(r#","labels":{{"app":"{long}"}}"#)));
    assert_eq!(code, 422, "{err}");
    assert!(err.contains("metadata.labels: Invalid value"), "{err}");
    assert!(err.contains("must be no more than 63 bytes"), "{err}");
    let e = s.fails(&["get", "configmap", "long-label"]);
    assert!(e.contains("NotFound"), "{e}");
    assert_eq!(all_configmaps(&s), before);
}

#[test]
fn unknown_resource_is_404() {
    let s = Server::start();
    let out = s.kubectl(&["get", "--raw", "/api/v1/namespaces/default/frobnicators", "-v=6"]);
    assert!(!out.status.success());
    assert_eq!(logged_status(&out), Some(404), "{}", stderr(&out));
    assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));
    let (code, err) = post(&s, "/apis/example.com/v1/namespaces/default/widgets", &configmap("w", None, ""));
    assert_eq!(code, 404, "{err}");
    let err = s.fails(&["get", "frobnicators"]);
    assert!(err.contains("the server doesn't have a resource type \"frobnicators\""), "{err}");
}

#[test]
fn body_over_3_mib_is_413() {
    let s = Server::start();
    let before = all_configmaps(&s);
    let big = "x".repeat(3 * 1024 * 1024 + 1);
    let (code, err) = post(&s, CMS, &format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"huge"}},"data":{{"k":"{big}"}}}}"#));
    assert_eq!(code, 413, "{}", &err[..err.len().min(2000)]);
    assert!(err.contains("RequestEntityTooLarge"), "{}", &err[..err.len().min(2000)]);
    let e = s.fails(&["get", "configmap", "huge"]);
    assert!(e.contains("NotFound"), "{e}");
    assert_eq!(all_configmaps(&s), before);
}

#[test]
fn malformed_yaml_is_400() {
    let s = Server::start();
    let before = all_configmaps(&s);
    // kubectl always sends JSON, so the YAML body goes through kube-rs.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (code, body) = rt.block_on(async {
        let client = s.client().await;
        let req = http::Request::post(CMS)
            .header("content-type", "application/yaml")
            .body(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n".to_vec())
            .unwrap();
        match client.request_text(req).await {
            Ok(t) => (200, t),
            Err(kube::Error::Api(e)) => (e.code, e.message),
            Err(e) => panic!("{e}"),
        }
    });
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("yaml"), "{body}");
    assert_eq!(all_configmaps(&s), before);
}

#[test]
fn kind_or_api_version_contradicting_the_url_is_400() {
    let s = Server::start();
    let before = all_configmaps(&s);
    let (code, err) = post(&s, CMS, r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"wrong-kind"}}"#);
    assert_eq!(code, 400, "{err}");
    assert!(err.contains("the kind in the data does not match") || err.contains("cannot be handled as a ConfigMap"), "{err}");
    let (code, err) = post(&s, CMS, r#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"wrong-version"}}"#);
    assert_eq!(code, 400, "{err}");
    assert!(err.contains("does not match the expected API version"), "{err}");
    assert_eq!(all_configmaps(&s), before);
}

#[test]
fn object_over_1_5_mib_is_413() {
    let s = Server::start();
    let before = all_configmaps(&s);
    // 2 MiB: under the 3 MiB request limit, over the 1.5 MiB object limit.
    let big = "y".repeat(2 * 1024 * 1024);
    let (code, err) = post(&s, CMS, &format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"k":"{big}"}}}}"#));
    assert_eq!(code, 413, "{}", &err[..err.len().min(2000)]);
    assert!(s.fails(&["get", "configmap", "big"]).contains("NotFound"));
    assert_eq!(all_configmaps(&s), before);
}

#[test]
fn unsupported_verb_is_405() {
    let s = Server::start();
    // Namespaces have no deletecollection; component statuses are read-only.
    let out = s.kubectl(&["delete", "--raw", "/api/v1/namespaces", "-v=6"]);
    assert!(!out.status.success());
    assert_eq!(logged_status(&out), Some(405), "{}", stderr(&out));
    let (code, err) = post(&s, "/api/v1/componentstatuses", r#"{"apiVersion":"v1","kind":"ComponentStatus","metadata":{"name":"x"}}"#);
    assert_eq!(code, 405, "{err}");
    assert!(err.contains("MethodNotAllowed") || err.contains("not supported"), "{err}");
}

#[test]
fn duplicate_fields_are_refused_when_strict_and_warned_otherwise() {
    let s = Server::start();
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup","name":"dup"},"data":{"k":"1","k":"2"}}"#;
    let (code, err) = post(&s, &format!("{CMS}?fieldValidation=Strict"), body);
    assert_eq!(code, 400, "{err}");
    assert!(err.contains(r#"duplicate field \"metadata.name\""#) || err.contains(r#"duplicate field "metadata.name""#), "{err}");
    assert!(s.fails(&["get", "configmap", "dup"]).contains("NotFound"));

    let file = s.write_file("dup.json", body);
    let out = s.kubectl(&["create", "--raw", CMS, "-f", &file]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(r#"duplicate field "data.k""#), "{}", stderr(&out));
    assert_eq!(s.ok(&["get", "configmap", "dup", "-o", "jsonpath={.data.k}"]), "2", "the last value wins, as upstream");
}
