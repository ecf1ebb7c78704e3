//! Validation of built-in kinds on write, as upstream's `validation.go` of
//! each API group does it, collecting every failure as a field cause (one 422
//! answer lists them all). Required fields come from the OpenAPI
//! definitions; the per-kind rules below are the ones users meet most: pod
//! specs (containers, names, ports, policies), pod-spec immutability,
//! workload selectors that must match their template, Services' ports, Jobs'
//! restart policy, ConfigMap and Secret keys.

use std::collections::HashSet;

use api::status::{StatusCause, duplicate, forbidden, invalid_value, not_supported, required};
use api::validation::is_dns1123_label;
use serde_json::{Map, Value, json};

use crate::ResourceDef;
use crate::openapi::Definitions;

/// Every validation failure of `obj` (an update of `old` when given).
pub fn validate(defs: &Definitions, def: &ResourceDef, obj: &Value, old: Option<&Value>) -> Vec<StatusCause> {
    if let Some(c) = &def.custom {
        return crate::crd::validate(&c.schema, obj, old);
    }
    let mut out = Vec::new();
    if let Some(root) = defs.name_of(&def.group, &def.version, &def.kind)
        && let Some(schema) = defs.get(root)
    {
        required_fields(defs, schema, obj, "", &mut out);
    }
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    match (def.group.as_str(), def.kind.as_str()) {
        ("", "Pod") => {
            pod_spec(spec, "spec", &mut out);
            if let Some(old) = old {
                pod_update(spec, old.get("spec").unwrap_or(&Value::Null), &mut out);
            }
        }
        ("", "PodTemplate") => pod_spec(obj.pointer("/template/spec").unwrap_or(&Value::Null), "template.spec", &mut out),
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") | ("", "ReplicationController") => {
            workload(def, spec, old.and_then(|o| o.get("spec")), &mut out)
        }
        ("batch", "Job") => job_spec(spec, "spec", &mut out),
        ("batch", "CronJob") => {
            if let Some(js) = spec.pointer("/jobTemplate/spec") {
                job_spec(js, "spec.jobTemplate.spec", &mut out);
            }
            if let Some(tz) = spec.get("timeZone").and_then(Value::as_str) {
                time_zone(tz, &mut out);
            }
        }
        ("", "Service") => service(spec, &mut out),
        ("", "ConfigMap") => {
            for f in ["data", "binaryData"] {
                config_keys(obj.get(f), f, &mut out);
            }
        }
        ("", "Secret") => config_keys(obj.get("data"), "data", &mut out),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => out.extend(crate::crd::validate_crd(obj, old)),
        _ => {}
    }
    out
}

/// `spec.timeZone` must name a zone of the tz database, as upstream's
/// `time.LoadLocation` check (read from the system's zoneinfo files).
fn time_zone(tz: &str, out: &mut Vec<StatusCause>) {
    let f = "spec.timeZone";
    if tz.eq_ignore_ascii_case("local") {
        out.push(invalid_value(f, &json!(tz), "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"));
        return;
    }
    let well_formed = !tz.is_empty()
        && !tz.starts_with('/')
        && !tz.split('/').any(|p| p == ".." || p == ".")
        && tz.chars().all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c));
    if !(well_formed && std::path::Path::new("/usr/share/zoneinfo").join(tz).is_file()) {
        out.push(invalid_value(f, &json!(tz), &format!("unknown time zone {tz}")));
    }
}

