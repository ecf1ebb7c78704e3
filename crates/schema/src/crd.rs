//! CustomResourceDefinitions as data: the `ResourceDef`s a CRD serves (one
//! per served version, all sharing one storage), the CRD's own validation
//! (names, versions, structural schemas, with upstream's messages), and the
//! structural-schema operations applied to every custom object written:
//! pruning of unknown fields, defaulting, and validation.

use std::collections::HashSet;
use std::sync::Arc;

use api::status::{StatusCause, duplicate, invalid_value, not_supported, required, too_many};
use serde_json::{Map, Value, json};

use crate::{NameRule, ResourceDef, Subresource};

/// What a custom resource version adds to a `ResourceDef`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Custom {
    /// The version's `openAPIV3Schema` (structural).
    pub schema: Value,
    /// `additionalPrinterColumns`.
    pub columns: Vec<PrinterColumn>,
    /// The scale subresource's paths, when it has one.
    pub scale: Option<ScalePaths>,
    /// The `Warning` a deprecated version sends with every response.
    pub warning: Option<String>,
    /// The CRD's name (`plural.group`).
    pub crd: String,
    /// Whether the schema declares any default (then applied on read too).
    pub has_defaults: bool,
}

fn declares_default(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => m.contains_key("default") || m.iter().any(|(k, v)| k != "enum" && k != "example" && declares_default(v)),
        Value::Array(a) => a.iter().any(declares_default),
        _ => false,
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: u32,
    pub json_path: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
}

const RW: [&str; 8] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// The resources a CRD serves: one per served version, all stored together
/// under `plural.group`.
pub fn resource_defs(crd: &Value) -> Vec<ResourceDef> {
    let group = s(crd, "/spec/group").to_string();
    let names = crd.pointer("/spec/names").cloned().unwrap_or_default();
    let plural = s(&names, "/plural").to_string();
    let kind = s(&names, "/kind").to_string();
    let crd_name = s(crd, "/metadata/name").to_string();
    let mut out = Vec::new();
    for v in crd.pointer("/spec/versions").and_then(Value::as_array).into_iter().flatten() {
        if v.get("served") != Some(&json!(true)) {
            continue;
        }
        let version = s(v, "/name").to_string();
        let mut subresources = Vec::new();
        if v.pointer("/subresources/status").is_some() {
            subresources.push(Subresource {
                name: "status".into(),
                kind: kind.clone(),
                group: None,
                version: None,
                verbs: vec!["get".into(), "patch".into(), "update".into()],
            });
        }
        let scale = v.pointer("/subresources/scale").map(|sc| ScalePaths {
            spec_replicas: s(sc, "/specReplicasPath").to_string(),
            status_replicas: s(sc, "/statusReplicasPath").to_string(),
            label_selector: sc.get("labelSelectorPath").and_then(Value::as_str).map(str::to_string),
        });
        if scale.is_some() {
            subresources.push(Subresource {
                name: "scale".into(),
                kind: "Scale".into(),
                group: Some("autoscaling".into()),
                version: Some("v1".into()),
                verbs: vec!["get".into(), "patch".into(), "update".into()],
            });
        }
        let columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| PrinterColumn {
                name: s(c, "/name").to_string(),
                type_: s(c, "/type").to_string(),
                format: s(c, "/format").to_string(),
                description: s(c, "/description").to_string(),
                priority: c.get("priority").and_then(Value::as_u64).unwrap_or(0) as u32,
                json_path: s(c, "/jsonPath").to_string(),
            })
            .collect();
        let warning = (v.get("deprecated") == Some(&json!(true))).then(|| match v.get("deprecationWarning").and_then(Value::as_str) {
            Some(w) => w.to_string(),
            None => format!("{group}/{version} {kind} is deprecated"),
        });
        let field_selectors = v
            .get("selectableFields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|f| s(f, "/jsonPath").trim_start_matches('.').to_string())
            .collect();
        out.push(ResourceDef {
            group: group.clone(),
            version,
            kind: kind.clone(),
            plural: plural.clone(),
            singular: match s(&names, "/singular") {
                "" => kind.to_lowercase(),
                x => x.to_string(),
            },
            short_names: strings(names.get("shortNames")),
            categories: strings(names.get("categories")),
            namespaced: s(crd, "/spec/scope") != "Cluster",
            verbs: RW.iter().map(|v| v.to_string()).collect(),
            subresources,
            storage: format!("{plural}.{group}"),
            virtual_only: false,
            name_rule: NameRule::Subdomain,
            field_selectors,
            custom: Some(Arc::new(Custom {
                has_defaults: v.pointer("/schema/openAPIV3Schema").is_some_and(declares_default),
                schema: v
                    .pointer("/schema/openAPIV3Schema")
                    .cloned()
                    .unwrap_or(json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})),
                columns,
                scale,
                warning,
                crd: crd_name.clone(),
            })),
        });
    }
    out
}

