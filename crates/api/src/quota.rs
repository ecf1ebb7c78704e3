//! What an object counts against a ResourceQuota, as upstream's quota
//! evaluators: `count/<resource>[.<group>]` for every object, the legacy
//! names (`pods`, `services`, `secrets`, …), and for pods that are not
//! finished their compute requests and limits (`requests.cpu` and its alias
//! `cpu`, `limits.memory`, …), for services their node ports and load
//! balancers, for claims their storage. Shared by the quota controller
//! (sums) and admission (one object's charge).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::quantity::Quantity;

/// Core resources quotas count under their bare plural.
const LEGACY: [&str; 7] = ["pods", "services", "configmaps", "secrets", "persistentvolumeclaims", "replicationcontrollers", "resourcequotas"];
const COMPUTE: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

/// The quota resource name counting objects of `plural` in `group`.
pub fn count_name(plural: &str, group: &str) -> String {
    if group.is_empty() { format!("count/{plural}") } else { format!("count/{plural}.{group}") }
}

/// The `(plural, group)` whose objects a quota resource name is computed from.
pub fn source_of(name: &str) -> Option<(String, String)> {
    if let Some(rest) = name.strip_prefix("count/") {
        let (plural, group) = rest.split_once('.').unwrap_or((rest, ""));
        return Some((plural.to_string(), group.to_string()));
    }
    let core = |p: &str| Some((p.to_string(), String::new()));
    match name {
        n if LEGACY.contains(&n) => core(n),
        "services.nodeports" | "services.loadbalancers" => core("services"),
        "requests.storage" => core("persistentvolumeclaims"),
        n if COMPUTE.contains(&n) => core("pods"),
        n if n.strip_prefix("requests.").or(n.strip_prefix("limits.")).is_some_and(|r| COMPUTE.contains(&r)) => core("pods"),
        _ => None,
    }
}

fn q(v: &Value) -> Option<Quantity> {
    match v {
        Value::String(s) => Quantity::parse(s).ok(),
        Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
        _ => None,
    }
}

fn one() -> Quantity {
    Quantity::parse("1").unwrap()
}

fn terminal(pod: &Value) -> bool {
    matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"))
}

/// A pod's requests or limits of `res`: the containers' sum, or the largest
/// init container's when that is more (they run one at a time, first).
fn pod_amount(pod: &Value, kind: &str, res: &str) -> Option<Quantity> {
    let of = |list: &str| -> Vec<Quantity> {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.pointer(&format!("/resources/{kind}/{res}")).and_then(q))
            .collect()
    };
    let main = of("containers");
    let init = of("initContainers");
    if main.is_empty() && init.is_empty() {
        return None;
    }
    let sum = main.iter().fold(Quantity::zero(), |a, b| a.add(b));
    let init_max = init.into_iter().max_by(|a, b| a.value_cmp(b)).unwrap_or_else(Quantity::zero);
    Some(if init_max.value_cmp(&sum).is_gt() { init_max } else { sum })
}

/// Everything `obj` (of `plural` in `group`) counts, by quota resource name.
pub fn usage(plural: &str, group: &str, obj: &Value) -> BTreeMap<String, Quantity> {
    let mut out = BTreeMap::new();
    if group.is_empty() && plural == "pods" && terminal(obj) {
        return out;
    }
    out.insert(count_name(plural, group), one());
    if group.is_empty() && LEGACY.contains(&plural) {
        out.insert(plural.to_string(), one());
    }
    match (group, plural) {
        ("", "pods") => {
            for res in COMPUTE {
                if let Some(r) = pod_amount(obj, "requests", res) {
                    out.insert(format!("requests.{res}"), r);
                    out.insert(res.to_string(), r);
                }
                if let Some(l) = pod_amount(obj, "limits", res) {
                    out.insert(format!("limits.{res}"), l);
                }
            }
        }
        ("", "services") => {
            let ports = obj.pointer("/spec/ports").and_then(Value::as_array).map(Vec::len).unwrap_or(0);
            let n = |k: usize| Quantity::parse(&k.to_string()).unwrap();
            match obj.pointer("/spec/type").and_then(Value::as_str) {
                Some("NodePort") => {
                    out.insert("services.nodeports".into(), n(ports));
                }
                Some("LoadBalancer") => {
                    out.insert("services.loadbalancers".into(), one());
                    if obj.pointer("/spec/allocateLoadBalancerNodePorts").and_then(Value::as_bool) != Some(false) {
                        out.insert("services.nodeports".into(), n(ports));
                    }
                }
                _ => {}
            }
        }
        ("", "persistentvolumeclaims") => {
            if let Some(s) = obj.pointer("/spec/resources/requests/storage").and_then(q) {
                out.insert("requests.storage".into(), s);
            }
        }
        _ => {}
    }
    out
}