/// Fields the definitions mark required, at every depth.
fn required_fields(defs: &Definitions, schema: &Value, v: &Value, path: &str, out: &mut Vec<StatusCause>) {
    let s = defs.resolve(schema);
    match v {
        Value::Object(m) => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for r in s.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
                    // Present means required: emptiness is the per-kind rules' business.
                    // A number or flag Go always writes (its zero value), so only
                    // the range rules can find fault with a missing one.
                    let scalar = props
                        .get(r)
                        .map(|p| defs.resolve(p))
                        .and_then(|p| p.get("type"))
                        .and_then(Value::as_str)
                        .is_some_and(|t| matches!(t, "integer" | "number" | "boolean"));
                    let missing = !scalar && matches!(m.get(r), None | Some(Value::Null));
                    // metadata is checked by the object-meta rules.
                    if missing && r != "metadata" {
                        out.push(required(&join(path, r)));
                    }
                }
                for (k, child) in m {
                    if let Some(ps) = props.get(k) {
                        if path.is_empty() && k == "metadata" {
                            continue;
                        }
                        required_fields(defs, ps, child, &join(path, k), out);
                    }
                }
            }
        }
        Value::Array(a) => {
            if let Some(item) = s.get("items") {
                for (i, child) in a.iter().enumerate() {
                    required_fields(defs, item, child, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() { k.to_string() } else { format!("{path}.{k}") }
}

fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn one_of(v: &Value, field: &str, allowed: &[&str], out: &mut Vec<StatusCause>) {
    if let Some(s) = v.as_str()
        && !allowed.contains(&s)
    {
        out.push(not_supported(field, v, allowed));
    }
}

fn port_range(v: Option<&Value>, field: &str, allow_zero: bool, out: &mut Vec<StatusCause>) {
    if let Some(n) = v.and_then(Value::as_i64)
        && !(n == 0 && allow_zero)
        && !(1..=65535).contains(&n)
    {
        out.push(invalid_value(field, &json!(n), "must be between 1 and 65535, inclusive"));
    }
}

/// IANA service names: at most 15 characters, lowercase letters, digits and
/// non-adjacent hyphens, at least one letter.
fn port_name_errors(name: &str) -> Vec<&'static str> {
    let mut e = Vec::new();
    if name.len() > 15 {
        e.push("must be no more than 15 characters");
    }
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        e.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if name.contains("--") {
        e.push("must not contain consecutive hyphens");
    }
    if !name.chars().any(|c| c.is_ascii_lowercase()) {
        e.push("must contain at least one letter (a-z)");
    }
    if name.starts_with('-') || name.ends_with('-') {
        e.push("must not begin or end with a hyphen");
    }
    e
}

/// ValidatePodSpec: the rules users hit.
fn pod_spec(spec: &Value, at: &str, out: &mut Vec<StatusCause>) {
    if !spec.is_object() {
        return;
    }
    one_of(spec.get("restartPolicy").unwrap_or(&Value::Null), &format!("{at}.restartPolicy"), &["Always", "OnFailure", "Never"], out);
    one_of(
        spec.get("dnsPolicy").unwrap_or(&Value::Null),
        &format!("{at}.dnsPolicy"),
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        out,
    );
    if spec.get("containers").and_then(Value::as_array).is_some_and(Vec::is_empty) {
        out.push(required(&format!("{at}.containers")));
    }
    let mut names = HashSet::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec.get(list).and_then(Value::as_array).into_iter().flatten().enumerate() {
            let f = format!("{at}.{list}[{i}]");
            if str_of(c, "name") == Some("") {
                out.push(required(&format!("{f}.name")));
            }
            if let Some(name) = str_of(c, "name").filter(|n| !n.is_empty()) {
                for e in is_dns1123_label(name) {
                    out.push(invalid_value(&format!("{f}.name"), &json!(name), &e));
                }
                if !names.insert(name.to_string()) {
                    out.push(duplicate(&format!("{f}.name"), &json!(name)));
                }
            }
            if str_of(c, "image").is_none_or(|i| i.trim().is_empty()) {
                out.push(required(&format!("{f}.image")));
            }
            one_of(c.get("imagePullPolicy").unwrap_or(&Value::Null), &format!("{f}.imagePullPolicy"), &["Always", "IfNotPresent", "Never"], out);
            let mut port_names = HashSet::new();
            for (j, p) in c.get("ports").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let pf = format!("{f}.ports[{j}]");
                port_range(p.get("containerPort"), &format!("{pf}.containerPort"), false, out);
                port_range(p.get("hostPort"), &format!("{pf}.hostPort"), true, out);
                one_of(p.get("protocol").unwrap_or(&Value::Null), &format!("{pf}.protocol"), &["SCTP", "TCP", "UDP"], out);
                if let Some(n) = str_of(p, "name").filter(|n| !n.is_empty()) {
                    for e in port_name_errors(n) {
                        out.push(invalid_value(&format!("{pf}.name"), &json!(n), e));
                    }
                    if !port_names.insert(n.to_string()) {
                        out.push(duplicate(&format!("{pf}.name"), &json!(n)));
                    }
                }
            }
            for (j, e) in c.get("env").and_then(Value::as_array).into_iter().flatten().enumerate() {
                if str_of(e, "name").is_some_and(str::is_empty) {
                    out.push(required(&format!("{f}.env[{j}].name")));
                }
            }
        }
    }
    let mut vols = HashSet::new();
    for (i, v) in spec.get("volumes").and_then(Value::as_array).into_iter().flatten().enumerate() {
        if let Some(n) = str_of(v, "name").filter(|n| !n.is_empty()) {
            for e in is_dns1123_label(n) {
                out.push(invalid_value(&format!("{at}.volumes[{i}].name"), &json!(n), &e));
            }
            if !vols.insert(n.to_string()) {
                out.push(duplicate(&format!("{at}.volumes[{i}].name"), &json!(n)));
            }
        }
    }
    if let Some(g) = spec.get("terminationGracePeriodSeconds").and_then(Value::as_i64)
        && g < 0
    {
        out.push(invalid_value(&format!("{at}.terminationGracePeriodSeconds"), &json!(g), "must be greater than or equal to 0"));
    }
}

