//! Namespace lifecycle (upstream's NamespaceController): a namespace being
//! deleted loses everything in it, resource type by resource type as
//! discovery lists them, and then its `kubernetes` finalizer (through the
//! `finalize` subresource), after which the API server removes it. While
//! content remains, the namespace's conditions say what is left.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::{Result, now};

struct Ctx {
    client: Client,
}

pub async fn run(client: Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    Controller::new(namespaces, watcher::Config::default())
        .run(
            reconcile,
            |_, e, _| {
                tracing::warn!("namespace: {e}");
                Action::requeue(Duration::from_secs(1))
            },
            Arc::new(Ctx { client }),
        )
        .for_each(|_| async {})
        .await;
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let finalizers = ns.spec.as_ref().and_then(|s| s.finalizers.clone()).unwrap_or_default();
    if !finalizers.iter().any(|f| f == "kubernetes") {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let discovery = Discovery::new(ctx.client.clone()).run().await?;
    let mut remaining = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if caps.scope != Scope::Namespaced || !caps.supports_operation(verbs::LIST) {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &name, &ar);
            if caps.supports_operation(verbs::DELETE_COLLECTION) {
                let _ = api.delete_collection(&DeleteParams::background(), &ListParams::default()).await;
            }
            let left = api.list_metadata(&ListParams::default().limit(1)).await.map(|l| l.items.len()).unwrap_or(0);
            if left > 0 {
                remaining.push(format!("{}.{}", ar.plural, ar.group));
            }
        }
    }
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    if !remaining.is_empty() {
        // Objects with finalizers (or dependents the garbage collector is
        // removing) take a moment: say so, and look again shortly.
        remaining.sort();
        let cond = NamespaceCondition {
            type_: "NamespaceContentRemaining".into(),
            status: "True".into(),
            reason: Some("SomeResourcesRemain".into()),
            message: Some(format!("Some resources are remaining: {}", remaining.join(", "))),
            last_transition_time: Some(now()),
        };
        let patch = serde_json::json!({"status": {"conditions": [cond]}});
        let _ = namespaces.patch_status(&name, &Default::default(), &kube::api::Patch::Merge(&patch)).await;
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let mut done = (*ns).clone();
    if let Some(spec) = done.spec.as_mut() {
        spec.finalizers = Some(finalizers.into_iter().filter(|f| f != "kubernetes").collect());
    }
    match namespaces.replace_subresource("finalize", &name, &PostParams::default(), &done).await {
        Ok(_) | Err(kube::Error::Api(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}
