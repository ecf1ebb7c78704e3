//! The scheduler's view of the cluster, kept from watch events (upstream's
//! scheduler cache and scheduling queue): every node with what is bound to
//! it (summed requests, its pods), pods this scheduler assumed bound before
//! the watch confirms it, and the pending pods in three queues — active
//! (ordered by priority, then arrival), backoff (waiting out 1 s doubling
//! to 10 s after a failed attempt) and unschedulable (waiting for a change
//! in the cluster that may help them, or a periodic flush).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::model::{Labels, NodeFacts, PodFacts, Requests, priority};

/// A node and what is bound (or assumed bound) to it. `facts` is None for a
/// node the watch has not shown (yet, or any more) that still has pods.
#[derive(Default)]
pub struct NodeInfo {
    pub facts: Option<NodeFacts>,
    pub requested: Requests,
    pub nonzero: Requests,
    pub pods: Vec<Arc<PodFacts>>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Queue {
    Active,
    InFlight,
    Backoff,
    Unschedulable(Instant),
}

pub struct Pending {
    pub pod: Arc<Pod>,
    pub queue: Queue,
    pub attempts: u32,
    /// Arrival order in the active queue; stale heap entries carry an older one.
    seq: u64,
    /// Has required pod affinity or spread constraints, so a newly bound
    /// pod may be what it waits for.
    constrained: bool,
}

/// How long an unschedulable pod waits at most before it is tried again
/// without a cluster event (upstream waits 5 minutes).
const FLUSH: Duration = Duration::from_secs(30);

fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1 << attempts.saturating_sub(1).min(4)).min(Duration::from_secs(10))
}

/// A pod waits for this scheduler: no node, our scheduler name, not being
/// deleted, no scheduling gates.
pub fn wants_scheduling(p: &Pod) -> bool {
    let Some(spec) = p.spec.as_ref() else { return false };
    spec.node_name.as_deref().is_none_or(str::is_empty)
        && spec.scheduler_name.as_deref().unwrap_or("default-scheduler") == "default-scheduler"
        && p.metadata.deletion_timestamp.is_none()
        && spec.scheduling_gates.as_ref().is_none_or(|g| g.is_empty())
}

