//! The real kubectl against the real server: discovery, create/get in every
//! output format, describe, delete, typed creates, replace.

mod common;

use std::time::Duration;

use common::{Server, str_at};
use serde_json::Value;

/// The whitespace-separated words of a table's header line.
fn header(table: &str) -> Vec<&str> {
    table.lines().next().unwrap_or_default().split_whitespace().collect()
}

/// The words of the table row whose first column is `name`.
fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.first() == Some(&name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{table}"))
}

#[test]
fn version_reports_1_37() {
    let s = Server::start();
    let v: Value = serde_json::from_str(&s.ok(&["version", "-o", "json"])).unwrap();
    assert_eq!(str_at(&v, "/serverVersion/major"), "1", "{v:#}");
    assert_eq!(str_at(&v, "/serverVersion/minor"), "37", "{v:#}");
    assert!(str_at(&v, "/serverVersion/gitVersion").starts_with("v1.37."), "{v:#}");
    let plain = s.ok(&["version"]);
    assert!(plain.contains("Server Version: v1.37"), "{plain}");
}

#[test]
fn api_resources_lists_scope_and_groups() {
    let s = Server::start();
    let table = s.ok(&["api-resources"]);
    assert_eq!(header(&table), ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]);
    // SHORTNAMES may be empty, so columns are read from the end of the row.
    for (name, api_version, namespaced, kind) in [
        ("pods", "v1", "true", "Pod"),
        ("namespaces", "v1", "false", "Namespace"),
        ("deployments", "apps/v1", "true", "Deployment"),
        ("customresourcedefinitions", "apiextensions.k8s.io/v1", "false", "CustomResourceDefinition"),
        ("leases", "coordination.k8s.io/v1", "true", "Lease"),
    ] {
        let r = row(&table, name);
        let n = r.len();
        assert_eq!(&r[n - 3..], [api_version, namespaced, kind], "row {r:?}");
    }
    assert!(row(&table, "pods").contains(&"po"), "pods' short name");
    assert!(row(&table, "customresourcedefinitions").iter().any(|w| w.contains("crd")), "crd short name");

    let namespaced = s.ok(&["api-resources", "--namespaced=true", "-o", "name"]);
    let names: Vec<&str> = namespaced.lines().collect();
    for n in ["pods", "deployments.apps", "leases.coordination.k8s.io", "configmaps"] {
        assert!(names.contains(&n), "{n} missing from namespaced resources: {names:?}");
    }
    assert!(!names.iter().any(|n| n.starts_with("customresourcedefinitions")), "{names:?}");
    let cluster = s.ok(&["api-resources", "--namespaced=false", "-o", "name"]);
    let names: Vec<&str> = cluster.lines().collect();
    for n in ["namespaces", "nodes", "customresourcedefinitions.apiextensions.k8s.io"] {
        assert!(names.contains(&n), "{n} missing from cluster-scoped resources: {names:?}");
    }
    assert!(!names.contains(&"pods"), "{names:?}");
}

#[test]
fn api_versions_and_raw_discovery_and_health() {
    let s = Server::start();
    let versions = s.ok(&["api-versions"]);
    let lines: Vec<&str> = versions.lines().collect();
    for v in ["v1", "apps/v1", "autoscaling/v2", "resource.k8s.io/v1", "batch/v1", "coordination.k8s.io/v1"] {
        assert!(lines.contains(&v), "{v} missing from api-versions: {lines:?}");
    }

    let core: Value = serde_json::from_str(&s.ok(&["get", "--raw", "/api/v1"])).unwrap();
    assert_eq!(str_at(&core, "/kind"), "APIResourceList");
    assert_eq!(str_at(&core, "/groupVersion"), "v1");
    let resources = core["resources"].as_array().expect("resources");
    let find = |n: &str| resources.iter().find(|r| r["name"] == n).unwrap_or_else(|| panic!("{n} not in /api/v1"));
    assert_eq!(find("pods")["namespaced"], true);
    assert_eq!(find("pods")["kind"], "Pod");
    assert_eq!(find("namespaces")["namespaced"], false);
    find("pods/status");
    find("pods/binding");

    assert_eq!(s.ok(&["get", "--raw", "/healthz"]).trim(), "ok");
    let ready = s.ok(&["get", "--raw", "/readyz?verbose"]);
    assert!(ready.contains("readyz check passed"), "{ready}");
    assert!(ready.lines().any(|l| l.starts_with("[+]")), "{ready}");
}

