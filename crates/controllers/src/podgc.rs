//! Pod garbage collection (upstream's PodGCController), for pods whose node
//! is gone: a pod bound to a node that no longer exists can never be
//! stopped by an agent, so it is deleted for good (grace 0). That includes
//! pods terminating gracefully when their node is deleted.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::Result;
use crate::informer::Subscription;

struct Ctx {
    client: Client,
    nodes: Store<Node>,
}

pub async fn run(client: Client, pods: Subscription) {
    let (nodes, writer) = reflector::store();
    // One node watch feeds both the store and the triggers, so a node's
    // deletion is in the store before its event is mapped.
    let node_events = watcher(Api::<Node>::all(client.clone()), watcher::Config::default()).default_backoff().reflect(writer).touched_objects();
    let store = pods.store.clone();
    let controller = Controller::for_shared_stream(pods.into_pods(), store);
    let pod_store = controller.store();
    let ctx = Arc::new(Ctx { client: client.clone(), nodes: nodes.clone() });
    controller
        // A node going away revisits the pods bound to it. Other node
        // events (thousands of heartbeats) map to nothing, without a scan
        // of every pod each.
        .watches_stream(node_events, move |n: Node| {
            let name = n.name_any();
            if nodes.get(&ObjectRef::new(&name)).is_some() {
                return Vec::new();
            }
            pod_store
                .state()
                .into_iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str()))
                .map(|p| ObjectRef::from_obj(&*p))
                .collect::<Vec<_>>()
        })
        .run(
            reconcile,
            |_, e, _| {
                tracing::warn!("pod gc: {e}");
                Action::requeue(Duration::from_secs(5))
            },
            ctx,
        )
        .for_each(|_| async {})
        .await;
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Ctx>) -> Result<Action> {
    let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()) else { return Ok(Action::await_change()) };
    ctx.nodes.wait_until_ready().await.ok();
    if ctx.nodes.get(&ObjectRef::new(&node)).is_some() {
        return Ok(Action::await_change());
    }
    // The node may just be slow to appear in our cache: look it up.
    if Api::<Node>::all(ctx.client.clone()).get_opt(&node).await?.is_some() {
        return Ok(Action::await_change());
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions { uid: pod.uid(), resource_version: None }),
        ..Default::default()
    };
    match api.delete(&pod.name_any(), &dp).await {
        Ok(_) => tracing::info!(pod = %pod.name_any(), %node, "deleted a pod whose node does not exist"),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}