/// For a pod under a quota that limits compute resources named in `hard`:
/// the `requests.cpu for: a,b`-style complaints about containers that do
/// not say how much they need, as upstream's "must specify".
pub fn missing_compute(pod: &Value, hard: &BTreeMap<String, Quantity>) -> Vec<String> {
    let mut out = Vec::new();
    for key in hard.keys() {
        let (kind, res) = match key.split_once('.') {
            Some((k @ ("requests" | "limits"), r)) if COMPUTE.contains(&r) => (k, r),
            None if COMPUTE.contains(&key.as_str()) => ("requests", key.as_str()),
            _ => continue,
        };
        let lacking: Vec<&str> = ["initContainers", "containers"]
            .iter()
            .flat_map(|l| pod.pointer(&format!("/spec/{l}")).and_then(Value::as_array).into_iter().flatten())
            .filter(|c| c.pointer(&format!("/resources/{kind}/{res}")).is_none())
            .filter_map(|c| c.get("name").and_then(Value::as_str))
            .collect();
        if !lacking.is_empty() {
            out.push(format!("{key} for: {}", lacking.join(",")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_services_and_claims() {
        let pod = json!({"spec": {
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
            ]}});
        let u = usage("pods", "", &pod);
        let text = |k: &str| u.get(k).map(|q| q.canonical());
        assert_eq!(text("pods").as_deref(), Some("1"));
        assert_eq!(text("count/pods").as_deref(), Some("1"));
        assert_eq!(text("requests.cpu").as_deref(), Some("2"), "the init container's 2 beats the sum 750m");
        assert_eq!(text("cpu").as_deref(), Some("2"));
        assert_eq!(text("requests.memory").as_deref(), Some("128Mi"));
        assert_eq!(text("limits.memory").as_deref(), Some("128Mi"));
        assert!(usage("pods", "", &json!({"status": {"phase": "Succeeded"}})).is_empty());

        let svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(usage("services", "", &svc)["services.nodeports"].canonical(), "2");
        assert_eq!(usage("deployments", "apps", &json!({})).keys().collect::<Vec<_>>(), ["count/deployments.apps"]);
        let pvc = json!({"spec": {"resources": {"requests": {"storage": "5Gi"}}}});
        assert_eq!(usage("persistentvolumeclaims", "", &pvc)["requests.storage"].canonical(), "5Gi");

        assert_eq!(source_of("count/deployments.apps"), Some(("deployments".into(), "apps".into())));
        assert_eq!(source_of("limits.cpu"), Some(("pods".into(), String::new())));
        assert_eq!(source_of("services.nodeports"), Some(("services".into(), String::new())));
        assert_eq!(source_of("bogus"), None);

        let hard: BTreeMap<String, Quantity> = [("limits.cpu", "2"), ("requests.memory", "1Gi"), ("pods", "3")]
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity::parse(v).unwrap()))
            .collect();
        assert_eq!(missing_compute(&pod, &hard), ["limits.cpu for: i,a,b", "requests.memory for: i"]);
    }
}
