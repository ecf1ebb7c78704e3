//! StatefulSet (upstream's StatefulSetController): pods with stable names
//! `<set>-0 … <set>-(n-1)`, hostnames under the governing Service, and a
//! PersistentVolumeClaim per volumeClaimTemplate and ordinal, created as
//! objects. OrderedReady creates one pod at a time, each after the previous
//! is Running and Ready, and removes from the highest ordinal down; Parallel
//! does both at once. A rolling update replaces pods at or above
//! `partition`, highest first, one at a time.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, Volume};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::Result;
use crate::informer::Subscription;
use crate::replicaset::{controller_ref, is_pod_ready, selector_string};

const HASH: &str = "controller-revision-hash";

struct Ctx {
    client: Client,
}

pub async fn run(client: Client, pods: Subscription) {
    let sets: Api<StatefulSet> = Api::all(client.clone());
    Controller::new(sets, watcher::Config::default())
        .owns_shared_stream(pods.into_pods())
        .run(
            reconcile,
            |_, e, _| {
                tracing::warn!("statefulset: {e}");
                Action::requeue(Duration::from_secs(1))
            },
            Arc::new(Ctx { client }),
        )
        .for_each(|_| async {})
        .await;
}

fn revision(s: &StatefulSet) -> String {
    let mut h = DefaultHasher::new();
    serde_json::to_string(&s.spec.template).unwrap_or_default().hash(&mut h);
    format!("{}-{:x}", s.name_any(), h.finish() & 0xffff_ffff)
}

fn ordinal(set: &str, pod: &str) -> Option<i32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

fn running_and_ready(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") && is_pod_ready(p)
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Action> {
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let uid = set.uid().unwrap_or_default();
    let spec = set.spec.clone();
    let want = spec.replicas.unwrap_or(1).max(0);
    let rev = revision(&set);
    let parallel = spec.pod_management_policy.as_deref() == Some("Parallel");
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut owned: Vec<Pod> = pods
        .list(&ListParams::default().labels(&selector_string(&spec.selector)))
        .await?
        .items
        .into_iter()
        .filter(|p| p.owner_references().iter().any(|o| o.uid == uid) && ordinal(&name, &p.name_any()).is_some())
        .collect();
    owned.sort_by_key(|p| ordinal(&name, &p.name_any()));
    let at = |i: i32| owned.iter().find(|p| ordinal(&name, &p.name_any()) == Some(i));

    // Claims first: every ordinal's PersistentVolumeClaims exist before its pod.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let templates = spec.volume_claim_templates.clone().unwrap_or_default();

    let mut acted = false;
    for i in 0..want {
        match at(i) {
            Some(p) if p.metadata.deletion_timestamp.is_some() => {
                if !parallel {
                    acted = true;
                    break;
                }
            }
            Some(p) => {
                if !parallel && !running_and_ready(p) {
                    acted = true;
                    break;
                }
            }
            None => {
                for t in &templates {
                    let claim_name = format!("{}-{name}-{i}", t.name_any());
                    if claims.get_opt(&claim_name).await?.is_none() {
                        let mut c = t.clone();
                        c.metadata.name = Some(claim_name);
                        c.metadata.namespace = Some(ns.clone());
                        c.metadata.labels.get_or_insert_with(Default::default).extend(spec.selector.match_labels.clone().unwrap_or_default());
                        c.status = None;
                        match claims.create(&PostParams::default(), &c).await {
                            Ok(_) | Err(kube::Error::Api(_)) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                let pod_name = format!("{name}-{i}");
                let mut meta = spec.template.metadata.clone().unwrap_or_default();
                meta.name = Some(pod_name.clone());
                meta.namespace = Some(ns.clone());
                meta.owner_references = Some(vec![controller_ref(set.as_ref())]);
                let labels = meta.labels.get_or_insert_with(Default::default);
                labels.insert(HASH.into(), rev.clone());
                labels.insert("statefulset.kubernetes.io/pod-name".into(), pod_name.clone());
                labels.insert("apps.kubernetes.io/pod-index".into(), i.to_string());
                let mut pspec = spec.template.spec.clone().unwrap_or_default();
                pspec.hostname = Some(pod_name.clone());
                if let Some(svc) = spec.service_name.clone().filter(|s| !s.is_empty()) {
                    pspec.subdomain = Some(svc);
                }
                for t in &templates {
                    let vname = t.name_any();
                    let volumes = pspec.volumes.get_or_insert_with(Vec::new);
                    volumes.retain(|v| v.name != vname);
                    volumes.push(Volume {
                        name: vname.clone(),
                        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                            claim_name: format!("{vname}-{name}-{i}"),
                            read_only: None,
                        }),
                        ..Default::default()
                    });
                }
                match pods.create(&PostParams::default(), &Pod { metadata: meta, spec: Some(pspec), status: None }).await {
                    Ok(_) | Err(kube::Error::Api(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                acted = true;
                if !parallel {
                    break;
                }
            }
        }
    }
    // Surplus ordinals go, highest first (one at a time unless Parallel).
    if !acted {
        for p in owned.iter().rev().filter(|p| ordinal(&name, &p.name_any()).is_some_and(|i| i >= want) && p.metadata.deletion_timestamp.is_none()) {
            let _ = pods.delete(&p.name_any(), &DeleteParams::background()).await;
            acted = true;
            if !parallel {
                break;
            }
        }
    }
    // Rolling update: the highest ordinal at or above the partition with the old revision.
    let rolling = spec.update_strategy.as_ref().and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate") == "RollingUpdate";
    let partition = spec.update_strategy.as_ref().and_then(|s| s.rolling_update.as_ref()).and_then(|r| r.partition).unwrap_or(0);
    let all_ready = (0..want).all(|i| at(i).is_some_and(running_and_ready));
    if !acted
        && rolling
        && all_ready
        && let Some(p) = (partition..want).rev().filter_map(at).find(|p| p.labels().get(HASH) != Some(&rev))
    {
        let _ = pods.delete(&p.name_any(), &DeleteParams::background()).await;
    }
    let live: Vec<&Pod> = owned.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    let ready = live.iter().filter(|p| running_and_ready(p)).count() as i32;
    let updated = live.iter().filter(|p| p.labels().get(HASH) == Some(&rev)).count() as i32;
    let old_status = set.status.clone().unwrap_or_default();
    let current_revision = if updated as usize == live.len() && live.len() as i32 == want {
        rev.clone()
    } else {
        old_status.current_revision.clone().unwrap_or_else(|| rev.clone())
    };
    let status = StatefulSetStatus {
        replicas: live.len() as i32,
        ready_replicas: Some(ready),
        available_replicas: Some(ready),
        current_replicas: Some(live.iter().filter(|p| p.labels().get(HASH) == Some(&current_revision)).count() as i32),
        updated_replicas: Some(updated),
        current_revision: Some(current_revision),
        update_revision: Some(rev),
        observed_generation: set.metadata.generation,
        collision_count: Some(0),
        ..Default::default()
    };
    if set.status.as_ref() != Some(&status) {
        let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
        sets.patch_status(&name, &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await?;
    }
    Ok(Action::await_change())
}
