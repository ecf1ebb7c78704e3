//! One watch of every Pod for all the controllers of this process, as
//! upstream's shared informer: one store, and every change handed to each
//! subscriber only after the store has it, so a reconcile never reads a store
//! older than its trigger. Field ownership is dropped on the way in: no
//! controller reads it, and it is most of a stored pod.
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
use kube::{Client, ResourceExt};
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
            .modify(|p| p.managed_fields_mut().clear())
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

    fn pod(ns: &str, name: &str) -> Arc<Pod> {
        let mut p = Pod::default();
        p.metadata.namespace = Some(ns.into());
        p.metadata.name = Some(name.into());
        Arc::new(p)
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
