//! Controllers and the scheduler on simulated nodes, through the real
//! kubectl: Deployments roll out, scale, roll back and clean up; deleting a
//! namespace empties it; cascading deletion honours its propagation policy;
//! cordon and drain move pods away.

mod common;

use std::time::Duration;

use common::{Server, eventually};
use serde_json::Value;

const T: Duration = Duration::from_secs(30);

fn pods(s: &Server, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["pods"];
    a.extend_from_slice(args);
    s.get_json(&a)["items"].as_array().cloned().unwrap_or_default()
}

fn running(s: &Server, selector: &str, n: usize) -> Vec<Value> {
    eventually(&format!("{n} running pods with {selector}"), T, || {
        let p = pods(s, &["-l", selector]);
        let ok = p.len() == n && p.iter().all(|p| p["status"]["phase"] == "Running" && p["metadata"].get("deletionTimestamp").is_none());
        ok.then_some(p)
    })
}

#[test]
fn deployments_roll_out_scale_roll_back_and_clean_up() {
    let s = Server::start_with(&["--fake-nodes", "3"]);
    assert_eq!(s.ok(&["get", "nodes", "-o", "name"]).lines().count(), 3);
    s.ok(&["create", "deployment", "web", "--image=nginx:1.27", "--replicas=3"]);
    let p = running(&s, "app=web", 3);
    let nodes: std::collections::HashSet<&str> = p.iter().map(|p| p["spec"]["nodeName"].as_str().unwrap()).collect();
    assert_eq!(nodes.len(), 3, "the scheduler spreads the pods: {nodes:?}");
    assert!(p.iter().all(|p| p["status"]["podIP"].is_string()));
    // Field selectors on the pods' node and phase (and a pod IP) pick them out.
    let (first, ip) = (p[0]["metadata"]["name"].as_str().unwrap(), p[0]["status"]["podIP"].as_str().unwrap());
    let on_node = format!("spec.nodeName={},status.phase=Running", p[0]["spec"]["nodeName"].as_str().unwrap());
    assert_eq!(s.ok(&["get", "pods", "--field-selector", &on_node, "-o", "name"]).trim(), format!("pod/{first}"));
    assert_eq!(s.ok(&["get", "pods", "--field-selector", &format!("status.podIP={ip}"), "-o", "name"]).trim(), format!("pod/{first}"));
    assert_eq!(s.ok(&["get", "pods", "--field-selector", "status.phase!=Running", "-o", "name"]), "");
    let out = s.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    assert!(out.contains("successfully rolled out"), "{out}");

    s.ok(&["scale", "deployment", "web", "--replicas=5"]);
    running(&s, "app=web", 5);

    s.ok(&["set", "image", "deployment/web", "nginx=nginx:1.28"]);
    let out = s.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let p = running(&s, "app=web", 5);
    assert!(p.iter().all(|p| p["spec"]["containers"][0]["image"] == "nginx:1.28"), "{p:#?}");
    let history = s.ok(&["rollout", "history", "deployment/web"]);
    assert!(history.lines().any(|l| l.starts_with('2')), "{history}");

    s.ok(&["rollout", "undo", "deployment/web"]);
    s.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    assert_eq!(s.ok(&["get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]), "nginx:1.27");
    let d = s.get_json(&["deployment", "web"]);
    assert_eq!(d["status"]["availableReplicas"], 5, "{d:#}");
    let events = s.ok(&["get", "events", "-A"]);
    assert!(events.contains("Scheduled"), "{events}");

    s.ok(&["delete", "deployment", "web"]);
    eventually("ReplicaSets and pods gone", T, || {
        (s.get_json(&["rs"])["items"].as_array().unwrap().is_empty() && pods(&s, &[]).is_empty()).then_some(())
    });
}

#[test]
fn deleting_a_namespace_empties_it_then_removes_it() {
    let s = Server::start_with(&["--fake-nodes", "1"]);
    s.ok(&["create", "namespace", "doomed"]);
    s.ok(&["-n", "doomed", "create", "deployment", "d", "--image=busybox", "--replicas=2"]);
    s.ok(&["-n", "doomed", "create", "configmap", "c", "--from-literal=a=b"]);
    s.ok(&["-n", "doomed", "create", "secret", "generic", "s", "--from-literal=a=b"]);
    running(&s, "app=d", 0).len();
    eventually("2 pods in doomed", T, || (pods(&s, &["-n", "doomed"]).len() == 2).then_some(()));
    s.ok(&["delete", "namespace", "doomed", "--timeout=30s"]);
    assert!(s.fails(&["get", "namespace", "doomed"]).contains("NotFound"));
    assert!(s.ok(&["get", "all,cm,secrets", "-n", "doomed", "-o", "name"]).trim().is_empty());
}

#[test]
fn cascading_deletion_foreground_and_orphan() {
    let s = Server::start_with(&["--fake-nodes", "1"]);
    s.ok(&["create", "deployment", "fg", "--image=busybox", "--replicas=2"]);
    running(&s, "app=fg", 2);
    s.ok(&["delete", "deployment", "fg", "--cascade=foreground", "--timeout=30s"]);
    // Foreground: the deployment is gone only after its ReplicaSet and pods.
    assert!(s.fails(&["get", "deployment", "fg"]).contains("NotFound"));
    assert!(pods(&s, &["-l", "app=fg"]).is_empty());

    s.ok(&["create", "deployment", "or", "--image=busybox", "--replicas=2"]);
    running(&s, "app=or", 2);
    s.ok(&["delete", "deployment", "or", "--cascade=orphan"]);
    std::thread::sleep(Duration::from_secs(1));
    let rs = s.get_json(&["rs", "-l", "app=or"]);
    let items = rs["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "the ReplicaSet stays: {rs:#}");
    assert!(items[0]["metadata"].get("ownerReferences").is_none(), "{rs:#}");
    running(&s, "app=or", 2);
}

#[test]
fn cordon_drain_and_unschedulable_pods() {
    let s = Server::start_with(&["--fake-nodes", "2"]);
    s.ok(&["create", "deployment", "d", "--image=busybox", "--replicas=2"]);
    running(&s, "app=d", 2);
    s.ok(&["cordon", "fake-node-0"]);
    let out = s.ok(&["drain", "fake-node-0", "--ignore-daemonsets", "--timeout=30s"]);
    assert!(out.contains("drained"), "{out}");
    let p = running(&s, "app=d", 2);
    assert!(p.iter().all(|p| p["spec"]["nodeName"] == "fake-node-1"), "{p:#?}");
    s.ok(&["uncordon", "fake-node-0"]);

    // A pod no node can hold stays Pending with the reason.
    s.ok(&[
        "run",
        "huge",
        "--image=busybox",
        "--overrides",
        r#"{"spec":{"containers":[{"name":"huge","image":"busybox","resources":{"requests":{"cpu":"1000"}}}]}}"#,
    ]);
    let pod = eventually("PodScheduled=False", T, || {
        let p = s.get_json(&["pod", "huge"]);
        let conds = p["status"]["conditions"].as_array().cloned().unwrap_or_default();
        conds.iter().any(|c| c["type"] == "PodScheduled" && c["status"] == "False").then_some(p)
    });
    let cond = pod["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "PodScheduled").unwrap().clone();
    assert_eq!(cond["reason"], "Unschedulable");
    assert!(cond["message"].as_str().unwrap().contains("0/2 nodes are available: 2 Insufficient cpu."), "{cond}");
    let events = s.ok(&["get", "events", "--field-selector", "reason=FailedScheduling"]);
    assert!(events.contains("FailedScheduling"), "{events}");
}

#[test]
fn every_namespace_gets_a_default_service_account_and_its_name_label() {
    let s = Server::start();
    s.ok(&["create", "namespace", "team"]);
    let ns = s.get_json(&["namespace", "team"]);
    assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "team", "{ns:#}");
    eventually("the default ServiceAccount", T, || s.kubectl(&["get", "serviceaccount", "default", "-n", "team"]).status.success().then_some(()));
    eventually("default in default", T, || s.kubectl(&["get", "serviceaccount", "default"]).status.success().then_some(()));
    // Deleted, it comes back.
    s.ok(&["delete", "serviceaccount", "default", "-n", "team"]);
    eventually("the default ServiceAccount again", T, || {
        s.kubectl(&["get", "serviceaccount", "default", "-n", "team"]).status.success().then_some(())
    });
    // Updates keep the finalizer and the name label (only /finalize changes finalizers).
    s.ok_stdin(&["apply", "--server-side", "-f", "-"], "apiVersion: v1\nkind: Namespace\nmetadata: {name: team, labels: {tier: a}}\nspec: null\n");
    let ns = s.get_json(&["namespace", "team"]);
    assert_eq!(ns["spec"]["finalizers"], serde_json::json!(["kubernetes"]), "{ns:#}");
    assert_eq!((ns["metadata"]["labels"]["kubernetes.io/metadata.name"].as_str(), ns["metadata"]["labels"]["tier"].as_str()), (Some("team"), Some("a")));
}

#[test]
fn services_get_endpoints_and_endpoint_slices_of_ready_pods() {
    let s = Server::start_with(&["--fake-nodes", "2"]);
    s.ok(&["create", "deployment", "web", "--image=nginx", "--replicas=2", "--port=80"]);
    s.ok(&["expose", "deployment", "web", "--port=8080", "--target-port=80"]);
    let ips = |n: usize| {
        eventually(&format!("{n} endpoints"), T, || {
            let ep = s.get_json(&["endpoints", "web"]);
            let addrs = ep["subsets"][0]["addresses"].as_array().cloned().unwrap_or_default();
            (addrs.len() == n).then_some(ep)
        })
    };
    let ep = ips(2);
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], 80, "{ep:#}");
    let pod_ips: std::collections::BTreeSet<String> =
        pods(&s, &["-l", "app=web"]).iter().map(|p| p["status"]["podIP"].as_str().unwrap().to_string()).collect();
    let ep_ips: std::collections::BTreeSet<String> =
        ep["subsets"][0]["addresses"].as_array().unwrap().iter().map(|a| a["ip"].as_str().unwrap().to_string()).collect();
    assert_eq!(pod_ips, ep_ips);
    let slices = s.get_json(&["endpointslices", "-l", "kubernetes.io/service-name=web"]);
    assert_eq!(slices["items"][0]["endpoints"].as_array().unwrap().len(), 2, "{slices:#}");
    let described = s.ok(&["describe", "service", "web"]);
    assert!(described.contains(":80,"), "{described}");
    s.ok(&["scale", "deployment", "web", "--replicas=3"]);
    ips(3);
}

#[test]
fn jobs_complete_index_and_fail_after_their_backoff_limit() {
    let s = Server::start_with(&["--fake-nodes", "2"]);
    s.ok(&["create", "job", "once", "--image=busybox"]);
    s.ok(&["wait", "--for=condition=complete", "job/once", "--timeout=30s"]);
    let job = s.get_json(&["job", "once"]);
    assert_eq!(job["status"]["succeeded"], 1, "{job:#}");
    assert!(job["status"]["completionTime"].is_string());
    let table = s.ok(&["get", "jobs"]);
    assert!(table.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()[..3] == ["once", "Complete", "1/1"]), "{table}");

    let indexed = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: idx}\nspec:\n  completions: 3\n  parallelism: 2\n  completionMode: Indexed\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: busybox}]\n";
    s.ok_stdin(&["apply", "-f", "-"], indexed);
    s.ok(&["wait", "--for=condition=complete", "job/idx", "--timeout=30s"]);
    assert_eq!(s.get_json(&["job", "idx"])["status"]["completedIndexes"], "0,1,2");
    let indexes: std::collections::BTreeSet<String> = pods(&s, &["-l", "job-name=idx"])
        .iter()
        .map(|p| p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(indexes.into_iter().collect::<Vec<_>>(), ["0", "1", "2"]);

    let failing = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: bad}\nspec:\n  backoffLimit: 1\n  template:\n    metadata: {annotations: {rkube.io/fake-exit-code: \"1\"}}\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: busybox}]\n";
    s.ok_stdin(&["apply", "-f", "-"], failing);
    s.ok(&["wait", "--for=condition=failed", "job/bad", "--timeout=30s"]);
    let job = s.get_json(&["job", "bad"]);
    let failed = job["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Failed").cloned().unwrap();
    assert_eq!(failed["reason"], "BackoffLimitExceeded", "{job:#}");
    assert_eq!(job["status"]["failed"], 2, "backoffLimit 1 allows one retry: {job:#}");
}

#[test]
fn a_cronjob_starts_jobs_on_its_schedule() {
    let s = Server::start_with(&["--fake-nodes", "1"]);
    s.ok(&["create", "cronjob", "tick", "--image=busybox", "--schedule=* * * * *"]);
    // In a time zone: the next minute as a clock in Kolkata (UTC+05:30, no
    // daylight saving) shows it; read in UTC the schedule would be hours off.
    // (A boundary under 15 s away could pass before the CronJob exists: then
    // the one after it.)
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let ahead = if now.rem_euclid(60) > 45 { 120 } else { 60 };
    let next = now - now.rem_euclid(60) + ahead + 5 * 3600 + 1800;
    let (hour, minute) = (next.rem_euclid(86400) / 3600, next.rem_euclid(3600) / 60);
    let zoned = format!(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: kolkata}}\nspec:\n  schedule: \"{minute} {hour} * * *\"\n  timeZone: Asia/Kolkata\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{{name: c, image: busybox}}]\n"
    );
    s.ok_stdin(&["apply", "-f", "-"], &zoned);
    let bad = s.kubectl_stdin(&["apply", "-f", "-"], &zoned.replace("kolkata", "nowhere").replace("Asia/Kolkata", "Mars/Olympus"));
    let err = common::stderr(&bad);
    assert!(err.contains(r#"spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus"#), "{err}");
    // The next minute boundary is at most 60 s away.
    let job = eventually("a Job of the CronJob", Duration::from_secs(75), || {
        let jobs = s.get_json(&["jobs"]);
        jobs["items"].as_array().and_then(|a| a.iter().find(|j| j["metadata"]["name"].as_str().unwrap_or("").starts_with("tick-")).cloned())
    });
    eventually("the Kolkata job", Duration::from_secs(90), || {
        let jobs = s.get_json(&["jobs"]);
        jobs["items"].as_array().and_then(|a| a.iter().find(|j| j["metadata"]["name"].as_str().unwrap_or("").starts_with("kolkata-")).cloned())
    });

    let name = job["metadata"]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("tick-"), "{job:#}");
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    s.ok(&["wait", "--for=condition=complete", &format!("job/{name}"), "--timeout=30s"]);
    let cj = eventually("lastScheduleTime", T, || {
        let c = s.get_json(&["cronjob", "tick"]);
        c["status"]["lastScheduleTime"].is_string().then_some(c)
    });
    assert!(cj["status"]["lastScheduleTime"].as_str().unwrap().ends_with(":00Z"), "{cj:#}");
    // A Job made from the CronJob by hand runs too.
    s.ok(&["create", "job", "manual", "--from=cronjob/tick"]);
    s.ok(&["wait", "--for=condition=complete", "job/manual", "--timeout=30s"]);
}