/// The storage version of a CRD.
pub fn storage_version(crd: &Value) -> Option<String> {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)?
        .iter()
        .find(|v| v.get("storage") == Some(&json!(true)))
        .and_then(|v| v.get("name").and_then(Value::as_str))
        .map(str::to_string)
}

fn dns_label(v: &str) -> bool {
    api::validation::is_dns1123_label(v).is_empty()
}

/// ValidateCustomResourceDefinition: names, scope, versions and schemas.
pub fn validate_crd(crd: &Value, old: Option<&Value>) -> Vec<StatusCause> {
    let mut out = Vec::new();
    let group = s(crd, "/spec/group");
    let plural = s(crd, "/spec/names/plural");
    let name = s(crd, "/metadata/name");
    if name != format!("{plural}.{group}") {
        out.push(invalid_value("metadata.name", &json!(name), "must be spec.names.plural+\".\"+spec.group"));
    }
    if group.is_empty() {
        out.push(required("spec.group"));
    } else if !group.contains('.') {
        out.push(invalid_value("spec.group", &json!(group), "should be a domain with at least one dot"));
    }
    for (field, value) in [("plural", plural), ("singular", s(crd, "/spec/names/singular"))] {
        if value.is_empty() && field == "plural" {
            out.push(required("spec.names.plural"));
        } else if !value.is_empty() && !dns_label(value) {
            out.push(invalid_value(&format!("spec.names.{field}"), &json!(value), "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"));
        }
    }
    if s(crd, "/spec/names/kind").is_empty() {
        out.push(required("spec.names.kind"));
    }
    for (i, sn) in strings(crd.pointer("/spec/names/shortNames")).iter().enumerate() {
        if !dns_label(sn) {
            out.push(invalid_value(&format!("spec.names.shortNames[{i}]"), &json!(sn), "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"));
        }
    }
    let scope = crd.pointer("/spec/scope").cloned().unwrap_or(Value::Null);
    match scope.as_str() {
        Some("Namespaced" | "Cluster") => {}
        None | Some("") => out.push(required("spec.scope")),
        Some(_) => out.push(not_supported("spec.scope", &scope, &["Cluster", "Namespaced"])),
    }
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array).cloned().unwrap_or_default();
    if versions.is_empty() {
        out.push(invalid_value("spec.versions", &json!(versions), "must have exactly one version marked as storage version"));
    }
    let storage = versions.iter().filter(|v| v.get("storage") == Some(&json!(true))).count();
    if !versions.is_empty() && storage != 1 {
        out.push(invalid_value("spec.versions", &Value::Array(versions.clone()), "must have exactly one version marked as storage version"));
    }
    let mut seen = HashSet::new();
    for (i, v) in versions.iter().enumerate() {
        let vn = s(v, "/name");
        if !seen.insert(vn.to_string()) {
            out.push(duplicate(&format!("spec.versions[{i}].name"), &json!(vn)));
        }
        if !dns_label(vn) {
            out.push(invalid_value(&format!("spec.versions[{i}].name"), &json!(vn), "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character"));
        }
        match v.pointer("/schema/openAPIV3Schema") {
            None => out.push(required(&format!("spec.versions[{i}].schema.openAPIV3Schema"))),
            Some(schema) => {
                let at = format!("spec.versions[{i}].schema.openAPIV3Schema");
                if schema.get("type").and_then(Value::as_str) != Some("object") {
                    if schema.get("type").is_none() {
                        out.push(required_detail_cause(&format!("{at}.type"), "must not be empty at the root"));
                    } else {
                        out.push(invalid_value(&format!("{at}.type"), schema.get("type").unwrap(), "must be object at the root"));
                    }
                }
                structural(schema, &at, &mut out);
            }
        }
        if let Some(sc) = v.pointer("/subresources/scale") {
            for f in ["specReplicasPath", "statusReplicasPath"] {
                let p = s(sc, &format!("/{f}"));
                if p.is_empty() {
                    out.push(required(&format!("spec.versions[{i}].subresources.scale.{f}")));
                } else if !p.starts_with('.') {
                    out.push(invalid_value(&format!("spec.versions[{i}].subresources.scale.{f}"), &json!(p), "should be a json path under .spec"));
                }
            }
        }
    }
    if let Some(old) = old {
        if s(old, "/spec/scope") != s(crd, "/spec/scope") && !s(old, "/spec/scope").is_empty() {
            out.push(invalid_value("spec.scope", &scope, "field is immutable"));
        }
        if s(old, "/spec/group") != group {
            out.push(invalid_value("spec.group", &json!(group), "field is immutable"));
        }
    }
    out
}

