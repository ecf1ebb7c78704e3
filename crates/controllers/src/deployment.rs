//! Deployment: rolls its pod template out through ReplicaSets, as upstream's
//! DeploymentController does. Each distinct template gets a ReplicaSet named
//! by the template's hash and numbered by a revision annotation; a rolling
//! update grows the new one within `maxSurge` and shrinks the old ones while
//! `maxUnavailable` allows; Recreate removes the old pods first. A paused
//! Deployment only scales. Old ReplicaSets beyond `revisionHistoryLimit` are
//! deleted; the status and the Available/Progressing conditions say where
//! the rollout stands (what `kubectl rollout status` reads).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::replicaset::{controller_ref, selector_string};
use crate::{Result, now};

const REVISION: &str = "deployment.kubernetes.io/revision";
const HASH: &str = "pod-template-hash";

struct Ctx {
    client: Client,
}

pub async fn run(client: Client) {
    let deployments: Api<Deployment> = Api::all(client.clone());
    let rs: Api<ReplicaSet> = Api::all(client.clone());
    Controller::new(deployments, watcher::Config::default())
        .owns(rs, watcher::Config::default())
        .run(
            reconcile,
            |_, e, _| {
                tracing::warn!("deployment: {e}");
                Action::requeue(Duration::from_secs(1))
            },
            Arc::new(Ctx { client }),
        )
        .for_each(|_| async {})
        .await;
}

/// The template's hash (the `pod-template-hash` label), as a short string of
/// upstream's alphabet.
fn template_hash(t: &PodTemplateSpec) -> String {
    let mut h = DefaultHasher::new();
    serde_json::to_string(t).unwrap_or_default().hash(&mut h);
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = h.finish();
    (0..10)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// A template without the hash label, for comparing ReplicaSets with the Deployment.
fn unhashed(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.remove(HASH);
    }
    t
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations().get(REVISION).and_then(|r| r.parse().ok()).unwrap_or(0)
}

fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(0)
}

fn available(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)
}