#[test]
fn a_daemonset_runs_one_pod_per_eligible_node_and_rolls() {
    let s = Server::start_with(&["--fake-nodes", "3"]);
    s.ok(&["taint", "node", "fake-node-2", "dedicated=db:NoSchedule"]);
    let ds = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n    spec:\n      containers: [{name: a, image: busybox:1}]\n";
    s.ok_stdin(&["apply", "-f", "-"], ds);
    s.ok(&["rollout", "status", "daemonset/agent", "--timeout=30s"]);
    let p = running(&s, "app=agent", 2);
    let mut nodes: Vec<&str> = p.iter().map(|p| p["spec"]["nodeName"].as_str().unwrap()).collect();
    nodes.sort();
    assert_eq!(nodes, ["fake-node-0", "fake-node-1"], "the tainted node is skipped");
    s.ok(&["set", "image", "daemonset/agent", "a=busybox:2"]);
    s.ok(&["rollout", "status", "daemonset/agent", "--timeout=30s"]);
    let p = running(&s, "app=agent", 2);
    assert!(p.iter().all(|p| p["spec"]["containers"][0]["image"] == "busybox:2"), "{p:#?}");
    let status = s.get_json(&["daemonset", "agent"])["status"].clone();
    assert_eq!((status["desiredNumberScheduled"].as_i64(), status["numberReady"].as_i64()), (Some(2), Some(2)), "{status:#}");
}

