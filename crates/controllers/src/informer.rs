//! One watch of every Pod for all the controllers of this process, as
//! upstream's shared informer: one store, and every change handed to each
//! subscriber only after the store has it, so a reconcile never reads a store
//! older than its trigger. What no subscriber reads is dropped on the way in
//! (`slim`): field ownership, volumes and most of each container. A typed
//! Pod as stored is about 18 KB in memory, of which those are 10 KB.
//!
//! A relist (after the watch could not resume) hands on every pod again, and
//! the pods that disappeared while the watch was down as deleted, so owners
//! of pods deleted unseen are still revisited.
//!
//! A subscriber's queue holds references, not pods: it reads the pod from the
//! store when it takes the change, so a subscriber that lags never pins old
//! versions of pods in memory (only a deleted pod travels whole).

use std::collections::HashSet;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::Client;
use tokio::sync::mpsc;

/// One change of one pod, as the store has it afterwards.
#[derive(Clone, Debug)]
pub struct Change {
    pub pod: Arc<Pod>,
    /// The pod is gone (deleted, or missing from a relist).
    pub deleted: bool,
}

/// What travels in a subscriber's queue.
enum Msg {
    Applied(ObjectRef<Pod>),
    Deleted(Arc<Pod>),
}

/// What a controller gets: the shared store, and its own stream of changes.
pub struct Subscription {
    pub store: Store<Pod>,
    rx: mpsc::UnboundedReceiver<Msg>,
}

impl Subscription {
    pub fn into_changes(self) -> impl Stream<Item = Change> + Send + 'static {
        futures::stream::unfold((self.rx, self.store), |(mut rx, store)| async move {
            loop {
                let change = match rx.recv().await? {
                    // Gone since: its deletion follows in the queue.
                    Msg::Applied(r) => match store.get(&r) {
                        Some(pod) => Change { pod, deleted: false },
                        None => continue,
                    },
                    Msg::Deleted(pod) => Change { pod, deleted: true },
                };
                return Some((change, (rx, store)));
            }
        })
    }

    /// The changes as the pods they touched, for kube-runtime's shared triggers.
    pub fn into_pods(self) -> impl Stream<Item = Arc<Pod>> + Send + 'static {
        self.into_changes().map(|c| c.pod)
    }
}

pub struct Pods {
    store: Store<Pod>,
    writer: reflector::store::Writer<Pod>,
    subscribers: Vec<mpsc::UnboundedSender<Msg>>,
}

impl Default for Pods {
    fn default() -> Self {
        let (store, writer) = reflector::store();
        Pods { store, writer, subscribers: Vec::new() }
    }
}

impl Pods {
    /// A new subscriber; every subscription is taken before `run`.
    pub fn subscribe(&mut self) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers.push(tx);
        Subscription { store: self.store.clone(), rx }
    }

    /// Watches every pod until the process ends.
    pub async fn run(self, client: Client) {
        let Pods { store, writer, subscribers } = self;
        let applied = |r: ObjectRef<Pod>| {
            for s in &subscribers {
                let _ = s.send(Msg::Applied(r.clone()));
            }
        };
        let deleted = |pod: Arc<Pod>| {
            for s in &subscribers {
                let _ = s.send(Msg::Deleted(pod.clone()));
            }
        };
        // The pods the store held when a relist began.
        let mut before: Vec<Arc<Pod>> = Vec::new();
        let mut events = watcher(Api::<Pod>::all(client), watcher::Config::default())
            .default_backoff()
            .modify(slim)
            .reflect(writer)
            .boxed();
        while let Some(ev) = events.next().await {
            let Ok(ev) = ev else { continue };
            match ev {
                watcher::Event::Apply(p) => applied(ObjectRef::from_obj(&p)),
                watcher::Event::Delete(p) => deleted(Arc::new(p)),
                watcher::Event::Init => before = store.state(),
                // Handed on once the relisted store is in place.
                watcher::Event::InitApply(_) => {}
                watcher::Event::InitDone => {
                    let (gone, present) = relisted(std::mem::take(&mut before), &store.state());
                    gone.into_iter().for_each(&deleted);
                    present.into_iter().for_each(&applied);
                }
            }
        }
    }
}

