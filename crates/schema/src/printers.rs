//! Server-side Table printing for built-in kinds: the columns upstream's
//! kube-apiserver declares for each kind (names, types, priorities) and the
//! cells it computes from an object, so `kubectl get` shows exactly what it
//! shows against upstream. Objects arrive as their v1 JSON; a missing field
//! reads as upstream's zero value.
//!
//! Upstream always renders the wide cells on the server and lets the client
//! hide priority-1 columns, so every cell function returns all of them.
//! Kinds upstream has no printer for get its default table: "Name" and
//! "Created At".

use crate::Column;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// The columns of a kind and the function that fills one row.
pub struct Printer {
    pub columns: Vec<Column>,
    pub cells: fn(&Value, OffsetDateTime) -> Vec<Value>,
}

type Cells = fn(&Value, OffsetDateTime) -> Vec<Value>;

const fn col(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column { name, type_, format: "", description, priority: 0 }
}

/// A column `kubectl get` shows only with `-o wide`.
const fn wide(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column { name, type_, format: "", description, priority: 1 }
}

const NAME: Column =
    Column { name: "Name", type_: "string", format: "name", description: "Name of the object, unique within its namespace.", priority: 0 };
/// Scale and StorageVersionMigration declare their name column without the
/// "name" format upstream; kept so clients see the same definition.
const PLAIN_NAME: Column = col("Name", "string", "Name of the object, unique within its namespace.");
const AGE: Column = col("Age", "string", "Time since the object was created.");
const CONTAINERS: Column = wide("Containers", "string", "Names of each container in the template.");
const IMAGES: Column = wide("Images", "string", "Images referenced by each container in the template.");
const SELECTOR: Column = wide("Selector", "string", "Label selector of the pods this object manages.");

/// A custom resource's Table column definitions: Name, then its
/// `additionalPrinterColumns` (or Age when it has none), as upstream's CRD
/// table convertor.
pub fn custom_columns(c: &crate::crd::Custom) -> Vec<Value> {
    let def = |name: &str, type_: &str, format: &str, description: &str, priority: u32| serde_json::json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority});
    let mut out = vec![def(NAME.name, NAME.type_, NAME.format, NAME.description, 0)];
    if c.columns.is_empty() {
        out.push(def(AGE.name, AGE.type_, AGE.format, AGE.description, 0));
    }
    out.extend(c.columns.iter().map(|pc| def(&pc.name, &pc.type_, &pc.format, &pc.description, pc.priority)));
    out
}

/// The cells of a custom object for `custom_columns`: each column's JSONPath
/// values (several joined by commas), dates shown as ages.
pub fn custom_cells(c: &crate::crd::Custom, obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    use jsonpath_rust::JsonPath;
    let mut cells = vec![name(obj)];
    if c.columns.is_empty() {
        cells.push(age(obj, now));
    }
    for pc in &c.columns {
        let found: Vec<&Value> = obj.query(&format!("${}", pc.json_path)).unwrap_or_default();
        cells.push(match (pc.type_.as_str(), found.as_slice()) {
            (_, []) => Value::Null,
            ("date", [v, ..]) => s(since(Some(v), now)),
            (_, [one]) => (*one).clone(),
            (_, many) => s(many.iter().map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).collect::<Vec<_>>().join(",")),
        });
    }
    cells
}

/// The printer upstream uses for `kind` in `group`, or the default table.
pub fn printer(group: &str, kind: &str) -> Printer {
    let (columns, cells): (&[Column], Cells) = match (group, kind) {
        ("", "Pod") => (POD, pod),
        ("", "PodTemplate") => (POD_TEMPLATE, pod_template),
        ("", "ReplicationController") => (REPLICATION_CONTROLLER, replication_controller),
        ("", "Service") => (SERVICE, service),
        ("", "Endpoints") => (ENDPOINTS, endpoints),
        ("", "Node") => (NODE, node),
        ("", "Event") => (EVENT, core_event),
        ("events.k8s.io", "Event") => (EVENT, events_event),
        ("", "Namespace") => (NAMESPACE, namespace),
        ("", "Secret") => (SECRET, secret),
        ("", "ServiceAccount") => (SERVICE_ACCOUNT, service_account),
        ("", "PersistentVolume") => (PERSISTENT_VOLUME, persistent_volume),
        ("", "PersistentVolumeClaim") => (PERSISTENT_VOLUME_CLAIM, persistent_volume_claim),
        ("", "ComponentStatus") => (COMPONENT_STATUS, component_status),
        ("", "ConfigMap") => (CONFIG_MAP, config_map),
        ("", "ResourceQuota") => (RESOURCE_QUOTA, resource_quota),
        ("apps", "Deployment") => (DEPLOYMENT, deployment),
        ("apps", "ReplicaSet") => (REPLICA_SET, replica_set),
        ("apps", "StatefulSet") => (STATEFUL_SET, stateful_set),
        ("apps", "DaemonSet") => (DAEMON_SET, daemon_set),
        ("apps", "ControllerRevision") => (CONTROLLER_REVISION, controller_revision),
        ("batch", "Job") => (JOB, job),
        ("batch", "CronJob") => (CRON_JOB, cron_job),
        ("autoscaling", "HorizontalPodAutoscaler") => (HPA, hpa),
        ("autoscaling", "Scale") => (SCALE, scale),
        ("policy", "PodDisruptionBudget") => (PDB, pdb),
        ("networking.k8s.io", "Ingress") => (INGRESS, ingress),
        ("networking.k8s.io", "IngressClass") => (INGRESS_CLASS, ingress_class),
        ("networking.k8s.io", "NetworkPolicy") => (NETWORK_POLICY, network_policy),
        ("networking.k8s.io", "ServiceCIDR") => (SERVICE_CIDR, service_cidr),
        ("networking.k8s.io", "IPAddress") => (IP_ADDRESS, ip_address),
        ("discovery.k8s.io", "EndpointSlice") => (ENDPOINT_SLICE, endpoint_slice),
        ("rbac.authorization.k8s.io", "RoleBinding") => (ROLE_BINDING, role_binding),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => (CLUSTER_ROLE_BINDING, role_binding),
        ("certificates.k8s.io", "CertificateSigningRequest") => (CSR, csr),
        ("certificates.k8s.io", "ClusterTrustBundle") => (CLUSTER_TRUST_BUNDLE, cluster_trust_bundle),
        ("coordination.k8s.io", "Lease") => (LEASE, lease),
        ("storage.k8s.io", "StorageClass") => (STORAGE_CLASS, storage_class),
        ("storage.k8s.io", "VolumeAttributesClass") => (VOLUME_ATTRIBUTES_CLASS, volume_attributes_class),
        ("storage.k8s.io", "VolumeAttachment") => (VOLUME_ATTACHMENT, volume_attachment),
        ("storage.k8s.io", "CSINode") => (CSI_NODE, csi_node),
        ("storage.k8s.io", "CSIDriver") => (CSI_DRIVER, csi_driver),
        ("storage.k8s.io", "CSIStorageCapacity") => (CSI_STORAGE_CAPACITY, csi_storage_capacity),
        ("scheduling.k8s.io", "PriorityClass") => (PRIORITY_CLASS, priority_class),
        ("node.k8s.io", "RuntimeClass") => (RUNTIME_CLASS, runtime_class),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration") => {
            (WEBHOOK_CONFIGURATION, webhook_configuration)
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => (VALIDATING_POLICY, validating_policy),
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicy") => (MUTATING_POLICY, mutating_policy),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding" | "MutatingAdmissionPolicyBinding") => (POLICY_BINDING, policy_binding),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema") => (FLOW_SCHEMA, flow_schema),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration") => (PRIORITY_LEVEL, priority_level),
        ("resource.k8s.io", "DeviceClass" | "ResourceClaimTemplate") => (NAME_AGE, name_age),
        ("resource.k8s.io", "ResourceClaim") => (RESOURCE_CLAIM, resource_claim),
        ("resource.k8s.io", "ResourceSlice") => (RESOURCE_SLICE, resource_slice),
        ("storagemigration.k8s.io", "StorageVersionMigration") => (STORAGE_VERSION_MIGRATION, storage_version_migration),
        ("apiregistration.k8s.io", "APIService") => (API_SERVICE, api_service),
        _ => (DEFAULT, default_cells),
    };
    Printer { columns: columns.to_vec(), cells }
}

// ---------------------------------------------------------------------------
// Reading JSON and formatting values the way upstream prints them.

fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |cur, key| cur.get(key))
}

fn text<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

fn int(v: &Value, path: &str) -> i64 {
    at(v, path).and_then(Value::as_i64).unwrap_or(0)
}

fn opt_int(v: &Value, path: &str) -> Option<i64> {
    at(v, path).and_then(Value::as_i64)
}

fn flag(v: &Value, path: &str) -> Option<bool> {
    at(v, path).and_then(Value::as_bool)
}

fn list<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    at(v, path).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

fn object<'a>(v: &'a Value, path: &str) -> Option<&'a Map<String, Value>> {
    at(v, path).and_then(Value::as_object)
}

fn s(x: impl Into<String>) -> Value {
    Value::String(x.into())
}

fn or_default(x: &str, default: &str) -> String {
    if x.is_empty() { default.to_string() } else { x.to_string() }
}

fn name(obj: &Value) -> Value {
    s(text(obj, "metadata.name"))
}

fn age(obj: &Value, now: OffsetDateTime) -> Value {
    s(since(at(obj, "metadata.creationTimestamp"), now))
}

fn parse_time(ts: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(ts, &Rfc3339).ok()
}

fn time_at(v: &Value, path: &str) -> Option<OffsetDateTime> {
    at(v, path).and_then(Value::as_str).and_then(parse_time)
}

/// Elapsed time since a timestamp, or "<unknown>" for an unset one.
fn since(ts: Option<&Value>, now: OffsetDateTime) -> String {
    match ts.and_then(Value::as_str).and_then(parse_time) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".into(),
    }
}

/// Upstream's human-readable duration: about two significant units, a
/// little negative skew reads as "0s", more reads as "<invalid>".
pub fn human_duration(d: Duration) -> String {
    let seconds = d.whole_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            dy => format!("{}y{dy}d", hours / 24 / 365),
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// A quantity as stored ("1Gi"); a missing one prints as zero.
fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(q)) => q.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".into(),
    }
}

/// An int-or-string field as upstream prints it.
fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

/// A label map as "k=v,k2=v2" in key order, or "<none>".
fn format_labels(labels: Option<&Map<String, Value>>) -> String {
    let mut pairs: Vec<String> = labels.into_iter().flatten().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect();
    if pairs.is_empty() {
        return "<none>".into();
    }
    pairs.sort();
    pairs.join(",")
}

