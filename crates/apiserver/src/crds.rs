//! CustomResourceDefinitions as live APIs (upstream's apiextensions
//! controllers, inside the API server as upstream has them). Every change to
//! a CRD rebuilds the registry (built-in resources plus the resources of
//! every CRD whose names are accepted), so discovery, OpenAPI and the one
//! generic handler serve it at once; the CRD's status then says so
//! (`NamesAccepted`, `Established`, `acceptedNames`, `storedVersions`). A
//! deleted CRD first loses its objects (`Terminating`), then its cleanup
//! finalizer, then itself.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use schema::ResourceDef;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::ApiServer;
use crate::discovery::Registry;
use crate::handler::{CRDS, system_delete, system_update};

/// Starts the controller. Returns once the registry serves every CRD
/// already stored, so a restarted server serves them from its first request.
pub async fn start(srv: ApiServer) {
    let cleaning = Arc::new(Mutex::new(HashSet::new()));
    sync(&srv, &cleaning).await;
    tokio::spawn(run(srv, cleaning));
}

async fn run(srv: ApiServer, cleaning: Arc<Mutex<HashSet<String>>>) {
    let cache = srv.0.cache.clone();
    let rc = cache.resource(CRDS);
    let prefix = format!("/registry/{CRDS}/");
    loop {
        let Ok(sub) = rc.subscribe(&prefix, None, cache.revision()) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut rx = sub.rx;
        sync(&srv, &cleaning).await;
        loop {
            match rx.recv().await {
                Ok(_) => {
                    // Coalesce a burst of changes into one pass.
                    while rx.try_recv().is_ok() {}
                    sync(&srv, &cleaning).await;
                }
                Err(RecvError::Lagged(_)) => break,
                Err(RecvError::Closed) => return,
            }
        }
    }
}

fn crd_def(srv: &ApiServer) -> Option<Arc<ResourceDef>> {
    srv.registry().get("apiextensions.k8s.io", "v1", "customresourcedefinitions").cloned()
}

fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", t.year(), t.month() as u8, t.day(), t.hour(), t.minute(), t.second())
}

/// The names a CRD asks for, with upstream's defaults filled in.
fn requested_names(crd: &Value) -> Value {
    let mut names = crd.pointer("/spec/names").cloned().unwrap_or_else(|| json!({}));
    let kind = names.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
    if names.get("singular").and_then(Value::as_str).is_none_or(str::is_empty) {
        names["singular"] = json!(kind.to_lowercase());
    }
    if names.get("listKind").and_then(Value::as_str).is_none_or(str::is_empty) {
        names["listKind"] = json!(format!("{kind}List"));
    }
    names
}

/// Every name a CRD claims in its group: plural, singular, short names, kinds.
fn claimed(names: &Value) -> (Vec<String>, Vec<String>) {
    let s = |k: &str| names.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut resources = vec![s("plural"), s("singular")];
    resources.extend(names.get("shortNames").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_string));
    (resources.into_iter().filter(|x| !x.is_empty()).collect(), vec![s("kind"), s("listKind")])
}

/// One condition, keeping its transition time while its status stays.
fn condition(old: &[Value], type_: &str, status: bool, reason: &str, message: &str) -> Value {
    let status = if status { "True" } else { "False" };
    let prev = old.iter().find(|c| c["type"] == type_);
    let since = match prev {
        Some(p) if p["status"] == status => p["lastTransitionTime"].clone(),
        _ => json!(now()),
    };
    json!({"type": type_, "status": status, "lastTransitionTime": since, "reason": reason, "message": message})
}