/// ValidatePodUpdate: a pod's spec is immutable except container images,
/// activeDeadlineSeconds, added tolerations and terminationGracePeriodSeconds.
fn pod_update(new: &Value, old: &Value, out: &mut Vec<StatusCause>) {
    let mask = |s: &Value| {
        let mut s = s.clone();
        if let Some(m) = s.as_object_mut() {
            for k in ["activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"] {
                m.remove(k);
            }
            for list in ["containers", "initContainers"] {
                for c in m.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
                    if let Some(c) = c.as_object_mut() {
                        c.remove("image");
                    }
                }
            }
        }
        s
    };
    if mask(new) != mask(old) {
        out.push(forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
}

/// Does a label selector (matchLabels and matchExpressions) select `labels`?
fn selects(selector: &Value, labels: &Map<String, Value>) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    let ml = selector.get("matchLabels").and_then(Value::as_object);
    if !ml.into_iter().flatten().all(|(k, v)| get(k) == v.as_str()) {
        return false;
    }
    selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten().all(|e| {
        let key = str_of(e, "key").unwrap_or("");
        let values: Vec<&str> = e.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        match str_of(e, "operator") {
            Some("In") => get(key).is_some_and(|v| values.contains(&v)),
            Some("NotIn") => get(key).is_none_or(|v| !values.contains(&v)),
            Some("Exists") => get(key).is_some(),
            Some("DoesNotExist") => get(key).is_none(),
            _ => false,
        }
    })
}