/// A LabelSelector rendered as upstream's selector string, requirements in
/// key order; None when the selector is malformed.
fn selector_string(sel: &Value) -> Option<String> {
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in sel.get("matchLabels").and_then(Value::as_object).into_iter().flatten() {
        reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
    }
    for e in sel.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        let key = text(e, "key");
        let mut values: Vec<&str> = list(e, "values").iter().filter_map(Value::as_str).collect();
        values.sort_unstable();
        let rendered = match (text(e, "operator"), values.is_empty()) {
            ("In", false) => format!("{key} in ({})", values.join(",")),
            ("NotIn", false) => format!("{key} notin ({})", values.join(",")),
            ("Exists", true) => key.to_string(),
            ("DoesNotExist", true) => format!("!{key}"),
            _ => return None,
        };
        reqs.push((key.to_string(), rendered));
    }
    // A stable sort keeps same-key requirements in the order they were given.
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Some(reqs.into_iter().map(|r| r.1).collect::<Vec<_>>().join(","))
}

/// A LabelSelector for display: "<none>" when it selects by nothing.
fn format_label_selector(sel: Option<&Value>) -> String {
    match sel.map(selector_string) {
        None => "<none>".into(),
        Some(None) => "<error>".into(),
        Some(Some(x)) if x.is_empty() => "<none>".into(),
        Some(Some(x)) => x,
    }
}

/// Container names and images, each comma-joined.
fn container_cells(pod_spec: Option<&Value>) -> [Value; 2] {
    let containers = pod_spec.map(|p| list(p, "containers")).unwrap_or(&[]);
    let names: Vec<&str> = containers.iter().map(|c| text(c, "name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, "image")).collect();
    [s(names.join(",")), s(images.join(","))]
}

/// Access modes in upstream's fixed order, abbreviated.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|x| x.as_str() == Some(m));
    [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
        .iter()
        .filter(|(m, _)| has(m))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

/// "a,b,c + 2 more..." for lists cut at `max` items, or "<unset>" when empty.
fn list_with_more(items: Vec<String>, total: usize, max: usize) -> String {
    if total > max {
        return format!("{} + {} more...", items.join(","), total - max);
    }
    if items.is_empty() { "<unset>".into() } else { items.join(",") }
}

fn find_condition<'a>(conditions: &'a [Value], type_: &str) -> Option<&'a Value> {
    conditions.iter().find(|c| text(c, "type") == type_)
}

fn condition_true(conditions: &[Value], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| text(c, "status") == "True")
}

fn bool_word(v: Option<bool>) -> String {
    match v {
        Some(true) => "True".into(),
        Some(false) => "False".into(),
        None => "<unset>".into(),
    }
}

// ---------------------------------------------------------------------------
// Default table.

const DEFAULT: &[Column] = &[NAME, col("Created At", "date", "Time the object was created.")];

fn default_cells(obj: &Value, _now: OffsetDateTime) -> Vec<Value> {
    // Upstream formats the timestamp again in UTC at second precision.
    let created = time_at(obj, "metadata.creationTimestamp")
        .and_then(|t| t.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into());
    vec![name(obj), s(created)]
}

const NAME_AGE: &[Column] = &[NAME, AGE];

fn name_age(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![name(obj), age(obj, now)]
}

// ---------------------------------------------------------------------------
// Pods.

const POD: &[Column] = &[
    NAME,
    col("Ready", "string", "Ready containers over all containers of the pod."),
    col("Status", "string", "Summary of the pod's phase and container states."),
    col("Restarts", "string", "Container restarts, and how long ago the last one was."),
    AGE,
    wide("IP", "string", "The pod's first IP address."),
    wide("Node", "string", "The node the pod is bound to."),
    wide("Nominated Node", "string", "The node the scheduler nominated for preemption."),
    wide("Readiness Gates", "string", "Readiness gates that are met over all gates."),
];

