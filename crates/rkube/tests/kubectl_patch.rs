//! Schema-driven writes through the real kubectl: strategic merge patch
//! (set image, label, annotate, patch --type strategic), JSON and merge
//! patch, client-side apply (create, change, prune), edit, scale, diff,
//! server dry-run, and field validation (Strict, Warn, Ignore, type errors).

mod common;

use common::{Server, stderr};
use serde_json::Value;

const DEPLOY: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: nginx:1.27
        ports:
        - containerPort: 80
        env:
        - {name: MODE, value: prod}
      - name: sidecar
        image: busybox:1.36
        args: [sleep, "3600"]
"#;

fn containers(s: &Server) -> serde_json::Value {
    s.get_json(&["deployment", "web"])["spec"]["template"]["spec"]["containers"].clone()
}

#[test]
fn set_image_and_strategic_patches_merge_containers_by_name() {
    let s = Server::start();
    s.ok_stdin(&["create", "-f", "-"], DEPLOY);
    let out = s.ok(&["set", "image", "deployment/web", "app=nginx:1.28"]);
    assert!(out.contains("deployment.apps/web image updated"), "{out}");
    let c = containers(&s);
    assert_eq!(c[0]["image"], "nginx:1.28");
    assert_eq!(c[0]["env"][0]["value"], "prod", "the rest of the container is kept: {c:#}");
    assert_eq!(c[0]["ports"][0]["containerPort"], 80, "{c:#}");
    assert_eq!(c[1]["image"], "busybox:1.36", "the other container is untouched: {c:#}");
    assert_eq!(s.get_json(&["deployment", "web"])["metadata"]["generation"], 2);

    s.ok(&["set", "env", "deployment/web", "-c", "app", "LEVEL=debug"]);
    let env = &containers(&s)[0]["env"];
    assert_eq!(env.as_array().unwrap().len(), 2, "{env:#}");

    // A strategic patch adding a container and deleting another by its key.
    let patch = r#"{"spec":{"template":{"spec":{"containers":[{"name":"extra","image":"busybox"},{"name":"sidecar","$patch":"delete"}]}}}}"#;
    s.ok(&["patch", "deployment", "web", "--type", "strategic", "-p", patch]);
    let names: Vec<String> = containers(&s).as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["app", "extra"]);

    // A merge key missing from a list element is refused and changes nothing.
    let before = s.get_json(&["deployment", "web"]);
    let err =
        s.fails(&["patch", "deployment", "web", "--type", "strategic", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#]);
    assert!(err.contains("does not contain declared merge key: name"), "{err}");
    assert_eq!(s.get_json(&["deployment", "web"])["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"]);
}

#[test]
fn merge_and_json_patches_label_annotate() {
    let s = Server::start();
    s.ok(&["create", "configmap", "cfg", "--from-literal=a=1", "--from-literal=b=2"]);
    s.ok(&["patch", "configmap", "cfg", "--type", "merge", "-p", r#"{"data":{"a":null,"c":"3"}}"#]);
    assert_eq!(s.get_json(&["configmap", "cfg"])["data"], serde_json::json!({"b": "2", "c": "3"}));
    s.ok(&[
        "patch",
        "configmap",
        "cfg",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/data/b","value":"two"},{"op":"add","path":"/data/d","value":"4"}]"#,
    ]);
    assert_eq!(s.get_json(&["configmap", "cfg"])["data"], serde_json::json!({"b": "two", "c": "3", "d": "4"}));
    let err = s.fails(&["patch", "configmap", "cfg", "--type", "json", "-p", r#"[{"op":"test","path":"/data/b","value":"nope"}]"#]);
    assert!(err.contains("Invalid") || err.contains("invalid"), "{err}");

    s.ok(&["label", "configmap", "cfg", "tier=web", "team=a"]);
    s.ok(&["label", "configmap", "cfg", "tier=db", "--overwrite"]);
    s.ok(&["label", "configmap", "cfg", "team-"]);
    s.ok(&["annotate", "configmap", "cfg", "note=hello"]);
    let err = s.fails(&["annotate", "configmap", "cfg", "note=again"]);
    assert!(err.contains("already has a value"), "{err}");
    s.ok(&["annotate", "configmap", "cfg", "note=again", "--overwrite"]);
    let cm = s.get_json(&["configmap", "cfg"]);
    assert_eq!(cm["metadata"]["labels"], serde_json::json!({"tier": "db"}));
    assert_eq!(cm["metadata"]["annotations"]["note"], "again");
    s.ok(&["annotate", "configmap", "cfg", "note-"]);
    assert!(s.get_json(&["configmap", "cfg"])["metadata"].get("annotations").is_none_or(|a| a.get("note").is_none()));
}

const APPLY_V1: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: applied
data:
  keep: "1"
  drop: "2"
---
apiVersion: v1
kind: Service
metadata:
  name: applied
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: metrics, port: 9090}
"#;

#[test]
fn client_side_apply_creates_changes_and_prunes_fields() {
    let s = Server::start();
    s.ok_stdin(&["create", "-f", "-"], DEPLOY);
    let f = s.write_file("deploy.yaml", &DEPLOY.replace("kind: Deployment\nmetadata:\n  name: web", "kind: Deployment\nmetadata:\n  name: applied"));
    let out = s.ok(&["apply", "-f", &f]);
    assert!(out.contains("deployment.apps/applied created"), "{out}");
    let out = s.ok_stdin(&["apply", "-f", "-"], APPLY_V1);
    assert!(out.contains("configmap/applied created") && out.contains("service/applied created"), "{out}");
    let cm = s.get_json(&["configmap", "applied"]);
    assert!(cm["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string(), "{cm:#}");

    // Unchanged: nothing to do.
    let out = s.ok_stdin(&["apply", "-f", "-"], APPLY_V1);
    assert!(out.contains("configmap/applied unchanged"), "{out}");

    // Change one value, remove a key and a port: both are pruned from the live objects.
    let v2 = APPLY_V1.replace("  drop: \"2\"\n", "").replace("keep: \"1\"", "keep: \"one\"").replace("  - {name: metrics, port: 9090}\n", "");
    let out = s.ok_stdin(&["apply", "-f", "-"], &v2);
    assert!(out.contains("configmap/applied configured") && out.contains("service/applied configured"), "{out}");
    assert_eq!(s.get_json(&["configmap", "applied"])["data"], serde_json::json!({"keep": "one"}));
    let ports = s.get_json(&["service", "applied"])["spec"]["ports"].clone();
    assert_eq!(ports.as_array().unwrap().len(), 1, "{ports:#}");
    assert_eq!(ports[0]["targetPort"], 8080);

    // A Deployment: change the image of one container, drop the sidecar.
    let d2 = DEPLOY
        .replace("name: web\n  labels", "name: applied\n  labels")
        .replace("nginx:1.27", "nginx:1.29")
        .replace("      - name: sidecar\n        image: busybox:1.36\n        args: [sleep, \"3600\"]\n", "");
    s.ok_stdin(&["apply", "-f", "-"], &d2);
    let c = s.get_json(&["deployment", "applied"])["spec"]["template"]["spec"]["containers"].clone();
    assert_eq!(c.as_array().unwrap().len(), 1, "{c:#}");
    assert_eq!(c[0]["image"], "nginx:1.29");
    assert_eq!(c[0]["env"][0]["value"], "prod");

    // diff against the server's dry run: a change shows and exits 1.
    let d3 = d2.replace("replicas: 1", "replicas: 4");
    let file = s.write_file("d3.yaml", &d3);
    let out = s.kubectl(&["diff", "-f", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(diff.contains("-  replicas: 1") && diff.contains("+  replicas: 4"), "{diff}");
    assert_eq!(s.get_json(&["deployment", "applied"])["spec"]["replicas"], 1, "diff changed nothing");
    let out = s.kubectl(&["diff", "-f", &s.write_file("d2.yaml", &d2)]);
    assert_eq!(out.status.code(), Some(0), "no difference: {}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn scale_edit_and_server_dry_run() {
    let s = Server::start();
    s.ok_stdin(&["create", "-f", "-"], DEPLOY);
    let out = s.ok(&["scale", "deployment", "web", "--replicas=3"]);
    assert!(out.contains("deployment.apps/web scaled"), "{out}");
    assert_eq!(s.get_json(&["deployment", "web"])["spec"]["replicas"], 3);

    // kubectl edit with an editor script that changes the replicas.
    let editor = s.write_file("editor.sh", "#!/bin/sh\nsed -i 's/replicas: 3/replicas: 5/' \"$1\"\n");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = s.kubectl_cmd(&["edit", "deployment", "web"]).env("EDITOR", &editor).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(s.get_json(&["deployment", "web"])["spec"]["replicas"], 5);

    // An edit that makes a field the wrong type is refused; nothing changes.
    let bad = s.write_file("bad-editor.sh", "#!/bin/sh\nsed -i 's/replicas: 5/replicas: five/' \"$1\"\n");
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = s.kubectl_cmd(&["edit", "deployment", "web"]).env("EDITOR", &bad).output().unwrap();
    assert!(!out.status.success(), "an invalid edit must fail");
    assert_eq!(s.get_json(&["deployment", "web"])["spec"]["replicas"], 5);

    // Server dry run returns the defaulted object and stores nothing.
    let y = s.ok(&["create", "deployment", "dry", "--image=busybox", "--dry-run=server", "-o", "yaml"]);
    assert!(y.contains("imagePullPolicy: Always") && y.contains("revisionHistoryLimit: 10"), "{y}");
    assert!(s.fails(&["get", "deployment", "dry"]).contains("NotFound"));
}

const UNKNOWN: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: strict
  colour: blue
data:
  a: b
extra: field
"#;

#[test]
fn field_validation_strict_warn_ignore() {
    let s = Server::start();
    let f = s.write_file("unknown.yaml", UNKNOWN);
    let err = s.fails(&["create", "-f", &f]);
    assert!(err.contains("strict decoding error"), "{err}");
    assert!(err.contains(r#"unknown field "extra""#) && err.contains(r#"unknown field "metadata.colour""#), "{err}");
    assert!(s.fails(&["get", "configmap", "strict"]).contains("NotFound"));

    let out = s.kubectl(&["create", "-f", &f, "--validate=warn"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(r#"Warning: unknown field "extra""#), "{err}");
    let cm = s.get_json(&["configmap", "strict"]);
    assert!(cm.get("extra").is_none() && cm["metadata"].get("colour").is_none(), "unknown fields are dropped: {cm:#}");

    s.ok(&["delete", "configmap", "strict"]);
    let out = s.kubectl(&["create", "-f", &f, "--validate=false"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("unknown field"), "{}", stderr(&out));
    assert_eq!(s.get_json(&["configmap", "strict"])["data"]["a"], "b");

    // A value of the wrong type is a 400 whatever the mode.
    let bad = DEPLOY.replace("replicas: 1", "replicas: one");
    let err = String::from_utf8_lossy(&s.kubectl_stdin(&["create", "-f", "-", "--validate=false"], &bad).stderr).to_string();
    assert!(err.contains("cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"), "{err}");
    assert!(s.fails(&["get", "deployment", "web"]).contains("NotFound"));
}

#[test]
fn server_side_apply_upserts_reports_conflicts_and_forces() {
    let s = Server::start();
    let v1 = DEPLOY.replace("  labels: {app: web}\nspec:", "  labels: {app: web, stage: one}\nspec:");
    let out = s.ok_stdin(&["apply", "--server-side", "-f", "-"], &v1);
    assert!(out.contains("deployment.apps/web serverside-applied"), "{out}");
    // The applier's entry (the controllers record theirs beside it).
    let applied = |s: &Server| -> Value {
        let d = s.get_json(&["deployment", "web", "--show-managed-fields"]);
        let mf = d["metadata"]["managedFields"].as_array().cloned().expect("managedFields");
        let mine: Vec<Value> = mf.iter().filter(|m| m["manager"] == "kubectl" && m["operation"] == "Apply").cloned().collect();
        assert_eq!(mine.len(), 1, "{mf:#?}");
        mine[0].clone()
    };
    let mine = applied(&s);
    assert!(mine["fieldsV1"]["f:spec"]["f:replicas"].is_object(), "{mine:#}");
    assert!(mine["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"]["f:image"].is_object(), "{mine:#}");

    // Another manager takes replicas; applying a different value now conflicts.
    s.ok(&["scale", "deployment", "web", "--replicas=3"]);
    let v2 = v1.replace("replicas: 1", "replicas: 2");
    let out = s.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &v2);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("Apply failed with 1 conflict") && err.contains(".spec.replicas"), "{err}");
    assert_eq!(s.get_json(&["deployment", "web"])["spec"]["replicas"], 3, "a refused apply changes nothing");

    // Forcing takes the field; dropping a label from the manifest removes it.
    let v3 = v2.replace("{app: web, stage: one}", "{app: web}");
    s.ok_stdin(&["apply", "--server-side", "--force-conflicts", "-f", "-"], &v3);
    let d = s.get_json(&["deployment", "web"]);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["metadata"]["labels"], serde_json::json!({"app": "web"}), "{d:#}");

    // Applying the same manifest again changes nothing.
    let (before, generation) = (applied(&s), d["metadata"]["generation"].clone());
    s.ok_stdin(&["apply", "--server-side", "-f", "-"], &v3);
    assert_eq!(applied(&s), before);
    assert_eq!(s.get_json(&["deployment", "web"])["metadata"]["generation"], generation);

    // A non-apply update records its manager too.
    s.ok(&["label", "deployment", "web", "team=a"]);
    let mf = s.get_json(&["deployment", "web", "--show-managed-fields"])["metadata"]["managedFields"].clone();
    assert!(
        mf.as_array().unwrap().iter().any(|m| m["operation"] == "Update" && m["fieldsV1"]["f:metadata"]["f:labels"]["f:team"].is_object()),
        "{mf:#}"
    );
}

#[test]
fn apply_prune_and_rollout_pause_resume() {
    let s = Server::start();
    let two = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: p1\n  labels: {set: a}\ndata: {x: \"1\"}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: p2\n  labels: {set: a}\ndata: {x: \"2\"}\n";
    s.ok_stdin(&["apply", "-f", "-"], two);
    let one = two.split("---\n").next().unwrap();
    let out = s.ok_stdin(&["apply", "--prune", "-l", "set=a", "-f", "-"], one);
    assert!(out.contains("configmap/p2 pruned"), "{out}");
    assert!(s.fails(&["get", "configmap", "p2"]).contains("NotFound"));
    s.ok(&["get", "configmap", "p1"]);

    s.ok_stdin(&["create", "-f", "-"], DEPLOY);
    s.ok(&["rollout", "pause", "deployment/web"]);
    assert_eq!(s.get_json(&["deployment", "web"])["spec"]["paused"], true);
    s.ok(&["rollout", "resume", "deployment/web"]);
    assert!(s.get_json(&["deployment", "web"])["spec"].get("paused").is_none_or(|p| p == false));
}

#[test]
fn explain_reads_the_openapi_documents() {
    let s = Server::start();
    let out = s.ok(&["explain", "pods.spec.containers"]);
    assert!(out.contains("KIND:       Pod") && out.contains("FIELD: containers <[]Container>"), "{out}");
    assert!(out.contains("image\t<string>"), "{out}");
    assert!(out.contains("name\t<string> -required-"), "{out}");
    let out = s.ok(&["explain", "deployment", "--recursive"]);
    assert!(out.contains("GROUP:      apps") && out.contains("KIND:       Deployment"), "{out}");
    // Recursion reaches fields four levels down, through references.
    assert!(out.lines().any(|l| l.starts_with("        maxSurge\t<")), "{out}");
    assert!(out.lines().any(|l| l.trim_start() == "key\t<string> -required-"), "{out}");
    let out = s.ok(&["explain", "deployment.spec.strategy.rollingUpdate.maxSurge"]);
    assert!(out.contains("FIELD: maxSurge <"), "{out}");
    assert!(out.contains("The maximum number of pods that can be scheduled above the desired number"), "{out}");
    let err = s.fails(&["explain", "pods.spec.nosuchfield"]);
    assert!(err.contains("nosuchfield"), "{err}");
}
