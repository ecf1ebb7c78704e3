//! `rkctl get` prints what the real kubectl prints for the same objects.

mod common;

use std::time::Duration;

use common::{Server, eventually};

const OBJECTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec: {containers: [{name: nginx, image: nginx}]}
---
apiVersion: v1
kind: Pod
metadata: {name: solo, namespace: other, labels: {app: solo, example.com/team: blue}}
spec: {containers: [{name: c, image: busybox}, {name: d, image: busybox}]}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: tricky
  labels: {a10: x, a9: "y", Zed: "1"}
  annotations:
    long: "a long annotation value with many words that goes past the eighty column limit of the yaml writer"
    multi: "line one\nline two\n"
    yes: "yes"
data: {t: "true", n: "123", colon: "a: b", star: "*x", empty: "", ts: "2024-01-01T00:00:00Z", amp: "<&>", u: "héllo"}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
"#;

fn setup() -> Server {
    let s = Server::start();
    s.k_apply(OBJECTS.replace("    yes:", "    \"yes\":").as_str());
    eventually("every pod Running", Duration::from_secs(30), || {
        let phases = s.k(&["get", "pods", "-A", "-o", "jsonpath={.items[*].status.phase}"]);
        let n = phases.split_whitespace().count();
        (n == 4 && phases.split_whitespace().all(|p| p == "Running")).then_some(())
    });
    // The Deployment's status settles too, so its columns stop changing.
    s.settle("web", 3);
    s
}

#[test]
fn tables_match_kubectl() {
    let s = setup();
    for args in [
        &["get", "pods"][..],
        &["get", "po", "-o", "wide"],
        &["get", "pods", "-A"],
        &["get", "pods", "-A", "-o", "wide", "--no-headers"],
        &["get", "pods", "-n", "other"],
        &["get", "pods", "-l", "app=web", "--show-labels"],
        &["get", "pods", "-A", "-L", "app,example.com/team"],
        &["get", "pods", "--sort-by=.metadata.name"],
        &["get", "pods", "-A", "--sort-by", "{.metadata.namespace}"],
        &["get", "pods", "--field-selector", "status.phase=Running"],
        &["get", "pods,deployments"],
        &["get", "deployments.apps"],
        &["get", "deploy", "web"],
        &["get", "deployment.v1.apps/web", "svc/web"],
        &["get", "svc", "-o", "wide"],
        &["get", "nodes"],
        &["get", "namespaces"],
        &["get", "all"],
        &["get", "cm", "-A"],
        &["get", "pods", "-l", "app=nothing"],
    ] {
        s.same(args);
    }
}

#[test]
fn object_formats_match_kubectl() {
    let s = setup();
    for args in [
        &["get", "cm", "tricky", "-o", "yaml"][..],
        &["get", "cm", "tricky", "-o", "json"],
        &["get", "pods", "-A", "-o", "yaml"],
        &["get", "pods", "-o", "json"],
        &["get", "deploy", "web", "-o", "yaml"],
        &["get", "pods,svc", "-o", "name"],
        &["get", "pods", "-A", "-o", "name"],
        &["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"],
        &["get", "pods", "-A", "-o", "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\t\"}{.status.phase}{\"\\n\"}{end}"],
        &["get", "pod", "solo", "-n", "other", "-o", "jsonpath={.metadata.labels}"],
        &["get", "pods", "-o", "jsonpath={.items[?(@.metadata.labels.app==\"web\")].spec.containers[0].image}"],
        &["get", "pods", "-A", "-o", "custom-columns=NAME:.metadata.name,LABELS:.metadata.labels,CONTAINERS:.spec.containers[*].name,NONE:.nope"],
        &["get", "pods", "-A", "--sort-by=.metadata.name", "-o", "custom-columns=N:metadata.name", "--no-headers"],
    ] {
        s.same(args);
    }
}

#[test]
fn colour_is_status_aware_and_switchable() {
    let s = setup();
    // Ages tick between two commands; a few tries see the same second.
    let tries = (0..5).map(|_| {
        let plain = s.k(&["get", "pods", "-n", "other"]);
        let colored = s.r(&["get", "pods", "-n", "other", "--color=always"]);
        let never = s.r(&["get", "pods", "-n", "other", "--color=never"]);
        let piped = s.r(&["get", "pods", "-n", "other"]);
        (plain, colored, never, piped)
    });
    let mut last = None;
    for (plain, colored, never, piped) in tries {
        assert!(colored.contains("\x1b[32mRunning\x1b[0m"), "{colored:?}");
        let stripped = colored.replace("\x1b[32m", "").replace("\x1b[0m", "");
        if stripped == plain && never == plain && piped == plain {
            return;
        }
        last = Some((plain, stripped, never, piped));
    }
    panic!("colour changed more than colour (plain, stripped, never, piped): {last:#?}");
}

#[test]
fn errors_match_kubectl() {
    let s = setup();
    s.same(&["get", "pod", "nope"]);
    s.same(&["get", "nosuchtype"]);
    s.same(&["get", "pods", "-n", "empty"]);
    s.same(&["get", "pod", "nope", "--ignore-not-found"]);
    let out = s.rkctl(&["get", "pods", "-o", "bogus"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unable to match a printer"), "{out:?}");
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd], categories: [all]}
  scope: Namespaced
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
            properties:
              size: {type: integer}
              color: {type: string}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Secret, type: string, jsonPath: .spec.color, priority: 1}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
"#;

#[test]
fn custom_resources_by_discovery() {
    let s = Server::start();
    s.k_apply(CRD);
    eventually("the Widget API", Duration::from_secs(20), || s.kubectl(&["get", "widgets"]).status.success().then_some(()));
    s.k_apply("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3, color: red}\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 10}\n");
    for args in [
        &["get", "widgets"][..],
        &["get", "wd", "-o", "wide"],
        &["get", "widget.example.com", "w1"],
        &["get", "Widget", "-o", "yaml"],
        &["get", "widgets.v1.example.com", "--sort-by=.spec.size", "-o", "name"],
        &["get", "all"],
    ] {
        s.same(args);
    }
}