const MANIFEST: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
  labels:
    app: web
data:
  key: value-1
  other: value-2
---
apiVersion: v1
kind: Secret
metadata:
  name: app-secret
type: Opaque
stringData:
  password: hunter2
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.27
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: solo
spec:
  containers:
  - name: main
    image: busybox
"#;

#[test]
fn create_file_and_get_in_every_format() {
    let s = Server::start();
    let file = s.write_file("manifest.yaml", MANIFEST);
    let out = s.ok(&["create", "-f", &file]);
    for line in
        ["configmap/app-config created", "secret/app-secret created", "deployment.apps/web created", "service/web created", "pod/solo created"]
    {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }

    // JSON: server-set metadata.
    for what in [["configmap", "app-config"], ["secret", "app-secret"], ["deployment", "web"], ["service", "web"], ["pod", "solo"]] {
        let v = s.get_json(&what);
        assert_eq!(str_at(&v, "/metadata/name"), what[1]);
        assert_eq!(str_at(&v, "/metadata/namespace"), "default");
        assert!(!str_at(&v, "/metadata/uid").is_empty(), "{v:#}");
        assert!(str_at(&v, "/metadata/creationTimestamp").ends_with('Z'), "{v:#}");
        assert!(str_at(&v, "/metadata/resourceVersion").parse::<u64>().is_ok(), "{v:#}");
    }
    let deploy = s.get_json(&["deployment", "web"]);
    assert_eq!(deploy["metadata"]["generation"], 1, "{deploy:#}");
    assert_eq!(deploy["kind"], "Deployment");
    assert_eq!(deploy["apiVersion"], "apps/v1");
    assert_eq!(deploy["spec"]["replicas"], 2);
    let cm = s.get_json(&["configmap", "app-config"]);
    assert_eq!(cm["data"]["key"], "value-1");
    assert_eq!(cm["metadata"]["labels"]["app"], "web");
    // Upstream folds stringData into data on write.
    assert_eq!(s.ok(&["get", "secret", "app-secret", "-o", "jsonpath={.data.password}"]), "aHVudGVyMg==");
    let svc = s.get_json(&["service", "web"]);
    assert_eq!(svc["spec"]["ports"][0]["port"], 80, "{svc:#}");

    // A JSON list.
    let list = s.get_json(&["configmaps"]);
    assert_eq!(list["kind"], "List", "{list:#}");
    assert!(list["items"].as_array().unwrap().iter().any(|i| i["metadata"]["name"] == "app-config"), "{list:#}");

    // YAML.
    let yaml = s.ok(&["get", "configmap", "app-config", "-o", "yaml"]);
    for needle in ["kind: ConfigMap", "name: app-config", "key: value-1", "resourceVersion:", "uid:"] {
        assert!(yaml.contains(needle), "{needle:?} missing from:\n{yaml}");
    }

    // Name, jsonpath, custom columns.
    assert_eq!(s.ok(&["get", "configmap", "app-config", "-o", "name"]).trim(), "configmap/app-config");
    let names = s.ok(&["get", "deployments,services", "-o", "name"]);
    assert!(names.lines().any(|l| l == "deployment.apps/web"), "{names}");
    assert!(names.lines().any(|l| l == "service/web"), "{names}");
    assert_eq!(s.ok(&["get", "configmap", "app-config", "-o", "jsonpath={.data.key}"]), "value-1");
    let cc = s.ok(&["get", "configmaps", "-o", "custom-columns=NAME:.metadata.name,NS:.metadata.namespace"]);
    assert_eq!(header(&cc), ["NAME", "NS"]);
    assert_eq!(row(&cc, "app-config"), ["app-config", "default"]);

    // Default tables: upstream's columns, server-side printed.
    let pods = s.ok(&["get", "pods"]);
    assert_eq!(header(&pods), ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(&row(&pods, "solo")[..4], ["solo", "0/1", "Pending", "0"]);
    let cms = s.ok(&["get", "configmaps"]);
    assert_eq!(header(&cms), ["NAME", "DATA", "AGE"]);
    assert_eq!(&row(&cms, "app-config")[..2], ["app-config", "2"]);
    let deploys = s.ok(&["get", "deployments"]);
    assert_eq!(header(&deploys), ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    // No node runs the pods: none is ready or available.
    let web = row(&deploys, "web");
    assert_eq!((web[0], web[1], web[3]), ("web", "0/2", "0"), "{deploys}");

    // Wide adds the extra columns.
    let wide = s.ok(&["get", "deployments", "-o", "wide"]);
    assert_eq!(header(&wide), ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]);
    assert_eq!(&row(&wide, "web")[5..], ["web", "nginx:1.27", "app=web"]);
    let wide_pods = s.ok(&["get", "pods", "-o", "wide"]);
    assert!(header(&wide_pods).contains(&"NODE"), "{wide_pods}");
}

#[test]
fn describe_configmap_and_deployment() {
    let s = Server::start();
    s.ok(&["create", "configmap", "described", "--from-literal=color=blue"]);
    s.ok(&["create", "deployment", "shown", "--image=nginx:1.27"]);
    let cm = s.ok(&["describe", "configmap", "described"]);
    for needle in ["Name:", "described", "Namespace:", "default", "color", "blue"] {
        assert!(cm.contains(needle), "{needle:?} missing from:\n{cm}");
    }
    let d = s.ok(&["describe", "deployment", "shown"]);
    for needle in ["Name:", "shown", "Namespace:", "default", "nginx:1.27", "Replicas:"] {
        assert!(d.contains(needle), "{needle:?} missing from:\n{d}");
    }
}

fn assert_not_found(s: &Server, kind: &str, name: &str) {
    let err = s.fails(&["get", kind, name]);
    assert!(err.contains("NotFound"), "{err}");
}

#[test]
fn delete_by_name_wait_and_label() {
    let s = Server::start();

    s.ok(&["create", "configmap", "gone", "--from-literal=a=b"]);
    let out = s.ok(&["delete", "configmap", "gone"]);
    assert!(out.contains("configmap \"gone\" deleted"), "{out}");
    assert_not_found(&s, "configmap", "gone");

    s.ok(&["create", "configmap", "waited", "--from-literal=a=b"]);
    s.ok(&["delete", "configmap", "waited", "--wait=true", "--timeout=30s"]);
    assert_not_found(&s, "configmap", "waited");

    for n in ["x1", "x2", "x3", "y1"] {
        s.ok(&["create", "configmap", n, "--from-literal=a=b"]);
    }
    s.ok(&["label", "configmap", "x1", "x2", "x3", "app=x"]);
    s.ok(&["label", "configmap", "y1", "app=y"]);
    let out = s.ok(&["delete", "configmaps", "-l", "app=x"]);
    for n in ["x1", "x2", "x3"] {
        assert!(out.contains(&format!("configmap \"{n}\" deleted")), "{out}");
        assert_not_found(&s, "configmap", n);
    }
    assert!(!out.contains("y1"), "{out}");
    s.ok(&["get", "configmap", "y1"]);

    let err = s.fails(&["delete", "configmap", "never-was"]);
    assert!(err.contains("NotFound"), "{err}");
}

#[test]
fn wait_for_delete_of_an_object_deleted_concurrently() {
    let s = Server::start();
    s.ok(&["create", "configmap", "held", "--from-literal=a=b"]);
    // A finalizer keeps the object alive after the delete, so the wait
    // really has something to wait for.
    s.ok(&["patch", "configmap", "held", "--type=merge", "-p", r#"{"metadata":{"finalizers":["example.com/hold"]}}"#]);
    s.ok(&["delete", "configmap", "held", "--wait=false"]);
    let ts = s.ok(&["get", "configmap", "held", "-o", "jsonpath={.metadata.deletionTimestamp}"]);
    assert!(!ts.is_empty(), "deletionTimestamp is not set on an object with a finalizer");

    let mut waiter = s.spawn_kubectl(&["wait", "--for=delete", "configmap/held", "--timeout=60s"]);
    s.ok(&["patch", "configmap", "held", "--type=json", "-p", r#"[{"op":"remove","path":"/metadata/finalizers"}]"#]);
    let status = waiter.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "kubectl wait --for=delete failed: {status}");
    assert_not_found(&s, "configmap", "held");
}

#[test]
fn typed_creates() {
    let s = Server::start();
    let cases: [(&[&str], &str); 8] = [
        (&["create", "namespace", "team-a"], "namespace/team-a created"),
        (&["create", "configmap", "lit", "--from-literal=k1=v1", "--from-literal=k2=v2"], "configmap/lit created"),
        (&["create", "secret", "generic", "sec", "--from-literal=password=hunter2"], "secret/sec created"),
        (&["create", "deployment", "dep", "--image=nginx:1.27"], "deployment.apps/dep created"),
        (&["create", "job", "once", "--image=busybox"], "job.batch/once created"),
        (&["create", "service", "clusterip", "svc", "--tcp=80:8080"], "service/svc created"),
        (&["create", "serviceaccount", "robot"], "serviceaccount/robot created"),
        (&["run", "runner", "--image=busybox"], "pod/runner created"),
    ];
    for (args, expect) in cases {
        let out = s.ok(args);
        assert_eq!(out.trim(), expect, "kubectl {args:?}");
    }

    let ns = s.get_json(&["namespace", "team-a"]);
    assert_eq!(ns["status"]["phase"], "Active", "{ns:#}");
    assert_eq!(s.ok(&["get", "configmap", "lit", "-o", "jsonpath={.data.k1},{.data.k2}"]), "v1,v2");
    assert_eq!(s.ok(&["get", "secret", "sec", "-o", "jsonpath={.type} {.data.password}"]), "Opaque aHVudGVyMg==");
    let dep = s.get_json(&["deployment", "dep"]);
    assert_eq!(dep["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.27");
    assert_eq!(dep["spec"]["selector"]["matchLabels"]["app"], "dep");
    assert_eq!(dep["metadata"]["generation"], 1);
    let job = s.get_json(&["job", "once"]);
    assert_eq!(job["spec"]["template"]["spec"]["containers"][0]["image"], "busybox", "{job:#}");
    let svc = s.get_json(&["service", "svc"]);
    assert_eq!(svc["spec"]["type"], "ClusterIP", "{svc:#}");
    assert_eq!(svc["spec"]["ports"][0]["port"], 80, "{svc:#}");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080, "{svc:#}");
    s.ok(&["get", "serviceaccount", "robot"]);
    let pod = s.get_json(&["pod", "runner"]);
    assert_eq!(pod["spec"]["containers"][0]["image"], "busybox");
    let pods = s.ok(&["get", "pod", "runner"]);
    assert_eq!(row(&pods, "runner")[2], "Pending", "{pods}");
}

#[test]
fn replace_and_stale_replace() {
    let s = Server::start();
    let v1 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rep\ndata:\n  key: one\n";
    let f1 = s.write_file("v1.yaml", v1);
    s.ok(&["create", "-f", &f1]);
    let before = s.get_json(&["configmap", "rep"]);

    let f2 = s.write_file("v2.yaml", &v1.replace("key: one", "key: two"));
    let out = s.ok(&["replace", "-f", &f2]);
    assert!(out.contains("configmap/rep replaced"), "{out}");
    let after = s.get_json(&["configmap", "rep"]);
    assert_eq!(after["data"]["key"], "two");
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert_ne!(after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"]);

    // Replacing with the first read's resourceVersion must lose the race.
    let mut stale = before.clone();
    stale["data"]["key"] = "three".into();
    let f3 = s.write_file("stale.json", &stale.to_string());
    let err = s.fails(&["replace", "-f", &f3]);
    assert!(err.contains("the object has been modified"), "{err}");
    assert_eq!(s.ok(&["get", "configmap", "rep", "-o", "jsonpath={.data.key}"]), "two");
}
