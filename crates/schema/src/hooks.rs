//! Behaviour a schema cannot say, per kind, each reproducing a named upstream
//! strategy. Kept short and reviewed with suspicion: every hook here exists
//! because upstream's registry strategy for that kind does the same.

use base64::Engine;
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
    // Custom resources with a status subresource drop the status sent on create.
    if def.custom.is_some() {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
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
        // Namespace strategy: every namespace is labelled with its own name.
        let name = obj.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
        let meta = obj.as_object_mut().unwrap().entry("metadata").or_insert_with(|| json!({}));
        if let Some(m) = meta.as_object_mut() {
            let labels = m.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), name);
            }
        }
    }
    if def.group == "batch" && def.kind == "Job" {
        job_selector(obj);
    }
}

/// Per-kind preparation of an update of the main resource (`new` replaces
/// `old`). Namespace strategy's PrepareForUpdate: finalizers change only
/// through `/finalize`, and the name label stays.
pub fn prepare_update(def: &ResourceDef, old: &Value, new: &mut Value) {
    if !(def.group.is_empty() && def.kind == "Namespace") {
        return;
    }
    let Some(map) = new.as_object_mut() else { return };
    let spec = map.entry("spec").or_insert_with(|| json!({}));
    if !spec.is_object() {
        *spec = json!({});
    }
    match old.pointer("/spec/finalizers") {
        Some(f) => spec["finalizers"] = f.clone(),
        None => {
            spec.as_object_mut().unwrap().remove("finalizers");
        }
    }
    let name = old.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if let Some(m) = meta.as_object_mut() {
        let labels = m.entry("labels").or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        labels["kubernetes.io/metadata.name"] = name;
    }
}

/// Job strategy's generateSelector: unless `manualSelector` is set, a Job
/// selects its pods by its own uid, and its template carries that uid and
/// the Job's name (in both the old and the `batch.kubernetes.io/` labels).
fn job_selector(job: &mut Value) {
    if job.pointer("/spec/manualSelector") == Some(&json!(true)) {
        return;
    }
    let uid = job.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("").to_string();
    let name = job.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let Some(spec) = job.get_mut("spec").filter(|s| s.is_object()) else { return };
    spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
    let template = spec.as_object_mut().unwrap().entry("template").or_insert_with(|| json!({}));
    let Some(t) = template.as_object_mut() else { return };
    let meta = t.entry("metadata").or_insert_with(|| json!({}));
    let Some(m) = meta.as_object_mut() else { return };
    let labels = m.entry("labels").or_insert_with(|| json!({}));
    if let Some(l) = labels.as_object_mut() {
        l.insert("batch.kubernetes.io/controller-uid".into(), json!(uid));
        l.insert("batch.kubernetes.io/job-name".into(), json!(name));
        l.insert("controller-uid".into(), json!(uid));
        l.insert("job-name".into(), json!(name));
    }
}

