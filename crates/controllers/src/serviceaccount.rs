//! ServiceAccounts (upstream's ServiceAccountsController): every active
//! namespace has a `default` ServiceAccount; one deleted comes back.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::Result;

struct Ctx {
    client: Client,
}

pub async fn run(client: Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let accounts: Api<ServiceAccount> = Api::all(client.clone());
    Controller::new(namespaces, watcher::Config::default())
        // A deleted `default` account wakes its namespace.
        .watches(accounts, watcher::Config::default().fields("metadata.name=default"), |sa| {
            sa.namespace().map(|ns| kube::runtime::reflector::ObjectRef::new(&ns))
        })
        .run(
            reconcile,
            |_, e, _| {
                tracing::warn!("serviceaccount: {e}");
                Action::requeue(Duration::from_secs(1))
            },
            Arc::new(Ctx { client }),
        )
        .for_each(|_| async {})
        .await;
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action> {
    if !crate::namespace_active(&ns) {
        return Ok(Action::await_change());
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ns.name_any());
    if accounts.get_opt("default").await?.is_none() {
        let sa = ServiceAccount { metadata: ObjectMeta { name: Some("default".into()), ..Default::default() }, ..Default::default() };
        match accounts.create(&PostParams::default(), &sa).await {
            Ok(_) => {}
            // Already there, or the namespace began terminating: nothing to do.
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::await_change())
}
