//! PodDisruptionBudget status (upstream's DisruptionController): how many
//! of the selected pods are healthy (Ready, not terminating, not just
//! evicted), how many must be, and so how many may be disrupted now. The
//! eviction API spends `disruptionsAllowed`; this loop recomputes it from
//! the pods whenever they or the budget change.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::informer::Subscription;
use crate::{Error, Result};

/// How long an evicted pod is not counted healthy while it goes away
/// (upstream's DeletionTimeout).
const DISRUPTED_TTL: Duration = Duration::from_secs(120);

struct Ctx {
    client: Client,
    pods: Store<Pod>,
}

pub async fn run(client: Client, pods: Subscription) {
    let budgets: Api<PodDisruptionBudget> = Api::all(client.clone());
    let store = pods.store.clone();
    let controller = Controller::new(budgets, watcher::Config::default());
    let known = controller.store();
    let budgets_of = move |pod: Arc<Pod>| {
        let ns = pod.namespace();
        known
            .state()
            .iter()
            .filter(|b| b.namespace() == ns && b.spec.as_ref().and_then(|s| s.selector.as_ref()).is_some_and(|s| selects(s, pod.labels())))
            .map(|b| ObjectRef::from_obj(&**b))
            .collect::<Vec<_>>()
    };
    controller
        .watches_shared_stream(pods.into_pods(), budgets_of)
        .run(
            reconcile,
            |_, e, _| {
                tracing::warn!("disruption: {e}");
                Action::requeue(Duration::from_secs(2))
            },
            Arc::new(Ctx { client, pods: store }),
        )
        .for_each(|_| async {})
        .await;
}

/// A label selector as the API defines it (matchLabels and matchExpressions).
pub fn selects(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_label = sel.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    by_label
        && sel.match_expressions.iter().flatten().all(|e| {
            let values = e.values.clone().unwrap_or_default();
            match e.operator.as_str() {
                "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
                "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
                "Exists" => labels.contains_key(&e.key),
                "DoesNotExist" => !labels.contains_key(&e.key),
                _ => false,
            }
        })
}

fn ready(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.conditions.as_ref()).into_iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True")
}

/// `n` of `total` for "50%" (rounded up, as upstream), or the integer itself.
fn resolve(v: &IntOrString, total: i32) -> Result<i32> {
    match v {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let pct: i64 = s.strip_suffix('%').and_then(|p| p.parse().ok()).ok_or_else(|| Error::Other(format!("invalid value {s:?}")))?;
            Ok(((pct * total as i64 + 99) / 100) as i32)
        }
    }
}

/// The desired replica count of the controllers of `pods` (a Deployment's
/// through its ReplicaSets), each counted once, as upstream's finders.
async fn expected_by_controllers(client: &Client, ns: &str, pods: &[Arc<Pod>]) -> Result<i32> {
    let mut seen = HashSet::new();
    let mut total = 0;
    for p in pods {
        let Some(owner) = p.owner_references().iter().find(|o| o.controller == Some(true)).cloned() else {
            return Err(Error::Other(format!("found no controllers for pod {:?}", p.name_any())));
        };
        let (kind, name, replicas) = match owner.kind.as_str() {
            "ReplicaSet" => {
                let rs = Api::<ReplicaSet>::namespaced(client.clone(), ns).get(&owner.name).await?;
                match rs.owner_references().iter().find(|o| o.controller == Some(true) && o.kind == "Deployment") {
                    Some(d) => {
                        let dep = Api::<Deployment>::namespaced(client.clone(), ns).get(&d.name).await?;
                        ("Deployment", d.name.clone(), dep.spec.replicas.unwrap_or(1))
                    }
                    None => ("ReplicaSet", owner.name.clone(), rs.spec.replicas.unwrap_or(1)),
                }
            }
            "StatefulSet" => {
                let ss = Api::<StatefulSet>::namespaced(client.clone(), ns).get(&owner.name).await?;
                ("StatefulSet", owner.name.clone(), ss.spec.replicas.unwrap_or(1))
            }
            "ReplicationController" => {
                let rc = Api::<ReplicationController>::namespaced(client.clone(), ns).get(&owner.name).await?;
                ("ReplicationController", owner.name.clone(), rc.spec.and_then(|s| s.replicas).unwrap_or(1))
            }
            other => return Err(Error::Other(format!("pods owned by {other} have no known scale"))),
        };
        if seen.insert((kind, name)) {
            total += replicas;
        }
    }
    Ok(total)
}

