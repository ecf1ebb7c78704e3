//! ResourceQuota status (upstream's ResourceQuotaController): `status.hard`
//! mirrors `spec.hard` and `status.used` counts what the namespace holds of
//! each named resource (`api::quota` says what each object counts). Changes
//! to pods, services, configmaps, secrets and claims recount their
//! namespace's quotas; other `count/…` resources are recounted every 30 s.
//! Admission in the API server charges creations between recounts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use api::quantity::Quantity;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, ResourceQuota, Secret, Service};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use crate::informer::Subscription;
use crate::{Error, Result};

struct Ctx {
    client: Client,
}

/// Every quota of the object's namespace.
fn quotas_of<K: Resource>(store: Store<ResourceQuota>) -> impl Fn(K) -> Vec<ObjectRef<ResourceQuota>> + Send + Sync + 'static {
    move |obj: K| quotas_in(&store, &obj.meta().namespace)
}

fn quotas_in(store: &Store<ResourceQuota>, ns: &Option<String>) -> Vec<ObjectRef<ResourceQuota>> {
    store.state().iter().filter(|q| q.namespace() == *ns).map(|q| ObjectRef::from_obj(&**q)).collect()
}

pub async fn run(client: Client, pods: Subscription) {
    let quotas: Api<ResourceQuota> = Api::all(client.clone());
    let controller = Controller::new(quotas, watcher::Config::default());
    let store = controller.store();
    let cfg = watcher::Config::default;
    controller
        .watches_shared_stream(pods.into_pods(), {
            let store = store.clone();
            move |pod: Arc<Pod>| quotas_in(&store, &pod.metadata.namespace)
        })
        .watches(Api::<Service>::all(client.clone()), cfg(), quotas_of(store.clone()))
        .watches(Api::<ConfigMap>::all(client.clone()), cfg(), quotas_of(store.clone()))
        .watches(Api::<Secret>::all(client.clone()), cfg(), quotas_of(store.clone()))
        .watches(Api::<PersistentVolumeClaim>::all(client.clone()), cfg(), quotas_of(store))
        // A burst of pod changes is one recount.
        .with_config(Config::default().debounce(Duration::from_millis(500)))
        .run(
            reconcile,
            |_, e, _| {
                tracing::warn!("resourcequota: {e}");
                Action::requeue(Duration::from_secs(2))
            },
            Arc::new(Ctx { client }),
        )
        .for_each(|_| async {})
        .await;
}

/// Objects of `plural` in `group` in the namespace, as JSON.
async fn list(client: &Client, ns: &str, plural: &str, group: &str) -> Result<Vec<Value>> {
    let version = if group.is_empty() {
        "v1".to_string()
    } else {
        let g = kube::discovery::group(client, group).await?;
        g.preferred_version_or_latest().to_string()
    };
    let gvk = GroupVersionKind::gvk(group, &version, "");
    let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let items = api.list(&ListParams::default()).await?.items;
    Ok(items.into_iter().filter_map(|o| serde_json::to_value(o).ok()).collect())
}

async fn reconcile(quota: Arc<ResourceQuota>, ctx: Arc<Ctx>) -> Result<Action> {
    let ns = quota.namespace().unwrap_or_default();
    let hard = quota.spec.as_ref().and_then(|s| s.hard.clone()).unwrap_or_default();
    let mut used: BTreeMap<String, Quantity> = hard.keys().map(|k| (k.clone(), Quantity::zero())).collect();
    let mut sources: Vec<(String, String)> = hard.keys().filter_map(|k| api::quota::source_of(k)).collect();
    sources.sort();
    sources.dedup();
    let watched = ["pods", "services", "configmaps", "secrets", "persistentvolumeclaims"];
    let mut polled = false;
    for (plural, group) in &sources {
        polled |= !(group.is_empty() && watched.contains(&plural.as_str()));
        let objs = match list(&ctx.client, &ns, plural, group).await {
            Ok(o) => o,
            // A resource the server does not serve counts nothing.
            Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 => continue,
            Err(e) => return Err(e),
        };
        for obj in &objs {
            for (k, q) in api::quota::usage(plural, group, obj) {
                if let Some(u) = used.get_mut(&k) {
                    *u = u.add(&q);
                }
            }
        }
    }
    let status = json!({
        "hard": hard,
        "used": used.iter().map(|(k, v)| (k.clone(), json!(v.canonical()))).collect::<serde_json::Map<_, _>>(),
    });
    let current = serde_json::to_value(&quota.status).unwrap_or(Value::Null);
    if current != status {
        let api: Api<ResourceQuota> = Api::namespaced(ctx.client.clone(), &ns);
        // Replaced whole, so names dropped from spec.hard leave the status too.
        let mut q = (*quota).clone();
        q.status = serde_json::from_value(status).map_err(|e| Error::Other(e.to_string()))?;
        api.replace_status(&quota.name_any(), &Default::default(), &q).await?;
    }
    Ok(if polled { Action::requeue(Duration::from_secs(30)) } else { Action::await_change() })
}
