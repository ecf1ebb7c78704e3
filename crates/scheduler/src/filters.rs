//! Filters and scores, in upstream's plugin order and words. A `Cycle` is
//! what one scheduling attempt knows about its pod before it looks at any
//! node (upstream's PreFilter/PreScore state: the pod's requests, ports and
//! terms, and the counts its inter-pod affinity and topology spread need);
//! `filter` then judges one node, `scores` ranks the nodes that passed.
//! Pure functions on k8s-openapi types; no IO.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{NodeSelectorTerm, Pod, PreferredSchedulingTerm, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::model::{
    HostPort, Labels, NodeFacts, PodFacts, PodTerms, Requests, host_ports, node_term_matches, pod_requests, selector_matches, tolerates,
};

pub const UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
pub const SPREAD: &str = "node(s) didn't match pod topology spread constraints";
pub const SPREAD_LABEL: &str = "node(s) didn't match pod topology spread constraints (missing required label)";
pub const AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

/// Why a node does not fit. `unresolvable` says that removing pods from the
/// node would not help (upstream's UnschedulableAndUnresolvable), so
/// preemption skips it.
#[derive(Debug, PartialEq)]
pub struct Misfit {
    pub reasons: Vec<Cow<'static, str>>,
    pub unresolvable: bool,
}

fn misfit(reason: &'static str, unresolvable: bool) -> Misfit {
    Misfit { reasons: vec![Cow::Borrowed(reason)], unresolvable }
}

/// A node as the filters see it: its facts and what is bound there.
pub struct NodeView<'a> {
    pub facts: &'a NodeFacts,
    pub requested: Requests,
    pub nonzero: Requests,
    pub pod_count: usize,
    pub pods: &'a [Arc<PodFacts>],
}

/// Counts (or scores) per topology domain: key → value → n.
pub type Counts = HashMap<String, HashMap<String, i64>>;

fn bump(c: &mut Counts, key: &str, labels: &Labels, by: i64) {
    if let Some(v) = labels.get(key) {
        *c.entry(key.to_string()).or_default().entry(v.clone()).or_default() += by;
    }
}

fn count_at(c: &Counts, key: &str, labels: &Labels) -> i64 {
    labels.get(key).and_then(|v| c.get(key)?.get(v)).copied().unwrap_or(0)
}

/// Labels of a namespace, for namespaceSelector terms.
pub type NsLabels<'a> = &'a dyn Fn(&str) -> Option<Labels>;

/// Required inter-pod affinity state (upstream's InterPodAffinity PreFilter).
#[derive(Clone, Debug, Default)]
pub struct InterPod {
    /// Existing pods matching all of the incoming pod's affinity terms, by each term's key.
    pub affinity: Counts,
    /// Existing pods matching one of the incoming pod's anti-affinity terms.
    pub anti: Counts,
    /// Existing pods' anti-affinity terms that select the incoming pod.
    pub existing_anti: Counts,
    /// The incoming pod matches all of its own affinity terms (upstream's first-pod rule).
    pub self_match: bool,
}

impl InterPod {
    /// Adds (`by` = 1) or removes (-1) an existing pod's contribution.
    pub fn account(&mut self, c: &Cycle, p: &PodFacts, node: &Labels, by: i64, ns_labels: NsLabels) {
        if p.terminating {
            return;
        }
        let t = &c.terms;
        if !t.affinity.is_empty() && t.affinity.iter().all(|term| term.matches(&p.namespace, &p.labels, ns_labels)) {
            for term in &t.affinity {
                bump(&mut self.affinity, &term.topology_key, node, by);
            }
        }
        for term in t.anti.iter().filter(|term| term.matches(&p.namespace, &p.labels, ns_labels)) {
            bump(&mut self.anti, &term.topology_key, node, by);
        }
        for term in p.terms.anti.iter().filter(|term| term.matches(c.namespace, &c.labels, ns_labels)) {
            bump(&mut self.existing_anti, &term.topology_key, node, by);
        }
    }

    fn check(&self, c: &Cycle, node: &Labels) -> Result<(), Misfit> {
        let t = &c.terms;
        if !t.affinity.is_empty() {
            if t.affinity.iter().any(|term| !node.contains_key(&term.topology_key)) {
                return Err(misfit(AFFINITY, true));
            }
            let found = t.affinity.iter().all(|term| count_at(&self.affinity, &term.topology_key, node) > 0);
            let first = self.affinity.values().all(|m| m.values().all(|n| *n <= 0)) && self.self_match;
            if !found && !first {
                return Err(misfit(AFFINITY, true));
            }
        }
        if t.anti.iter().any(|term| count_at(&self.anti, &term.topology_key, node) > 0) {
            return Err(misfit(ANTI_AFFINITY, false));
        }
        if self.existing_anti.iter().any(|(k, m)| node.get(k).and_then(|v| m.get(v)).is_some_and(|n| *n > 0)) {
            return Err(misfit(EXISTING_ANTI_AFFINITY, false));
        }
        Ok(())
    }
}

