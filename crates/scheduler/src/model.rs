//! What the scheduler reads from Nodes and Pods, parsed once per object
//! version: requests, host ports, taints, label selectors and affinity terms.
//! Pure functions on k8s-openapi types; no IO.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodAffinityTerm, PodStatus, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta, Time};

pub type Labels = BTreeMap<String, String>;

/// Requests in milli-CPU and bytes.
#[derive(Clone, Copy, Default, Debug, PartialEq)]
pub struct Requests {
    pub cpu: i64,
    pub memory: i64,
}

impl Requests {
    pub fn add(&mut self, o: Requests) {
        self.cpu += o.cpu;
        self.memory += o.memory;
    }
    pub fn sub(&mut self, o: Requests) {
        self.cpu -= o.cpu;
        self.memory -= o.memory;
    }
}

/// A quantity in canonical form as milli-units (cpu) or units (memory).
pub fn quantity(q: &str, milli: bool) -> i64 {
    let (num, suffix) = q.split_at(q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len()));
    let n: f64 = num.parse().unwrap_or(0.0);
    let mult = match suffix {
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        _ => 1.0,
    };
    (n * mult * if milli { 1000.0 } else { 1.0 }).round() as i64
}

/// Upstream's stand-ins for a container without requests when scoring, so
/// that pods without requests still spread (100m CPU, 200 MB memory).
const NONZERO_CPU: i64 = 100;
const NONZERO_MEMORY: i64 = 200 * 1024 * 1024;

fn container_requests(c: &Container, nonzero: bool) -> Requests {
    let req = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let get = |k: &str, milli: bool| req.and_then(|m| m.get(k)).map(|q| quantity(&q.0, milli));
    let (cpu, memory) = (get("cpu", true), get("memory", false));
    if nonzero {
        Requests { cpu: cpu.filter(|c| *c != 0).unwrap_or(NONZERO_CPU), memory: memory.filter(|m| *m != 0).unwrap_or(NONZERO_MEMORY) }
    } else {
        Requests { cpu: cpu.unwrap_or(0), memory: memory.unwrap_or(0) }
    }
}

/// A pod's effective requests as the kubelet admits it: the sum of its
/// containers (and sidecars, init containers that keep running), or the
/// largest init container if that is more, plus the pod overhead.
pub fn pod_requests(p: &Pod, nonzero: bool) -> Requests {
    let Some(spec) = p.spec.as_ref() else { return Requests::default() };
    let mut sum = Requests::default();
    for c in &spec.containers {
        sum.add(container_requests(c, nonzero));
    }
    let mut init_max = Requests::default();
    let mut sidecars = Requests::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, nonzero);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(r);
            sum.add(r);
        } else {
            init_max.cpu = init_max.cpu.max(r.cpu + sidecars.cpu);
            init_max.memory = init_max.memory.max(r.memory + sidecars.memory);
        }
    }
    let mut r = Requests { cpu: sum.cpu.max(init_max.cpu), memory: sum.memory.max(init_max.memory) };
    if let Some(o) = spec.overhead.as_ref() {
        r.cpu += o.get("cpu").map(|q| quantity(&q.0, true)).unwrap_or(0);
        r.memory += o.get("memory").map(|q| quantity(&q.0, false)).unwrap_or(0);
    }
    r
}

/// A host port a container asks for: IP (`0.0.0.0` for all), protocol, port.
#[derive(Clone, Debug, PartialEq)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// Two uses of a port collide when protocol and port agree and either
    /// binds every address or both bind the same one.
    pub fn conflicts(&self, o: &HostPort) -> bool {
        self.port == o.port && self.protocol == o.protocol && (self.ip == o.ip || self.ip == "0.0.0.0" || o.ip == "0.0.0.0")
    }
}

pub fn host_ports(p: &Pod) -> Vec<HostPort> {
    let Some(spec) = p.spec.as_ref() else { return Vec::new() };
    let sidecars = spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|h| *h > 0)?;
            let ip = p.host_ip.clone().filter(|i| !i.is_empty()).unwrap_or_else(|| "0.0.0.0".into());
            Some(HostPort { ip, protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()), port })
        })
        .collect()
}

/// Does the toleration list tolerate a taint, as upstream's `ToleratesTaint`?
pub fn tolerates(tolerations: &[Toleration], key: &str, value: &str, effect: &str) -> bool {
    tolerations.iter().any(|t| {
        let effect_ok = t.effect.as_deref().is_none_or(|e| e.is_empty() || e == effect);
        let key_ok = t.key.as_deref().is_none_or(|k| k.is_empty() || k == key);
        let exists = t.operator.as_deref() == Some("Exists");
        effect_ok && key_ok && (exists || t.value.as_deref().unwrap_or("") == value)
    })
}