#[test]
fn a_statefulset_makes_ordered_pods_with_claims_and_rolls() {
    let s = Server::start_with(&["--fake-nodes", "2"]);
    let sts = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  serviceName: db\n  replicas: 3\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec:\n      containers: [{name: c, image: busybox:1}]\n  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec:\n      accessModes: [ReadWriteOnce]\n      resources: {requests: {storage: 1Gi}}\n";
    s.ok_stdin(&["apply", "-f", "-"], sts);
    s.ok(&["rollout", "status", "statefulset/db", "--timeout=30s"]);
    let p = running(&s, "app=db", 3);
    let names: Vec<&str> = p.iter().map(|p| p["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["db-0", "db-1", "db-2"]);
    assert_eq!(p[1]["spec"]["hostname"], "db-1");
    assert_eq!(p[1]["spec"]["subdomain"], "db");
    let claims: Vec<String> = s.ok(&["get", "pvc", "-o", "name"]).lines().map(str::to_string).collect();
    assert_eq!(claims, ["persistentvolumeclaim/data-db-0", "persistentvolumeclaim/data-db-1", "persistentvolumeclaim/data-db-2"]);
    // Ordered: each pod was created after the one before it was ready.
    let created: Vec<&str> = p.iter().map(|p| p["metadata"]["creationTimestamp"].as_str().unwrap()).collect();
    assert!(created.windows(2).all(|w| w[0] <= w[1]), "{created:?}");

    s.ok(&["set", "image", "statefulset/db", "c=busybox:2"]);
    s.ok(&["rollout", "status", "statefulset/db", "--timeout=60s"]);
    let p = running(&s, "app=db", 3);
    assert!(p.iter().all(|p| p["spec"]["containers"][0]["image"] == "busybox:2"), "{p:#?}");
    s.ok(&["scale", "statefulset", "db", "--replicas=1"]);
    let p = running(&s, "app=db", 1);
    assert_eq!(p[0]["metadata"]["name"], "db-0", "scaled down from the highest ordinal");
}

#[test]
fn a_node_that_stops_renewing_its_lease_becomes_unreachable() {
    let s = Server::start_with(&["--fake-nodes", "1"]);
    // A node registered by hand never renews a lease.
    s.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Node\nmetadata: {name: silent}\nstatus:\n  conditions: [{type: Ready, status: \"True\", reason: KubeletReady}]\n",
    );
    s.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: stranded}\nspec:\n  nodeName: silent\n  containers: [{name: c, image: busybox}]\n",
    );
    let node = eventually("the unreachable taint", Duration::from_secs(90), || {
        let n = s.get_json(&["node", "silent"]);
        let taints = n["spec"]["taints"].as_array().cloned().unwrap_or_default();
        taints.iter().any(|t| t["key"] == "node.kubernetes.io/unreachable" && t["effect"] == "NoExecute").then_some(n)
    });
    let ready = node["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").cloned().unwrap();
    assert_eq!(ready["status"], "Unknown", "{node:#}");
    assert_eq!(ready["reason"], "NodeStatusUnknown");
    // Evicted gracefully: it stays Terminating until its node's agent (or
    // the node's removal) ends it, as upstream.
    eventually("the stranded pod evicted", T, || s.get_json(&["pod", "stranded"])["metadata"]["deletionTimestamp"].is_string().then_some(()));
    s.ok(&["delete", "node", "silent"]);
    eventually("the pod of a deleted node collected", T, || s.fails(&["get", "pod", "stranded"]).contains("NotFound").then_some(()));
    // The fake node renews its lease and stays untainted.
    let fake = s.get_json(&["node", "fake-node-0"]);
    assert!(fake["spec"].get("taints").is_none_or(|t| t.as_array().is_some_and(|a| a.is_empty())), "{fake:#}");
}

#[test]
fn when_most_nodes_go_silent_at_once_their_pods_are_not_evicted() {
    let s = Server::start_with(&["--fake-nodes", "1"]);
    // Three of four nodes never renew a lease: more than upstream's 55%.
    for n in ["quiet-a", "quiet-b", "quiet-c"] {
        s.ok_stdin(
            &["create", "-f", "-"],
            &format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {n}}}\nstatus:\n  conditions: [{{type: Ready, status: \"True\", reason: KubeletReady}}]\n"),
        );
    }
    s.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: kept}\nspec:\n  nodeName: quiet-a\n  containers: [{name: c, image: busybox}]\n",
    );
    let effects = |n: &Value| -> Vec<String> {
        n["spec"]["taints"].as_array().into_iter().flatten().filter(|t| t["key"] == "node.kubernetes.io/unreachable").map(|t| t["effect"].as_str().unwrap().to_string()).collect()
    };
    for n in ["quiet-a", "quiet-b", "quiet-c"] {
        let node = eventually("kept from new pods", Duration::from_secs(90), || {
            let node = s.get_json(&["node", n]);
            (!effects(&node).is_empty()).then_some(node)
        });
        let ready = node["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").cloned().unwrap();
        assert_eq!(ready["status"], "Unknown", "{node:#}");
    }
    // Past the next looks (every 30 s for a silent node), nothing is evicted.
    std::thread::sleep(Duration::from_secs(35));
    for n in ["quiet-a", "quiet-b", "quiet-c"] {
        assert_eq!(effects(&s.get_json(&["node", n])), ["NoSchedule"]);
    }
    assert!(s.get_json(&["pod", "kept"])["metadata"]["deletionTimestamp"].is_null());
    // Once most nodes are back (two of them deleted: one silent of two), evictions resume.
    s.ok(&["delete", "node", "quiet-b", "quiet-c"]);
    eventually("the NoExecute taint", Duration::from_secs(60), || effects(&s.get_json(&["node", "quiet-a"])).contains(&"NoExecute".to_string()).then_some(()));
    eventually("the pod evicted", T, || s.get_json(&["pod", "kept"])["metadata"]["deletionTimestamp"].is_string().then_some(()));
}

