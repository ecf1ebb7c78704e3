//! The cluster CA in every namespace (upstream's root-ca-cert-publisher):
//! each active namespace has a `kube-root-ca.crt` ConfigMap whose `ca.crt`
//! is the CA that signed the API server's certificate, so pods can check
//! whom they talk to. One deleted or edited is put back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::Result;

pub const NAME: &str = "kube-root-ca.crt";

struct Ctx {
    client: Client,
    ca: String,
}

pub async fn run(client: Client, ca: String) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let maps: Api<ConfigMap> = Api::all(client.clone());
    Controller::new(namespaces, watcher::Config::default())
        .watches(maps, watcher::Config::default().fields(&format!("metadata.name={NAME}")), |cm| cm.namespace().map(|ns| ObjectRef::new(&ns)))
        .run(
            reconcile,
            |_, e, _| {
                tracing::warn!("root-ca-cert-publisher: {e}");
                Action::requeue(Duration::from_secs(1))
            },
            Arc::new(Ctx { client, ca }),
        )
        .for_each(|_| async {})
        .await;
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action> {
    if !crate::namespace_active(&ns) {
        return Ok(Action::await_change());
    }
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns.name_any());
    let data = BTreeMap::from([("ca.crt".to_string(), ctx.ca.clone())]);
    let annotations = BTreeMap::from([(
        "kubernetes.io/description".to_string(),
        "The CA that signs the API server's serving certificate, for clients inside the cluster.".to_string(),
    )]);
    let result = match api.get_opt(NAME).await? {
        Some(cm) if cm.data.as_ref() == Some(&data) => return Ok(Action::await_change()),
        Some(mut cm) => {
            cm.data = Some(data);
            cm.binary_data = None;
            api.replace(NAME, &PostParams::default(), &cm).await.map(|_| ())
        }
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta { name: Some(NAME.into()), annotations: Some(annotations), ..Default::default() },
                data: Some(data),
                ..Default::default()
            };
            api.create(&PostParams::default(), &cm).await.map(|_| ())
        }
    };
    match result {
        // Raced with another write, or the namespace began terminating: the watch brings us back if needed.
        Ok(()) => Ok(Action::await_change()),
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}
