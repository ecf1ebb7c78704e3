//! Preemption, as upstream's DefaultPreemption: when a pod fits nowhere,
//! find nodes where removing lower-priority pods would make it fit, keep
//! (reprieve) as many of those pods as still allows it, and pick the node
//! whose victims matter least. Pure functions; the scheduler deletes the
//! victims and nominates the node.

use std::borrow::Cow;
use std::sync::Arc;

use crate::filters::{Cycle, Misfit, NodeView, NsLabels, filter_with};
use crate::model::{NodeFacts, PodFacts, Requests};

pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";

/// The victims that would make `c` fit on one node, the fewest and least
/// important first kept; or why no removal helps. `extra` is what pods
/// nominated to this node with at least the pod's priority hold.
pub fn select_victims(
    c: &Cycle,
    facts: &NodeFacts,
    pods: &[Arc<PodFacts>],
    extra: (Requests, usize),
    ns_labels: NsLabels,
) -> Result<Vec<Arc<PodFacts>>, Misfit> {
    let (mut potential, mut kept): (Vec<Arc<PodFacts>>, Vec<Arc<PodFacts>>) = pods.iter().cloned().partition(|p| p.priority < c.priority);
    if potential.is_empty() {
        return Err(Misfit { reasons: vec![Cow::Borrowed(NO_VICTIMS)], unresolvable: true });
    }
    let mut inter = c.inter.clone();
    let mut spread = c.spread.clone();
    let account = |inter: &mut Option<crate::filters::InterPod>, spread: &mut Option<crate::filters::Spread>, p: &PodFacts, by: i64| {
        if let Some(i) = inter.as_mut() {
            i.account(c, p, &facts.labels, by, ns_labels);
        }
        if let Some(s) = spread.as_mut() {
            s.account(c.namespace, p, &facts.labels, by);
        }
    };
    for p in &potential {
        account(&mut inter, &mut spread, p, -1);
    }
    let fits = |kept: &[Arc<PodFacts>], inter: &Option<crate::filters::InterPod>, spread: &Option<crate::filters::Spread>| {
        let mut v = NodeView { facts, requested: extra.0, nonzero: Requests::default(), pod_count: kept.len() + extra.1, pods: kept };
        for p in kept {
            v.requested.add(p.requests);
        }
        filter_with(c, &v, inter.as_ref(), spread.as_ref())
    };
    fits(&kept, &inter, &spread)?;
    // Most important first (higher priority, then the one running longer),
    // so they are the ones kept when there is room.
    let started = |p: &PodFacts| p.start_time.as_ref().map(|t| t.0);
    potential.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| started(a).cmp(&started(b))));
    let mut victims = Vec::new();
    for p in potential {
        kept.push(p.clone());
        account(&mut inter, &mut spread, &p, 1);
        if fits(&kept, &inter, &spread).is_err() {
            kept.pop();
            account(&mut inter, &mut spread, &p, -1);
            victims.push(p);
        }
    }
    Ok(victims)
}