/// The later of two optional restart times.
fn later(a: Option<OffsetDateTime>, b: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

fn last_termination(status: &Value) -> Option<OffsetDateTime> {
    time_at(status, "lastState.terminated.finishedAt")
}

/// The Terminated reason, or upstream's fallback built from signal/exit code.
fn terminated_reason(term: &Value, prefix: &str) -> String {
    match text(term, "reason") {
        "" if int(term, "signal") != 0 => format!("{prefix}Signal:{}", int(term, "signal")),
        "" => format!("{prefix}ExitCode:{}", int(term, "exitCode")),
        reason => format!("{prefix}{reason}"),
    }
}

fn pod(pod: &Value, now: OffsetDateTime) -> Vec<Value> {
    let phase = text(pod, "status.phase");
    let mut reason = or_default(text(pod, "status.reason"), phase);
    let conditions = list(pod, "status.conditions");
    if conditions.iter().any(|c| text(c, "type") == "PodScheduled" && text(c, "reason") == "SchedulingGated") {
        reason = "SchedulingGated".into();
    }

    let init_specs = list(pod, "spec.initContainers");
    // Sidecars are init containers that keep running; they count as containers.
    let is_sidecar = |name: &str| init_specs.iter().any(|c| text(c, "name") == name && text(c, "restartPolicy") == "Always");
    let total = list(pod, "spec.containers").len() + init_specs.iter().filter(|c| text(c, "restartPolicy") == "Always").count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart = None;
    let mut last_sidecar_restart = None;

    let mut initializing = false;
    for (i, c) in list(pod, "status.initContainerStatuses").iter().enumerate() {
        let count = int(c, "restartCount");
        restarts += count;
        last_restart = later(last_restart, last_termination(c));
        let sidecar = is_sidecar(text(c, "name"));
        if sidecar {
            sidecar_restarts += count;
            last_sidecar_restart = later(last_sidecar_restart, last_termination(c));
        }
        let terminated = at(c, "state.terminated");
        let waiting_reason = text(c, "state.waiting.reason");
        if terminated.is_some_and(|t| int(t, "exitCode") == 0) {
            continue;
        }
        if sidecar && flag(c, "started") == Some(true) {
            if flag(c, "ready") == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            terminated_reason(t, "Init:")
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(conditions, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in list(pod, "status.containerStatuses").iter().rev() {
            restarts += int(c, "restartCount");
            last_restart = later(last_restart, last_termination(c));
            let waiting_reason = text(c, "state.waiting.reason");
            let terminated = at(c, "state.terminated");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                reason = terminated_reason(t, "");
            } else if flag(c, "ready") == Some(true) && at(c, "state.running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose last container completed while others still run is
        // still running (or not ready).
        if reason == "Completed" && has_running {
            reason = if condition_true(conditions, "Ready") { "Running".into() } else { "NotReady".into() };
        }
    }

    let deleting = at(pod, "metadata.deletionTimestamp").is_some_and(|d| !d.is_null());
    if deleting && text(pod, "status.reason") == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Failed" && phase != "Succeeded" {
        reason = "Terminating".into();
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", human_duration(now - t)),
        _ => restarts.to_string(),
    };

    let mut ip = list(pod, "status.podIPs").first().map(|p| text(p, "ip")).unwrap_or("");
    if ip.is_empty() {
        ip = text(pod, "status.podIP");
    }
    let gates = list(pod, "spec.readinessGates");
    let gates_cell = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let met = gates.iter().filter(|g| find_condition(conditions, text(g, "conditionType")).is_some_and(|c| text(c, "status") == "True")).count();
        format!("{met}/{}", gates.len())
    };
    vec![
        name(pod),
        s(format!("{ready}/{total}")),
        s(reason),
        s(restarts_cell),
        age(pod, now),
        s(or_default(ip, "<none>")),
        s(or_default(text(pod, "spec.nodeName"), "<none>")),
        s(or_default(text(pod, "status.nominatedNodeName"), "<none>")),
        s(gates_cell),
    ]
}

const POD_TEMPLATE: &[Column] = &[
    NAME,
    col("Containers", "string", "Names of each container in the template."),
    col("Images", "string", "Images referenced by each container in the template."),
    col("Pod Labels", "string", "The labels of the pod template."),
];

fn pod_template(obj: &Value, _now: OffsetDateTime) -> Vec<Value> {
    let [names, images] = container_cells(at(obj, "template.spec"));
    vec![name(obj), names, images, s(format_labels(object(obj, "template.metadata.labels")))]
}

// ---------------------------------------------------------------------------
// Workloads.

const REPLICATION_CONTROLLER: &[Column] = &[
    NAME,
    col("Desired", "integer", "Number of replicas wanted."),
    col("Current", "integer", "Number of replicas that exist."),
    col("Ready", "integer", "Number of ready replicas."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

/// spec.replicas as stored, or the 1 upstream defaults it to.
fn desired(obj: &Value) -> i64 {
    opt_int(obj, "spec.replicas").unwrap_or(1)
}

fn replication_controller(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let [names, images] = container_cells(at(obj, "spec.template.spec"));
    vec![
        name(obj),
        desired(obj).into(),
        int(obj, "status.replicas").into(),
        int(obj, "status.readyReplicas").into(),
        age(obj, now),
        names,
        images,
        s(format_labels(object(obj, "spec.selector"))),
    ]
}

const REPLICA_SET: &[Column] = REPLICATION_CONTROLLER;

fn replica_set(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let [names, images] = container_cells(at(obj, "spec.template.spec"));
    vec![
        name(obj),
        desired(obj).into(),
        int(obj, "status.replicas").into(),
        int(obj, "status.readyReplicas").into(),
        age(obj, now),
        names,
        images,
        s(format_label_selector(at(obj, "spec.selector"))),
    ]
}

const DEPLOYMENT: &[Column] = &[
    NAME,
    col("Ready", "string", "Ready replicas over desired replicas."),
    col("Up-to-date", "string", "Replicas running the latest template."),
    col("Available", "string", "Replicas available to serve."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn deployment(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let [names, images] = container_cells(at(obj, "spec.template.spec"));
    // A Deployment prints its selector without the "<none>" placeholder.
    let selector = match at(obj, "spec.selector").map(selector_string) {
        Some(None) => "<invalid>".to_string(),
        Some(Some(x)) => x,
        None => String::new(),
    };
    vec![
        name(obj),
        s(format!("{}/{}", int(obj, "status.readyReplicas"), desired(obj))),
        int(obj, "status.updatedReplicas").into(),
        int(obj, "status.availableReplicas").into(),
        age(obj, now),
        names,
        images,
        s(selector),
    ]
}

const STATEFUL_SET: &[Column] = &[NAME, col("Ready", "string", "Ready replicas over desired replicas."), AGE, CONTAINERS, IMAGES];

fn stateful_set(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let [names, images] = container_cells(at(obj, "spec.template.spec"));
    vec![name(obj), s(format!("{}/{}", int(obj, "status.readyReplicas"), desired(obj))), age(obj, now), names, images]
}

const DAEMON_SET: &[Column] = &[
    NAME,
    col("Desired", "integer", "Nodes that should run the daemon pod."),
    col("Current", "integer", "Nodes running at least one daemon pod."),
    col("Ready", "integer", "Nodes whose daemon pod is ready."),
    col("Up-to-date", "integer", "Nodes running the latest template."),
    col("Available", "integer", "Nodes whose daemon pod is available."),
    col("Node Selector", "string", "Node labels the daemon pods are placed by."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn daemon_set(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let [names, images] = container_cells(at(obj, "spec.template.spec"));
    vec![
        name(obj),
        int(obj, "status.desiredNumberScheduled").into(),
        int(obj, "status.currentNumberScheduled").into(),
        int(obj, "status.numberReady").into(),
        int(obj, "status.updatedNumberScheduled").into(),
        int(obj, "status.numberAvailable").into(),
        s(format_labels(object(obj, "spec.template.spec.nodeSelector"))),
        age(obj, now),
        names,
        images,
        s(format_label_selector(at(obj, "spec.selector"))),
    ]
}

const CONTROLLER_REVISION: &[Column] =
    &[NAME, col("Controller", "string", "The object that owns this revision."), col("Revision", "string", "The revision number."), AGE];

fn controller_revision(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let owner = list(obj, "metadata.ownerReferences").iter().find(|o| flag(o, "controller") == Some(true));
    let controller = match owner {
        None => "<none>".to_string(),
        Some(o) => {
            let group = text(o, "apiVersion").rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            let kind = text(o, "kind");
            let group_kind = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
            if group_kind.is_empty() { text(o, "name").to_string() } else { format!("{}/{}", group_kind.to_lowercase(), text(o, "name")) }
        }
    };
    vec![name(obj), s(controller), int(obj, "revision").into(), age(obj, now)]
}

const JOB: &[Column] = &[
    NAME,
    col("Status", "string", "Status of the job."),
    col("Completions", "string", "Succeeded pods over wanted completions."),
    col("Duration", "string", "Time the job took, or has taken so far."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn job(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let succeeded = int(obj, "status.succeeded");
    let completions = match opt_int(obj, "spec.completions") {
        Some(c) => format!("{succeeded}/{c}"),
        None => match opt_int(obj, "spec.parallelism").unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (time_at(obj, "status.startTime"), time_at(obj, "status.completionTime")) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now - start),
        (Some(start), Some(end)) => human_duration(end - start),
    };
    // The first condition of a type decides it, as upstream looks it up.
    let has = |t: &str| condition_true(list(obj, "status.conditions"), t);
    let status = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if at(obj, "metadata.deletionTimestamp").is_some() {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let [names, images] = container_cells(at(obj, "spec.template.spec"));
    vec![name(obj), s(status), s(completions), s(duration), age(obj, now), names, images, s(format_label_selector(at(obj, "spec.selector")))]
}

const CRON_JOB: &[Column] = &[
    NAME,
    col("Schedule", "string", "The cron schedule."),
    col("Timezone", "string", "Time zone the schedule is read in."),
    col("Suspend", "boolean", "Whether new runs are suspended."),
    col("Active", "integer", "Number of running jobs."),
    col("Last Schedule", "string", "Time since a job was last scheduled."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn cron_job(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let last = match at(obj, "status.lastScheduleTime") {
        Some(t) if !t.is_null() => since(Some(t), now),
        _ => "<none>".into(),
    };
    let [names, images] = container_cells(at(obj, "spec.jobTemplate.spec.template.spec"));
    vec![
        name(obj),
        s(text(obj, "spec.schedule")),
        s(or_default(text(obj, "spec.timeZone"), "<none>")),
        s(bool_word(flag(obj, "spec.suspend"))),
        (list(obj, "status.active").len() as i64).into(),
        s(last),
        age(obj, now),
        names,
        images,
        s(format_label_selector(at(obj, "spec.jobTemplate.spec.selector"))),
    ]
}

const HPA: &[Column] = &[
    NAME,
    col("Reference", "string", "The object being scaled."),
    col("Targets", "string", "Current metric values over their targets."),
    col("MinPods", "string", "Lower limit of replicas."),
    col("MaxPods", "string", "Upper limit of replicas."),
    col("Replicas", "string", "Current number of replicas."),
    AGE,
];

/// One HPA metric as "current/target", looking the status up by position.
fn hpa_metric(spec: &Value, status: Option<&Value>) -> String {
    let current = |path: &str| status.and_then(|st| at(st, path)).filter(|v| !v.is_null());
    let unknown = || "<unknown>".to_string();
    match text(spec, "type") {
        t @ ("External" | "Object") => {
            let key = if t == "External" { "external" } else { "object" };
            let target = at(spec, &format!("{key}.target"));
            match target.and_then(|t| t.get("averageValue")) {
                Some(avg) => {
                    let cur = current(&format!("{key}.current.averageValue")).map(|q| quantity(Some(q)));
                    format!("{}/{} (avg)", cur.unwrap_or_else(unknown), quantity(Some(avg)))
                }
                None => {
                    let cur = current(&format!("{key}.current.value")).map(|q| quantity(Some(q)));
                    format!("{}/{}", cur.unwrap_or_else(unknown), quantity(target.and_then(|t| t.get("value"))))
                }
            }
        }
        "Pods" => {
            let cur = current("pods.current.averageValue").map(|q| quantity(Some(q)));
            format!("{}/{}", cur.unwrap_or_else(unknown), quantity(at(spec, "pods.target.averageValue")))
        }
        t @ ("Resource" | "ContainerResource") => {
            let key = if t == "Resource" { "resource" } else { "containerResource" };
            let resource = text(spec, &format!("{key}.name"));
            match at(spec, &format!("{key}.target.averageValue")) {
                Some(avg) => {
                    let cur = current(&format!("{key}.current.averageValue")).map(|q| quantity(Some(q)));
                    format!("{resource}: {}/{}", cur.unwrap_or_else(unknown), quantity(Some(avg)))
                }
                None => {
                    let cur = current(&format!("{key}.current.averageUtilization")).and_then(Value::as_i64).map(|u| format!("{u}%"));
                    let target =
                        opt_int(spec, &format!("{key}.target.averageUtilization")).map(|u| format!("{u}%")).unwrap_or_else(|| "<auto>".into());
                    format!("{resource}: {}/{target}", cur.unwrap_or_else(unknown))
                }
            }
        }
        _ => "<unknown type>".into(),
    }
}

fn hpa_targets(obj: &Value) -> String {
    let specs = list(obj, "spec.metrics");
    if specs.is_empty() {
        // autoscaling/v1 keeps its single CPU target in dedicated fields.
        return match opt_int(obj, "spec.targetCPUUtilizationPercentage") {
            Some(target) => {
                let cur = opt_int(obj, "status.currentCPUUtilizationPercentage").map(|c| format!("{c}%")).unwrap_or_else(|| "<unknown>".into());
                format!("cpu: {cur}/{target}%")
            }
            None => "<none>".into(),
        };
    }
    let statuses = list(obj, "status.currentMetrics");
    let mut items: Vec<String> = specs.iter().enumerate().map(|(i, m)| hpa_metric(m, statuses.get(i))).collect();
    const MAX: usize = 2;
    if items.len() > MAX {
        let more = items.len() - MAX;
        items.truncate(MAX);
        return format!("{} + {more} more...", items.join(", "));
    }
    items.join(", ")
}

fn hpa(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let reference = format!("{}/{}", text(obj, "spec.scaleTargetRef.kind"), text(obj, "spec.scaleTargetRef.name"));
    let min = opt_int(obj, "spec.minReplicas").map(|m| m.to_string()).unwrap_or_else(|| "<unset>".into());
    vec![
        name(obj),
        s(reference),
        s(hpa_targets(obj)),
        s(min),
        int(obj, "spec.maxReplicas").into(),
        int(obj, "status.currentReplicas").into(),
        age(obj, now),
    ]
}

const SCALE: &[Column] =
    &[PLAIN_NAME, col("Desired", "integer", "Number of replicas wanted."), col("Available", "integer", "Number of replicas observed."), AGE];

fn scale(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![name(obj), int(obj, "spec.replicas").into(), int(obj, "status.replicas").into(), age(obj, now)]
}

const PDB: &[Column] = &[
    NAME,
    col("Min Available", "string", "The minimum number of pods that must be available."),
    col("Max Unavailable", "string", "The maximum number of pods that may be unavailable."),
    col("Allowed Disruptions", "integer", "Number of pods that may be disrupted now."),
    AGE,
];

fn pdb(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let bound = |path: &str| at(obj, path).filter(|v| !v.is_null()).map(int_or_string).unwrap_or_else(|| "N/A".into());
    vec![name(obj), s(bound("spec.minAvailable")), s(bound("spec.maxUnavailable")), int(obj, "status.disruptionsAllowed").into(), age(obj, now)]
}

// ---------------------------------------------------------------------------
// Services and networking.

const SERVICE: &[Column] = &[
    NAME,
    col("Type", "string", "How the service is exposed."),
    col("Cluster-IP", "string", "The service's cluster IP."),
    col("External-IP", "string", "Addresses the service is reachable at from outside."),
    col("Port(s)", "string", "Ports the service exposes."),
    AGE,
    wide("Selector", "string", "Labels of the pods the service routes to."),
];

/// Load-balancer ingress points, IPs or hostnames, sorted and deduplicated.
fn load_balancer_addresses(ingress: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = ingress
        .iter()
        .filter_map(|i| {
            let ip = text(i, "ip");
            let host = text(i, "hostname");
            if !ip.is_empty() {
                Some(ip.to_string())
            } else if !host.is_empty() {
                Some(host.to_string())
            } else {
                None
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn service_external_ip(svc: &Value) -> String {
    let external: Vec<&str> = list(svc, "spec.externalIPs").iter().filter_map(Value::as_str).collect();
    match text(svc, "spec.type") {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".into()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let mut all = load_balancer_addresses(list(svc, "status.loadBalancer.ingress"));
            if all.is_empty() && external.is_empty() {
                return "<pending>".into();
            }
            all.extend(external.iter().map(|e| e.to_string()));
            all.join(",")
        }
        "ExternalName" => text(svc, "spec.externalName").to_string(),
        _ => "<unknown>".into(),
    }
}

fn service_ports(svc: &Value) -> String {
    let ports: Vec<String> = list(svc, "spec.ports")
        .iter()
        .map(|p| {
            let protocol = or_default(text(p, "protocol"), "TCP");
            match int(p, "nodePort") {
                n if n > 0 => format!("{}:{n}/{protocol}", int(p, "port")),
                _ => format!("{}/{protocol}", int(p, "port")),
            }
        })
        .collect();
    if ports.is_empty() { "<none>".into() } else { ports.join(",") }
}

fn service(svc: &Value, now: OffsetDateTime) -> Vec<Value> {
    let cluster_ip = list(svc, "spec.clusterIPs").first().and_then(Value::as_str).unwrap_or_else(|| text(svc, "spec.clusterIP"));
    vec![
        name(svc),
        s(text(svc, "spec.type")),
        s(or_default(cluster_ip, "<none>")),
        s(service_external_ip(svc)),
        s(service_ports(svc)),
        age(svc, now),
        s(format_labels(object(svc, "spec.selector"))),
    ]
}

const ENDPOINTS: &[Column] = &[NAME, col("Endpoints", "string", "Addresses and ports of the endpoints."), AGE];

fn host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") }
}

fn endpoints(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let subsets = list(obj, "subsets");
    let cell = if subsets.is_empty() {
        "<none>".to_string()
    } else {
        const MAX: usize = 3;
        let mut items = Vec::new();
        let mut count = 0;
        for ss in subsets {
            let addresses = list(ss, "addresses");
            let ports = list(ss, "ports");
            // A headless service may have addresses without ports.
            let rendered: Vec<Vec<String>> = if ports.is_empty() {
                vec![addresses.iter().map(|a| text(a, "ip").to_string()).collect()]
            } else {
                ports.iter().map(|p| addresses.iter().map(|a| host_port(text(a, "ip"), int(p, "port"))).collect()).collect()
            };
            for group in rendered {
                count += group.len();
                items.extend(group.into_iter().take(MAX - items.len().min(MAX)));
            }
        }
        if count > MAX { format!("{} + {} more...", items.join(","), count - MAX) } else { items.join(",") }
    };
    vec![name(obj), s(cell), age(obj, now)]
}

const ENDPOINT_SLICE: &[Column] = &[
    NAME,
    col("AddressType", "string", "Kind of addresses in the slice."),
    col("Ports", "string", "Ports of the endpoints."),
    col("Endpoints", "string", "Addresses of the endpoints."),
    AGE,
];

fn endpoint_slice(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    const MAX: usize = 3;
    let ports = list(obj, "ports");
    let port_items: Vec<String> = ports
        .iter()
        .take(MAX)
        .map(|p| match (opt_int(p, "port"), p.get("name").and_then(Value::as_str)) {
            (Some(n), _) => n.to_string(),
            (None, Some(n)) => n.to_string(),
            (None, None) => "*".to_string(),
        })
        .collect();
    let addresses: Vec<&str> = list(obj, "endpoints").iter().flat_map(|e| list(e, "addresses").iter().filter_map(Value::as_str)).collect();
    let address_items = addresses.iter().take(MAX).map(|a| a.to_string()).collect();
    vec![
        name(obj),
        s(text(obj, "addressType")),
        s(list_with_more(port_items, ports.len(), MAX)),
        s(list_with_more(address_items, addresses.len(), MAX)),
        age(obj, now),
    ]
}

const INGRESS: &[Column] = &[
    NAME,
    col("Class", "string", "The IngressClass that handles this ingress."),
    col("Hosts", "string", "Hosts the rules match."),
    col("Address", "string", "Addresses of the load balancer."),
    col("Ports", "string", "Ports the ingress listens on."),
    AGE,
];

fn ingress(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    const MAX: usize = 3;
    let rules = list(obj, "spec.rules");
    let mut hosts = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
        }
        let host = text(rule, "host");
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    let hosts_cell = match (hosts.is_empty(), more) {
        (true, _) => "*".to_string(),
        (false, true) => format!("{} + {} more...", hosts.join(","), rules.len() - MAX),
        (false, false) => hosts.join(","),
    };
    let ports = if list(obj, "spec.tls").is_empty() { "80" } else { "80, 443" };
    vec![
        name(obj),
        s(or_default(text(obj, "spec.ingressClassName"), "<none>")),
        s(hosts_cell),
        s(load_balancer_addresses(list(obj, "status.loadBalancer.ingress")).join(",")),
        s(ports),
        age(obj, now),
    ]
}

const INGRESS_CLASS: &[Column] = &[
    NAME,
    col("Controller", "string", "Controller that handles this class."),
    col("Parameters", "string", "Object holding extra configuration for the class."),
    AGE,
];

fn ingress_class(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let parameters = match at(obj, "spec.parameters").filter(|p| p.is_object()) {
        None => "<none>".to_string(),
        Some(p) => {
            let mut out = text(p, "kind").to_string();
            if let Some(group) = p.get("apiGroup").and_then(Value::as_str) {
                out = format!("{out}.{group}");
            }
            format!("{out}/{}", text(p, "name"))
        }
    };
    vec![name(obj), s(text(obj, "spec.controller")), s(parameters), age(obj, now)]
}

const NETWORK_POLICY: &[Column] = &[NAME, col("Pod-Selector", "string", "Pods the policy applies to."), AGE];

fn network_policy(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let selector = format_label_selector(at(obj, "spec.podSelector").filter(|v| !v.is_null()));
    vec![name(obj), s(selector), age(obj, now)]
}

const SERVICE_CIDR: &[Column] = &[NAME, col("CIDRs", "string", "Ranges service IPs are allocated from."), AGE];

fn service_cidr(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let cidrs: Vec<&str> = list(obj, "spec.cidrs").iter().filter_map(Value::as_str).collect();
    vec![name(obj), s(cidrs.join(",")), age(obj, now)]
}

/// Upstream declares no Age column for IPAddress yet still sends the age
/// cell; clients ignore cells beyond the columns, and this keeps the JSON
/// identical to upstream's.
const IP_ADDRESS: &[Column] = &[NAME, col("ParentRef", "string", "The object this IP address is allocated to.")];

fn ip_address(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let parent = match at(obj, "spec.parentRef").filter(|p| p.is_object()) {
        None => "<none>".to_string(),
        Some(p) => {
            let (group, resource) = (text(p, "group"), text(p, "resource"));
            let mut out = if group.is_empty() { resource.to_lowercase() } else { format!("{resource}.{group}").to_lowercase() };
            let namespace = text(p, "namespace");
            if !namespace.is_empty() {
                out = format!("{out}/{namespace}");
            }
            format!("{out}/{}", text(p, "name"))
        }
    };
    vec![name(obj), s(parent), age(obj, now)]
}

// ---------------------------------------------------------------------------
// Cluster and namespace objects.

const NODE: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the node."),
    col("Roles", "string", "The roles of the node."),
    AGE,
    col("Version", "string", "Kubelet version the node reports."),
    wide("Internal-IP", "string", "The node's internal IP address."),
    wide("External-IP", "string", "The node's external IP address."),
    wide("OS-Image", "string", "Operating system image of the node."),
    wide("Kernel-Version", "string", "Kernel version of the node."),
    wide("Container-Runtime", "string", "Container runtime and its version."),
];

fn node(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let mut status: Vec<&str> = match find_condition(list(obj, "status.conditions"), "Ready") {
        Some(c) if text(c, "status") == "True" => vec!["Ready"],
        Some(_) => vec!["NotReady"],
        None => vec!["Unknown"],
    };
    if flag(obj, "spec.unschedulable") == Some(true) {
        status.push("SchedulingDisabled");
    }
    let mut roles: Vec<&str> = object(obj, "metadata.labels")
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(role) if !role.is_empty() => Some(role),
            Some(_) => None,
            None if k == "kubernetes.io/role" => v.as_str().filter(|r| !r.is_empty()),
            None => None,
        })
        .collect();
    roles.sort_unstable();
    roles.dedup();
    let address = |type_: &str| {
        list(obj, "status.addresses")
            .iter()
            .find(|a| text(a, "type") == type_)
            .map(|a| text(a, "address").to_string())
            .unwrap_or_else(|| "<none>".into())
    };
    let info = |field: &str| or_default(text(obj, &format!("status.nodeInfo.{field}")), "<unknown>");
    vec![
        name(obj),
        s(status.join(",")),
        s(if roles.is_empty() { "<none>".to_string() } else { roles.join(",") }),
        age(obj, now),
        s(text(obj, "status.nodeInfo.kubeletVersion")),
        s(address("InternalIP")),
        s(address("ExternalIP")),
        s(info("osImage")),
        s(info("kernelVersion")),
        s(info("containerRuntimeVersion")),
    ]
}

const NAMESPACE: &[Column] = &[NAME, col("Status", "string", "The status of the namespace."), AGE];

fn namespace(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![name(obj), s(text(obj, "status.phase")), age(obj, now)]
}

const EVENT: &[Column] = &[
    col("Last Seen", "string", "Time since the event was last observed."),
    col("Type", "string", "Normal or Warning."),
    col("Reason", "string", "Short machine-readable reason."),
    col("Object", "string", "The object the event is about."),
    wide("Subobject", "string", "Part of the object the event is about."),
    wide("Source", "string", "Component that reported the event."),
    col("Message", "string", "Human-readable description."),
    wide("First Seen", "string", "Time since the event was first observed."),
    wide("Count", "string", "Number of times the event occurred."),
    Column { name: "Name", type_: "string", format: "name", description: "Name of the event.", priority: 1 },
];

/// Where an event shape keeps each field the event table reads.
struct EventFields {
    first: &'static str,
    last: &'static str,
    count: &'static str,
    regarding: &'static str,
    message: &'static str,
    source: &'static str,
}

const CORE_EVENT: EventFields =
    EventFields { first: "firstTimestamp", last: "lastTimestamp", count: "count", regarding: "involvedObject", message: "message", source: "source" };

/// events.k8s.io/v1 carries the same event under its newer field names.
const EVENTS_EVENT: EventFields = EventFields {
    first: "deprecatedFirstTimestamp",
    last: "deprecatedLastTimestamp",
    count: "deprecatedCount",
    regarding: "regarding",
    message: "note",
    source: "deprecatedSource",
};

fn core_event(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    event(obj, now, &CORE_EVENT)
}

fn events_event(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    event(obj, now, &EVENTS_EVENT)
}

fn event(obj: &Value, now: OffsetDateTime, f: &EventFields) -> Vec<Value> {
    let set = |path: &str| at(obj, path).filter(|v| !v.is_null() && v.as_str() != Some(""));
    let first = match set(f.first) {
        Some(t) => since(Some(t), now),
        None => since(set("eventTime"), now),
    };
    let mut last = match set(f.last) {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = int(obj, f.count);
    if at(obj, "series").is_some_and(Value::is_object) {
        last = since(at(obj, "series.lastObservedTime"), now);
        count = int(obj, "series.count");
    } else if count == 0 {
        // Events written through the newer API have no count; each is one.
        count = 1;
    }
    let regarding = |field: &str| text(obj, &format!("{}.{field}", f.regarding));
    let kind = regarding("kind").to_lowercase();
    let object = if regarding("name").is_empty() { kind } else { format!("{kind}/{}", regarding("name")) };
    let component = or_default(text(obj, &format!("{}.component", f.source)), text(obj, "reportingController"));
    let instance = or_default(text(obj, &format!("{}.host", f.source)), text(obj, "reportingInstance"));
    let source = if instance.is_empty() { component } else { format!("{component}, {instance}") };
    vec![
        s(last),
        s(text(obj, "type")),
        s(text(obj, "reason")),
        s(object),
        s(regarding("fieldPath")),
        s(source),
        s(text(obj, f.message).trim()),
        s(first),
        count.into(),
        name(obj),
    ]
}

const SECRET: &[Column] = &[NAME, col("Type", "string", "The type of the secret."), col("Data", "string", "Number of data entries."), AGE];

fn secret(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let data = object(obj, "data").map_or(0, Map::len) as i64;
    vec![name(obj), s(text(obj, "type")), data.into(), age(obj, now)]
}

const SERVICE_ACCOUNT: &[Column] = &[NAME, col("Secrets", "string", "Number of secrets listed."), AGE];

fn service_account(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![name(obj), (list(obj, "secrets").len() as i64).into(), age(obj, now)]
}

const CONFIG_MAP: &[Column] = &[NAME, col("Data", "string", "Number of data entries."), AGE];

fn config_map(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let entries = object(obj, "data").map_or(0, Map::len) + object(obj, "binaryData").map_or(0, Map::len);
    vec![name(obj), (entries as i64).into(), age(obj, now)]
}

const RESOURCE_QUOTA: &[Column] = &[
    NAME,
    col("Request", "string", "Used over hard limits of requests and counts."),
    col("Limit", "string", "Used over hard limits of resource limits."),
    AGE,
];

fn resource_quota(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let mut names: Vec<&String> = object(obj, "status.hard").into_iter().flat_map(Map::keys).collect();
    names.sort();
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    for resource in names {
        let used = quantity(object(obj, "status.used").and_then(|u| u.get(resource)));
        let hard = quantity(object(obj, "status.hard").and_then(|h| h.get(resource)));
        let entry = format!("{resource}: {used}/{hard}");
        match resource.split_once('.') {
            Some(("limits", _)) => limits.push(entry),
            _ => requests.push(entry),
        }
    }
    vec![name(obj), s(requests.join(", ")), s(limits.join(", ")), age(obj, now)]
}

const COMPONENT_STATUS: &[Column] = &[
    NAME,
    col("Status", "string", "Health of the component."),
    col("Message", "string", "Message of the health condition."),
    col("Error", "string", "Error of the health condition."),
];

fn component_status(obj: &Value, _now: OffsetDateTime) -> Vec<Value> {
    let (status, message, error) = match find_condition(list(obj, "conditions"), "Healthy") {
        Some(c) => (if text(c, "status") == "True" { "Healthy" } else { "Unhealthy" }, text(c, "message"), text(c, "error")),
        None => ("Unknown", "", ""),
    };
    vec![name(obj), s(status), s(message), s(error)]
}

// ---------------------------------------------------------------------------
// Storage.

const PERSISTENT_VOLUME: &[Column] = &[
    NAME,
    col("Capacity", "string", "Storage capacity of the volume."),
    col("Access Modes", "string", "Ways the volume can be mounted."),
    col("Reclaim Policy", "string", "What happens to the volume when its claim is released."),
    col("Status", "string", "Phase of the volume."),
    col("Claim", "string", "The claim bound to the volume."),
    col("StorageClass", "string", "StorageClass of the volume."),
    col("VolumeAttributesClass", "string", "VolumeAttributesClass of the volume."),
    col("Reason", "string", "Reason for the volume's phase."),
    AGE,
    wide("VolumeMode", "string", "Filesystem or Block."),
];

const STORAGE_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// The beta annotation wins over the field, as upstream reads the class.
fn storage_class_of(obj: &Value) -> String {
    match object(obj, "metadata.annotations").and_then(|a| a.get(STORAGE_CLASS_ANNOTATION)) {
        Some(class) => class.as_str().unwrap_or("").to_string(),
        None => text(obj, "spec.storageClassName").to_string(),
    }
}

fn deleting_or(obj: &Value, phase: &str) -> String {
    if at(obj, "metadata.deletionTimestamp").is_some_and(|d| !d.is_null()) { "Terminating".into() } else { phase.into() }
}

fn persistent_volume(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let claim = match at(obj, "spec.claimRef").filter(|c| c.is_object()) {
        Some(c) => format!("{}/{}", text(c, "namespace"), text(c, "name")),
        None => String::new(),
    };
    vec![
        name(obj),
        s(quantity(at(obj, "spec.capacity.storage"))),
        s(access_modes(list(obj, "spec.accessModes"))),
        s(text(obj, "spec.persistentVolumeReclaimPolicy")),
        s(deleting_or(obj, text(obj, "status.phase"))),
        s(claim),
        s(storage_class_of(obj)),
        s(or_default(text(obj, "spec.volumeAttributesClassName"), "<unset>")),
        s(text(obj, "status.reason")),
        age(obj, now),
        s(or_default(text(obj, "spec.volumeMode"), "<unset>")),
    ]
}

const PERSISTENT_VOLUME_CLAIM: &[Column] = &[
    NAME,
    col("Status", "string", "Phase of the claim."),
    col("Volume", "string", "The volume bound to the claim."),
    col("Capacity", "string", "Capacity of the bound volume."),
    col("Access Modes", "string", "Ways the bound volume can be mounted."),
    col("StorageClass", "string", "StorageClass of the claim."),
    col("VolumeAttributesClass", "string", "VolumeAttributesClass of the claim."),
    AGE,
    wide("VolumeMode", "string", "Filesystem or Block."),
];

fn persistent_volume_claim(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let volume = text(obj, "spec.volumeName");
    // Capacity and modes are only shown once a volume is bound.
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (quantity(at(obj, "status.capacity.storage")), access_modes(list(obj, "status.accessModes")))
    };
    vec![
        name(obj),
        s(deleting_or(obj, text(obj, "status.phase"))),
        s(volume),
        s(capacity),
        s(modes),
        s(storage_class_of(obj)),
        s(or_default(text(obj, "spec.volumeAttributesClassName"), "<unset>")),
        age(obj, now),
        s(or_default(text(obj, "spec.volumeMode"), "<unset>")),
    ]
}

const STORAGE_CLASS: &[Column] = &[
    NAME,
    col("Provisioner", "string", "Plugin that provisions volumes of this class."),
    col("ReclaimPolicy", "string", "Reclaim policy of provisioned volumes."),
    col("VolumeBindingMode", "string", "When volumes are bound and provisioned."),
    col("AllowVolumeExpansion", "string", "Whether volumes of this class can grow."),
    AGE,
];

fn annotated_true(obj: &Value, keys: &[&str]) -> bool {
    let annotations = object(obj, "metadata.annotations");
    keys.iter().any(|k| annotations.and_then(|a| a.get(*k)).and_then(Value::as_str) == Some("true"))
}

fn storage_class(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let mut shown = text(obj, "metadata.name").to_string();
    if annotated_true(obj, &["storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"]) {
        shown.push_str(" (default)");
    }
    vec![
        s(shown),
        s(text(obj, "provisioner")),
        s(or_default(text(obj, "reclaimPolicy"), "Delete")),
        s(or_default(text(obj, "volumeBindingMode"), "Immediate")),
        flag(obj, "allowVolumeExpansion").unwrap_or(false).into(),
        age(obj, now),
    ]
}

const VOLUME_ATTRIBUTES_CLASS: &[Column] = &[NAME, col("DriverName", "string", "CSI driver the class applies to."), AGE];

fn volume_attributes_class(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let mut shown = text(obj, "metadata.name").to_string();
    if annotated_true(obj, &["volumeattributesclass.kubernetes.io/is-default-class"]) {
        shown.push_str(" (default)");
    }
    vec![s(shown), s(text(obj, "driverName")), age(obj, now)]
}

/// Upstream gives the Attacher column the "name" format too.
const VOLUME_ATTACHMENT: &[Column] = &[
    NAME,
    Column { name: "Attacher", type_: "string", format: "name", description: "Driver that attaches the volume.", priority: 0 },
    col("PV", "string", "The persistent volume being attached."),
    col("Node", "string", "The node the volume is attached to."),
    col("Attached", "boolean", "Whether the attach operation succeeded."),
    AGE,
];

fn volume_attachment(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![
        name(obj),
        s(text(obj, "spec.attacher")),
        s(text(obj, "spec.source.persistentVolumeName")),
        s(text(obj, "spec.nodeName")),
        flag(obj, "status.attached").unwrap_or(false).into(),
        age(obj, now),
    ]
}

const CSI_NODE: &[Column] = &[NAME, col("Drivers", "integer", "Number of CSI drivers registered on the node."), AGE];

fn csi_node(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![name(obj), (list(obj, "spec.drivers").len() as i64).into(), age(obj, now)]
}

const CSI_DRIVER: &[Column] = &[
    NAME,
    col("AttachRequired", "boolean", "Whether volumes need an attach step."),
    col("PodInfoOnMount", "boolean", "Whether pod information is passed on mount."),
    col("StorageCapacity", "boolean", "Whether the driver reports storage capacity."),
    col("TokenRequests", "string", "Audiences of service account tokens passed on mount."),
    col("RequiresRepublish", "boolean", "Whether volumes are republished periodically."),
    col("Modes", "string", "Volume lifecycle modes the driver supports."),
    AGE,
];

fn csi_driver(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let modes: Vec<&str> = list(obj, "spec.volumeLifecycleModes").iter().filter_map(Value::as_str).collect();
    let tokens = match at(obj, "spec.tokenRequests").and_then(Value::as_array) {
        None => "<unset>".to_string(),
        Some(t) => t.iter().map(|r| text(r, "audience")).collect::<Vec<_>>().join(","),
    };
    vec![
        name(obj),
        flag(obj, "spec.attachRequired").unwrap_or(true).into(),
        flag(obj, "spec.podInfoOnMount").unwrap_or(false).into(),
        flag(obj, "spec.storageCapacity").unwrap_or(false).into(),
        s(tokens),
        flag(obj, "spec.requiresRepublish").unwrap_or(false).into(),
        s(if modes.is_empty() { "<none>".to_string() } else { modes.join(",") }),
        age(obj, now),
    ]
}

const CSI_STORAGE_CAPACITY: &[Column] =
    &[NAME, col("StorageClassName", "string", "StorageClass the capacity is for."), col("Capacity", "string", "Capacity available for new volumes.")];

fn csi_storage_capacity(obj: &Value, _now: OffsetDateTime) -> Vec<Value> {
    let capacity = match at(obj, "capacity").filter(|c| !c.is_null()) {
        Some(c) => quantity(Some(c)),
        None => "<unset>".into(),
    };
    vec![name(obj), s(text(obj, "storageClassName")), s(capacity)]
}

// ---------------------------------------------------------------------------
// Access control, certificates, coordination, scheduling.

const ROLE_BINDING: &[Column] = &[
    NAME,
    col("Role", "string", "The role the binding grants."),
    AGE,
    wide("Users", "string", "Users in the binding."),
    wide("Groups", "string", "Groups in the binding."),
    wide("ServiceAccounts", "string", "Service accounts in the binding."),
];
const CLUSTER_ROLE_BINDING: &[Column] = ROLE_BINDING;

fn role_binding(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let subjects = list(obj, "subjects");
    let of = |kind: &str| {
        subjects
            .iter()
            .filter(|x| text(x, "kind") == kind)
            .map(|x| match kind {
                "ServiceAccount" => format!("{}/{}", text(x, "namespace"), text(x, "name")),
                _ => text(x, "name").to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        name(obj),
        s(format!("{}/{}", text(obj, "roleRef.kind"), text(obj, "roleRef.name"))),
        age(obj, now),
        s(of("User")),
        s(of("Group")),
        s(of("ServiceAccount")),
    ]
}

const CSR: &[Column] = &[
    NAME,
    AGE,
    col("SignerName", "string", "Signer asked to sign the certificate."),
    col("Requestor", "string", "User who created the request."),
    col("RequestedDuration", "string", "Validity period asked for."),
    col("Condition", "string", "Approval and issuance state."),
];

fn csr(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let conditions = list(obj, "status.conditions");
    let has = |t: &str| conditions.iter().any(|c| text(c, "type") == t);
    // Denied outranks Approved, as upstream orders them.
    let mut condition = if has("Denied") {
        "Denied".to_string()
    } else if has("Approved") {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if has("Failed") {
        condition.push_str(",Failed");
    }
    if !text(obj, "status.certificate").is_empty() {
        condition.push_str(",Issued");
    }
    let duration = match opt_int(obj, "spec.expirationSeconds") {
        Some(secs) => human_duration(Duration::seconds(secs)),
        None => "<none>".into(),
    };
    vec![name(obj), age(obj, now), s(or_default(text(obj, "spec.signerName"), "<none>")), s(text(obj, "spec.username")), s(duration), s(condition)]
}

const CLUSTER_TRUST_BUNDLE: &[Column] = &[NAME, col("SignerName", "string", "Signer the bundle belongs to.")];

fn cluster_trust_bundle(obj: &Value, _now: OffsetDateTime) -> Vec<Value> {
    vec![name(obj), s(or_default(text(obj, "spec.signerName"), "<none>"))]
}

const LEASE: &[Column] = &[NAME, col("Holder", "string", "Identity holding the lease."), AGE];

fn lease(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![name(obj), s(text(obj, "spec.holderIdentity")), age(obj, now)]
}

const PRIORITY_CLASS: &[Column] = &[
    NAME,
    col("Value", "integer", "Priority given to pods of this class."),
    col("Global-Default", "boolean", "Whether this is the default class."),
    AGE,
    col("PreemptionPolicy", "string", "Whether pods of this class preempt others."),
];

fn priority_class(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![name(obj), int(obj, "value").into(), flag(obj, "globalDefault").unwrap_or(false).into(), age(obj, now), s(text(obj, "preemptionPolicy"))]
}

const RUNTIME_CLASS: &[Column] = &[NAME, col("Handler", "string", "CRI handler that runs the pods."), AGE];

fn runtime_class(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![name(obj), s(text(obj, "handler")), age(obj, now)]
}

// ---------------------------------------------------------------------------
// Admission and flow control.

const WEBHOOK_CONFIGURATION: &[Column] = &[NAME, col("Webhooks", "integer", "Number of webhooks in the configuration."), AGE];

fn webhook_configuration(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![name(obj), (list(obj, "webhooks").len() as i64).into(), age(obj, now)]
}

const PARAM_KIND: Column = col("ParamKind", "string", "Kind of the objects that parameterize the policy.");

const VALIDATING_POLICY: &[Column] = &[NAME, col("Validations", "integer", "Number of validation rules."), PARAM_KIND, AGE];

const MUTATING_POLICY: &[Column] = &[NAME, col("Mutations", "integer", "Number of mutations."), PARAM_KIND, AGE];

fn param_kind(obj: &Value) -> String {
    match at(obj, "spec.paramKind").filter(|p| p.is_object()) {
        Some(p) => format!("{}/{}", text(p, "apiVersion"), text(p, "kind")),
        None => "<unset>".into(),
    }
}

fn validating_policy(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![name(obj), (list(obj, "spec.validations").len() as i64).into(), s(param_kind(obj)), age(obj, now)]
}

fn mutating_policy(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![name(obj), (list(obj, "spec.mutations").len() as i64).into(), s(param_kind(obj)), age(obj, now)]
}

const POLICY_BINDING: &[Column] =
    &[NAME, col("PolicyName", "string", "The policy this binding applies."), col("ParamRef", "string", "The parameter objects of the binding."), AGE];

/// A LabelSelector as Go prints the struct, which is what upstream shows
/// for a selector-based paramRef.
fn go_selector_struct(sel: &Value) -> String {
    let mut labels: Vec<String> =
        object(sel, "matchLabels").into_iter().flatten().map(|(k, v)| format!("{k}: {},", v.as_str().unwrap_or(""))).collect();
    labels.sort();
    let exprs: String = list(sel, "matchExpressions")
        .iter()
        .map(|e| {
            let values: Vec<&str> = list(e, "values").iter().filter_map(Value::as_str).collect();
            format!("LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},", text(e, "key"), text(e, "operator"), values.join(" "))
        })
        .collect();
    format!("&LabelSelector{{MatchLabels:map[string]string{{{}}},MatchExpressions:[]LabelSelectorRequirement{{{exprs}}},}}", labels.join(""))
}

fn policy_binding(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let param = match at(obj, "spec.paramRef").filter(|p| p.is_object()) {
        None => "<unset>".to_string(),
        Some(p) if !text(p, "name").is_empty() => {
            // Without a namespace the parameter may be cluster-scoped or in
            // every namespace; upstream shows "*".
            format!("{}/{}", or_default(text(p, "namespace"), "*"), text(p, "name"))
        }
        Some(p) => match p.get("selector").filter(|x| x.is_object()) {
            Some(sel) => go_selector_struct(sel),
            None => "<unset>".into(),
        },
    };
    vec![name(obj), s(text(obj, "spec.policyName")), s(param), age(obj, now)]
}

const FLOW_SCHEMA: &[Column] = &[
    NAME,
    col("PriorityLevel", "string", "Priority level requests of this schema go to."),
    col("MatchingPrecedence", "string", "Lower values are matched first."),
    col("DistinguisherMethod", "string", "How flows are told apart."),
    AGE,
    col("MissingPL", "string", "Whether the priority level is missing."),
];

fn flow_schema(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let missing = find_condition(list(obj, "status.conditions"), "Dangling").map(|c| text(c, "status").to_string()).unwrap_or_else(|| "?".into());
    vec![
        name(obj),
        s(text(obj, "spec.priorityLevelConfiguration.name")),
        int(obj, "spec.matchingPrecedence").into(),
        s(or_default(text(obj, "spec.distinguisherMethod.type"), "<none>")),
        age(obj, now),
        s(missing),
    ]
}

const PRIORITY_LEVEL: &[Column] = &[
    NAME,
    col("Type", "string", "Exempt or Limited."),
    col("NominalConcurrencyShares", "string", "Share of the server's concurrency."),
    col("Queues", "string", "Number of queues."),
    col("HandSize", "string", "Queues each flow is shuffled across."),
    col("QueueLengthLimit", "string", "Requests each queue may hold."),
    AGE,
];

fn priority_level(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let none = || s("<none>");
    let (mut shares, mut queues, mut hand, mut limit) = (none(), none(), none(), none());
    if let Some(limited) = at(obj, "spec.limited").filter(|l| l.is_object()) {
        shares = int(limited, "nominalConcurrencyShares").into();
        if let Some(q) = at(limited, "limitResponse.queuing").filter(|q| q.is_object()) {
            queues = int(q, "queues").into();
            hand = int(q, "handSize").into();
            limit = int(q, "queueLengthLimit").into();
        }
    }
    vec![name(obj), s(text(obj, "spec.type")), shares, queues, hand, limit, age(obj, now)]
}

// ---------------------------------------------------------------------------
// Dynamic resource allocation, migrations, aggregation.

const RESOURCE_CLAIM: &[Column] = &[NAME, col("State", "string", "Summary of the claim's state (pending, allocated, reserved, deleted)."), AGE];

fn resource_claim(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let deleted = at(obj, "metadata.deletionTimestamp").is_some_and(|d| !d.is_null());
    let mut states = Vec::new();
    if deleted {
        states.push("deleted");
    }
    if at(obj, "status.allocation").is_some_and(|a| !a.is_null()) {
        states.push("allocated");
        if !list(obj, "status.reservedFor").is_empty() {
            states.push("reserved");
        }
    } else if !deleted {
        states.push("pending");
    }
    vec![name(obj), s(states.join(",")), age(obj, now)]
}

const RESOURCE_SLICE: &[Column] = &[
    NAME,
    col("Node", "string", "Node whose devices the slice lists."),
    col("Driver", "string", "Driver that published the slice."),
    col("Pool", "string", "Pool the slice belongs to."),
    AGE,
];

fn resource_slice(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![name(obj), s(text(obj, "spec.nodeName")), s(text(obj, "spec.driver")), s(text(obj, "spec.pool.name")), age(obj, now)]
}

const STORAGE_VERSION_MIGRATION: &[Column] = &[PLAIN_NAME, col("Resource", "string", "Fully qualified resource being migrated.")];

fn storage_version_migration(obj: &Value, _now: OffsetDateTime) -> Vec<Value> {
    let (resource, group) = (text(obj, "spec.resource.resource"), text(obj, "spec.resource.group"));
    let qualified = if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") };
    vec![name(obj), s(qualified)]
}

const API_SERVICE: &[Column] = &[
    NAME,
    col("Service", "string", "Service that serves the API, or Local."),
    col("Available", "string", "Whether the API is available, and why not."),
    AGE,
];

fn api_service(obj: &Value, now: OffsetDateTime) -> Vec<Value> {
    let service = match at(obj, "spec.service").filter(|x| x.is_object()) {
        Some(svc) => format!("{}/{}", text(svc, "namespace"), text(svc, "name")),
        None => "Local".into(),
    };
    let available = match find_condition(list(obj, "status.conditions"), "Available") {
        None => "Unknown".to_string(),
        Some(c) if text(c, "status") == "True" || text(c, "reason").is_empty() => text(c, "status").to_string(),
        Some(c) => format!("{} ({})", text(c, "status"), text(c, "reason")),
    };
    vec![name(obj), s(service), s(available), age(obj, now)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2024-05-01 12:00:00 UTC);

    fn ago(seconds: i64) -> String {
        (NOW - Duration::seconds(seconds)).format(&Rfc3339).unwrap()
    }

    fn row(group: &str, kind: &str, obj: &Value) -> Vec<Value> {
        (printer(group, kind).cells)(obj, NOW)
    }

    /// The cell under the column called `column`.
    fn cell(group: &str, kind: &str, obj: &Value, column: &str) -> Value {
        let p = printer(group, kind);
        let i = p.columns.iter().position(|c| c.name == column).unwrap_or_else(|| panic!("no column {column}"));
        (p.cells)(obj, NOW)[i].clone()
    }

    #[test]
    fn human_durations() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 25 * 60, "3h25m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (2 * 86400, "2d"),
            (2 * 86400 + 3 * 3600, "2d3h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (800 * 86400, "2y70d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (seconds, want) in cases {
            assert_eq!(human_duration(Duration::seconds(seconds)), want, "{seconds}s");
        }
    }

    #[test]
    fn age_cell() {
        let obj = json!({"metadata": {"name": "a", "creationTimestamp": ago(200)}});
        assert_eq!(cell("", "ConfigMap", &obj, "Age"), "3m20s");
        assert_eq!(cell("", "ConfigMap", &json!({"metadata": {"name": "a"}}), "Age"), "<unknown>");
    }

    fn running_container(name: &str, ready: bool) -> Value {
        json!({"name": name, "ready": ready, "restartCount": 0, "state": {"running": {"startedAt": ago(50)}}})
    }

    #[test]
    fn pod_status_column() {
        let base = |status: Value| json!({"metadata": {"name": "p", "creationTimestamp": ago(60)}, "spec": {"containers": [{"name": "c"}]}, "status": status});
        let cases = [
            (
                "running",
                base(
                    json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [running_container("c", true)]}),
                ),
                "Running",
                "1/1",
            ),
            (
                "completed",
                base(
                    json!({"phase": "Succeeded", "containerStatuses": [{"name": "c", "ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
                ),
                "Completed",
                "0/1",
            ),
            (
                "crash loop",
                base(
                    json!({"phase": "Running", "containerStatuses": [{"name": "c", "ready": false, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
                ),
                "CrashLoopBackOff",
                "0/1",
            ),
            (
                "container creating",
                base(
                    json!({"phase": "Pending", "containerStatuses": [{"name": "c", "ready": false, "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
                ),
                "ContainerCreating",
                "0/1",
            ),
            ("pending without statuses", base(json!({"phase": "Pending"})), "Pending", "0/1"),
            (
                "exit code without reason",
                base(json!({"phase": "Failed", "containerStatuses": [{"name": "c", "state": {"terminated": {"exitCode": 3}}}]})),
                "ExitCode:3",
                "0/1",
            ),
            (
                "scheduling gated",
                base(json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]})),
                "SchedulingGated",
                "0/1",
            ),
        ];
        for (what, pod, status, ready) in cases {
            assert_eq!(cell("", "Pod", &pod, "Status"), status, "{what}");
            assert_eq!(cell("", "Pod", &pod, "Ready"), ready, "{what}");
        }
    }

    #[test]
    fn pod_init_containers() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending",
                "initContainerStatuses": [{"name": "init", "ready": false, "state": {"running": {}}}],
                "containerStatuses": [{"name": "c", "ready": false, "state": {"waiting": {"reason": "PodInitializing"}}}]}
        });
        assert_eq!(cell("", "Pod", &pod, "Status"), "Init:0/1");
        let failing = json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "a"}, {"name": "b"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
        });
        assert_eq!(cell("", "Pod", &failing, "Status"), "Init:CrashLoopBackOff");
        assert_eq!(cell("", "Pod", &failing, "Restarts"), "2");
        // A started sidecar counts as a ready container and does not block.
        let sidecar = json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
                "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "state": {"running": {}}}],
                "containerStatuses": [running_container("c", true)]}
        });
        assert_eq!(cell("", "Pod", &sidecar, "Status"), "Running");
        assert_eq!(cell("", "Pod", &sidecar, "Ready"), "2/2");
    }

    #[test]
    fn pod_terminating_and_node_lost() {
        let mut pod = json!({"metadata": {"name": "p", "deletionTimestamp": ago(3)}, "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "containerStatuses": [running_container("c", true)]}});
        assert_eq!(cell("", "Pod", &pod, "Status"), "Terminating");
        pod["status"]["reason"] = json!("NodeLost");
        assert_eq!(cell("", "Pod", &pod, "Status"), "Unknown");
        // A finished pod being deleted keeps its final status.
        let done = json!({"metadata": {"name": "p", "deletionTimestamp": ago(3)}, "status": {"phase": "Succeeded"}});
        assert_eq!(cell("", "Pod", &done, "Status"), "Succeeded");
    }

    #[test]
    fn pod_completed_with_running_sibling() {
        let pod = |ready: &str| {
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready}],
                    "containerStatuses": [running_container("a", true), {"name": "b", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}})
        };
        assert_eq!(cell("", "Pod", &pod("True"), "Status"), "Running");
        assert_eq!(cell("", "Pod", &pod("False"), "Status"), "NotReady");
        assert_eq!(cell("", "Pod", &pod("True"), "Ready"), "1/2");
    }

    #[test]
    fn pod_restarts_and_wide_cells() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}], "nodeName": "n1", "readinessGates": [{"conditionType": "x"}, {"conditionType": "y"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
                "conditions": [{"type": "x", "status": "True"}, {"type": "y", "status": "False"}],
                "containerStatuses": [{"name": "c", "ready": true, "restartCount": 2,
                    "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(10)}}}]}
        });
        assert_eq!(cell("", "Pod", &pod, "Restarts"), "2 (10s ago)");
        assert_eq!(cell("", "Pod", &pod, "IP"), "10.0.0.5");
        assert_eq!(cell("", "Pod", &pod, "Node"), "n1");
        assert_eq!(cell("", "Pod", &pod, "Nominated Node"), "<none>");
        assert_eq!(cell("", "Pod", &pod, "Readiness Gates"), "1/2");
        let bare = json!({"metadata": {"name": "p"}});
        assert_eq!(cell("", "Pod", &bare, "Restarts"), "0");
        assert_eq!(cell("", "Pod", &bare, "IP"), "<none>");
        assert_eq!(cell("", "Pod", &bare, "Readiness Gates"), "<none>");
    }

    #[test]
    fn node_status_and_roles() {
        let node = |ready: Option<&str>, unschedulable: bool| {
            let conditions: Vec<Value> = ready.into_iter().map(|r| json!({"type": "Ready", "status": r})).collect();
            json!({"metadata": {"name": "n", "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker", "node-role.kubernetes.io/": ""}},
                "spec": {"unschedulable": unschedulable},
                "status": {"conditions": conditions, "nodeInfo": {"kubeletVersion": "v1.37.0"},
                    "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}]}})
        };
        assert_eq!(cell("", "Node", &node(Some("True"), false), "Status"), "Ready");
        assert_eq!(cell("", "Node", &node(Some("True"), true), "Status"), "Ready,SchedulingDisabled");
        assert_eq!(cell("", "Node", &node(Some("Unknown"), false), "Status"), "NotReady");
        assert_eq!(cell("", "Node", &node(None, true), "Status"), "Unknown,SchedulingDisabled");
        let n = node(Some("True"), false);
        assert_eq!(cell("", "Node", &n, "Roles"), "control-plane,worker");
        assert_eq!(cell("", "Node", &n, "Version"), "v1.37.0");
        assert_eq!(cell("", "Node", &n, "Internal-IP"), "192.168.1.2");
        assert_eq!(cell("", "Node", &n, "External-IP"), "<none>");
        assert_eq!(cell("", "Node", &n, "OS-Image"), "<unknown>");
        assert_eq!(cell("", "Node", &json!({"metadata": {"name": "n"}}), "Roles"), "<none>");
    }

    #[test]
    fn service_cells() {
        let svc = json!({"metadata": {"name": "web"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "selector": {"b": "2", "a": "1"},
                "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]}});
        assert_eq!(cell("", "Service", &svc, "Port(s)"), "80:30080/TCP,53/UDP");
        assert_eq!(cell("", "Service", &svc, "External-IP"), "<none>");
        assert_eq!(cell("", "Service", &svc, "Cluster-IP"), "10.96.0.10");
        assert_eq!(cell("", "Service", &svc, "Selector"), "a=1,b=2");
        let lb =
            json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIP": "None", "ports": [{"port": 443, "protocol": "TCP"}]}});
        assert_eq!(cell("", "Service", &lb, "External-IP"), "<pending>");
        assert_eq!(cell("", "Service", &lb, "Cluster-IP"), "None");
        assert_eq!(cell("", "Service", &lb, "Port(s)"), "443/TCP");
        let mut lb_ready = lb.clone();
        lb_ready["status"] = json!({"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "a.example"}, {"ip": "1.2.3.4"}]}});
        assert_eq!(cell("", "Service", &lb_ready, "External-IP"), "1.2.3.4,5.6.7.8,a.example");
        let ext = json!({"metadata": {"name": "x"}, "spec": {"type": "ExternalName", "externalName": "db.example"}});
        assert_eq!(cell("", "Service", &ext, "External-IP"), "db.example");
        assert_eq!(cell("", "Service", &ext, "Port(s)"), "<none>");
        assert_eq!(cell("", "Service", &ext, "Cluster-IP"), "<none>");
    }

    #[test]
    fn workload_cells() {
        let deploy = json!({"metadata": {"name": "d"}, "spec": {"replicas": 3,
            "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}, {"key": "canary", "operator": "DoesNotExist"}]},
            "template": {"spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "busybox"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let cells = row("apps", "Deployment", &deploy);
        assert_eq!(cells[1], "2/3");
        assert_eq!(cells[2], 3);
        assert_eq!(cells[5], "a,b");
        assert_eq!(cells[6], "nginx,busybox");
        assert_eq!(cells[7], "app=web,!canary,tier in (a,b)");
        let rs = json!({"metadata": {"name": "r"}, "spec": {}});
        assert_eq!(cell("apps", "ReplicaSet", &rs, "Desired"), 1);
        assert_eq!(cell("apps", "ReplicaSet", &rs, "Selector"), "<none>");
        let job = json!({"metadata": {"name": "j"}, "spec": {"completions": 3},
            "status": {"succeeded": 3, "startTime": ago(300), "completionTime": ago(100), "conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(cell("batch", "Job", &job, "Status"), "Complete");
        assert_eq!(cell("batch", "Job", &job, "Completions"), "3/3");
        assert_eq!(cell("batch", "Job", &job, "Duration"), "3m20s");
        let running = json!({"metadata": {"name": "j"}, "spec": {"parallelism": 2}, "status": {"startTime": ago(30)}});
        assert_eq!(cell("batch", "Job", &running, "Completions"), "0/1 of 2");
        assert_eq!(cell("batch", "Job", &running, "Status"), "Running");
        assert_eq!(cell("batch", "Job", &running, "Duration"), "30s");
        let cj = json!({"metadata": {"name": "c"}, "spec": {"schedule": "*/5 * * * *", "suspend": false}});
        assert_eq!(cell("batch", "CronJob", &cj, "Timezone"), "<none>");
        assert_eq!(cell("batch", "CronJob", &cj, "Suspend"), "False");
        assert_eq!(cell("batch", "CronJob", &cj, "Last Schedule"), "<none>");
        let sts = json!({"metadata": {"name": "s"}, "spec": {"replicas": 2}, "status": {"readyReplicas": 1}});
        assert_eq!(cell("apps", "StatefulSet", &sts, "Ready"), "1/2");
        let cr = json!({"metadata": {"name": "r", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "ds", "controller": true}]}, "revision": 4});
        assert_eq!(cell("apps", "ControllerRevision", &cr, "Controller"), "daemonset.apps/ds");
    }

    #[test]
    fn hpa_targets_both_versions() {
        let v2 = json!({"metadata": {"name": "h"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5, "minReplicas": 1,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                        {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}},
                        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}]},
            "status": {"currentReplicas": 2, "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 20}}}]}});
        assert_eq!(cell("autoscaling", "HorizontalPodAutoscaler", &v2, "Targets"), "cpu: 20%/50%, <unknown>/1k + 1 more...");
        assert_eq!(cell("autoscaling", "HorizontalPodAutoscaler", &v2, "Reference"), "Deployment/web");
        let v1 = json!({"metadata": {"name": "h"}, "spec": {"maxReplicas": 3, "targetCPUUtilizationPercentage": 80}});
        assert_eq!(cell("autoscaling", "HorizontalPodAutoscaler", &v1, "Targets"), "cpu: <unknown>/80%");
        assert_eq!(cell("autoscaling", "HorizontalPodAutoscaler", &v1, "MinPods"), "<unset>");
    }

    #[test]
    fn endpoints_cells() {
        let ep = json!({"metadata": {"name": "e"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "fd00::1"}, {"ip": "10.0.0.4"}], "ports": [{"port": 80}]}]});
        assert_eq!(cell("", "Endpoints", &ep, "Endpoints"), "10.0.0.1:80,10.0.0.2:80,[fd00::1]:80 + 1 more...");
        assert_eq!(cell("", "Endpoints", &json!({"metadata": {"name": "e"}}), "Endpoints"), "<none>");
        let slice = json!({"metadata": {"name": "s"}, "addressType": "IPv4", "ports": [{"port": 80}, {"name": "x"}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]});
        assert_eq!(cell("discovery.k8s.io", "EndpointSlice", &slice, "Ports"), "80,x");
        assert_eq!(cell("discovery.k8s.io", "EndpointSlice", &slice, "Endpoints"), "10.0.0.1,10.0.0.2");
        assert_eq!(cell("discovery.k8s.io", "EndpointSlice", &json!({}), "Endpoints"), "<unset>");
    }

    #[test]
    fn event_cells_for_both_apis() {
        let core = json!({"metadata": {"name": "e1"}, "type": "Normal", "reason": "Pulled", "message": " done \n",
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{c}"},
            "source": {"component": "kubelet", "host": "n1"}, "firstTimestamp": ago(300), "lastTimestamp": ago(60), "count": 3});
        let cells = row("", "Event", &core);
        assert_eq!(
            cells,
            vec![
                json!("60s"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web"),
                json!("spec.containers{c}"),
                json!("kubelet, n1"),
                json!("done"),
                json!("5m"),
                json!(3),
                json!("e1")
            ]
        );
        let new = json!({"metadata": {"name": "e2"}, "type": "Warning", "reason": "Failed", "note": "boom",
            "regarding": {"kind": "Node", "name": "n1"}, "reportingController": "ctrl", "eventTime": "2024-05-01T11:59:00.000000Z"});
        let cells = row("events.k8s.io", "Event", &new);
        assert_eq!(cells[0], "60s");
        assert_eq!(cells[3], "node/n1");
        assert_eq!(cells[5], "ctrl");
        assert_eq!(cells[6], "boom");
        assert_eq!(cells[8], 1);
    }

    #[test]
    fn storage_and_misc_cells() {
        let pv = json!({"metadata": {"name": "pv1"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain", "claimRef": {"namespace": "ns", "name": "c"}, "storageClassName": "fast"}, "status": {"phase": "Bound"}});
        let cells = row("", "PersistentVolume", &pv);
        assert_eq!(&cells[1..8], &[json!("1Gi"), json!("RWO,RWX"), json!("Retain"), json!("Bound"), json!("ns/c"), json!("fast"), json!("<unset>")]);
        let pvc = json!({"metadata": {"name": "c"}, "spec": {}, "status": {"phase": "Pending"}});
        assert_eq!(&row("", "PersistentVolumeClaim", &pvc)[1..6], &[json!("Pending"), json!(""), json!(""), json!(""), json!("")]);
        let sc = json!({"metadata": {"name": "std", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "x"});
        assert_eq!(
            &row("storage.k8s.io", "StorageClass", &sc)[..5],
            &[json!("std (default)"), json!("x"), json!("Delete"), json!("Immediate"), json!(false)]
        );
        let rq = json!({"metadata": {"name": "q"}, "status": {"hard": {"pods": "10", "limits.cpu": "2", "requests.cpu": "1"}, "used": {"pods": "3", "requests.cpu": "500m"}}});
        assert_eq!(&row("", "ResourceQuota", &rq)[1..3], &[json!("pods: 3/10, requests.cpu: 500m/1"), json!("limits.cpu: 0/2")]);
        let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1"}, "binaryData": {"b": ""}});
        assert_eq!(cell("", "ConfigMap", &cm, "Data"), 2);
        let secret = json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "MQ=="}});
        assert_eq!(&row("", "Secret", &secret)[1..3], &[json!("Opaque"), json!(1)]);
        let csr = json!({"metadata": {"name": "c"}, "spec": {"signerName": "kubernetes.io/kube-apiserver-client", "username": "alice", "expirationSeconds": 86400},
            "status": {"conditions": [{"type": "Approved"}], "certificate": "Zm9v"}});
        assert_eq!(
            &row("certificates.k8s.io", "CertificateSigningRequest", &csr)[2..],
            &[json!("kubernetes.io/kube-apiserver-client"), json!("alice"), json!("24h"), json!("Approved,Issued")]
        );
        let rb = json!({"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "u1"}, {"kind": "User", "name": "u2"}, {"kind": "ServiceAccount", "namespace": "ns", "name": "sa"}]});
        let cells = row("rbac.authorization.k8s.io", "RoleBinding", &rb);
        assert_eq!((&cells[1], &cells[3], &cells[4], &cells[5]), (&json!("ClusterRole/view"), &json!("u1, u2"), &json!(""), &json!("ns/sa")));
        let pdb = json!({"metadata": {"name": "p"}, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
        assert_eq!(&row("policy", "PodDisruptionBudget", &pdb)[1..4], &[json!("50%"), json!("N/A"), json!(1)]);
        let ing =
            json!({"metadata": {"name": "i"}, "spec": {"rules": [{"host": "a"}, {}, {"host": "b"}, {"host": "c"}, {"host": "d"}], "tls": [{}]}});
        assert_eq!(&row("networking.k8s.io", "Ingress", &ing)[1..5], &[json!("<none>"), json!("a,b,c + 2 more..."), json!(""), json!("80, 443")]);
        let api = json!({"metadata": {"name": "v1.apps"}, "status": {"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints"}]}});
        assert_eq!(&row("apiregistration.k8s.io", "APIService", &api)[1..3], &[json!("Local"), json!("False (MissingEndpoints)")]);
        let claim = json!({"metadata": {"name": "c"}, "status": {"allocation": {}, "reservedFor": [{}]}});
        assert_eq!(cell("resource.k8s.io", "ResourceClaim", &claim, "State"), "allocated,reserved");
    }

    #[test]
    fn default_table() {
        let p = printer("rbac.authorization.k8s.io", "Role");
        assert_eq!(
            p.columns.iter().map(|c| (c.name, c.type_, c.format)).collect::<Vec<_>>(),
            [("Name", "string", "name"), ("Created At", "date", "")]
        );
        let role = json!({"metadata": {"name": "r", "creationTimestamp": "2024-01-02T03:04:05Z"}});
        assert_eq!((p.cells)(&role, NOW), vec![json!("r"), json!("2024-01-02T03:04:05Z")]);
        assert_eq!(printer("apiextensions.k8s.io", "CustomResourceDefinition").columns.len(), 2);
        assert_eq!(printer("", "LimitRange").columns[1].name, "Created At");
    }

    /// Every printer fills one cell per column (IPAddress excepted, as
    /// upstream sends one more) even for an object with nothing but a name,
    /// and names its objects in a "Name" column.
    #[test]
    fn every_printer_is_consistent() {
        let bare = json!({"metadata": {"name": "x"}});
        for def in crate::builtin::builtin() {
            let p = printer(&def.group, &def.kind);
            let cells = (p.cells)(&bare, NOW);
            let extra = usize::from(def.kind == "IPAddress");
            assert_eq!(cells.len(), p.columns.len() + extra, "{}/{}", def.group, def.kind);
            let name_col = p.columns.iter().position(|c| c.name == "Name").unwrap_or_else(|| panic!("{} has no Name column", def.kind));
            assert_eq!(cells[name_col], "x", "{}", def.kind);
            assert!(p.columns.iter().all(|c| ["string", "integer", "number", "boolean", "date"].contains(&c.type_)));
            assert!(p.columns.iter().all(|c| c.priority <= 1 && !c.description.is_empty()));
        }
    }
}
