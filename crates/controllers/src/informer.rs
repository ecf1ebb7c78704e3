//! One watch of every Pod for all the controllers of this process, as
//! upstream's shared informer: one store, and every change handed to each
//! subscriber only after the store has it, so a reconcile never reads a store
//! older than its trigger. Field ownership is dropped on the way in: no
//! controller reads it, and it is most of a stored pod.
//!
//! A relist (after the watch could not resume) hands on every pod again, and
//! the pods that disappeared while the watch was down as deleted, so owners
//! of pods deleted unseen are still revisited.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::mpsc;

/// One change of one pod, as the store has it afterwards.
#[derive(Clone, Debug)]
pub struct Change {
    pub pod: Arc<Pod>,
    /// The pod is gone (deleted, or missing from a relist).
    pub deleted: bool,
}

/// What a controller gets: the shared store, and its own stream of changes.
pub struct Subscription {
    pub store: Store<Pod>,
    pub changes: mpsc::UnboundedReceiver<Change>,
}

impl Subscription {
    pub fn into_changes(self) -> impl Stream<Item = Change> + Send + 'static {
        futures::stream::unfold(self.changes, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
    }

    /// The changes as the pods they touched, for kube-runtime's shared triggers.
    pub fn into_pods(self) -> impl Stream<Item = Arc<Pod>> + Send + 'static {
        self.into_changes().map(|c| c.pod)
    }
}

pub struct Pods {
    store: Store<Pod>,
    writer: reflector::store::Writer<Pod>,
    subscribers: Vec<mpsc::UnboundedSender<Change>>,
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
        Subscription { store: self.store.clone(), changes: rx }
    }

    /// Watches every pod until the process ends.
    pub async fn run(self, client: Client) {
        let Pods { store, writer, subscribers } = self;
        let send = |pod: Arc<Pod>, deleted: bool| {
            for s in &subscribers {
                let _ = s.send(Change { pod: pod.clone(), deleted });
            }
        };
        // The pods the store held when a relist began.
        let mut before: Vec<Arc<Pod>> = Vec::new();
        let mut events = watcher(Api::<Pod>::all(client), watcher::Config::default())
            .default_backoff()
            .modify(|p| p.managed_fields_mut().clear())
            .reflect(writer)
            .boxed();
        while let Some(ev) = events.next().await {
            let Ok(ev) = ev else { continue };
            match ev {
                watcher::Event::Apply(p) => send(lookup(&store, &p), false),
                watcher::Event::Delete(p) => send(Arc::new(p), true),
                watcher::Event::Init => before = store.state(),
                // Handed on once the relisted store is in place.
                watcher::Event::InitApply(_) => {}
                watcher::Event::InitDone => {
                    let now = store.state();
                    let present: HashSet<ObjectRef<Pod>> = now.iter().map(|p| ObjectRef::from_obj(&**p)).collect();
                    for p in std::mem::take(&mut before) {
                        if !present.contains(&ObjectRef::from_obj(&*p)) {
                            send(p, true);
                        }
                    }
                    for p in now {
                        send(p, false);
                    }
                }
            }
        }
    }
}

/// The store's copy of a pod just applied (the same allocation every
/// subscriber and reconcile then shares).
fn lookup(store: &Store<Pod>, p: &Pod) -> Arc<Pod> {
    store.get(&ObjectRef::from_obj(p)).unwrap_or_else(|| Arc::new(p.clone()))
}