/// One topology spread constraint of the incoming pod.
#[derive(Clone, Debug)]
pub struct Constraint {
    pub max_skew: i64,
    pub key: String,
    /// DoNotSchedule (a filter) rather than ScheduleAnyway (a score).
    pub hard: bool,
    pub selector: Option<LabelSelector>,
    pub min_domains: Option<i64>,
    pub honor_affinity: bool,
    pub honor_taints: bool,
    /// The incoming pod matches its own selector.
    pub self_match: i64,
}

/// Topology spread state (upstream's PodTopologySpread PreFilter/PreScore):
/// matching pods per domain of each constraint, over eligible nodes.
#[derive(Clone, Debug, Default)]
pub struct Spread {
    pub constraints: Vec<Constraint>,
    pub counts: Vec<HashMap<String, i64>>,
}

impl Spread {
    fn matches(c: &Constraint, ns: &str, p: &PodFacts) -> bool {
        !p.terminating && p.namespace == ns && c.selector.as_ref().is_some_and(|s| selector_matches(s, &p.labels))
    }

    /// Counts matching pods on every node that the constraints' node
    /// inclusion policies admit and that has all their topology keys.
    pub fn new<'a>(cycle: &Cycle, constraints: Vec<Constraint>, nodes: impl Iterator<Item = (&'a NodeFacts, &'a [Arc<PodFacts>])>) -> Spread {
        let mut counts = vec![HashMap::new(); constraints.len()];
        for (facts, pods) in nodes {
            let mut affinity_ok = None;
            let mut taints_ok = None;
            for (i, c) in constraints.iter().enumerate() {
                let same_kind_keys = constraints.iter().filter(|o| o.hard == c.hard).all(|o| facts.labels.contains_key(&o.key));
                if !same_kind_keys
                    || (c.honor_affinity && !*affinity_ok.get_or_insert_with(|| node_affinity_ok(cycle, facts)))
                    || (c.honor_taints && !*taints_ok.get_or_insert_with(|| untolerated_taint(cycle.tolerations, facts).is_none()))
                {
                    continue;
                }
                let n = pods.iter().filter(|p| Self::matches(c, cycle.namespace, p)).count() as i64;
                *counts[i].entry(facts.labels[&c.key].clone()).or_default() += n;
            }
        }
        Spread { constraints, counts }
    }

    /// Adds (1) or removes (-1) a pod on a node, for preemption's what-ifs.
    pub fn account(&mut self, ns: &str, p: &PodFacts, node: &Labels, by: i64) {
        for (i, c) in self.constraints.iter().enumerate() {
            if let Some(v) = node.get(&c.key)
                && Self::matches(c, ns, p)
                && let Some(n) = self.counts[i].get_mut(v)
            {
                *n += by;
            }
        }
    }

    fn min(&self, i: usize) -> i64 {
        let c = &self.constraints[i];
        if c.min_domains.is_some_and(|m| (self.counts[i].len() as i64) < m) {
            return 0;
        }
        self.counts[i].values().copied().min().unwrap_or(0)
    }

    fn check(&self, node: &Labels) -> Result<(), Misfit> {
        for (i, c) in self.constraints.iter().enumerate().filter(|(_, c)| c.hard) {
            let Some(v) = node.get(&c.key) else { return Err(misfit(SPREAD_LABEL, true)) };
            let here = self.counts[i].get(v).copied().unwrap_or(0);
            if here + c.self_match - self.min(i) > c.max_skew {
                return Err(misfit(SPREAD, false));
            }
        }
        Ok(())
    }

    /// Raw ScheduleAnyway score of a node (lower is better), None when the
    /// node lacks a key.
    fn raw_score(&self, node: &Labels) -> Option<f64> {
        let mut s = 0.0;
        for (i, c) in self.constraints.iter().enumerate().filter(|(_, c)| !c.hard) {
            let v = node.get(&c.key)?;
            let weight = ((self.counts[i].len() + 2) as f64).ln();
            s += self.counts[i].get(v).copied().unwrap_or(0) as f64 * weight + (c.max_skew - 1) as f64;
        }
        Some(s)
    }
}

