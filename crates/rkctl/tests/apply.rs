//! `apply` as server-side apply (upsert, conflicts, dry-run diff, --diff),
//! `create -f` and `delete` against a real server.

mod common;

use common::Server;

fn deployment(replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: app}}}}\n  template:\n    metadata: {{labels: {{app: app}}}}\n    spec: {{containers: [{{name: c, image: {image}}}]}}\n"
    )
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn apply_is_an_upsert_owned_by_rkctl() {
    let s = Server::start();
    let f = s.write_file("app.yaml", &deployment(2, "nginx:1"));
    assert_eq!(s.r(&["apply", "-f", &f]), "deployment.apps/app created\n");
    assert_eq!(s.k(&["get", "deploy", "app", "-o", "jsonpath={.spec.replicas}"]), "2");
    let managers =
        s.k(&["get", "deploy", "app", "-o", "jsonpath={.metadata.managedFields[?(@.operation==\"Apply\")].manager}", "--show-managed-fields"]);
    assert_eq!(managers, "rkctl");
    assert_eq!(s.r(&["apply", "-f", &f]), "deployment.apps/app unchanged\n");
    s.write_file("app.yaml", &deployment(4, "nginx:1"));
    assert_eq!(s.r(&["apply", "-f", &f]), "deployment.apps/app configured\n");
    assert_eq!(s.k(&["get", "deploy", "app", "-o", "jsonpath={.spec.replicas}"]), "4");
}

#[test]
fn conflicts_name_the_owner_and_can_be_forced() {
    let s = Server::start();
    s.k(&["create", "deployment", "app", "--image=nginx:1"]);
    let f = s.write_file("app.yaml", &deployment(5, "nginx:1"));
    let out = s.rkctl(&["apply", "-f", &f]);
    assert!(!out.status.success(), "a conflicting apply must fail");
    let err = stderr(&out);
    assert!(err.contains(".spec.replicas is owned by \"kubectl-create\""), "{err}");
    assert!(err.contains("--force-conflicts"), "{err}");
    assert_eq!(s.k(&["get", "deploy", "app", "-o", "jsonpath={.spec.replicas}"]), "1", "nothing changed");
    assert_eq!(s.r(&["apply", "-f", &f, "--force-conflicts"]), "deployment.apps/app configured\n");
    assert_eq!(s.k(&["get", "deploy", "app", "-o", "jsonpath={.spec.replicas}"]), "5");
}

#[test]
fn dry_run_shows_a_diff_and_changes_nothing() {
    let s = Server::start();
    let f = s.write_file("app.yaml", &deployment(2, "nginx:1"));
    s.r(&["apply", "-f", &f]);
    s.write_file("app.yaml", &deployment(2, "nginx:2"));
    let out = s.r(&["apply", "-f", &f, "--dry-run=server"]);
    assert!(out.contains("-       - image: nginx:1") && out.contains("+       - image: nginx:2"), "{out}");
    assert!(!out.contains("replicas"), "unchanged lines far from a change are left out: {out}");
    assert!(out.ends_with("deployment.apps/app configured (server dry run)\n"), "{out}");
    assert!(!out.contains("\x1b["), "no colour when stdout is not a terminal");
    let colored = s.r(&["apply", "-f", &f, "--dry-run", "--color=always"]);
    assert!(colored.contains("\x1b[32m+       - image: nginx:2"), "{colored}");
    assert_eq!(s.k(&["get", "deploy", "app", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]), "nginx:1");
    // A new object's dry run shows it whole and does not create it.
    let cm = s.write_file("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fresh}\ndata: {k: v}\n");
    let out = s.r(&["apply", "-f", &cm, "--dry-run"]);
    assert!(out.contains("+   k: v") && out.contains("configmap/fresh created (server dry run)"), "{out}");
    assert!(!s.kubectl(&["get", "cm", "fresh"]).status.success());
}

#[test]
fn diff_asks_before_applying() {
    let s = Server::start();
    let f = s.write_file("app.yaml", &deployment(2, "nginx:1"));
    s.r(&["apply", "-f", &f]);
    s.write_file("app.yaml", &deployment(3, "nginx:1"));
    let no = s.rkctl_stdin(&["apply", "-f", &f, "--diff"], "n\n");
    let text = String::from_utf8_lossy(&no.stdout);
    assert!(text.contains("-   replicas: 2") && text.contains("+   replicas: 3") && text.contains("skipped"), "{text}");
    assert_eq!(s.k(&["get", "deploy", "app", "-o", "jsonpath={.spec.replicas}"]), "2");
    let yes = s.rkctl_stdin(&["apply", "-f", &f, "--diff"], "y\n");
    assert!(String::from_utf8_lossy(&yes.stdout).contains("deployment.apps/app configured"), "{yes:?}");
    assert_eq!(s.k(&["get", "deploy", "app", "-o", "jsonpath={.spec.replicas}"]), "3");
}

#[test]
fn stdin_directories_and_lists() {
    let s = Server::start();
    let docs = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n- {apiVersion: v1, kind: Service, metadata: {name: svc}, spec: {ports: [{port: 80}]}}\n";
    let out = s.rkctl_stdin(&["apply", "-f", "-"], docs);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "configmap/a created\nconfigmap/b created\nservice/svc created\n", "{}", stderr(&out));
    s.write_file("dir/one.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\n");
    s.write_file("dir/sub/two.json", r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two", "namespace": "kube-public"}}"#);
    s.write_file("dir/ignored.txt", "not a manifest");
    let dir = s.root.path().join("dir");
    let dir = dir.to_str().unwrap();
    assert_eq!(s.r(&["apply", "-f", dir]), "configmap/one created\n");
    assert_eq!(s.r(&["apply", "-R", "-f", dir]), "configmap/one unchanged\nconfigmap/two created\n");
    assert_eq!(s.k(&["get", "cm", "two", "-n", "kube-public", "-o", "name"]), "configmap/two\n");
}