fn required_detail_cause(field: &str, detail: &str) -> StatusCause {
    api::status::required_detail(field, detail)
}

/// The structural-schema rules: every node says its type (unless it is
/// int-or-string or keeps unknown fields), arrays say their items.
fn structural(schema: &Value, at: &str, out: &mut Vec<StatusCause>) {
    for (i, r) in schema.get("x-kubernetes-validations").and_then(Value::as_array).into_iter().flatten().enumerate() {
        for key in ["rule", "messageExpression"] {
            if let Some(text) = r.get(key).and_then(Value::as_str)
                && let Err(e) = program(text)
            {
                out.push(invalid_value(&format!("{at}.x-kubernetes-validations[{i}].{key}"), &json!(text), &e));
            }
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            let f = format!("{at}.properties[{k}]");
            let free =
                p.get("x-kubernetes-int-or-string") == Some(&json!(true)) || p.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
            if p.get("type").is_none() && !free {
                out.push(required_detail_cause(&format!("{f}.type"), "must not be empty for specified object fields"));
            }
            structural(p, &f, out);
        }
    }
    if schema.get("type").and_then(Value::as_str) == Some("array") {
        match schema.get("items") {
            Some(items) => {
                let free = items.get("x-kubernetes-int-or-string") == Some(&json!(true))
                    || items.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
                if items.get("type").is_none() && !free {
                    out.push(required_detail_cause(&format!("{at}.items.type"), "must not be empty for specified array items"));
                }
                structural(items, &format!("{at}.items"), out);
            }
            None => out.push(required_detail_cause(&format!("{at}.items"), "must be specified")),
        }
    }
    if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        if schema.get("properties").is_some() {
            out.push(api::status::forbidden(&format!("{at}.additionalProperties"), "additionalProperties and properties are mutual exclusive"));
        }
        structural(ap, &format!("{at}.additionalProperties"), out);
    }
}

fn preserves(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true))
}

fn embedded(schema: &Value) -> bool {
    schema.get("x-kubernetes-embedded-resource") == Some(&json!(true))
}

/// Pruning: removes fields the schema does not specify (and nulls where the
/// schema does not allow them), recording their paths. The root's
/// apiVersion, kind and metadata always stay.
pub fn prune(schema: &Value, obj: &mut Value, unknown: &mut Vec<String>) {
    prune_at(schema, obj, "", true, unknown);
}

