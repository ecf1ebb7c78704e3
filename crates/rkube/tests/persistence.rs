//! State survives restarts: graceful ones, SIGKILL, and SIGKILL in the middle
//! of a write load (every acknowledged write must be there afterwards).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Server, str_at};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use serde_json::Value;

/// (kind, name, namespace flag) of the objects the persistence test checks.
const OBJECTS: [[&str; 3]; 5] = [
    ["namespace", "keep-ns", ""],
    ["configmap", "keep-cm", "default"],
    ["secret", "keep-secret", "default"],
    ["deployment", "keep-deploy", "default"],
    ["configmap", "in-ns", "keep-ns"],
];

fn snapshot(s: &Server) -> Vec<Value> {
    OBJECTS
        .iter()
        .map(|[kind, name, ns]| {
            let mut args = vec![*kind, *name];
            if !ns.is_empty() {
                args.extend(["-n", ns]);
            }
            s.get_json(&args)
        })
        .collect()
}

fn assert_same(before: &[Value], after: &[Value]) {
    for (b, a) in before.iter().zip(after) {
        let what = str_at(b, "/metadata/name");
        for field in ["/metadata/uid", "/metadata/resourceVersion", "/metadata/creationTimestamp"] {
            assert_eq!(str_at(a, field), str_at(b, field), "{field} of {what} changed across the restart");
        }
        assert_eq!(a.get("data"), b.get("data"), "data of {what}");
        assert_eq!(a.get("spec"), b.get("spec"), "spec of {what}");
    }
}

#[test]
fn objects_survive_restarts_with_same_uid_and_resource_version() {
    let mut s = Server::start();
    s.ok(&["create", "namespace", "keep-ns"]);
    s.ok(&["create", "configmap", "keep-cm", "--from-literal=a=1"]);
    s.ok(&["create", "secret", "generic", "keep-secret", "--from-literal=p=q"]);
    s.ok(&["create", "deployment", "keep-deploy", "--image=nginx:1.27"]);
    s.ok(&["create", "configmap", "in-ns", "-n", "keep-ns", "--from-literal=b=2"]);
    s.ok(&["label", "configmap", "keep-cm", "touched=yes"]);
    let before = snapshot(&s);
    let ca = std::fs::read(s.data_dir().join("ca.crt")).expect("reading ca.crt");
    let kubeconfig = std::fs::read(&s.kubeconfig).unwrap();

    s.stop_gracefully();
    s.restart();
    assert_same(&before, &snapshot(&s));

    s.kill();
    s.restart();
    assert_same(&before, &snapshot(&s));
    // The same certificates and kubeconfig are reused, so old clients keep working.
    assert_eq!(std::fs::read(s.data_dir().join("ca.crt")).unwrap(), ca, "the CA was regenerated");
    assert_eq!(std::fs::read(&s.kubeconfig).unwrap(), kubeconfig, "the kubeconfig was rewritten");

    // Revisions continue after a restart instead of starting over.
    let max_before = before.iter().map(|v| str_at(v, "/metadata/resourceVersion").parse::<u64>().unwrap()).max().unwrap();
    s.ok(&["create", "configmap", "after-restart", "--from-literal=c=3"]);
    let rv: u64 = s.ok(&["get", "configmap", "after-restart", "-o", "jsonpath={.metadata.resourceVersion}"]).parse().unwrap();
    assert!(rv > max_before, "resourceVersion {rv} after restart is not above {max_before}");
}

fn configmap(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta { name: Some(name.to_string()), ..Default::default() },
        data: Some(BTreeMap::from([("name".to_string(), name.to_string())])),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_survive_sigkill() {
    const WRITERS: usize = 4;
    const ACKED_BEFORE_KILL: usize = 200;
    let mut s = tokio::task::block_in_place(Server::start);
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (api, acked, stop) = (api.clone(), acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut failures = 0;
            for i in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let name = format!("load-{w}-{i}");
                match api.create(&PostParams::default(), &configmap(&name)).await {
                    Ok(_) => acked.lock().unwrap().push(name),
                    // Failures are expected once the server is killed; the
                    // cap only stops a writer spinning if something else breaks.
                    Err(_) => {
                        failures += 1;
                        if failures > 1000 {
                            break;
                        }
                    }
                }
            }
        }));
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < ACKED_BEFORE_KILL {
        assert!(tokio::time::Instant::now() < deadline, "only {} creates acknowledged in 60 s", acked.lock().unwrap().len());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // SIGKILL while the writers still have requests in flight.
    s.kill();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= ACKED_BEFORE_KILL);

    tokio::task::block_in_place(|| s.restart());
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let mut missing = Vec::new();
    for name in &acked {
        match api.get(name).await {
            Ok(cm) => assert_eq!(cm.data.unwrap_or_default().get("name"), Some(name), "content of {name}"),
            Err(e) => missing.push(format!("{name}: {e}")),
        }
    }
    assert!(missing.is_empty(), "{} of {} acknowledged creates lost after SIGKILL: {missing:?}", missing.len(), acked.len());
}