/// maxSurge / maxUnavailable as a count of `total` (percentages round up for
/// surge and down for unavailable, as upstream).
fn resolve(v: Option<&IntOrString>, total: i32, round_up: bool, default: &str) -> i32 {
    let s = match v {
        Some(IntOrString::Int(i)) => return *i,
        Some(IntOrString::String(s)) => s.clone(),
        None => default.to_string(),
    };
    let pct: f64 = s.trim_end_matches('%').parse().unwrap_or(25.0);
    let x = pct * total as f64 / 100.0;
    (if round_up { x.ceil() } else { x.floor() }) as i32
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action> {
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = d.namespace().unwrap_or_default();
    let uid = d.uid().unwrap_or_default();
    let spec = d.spec.clone();
    let want = spec.replicas.unwrap_or(1);
    let rss: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = selector_string(&spec.selector);
    let mut owned: Vec<ReplicaSet> = rss
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|r| r.owner_references().iter().any(|o| o.controller == Some(true) && o.uid == uid))
        .collect();
    owned.sort_by_key(revision);
    let template = unhashed(&spec.template);
    let max_revision = owned.iter().map(revision).max().unwrap_or(0);
    let current = owned.iter().position(|r| r.spec.template.as_ref().map(unhashed).as_ref() == Some(&template));
    let paused = spec.paused == Some(true);

    // The ReplicaSet of the current template, created (or re-numbered) as the newest revision.
    let new_rs = match current {
        Some(i) => {
            let r = owned.remove(i);
            if revision(&r) < max_revision && !paused {
                let patch = json!({"metadata": {"annotations": {REVISION: (max_revision + 1).to_string()}}});
                rss.patch(&r.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?
            } else {
                r
            }
        }
        None if paused => return status(&ctx, &d, None, &owned).await,
        None => {
            let hash = template_hash(&template);
            let mut t = spec.template.clone();
            let meta = t.metadata.get_or_insert_with(Default::default);
            meta.labels.get_or_insert_with(Default::default).insert(HASH.into(), hash.clone());
            let mut sel = spec.selector.clone();
            sel.match_labels.get_or_insert_with(Default::default).insert(HASH.into(), hash.clone());
            let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
            let initial = if owned.iter().all(|r| replicas(r) == 0) && !recreate { want } else { 0 };
            let rs = ReplicaSet {
                metadata: kube::api::ObjectMeta {
                    name: Some(format!("{}-{hash}", d.name_any())),
                    namespace: Some(ns.clone()),
                    labels: t.metadata.as_ref().and_then(|m| m.labels.clone()),
                    annotations: Some(
                        [
                            (REVISION.to_string(), (max_revision + 1).to_string()),
                            ("deployment.kubernetes.io/desired-replicas".into(), want.to_string()),
                        ]
                        .into(),
                    ),
                    owner_references: Some(vec![controller_ref(d.as_ref())]),
                    ..Default::default()
                },
                spec: k8s_openapi::api::apps::v1::ReplicaSetSpec {
                    replicas: Some(initial),
                    selector: sel,
                    template: Some(t),
                    min_ready_seconds: spec.min_ready_seconds,
                },
                status: None,
            };
            match rss.create(&PostParams::default(), &rs).await {
                Ok(r) => r,
                Err(kube::Error::Api(e)) if e.code == 409 => rss.get(&rs.name_any()).await?,
                Err(e) => return Err(e.into()),
            }
        }
    };

    if paused {
        // Only scaling while paused: keep the new ReplicaSet at the desired size if it is the only one active.
        if owned.iter().all(|r| replicas(r) == 0) && replicas(&new_rs) != want {
            scale(&rss, &new_rs, want).await?;
        }
        return status(&ctx, &d, Some(&new_rs), &owned).await;
    }

    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    if recreate {
        let old_running: i32 = owned.iter().map(|r| replicas(r) + r.status.as_ref().map(|s| s.replicas).unwrap_or(0)).sum();
        for r in owned.iter().filter(|r| replicas(r) > 0) {
            scale(&rss, r, 0).await?;
        }
        if old_running == 0 && replicas(&new_rs) != want {
            scale(&rss, &new_rs, want).await?;
        }
    } else {
        let ru = spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref());
        let surge = resolve(ru.and_then(|r| r.max_surge.as_ref()), want, true, "25%");
        let mut unavailable = resolve(ru.and_then(|r| r.max_unavailable.as_ref()), want, false, "25%");
        if surge == 0 && unavailable == 0 {
            unavailable = 1;
        }
        let total: i32 = replicas(&new_rs) + owned.iter().map(replicas).sum::<i32>();
        // Grow the new ReplicaSet within the surge.
        let room = want + surge - total;
        let new_size = if owned.iter().all(|r| replicas(r) == 0) { want } else { (replicas(&new_rs) + room.max(0)).min(want) };
        if new_size != replicas(&new_rs) {
            scale(&rss, &new_rs, new_size).await?;
        }
        // Shrink old ReplicaSets while enough pods stay available.
        let all_available: i32 = available(&new_rs) + owned.iter().map(available).sum::<i32>();
        let mut removable = all_available - (want - unavailable);
        // Old pods that are not available can always go.
        for r in owned.iter().filter(|r| replicas(r) > 0) {
            let unavailable_here = (replicas(r) - available(r)).max(0);
            let cut = (removable.max(0) + unavailable_here).min(replicas(r));
            if cut > 0 {
                scale(&rss, r, replicas(r) - cut).await?;
                removable -= (cut - unavailable_here).max(0);
            }
        }
    }

    // Revision history: old, empty ReplicaSets beyond the limit go, oldest first.
    let limit = spec.revision_history_limit.unwrap_or(10).max(0) as usize;
    let empty: Vec<&ReplicaSet> = owned.iter().filter(|r| replicas(r) == 0 && r.status.as_ref().map(|s| s.replicas).unwrap_or(0) == 0).collect();
    if empty.len() > limit {
        for r in &empty[..empty.len() - limit] {
            let _ = rss.delete(&r.name_any(), &DeleteParams::background()).await;
        }
    }
    status(&ctx, &d, Some(&new_rs), &owned).await
}