/// Deployments, ReplicaSets, StatefulSets, DaemonSets and ReplicationControllers:
/// a non-empty selector matching the template's labels, pods that always restart,
/// no negative replicas, and (apps/v1) a selector that never changes.
fn workload(def: &ResourceDef, spec: &Value, old: Option<&Value>, out: &mut Vec<StatusCause>) {
    let kind = def.kind.to_lowercase();
    let labels = spec.pointer("/template/metadata/labels").and_then(Value::as_object).cloned().unwrap_or_default();
    if def.kind == "ReplicationController" {
        // A ReplicationController's selector is a plain map, defaulted from the template.
        if let Some(sel) = spec.get("selector").and_then(Value::as_object).filter(|s| !s.is_empty())
            && spec.get("template").is_some()
            && !sel.iter().all(|(k, v)| labels.get(k) == Some(v))
        {
            out.push(invalid_value("spec.template.metadata.labels", &Value::Object(labels.clone()), "`selector` does not match template `labels`"));
        }
    } else if let Some(sel) = spec.get("selector").filter(|s| s.is_object()) {
        let empty = sel.get("matchLabels").and_then(Value::as_object).is_none_or(Map::is_empty)
            && sel.get("matchExpressions").and_then(Value::as_array).is_none_or(Vec::is_empty);
        if empty {
            out.push(invalid_value("spec.selector", sel, &format!("empty selector is invalid for {kind}")));
        } else if spec.get("template").is_some() && !selects(sel, &labels) {
            out.push(invalid_value("spec.template.metadata.labels", &Value::Object(labels.clone()), "`selector` does not match template `labels`"));
        }
        if let Some(old_sel) = old.and_then(|o| o.get("selector"))
            && old_sel != sel
            && def.group == "apps"
        {
            out.push(invalid_value("spec.selector", sel, "field is immutable"));
        }
        for (i, e) in sel.get("matchExpressions").and_then(Value::as_array).into_iter().flatten().enumerate() {
            one_of(
                e.get("operator").unwrap_or(&Value::Null),
                &format!("spec.selector.matchExpressions[{i}].operator"),
                &["In", "NotIn", "Exists", "DoesNotExist"],
                out,
            );
        }
    }
    for f in ["replicas", "minReadySeconds", "revisionHistoryLimit"] {
        if let Some(n) = spec.get(f).and_then(Value::as_i64).filter(|n| *n < 0) {
            out.push(invalid_value(&format!("spec.{f}"), &json!(n), "must be greater than or equal to 0"));
        }
    }
    if let Some(ps) = spec.pointer("/template/spec") {
        pod_spec(ps, "spec.template.spec", out);
        let rp = ps.get("restartPolicy").unwrap_or(&Value::Null);
        if rp.as_str().is_some_and(|p| p != "Always") {
            out.push(not_supported("spec.template.spec.restartPolicy", rp, &["Always"]));
        }
    }
    if def.kind == "Deployment"
        && let Some(st) = spec.get("strategy")
    {
        one_of(st.get("type").unwrap_or(&Value::Null), "spec.strategy.type", &["Recreate", "RollingUpdate"], out);
        if str_of(st, "type") == Some("Recreate") && st.get("rollingUpdate").is_some() {
            out.push(forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"));
        }
    }
}

/// ValidateJobSpec: pods that do not restart forever, non-negative counts.
fn job_spec(spec: &Value, at: &str, out: &mut Vec<StatusCause>) {
    for f in ["parallelism", "completions", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"] {
        if let Some(n) = spec.get(f).and_then(Value::as_i64).filter(|n| *n < 0) {
            out.push(invalid_value(&format!("{at}.{f}"), &json!(n), "must be greater than or equal to 0"));
        }
    }
    if let Some(ps) = spec.pointer("/template/spec") {
        pod_spec(ps, &format!("{at}.template.spec"), out);
        let rp = ps.get("restartPolicy").unwrap_or(&Value::Null);
        if rp.as_str().is_some_and(|p| !matches!(p, "OnFailure" | "Never")) {
            out.push(not_supported(&format!("{at}.template.spec.restartPolicy"), rp, &["OnFailure", "Never"]));
        }
    }
}

/// ValidateService: ports in range with unique names (required when several),
/// a valid type and protocol, a target port that is a number in range or a name.
fn service(spec: &Value, out: &mut Vec<StatusCause>) {
    let ty = str_of(spec, "type").unwrap_or("ClusterIP");
    one_of(spec.get("type").unwrap_or(&Value::Null), "spec.type", &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"], out);
    one_of(spec.get("sessionAffinity").unwrap_or(&Value::Null), "spec.sessionAffinity", &["ClientIP", "None"], out);
    let ports = spec.get("ports").and_then(Value::as_array).cloned().unwrap_or_default();
    let headless = str_of(spec, "clusterIP") == Some("None");
    if ports.is_empty() && ty != "ExternalName" && !headless {
        out.push(required("spec.ports"));
    }
    if ty == "ExternalName" && str_of(spec, "externalName").is_none_or(str::is_empty) {
        out.push(required("spec.externalName"));
    }
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let f = format!("spec.ports[{i}]");
        match str_of(p, "name").filter(|n| !n.is_empty()) {
            Some(n) => {
                for e in is_dns1123_label(n) {
                    out.push(invalid_value(&format!("{f}.name"), &json!(n), &e));
                }
                if !names.insert(n.to_string()) {
                    out.push(duplicate(&format!("{f}.name"), &json!(n)));
                }
            }
            None if ports.len() > 1 => out.push(required(&format!("{f}.name"))),
            None => {}
        }
        port_range(p.get("port"), &format!("{f}.port"), false, out);
        one_of(p.get("protocol").unwrap_or(&Value::Null), &format!("{f}.protocol"), &["SCTP", "TCP", "UDP"], out);
        match p.get("targetPort") {
            Some(Value::Number(_)) => port_range(p.get("targetPort"), &format!("{f}.targetPort"), false, out),
            Some(Value::String(n)) => {
                for e in port_name_errors(n) {
                    out.push(invalid_value(&format!("{f}.targetPort"), &json!(n), e));
                }
            }
            _ => {}
        }
        if let Some(np) = p.get("nodePort").and_then(Value::as_i64)
            && np != 0
            && ty != "NodePort"
            && ty != "LoadBalancer"
        {
            out.push(forbidden(&format!("{f}.nodePort"), "may not be used when `type` is 'ClusterIP'"));
        }
    }
}

/// ConfigMap and Secret keys: `[-._a-zA-Z0-9]+`, at most 253 characters.
fn config_keys(data: Option<&Value>, field: &str, out: &mut Vec<StatusCause>) {
    for k in data.and_then(Value::as_object).into_iter().flatten().map(|(k, _)| k) {
        let ok =
            !k.is_empty() && k.len() <= 253 && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) && k != "." && k != "..";
        if !ok {
            out.push(invalid_value(
                &format!("{field}[{k}]"),
                &json!(k),
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::definitions;

    fn def(group: &str, kind: &str) -> ResourceDef {
        crate::builtin::builtin().into_iter().find(|d| d.group == group && d.kind == kind).unwrap()
    }

    fn lines(causes: &[StatusCause]) -> Vec<String> {
        causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    #[test]
    fn pods_need_valid_unique_containers_and_ports() {
        let pod = json!({"spec": {"containers": [
            {"name": "Bad_Name", "image": "x"},
            {"name": "a", "image": "x", "ports": [{"containerPort": 70000}]},
            {"name": "a"},
        ], "restartPolicy": "Sometimes"}});
        let got = lines(&validate(definitions(), &def("", "Pod"), &pod, None));
        assert!(got.iter().any(|l| l.starts_with("spec.containers[0].name: Invalid value: \"Bad_Name\"")), "{got:#?}");
        assert!(
            got.contains(&"spec.containers[1].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive".to_string()),
            "{got:#?}"
        );
        assert!(got.contains(&"spec.containers[2].name: Duplicate value: \"a\"".to_string()), "{got:#?}");
        assert!(got.contains(&"spec.containers[2].image: Required value".to_string()), "{got:#?}");
        assert!(got.iter().any(|l| l.starts_with("spec.restartPolicy: Unsupported value: \"Sometimes\"")), "{got:#?}");
        let none = lines(&validate(definitions(), &def("", "Pod"), &json!({"spec": {"containers": []}}), None));
        assert!(none.contains(&"spec.containers: Required value".to_string()), "{none:#?}");
    }

    #[test]
    fn pod_spec_is_immutable_but_images() {
        let old = json!({"spec": {"containers": [{"name": "a", "image": "x"}]}});
        let image = json!({"spec": {"containers": [{"name": "a", "image": "y"}]}});
        assert!(validate(definitions(), &def("", "Pod"), &image, Some(&old)).is_empty());
        let env = json!({"spec": {"containers": [{"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}]}]}});
        let got = lines(&validate(definitions(), &def("", "Pod"), &env, Some(&old)));
        assert!(got[0].starts_with("spec: Forbidden: pod updates may not change fields other than"), "{got:#?}");
    }

    #[test]
    fn workload_selectors_must_match_their_template() {
        let d = json!({"spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let got = lines(&validate(definitions(), &def("apps", "Deployment"), &d, None));
        assert_eq!(got, ["spec.template.metadata.labels: Invalid value: {\"app\":\"b\"}: `selector` does not match template `labels`"]);
        let ok = json!({"spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["b"]}]}, "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        assert!(validate(definitions(), &def("apps", "Deployment"), &ok, None).is_empty());
        let missing = lines(&validate(definitions(), &def("apps", "Deployment"), &json!({"spec": {}}), None));
        assert!(
            missing.contains(&"spec.selector: Required value".to_string()) && missing.contains(&"spec.template: Required value".to_string()),
            "{missing:#?}"
        );
    }

    #[test]
    fn services_and_jobs() {
        let s = json!({"spec": {"ports": [{"port": 0}, {"name": "b", "port": 80, "targetPort": "Not_A_Name"}]}});
        let got = lines(&validate(definitions(), &def("", "Service"), &s, None));
        assert!(got.contains(&"spec.ports[0].name: Required value".to_string()), "{got:#?}");
        assert!(got.contains(&"spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive".to_string()), "{got:#?}");
        assert!(got.iter().any(|l| l.starts_with("spec.ports[1].targetPort: Invalid value: \"Not_A_Name\"")), "{got:#?}");
        let j = json!({"spec": {"template": {"spec": {"restartPolicy": "Always", "containers": [{"name": "c", "image": "i"}]}}}});
        let got = lines(&validate(definitions(), &def("batch", "Job"), &j, None));
        assert_eq!(got, ["spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""]);
    }
}
