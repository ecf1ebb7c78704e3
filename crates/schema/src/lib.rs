//! What rkube knows about the shape of resources: the definitions of every
//! built-in resource the API server serves (names, scope, verbs, subresources,
//! storage location), how each prints as a server-side Table, and which fields
//! its field selectors support. Pure data and pure functions, no IO.
//!
//! Not here: HTTP, storage, or anything that talks to a cluster.

pub mod builtin;
pub mod crd;
pub mod hooks;
pub mod managed;
pub mod openapi;
pub mod printers;
pub mod protobuf;
pub mod smp;
pub mod sparse;
pub mod typed;
pub mod validate;

use serde_json::Value;

/// The Kubernetes minor version whose API (and OpenAPI definitions) rkube serves.
pub const KUBE_MINOR: &str = "37";

/// How a resource's object names are validated (upstream's name validators).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain (most resources).
    Subdomain,
    /// DNS-1123 label (namespaces, services, ...).
    Label,
    /// Any path segment: not "." or "..", no "/" or "%" (RBAC roles and bindings, ...).
    PathSegment,
}

/// A subresource such as `status`, `scale` or `binding`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subresource {
    /// "status", "scale", "binding", "eviction", "log", "exec", "token", ...
    pub name: String,
    /// Kind served by the subresource ("Pod" for pods/status, "Scale" for scale).
    pub kind: String,
    /// Group and version of that kind, when it differs from the parent's
    /// ("autoscaling"/"v1" for Scale, "policy"/"v1" for Eviction).
    pub group: Option<String>,
    pub version: Option<String>,
    /// Verbs as upstream discovery lists them (e.g. get, patch, update).
    pub verbs: Vec<String>,
}

/// One served resource at one group/version.
#[derive(Clone, Debug)]
pub struct ResourceDef {
    /// API group ("" for the core group).
    pub group: String,
    pub version: String,
    pub kind: String,
    /// The plural resource name in URLs ("deployments").
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    /// Verbs as upstream discovery lists them, in upstream order.
    pub verbs: Vec<String>,
    pub subresources: Vec<Subresource>,
    /// Storage key segment shared by every version of this resource
    /// ("deployments.apps", "pods"). Versions with the same storage share objects.
    pub storage: String,
    /// True for create-only resources that are never stored (tokenreviews, ...).
    pub virtual_only: bool,
    pub name_rule: NameRule,
    /// Field selector fields beyond metadata.name and metadata.namespace,
    /// as upstream supports them for this kind ("spec.nodeName", "status.phase", ...).
    pub field_selectors: Vec<String>,
    /// Set for custom resources: the CRD version's schema, columns, scale paths.
    pub custom: Option<std::sync::Arc<crd::Custom>>,
}

impl ResourceDef {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    pub fn subresource(&self, name: &str) -> Option<&Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    pub fn has_status(&self) -> bool {
        self.subresource("status").is_some()
    }

    /// "pods" for the core group, "deployments.apps" otherwise (used in messages).
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    /// The parts of a stored object (its JSON) that `field_value` reads for
    /// these fields, decoded without the rest of the object.
    pub fn selected_parts<'f>(&self, json: &[u8], fields: impl Iterator<Item = &'f str>) -> Option<Value> {
        let paths: Vec<&str> = fields.map(|f| selectable_path(&self.group, f).0).collect();
        sparse::decode_paths(json, &paths)
    }

    /// The value of a field-selector field, or None if the field is not
    /// supported for this resource. Missing fields read as upstream reports
    /// them: "" for strings, "0" and "false" for the counters and flags.
    pub fn field_value(&self, obj: &Value, field: &str) -> Option<String> {
        let supported = matches!(field, "metadata.name" | "metadata.namespace") || self.field_selectors.iter().any(|f| f == field);
        if !supported {
            return None;
        }
        let (path, default) = selectable_path(&self.group, field);
        let mut cur = obj;
        for part in path.split('.') {
            match cur.get(part) {
                Some(v) => cur = v,
                None => return Some(default.to_string()),
            }
        }
        Some(match cur {
            Value::String(s) => s.clone(),
            Value::Null => default.to_string(),
            Value::Array(items) => items.iter().map(|i| i.get("ip").and_then(Value::as_str).unwrap_or_default()).collect::<Vec<_>>().join(","),
            other => other.to_string(),
        })
    }
}

/// Where upstream reads a selectable field from, and the value it reports
/// when the object leaves it unset. Most fields are their own JSON path and
/// read as ""; these few are named differently from the JSON or are numbers
/// and booleans that upstream prints from a zero value.
fn selectable_path<'a>(group: &str, field: &'a str) -> (&'a str, &'static str) {
    match (group, field) {
        ("", "source") => ("source.component", ""),
        ("", "reportingComponent") => ("reportingController", ""),
        ("events.k8s.io", "source") => ("deprecatedSource.component", ""),
        ("batch", "status.successful") => ("status.succeeded", "0"),
        ("" | "apps", "status.replicas") => (field, "0"),
        ("", "spec.unschedulable" | "spec.hostNetwork") => (field, "false"),
        _ => (field, ""),
    }
}

/// A column of a server-side Table (meta.k8s.io/v1 TableColumnDefinition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    /// OpenAPI type: "string", "integer", "number", "boolean", "date".
    pub type_: &'static str,
    /// "name" for the NAME column, "" otherwise.
    pub format: &'static str,
    pub description: &'static str,
    /// 0 for default columns, 1 for the extra `-o wide` ones.
    pub priority: u32,
}