/// Upstream's defaulting functions (`SetDefaults_*` in each API group's
/// `defaults.go`) for the fields users see filled in after a write. Applied to
/// every object written, so they are idempotent: only unset fields change.
pub fn apply_defaults(def: &ResourceDef, obj: &mut Value) {
    // Custom resources default from their structural schema.
    if let Some(c) = &def.custom {
        crate::crd::default(&c.schema, obj);
        return;
    }
    let Some(o) = obj.as_object_mut() else { return };
    match (def.group.as_str(), def.kind.as_str()) {
        ("", "Secret") => {
            set(o, "type", json!("Opaque"));
            // Upstream's conversion folds the write-only stringData into data.
            if let Some(Value::Object(sd)) = o.remove("stringData") {
                let data = o.entry("data").or_insert_with(|| json!({}));
                if let Some(d) = data.as_object_mut() {
                    for (k, v) in sd {
                        let text = v.as_str().unwrap_or_default();
                        d.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(text)));
                    }
                }
            }
        }
        ("", "Pod") => {
            if let Some(spec) = o.get_mut("spec") {
                pod_spec_defaults(spec);
                set_in(spec, "enableServiceLinks", json!(true));
            }
        }
        ("", "Service") => {
            if let Some(spec) = o.get_mut("spec") {
                service_defaults(spec);
            }
        }
        ("", "ReplicationController") => {
            if let Some(spec) = o.get_mut("spec") {
                set_in(spec, "replicas", json!(1));
                template_defaults(spec);
            }
        }
        ("", "PodTemplate") => template_defaults(obj),
        ("apps", "Deployment") => {
            if let Some(spec) = o.get_mut("spec") {
                set_in(spec, "replicas", json!(1));
                set_in(spec, "revisionHistoryLimit", json!(10));
                set_in(spec, "progressDeadlineSeconds", json!(600));
                rolling_update(spec, "strategy", &[("maxUnavailable", json!("25%")), ("maxSurge", json!("25%"))]);
                template_defaults(spec);
            }
        }
        ("apps", "ReplicaSet") => {
            if let Some(spec) = o.get_mut("spec") {
                set_in(spec, "replicas", json!(1));
                template_defaults(spec);
            }
        }
        ("apps", "StatefulSet") => {
            if let Some(spec) = o.get_mut("spec") {
                set_in(spec, "replicas", json!(1));
                set_in(spec, "podManagementPolicy", json!("OrderedReady"));
                set_in(spec, "revisionHistoryLimit", json!(10));
                rolling_update(spec, "updateStrategy", &[("partition", json!(0))]);
                set_in(spec, "persistentVolumeClaimRetentionPolicy", json!({}));
                if let Some(p) = spec.get_mut("persistentVolumeClaimRetentionPolicy") {
                    set_in(p, "whenDeleted", json!("Retain"));
                    set_in(p, "whenScaled", json!("Retain"));
                }
                template_defaults(spec);
            }
        }
        ("apps", "DaemonSet") => {
            if let Some(spec) = o.get_mut("spec") {
                set_in(spec, "revisionHistoryLimit", json!(10));
                rolling_update(spec, "updateStrategy", &[("maxUnavailable", json!(1)), ("maxSurge", json!(0))]);
                template_defaults(spec);
            }
        }
        ("batch", "Job") => {
            if let Some(spec) = o.get_mut("spec") {
                job_defaults(spec);
            }
        }
        ("batch", "CronJob") => {
            if let Some(spec) = o.get_mut("spec") {
                set_in(spec, "concurrencyPolicy", json!("Allow"));
                set_in(spec, "suspend", json!(false));
                set_in(spec, "successfulJobsHistoryLimit", json!(3));
                set_in(spec, "failedJobsHistoryLimit", json!(1));
                if let Some(job) = spec.pointer_mut("/jobTemplate/spec") {
                    job_defaults(job);
                }
            }
        }
        _ => {}
    }
}

/// A workload's update strategy: RollingUpdate unless set, and then the
/// rolling update's own defaults.
fn rolling_update(spec: &mut Value, field: &str, defaults: &[(&str, Value)]) {
    set_in(spec, field, json!({}));
    let Some(st) = spec.get_mut(field) else { return };
    set_in(st, "type", json!("RollingUpdate"));
    if st.get("type") == Some(&json!("RollingUpdate")) {
        set_in(st, "rollingUpdate", json!({}));
        if let Some(ru) = st.get_mut("rollingUpdate") {
            for (k, v) in defaults {
                set_in(ru, k, v.clone());
            }
        }
    }
}

fn set(o: &mut serde_json::Map<String, Value>, key: &str, v: Value) {
    if o.get(key).is_none_or(Value::is_null) {
        o.insert(key.into(), v);
    }
}

fn set_in(obj: &mut Value, key: &str, v: Value) {
    if let Some(o) = obj.as_object_mut() {
        set(o, key, v);
    }
}

/// SetDefaults_Job: one pod at a time, one completion, six retries.
fn job_defaults(spec: &mut Value) {
    let (c, p) = (spec.get("completions").is_some_and(|v| !v.is_null()), spec.get("parallelism").is_some_and(|v| !v.is_null()));
    if !c && !p {
        set_in(spec, "completions", json!(1));
    }
    set_in(spec, "parallelism", json!(1));
    set_in(spec, "backoffLimit", json!(6));
    set_in(spec, "completionMode", json!("NonIndexed"));
    set_in(spec, "suspend", json!(false));
    set_in(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    template_defaults(spec);
}

/// The pod template of a workload gets the pod spec defaults.
fn template_defaults(parent: &mut Value) {
    if let Some(spec) = parent.pointer_mut("/template/spec") {
        pod_spec_defaults(spec);
    }
}

/// SetDefaults_PodSpec and SetDefaults_Container.
fn pod_spec_defaults(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    set_in(spec, "restartPolicy", json!("Always"));
    set_in(spec, "dnsPolicy", json!("ClusterFirst"));
    set_in(spec, "terminationGracePeriodSeconds", json!(30));
    set_in(spec, "securityContext", json!({}));
    set_in(spec, "schedulerName", json!("default-scheduler"));
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            container_defaults(c);
        }
    }
}