/// Upstream's choice among candidate nodes, without PodDisruptionBudgets:
/// the lowest highest-priority victim, then the lowest sum of priorities,
/// then the fewest victims; the first such candidate wins.
pub fn pick<T>(candidates: Vec<(T, Vec<Arc<PodFacts>>)>) -> Option<(T, Vec<Arc<PodFacts>>)> {
    let key = |v: &[Arc<PodFacts>]| {
        let top = v.iter().map(|p| p.priority).max().unwrap_or(i32::MIN);
        let sum: i64 = v.iter().map(|p| p.priority as i64 + i32::MAX as i64 + 1).sum();
        (top, sum, v.len())
    };
    let mut best: Option<(T, Vec<Arc<PodFacts>>)> = None;
    for (n, v) in candidates {
        if best.as_ref().is_none_or(|(_, b)| key(&v) < key(b)) {
            best = Some((n, v));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::json;

    fn node() -> NodeFacts {
        let n: Node = serde_json::from_value(json!({"metadata": {"name": "n", "labels": {"kubernetes.io/hostname": "n"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {"cpu": "2", "memory": "1Gi", "pods": "10"}}}))
        .unwrap();
        NodeFacts::new(&n)
    }

    fn pod(name: &str, priority: i32, cpu: &str, extra: serde_json::Value) -> Pod {
        let mut spec = json!({"priority": priority, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]});
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default", "uid": name, "labels": {"app": name}}, "spec": spec}))
            .unwrap()
    }

    fn on_node(p: Pod) -> Arc<PodFacts> {
        Arc::new(PodFacts::new(Arc::new(p), "n"))
    }

    #[test]
    fn victims_are_the_fewest_lower_priority_pods() {
        let n = node();
        let pods =
            [on_node(pod("low", 1, "1", json!({}))), on_node(pod("lower", 0, "500m", json!({}))), on_node(pod("high", 100, "500m", json!({})))];
        let none = |_: &str| None;
        let p = pod("p", 50, "1", json!({}));
        let c = Cycle::new(&p);
        let v = select_victims(&c, &n, &pods, (Requests::default(), 0), &none).unwrap();
        assert_eq!(v.iter().map(|p| p.uid.as_str()).collect::<Vec<_>>(), ["low"], "the 500m pod is reprieved");
        let p = pod("p", 50, "1500m", json!({}));
        let c = Cycle::new(&p);
        let v = select_victims(&c, &n, &pods, (Requests::default(), 0), &none).unwrap();
        assert_eq!(v.len(), 2);
        let p = pod("p", 50, "2", json!({}));
        let c = Cycle::new(&p);
        let e = select_victims(&c, &n, &pods, (Requests::default(), 0), &none).unwrap_err();
        assert_eq!(e.reasons, ["Insufficient cpu"], "the high-priority pod stays");
        let p = pod("p", 0, "1", json!({}));
        let c = Cycle::new(&p);
        let e = select_victims(&c, &n, &pods, (Requests::default(), 0), &none).unwrap_err();
        assert_eq!(e.reasons, [NO_VICTIMS]);
    }

    #[test]
    fn victims_lift_anti_affinity_and_ports() {
        let n = node();
        let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "low"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
        let pods = [on_node(pod("low", 1, "100m", json!({}))), on_node(pod("other", 1, "100m", json!({})))];
        let p = pod("p", 50, "100m", anti);
        let none = |_: &str| None;
        let mut c = Cycle::new(&p);
        let mut s = crate::filters::InterPod::default();
        for q in &pods {
            s.account(&c, q, &n.labels, 1, &none);
        }
        c.inter = Some(s);
        let v = select_victims(&c, &n, &pods, (Requests::default(), 0), &none).unwrap();
        assert_eq!(v.iter().map(|p| p.uid.as_str()).collect::<Vec<_>>(), ["low"]);

        let port = json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}]}]});
        let pods = [on_node(pod("web", 1, "100m", port.clone()))];
        let p = pod("p", 50, "100m", port);
        let c = Cycle::new(&p);
        assert_eq!(select_victims(&c, &n, &pods, (Requests::default(), 0), &none).unwrap().len(), 1);
    }

    #[test]
    fn pick_prefers_least_important_victims() {
        let v = |ps: &[i32]| ps.iter().enumerate().map(|(i, p)| on_node(pod(&format!("v{i}"), *p, "1", json!({})))).collect::<Vec<_>>();
        let best = pick(vec![("a", v(&[5])), ("b", v(&[1, 1])), ("c", v(&[1]))]).unwrap();
        assert_eq!(best.0, "c");
        let best = pick(vec![("a", v(&[3])), ("b", v(&[1, 1]))]).unwrap();
        assert_eq!(best.0, "b", "a lower top priority beats fewer victims");
    }
}