#[test]
fn create_and_delete() {
    let s = Server::start();
    let f = s.write_file("cms.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, labels: {t: a}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: y, labels: {t: a}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: z, labels: {t: b}}\n");
    assert_eq!(s.r(&["create", "-f", &f]), "configmap/x created\nconfigmap/y created\nconfigmap/z created\n");
    let again = s.rkctl(&["create", "-f", &f]);
    assert!(!again.status.success());
    assert!(stderr(&again).starts_with("Error from server (AlreadyExists): configmaps \"x\" already exists"), "{}", stderr(&again));
    assert_eq!(s.r(&["delete", "cm", "-l", "t=a"]), "configmap \"x\" deleted\nconfigmap \"y\" deleted\n");
    assert_eq!(s.k(&["get", "cm", "-l", "t", "-o", "name"]), "configmap/z\n");
    let missing = s.rkctl(&["delete", "cm", "x"]);
    assert_eq!(stderr(&missing), "Error from server (NotFound): configmaps \"x\" not found\n");
    assert!(s.rkctl(&["delete", "cm", "x", "--ignore-not-found"]).status.success());
    assert_eq!(s.r(&["delete", "configmap/z"]), "configmap \"z\" deleted\n");
    s.r(&["create", "-f", &f]);
    assert_eq!(s.r(&["delete", "-f", &f]), "configmap \"x\" deleted\nconfigmap \"y\" deleted\nconfigmap \"z\" deleted\n");
    assert_eq!(s.k(&["get", "cm", "-l", "t", "-o", "name"]), "");
}

#[test]
fn apply_k_renders_a_kustomization_as_kubectl_does() {
    let s = Server::start();
    s.write_file(
        "base/app.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app, labels: {app: app}}\nspec:\n  replicas: 0\n  selector: {matchLabels: {app: app}}\n  template:\n    metadata: {labels: {app: app}}\n    spec: {containers: [{name: c, image: nginx}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: app}\nspec:\n  selector: {app: app}\n  ports: [{port: 80}]\n",
    );
    s.write_file("base/kustomization.yaml", "resources: [app.yaml]\n");
    s.write_file("overlay/extra.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: fast}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n");
    let overlay = s.write_file(
        "overlay/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../base, extra.yaml]\nnamespace: shop\nnamePrefix: prod-\ncommonLabels: {team: blue}\n",
    );
    let dir = std::path::Path::new(&overlay).parent().unwrap().to_str().unwrap().to_string();
    // The namespace comes first, so what lives in it can be created.
    assert_eq!(
        s.r(&["apply", "-k", &dir]),
        "namespace/shop created\nconfigmap/prod-settings created\nservice/prod-app created\ndeployment.apps/prod-app created\n"
    );
    // (Once the Deployment controller is done with it, so that only our
    // own changes could make a difference.)
    common::eventually("the deployment seen by its controller", std::time::Duration::from_secs(60), || {
        let seen = s.k(&["get", "deploy", "prod-app", "-n", "shop", "-o", "jsonpath={.metadata.generation}/{.status.observedGeneration}"]);
        (seen == "1/1").then_some(())
    });
    let again = s.r(&["apply", "-k", &dir]);
    assert_eq!(again.lines().filter(|l| l.ends_with(" unchanged")).count(), 4, "{again}");
    // What the server now holds is what kubectl's kustomize renders.
    let rendered = s.k(&["kustomize", &dir]);
    let mut n = 0;
    for doc in serde_yaml::Deserializer::from_str(&rendered) {
        let want: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
        let (kind, name) = (want["kind"].as_str().unwrap(), want["metadata"]["name"].as_str().unwrap());
        let mut args = vec!["get", kind, name, "-o", "json"];
        if let Some(ns) = want["metadata"]["namespace"].as_str() {
            args.extend(["-n", ns]);
        }
        let got: serde_json::Value = serde_json::from_str(&s.k(&args)).unwrap();
        for ptr in ["/metadata/labels", "/spec/selector", "/spec/template/metadata/labels", "/data", "/spec/ports/0/port", "/spec/finalizers"] {
            // Everything kustomize rendered is there (the server may add
            // more, such as a namespace's kubernetes.io/metadata.name label).
            match (want.pointer(ptr), got.pointer(ptr)) {
                (Some(serde_json::Value::Object(w)), Some(serde_json::Value::Object(g))) => {
                    assert!(w.iter().all(|(k, v)| g.get(k) == Some(v)), "{kind}/{name} {ptr}: {w:?} not in {g:?}")
                }
                (Some(w), g) => assert_eq!(g, Some(w), "{kind}/{name} {ptr}"),
                (None, _) => {}
            }
        }
        n += 1;
    }
    assert_eq!(n, 4, "{rendered}");
    // delete -k removes the same objects; what kustomize cannot say here is refused.
    let gone = s.r(&["delete", "-k", &dir]);
    assert!(gone.contains("deployment.apps \"prod-app\" deleted") && gone.contains("namespace \"shop\" deleted"), "{gone}");
    s.write_file("overlay/kustomization.yaml", "resources: [../base]\nimages: [{name: nginx, newTag: \"2\"}]\n");
    let refused = s.rkctl(&["apply", "-k", &dir]);
    assert!(!refused.status.success() && stderr(&refused).contains("`images` is not supported"), "{}", stderr(&refused));
}