fn matches_op(labels: &Labels, key: &str, op: &str, values: &[String]) -> bool {
    let v = labels.get(key);
    match op {
        "In" => v.is_some_and(|v| values.contains(v)),
        "NotIn" => v.is_none_or(|v| !values.contains(v)),
        "Exists" => v.is_some(),
        "DoesNotExist" => v.is_none(),
        "Gt" | "Lt" => {
            let (Some(a), Some(b)) = (v.and_then(|v| v.parse::<i64>().ok()), values.first().and_then(|v| v.parse::<i64>().ok())) else {
                return false;
            };
            if op == "Gt" { a > b } else { a < b }
        }
        _ => false,
    }
}

/// A metav1 label selector: every matchLabels pair and expression holds.
/// The empty selector matches everything (a missing one is handled by callers).
pub fn selector_matches(sel: &LabelSelector, labels: &Labels) -> bool {
    sel.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v))
        && sel.match_expressions.iter().flatten().all(|e| matches_op(labels, &e.key, &e.operator, e.values.as_deref().unwrap_or(&[])))
}

fn node_requirements_hold(reqs: &[NodeSelectorRequirement], labels: &Labels) -> bool {
    reqs.iter().all(|e| matches_op(labels, &e.key, &e.operator, e.values.as_deref().unwrap_or(&[])))
}

/// A node selector term holds when it says something and all of its label
/// and field (`metadata.name`) requirements hold; an empty term matches no node.
pub fn node_term_matches(term: &NodeSelectorTerm, labels: &Labels, fields: &Labels) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fs = term.match_fields.as_deref().unwrap_or(&[]);
    (!exprs.is_empty() || !fs.is_empty()) && node_requirements_hold(exprs, labels) && node_requirements_hold(fs, fields)
}

/// Allocatable resources of a node.
#[derive(Clone, Copy, Debug, Default)]
pub struct Alloc {
    pub cpu: Option<i64>,
    pub memory: Option<i64>,
    pub pods: Option<i64>,
}

/// What filters need of a node, parsed once per node version.
#[derive(Clone, Debug)]
pub struct NodeFacts {
    pub name: String,
    pub labels: Labels,
    /// `metadata.name` as the only field node affinity can select on.
    pub fields: Labels,
    pub alloc: Alloc,
    pub ready: bool,
    pub unschedulable: bool,
    pub taints: Vec<Taint>,
}

impl NodeFacts {
    pub fn new(node: &Node) -> NodeFacts {
        let name = node.metadata.name.clone().unwrap_or_default();
        let alloc = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
        let cap = |k: &str, milli: bool| alloc.and_then(|a| a.get(k)).map(|q| quantity(&q.0, milli));
        let ready =
            node.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let spec = node.spec.as_ref();
        NodeFacts {
            fields: [("metadata.name".to_string(), name.clone())].into(),
            name,
            labels: node.metadata.labels.clone().unwrap_or_default(),
            alloc: Alloc { cpu: cap("cpu", true), memory: cap("memory", false), pods: cap("pods", false) },
            ready,
            unschedulable: spec.and_then(|s| s.unschedulable) == Some(true),
            taints: spec.and_then(|s| s.taints.clone()).unwrap_or_default(),
        }
    }
}

/// One pod (anti-)affinity term, with its namespaces resolved against the
/// pod that owns it and matchLabelKeys/mismatchLabelKeys folded into the selector.
#[derive(Clone, Debug)]
pub struct Term {
    pub selector: Option<LabelSelector>,
    pub namespaces: Vec<String>,
    pub ns_selector: Option<LabelSelector>,
    pub topology_key: String,
    pub weight: i32,
}

impl Term {
    pub fn new(t: &PodAffinityTerm, owner_ns: &str, owner_labels: &Labels, weight: i32) -> Term {
        let mut selector = t.label_selector.clone();
        let mut extra = Vec::new();
        for (keys, op) in [(&t.match_label_keys, "In"), (&t.mismatch_label_keys, "NotIn")] {
            for k in keys.iter().flatten() {
                if let Some(v) = owner_labels.get(k) {
                    extra.push(LabelSelectorRequirement { key: k.clone(), operator: op.into(), values: Some(vec![v.clone()]) });
                }
            }
        }
        if let Some(sel) = selector.as_mut()
            && !extra.is_empty()
        {
            sel.match_expressions.get_or_insert_default().extend(extra);
        }
        let mut namespaces = t.namespaces.clone().unwrap_or_default();
        if namespaces.is_empty() && t.namespace_selector.is_none() {
            namespaces.push(owner_ns.to_string());
        }
        Term { selector, namespaces, ns_selector: t.namespace_selector.clone(), topology_key: t.topology_key.clone(), weight }
    }

