//! CustomResourceDefinitions become live APIs: the real kubectl installs a
//! CRD, waits for it to be Established and uses it like a built-in kind;
//! a kube-rs client installs one from its `#[derive(CustomResource)]` schema.

mod common;

use std::time::Duration;

use common::{Server, stderr};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, maximum: 10, description: "How big the widget is."}
              color: {type: string, enum: [red, blue], default: red}
          status:
            type: object
            properties:
              replicas: {type: integer}
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.size, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color, priority: 1}
  - name: v1beta1
    served: true
    storage: false
    deprecated: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

fn install(s: &Server) {
    s.ok_stdin(&["apply", "-f", "-"], CRD);
    s.ok(&["wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=20s"]);
}

#[test]
fn a_crd_is_served_like_a_built_in_kind() {
    let s = Server::start();
    install(&s);
    let crd = s.get_json(&["crd", "widgets.example.com"]);
    assert_eq!(crd["status"]["acceptedNames"]["kind"], "Widget", "{crd:#}");
    assert_eq!(crd["status"]["storedVersions"], serde_json::json!(["v1"]));

    let resources = s.ok(&["api-resources", "--api-group=example.com"]);
    assert!(
        resources.lines().any(|l| l.starts_with("widgets") && l.contains("wd") && l.contains("example.com/v1") && l.contains("Widget")),
        "{resources}"
    );

    s.ok_stdin(&["apply", "-f", "-"], "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n");
    let table = s.ok(&["get", "widgets"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SIZE"], "{table}");
    let wide = s.ok(&["get", "wd", "-o", "wide"]);
    assert!(wide.lines().nth(1).unwrap().split_whitespace().collect::<Vec<_>>() == ["w1", "3", "red"], "{wide}");
    assert!(s.ok(&["get", "all"]).contains("widget.example.com/w1"));
    assert_eq!(s.get_json(&["widget", "w1"])["spec"]["color"], "red", "defaulted from the schema");

    // explain reads the CRD's schema from /openapi/v3.
    let out = s.ok(&["explain", "widget.spec.size"]);
    assert!(out.contains("How big the widget is."), "{out}");

    // scale and status subresources.
    s.ok(&["scale", "widget", "w1", "--replicas=5"]);
    s.ok(&["patch", "widget", "w1", "--subresource=status", "--type=merge", "-p", r#"{"status":{"replicas":2}}"#]);
    let w = s.get_json(&["widget", "w1"]);
    assert_eq!((w["spec"]["size"].as_i64(), w["status"]["replicas"].as_i64()), (Some(5), Some(2)), "{w:#}");
    // A main-resource write cannot change status.
    s.ok(&["patch", "widget", "w1", "--type=merge", "-p", r#"{"status":{"replicas":9}}"#]);
    assert_eq!(s.get_json(&["widget", "w1"])["status"]["replicas"], 2);

    // Schema violations: 422 with the cause; unknown fields refused (Strict) or dropped.
    let bad =
        s.kubectl_stdin(&["apply", "-f", "-"], "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: big}\nspec: {size: 50, color: pink}\n");
    let err = stderr(&bad);
    assert!(err.contains("spec.size in body should be less than or equal to 10"), "{err}");
    assert!(err.contains(r#"spec.color: Unsupported value: "pink""#), "{err}");
    let unknown = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: u}\nspec: {size: 1, extra: 1}\n";
    let err = stderr(&s.kubectl_stdin(&["create", "-f", "-"], unknown));
    assert!(err.contains(r#"unknown field "spec.extra""#), "{err}");
    s.ok_stdin(&["create", "-f", "-", "--validate=false"], unknown);
    assert!(s.get_json(&["widget", "u"])["spec"].get("extra").is_none());

    // Server-side apply on a custom resource; strategic merge is refused as upstream.
    s.ok_stdin(&["apply", "--server-side", "-f", "-"], "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: ssa}\nspec: {size: 2}\n");
    let err = s.fails(&["patch", "widget", "ssa", "--type=strategic", "-p", r#"{"spec":{"size":3}}"#]);
    assert!(err.contains("UnsupportedMediaType") || err.contains("unknown format") || err.contains("not supported"), "{err}");

    // The deprecated version serves the same objects, with a warning.
    let out = s.kubectl(&["get", "widgets.v1beta1.example.com", "w1", "-o", "jsonpath={.apiVersion} {.spec.size}"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "example.com/v1beta1 5");
    assert!(stderr(&out).contains("example.com/v1beta1 Widget is deprecated"), "{}", stderr(&out));
}

#[test]
fn watching_custom_objects_and_deleting_the_crd() {
    let s = Server::start();
    install(&s);
    let mut w = s.spawn_kubectl(&["get", "widgets", "-w", "--output-watch-events"]);
    s.ok_stdin(&["create", "-f", "-"], "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: seen}\nspec: {size: 1}\n");
    w.expect_line("ADDED seen", Duration::from_secs(20), |l| l.starts_with("ADDED") && l.contains("seen"));
    s.ok(&["label", "widget", "seen", "x=y"]);
    w.expect_line("MODIFIED seen", Duration::from_secs(20), |l| l.starts_with("MODIFIED") && l.contains("seen"));
    drop(w);

    s.ok(&["delete", "crd", "widgets.example.com", "--timeout=30s"]);
    assert!(s.fails(&["get", "crd", "widgets.example.com"]).contains("NotFound"));
    let err = s.fails(&["get", "--raw", "/apis/example.com/v1/namespaces/default/widgets"]);
    assert!(err.contains("NotFound") || err.contains("not found"), "{err}");

    // Re-created, it starts empty: the objects went with the old one.
    install(&s);
    let list = s.get_json(&["widgets"]);
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list:#}");
}

#[test]
fn conflicting_names_are_not_served_twice() {
    let s = Server::start();
    install(&s);
    let other = CRD
        .replace("name: widgets.example.com", "name: gadgets.example.com")
        .replace("plural: widgets", "plural: gadgets")
        .replace("singular: widget", "singular: gadget");
    s.ok_stdin(&["apply", "-f", "-"], &other);
    let crd = common::eventually("NamesAccepted=False", Duration::from_secs(20), || {
        let c = s.get_json(&["crd", "gadgets.example.com"]);
        let conds = c["status"]["conditions"].as_array().cloned().unwrap_or_default();
        conds.iter().any(|x| x["type"] == "NamesAccepted" && x["status"] == "False").then_some(c)
    });
    let established = crd["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Established").cloned().unwrap();
    assert_eq!(established["status"], "False", "{crd:#}");
    assert!(s.fails(&["get", "--raw", "/apis/example.com/v1/namespaces/default/gadgets"]).contains("NotFound"));
}

/// A kind defined in Rust; kube-rs derives its CRD and schema.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(group = "rs.example.com", version = "v1", kind = "Gizmo", namespaced, status = "GizmoStatus")]
struct GizmoSpec {
    name: String,
    count: i32,
    tags: Vec<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, JsonSchema)]
struct GizmoStatus {
    ready: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_derive_custom_resource() {
    let s = Server::start();
    let client = s.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Gizmo::crd()).await.expect("creating the derived CRD");
    let established = kube::runtime::wait::await_condition(crds, "gizmos.rs.example.com", kube::runtime::wait::conditions::is_crd_established());
    tokio::time::timeout(Duration::from_secs(20), established).await.expect("established in time").unwrap();

    let gizmos: Api<Gizmo> = Api::namespaced(client, "default");
    let g = Gizmo::new("g1", GizmoSpec { name: "first".into(), count: 2, tags: vec!["a".into()] });
    let created = gizmos.create(&PostParams::default(), &g).await.expect("creating a Gizmo");
    assert_eq!(created.spec.count, 2);
    let patched = gizmos
        .patch_status(
            "g1",
            &PatchParams::apply("kube-rs-test").force(),
            &Patch::Apply(serde_json::json!({"apiVersion": "rs.example.com/v1", "kind": "Gizmo", "status": {"ready": true}})),
        )
        .await
        .expect("applying the status");
    assert!(patched.status.unwrap().ready);
    let list = gizmos.list(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    // A wrong type is refused by the derived schema.
    let bad = gizmos.create(&PostParams::default(), &serde_json::from_value(serde_json::json!({"apiVersion": "rs.example.com/v1", "kind": "Gizmo", "metadata": {"name": "bad"}, "spec": {"name": "x", "count": 1, "tags": []}})).unwrap()).await;
    assert!(bad.is_ok(), "a valid object is accepted: {bad:?}");
}

const RANGES: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ranges.example.com
spec:
  group: example.com
  scope: Cluster
  names: {plural: ranges, singular: range, kind: Range}
  versions:
  - name: v1
    served: true
    storage: true
    selectableFields:
    - jsonPath: .spec.mode
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "self.min <= self.max"
              messageExpression: "'min ' + string(self.min) + ' is above max ' + string(self.max)"
            properties:
              min: {type: integer}
              max: {type: integer}
              mode:
                type: string
                x-kubernetes-validations:
                - {rule: "self == oldSelf", message: "mode is immutable"}
"#;

#[test]
fn cel_rules_selectable_fields_and_crd_updates() {
    let s = Server::start();
    s.ok_stdin(&["apply", "-f", "-"], RANGES);
    s.ok(&["wait", "--for=condition=Established", "crd/ranges.example.com", "--timeout=20s"]);
    s.ok_stdin(&["create", "-f", "-"], "apiVersion: example.com/v1\nkind: Range\nmetadata: {name: ok}\nspec: {min: 1, max: 5, mode: fast}\n");
    s.ok_stdin(&["create", "-f", "-"], "apiVersion: example.com/v1\nkind: Range\nmetadata: {name: slow}\nspec: {min: 1, max: 2, mode: slow}\n");
    let err = stderr(
        &s.kubectl_stdin(&["create", "-f", "-"], "apiVersion: example.com/v1\nkind: Range\nmetadata: {name: bad}\nspec: {min: 9, max: 5, mode: x}\n"),
    );
    assert!(err.contains(r#"spec: Invalid value: "object": min 9 is above max 5"#), "{err}");
    let err = s.fails(&["patch", "range", "ok", "--type=merge", "-p", r#"{"spec":{"mode":"slow"}}"#]);
    assert!(err.contains("spec.mode: Invalid value: \"string\": mode is immutable"), "{err}");

    // selectableFields make spec.mode a field selector.
    let names = s.ok(&["get", "ranges", "--field-selector", "spec.mode=slow", "-o", "name"]);
    assert_eq!(names.trim(), "range.example.com/slow");

    // A new printer column takes effect without a restart.
    let with_column = RANGES
        .replace(
            "    selectableFields:",
            "    additionalPrinterColumns:\n    - {name: Mode, type: string, jsonPath: .spec.mode}\n    selectableFields:",
        )
        .replace("              min: {type: integer}", "              min: {type: integer}\n              level: {type: string, default: low}");
    s.ok_stdin(&["apply", "-f", "-"], &with_column);
    let table = common::eventually("the Mode column", Duration::from_secs(20), || {
        let t = s.ok(&["get", "ranges"]);
        t.lines().next().unwrap_or("").contains("MODE").then_some(t)
    });
    assert!(table.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["ok", "fast"]), "{table}");
    // A default added later shows on objects stored before it, on read.
    assert_eq!(s.get_json(&["range", "ok"])["spec"]["level"], "low");
}