fn terminal(p: &Pod) -> bool {
    matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

#[derive(Default)]
pub struct State {
    pub nodes: Vec<NodeInfo>,
    pub by_name: HashMap<String, usize>,
    /// Nodes with facts (the N of "0/N nodes are available").
    pub live: usize,
    /// Bound or assumed pods by uid.
    pub pods: HashMap<String, Arc<PodFacts>>,
    /// Pods this scheduler bound that the watch does not show bound yet.
    pub assumed: HashMap<String, Instant>,
    /// Bound pods with any inter-pod (anti-)affinity term, which every
    /// incoming pod must be checked against.
    pub with_terms: HashMap<String, Arc<PodFacts>>,
    pub pending: HashMap<String, Pending>,
    active: BinaryHeap<(i32, Reverse<u64>, String)>,
    waiting: BinaryHeap<Reverse<(Instant, String)>>,
    unschedulable: HashSet<String>,
    /// The constrained subset of `unschedulable`.
    waiting_on_pods: HashSet<String>,
    seq: u64,
    /// Pods nominated to a node by preemption: node, priority, requests.
    pub nominated: HashMap<String, (String, i32, Requests)>,
    pub ns_labels: HashMap<String, Labels>,
    /// Where the next cycle starts looking, so that cycles share the nodes.
    pub next_start: usize,
    pub rng: u64,
    /// uids seen since the pod watch (re)started listing.
    relist: Option<HashSet<String>>,
    pub nodes_synced: bool,
    pub pods_synced: bool,
}

impl State {
    pub fn node_labels(&self, node: &str) -> Option<&Labels> {
        self.by_name.get(node).and_then(|i| self.nodes[*i].facts.as_ref()).map(|f| &f.labels)
    }

    fn node_index(&mut self, name: &str) -> usize {
        if let Some(i) = self.by_name.get(name) {
            return *i;
        }
        self.nodes.push(NodeInfo::default());
        self.by_name.insert(name.to_string(), self.nodes.len() - 1);
        self.nodes.len() - 1
    }

    /// Drops a node entry that has neither facts nor pods.
    fn prune_node(&mut self, i: usize) {
        if self.nodes[i].facts.is_some() || !self.nodes[i].pods.is_empty() {
            return;
        }
        let name = self.by_name.iter().find(|(_, j)| **j == i).map(|(n, _)| n.clone());
        if let Some(n) = name {
            self.by_name.remove(&n);
        }
        self.nodes.swap_remove(i);
        if i < self.nodes.len() {
            let moved = self.nodes[i].facts.as_ref().map(|f| f.name.clone()).or_else(|| self.nodes[i].pods.first().map(|p| p.node.clone()));
            if let Some(m) = moved {
                self.by_name.insert(m, i);
            }
        }
    }

    pub fn add_placed(&mut self, p: Arc<PodFacts>) {
        let i = self.node_index(&p.node);
        let n = &mut self.nodes[i];
        n.requested.add(p.requests);
        n.nonzero.add(p.nonzero);
        n.pods.push(p.clone());
        if !p.terms.is_empty() {
            self.with_terms.insert(p.uid.clone(), p.clone());
        }
        self.pods.insert(p.uid.clone(), p);
    }

    pub fn remove_placed(&mut self, uid: &str) -> Option<Arc<PodFacts>> {
        let p = self.pods.remove(uid)?;
        self.with_terms.remove(uid);
        if let Some(&i) = self.by_name.get(&p.node) {
            let n = &mut self.nodes[i];
            if let Some(pos) = n.pods.iter().position(|q| q.uid == uid) {
                n.pods.swap_remove(pos);
                n.requested.sub(p.requests);
                n.nonzero.sub(p.nonzero);
            }
            self.prune_node(i);
        }
        Some(p)
    }

    /// Assumes `pod` bound to `node` until the watch says so.
    pub fn assume(&mut self, pod: Arc<Pod>, node: &str) {
        let facts = Arc::new(PodFacts::new(pod, node));
        let uid = facts.uid.clone();
        self.forget_pending(&uid);
        self.nominated.remove(&uid);
        self.assumed.insert(uid, Instant::now());
        self.add_placed(facts);
        // A pod placed is what pods with affinity or spread may wait for.
        self.move_unschedulable(true);
    }

    /// A binding failed: forget the assumption and try the pod again later.
    pub fn bind_failed(&mut self, pod: Arc<Pod>, gone: bool) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if self.assumed.remove(&uid).is_some() {
            self.remove_placed(&uid);
        }
        if !gone && !self.pods.contains_key(&uid) && wants_scheduling(&pod) {
            self.seq += 1;
            let constrained = constrained(&pod);
            self.pending.insert(uid.clone(), Pending { pod, queue: Queue::Unschedulable(Instant::now()), attempts: 1, seq: self.seq, constrained });
            self.retry(&uid, Instant::now());
        }
    }

    fn push_active(&mut self, uid: &str) {
        self.seq += 1;
        if let Some(p) = self.pending.get_mut(uid) {
            p.queue = Queue::Active;
            p.seq = self.seq;
            self.active.push((priority(&p.pod), Reverse(self.seq), uid.to_string()));
        }
    }

    /// Moves an unschedulable pod towards the active queue, through backoff
    /// if its last attempt was recent.
    fn retry(&mut self, uid: &str, now: Instant) {
        self.unschedulable.remove(uid);
        self.waiting_on_pods.remove(uid);
        let Some(p) = self.pending.get_mut(uid) else { return };
        let since = match p.queue {
            Queue::Unschedulable(t) => t,
            _ => return,
        };
        let ready = since + backoff(p.attempts);
        if ready <= now {
            self.push_active(uid);
        } else {
            p.queue = Queue::Backoff;
            self.waiting.push(Reverse((ready, uid.to_string())));
        }
    }

    /// A change in the cluster that may let unschedulable pods fit: all of
    /// them (or only those waiting on other pods) are tried again.
    pub fn move_unschedulable(&mut self, only_constrained: bool) {
        let set = if only_constrained { &self.waiting_on_pods } else { &self.unschedulable };
        if set.is_empty() {
            return;
        }
        let now = Instant::now();
        let uids: Vec<String> = set.iter().cloned().collect();
        for u in uids {
            self.retry(&u, now);
        }
    }

    /// The next pod to schedule, highest priority first; marks it in flight.
    pub fn next(&mut self, now: Instant) -> Option<Arc<Pod>> {
        while let Some(Reverse((t, _))) = self.waiting.peek() {
            if *t > now {
                break;
            }
            let Reverse((_, uid)) = self.waiting.pop().unwrap();
            if self.pending.get(&uid).is_some_and(|p| p.queue == Queue::Backoff) {
                self.push_active(&uid);
            }
        }
        let stale: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|u| self.pending.get(*u).is_some_and(|p| matches!(p.queue, Queue::Unschedulable(t) if now - t >= FLUSH)))
            .cloned()
            .collect();
        for u in stale {
            self.retry(&u, now);
        }
        while let Some((_, Reverse(seq), uid)) = self.active.pop() {
            if let Some(p) = self.pending.get_mut(&uid)
                && p.queue == Queue::Active
                && p.seq == seq
            {
                p.queue = Queue::InFlight;
                p.attempts += 1;
                return Some(p.pod.clone());
            }
        }
        None
    }

    /// When the loop should look again without being woken.
    pub fn next_wake(&self) -> Duration {
        let now = Instant::now();
        let backoff = self.waiting.peek().map(|Reverse((t, _))| t.saturating_duration_since(now));
        backoff.unwrap_or(Duration::from_secs(1)).min(Duration::from_secs(1))
    }

    /// The attempt failed: the pod waits for a cluster change.
    pub fn unschedulable(&mut self, uid: &str) {
        if let Some(p) = self.pending.get_mut(uid)
            && p.queue == Queue::InFlight
        {
            p.queue = Queue::Unschedulable(Instant::now());
            self.unschedulable.insert(uid.to_string());
            if p.constrained {
                self.waiting_on_pods.insert(uid.to_string());
            }
        }
    }

    /// Applies a pod from the watch; true when a pod became ready to schedule.
    pub fn pod_applied(&mut self, pod: Arc<Pod>) -> bool {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if let Some(seen) = self.relist.as_mut() {
            seen.insert(uid.clone());
        }
        if terminal(&pod) {
            self.pod_deleted(&uid);
            return !self.active.is_empty();
        }
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()) {
            self.forget_pending(&uid);
            self.nominated.remove(&uid);
            let was_assumed = self.assumed.remove(&uid).is_some();
            let old = self.remove_placed(&uid);
            let moved = old.as_ref().is_none_or(|o| o.node != node) && !was_assumed;
            let labels_changed = old.as_ref().is_some_and(|o| Some(&o.labels) != pod.metadata.labels.as_ref());
            self.add_placed(Arc::new(PodFacts::new(pod, &node)));
            if moved || labels_changed {
                self.move_unschedulable(true);
            }
            return !self.active.is_empty();
        }
        if self.assumed.contains_key(&uid) {
            // Our binding is on its way; the watch has not seen it yet.
            return false;
        }
        if !wants_scheduling(&pod) {
            self.forget_pending(&uid);
            return false;
        }
        match self.pending.get_mut(&uid) {
            None => {
                let constrained = constrained(&pod);
                self.pending.insert(uid.clone(), Pending { pod, queue: Queue::Active, attempts: 0, seq: 0, constrained });
                self.push_active(&uid);
                true
            }
            Some(p) => {
                // Only a change of what scheduling reads makes a new attempt
                // worthwhile; our own status writes do not.
                let changed = p.pod.spec != pod.spec || p.pod.metadata.labels != pod.metadata.labels;
                p.constrained = constrained(&pod);
                p.pod = pod;
                if changed && matches!(p.queue, Queue::Unschedulable(_)) {
                    self.retry(&uid, Instant::now());
                }
                !self.active.is_empty()
            }
        }
    }

    fn forget_pending(&mut self, uid: &str) {
        self.pending.remove(uid);
        self.unschedulable.remove(uid);
        self.waiting_on_pods.remove(uid);
    }

    pub fn pod_deleted(&mut self, uid: &str) {
        self.forget_pending(uid);
        self.nominated.remove(uid);
        self.assumed.remove(uid);
        if self.remove_placed(uid).is_some() {
            self.move_unschedulable(false);
        }
    }

    pub fn pods_relisting(&mut self) {
        self.relist = Some(HashSet::new());
    }

    /// The pod watch listed everything again: forget pods it no longer shows.
    pub fn pods_relisted(&mut self) {
        let Some(seen) = self.relist.take() else { return };
        let gone: Vec<String> = self
            .pods
            .keys()
            .chain(self.pending.keys())
            .filter(|u| !seen.contains(*u) && self.assumed.get(*u).is_none_or(|t| t.elapsed() > Duration::from_secs(30)))
            .cloned()
            .collect();
        for u in gone {
            self.pod_deleted(&u);
        }
        self.pods_synced = true;
    }

    /// Applies a node from the watch; a change that may help pending pods
    /// moves the unschedulable ones.
    pub fn node_applied(&mut self, node: &Node) {
        let facts = NodeFacts::new(node);
        let i = self.node_index(&facts.name);
        let old = self.nodes[i].facts.replace(facts);
        let new = self.nodes[i].facts.as_ref().unwrap();
        let helps = match &old {
            None => {
                self.live += 1;
                true
            }
            Some(o) => {
                o.labels != new.labels
                    || o.taints != new.taints
                    || o.unschedulable != new.unschedulable
                    || o.ready != new.ready
                    || o.alloc.cpu != new.alloc.cpu
                    || o.alloc.memory != new.alloc.memory
                    || o.alloc.pods != new.alloc.pods
            }
        };
        if helps {
            self.move_unschedulable(false);
        }
    }

    pub fn node_deleted(&mut self, name: &str) {
        if let Some(&i) = self.by_name.get(name)
            && self.nodes[i].facts.take().is_some()
        {
            self.live -= 1;
            self.prune_node(i);
        }
    }

    /// A cheap random number (xorshift), for ties among equally good nodes.
    pub fn random(&mut self) -> u64 {
        if self.rng == 0 {
            self.rng = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0) | 1;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

fn constrained(p: &Pod) -> bool {
    let spec = p.spec.as_ref();
    let aff = spec.and_then(|s| s.affinity.as_ref()).and_then(|a| a.pod_affinity.as_ref());
    aff.is_some_and(|a| a.required_during_scheduling_ignored_during_execution.as_ref().is_some_and(|r| !r.is_empty()))
        || spec.and_then(|s| s.topology_spread_constraints.as_ref()).is_some_and(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, prio: i32, node: Option<&str>) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default", "uid": name},
                "spec": {"priority": prio, "nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}}))
            .unwrap(),
        )
    }

    #[test]
    fn queue_orders_by_priority_then_arrival_and_backs_off() {
        let mut s = State::default();
        for (n, p) in [("a", 0), ("b", 10), ("c", 0), ("d", 10)] {
            assert!(s.pod_applied(pod(n, p, None)));
        }
        let now = Instant::now();
        let order: Vec<String> = std::iter::from_fn(|| s.next(now)).map(|p| p.metadata.name.clone().unwrap()).collect();
        assert_eq!(order, ["b", "d", "a", "c"]);
        s.unschedulable("a");
        assert!(s.next(now).is_none());
        s.move_unschedulable(false);
        assert!(s.next(Instant::now()).is_none(), "a waits out its backoff");
        assert_eq!(s.next(Instant::now() + Duration::from_secs(2)).unwrap().metadata.name.as_deref(), Some("a"));
    }

    #[test]
    fn pods_waiting_on_other_pods_retry_when_one_is_placed() {
        let mut s = State::default();
        let mut spread = (*pod("spread", 0, None)).clone();
        spread.spec.as_mut().unwrap().topology_spread_constraints =
            Some(vec![serde_json::from_value(json!({"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"})).unwrap()]);
        s.pod_applied(Arc::new(spread));
        s.pod_applied(pod("plain", 0, None));
        let now = Instant::now();
        for _ in 0..2 {
            let p = s.next(now).unwrap();
            s.unschedulable(p.metadata.uid.as_deref().unwrap());
        }
        s.pod_applied(pod("other", 0, None));
        let other = s.next(now).unwrap();
        s.assume(other, "n");
        let later = Instant::now() + Duration::from_secs(2);
        assert_eq!(s.next(later).unwrap().metadata.name.as_deref(), Some("spread"));
        assert!(s.next(later).is_none(), "the plain pod waits for a change that frees room");
    }

    #[test]
    fn cache_sums_bound_and_assumed_pods() {
        let mut s = State::default();
        let n: Node = serde_json::from_value(json!({"metadata": {"name": "n"}})).unwrap();
        s.node_applied(&n);
        s.pod_applied(pod("p", 0, None));
        let p = s.next(Instant::now()).unwrap();
        s.assume(p.clone(), "n");
        assert_eq!(s.nodes[0].requested.cpu, 1000);
        // The unbound version of the pod arriving late changes nothing.
        s.pod_applied(pod("p", 0, None));
        assert!(s.pending.is_empty());
        s.pod_applied(pod("p", 0, Some("n")));
        assert!(s.assumed.is_empty());
        assert_eq!((s.nodes[0].requested.cpu, s.nodes[0].pods.len()), (1000, 1));
        s.pod_applied(pod("q", 0, Some("n")));
        s.pod_deleted("p");
        assert_eq!((s.nodes[0].requested.cpu, s.nodes[0].pods.len()), (1000, 1));
        // A binding that failed gives the room back.
        s.pod_applied(pod("r", 0, None));
        let r = s.next(Instant::now()).unwrap();
        s.assume(r.clone(), "n");
        s.bind_failed(r, false);
        assert_eq!(s.nodes[0].requested.cpu, 1000);
        assert!(s.pending.contains_key("r"));
        // Pods on a node the watch does not show keep an entry until they go.
        s.pod_applied(pod("x", 0, Some("elsewhere")));
        assert_eq!(s.live, 1);
        s.pod_deleted("x");
        assert!(!s.by_name.contains_key("elsewhere"));
        assert_eq!(s.by_name["n"], 0);
    }
}