    /// Does the term select a pod in namespace `ns` with `labels`? A term
    /// without a label selector selects nothing.
    pub fn matches(&self, ns: &str, labels: &Labels, ns_labels: &dyn Fn(&str) -> Option<Labels>) -> bool {
        let Some(sel) = self.selector.as_ref() else { return false };
        let ns_ok = self.namespaces.iter().any(|n| n == ns)
            || self.ns_selector.as_ref().is_some_and(|s| {
                let empty = s.match_labels.as_ref().is_none_or(|m| m.is_empty()) && s.match_expressions.as_ref().is_none_or(|m| m.is_empty());
                empty || ns_labels(ns).is_some_and(|l| selector_matches(s, &l))
            });
        ns_ok && selector_matches(sel, labels)
    }
}

/// A pod's inter-pod affinity terms, by kind.
#[derive(Clone, Debug, Default)]
pub struct PodTerms {
    pub affinity: Vec<Term>,
    pub anti: Vec<Term>,
    pub preferred_affinity: Vec<Term>,
    pub preferred_anti: Vec<Term>,
}

impl PodTerms {
    pub fn new(p: &Pod) -> PodTerms {
        let ns = p.metadata.namespace.as_deref().unwrap_or("");
        let empty = Labels::new();
        let labels = p.metadata.labels.as_ref().unwrap_or(&empty);
        let aff = p.spec.as_ref().and_then(|s| s.affinity.as_ref());
        let pa = aff.and_then(|a| a.pod_affinity.as_ref());
        let paa = aff.and_then(|a| a.pod_anti_affinity.as_ref());
        let req = |v: Option<&Vec<PodAffinityTerm>>| v.into_iter().flatten().map(|t| Term::new(t, ns, labels, 1)).collect::<Vec<_>>();
        let pref = |v: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
            v.into_iter().flatten().map(|w| Term::new(&w.pod_affinity_term, ns, labels, w.weight)).collect::<Vec<_>>()
        };
        PodTerms {
            affinity: req(pa.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())),
            anti: req(paa.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())),
            preferred_affinity: pref(pa.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref())),
            preferred_anti: pref(paa.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref())),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.affinity.is_empty() && self.anti.is_empty() && self.preferred_affinity.is_empty() && self.preferred_anti.is_empty()
    }
}

/// What the scheduler keeps about a pod bound (or assumed bound) to a node.
#[derive(Debug)]
pub struct PodFacts {
    /// With `uid` and `namespace`, all that preempting the pod needs (see
    /// `identity`): the scheduler holds every bound pod, so it keeps facts,
    /// not Pods.
    pub name: String,
    pub start_time: Option<Time>,
    pub uid: String,
    pub namespace: String,
    pub node: String,
    pub labels: Labels,
    pub requests: Requests,
    /// Requests with upstream's non-zero stand-ins, for scoring.
    pub nonzero: Requests,
    pub ports: Vec<HostPort>,
    pub priority: i32,
    pub terminating: bool,
    pub terms: PodTerms,
}