async fn scale(rss: &Api<ReplicaSet>, r: &ReplicaSet, n: i32) -> Result<()> {
    let patch = json!({"spec": {"replicas": n}, "metadata": {"annotations": {"deployment.kubernetes.io/desired-replicas": n.to_string()}}});
    rss.patch(&r.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// A condition, keeping its transition time while its status stays and its
/// update time while its reason stays.
fn condition(old: Option<&DeploymentStatus>, type_: &str, status: bool, reason: &str, message: String) -> DeploymentCondition {
    let status = if status { "True" } else { "False" }.to_string();
    let prev = old.and_then(|s| s.conditions.as_ref()).and_then(|c| c.iter().find(|c| c.type_.as_deref() == Some(type_)));
    let same_status = prev.is_some_and(|p| p.status.as_deref() == Some(status.as_str()));
    let same = same_status && prev.is_some_and(|p| p.reason.as_deref() == Some(reason));
    DeploymentCondition {
        type_: Some(type_.into()),
        status: Some(status),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: if same_status { prev.and_then(|p| p.last_transition_time.clone()) } else { Some(now()) },
        last_update_time: if same { prev.and_then(|p| p.last_update_time.clone()) } else { Some(now()) },
    }
}

async fn status(ctx: &Ctx, d: &Deployment, new_rs: Option<&ReplicaSet>, old: &[ReplicaSet]) -> Result<Action> {
    let want = d.spec.replicas.unwrap_or(1);
    let all: Vec<&ReplicaSet> = new_rs.into_iter().chain(old.iter()).collect();
    let count = |f: &dyn Fn(&ReplicaSet) -> i32| all.iter().map(|r| f(r)).sum::<i32>();
    let replicas = count(&|r| r.status.as_ref().map(|s| s.replicas).unwrap_or(0));
    let ready = count(&|r| r.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0));
    let avail = count(&available);
    let updated = new_rs.and_then(|r| r.status.as_ref()).map(|s| s.replicas).unwrap_or(0);
    let old_status = d.status.as_ref();
    let ru = d.spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref());
    let max_unavailable = resolve(ru.and_then(|r| r.max_unavailable.as_ref()), want, false, "25%");
    let is_available = avail >= want - max_unavailable;
    let complete = updated == want && replicas == want && avail == want;
    let name = new_rs.map(|r| r.name_any()).unwrap_or_default();
    let mut conditions = vec![condition(
        old_status,
        "Available",
        is_available,
        if is_available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
        if is_available { "Deployment has minimum availability.".into() } else { "Deployment does not have minimum availability.".into() },
    )];
    let paused = d.spec.paused == Some(true);
    conditions.push(if paused {
        condition(old_status, "Progressing", false, "DeploymentPaused", "Deployment is paused".into())
    } else if complete {
        condition(old_status, "Progressing", true, "NewReplicaSetAvailable", format!("ReplicaSet \"{name}\" has successfully progressed."))
    } else {
        condition(old_status, "Progressing", true, "ReplicaSetUpdated", format!("ReplicaSet \"{name}\" is progressing."))
    });
    let status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(avail),
        unavailable_replicas: Some((want - avail).max(0)),
        conditions: Some(conditions),
        ..Default::default()
    };
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
    let rev = new_rs.map(revision).unwrap_or(0);
    if rev > 0 && d.annotations().get(REVISION) != Some(&rev.to_string()) {
        let patch = json!({"metadata": {"annotations": {REVISION: rev.to_string()}}});
        deployments.patch(&d.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    }
    let differs = |a: Option<&DeploymentStatus>| {
        let strip = |s: &DeploymentStatus| {
            let mut s = s.clone();
            for c in s.conditions.iter_mut().flatten() {
                c.last_update_time = None;
                c.last_transition_time = None;
            }
            s
        };
        a.map(strip) != Some(strip(&status))
    };
    if differs(old_status) {
        deployments.patch_status(&d.name_any(), &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await?;
    }
    Ok(Action::await_change())
}