fn prune_at(schema: &Value, v: &mut Value, path: &str, root: bool, unknown: &mut Vec<String>) {
    if schema.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
        return;
    }
    match v {
        Value::Object(m) => {
            let keep_meta = root || embedded(schema);
            let props = schema.get("properties").and_then(Value::as_object);
            let extra = schema.get("additionalProperties").filter(|a| a.is_object());
            let keep_all = preserves(schema) || schema.get("additionalProperties") == Some(&json!(true));
            let mut gone = Vec::new();
            for (k, child) in m.iter_mut() {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                if keep_meta && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let sub = props.and_then(|ps| ps.get(k)).or(extra);
                match sub {
                    Some(s) => {
                        if child.is_null() && s.get("nullable") != Some(&json!(true)) {
                            gone.push(k.clone());
                        } else {
                            prune_at(s, child, &p, false, unknown);
                        }
                    }
                    None if keep_all => {}
                    None => {
                        unknown.push(p);
                        gone.push(k.clone());
                    }
                }
            }
            for k in gone {
                m.remove(&k);
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                for (i, child) in a.iter_mut().enumerate() {
                    prune_at(items, child, &format!("{path}[{i}]"), false, unknown);
                }
            }
        }
        _ => {}
    }
}

/// Defaulting: every unset property with a `default` gets it, at every depth.
pub fn default(schema: &Value, v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, ps) in props {
                    if let Some(d) = ps.get("default")
                        && m.get(k).is_none_or(Value::is_null)
                    {
                        m.insert(k.clone(), d.clone());
                    }
                }
                for (k, child) in m.iter_mut() {
                    if let Some(ps) = props.get(k) {
                        default(ps, child);
                    }
                }
            } else if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for child in m.values_mut() {
                    default(extra, child);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = schema.get("items") {
                for child in a.iter_mut() {
                    default(items, child);
                }
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Validation against the schema: types, enums, bounds, lengths, patterns,
/// required fields, list uniqueness; every failure as a field cause.
pub fn validate(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<StatusCause> {
    let mut out = Vec::new();
    validate_at(schema, obj, old, "", true, &mut out);
    out
}

/// A compiled CEL rule, compiled once per rule text.
fn program(rule: &str) -> Result<std::sync::Arc<cel::Program>, String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static PROGRAMS: OnceLock<Mutex<HashMap<String, std::sync::Arc<cel::Program>>>> = OnceLock::new();
    let cache = PROGRAMS.get_or_init(Default::default);
    if let Some(p) = cache.lock().unwrap().get(rule) {
        return Ok(p.clone());
    }
    let p = std::sync::Arc::new(cel::Program::compile(rule).map_err(|e| format!("compilation failed: {e}"))?);
    cache.lock().unwrap().insert(rule.to_string(), p.clone());
    Ok(p)
}

/// `x-kubernetes-validations`: each CEL rule sees the value as `self` (and,
/// on updates, the previous value as `oldSelf`; rules that use `oldSelf`
/// only run then). A false rule fails with its message (or its
/// messageExpression's result) at the value's path plus the rule's fieldPath.
fn cel_rules(schema: &Value, v: &Value, old: Option<&Value>, path: &str, out: &mut Vec<StatusCause>) {
    let Some(rules) = schema.get("x-kubernetes-validations").and_then(Value::as_array) else { return };
    let Ok(this) = cel::to_value(v) else { return };
    let prev = old.and_then(|o| cel::to_value(o).ok());
    for r in rules {
        let rule = r.get("rule").and_then(Value::as_str).unwrap_or("");
        let transition = rule.contains("oldSelf");
        if transition && prev.is_none() {
            continue;
        }
        let Ok(prog) = program(rule) else { continue };
        let mut ctx = cel::Context::default();
        ctx.add_variable_from_value("self", this.clone());
        if let Some(p) = &prev {
            ctx.add_variable_from_value("oldSelf", p.clone());
        }
        let failed = match prog.execute(&ctx) {
            Ok(cel::Value::Bool(true)) => None,
            Ok(cel::Value::Bool(false)) => Some(None),
            Ok(other) => Some(Some(format!("rule did not evaluate to a bool: {other:?}"))),
            Err(e) => Some(Some(format!("rule evaluation error: {e}"))),
        };
        let Some(error) = failed else { continue };
        let message = error.unwrap_or_else(|| {
            let expr = r.get("messageExpression").and_then(Value::as_str).and_then(|m| program(m).ok()).and_then(|p| match p.execute(&ctx) {
                Ok(cel::Value::String(s)) => Some(s.to_string()),
                _ => None,
            });
            expr.or_else(|| r.get("message").and_then(Value::as_str).map(str::to_string)).unwrap_or_else(|| format!("failed rule: {rule}"))
        });
        let field = join_field(path, r.get("fieldPath").and_then(Value::as_str).unwrap_or(""));
        let shown = json!(type_name(v));
        out.push(match r.get("reason").and_then(Value::as_str) {
            Some("FieldValueRequired") => api::status::required_detail(&field, &message),
            Some("FieldValueForbidden") => api::status::forbidden(&field, &message),
            Some("FieldValueDuplicate") => StatusCause::new("FieldValueDuplicate", &field, format!("Duplicate value: {}: {message}", shown)),
            _ => invalid_value(&field, &shown, &message),
        });
    }
}

fn join_field(path: &str, field_path: &str) -> String {
    let fp = field_path.trim_start_matches('.');
    match (path.is_empty(), fp.is_empty()) {
        (true, _) => fp.to_string(),
        (_, true) => path.to_string(),
        _ => format!("{path}.{fp}"),
    }
}

fn validate_at(schema: &Value, v: &Value, old: Option<&Value>, path: &str, root: bool, out: &mut Vec<StatusCause>) {
    let field = if path.is_empty() { "<root>" } else { path };
    if v.is_null() {
        if schema.get("nullable") != Some(&json!(true)) && !root {
            out.push(invalid_value(
                field,
                v,
                &format!("{field} in body must be of type {}: \"null\"", schema.get("type").and_then(Value::as_str).unwrap_or("object")),
            ));
        }
        return;
    }
    if schema.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            out.push(invalid_value(field, v, &format!("{field} in body must be of type integer or string: \"{}\"", type_name(v))));
        }
        return;
    }
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(v);
        let ok = actual == t || (t == "number" && actual == "integer");
        if !ok {
            out.push(invalid_value(field, v, &format!("{field} in body must be of type {t}: \"{actual}\"")));
            return;
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        let allowed: Vec<String> = e.iter().map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string())).collect();
        let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
        out.push(not_supported(field, v, &allowed));
    }
    if let Some(n) = v.as_f64() {
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            let excl = schema.get("exclusiveMaximum") == Some(&json!(true));
            if n > max || (excl && n == max) {
                let rel = if excl { "less than" } else { "less than or equal to" };
                out.push(invalid_value(field, v, &format!("{field} in body should be {rel} {}", fmt_num(max))));
            }
        }
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            let excl = schema.get("exclusiveMinimum") == Some(&json!(true));
            if n < min || (excl && n == min) {
                let rel = if excl { "greater than" } else { "greater than or equal to" };
                out.push(invalid_value(field, v, &format!("{field} in body should be {rel} {}", fmt_num(min))));
            }
        }
    }
    if let Some(text) = v.as_str() {
        let len = text.chars().count() as u64;
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            out.push(api::status::too_long(field, max as usize));
        }
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            out.push(invalid_value(field, v, &format!("{field} in body should be at least {min} chars long")));
        }
        if let Some(p) = schema.get("pattern").and_then(Value::as_str)
            && let Ok(re) = regex::Regex::new(p)
            && !re.is_match(text)
        {
            out.push(invalid_value(field, v, &format!("{field} in body should match '{p}'")));
        }
    }
    match v {
        Value::Object(m) => {
            for r in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
                if !m.contains_key(r) {
                    out.push(required(&join(path, r)));
                }
            }
            if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
                && m.len() as u64 > max
            {
                out.push(too_many(field, Some(m.len()), max as usize));
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let extra = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in m {
                if (root || embedded(schema)) && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(s) = props.and_then(|p| p.get(k)).or(extra) {
                    validate_at(s, child, old.and_then(|o| o.get(k)), &join(path, k), false, out);
                }
            }
            if embedded(schema) {
                for f in ["apiVersion", "kind"] {
                    if m.get(f).and_then(Value::as_str).is_none_or(str::is_empty) {
                        out.push(required(&join(path, f)));
                    }
                }
            }
        }
        Value::Array(a) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && a.len() as u64 > max
            {
                out.push(too_many(field, Some(a.len()), max as usize));
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (a.len() as u64) < min
            {
                out.push(invalid_value(field, v, &format!("{field} in body should have at least {min} items")));
            }
            match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => {
                    for (i, e) in a.iter().enumerate() {
                        if a[..i].contains(e) {
                            out.push(duplicate(&format!("{path}[{i}]"), e));
                        }
                    }
                }
                Some("map") => {
                    let keys = strings(schema.get("x-kubernetes-list-map-keys"));
                    let key_of = |e: &Value| -> Vec<Value> { keys.iter().map(|k| e.get(k).cloned().unwrap_or(Value::Null)).collect() };
                    for (i, e) in a.iter().enumerate() {
                        let k = key_of(e);
                        if a[..i].iter().any(|o| key_of(o) == k) {
                            let shown: Map<String, Value> = keys.iter().cloned().zip(k).collect();
                            out.push(duplicate(&format!("{path}[{i}]"), &Value::Object(shown)));
                        }
                    }
                }
                _ => {}
            }
            if let Some(items) = schema.get("items") {
                // Elements correlate with their old selves only in keyed lists.
                let keys = strings(schema.get("x-kubernetes-list-map-keys"));
                let old_items = old.and_then(Value::as_array);
                for (i, child) in a.iter().enumerate() {
                    let prev = match (schema.get("x-kubernetes-list-type").and_then(Value::as_str), old_items) {
                        (Some("map"), Some(olds)) => olds.iter().find(|o| keys.iter().all(|k| o.get(k) == child.get(k))),
                        _ => None,
                    };
                    validate_at(items, child, prev, &format!("{path}[{i}]"), false, out);
                }
            }
        }
        _ => {}
    }
    cel_rules(schema, v, old, path, out);
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 { format!("{}", n as i64) } else { n.to_string() }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() { k.to_string() } else { format!("{path}.{k}") }
}