impl PodFacts {
    pub fn new(pod: Arc<Pod>, node: &str) -> PodFacts {
        PodFacts {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            node: node.to_string(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            requests: pod_requests(&pod, false),
            nonzero: pod_requests(&pod, true),
            ports: host_ports(&pod),
            priority: priority(&pod),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            terms: PodTerms::new(&pod),
            name: pod.metadata.name.clone().unwrap_or_default(),
            start_time: pod.status.as_ref().and_then(|s| s.start_time.clone()),
        }
    }

    /// The pod as far as these facts know it: its identity and start time.
    pub fn identity(&self) -> Pod {
        Pod {
            metadata: ObjectMeta { name: Some(self.name.clone()), namespace: Some(self.namespace.clone()), uid: Some(self.uid.clone()), ..Default::default() },
            spec: None,
            status: self.start_time.clone().map(|t| PodStatus { start_time: Some(t), ..Default::default() }),
        }
    }
}

/// `spec.priority`, which the API server fills from the PriorityClass (0 when unset).
pub fn priority(p: &Pod) -> i32 {
    p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity("500m", true), 500);
        assert_eq!(quantity("2", true), 2000);
        assert_eq!(quantity("1Gi", false), 1 << 30);
        assert_eq!(quantity("1500M", false), 1_500_000_000);
    }

    #[test]
    fn requests_count_init_containers_sidecars_and_overhead() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}, {"name": "b", "resources": {"requests": {"cpu": "200m", "memory": "1Mi"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1", "memory": "1Ki"}}}],
            "overhead": {"cpu": "10m"}}}));
        assert_eq!(pod_requests(&p, false), Requests { cpu: 1010, memory: 1 << 20 });
        let empty = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}));
        assert_eq!(pod_requests(&empty, false), Requests::default());
        assert_eq!(pod_requests(&empty, true), Requests { cpu: 100, memory: 200 << 20 });
    }

    #[test]
    fn host_ports_and_conflicts() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "ports": [
            {"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "127.0.0.1"}, {"containerPort": 9}]}]}}));
        let ports = host_ports(&p);
        assert_eq!(ports.len(), 2);
        let hp = |ip: &str, proto: &str, port| HostPort { ip: ip.into(), protocol: proto.into(), port };
        assert_eq!(ports[0], hp("0.0.0.0", "TCP", 8080));
        assert!(ports[0].conflicts(&hp("10.0.0.1", "TCP", 8080)));
        assert!(!ports[0].conflicts(&hp("0.0.0.0", "UDP", 8080)));
        assert!(ports[1].conflicts(&hp("127.0.0.1", "UDP", 53)));
        assert!(!ports[1].conflicts(&hp("127.0.0.2", "UDP", 53)));
        assert!(ports[1].conflicts(&hp("0.0.0.0", "UDP", 53)));
    }

    #[test]
    fn selectors_and_terms() {
        let labels: Labels = [("app".to_string(), "web".to_string()), ("tier".to_string(), "1".to_string())].into();
        let sel: LabelSelector = serde_json::from_value(
            json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["1", "2"]}]}),
        )
        .unwrap();
        assert!(selector_matches(&sel, &labels));
        let sel: LabelSelector = serde_json::from_value(json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]})).unwrap();
        assert!(!selector_matches(&sel, &labels));
        assert!(selector_matches(&LabelSelector::default(), &labels));

        let t: PodAffinityTerm =
            serde_json::from_value(json!({"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone", "matchLabelKeys": ["tier"]}))
                .unwrap();
        let term = Term::new(&t, "default", &labels, 1);
        let none = |_: &str| None;
        assert!(term.matches("default", &labels, &none));
        assert!(!term.matches("other", &labels, &none), "a term without namespaces selects its own namespace");
        let other_tier: Labels = [("app".to_string(), "web".to_string()), ("tier".to_string(), "2".to_string())].into();
        assert!(!term.matches("default", &other_tier, &none), "matchLabelKeys narrows the selector to the owner's value");
        let t: PodAffinityTerm = serde_json::from_value(json!({"topologyKey": "zone"})).unwrap();
        assert!(!Term::new(&t, "default", &labels, 1).matches("default", &labels, &none), "no selector selects nothing");
        let t: PodAffinityTerm =
            serde_json::from_value(json!({"labelSelector": {}, "topologyKey": "zone", "namespaceSelector": {"matchLabels": {"team": "a"}}})).unwrap();
        let term = Term::new(&t, "default", &labels, 1);
        let ns = |n: &str| (n == "x").then(|| Labels::from([("team".to_string(), "a".to_string())]));
        assert!(term.matches("x", &labels, &ns));
        assert!(!term.matches("default", &labels, &ns));
    }

    #[test]
    fn node_terms() {
        let labels: Labels = [("disk".to_string(), "ssd".to_string()), ("gen".to_string(), "5".to_string())].into();
        let fields: Labels = [("metadata.name".to_string(), "n1".to_string())].into();
        let term = |v: serde_json::Value| -> NodeSelectorTerm { serde_json::from_value(v).unwrap() };
        assert!(node_term_matches(&term(json!({"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["4"]}]})), &labels, &fields));
        assert!(!node_term_matches(&term(json!({"matchExpressions": [{"key": "gen", "operator": "Lt", "values": ["4"]}]})), &labels, &fields));
        assert!(node_term_matches(&term(json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]})), &labels, &fields));
        assert!(!node_term_matches(&term(json!({})), &labels, &fields), "an empty term matches no node");
    }
}
