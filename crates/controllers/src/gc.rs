//! The garbage collector (upstream's GarbageCollector): follows the metadata
//! of every resource type, keeps the graph of owner references, and
//! - deletes an object whose owners are all gone (propagation `Background`:
//!   the owner went first),
//! - for an owner deleted with propagation `Foreground` (finalizer
//!   `foregroundDeletion`), deletes its dependents first and releases the
//!   owner once no dependent that blocks owner deletion is left,
//! - for an owner deleted with propagation `Orphan` (finalizer `orphan`),
//!   removes its references from the dependents, then releases the owner.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ObjectMeta, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, verbs};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use tokio::sync::mpsc;

const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";

/// What the graph knows of one object.
#[derive(Clone)]
struct Node {
    /// Shared by every object of the resource.
    ar: Arc<ApiResource>,
    meta: ObjectMeta,
}

impl Node {
    fn owners(&self) -> &[OwnerReference] {
        self.meta.owner_references.as_deref().unwrap_or(&[])
    }

    fn has_finalizer(&self, f: &str) -> bool {
        self.meta.finalizers.iter().flatten().any(|x| x == f)
    }

    fn api(&self, client: &Client) -> Api<DynamicObject> {
        match &self.meta.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &*self.ar),
            None => Api::all_with(client.clone(), &*self.ar),
        }
    }
}

enum Change {
    Applied(Arc<ApiResource>, ObjectMeta),
    Deleted(ObjectMeta),
    /// An owner a dependent names could not be found; verify and act.
    Verify(String),
}