fn container_defaults(c: &mut Value) {
    if !c.is_object() {
        return;
    }
    let image = c.get("image").and_then(Value::as_str).unwrap_or("");
    // Always for ":latest" or no tag (a digest pins the image), as upstream.
    let last = image.rsplit('/').next().unwrap_or("");
    let policy = if !image.contains('@') && (!last.contains(':') || last.ends_with(":latest")) { "Always" } else { "IfNotPresent" };
    set_in(c, "imagePullPolicy", json!(policy));
    set_in(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_in(c, "terminationMessagePolicy", json!("File"));
    set_in(c, "resources", json!({}));
    for p in c.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
        set_in(p, "protocol", json!("TCP"));
    }
}

/// SetDefaults_Service: ClusterIP type, no affinity, TCP ports whose target
/// is the port itself, cluster-wide internal traffic.
fn service_defaults(spec: &mut Value) {
    set_in(spec, "type", json!("ClusterIP"));
    set_in(spec, "sessionAffinity", json!("None"));
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or("").to_string();
    for p in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
        set_in(p, "protocol", json!("TCP"));
        if let Some(port) = p.get("port").cloned() {
            set_in(p, "targetPort", port);
        }
    }
    if ty != "ExternalName" {
        set_in(spec, "internalTrafficPolicy", json!("Cluster"));
    }
}

/// Fields that events.k8s.io/v1 names differently from core/v1 Events
/// (upstream stores both as one object and converts between them).
const EVENT_FIELDS: [(&str, &str); 8] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("related", "related"),
];

fn is_events_v1(def: &ResourceDef) -> bool {
    def.group == "events.k8s.io" && def.kind == "Event"
}

/// A stored object as this resource serves it. Objects are stored in one
/// shape per storage; only events.k8s.io Events, stored as core Events, need
/// their fields renamed.
pub fn stored_to_served(def: &ResourceDef, obj: &mut Value) {
    if is_events_v1(def) {
        rename(obj, EVENT_FIELDS.iter().map(|(served, stored)| (*stored, *served)));
    }
}

/// The inverse of `stored_to_served`, applied before an object is stored.
pub fn served_to_stored(def: &ResourceDef, obj: &mut Value) {
    if is_events_v1(def) {
        rename(obj, EVENT_FIELDS.iter().copied());
    }
}

/// Whether `stored_to_served` changes anything for this resource.
pub fn converts(def: &ResourceDef) -> bool {
    is_events_v1(def)
}

fn rename<'a>(obj: &mut Value, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
    let Some(m) = obj.as_object_mut() else { return };
    for (from, to) in pairs {
        if from != to
            && let Some(v) = m.remove(from)
        {
            m.insert(to.to_string(), v);
        }
    }
}

/// A finalizer the server adds when an object of this kind is deleted, so
/// that its cleanup runs first: a CRD waits until its custom objects are
/// gone (upstream's `customresourcecleanup.apiextensions.k8s.io`).
pub fn deletion_finalizer(def: &ResourceDef) -> Option<&'static str> {
    (def.group == "apiextensions.k8s.io" && def.kind == "CustomResourceDefinition").then_some(CRD_CLEANUP)
}

/// The grace period a deletion gets (upstream's pod strategy; `None` for
/// kinds deleted at once): the one asked for, else the pod's own
/// `terminationGracePeriodSeconds` (default 30); zero for pods no node
/// runs (unbound or finished).
pub fn deletion_grace(def: &ResourceDef, obj: &Value, requested: Option<i64>) -> Option<i64> {
    if def.kind != "Pod" || !def.group.is_empty() {
        return None;
    }
    let bound = obj.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
    let done = obj.pointer("/status/phase").and_then(Value::as_str).is_some_and(|p| p == "Succeeded" || p == "Failed");
    if !bound || done {
        return Some(0);
    }
    let own = obj.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(30);
    Some(requested.unwrap_or(own).max(0))
}

pub const CRD_CLEANUP: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Upstream's QoS classification: Guaranteed when every container has equal
/// CPU and memory requests and limits, BestEffort when none has any, else Burstable.
pub fn qos_class(pod: &Value) -> &'static str {
    let containers = ["containers", "initContainers"].iter().filter_map(|k| pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array)).flatten();
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