#[test]
fn disruption_budgets_gate_evictions_and_drain_waits_for_them() {
    let s = Server::start_with(&["--fake-nodes", "2"]);
    s.ok(&["create", "deployment", "web", "--image=busybox", "--replicas=3"]);
    let pods = running(&s, "app=web", 3);
    s.ok(&["create", "poddisruptionbudget", "web", "--selector=app=web", "--min-available=3"]);
    let status = |name: &str, want: (i64, i64, i64, i64)| {
        eventually(&format!("pdb {name} status {want:?}"), T, || {
            let st = s.get_json(&["pdb", name])["status"].clone();
            let n = |k: &str| st[k].as_i64().unwrap_or(-1);
            ((n("currentHealthy"), n("desiredHealthy"), n("expectedPods"), n("disruptionsAllowed")) == want).then_some(st)
        })
    };
    let st = status("web", (3, 3, 3, 0));
    assert_eq!(st["conditions"][0]["type"], "DisruptionAllowed");
    assert_eq!((st["conditions"][0]["status"].as_str(), st["conditions"][0]["reason"].as_str()), (Some("False"), Some("InsufficientPods")));

    let evict = |pod: &str| {
        let body = format!(r#"{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{pod}","namespace":"default"}}}}"#);
        let f = s.write_file(&format!("evict-{pod}.json"), &body);
        s.kubectl(&["create", "--raw", &format!("/api/v1/namespaces/default/pods/{pod}/eviction"), "-f", &f])
    };
    let victim = pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    let out = evict(&victim);
    assert!(!out.status.success());
    let err = common::stderr(&out);
    assert!(err.contains("TooManyRequests") && err.contains("Cannot evict pod as it would violate the pod's disruption budget."), "{err}");
    assert!(s.get_json(&["pod", &victim])["metadata"].get("deletionTimestamp").is_none());

    // One disruption allowed: the eviction spends it; the deployment
    // replaces the pod and the budget recovers.
    s.ok(&["patch", "pdb", "web", "-p", r#"{"spec":{"minAvailable":2}}"#]);
    status("web", (3, 2, 3, 1));
    assert!(evict(&victim).status.success());
    running(&s, "app=web", 3);
    status("web", (3, 2, 3, 1));

    // Pods nothing replaces: the first eviction spends the one allowed
    // disruption, the second is refused.
    for name in ["solo-a", "solo-b", "solo-c"] {
        s.ok(&["run", name, "--image=busybox", "--labels=app=solo"]);
    }
    running(&s, "app=solo", 3);
    s.ok(&["create", "pdb", "solo", "--selector=app=solo", "--min-available=2"]);
    status("solo", (3, 2, 3, 1));
    assert!(evict("solo-a").status.success());
    let err = common::stderr(&evict("solo-b"));
    assert!(err.contains("Cannot evict pod as it would violate the pod's disruption budget."), "{err}");
    status("solo", (2, 2, 2, 0));
    s.ok(&["delete", "pod", "solo-b", "solo-c", "--grace-period=0", "--force"]);

    // maxUnavailable as a percentage counts the controller's replicas.
    s.ok(&["create", "deployment", "api", "--image=busybox", "--replicas=4"]);
    running(&s, "app=api", 4);
    s.ok(&["create", "pdb", "api", "--selector=app=api", "--max-unavailable=50%"]);
    status("api", (4, 2, 4, 2));

    // drain evicts through the budget: it waits and retries, and finishes
    // once replacements are ready elsewhere.
    s.ok(&["cordon", "fake-node-0"]);
    let out = s.ok(&["drain", "fake-node-0", "--ignore-daemonsets", "--timeout=90s"]);
    assert!(out.contains("drained"), "{out}");
    let web = running(&s, "app=web", 3);
    assert!(web.iter().all(|p| p["spec"]["nodeName"] == "fake-node-1"), "{web:#?}");
}

#[test]
fn fake_nodes_can_be_added_at_run_time_by_creating_labelled_nodes() {
    let s = Server::start();
    assert!(s.ok(&["get", "nodes", "-o", "name"]).trim().is_empty());
    s.ok_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: Node\nmetadata:\n  name: extra\n  labels: {rkube.io/fake-node: \"true\", zone: z1}\n");
    let n = eventually("the added node Ready", T, || {
        let n = s.get_json(&["node", "extra"]);
        let ready = n["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True");
        ready.then_some(n)
    });
    assert_eq!(n["status"]["allocatable"]["pods"], "110", "{n:#}");
    assert_eq!(n["metadata"]["labels"]["zone"], "z1");
    eventually("its lease", T, || s.kubectl(&["-n", "kube-node-lease", "get", "lease", "extra"]).status.success().then_some(()));
    s.ok(&["create", "deployment", "d", "--image=busybox", "--replicas=2"]);
    let p = running(&s, "app=d", 2);
    assert!(p.iter().all(|p| p["spec"]["nodeName"] == "extra" && p["status"]["hostIP"] == n["status"]["addresses"][0]["address"]), "{p:#?}");
    // An unlabelled node is left alone: nobody makes it Ready.
    s.ok_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: Node\nmetadata: {name: plain}\n");
    std::thread::sleep(Duration::from_secs(1));
    assert!(s.get_json(&["node", "plain"])["status"].get("conditions").is_none());
}

#[test]
fn resource_quotas_count_usage_and_refuse_what_does_not_fit() {
    let s = Server::start_with(&["--fake-nodes", "1"]);
    s.ok(&["create", "namespace", "q"]);
    s.ok(&["-n", "q", "create", "quota", "compute", "--hard=pods=2,requests.cpu=1,limits.memory=1Gi,configmaps=3,count/deployments.apps=1"]);
    let used = |want: &[(&str, &str)]| {
        eventually(&format!("quota used {want:?}"), T, || {
            let q = s.get_json(&["-n", "q", "quota", "compute"]);
            want.iter().all(|(k, v)| q["status"]["used"][k] == *v).then_some(q)
        })
    };
    // The namespace's kube-root-ca.crt is one configmap already.
    let q = used(&[("pods", "0"), ("requests.cpu", "0"), ("configmaps", "1"), ("count/deployments.apps", "0")]);
    assert_eq!(q["status"]["hard"]["limits.memory"], "1Gi");

    let pod = |name: &str, cpu: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: q}}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources: {{requests: {{cpu: {cpu}}}, limits: {{memory: 512Mi}}}}\n"
        )
    };
    let err = s.fails(&["-n", "q", "run", "bare", "--image=busybox"]);
    assert!(err.contains(r#"pods "bare" is forbidden: failed quota: compute: must specify limits.memory for: bare; requests.cpu for: bare"#), "{err}");
    s.ok_stdin(&["apply", "-f", "-"], &pod("one", "600m"));
    used(&[("pods", "1"), ("requests.cpu", "600m"), ("limits.memory", "512Mi")]);
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &pod("two", "600m"));
    let err = common::stderr(&out);
    assert!(
        err.contains(r#"pods "two" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1"#),
        "{err}"
    );
    assert!(s.fails(&["-n", "q", "get", "pod", "two"]).contains("NotFound"));

    s.ok(&["-n", "q", "create", "deployment", "d1", "--image=busybox", "--replicas=0"]);
    let err = s.fails(&["-n", "q", "create", "deployment", "d2", "--image=busybox", "--replicas=0"]);
    assert!(err.contains("exceeded quota: compute, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1"), "{err}");

    // Deleting gives the usage back.
    s.ok(&["-n", "q", "delete", "pod", "one", "--grace-period=0", "--force"]);
    used(&[("pods", "0"), ("requests.cpu", "0"), ("limits.memory", "0")]);
    s.ok_stdin(&["apply", "-f", "-"], &pod("two", "600m"));
    let out = s.ok(&["-n", "q", "describe", "quota", "compute"]);
    assert!(out.contains("requests.cpu") && out.contains("600m"), "{out}");
}

#[test]
fn pods_get_their_priority_from_their_class() {
    let s = Server::start_with(&["--fake-nodes", "1"]);
    assert_eq!(s.ok(&["get", "priorityclass", "system-node-critical", "-o", "jsonpath={.value}"]), "2000001000");
    assert_eq!(s.ok(&["get", "priorityclass", "system-cluster-critical", "-o", "jsonpath={.value}"]), "2000000000");
    s.ok(&["create", "priorityclass", "high", "--value=1000", "--preemption-policy=Never"]);
    let run = |name: &str, overrides: &str| s.kubectl(&["run", name, "--image=busybox", "--overrides", overrides]);
    assert!(run("important", r#"{"spec":{"priorityClassName":"high"}}"#).status.success());
    let spec = s.get_json(&["pod", "important"])["spec"].clone();
    assert_eq!((spec["priority"].as_i64(), spec["preemptionPolicy"].as_str()), (Some(1000), Some("Never")), "{spec:#}");
    assert!(run("plain", "{}").status.success());
    assert_eq!(s.get_json(&["pod", "plain"])["spec"]["priority"], 0);
    let err = common::stderr(&run("lost", r#"{"spec":{"priorityClassName":"nope"}}"#));
    assert!(err.contains(r#"pods "lost" is forbidden: no PriorityClass with name nope was found"#), "{err}");
    let err = common::stderr(&run("liar", r#"{"spec":{"priorityClassName":"high","priority":5}}"#));
    assert!(err.contains("the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 1000"), "{err}");
    // A global default applies to pods that name no class.
    s.ok(&["create", "priorityclass", "everyday", "--value=7", "--global-default"]);
    assert!(run("later", "{}").status.success());
    let spec = s.get_json(&["pod", "later"])["spec"].clone();
    assert_eq!((spec["priority"].as_i64(), spec["priorityClassName"].as_str()), (Some(7), Some("everyday")), "{spec:#}");
}