pub async fn run(client: Client) {
    let discovery = loop {
        match Discovery::new(client.clone()).run().await {
            Ok(d) => break d,
            Err(e) => {
                tracing::warn!("garbage collector discovery: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if !caps.supports_operation(verbs::WATCH) || !caps.supports_operation(verbs::LIST) || ar.plural == "events" {
                continue;
            }
            let (client, tx, ar) = (client.clone(), tx.clone(), Arc::new(ar));
            tokio::spawn(async move {
                let api: Api<kube::core::PartialObjectMeta<DynamicObject>> = Api::all_with(client, &*ar);
                let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
                while let Some(ev) = stream.next().await {
                    let change = match ev {
                        Ok(Event::Apply(o) | Event::InitApply(o)) => Change::Applied(ar.clone(), slim(o.metadata)),
                        Ok(Event::Delete(o)) => Change::Deleted(o.metadata),
                        Ok(_) => continue,
                        Err(e) => {
                            tracing::debug!(resource = %ar.plural, "garbage collector watch: {e}");
                            continue;
                        }
                    };
                    if tx.send(change).is_err() {
                        return;
                    }
                }
            });
        }
    }
    let mut gc = Graph { client, discovery, nodes: HashMap::new(), dependents: HashMap::new(), tx };
    while let Some(change) = rx.recv().await {
        gc.handle(change).await;
    }
}

/// What the graph keeps of an object's metadata: identity, owners,
/// finalizers and deletion state (field ownership, labels and annotations
/// would multiply its memory for nothing).
fn slim(mut meta: ObjectMeta) -> ObjectMeta {
    meta.managed_fields = None;
    meta.annotations = None;
    meta.labels = None;
    meta
}

struct Graph {
    client: Client,
    discovery: Discovery,
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
    tx: mpsc::UnboundedSender<Change>,
}

impl Graph {
    async fn handle(&mut self, change: Change) {
        match change {
            Change::Applied(ar, meta) => {
                let uid = meta.uid.clone().unwrap_or_default();
                let node = Node { ar, meta };
                for o in node.owners() {
                    self.dependents.entry(o.uid.clone()).or_default().insert(uid.clone());
                    if !self.nodes.contains_key(&o.uid) {
                        // The owner may simply not have been seen yet: look again shortly.
                        let tx = self.tx.clone();
                        let dep = uid.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            let _ = tx.send(Change::Verify(dep));
                        });
                    }
                }
                self.nodes.insert(uid.clone(), node.clone());
                if node.meta.deletion_timestamp.is_some() {
                    if node.has_finalizer(FOREGROUND) {
                        self.foreground(&uid).await;
                    }
                    if node.has_finalizer(ORPHAN) {
                        self.orphan(&uid).await;
                    }
                }
                self.owners_changed(&node).await;
            }
            Change::Deleted(meta) => {
                let uid = meta.uid.clone().unwrap_or_default();
                let Some(node) = self.nodes.remove(&uid) else { return };
                for dep in self.dependents.remove(&uid).unwrap_or_default() {
                    self.check_dependent(&dep).await;
                }
                for o in node.owners() {
                    if let Some(d) = self.dependents.get_mut(&o.uid) {
                        d.remove(&uid);
                    }
                }
                self.owners_changed(&node).await;
            }
            Change::Verify(dep) => self.check_dependent(&dep).await,
        }
    }

    /// A dependent changed or went: owners waiting in foreground may be done.
    async fn owners_changed(&mut self, node: &Node) {
        for o in node.owners() {
            if self.nodes.get(&o.uid).is_some_and(|n| n.meta.deletion_timestamp.is_some() && n.has_finalizer(FOREGROUND)) {
                self.foreground(&o.uid.clone()).await;
            }
        }
    }

    /// Whether `owner` still exists, asking the API server when the graph has not seen it.
    async fn owner_exists(&self, owner: &OwnerReference, namespace: Option<&str>) -> bool {
        if self.nodes.contains_key(&owner.uid) {
            return true;
        }
        let (group, version) = owner.api_version.split_once('/').unwrap_or(("", &owner.api_version));
        let Ok((ar, caps)) = self.discovery.resolve_gvk(&GroupVersionKind::gvk(group, version, &owner.kind)).ok_or(()) else {
            return false;
        };
        let api: Api<DynamicObject> = match (caps.scope, namespace) {
            (kube::discovery::Scope::Namespaced, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &ar),
            _ => Api::all_with(self.client.clone(), &ar),
        };
        match api.get_metadata_opt(&owner.name).await {
            Ok(Some(o)) => o.metadata.uid.as_deref() == Some(owner.uid.as_str()),
            Ok(None) => false,
            // Unsure: keep the dependent.
            Err(_) => true,
        }
    }

    /// Deletes a dependent whose owners are all gone.
    async fn check_dependent(&mut self, uid: &str) {
        let Some(node) = self.nodes.get(uid).cloned() else { return };
        if node.owners().is_empty() || node.meta.deletion_timestamp.is_some() {
            return;
        }
        for o in node.owners() {
            if self.owner_exists(o, node.meta.namespace.as_deref()).await {
                return;
            }
        }
        // The graph's copy may be behind (an orphaning that dropped the
        // reference, not yet seen): as upstream, decide on the object as it
        // is now, and delete only that version of it.
        let name = node.meta.name.clone().unwrap_or_default();
        let live = match node.api(&self.client).get_metadata_opt(&name).await {
            Ok(Some(live)) if live.metadata.uid.as_deref() == Some(uid) => live.metadata,
            _ => return,
        };
        let live = Node { ar: node.ar.clone(), meta: live };
        if live.owners().is_empty() || live.meta.deletion_timestamp.is_some() {
            return;
        }
        for o in live.owners() {
            if self.owner_exists(o, live.meta.namespace.as_deref()).await {
                return;
            }
        }
        let dp = DeleteParams {
            preconditions: Some(kube::api::Preconditions { uid: Some(uid.to_string()), resource_version: live.meta.resource_version.clone() }),
            ..DeleteParams::background()
        };
        if let Err(e) = node.api(&self.client).delete(&name, &dp).await {
            tracing::debug!(object = %name, "garbage collector delete: {e}");
        }
    }

    /// Foreground deletion: dependents first, the owner when none blocks it.
    async fn foreground(&mut self, uid: &str) {
        let deps: Vec<Node> = self.dependents.get(uid).into_iter().flatten().filter_map(|d| self.nodes.get(d).cloned()).collect();
        let mut blocking = false;
        for d in &deps {
            let blocks = d.owners().iter().any(|o| o.uid == uid && o.block_owner_deletion == Some(true));
            blocking |= blocks;
            if d.meta.deletion_timestamp.is_none() {
                let name = d.meta.name.clone().unwrap_or_default();
                let _ = d.api(&self.client).delete(&name, &DeleteParams::foreground()).await;
            }
        }
        if !blocking {
            self.release(uid, FOREGROUND).await;
        }
    }

    /// Orphan deletion: dependents lose their reference, then the owner goes.
    async fn orphan(&mut self, uid: &str) {
        let deps: Vec<Node> = self.dependents.get(uid).into_iter().flatten().filter_map(|d| self.nodes.get(d).cloned()).collect();
        for d in deps {
            let refs: Vec<&OwnerReference> = d.owners().iter().filter(|o| o.uid != uid).collect();
            // No references left: the field goes (upstream omits an empty list).
            let refs = if refs.is_empty() { serde_json::Value::Null } else { json!(refs) };
            let patch = json!({"metadata": {"ownerReferences": refs, "uid": d.meta.uid}});
            let name = d.meta.name.clone().unwrap_or_default();
            if let Err(e) = d.api(&self.client).patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                tracing::debug!(object = %name, "garbage collector orphaning: {e}");
            }
        }
        self.release(uid, ORPHAN).await;
    }

    /// Removes the finalizer `f` from the owner `uid`.
    async fn release(&mut self, uid: &str, f: &str) {
        let Some(node) = self.nodes.get(uid).cloned() else { return };
        let fins: Vec<&String> = node.meta.finalizers.iter().flatten().filter(|x| *x != f).collect();
        let patch = json!({"metadata": {"finalizers": fins, "resourceVersion": node.meta.resource_version}});
        let name = node.name_any();
        if let Err(e) = node.api(&self.client).patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            tracing::debug!(object = %name, "garbage collector releasing {f}: {e}");
        }
    }
}

impl Node {
    fn name_any(&self) -> String {
        self.meta.name.clone().unwrap_or_default()
    }
}