/// The incoming pod, parsed once per scheduling attempt.
pub struct Cycle<'a> {
    pub pod: &'a Pod,
    pub namespace: &'a str,
    pub labels: Labels,
    pub want: Requests,
    pub nonzero: Requests,
    pub ports: Vec<HostPort>,
    pub tolerations: &'a [Toleration],
    pub node_selector: Option<&'a std::collections::BTreeMap<String, String>>,
    pub required: Option<&'a [NodeSelectorTerm]>,
    pub preferred: &'a [PreferredSchedulingTerm],
    pub priority: i32,
    pub terms: PodTerms,
    /// Set when the pod has required (anti-)affinity or an existing pod's
    /// anti-affinity may select it; None is the fast path.
    pub inter: Option<InterPod>,
    pub spread: Option<Spread>,
}

impl<'a> Cycle<'a> {
    pub fn new(pod: &'a Pod) -> Cycle<'a> {
        static NONE: &[Toleration] = &[];
        let spec = pod.spec.as_ref();
        let na = spec.and_then(|s| s.affinity.as_ref()).and_then(|a| a.node_affinity.as_ref());
        Cycle {
            pod,
            namespace: pod.metadata.namespace.as_deref().unwrap_or(""),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            want: pod_requests(pod, false),
            nonzero: pod_requests(pod, true),
            ports: host_ports(pod),
            tolerations: spec.and_then(|s| s.tolerations.as_deref()).unwrap_or(NONE),
            node_selector: spec.and_then(|s| s.node_selector.as_ref()),
            required: na.and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref()).map(|r| r.node_selector_terms.as_slice()),
            preferred: na.and_then(|n| n.preferred_during_scheduling_ignored_during_execution.as_deref()).unwrap_or(&[]),
            priority: crate::model::priority(pod),
            terms: PodTerms::new(pod),
            inter: None,
            spread: None,
        }
    }

    /// The pod's topology spread constraints with upstream's defaults
    /// (nodeAffinityPolicy Honor, nodeTaintsPolicy Ignore) and
    /// matchLabelKeys folded into the selector.
    pub fn constraints(&self) -> Vec<Constraint> {
        let list = self.pod.spec.as_ref().and_then(|s| s.topology_spread_constraints.as_deref()).unwrap_or(&[]);
        list.iter()
            .map(|t| {
                let mut selector = t.label_selector.clone();
                if let Some(sel) = selector.as_mut() {
                    for k in t.match_label_keys.iter().flatten() {
                        if let Some(v) = self.labels.get(k) {
                            sel.match_labels.get_or_insert_default().insert(k.clone(), v.clone());
                        }
                    }
                }
                let self_match = selector.as_ref().is_some_and(|s| selector_matches(s, &self.labels)) as i64;
                Constraint {
                    max_skew: t.max_skew as i64,
                    key: t.topology_key.clone(),
                    hard: t.when_unsatisfiable == "DoNotSchedule",
                    selector,
                    min_domains: t.min_domains.map(|m| m as i64),
                    honor_affinity: t.node_affinity_policy.as_deref() != Some("Ignore"),
                    honor_taints: t.node_taints_policy.as_deref() == Some("Honor"),
                    self_match,
                }
            })
            .collect()
    }

    /// The pod matches all of its own required affinity terms.
    pub fn matches_own_affinity(&self, ns_labels: NsLabels) -> bool {
        self.terms.affinity.iter().all(|t| t.matches(self.namespace, &self.labels, ns_labels))
    }
}

/// The first NoSchedule/NoExecute taint the pod does not tolerate, as
/// upstream words it; a node not Ready counts as tainted `not-ready`.
fn untolerated_taint(tolerations: &[Toleration], n: &NodeFacts) -> Option<String> {
    if !n.ready
        && !n.taints.iter().any(|t| t.key == "node.kubernetes.io/not-ready")
        && !tolerates(tolerations, "node.kubernetes.io/not-ready", "", "NoSchedule")
    {
        return Some("node(s) had untolerated taint {node.kubernetes.io/not-ready: }".into());
    }
    n.taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerates(tolerations, &t.key, t.value.as_deref().unwrap_or(""), &t.effect))
        .map(|t| format!("node(s) had untolerated taint {{{}: {}}}", t.key, t.value.as_deref().unwrap_or("")))
}