async fn reconcile(pdb: Arc<PodDisruptionBudget>, ctx: Arc<Ctx>) -> Result<Action> {
    if pdb.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = pdb.namespace().unwrap_or_default();
    let spec = pdb.spec.clone().unwrap_or_default();
    let _ = ctx.pods.wait_until_ready().await;
    let pods: Vec<Arc<Pod>> = match &spec.selector {
        // No selector selects nothing; an empty one, every pod.
        None => Vec::new(),
        Some(sel) => ctx.pods.state().into_iter().filter(|p| p.namespace().as_deref() == Some(&ns) && selects(sel, p.labels())).collect(),
    };
    let old = pdb.status.clone().unwrap_or_default();
    let now = k8s_openapi::jiff::Timestamp::now();
    // Evicted pods stay out of the healthy count until they are gone or the entry expires.
    let disrupted: BTreeMap<String, Time> = old
        .disrupted_pods
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, t)| {
            let fresh = now.duration_since(t.0).unsigned_abs() < DISRUPTED_TTL;
            fresh && pods.iter().any(|p| &p.name_any() == name && p.metadata.deletion_timestamp.is_none())
        })
        .collect();
    let healthy =
        pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && ready(p) && !disrupted.contains_key(&p.name_any())).count() as i32;
    let counts = match (&spec.min_available, &spec.max_unavailable) {
        (Some(IntOrString::Int(n)), _) => Ok((pods.len() as i32, *n)),
        (Some(pct), _) => match expected_by_controllers(&ctx.client, &ns, &pods).await {
            Ok(expected) => resolve(pct, expected).map(|d| (expected, d)),
            Err(e) => Err(e),
        },
        (None, Some(max)) => match expected_by_controllers(&ctx.client, &ns, &pods).await {
            Ok(expected) => resolve(max, expected).map(|m| (expected, (expected - m).max(0))),
            Err(e) => Err(e),
        },
        (None, None) => Ok((pods.len() as i32, 0)),
    };
    let (expected, desired, allowed, reason, message) = match counts {
        Ok((expected, desired)) => {
            let allowed = if expected <= 0 { 0 } else { (healthy - desired).max(0) };
            (expected, desired, allowed, if allowed > 0 { "SufficientPods" } else { "InsufficientPods" }, String::new())
        }
        // Upstream keeps the counts and marks the budget as failing to sync.
        Err(e) => (old.expected_pods.unwrap_or(0), old.desired_healthy.unwrap_or(0), 0, "SyncFailed", e.to_string()),
    };
    let status_word = if allowed > 0 { "True" } else { "False" };
    let prior = old.conditions.iter().flatten().find(|c| c.type_ == "DisruptionAllowed");
    let since = match prior {
        Some(c) if c.status == status_word => c.last_transition_time.clone(),
        _ => Time(now),
    };
    let status = PodDisruptionBudgetStatus {
        current_healthy: Some(healthy),
        desired_healthy: Some(desired),
        expected_pods: Some(expected),
        disruptions_allowed: Some(allowed),
        observed_generation: pdb.metadata.generation,
        disrupted_pods: if disrupted.is_empty() { None } else { Some(disrupted) },
        conditions: Some(vec![Condition {
            type_: "DisruptionAllowed".into(),
            status: status_word.into(),
            reason: reason.into(),
            message,
            last_transition_time: since,
            observed_generation: pdb.metadata.generation,
        }]),
    };
    let same = |a: &PodDisruptionBudgetStatus, b: &PodDisruptionBudgetStatus| {
        let key = |s: &PodDisruptionBudgetStatus| {
            let c = s.conditions.iter().flatten().map(|c| (c.status.clone(), c.reason.clone(), c.message.clone())).collect::<Vec<_>>();
            (s.current_healthy, s.desired_healthy, s.expected_pods, s.disruptions_allowed, s.observed_generation, s.disrupted_pods.clone(), c)
        };
        key(a) == key(b)
    };
    if !same(&old, &status) {
        let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &ns);
        let mut patch = json!({"status": status});
        if status.disrupted_pods.is_none() {
            // A merge patch leaves out what it does not name: clear it explicitly.
            patch["status"]["disruptedPods"] = serde_json::Value::Null;
        }
        api.patch_status(&pdb.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?;
    }
    // Evicted pods' entries expire by time, not by an event.
    Ok(if status.disrupted_pods.is_some() { Action::requeue(DISRUPTED_TTL) } else { Action::await_change() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_up_and_selectors_match() {
        assert_eq!(resolve(&IntOrString::String("50%".into()), 3).unwrap(), 2);
        assert_eq!(resolve(&IntOrString::String("10%".into()), 5).unwrap(), 1);
        assert_eq!(resolve(&IntOrString::Int(2), 10).unwrap(), 2);
        assert!(resolve(&IntOrString::String("half".into()), 4).is_err());
        let sel: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}],
        }))
        .unwrap();
        let l = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        assert!(selects(&sel, &l(&[("app", "web")])));
        assert!(selects(&sel, &l(&[("app", "web"), ("tier", "front")])));
        assert!(!selects(&sel, &l(&[("app", "web"), ("tier", "db")])));
        assert!(!selects(&sel, &l(&[("app", "api")])));
        assert!(selects(&LabelSelector::default(), &l(&[])));
    }
}
