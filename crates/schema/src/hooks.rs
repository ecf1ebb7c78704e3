//! Behaviour a schema cannot say, per kind, each reproducing a named upstream
//! strategy. Kept short and reviewed with suspicion: every hook here exists
//! because upstream's registry strategy for that kind does the same.

use serde_json::{Value, json};

use crate::ResourceDef;

/// Upstream strategies set `metadata.generation` to 1 on create and bump it on
/// spec changes for kinds whose spec is reconciled by a controller. Kinds
/// without a spec (ConfigMap, Secret, Event, ...) leave it unset.
pub fn tracks_generation(def: &ResourceDef, obj: &Value) -> bool {
    obj.get("spec").is_some() && !matches!(def.kind.as_str(), "Namespace" | "Node" | "Service" | "Endpoints" | "Event" | "Lease")
}

/// PrepareForCreate: the status a client sends on create is ignored for kinds
/// with a status subresource (upstream resets it), except for the initial
/// values upstream's strategies set. Nodes keep theirs: the node agent
/// registers a Node together with its status.
pub fn prepare_create(def: &ResourceDef, obj: &mut Value) {
    if !def.has_status() || def.kind == "Node" {
        return;
    }
    let status = match (def.group.as_str(), def.kind.as_str()) {
        // Pod strategy: every new pod starts Pending, with its QoS class.
        ("", "Pod") => json!({"phase": "Pending", "qosClass": qos_class(obj)}),
        // Namespace strategy: new namespaces are Active with the "kubernetes" finalizer.
        ("", "Namespace") => json!({"phase": "Active"}),
        ("", "PersistentVolume") | ("", "PersistentVolumeClaim") => json!({"phase": "Pending"}),
        _ => json!({}),
    };
    if let Some(map) = obj.as_object_mut() {
        map.insert("status".into(), status);
    }
    if def.group.is_empty() && def.kind == "Namespace" {
        let spec = obj.as_object_mut().unwrap().entry("spec").or_insert_with(|| json!({}));
        if spec.get("finalizers").is_none() {
            spec["finalizers"] = json!(["kubernetes"]);
        }
    }
}

/// Upstream's QoS classification: Guaranteed when every container has equal
/// CPU and memory requests and limits, BestEffort when none has any, else Burstable.
pub fn qos_class(pod: &Value) -> &'static str {
    let containers = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array))
        .flatten();
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let req = c.pointer("/resources/requests");
        let lim = c.pointer("/resources/limits");
        let has = |v: Option<&Value>| v.and_then(Value::as_object).is_some_and(|m| !m.is_empty());
        if has(req) || has(lim) {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let l = lim.and_then(|m| m.get(r));
            let q = req.and_then(|m| m.get(r)).or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        _ => "Burstable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos() {
        let cases = [
            (json!({"spec":{"containers":[{"name":"a"}]}}), "BestEffort"),
            (json!({"spec":{"containers":[{"name":"a","resources":{"limits":{"cpu":"1","memory":"1Gi"}}}]}}), "Guaranteed"),
            (json!({"spec":{"containers":[{"name":"a","resources":{"requests":{"cpu":"1"}}}]}}), "Burstable"),
            (
                json!({"spec":{"containers":[{"name":"a","resources":{"requests":{"cpu":"1","memory":"1Gi"},"limits":{"cpu":"2","memory":"1Gi"}}}]}}),
                "Burstable",
            ),
        ];
        for (pod, want) in cases {
            assert_eq!(qos_class(&pod), want, "{pod}");
        }
    }
}