fn node_affinity_ok(c: &Cycle, n: &NodeFacts) -> bool {
    c.node_selector.into_iter().flatten().all(|(k, v)| n.labels.get(k) == Some(v))
        && c.required.is_none_or(|terms| terms.iter().any(|t| node_term_matches(t, &n.labels, &n.fields)))
}

/// Runs every filter on one node, in upstream's order, and stops at the
/// first that fails.
pub fn filter(c: &Cycle, v: &NodeView) -> Result<(), Misfit> {
    filter_with(c, v, c.inter.as_ref(), c.spread.as_ref())
}

/// `filter` with inter-pod and spread states of a what-if (preemption).
pub fn filter_with(c: &Cycle, v: &NodeView, inter: Option<&InterPod>, spread: Option<&Spread>) -> Result<(), Misfit> {
    let n = v.facts;
    if n.unschedulable && !tolerates(c.tolerations, "node.kubernetes.io/unschedulable", "", "NoSchedule") {
        return Err(misfit(UNSCHEDULABLE, true));
    }
    if let Some(t) = untolerated_taint(c.tolerations, n) {
        return Err(Misfit { reasons: vec![Cow::Owned(t)], unresolvable: true });
    }
    if !node_affinity_ok(c, n) {
        return Err(misfit(NODE_AFFINITY, true));
    }
    if !c.ports.is_empty() && v.pods.iter().any(|p| p.ports.iter().any(|u| c.ports.iter().any(|w| w.conflicts(u)))) {
        return Err(misfit(PORTS, false));
    }
    let mut reasons = Vec::new();
    if n.alloc.pods.is_some_and(|max| v.pod_count as i64 + 1 > max) {
        reasons.push(Cow::Borrowed("Too many pods"));
    }
    if c.want.cpu > 0 && n.alloc.cpu.is_some_and(|cap| v.requested.cpu + c.want.cpu > cap) {
        reasons.push(Cow::Borrowed("Insufficient cpu"));
    }
    if c.want.memory > 0 && n.alloc.memory.is_some_and(|cap| v.requested.memory + c.want.memory > cap) {
        reasons.push(Cow::Borrowed("Insufficient memory"));
    }
    if !reasons.is_empty() {
        return Err(Misfit { reasons, unresolvable: false });
    }
    if let Some(s) = spread {
        s.check(&n.labels)?;
    }
    if let Some(i) = inter {
        i.check(c, &n.labels)?;
    }
    Ok(())
}

/// Preferred inter-pod affinity: score per topology domain from the
/// incoming pod's preferred terms over existing pods, and from existing
/// pods' terms that select the incoming pod (required affinity counts 1,
/// as upstream's hardPodAffinityWeight). None when nothing applies.
pub fn inter_pod_scores<'a>(
    c: &Cycle,
    all: impl Iterator<Item = (&'a PodFacts, &'a Labels)>,
    with_terms: impl Iterator<Item = (&'a PodFacts, &'a Labels)>,
    ns_labels: NsLabels,
) -> Option<Counts> {
    let mut s = Counts::new();
    let t = &c.terms;
    if !t.preferred_affinity.is_empty() || !t.preferred_anti.is_empty() {
        for (p, node) in all.filter(|(p, _)| !p.terminating) {
            for term in t.preferred_affinity.iter().filter(|term| term.matches(&p.namespace, &p.labels, ns_labels)) {
                bump(&mut s, &term.topology_key, node, term.weight as i64);
            }
            for term in t.preferred_anti.iter().filter(|term| term.matches(&p.namespace, &p.labels, ns_labels)) {
                bump(&mut s, &term.topology_key, node, -(term.weight as i64));
            }
        }
    }
    for (p, node) in with_terms.filter(|(p, _)| !p.terminating) {
        let pt = &p.terms;
        for (terms, sign) in [(&pt.affinity, 1), (&pt.preferred_affinity, 1), (&pt.preferred_anti, -1)] {
            for term in terms.iter().filter(|term| term.matches(c.namespace, &c.labels, ns_labels)) {
                bump(&mut s, &term.topology_key, node, sign * term.weight as i64);
            }
        }
    }
    (!s.is_empty()).then_some(s)
}