/// The Scale of a custom object, from the CRD's scale paths.
pub fn read_path<'a>(obj: &'a Value, json_path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for part in json_path.trim_start_matches('.').split('.').filter(|p| !p.is_empty()) {
        cur = cur.get(part)?;
    }
    Some(cur)
}

/// Sets the value at a `.a.b.c` path, creating objects on the way.
pub fn write_path(obj: &mut Value, json_path: &str, v: Value) {
    let parts: Vec<&str> = json_path.trim_start_matches('.').split('.').filter(|p| !p.is_empty()).collect();
    let mut cur = obj;
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let m = cur.as_object_mut().unwrap();
        if i == parts.len() - 1 {
            m.insert(part.to_string(), v);
            return;
        }
        cur = m.entry(part.to_string()).or_insert_with(|| json!({}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"], "categories": ["all"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "required": ["size"], "properties": {
                        "size": {"type": "integer", "minimum": 1, "maximum": 10},
                        "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                        "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "port": {"x-kubernetes-int-or-string": true}}},
                        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}},
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.replicas"}},
                     "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]},
                    {"name": "v1beta1", "served": true, "storage": false, "deprecated": true,
                     "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                    {"name": "v0", "served": false, "storage": false, "schema": {"openAPIV3Schema": {"type": "object"}}},
                ],
            },
        })
    }

    #[test]
    fn served_versions_become_resources() {
        let defs = resource_defs(&crd());
        assert_eq!(defs.iter().map(|d| d.version.as_str()).collect::<Vec<_>>(), ["v1", "v1beta1"]);
        let v1 = &defs[0];
        assert_eq!((v1.plural.as_str(), v1.kind.as_str(), v1.storage.as_str()), ("widgets", "Widget", "widgets.example.com"));
        assert!(v1.namespaced && v1.has_status() && v1.subresource("scale").is_some());
        assert_eq!(v1.short_names, ["wd"]);
        let c = v1.custom.as_ref().unwrap();
        assert_eq!(c.columns[0].json_path, ".spec.size");
        assert_eq!(defs[1].custom.as_ref().unwrap().warning.as_deref(), Some("example.com/v1beta1 Widget is deprecated"));
        assert!(validate_crd(&crd(), None).is_empty(), "{:?}", validate_crd(&crd(), None));
    }

    #[test]
    fn bad_crds_are_refused_with_upstream_messages() {
        let mut c = crd();
        c["metadata"]["name"] = json!("wrong");
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["untyped"] = json!({"description": "no type"});
        c["spec"]["versions"][1]["storage"] = json!(true);
        let got: Vec<String> = validate_crd(&c, None).iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        assert!(got.contains(&"metadata.name: Invalid value: \"wrong\": must be spec.names.plural+\".\"+spec.group".to_string()), "{got:#?}");
        assert!(
            got.iter()
                .any(|l| l.starts_with("spec.versions: Invalid value") && l.ends_with("must have exactly one version marked as storage version")),
            "{got:#?}"
        );
        assert!(got.contains(&"spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[untyped].type: Required value: must not be empty for specified object fields".to_string()), "{got:#?}");
    }

    #[test]
    fn prune_default_validate() {
        let schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
        let mut obj = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                             "spec": {"size": 3, "bogus": 1, "free": {"any": {"thing": 1}}, "port": "http"}, "extra": true});
        let mut unknown = Vec::new();
        prune(&schema, &mut obj, &mut unknown);
        assert_eq!(unknown, ["spec.bogus", "extra"]);
        default(&schema, &mut obj);
        assert_eq!(obj["spec"]["color"], "red");
        assert!(validate(&schema, &obj, None).is_empty(), "{:?}", validate(&schema, &obj, None));

        let bad = json!({"spec": {"size": "big", "color": "pink", "tags": ["a", "a"]}});
        let got: Vec<String> = validate(&schema, &bad, None).iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        assert!(got.contains(&"spec.size: Invalid value: \"big\": spec.size in body must be of type integer: \"string\"".to_string()), "{got:#?}");
        assert!(got.contains(&"spec.color: Unsupported value: \"pink\": supported values: \"red\", \"blue\"".to_string()), "{got:#?}");
        assert!(got.contains(&"spec.tags[1]: Duplicate value: \"a\"".to_string()), "{got:#?}");
        let big = validate(&schema, &json!({"spec": {"size": 11}}), None);
        assert_eq!(big[0].message, "Invalid value: 11: spec.size in body should be less than or equal to 10");
        let missing = validate(&schema, &json!({"spec": {}}), None);
        assert_eq!(missing[0].field, "spec.size");
    }

    #[test]
    fn cel_rules_with_transitions_and_message_expressions() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}, "mode": {"type": "string",
            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "mode is immutable"}]}},
        "x-kubernetes-validations": [
            {"rule": "self.min <= self.max", "messageExpression": "'min ' + string(self.min) + ' exceeds max ' + string(self.max)"},
            {"rule": "self.max < 100", "fieldPath": ".max", "reason": "FieldValueForbidden", "message": "too big"},
        ]}}});
        assert!(validate(&schema, &json!({"spec": {"min": 1, "max": 2, "mode": "a"}}), None).is_empty());
        let got: Vec<String> = validate(&schema, &json!({"spec": {"min": 150, "max": 120, "mode": "a"}}), None)
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(got, ["spec: Invalid value: \"object\": min 150 exceeds max 120", "spec.max: Forbidden: too big"]);
        let old = json!({"spec": {"min": 1, "max": 2, "mode": "a"}});
        let got = validate(&schema, &json!({"spec": {"min": 1, "max": 2, "mode": "b"}}), Some(&old));
        assert_eq!(got[0].message, "Invalid value: \"string\": mode is immutable");
        let mut bad = schema.clone();
        bad["properties"]["spec"]["x-kubernetes-validations"][0]["rule"] = json!("self.min <=");
        let errs = validate_crd(
            &json!({"metadata": {"name": "a.b.c"}, "spec": {"group": "b.c", "scope": "Cluster", "names": {"plural": "a", "kind": "A"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": bad}}]}}),
            None,
        );
        assert!(errs.iter().any(|e| e.field.ends_with("x-kubernetes-validations[0].rule") && e.message.contains("compilation failed")), "{errs:?}");
    }
}