/// One pass: accept names (oldest CRD first), serve the accepted CRDs,
/// write any status that changed, and clean up deleted CRDs.
async fn sync(srv: &ApiServer, cleaning: &Arc<Mutex<HashSet<String>>>) {
    let cache = srv.0.cache.clone();
    let (objs, _) = cache.resource(CRDS).list(&format!("/registry/{CRDS}/"), cache.revision());
    let mut crds: Vec<Value> = objs.iter().map(|o| o.value()).collect();
    // Names already accepted keep their owner: established CRDs go first,
    // then the rest oldest first.
    let established = |v: &Value| {
        v.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Established" && c["status"] == "True"))
    };
    crds.sort_by_cached_key(|v| {
        let ts = v.pointer("/metadata/creationTimestamp").and_then(Value::as_str).unwrap_or("").to_string();
        (!established(v), ts, v["metadata"]["name"].as_str().unwrap_or("").to_string())
    });
    let mut taken: HashSet<(String, String)> = HashSet::new();
    let mut custom = Vec::new();
    let mut statuses = Vec::new();
    for crd in &crds {
        let group = crd.pointer("/spec/group").and_then(Value::as_str).unwrap_or("").to_string();
        let names = requested_names(crd);
        let (resources, kinds) = claimed(&names);
        let conflict = resources.iter().chain(kinds.iter()).find(|n| taken.contains(&(group.clone(), (*n).clone()))).cloned();
        let old_conds = crd.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut status = crd.get("status").cloned().unwrap_or_else(|| json!({}));
        let mut conds = Vec::new();
        match &conflict {
            None => {
                for n in resources.iter().chain(kinds.iter()) {
                    taken.insert((group.clone(), n.clone()));
                }
                custom.extend(schema::crd::resource_defs(crd));
                status["acceptedNames"] = names.clone();
                conds.push(condition(&old_conds, "NamesAccepted", true, "NoConflicts", "no conflicts found"));
                conds.push(condition(&old_conds, "Established", true, "InitialNamesAccepted", "the initial names have been accepted"));
            }
            Some(n) => {
                status["acceptedNames"] = status.get("acceptedNames").cloned().unwrap_or_else(|| json!({"plural": "", "kind": ""}));
                conds.push(condition(&old_conds, "NamesAccepted", false, "NameConflict", &format!("{n:?} is already in use")));
                conds.push(condition(&old_conds, "Established", false, "NotAccepted", "not all names are accepted"));
            }
        }
        let deleting = crd.pointer("/metadata/deletionTimestamp").is_some();
        if deleting {
            conds.push(condition(&old_conds, "Terminating", true, "InstanceDeletionInProgress", "CustomResource deletion is in progress"));
        }
        status["conditions"] = Value::Array(conds);
        let mut stored: Vec<String> =
            status.get("storedVersions").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect();
        if let Some(v) = schema::crd::storage_version(crd)
            && !stored.contains(&v)
        {
            stored.push(v);
        }
        status["storedVersions"] = json!(stored);
        let name = crd["metadata"]["name"].as_str().unwrap_or("").to_string();
        if crd.get("status") != Some(&status) {
            statuses.push((name.clone(), status));
        }
        if deleting && cleaning.lock().unwrap().insert(name.clone()) {
            tokio::spawn(cleanup(srv.clone(), crd.clone(), cleaning.clone()));
        }
    }
    let reg = Registry::with_custom(custom);
    *srv.0.registry.write().unwrap() = Arc::new(reg);
    let Some(def) = crd_def(srv) else { return };
    for (name, status) in statuses {
        let r = system_update(srv, def.clone(), &name, "status", |cur| {
            let mut new = cur.clone();
            new["status"] = status.clone();
            Ok(new)
        })
        .await;
        if let Err(e) = r
            && e.code != 404
        {
            tracing::warn!(crd = %name, "updating the status of a CustomResourceDefinition: {}", e.message);
        }
    }
}

/// Deletes every object of a deleted CRD, waiting for those with finalizers,
/// then releases the CRD's cleanup finalizer.
async fn cleanup(srv: ApiServer, crd: Value, cleaning: Arc<Mutex<HashSet<String>>>) {
    let name = crd["metadata"]["name"].as_str().unwrap_or("").to_string();
    let defs = schema::crd::resource_defs(&crd);
    let storage = name.clone();
    let prefix = format!("/registry/{storage}/");
    let cache = srv.0.cache.clone();
    let rc = cache.resource(&storage);
    if let Some(def) = defs.first().cloned().map(Arc::new) {
        loop {
            // Subscribe to a cache that has seen every deletion so far.
            if let Ok(rev) = srv.0.store.current_revision().await {
                cache.wait_for(rev, Duration::from_secs(3)).await;
            }
            let Ok(mut sub) = rc.subscribe(&prefix, None, cache.revision()) else { break };
            if sub.initial.is_empty() {
                break;
            }
            for o in &sub.initial {
                if let Err(e) = system_delete(&srv, def.clone(), &o.namespace, &o.name).await {
                    tracing::warn!(crd = %name, object = %o.name, "deleting a custom object: {}", e.message);
                }
            }
            // Objects with finalizers go later: wait for the next change.
            if let Ok(Err(RecvError::Closed)) = tokio::time::timeout(Duration::from_secs(30), sub.rx.recv()).await {
                break;
            }
        }
    }
    if let Some(def) = crd_def(&srv) {
        let r = system_update(&srv, def, &name, "", |cur| {
            let mut new = cur.clone();
            let fins: Vec<Value> = cur
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|f| f.as_str() != Some(schema::hooks::CRD_CLEANUP))
                .cloned()
                .collect();
            new["metadata"]["finalizers"] = json!(fins);
            Ok(new)
        })
        .await;
        if let Err(e) = r
            && e.code != 404
        {
            tracing::warn!(crd = %name, "releasing the cleanup finalizer: {}", e.message);
        }
    }
    cleaning.lock().unwrap().remove(&name);
}