/// Scores the feasible nodes as upstream's default plugins do, each
/// normalised to 0–100 and weighted: TaintToleration 3, NodeAffinity 2,
/// PodTopologySpread 2, InterPodAffinity 2, NodeResourcesFit (least
/// allocated) 1, NodeResourcesBalancedAllocation 1. Higher is better.
pub fn scores(c: &Cycle, views: &[NodeView], inter: Option<&Counts>) -> Vec<f64> {
    let mut total = vec![0.0; views.len()];
    let mut plugin = |weight: f64, raw: &dyn Fn(&NodeView) -> f64, norm: &dyn Fn(&[f64]) -> Vec<f64>| {
        let r: Vec<f64> = views.iter().map(raw).collect();
        for (t, s) in total.iter_mut().zip(norm(&r)) {
            *t += weight * s;
        }
    };
    let fit = |v: &NodeView| {
        let used = Requests { cpu: v.nonzero.cpu + c.nonzero.cpu, memory: v.nonzero.memory + c.nonzero.memory };
        let frac = |u: i64, cap: Option<i64>| cap.filter(|c| *c > 0).map(|cap| (u as f64 / cap as f64).min(1.0));
        (frac(used.cpu, v.facts.alloc.cpu), frac(used.memory, v.facts.alloc.memory))
    };
    let same = |r: &[f64]| r.to_vec();
    plugin(
        1.0,
        &|v| {
            let (cpu, mem) = fit(v);
            let fs: Vec<f64> = [cpu, mem].into_iter().flatten().collect();
            if fs.is_empty() { 0.0 } else { fs.iter().map(|f| (1.0 - f) * 100.0).sum::<f64>() / fs.len() as f64 }
        },
        &same,
    );
    plugin(
        1.0,
        &|v| match fit(v) {
            (Some(a), Some(b)) => (1.0 - (a - b).abs() / 2.0) * 100.0,
            _ => 100.0,
        },
        &same,
    );
    let has_prefer = views.iter().any(|v| v.facts.taints.iter().any(|t| t.effect == "PreferNoSchedule"));
    if has_prefer {
        let prefer: Vec<Toleration> =
            c.tolerations.iter().filter(|t| t.effect.as_deref().is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")).cloned().collect();
        plugin(
            3.0,
            &|v| {
                v.facts
                    .taints
                    .iter()
                    .filter(|t| t.effect == "PreferNoSchedule" && !tolerates(&prefer, &t.key, t.value.as_deref().unwrap_or(""), &t.effect))
                    .count() as f64
            },
            &|r| {
                let max = r.iter().copied().fold(0.0, f64::max);
                r.iter().map(|s| if max == 0.0 { 100.0 } else { 100.0 - s * 100.0 / max }).collect()
            },
        );
    } else {
        plugin(3.0, &|_| 100.0, &same);
    }
    if !c.preferred.is_empty() {
        plugin(
            2.0,
            &|v| c.preferred.iter().filter(|p| node_term_matches(&p.preference, &v.facts.labels, &v.facts.fields)).map(|p| p.weight as f64).sum(),
            &|r| {
                let max = r.iter().copied().fold(0.0, f64::max);
                r.iter().map(|s| if max == 0.0 { 0.0 } else { s * 100.0 / max }).collect()
            },
        );
    }
    if let Some(s) = c.spread.as_ref().filter(|s| s.constraints.iter().any(|c| !c.hard)) {
        plugin(2.0, &|v| s.raw_score(&v.facts.labels).unwrap_or(f64::NAN), &|r| {
            let ok = r.iter().copied().filter(|s| !s.is_nan());
            let (min, max) = ok.fold((f64::MAX, 0.0f64), |(lo, hi), s| (lo.min(s), hi.max(s)));
            r.iter()
                .map(|s| {
                    if s.is_nan() {
                        0.0
                    } else if max == 0.0 {
                        100.0
                    } else {
                        100.0 * (max + min - s) / max
                    }
                })
                .collect()
        });
    }
    if let Some(counts) = inter {
        plugin(2.0, &|v| counts.iter().map(|(k, m)| v.facts.labels.get(k).and_then(|val| m.get(val)).copied().unwrap_or(0) as f64).sum(), &|r| {
            let (min, max) = r.iter().fold((f64::MAX, f64::MIN), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
            r.iter().map(|s| if max > min { 100.0 * (s - min) / (max - min) } else { 0.0 }).collect()
        });
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Node;
    use serde_json::json;

    fn node(v: serde_json::Value) -> NodeFacts {
        let mut n: Node = serde_json::from_value(v).unwrap();
        let st = n.status.get_or_insert_default();
        st.conditions.get_or_insert_with(|| vec![serde_json::from_value(json!({"type": "Ready", "status": "True"})).unwrap()]);
        st.allocatable.get_or_insert_with(|| {
            [("cpu", "2"), ("memory", "1Gi"), ("pods", "3")]
                .iter()
                .map(|(k, v)| (k.to_string(), k8s_openapi::apimachinery::pkg::api::resource::Quantity(v.to_string())))
                .collect()
        });
        NodeFacts::new(&n)
    }

    fn pod(spec: serde_json::Value) -> Pod {
        pod_with(json!({}), spec)
    }

    fn pod_with(labels: serde_json::Value, spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec.as_object_mut().unwrap().entry("containers").or_insert(json!([{"name": "c"}]));
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "default", "uid": "u-p", "labels": labels}, "spec": spec})).unwrap()
    }

    fn placed(labels: serde_json::Value, spec: serde_json::Value, node: &str) -> Arc<PodFacts> {
        Arc::new(PodFacts::new(Arc::new(pod_with(labels, spec)), node))
    }

    fn view<'a>(facts: &'a NodeFacts, pods: &'a [Arc<PodFacts>]) -> NodeView<'a> {
        let mut requested = Requests::default();
        let mut nonzero = Requests::default();
        for p in pods {
            requested.add(p.requests);
            nonzero.add(p.nonzero);
        }
        NodeView { facts, requested, nonzero, pod_count: pods.len(), pods }
    }

    fn reasons(r: Result<(), Misfit>) -> Vec<String> {
        r.err().map(|m| m.reasons.into_iter().map(|r| r.into_owned()).collect()).unwrap_or_default()
    }

    #[test]
    fn unschedulable_taints_and_selectors() {
        let n = node(json!({"metadata": {"name": "n", "labels": {"disk": "ssd"}},
            "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}, {"key": "soft", "effect": "PreferNoSchedule"}]}}));
        let tol = json!([{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]);
        let check = |p: &Pod| reasons(filter(&Cycle::new(p), &view(&n, &[])));
        assert!(check(&pod(json!({"tolerations": tol, "nodeSelector": {"disk": "ssd"}}))).is_empty());
        assert_eq!(check(&pod(json!({}))), ["node(s) had untolerated taint {dedicated: db}"]);
        assert_eq!(check(&pod(json!({"tolerations": tol, "nodeSelector": {"disk": "hdd"}}))), [NODE_AFFINITY]);
        let req = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["nvme"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}]}}});
        assert!(check(&pod(json!({"tolerations": tol, "affinity": req}))).is_empty(), "one term of several suffices");

        let cordoned = node(json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}}));
        let p = pod(json!({}));
        assert_eq!(reasons(filter(&Cycle::new(&p), &view(&cordoned, &[]))), [UNSCHEDULABLE]);
        let p = pod(json!({"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}));
        assert!(reasons(filter(&Cycle::new(&p), &view(&cordoned, &[]))).is_empty(), "tolerated, as DaemonSet pods are");

        let not_ready = node(json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}));
        let p = pod(json!({}));
        assert_eq!(reasons(filter(&Cycle::new(&p), &view(&not_ready, &[]))), ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]);
    }

    #[test]
    fn resources_and_pod_count() {
        let n = node(json!({"metadata": {"name": "n"}}));
        let busy = [placed(json!({}), json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1500m", "memory": "1000Mi"}}}]}), "n")];
        let big = pod(json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "100Mi"}}}]}));
        assert_eq!(reasons(filter(&Cycle::new(&big), &view(&n, &busy))), ["Insufficient cpu", "Insufficient memory"]);
        assert!(reasons(filter(&Cycle::new(&big), &view(&n, &[]))).is_empty());
        let three: Vec<_> = (0..3).map(|_| placed(json!({}), json!({}), "n")).collect();
        assert_eq!(reasons(filter(&Cycle::new(&pod(json!({}))), &view(&n, &three))), ["Too many pods"]);
    }

    #[test]
    fn host_ports() {
        let n = node(json!({"metadata": {"name": "n"}}));
        let ports = |p: serde_json::Value| json!({"containers": [{"name": "c", "ports": [p]}]});
        let used = [placed(json!({}), ports(json!({"containerPort": 80, "hostPort": 8080})), "n")];
        let same = pod(ports(json!({"containerPort": 81, "hostPort": 8080})));
        let m = filter(&Cycle::new(&same), &view(&n, &used)).unwrap_err();
        assert_eq!(m, Misfit { reasons: vec![PORTS.into()], unresolvable: false });
        let udp = pod(ports(json!({"containerPort": 81, "hostPort": 8080, "protocol": "UDP"})));
        assert!(filter(&Cycle::new(&udp), &view(&n, &used)).is_ok());
        let used = [placed(json!({}), ports(json!({"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"})), "n")];
        let other_ip = pod(ports(json!({"containerPort": 81, "hostPort": 8080, "hostIP": "127.0.0.2"})));
        assert!(filter(&Cycle::new(&other_ip), &view(&n, &used)).is_ok());
        assert!(filter(&Cycle::new(&same), &view(&n, &used)).is_err(), "0.0.0.0 takes every address");
    }

    /// Builds the inter-pod state the way the scheduler does, over pods placed on nodes.
    fn inter(c: &Cycle, placed: &[(Arc<PodFacts>, &NodeFacts)]) -> InterPod {
        let none = |_: &str| None;
        let mut s = InterPod { self_match: c.matches_own_affinity(&none), ..Default::default() };
        for (p, n) in placed {
            s.account(c, p, &n.labels, 1, &none);
        }
        s
    }

    #[test]
    fn inter_pod_affinity() {
        let zone = |name: &str, z: &str| node(json!({"metadata": {"name": name, "labels": {"zone": z}}}));
        let (a, b, bare) = (zone("a", "z1"), zone("b", "z2"), node(json!({"metadata": {"name": "c"}})));
        let term = json!([{"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}]);
        let wants_db =
            pod_with(json!({"app": "web"}), json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term}}}));
        let db = placed(json!({"app": "db"}), json!({}), "a");
        let mut c = Cycle::new(&wants_db);
        c.inter = Some(inter(&c, &[(db.clone(), &a)]));
        assert!(filter(&c, &view(&a, &[])).is_ok());
        assert_eq!(reasons(filter(&c, &view(&b, &[]))), [AFFINITY]);
        assert_eq!(reasons(filter(&c, &view(&bare, &[]))), [AFFINITY]);
        // Without any db pod, a web pod cannot start, but a db pod with
        // affinity to db pods can: it would be the first of its kind.
        c.inter = Some(inter(&c, &[]));
        assert_eq!(reasons(filter(&c, &view(&a, &[]))), [AFFINITY]);
        let first_db = pod_with(json!({"app": "db"}), json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term}}}));
        let mut c = Cycle::new(&first_db);
        c.inter = Some(inter(&c, &[]));
        assert!(filter(&c, &view(&b, &[])).is_ok());
        assert_eq!(reasons(filter(&c, &view(&bare, &[]))), [AFFINITY], "the node still needs the topology key");

        // Anti-affinity, the incoming pod's and an existing pod's.
        let host = json!([{"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}]);
        let spread_web =
            pod_with(json!({"app": "web"}), json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": host}}}));
        let web = placed(json!({"app": "web"}), json!({}), "a");
        let mut c = Cycle::new(&spread_web);
        c.inter = Some(inter(&c, &[(web.clone(), &a)]));
        let m = filter(&c, &view(&a, &[])).unwrap_err();
        assert_eq!(m, Misfit { reasons: vec![ANTI_AFFINITY.into()], unresolvable: false });
        assert!(filter(&c, &view(&b, &[])).is_ok());
        let guard =
            placed(json!({"app": "guard"}), json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": host}}}), "b");
        let plain_web = pod_with(json!({"app": "web"}), json!({}));
        let mut c = Cycle::new(&plain_web);
        c.inter = Some(inter(&c, &[(guard, &b)]));
        assert_eq!(reasons(filter(&c, &view(&b, &[]))), [EXISTING_ANTI_AFFINITY]);
        assert!(filter(&c, &view(&a, &[])).is_ok());
        // Removing the existing pod (preemption's what-if) lifts the rule.
        let mut s = c.inter.take().unwrap();
        let guard =
            placed(json!({"app": "guard"}), json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": host}}}), "b");
        s.account(&c, &guard, &b.labels, -1, &|_| None);
        c.inter = Some(s);
        assert!(filter(&c, &view(&b, &[])).is_ok());
    }

    #[test]
    fn topology_spread() {
        let zone = |name: &str, z: &str| node(json!({"metadata": {"name": name, "labels": {"zone": z}}}));
        let nodes = [zone("a", "z1"), zone("b", "z2"), node(json!({"metadata": {"name": "c"}}))];
        let web = |n: &str| placed(json!({"app": "web"}), json!({}), n);
        let pods: Vec<Vec<Arc<PodFacts>>> = vec![vec![web("a"), web("a")], vec![web("b")], vec![]];
        let tsc = |when: &str, extra: serde_json::Value| {
            let mut c = json!({"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": when, "labelSelector": {"matchLabels": {"app": "web"}}});
            c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            pod_with(json!({"app": "web"}), json!({"topologySpreadConstraints": [c]}))
        };
        let build = |p: &Pod| -> Spread {
            let c = Cycle::new(p);
            Spread::new(&c, c.constraints(), nodes.iter().zip(&pods).map(|(n, p)| (n, p.as_slice())))
        };
        let p = tsc("DoNotSchedule", json!({}));
        let mut c = Cycle::new(&p);
        c.spread = Some(build(&p));
        assert_eq!(c.spread.as_ref().unwrap().counts[0], HashMap::from([("z1".to_string(), 2), ("z2".to_string(), 1)]));
        assert_eq!(reasons(filter(&c, &view(&nodes[0], &pods[0]))), [SPREAD], "z1 would have 3 against 1");
        assert!(filter(&c, &view(&nodes[1], &pods[1])).is_ok());
        assert_eq!(reasons(filter(&c, &view(&nodes[2], &[]))), [SPREAD_LABEL]);
        // minDomains above the number of domains makes the global minimum 0.
        let p = tsc("DoNotSchedule", json!({"minDomains": 3}));
        let mut c = Cycle::new(&p);
        c.spread = Some(build(&p));
        assert_eq!(reasons(filter(&c, &view(&nodes[1], &pods[1]))), [SPREAD]);
        // A pod its own selector does not match adds nothing to a domain.
        let mut p = tsc("DoNotSchedule", json!({}));
        p.metadata.labels = None;
        let mut c = Cycle::new(&p);
        c.spread = Some(build(&p));
        assert!(filter(&c, &view(&nodes[0], &pods[0])).is_ok(), "2 + 0 - 1 is within maxSkew");
        // ScheduleAnyway never filters and prefers the emptier zone.
        let p = tsc("ScheduleAnyway", json!({}));
        let mut c = Cycle::new(&p);
        c.spread = Some(build(&p));
        assert!(filter(&c, &view(&nodes[0], &pods[0])).is_ok());
        let views = [view(&nodes[0], &[]), view(&nodes[1], &[])];
        let s = scores(&c, &views, None);
        assert!(s[1] > s[0], "{s:?}");
    }

    #[test]
    fn scoring() {
        let n = |name: &str, labels: serde_json::Value| node(json!({"metadata": {"name": name, "labels": labels}}));
        let (a, b) = (n("a", json!({"disk": "ssd"})), n("b", json!({})));
        let busy = [placed(json!({}), json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}), "a")];
        let p = pod(json!({}));
        let c = Cycle::new(&p);
        let s = scores(&c, &[view(&a, &busy), view(&b, &[])], None);
        assert!(s[1] > s[0], "least allocated wins: {s:?}");
        let pref = json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}});
        let p = pod(json!({"affinity": pref}));
        let c = Cycle::new(&p);
        let s = scores(&c, &[view(&a, &busy), view(&b, &[])], None);
        assert!(s[0] > s[1], "preferred node affinity outweighs load: {s:?}");
        let soft = node(json!({"metadata": {"name": "s"}, "spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}}));
        let p = pod(json!({}));
        let c = Cycle::new(&p);
        let s = scores(&c, &[view(&soft, &[]), view(&b, &[])], None);
        assert!(s[1] > s[0], "PreferNoSchedule taints repel: {s:?}");

        // Preferred pod anti-affinity pushes away from a zone with a match.
        let zone = |name: &str, z: &str| node(json!({"metadata": {"name": name, "labels": {"zone": z}}}));
        let (z1, z2) = (zone("a", "z1"), zone("b", "z2"));
        let term = json!([{"weight": 50, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}}]);
        let p = pod_with(json!({"app": "web"}), json!({"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": term}}}));
        let c = Cycle::new(&p);
        let web = placed(json!({"app": "web"}), json!({}), "a");
        let counts = inter_pod_scores(&c, [(&*web, &z1.labels)].into_iter(), std::iter::empty(), &|_| None).unwrap();
        let s = scores(&c, &[view(&z1, &[]), view(&z2, &[])], Some(&counts));
        assert!(s[1] > s[0], "{s:?}");
        // An existing pod's preferred affinity draws a pod it selects.
        let p = pod_with(json!({"app": "web"}), json!({}));
        let c = Cycle::new(&p);
        let friend =
            placed(json!({"app": "cache"}), json!({"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": term}}}), "b");
        let counts = inter_pod_scores(&c, std::iter::empty(), [(&*friend, &z2.labels)].into_iter(), &|_| None).unwrap();
        let s = scores(&c, &[view(&z1, &[]), view(&z2, &[])], Some(&counts));
        assert!(s[1] > s[0], "{s:?}");
    }
}