/// Drops what none of the subscribers (ReplicaSet, Job, StatefulSet,
/// DaemonSet, endpoints, pod GC, disruption budgets, quotas) reads, and the
/// spare capacity decoding left in lists. They never write a pod back whole,
/// only patch it, so nothing dropped here can be lost. Kept: metadata but
/// field ownership, and of the spec everything but volumes and the containers'
/// commands, environment, mounts, probes, hooks and security settings (names,
/// images, ports and resources stay: endpoints and quotas read them); the
/// status whole.
fn slim(p: &mut Pod) {
    let meta = &mut p.metadata;
    meta.managed_fields = None;
    meta.owner_references.iter_mut().for_each(|o| o.shrink_to_fit());
    meta.finalizers.iter_mut().for_each(|f| f.shrink_to_fit());
    if let Some(spec) = p.spec.as_mut() {
        spec.volumes = None;
        for c in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
            c.command = None;
            c.args = None;
            c.env = None;
            c.env_from = None;
            c.volume_mounts = None;
            c.volume_devices = None;
            c.liveness_probe = None;
            c.readiness_probe = None;
            c.startup_probe = None;
            c.lifecycle = None;
            c.security_context = None;
            c.termination_message_path = None;
            c.termination_message_policy = None;
            c.working_dir = None;
            c.image_pull_policy = None;
        }
        spec.containers.shrink_to_fit();
        spec.init_containers.iter_mut().for_each(|c| c.shrink_to_fit());
        spec.tolerations.iter_mut().for_each(|t| t.shrink_to_fit());
    }
    if let Some(st) = p.status.as_mut() {
        st.conditions.iter_mut().for_each(|c| c.shrink_to_fit());
        st.container_statuses.iter_mut().for_each(|c| c.shrink_to_fit());
        st.init_container_statuses.iter_mut().for_each(|c| c.shrink_to_fit());
        st.pod_ips.iter_mut().for_each(|c| c.shrink_to_fit());
        st.host_ips.iter_mut().for_each(|c| c.shrink_to_fit());
    }
}

/// After a relist: the pods held `before` it that it no longer has, and
/// every pod it has.
fn relisted(before: Vec<Arc<Pod>>, now: &[Arc<Pod>]) -> (Vec<Arc<Pod>>, HashSet<ObjectRef<Pod>>) {
    let present: HashSet<ObjectRef<Pod>> = now.iter().map(|p| ObjectRef::from_obj(&**p)).collect();
    let gone = before.into_iter().filter(|p| !present.contains(&ObjectRef::from_obj(&**p))).collect();
    (gone, present)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;

    fn pod(ns: &str, name: &str) -> Arc<Pod> {
        let mut p = Pod::default();
        p.metadata.namespace = Some(ns.into());
        p.metadata.name = Some(name.into());
        Arc::new(p)
    }

    #[test]
    fn a_slim_pod_keeps_what_the_controllers_read() {
        let mut p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "a", "labels": {"app": "x"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}],
                "managedFields": [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"nodeName": "n", "volumes": [{"name": "v", "emptyDir": {}}],
                "containers": [{"name": "c", "image": "busybox", "command": ["sh"], "env": [{"name": "A", "value": "1"}],
                    "ports": [{"name": "http", "containerPort": 80}], "resources": {"requests": {"cpu": "1"}},
                    "volumeMounts": [{"name": "v", "mountPath": "/v"}], "readinessProbe": {"exec": {"command": ["true"]}}}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "c", "image": "busybox", "imageID": "", "ready": true, "restartCount": 2}]}
        }))
        .unwrap();
        slim(&mut p);
        assert!(p.metadata.managed_fields.is_none());
        assert_eq!(p.labels()["app"], "x");
        assert_eq!(p.owner_references()[0].name, "rs");
        let spec = p.spec.as_ref().unwrap();
        assert!(spec.volumes.is_none());
        assert_eq!(spec.node_name.as_deref(), Some("n"));
        let c = &spec.containers[0];
        assert!(c.command.is_none() && c.env.is_none() && c.volume_mounts.is_none() && c.readiness_probe.is_none());
        assert_eq!((c.name.as_str(), c.image.as_deref()), ("c", Some("busybox")));
        assert_eq!(c.ports.as_ref().unwrap()[0].name.as_deref(), Some("http"));
        assert!(c.resources.as_ref().unwrap().requests.as_ref().unwrap().contains_key("cpu"));
        let st = p.status.as_ref().unwrap();
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert_eq!(st.conditions.as_ref().unwrap()[0].type_, "Ready");
        assert_eq!(st.container_statuses.as_ref().unwrap()[0].restart_count, 2);
    }

    #[test]
    fn a_relist_reports_the_pods_that_vanished_as_gone() {
        let before = vec![pod("a", "kept"), pod("a", "vanished"), pod("b", "kept")];
        let now = vec![pod("a", "kept"), pod("b", "kept"), pod("b", "new")];
        let (gone, present) = relisted(before, &now);
        let gone: Vec<String> = gone.iter().map(|p| format!("{}/{}", p.namespace().unwrap(), p.name_any())).collect();
        assert_eq!(gone, ["a/vanished"]);
        assert_eq!(present.len(), 3);
        assert!(present.contains(&ObjectRef::from_obj(&*pod("b", "new"))));
    }
}
