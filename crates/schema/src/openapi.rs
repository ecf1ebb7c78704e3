//! The OpenAPI registry: upstream's definitions of every built-in type
//! (embedded, see `scripts/gen-openapi.py`), looked up by name or by
//! group/version/kind, and the documents rendered from them: `/openapi/v2`
//! (one Swagger 2.0 document) and `/openapi/v3` (an index plus one OpenAPI
//! 3.0 document per group-version). The same definitions feed `kubectl
//! explain`, kubectl's validation and client-side apply, and the server's own
//! patch and apply logic (list types, merge keys).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::ResourceDef;

/// zlib-compressed JSON: definition name → OpenAPI v2 schema.
const DEFINITIONS_Z: &[u8] = include_bytes!("../data/definitions.json.z");

/// Size of the embedded definitions in the binary (for the benchmark).
pub const EMBEDDED_BYTES: usize = DEFINITIONS_Z.len();

const V2_REF: &str = "#/definitions/";
const V3_REF: &str = "#/components/schemas/";

/// The embedded definitions, decompressed and parsed once.
pub struct Definitions {
    pub schemas: Map<String, Value>,
    by_gvk: HashMap<(String, String, String), String>,
}

/// The process-wide definitions. The first call pays the decompression
/// and parse (a few milliseconds); `rkube server` warms it off the request path.
pub fn definitions() -> &'static Definitions {
    static DEFS: OnceLock<Definitions> = OnceLock::new();
    DEFS.get_or_init(|| {
        let json = miniz_oxide::inflate::decompress_to_vec_zlib(DEFINITIONS_Z).expect("the embedded definitions are valid zlib");
        let schemas: Map<String, Value> = serde_json::from_slice(&json).expect("the embedded definitions are valid JSON");
        let mut by_gvk = HashMap::new();
        for (name, s) in &schemas {
            for gvk in s.get("x-kubernetes-group-version-kind").and_then(Value::as_array).into_iter().flatten() {
                let f = |k: &str| gvk.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                by_gvk.insert((f("group"), f("version"), f("kind")), name.clone());
            }
        }
        Definitions { schemas, by_gvk }
    })
}

impl Definitions {
    /// The definition name of a kind ("io.k8s.api.apps.v1.Deployment").
    pub fn name_of(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.by_gvk.get(&(group.to_string(), version.to_string(), kind.to_string())).map(String::as_str)
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.schemas.get(name)
    }

    /// Follows a `$ref` (v2 form) to its definition; other schemas are returned as they are.
    pub fn resolve<'a>(&'a self, s: &'a Value) -> &'a Value {
        match s.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix(V2_REF)) {
            Some(name) => self.schemas.get(name).unwrap_or(s),
            None => s,
        }
    }

    /// Every definition reachable from `roots`, by name.
    fn closure<'a>(&self, roots: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<String> = roots.into_iter().map(str::to_string).collect();
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if let Some(s) = self.schemas.get(&n) {
                refs(s, &mut |r| stack.push(r.to_string()));
            }
        }
        seen.retain(|n| self.schemas.contains_key(n));
        seen
    }
}

fn refs(s: &Value, f: &mut impl FnMut(&str)) {
    match s {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(n) = r.strip_prefix(V2_REF) {
                            f(n)
                        }
                    }
                    _ => refs(v, f),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, f)),
        _ => {}
    }
}

/// Meta types every document's paths refer to.
const META: [&str; 5] = [
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
    "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
];

/// One query or path parameter: (name, location, type, description).
type Param = (&'static str, &'static str, &'static str, &'static str);

const P_NAME: Param = ("name", "path", "string", "name of the resource");
const P_NAMESPACE: Param = ("namespace", "path", "string", "object name and auth scope, such as for teams and projects");
const P_PRETTY: Param = ("pretty", "query", "string", "If 'true', then the output is pretty printed.");
const P_DRY_RUN: Param = ("dryRun", "query", "string", "When present, indicates that modifications should not be persisted. Valid values: All.");
const P_FIELD_MANAGER: Param =
    ("fieldManager", "query", "string", "fieldManager is a name associated with the actor or entity that is making these changes.");
const P_FIELD_VALIDATION: Param = (
    "fieldValidation",
    "query",
    "string",
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
);
const P_FORCE: Param = ("force", "query", "boolean", "Force is going to \"force\" Apply requests. It must be unset for non-apply patch requests.");
const LIST_PARAMS: [Param; 10] = [
    ("allowWatchBookmarks", "query", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
    ("continue", "query", "string", "The continue option should be set when retrieving more results from the server."),
    ("fieldSelector", "query", "string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
    ("labelSelector", "query", "string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
    ("limit", "query", "integer", "limit is a maximum number of responses to return for a list call."),
    ("resourceVersion", "query", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."),
    ("resourceVersionMatch", "query", "string", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
    ("sendInitialEvents", "query", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`."),
    ("timeoutSeconds", "query", "integer", "Timeout for the list/watch call."),
    (
        "watch",
        "query",
        "boolean",
        "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
    ),
];
const DELETE_PARAMS: [Param; 4] = [
    P_DRY_RUN,
    ("gracePeriodSeconds", "query", "integer", "The duration in seconds before the object should be deleted."),
    ("orphanDependents", "query", "boolean", "Deprecated: please use the PropagationPolicy."),
    (
        "propagationPolicy",
        "query",
        "string",
        "Whether and how garbage collection will be performed. Acceptable values are: 'Orphan', 'Background', 'Foreground'.",
    ),
];

const CUSTOM_PATCH_TYPES: [&str; 3] = ["application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json"];
const PATCH_TYPES: [&str; 4] =
    ["application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json"];

/// Which of the two document formats is being rendered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    V2,
    V3,
}

impl Flavor {
    fn reference(self, name: &str) -> Value {
        match self {
            Flavor::V2 => json!({"$ref": format!("{V2_REF}{name}")}),
            Flavor::V3 => json!({"$ref": format!("{V3_REF}{name}")}),
        }
    }

    fn param(self, (name, location, ty, description): Param) -> Value {
        let mut p = json!({"name": name, "in": location, "description": description});
        if location == "path" {
            p["required"] = json!(true);
        }
        match self {
            Flavor::V2 => p["type"] = json!(ty),
            Flavor::V3 => p["schema"] = json!({"type": ty}),
        }
        p
    }

    fn body(self, op: &mut Map<String, Value>, schema: Value, types: &[&str]) {
        match self {
            Flavor::V2 => {
                let mut params = op.remove("parameters").and_then(|p| p.as_array().cloned()).unwrap_or_default();
                params.insert(0, json!({"name": "body", "in": "body", "required": true, "schema": schema}));
                op.insert("parameters".into(), json!(params));
                op.insert("consumes".into(), json!(types));
            }
            Flavor::V3 => {
                let content: Map<String, Value> = types.iter().map(|t| (t.to_string(), json!({"schema": schema}))).collect();
                op.insert("requestBody".into(), json!({"required": true, "content": content}));
            }
        }
    }

    fn response(self, schema: Value) -> Value {
        match self {
            Flavor::V2 => json!({"200": {"description": "OK", "schema": schema}, "401": {"description": "Unauthorized"}}),
            Flavor::V3 => {
                let content: Map<String, Value> =
                    ["application/json", "application/yaml"].iter().map(|t| (t.to_string(), json!({"schema": schema}))).collect();
                json!({"200": {"description": "OK", "content": content}, "401": {"description": "Unauthorized"}})
            }
        }
    }
}

/// Upstream's operation IDs: verb + version-qualified group + kind, e.g.
/// `patchAppsV1NamespacedDeployment`, `listCoreV1PodForAllNamespaces`.
fn operation_id(verb: &str, d: &ResourceDef, scope: &str, suffix: &str) -> String {
    let mut group: String = if d.group.is_empty() { "Core".into() } else { camel(d.group.trim_end_matches(".k8s.io").trim_end_matches(".io")) };
    group.push_str(&camel(&d.version));
    format!("{verb}{group}{scope}{}{suffix}", d.kind)
}

fn camel(s: &str) -> String {
    s.split(['.', '-'])
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
        })
        .collect()
}

/// The paths of one resource (collection, item and subresources) as upstream
/// lays them out, each operation tagged with its group/version/kind and
/// action so kubectl can find which parameters the server supports.
fn resource_paths(f: Flavor, d: &ResourceDef, def_name: &str, list_name: Option<&str>, paths: &mut BTreeMap<String, Value>) {
    let base = if d.group.is_empty() { format!("/api/{}", d.version) } else { format!("/apis/{}/{}", d.group, d.version) };
    let gvk = json!({"group": d.group, "version": d.version, "kind": d.kind});
    let tag = format!("{}_{}", if d.group.is_empty() { "core".to_string() } else { d.group.replace('.', "_") }, d.version);
    let has = |v: &str| d.verbs.iter().any(|x| x == v);
    let scope = if d.namespaced { "Namespaced" } else { "" };
    let collection = if d.namespaced { format!("{base}/namespaces/{{namespace}}/{}", d.plural) } else { format!("{base}/{}", d.plural) };
    let obj = f.reference(def_name);
    let status = f.reference("io.k8s.apimachinery.pkg.apis.meta.v1.Status");
    let op = |verb: &str, action: &str, params: &[Param], resp: Value, suffix: &str| -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("tags".into(), json!([tag]));
        m.insert("operationId".into(), json!(operation_id(verb, d, scope, suffix)));
        m.insert("parameters".into(), Value::Array(params.iter().map(|p| f.param(*p)).collect()));
        m.insert("responses".into(), f.response(resp));
        m.insert("x-kubernetes-action".into(), json!(action));
        m.insert("x-kubernetes-group-version-kind".into(), gvk.clone());
        m
    };
    let path_params = |item: bool| -> Value {
        let mut ps = Vec::new();
        if item {
            ps.push(f.param(P_NAME));
        }
        if d.namespaced {
            ps.push(f.param(P_NAMESPACE));
        }
        ps.push(f.param(P_PRETTY));
        Value::Array(ps)
    };
    let write_params = [P_DRY_RUN, P_FIELD_MANAGER, P_FIELD_VALIDATION];
    let patch_params = [P_DRY_RUN, P_FIELD_MANAGER, P_FIELD_VALIDATION, P_FORCE];

    let mut coll = Map::new();
    if has("list") {
        let list = list_name.map(|n| f.reference(n)).unwrap_or_else(|| obj.clone());
        coll.insert("get".into(), Value::Object(op("list", "list", &LIST_PARAMS, list.clone(), "")));
        if d.namespaced {
            let mut all = Map::new();
            let mut o = op("list", "list", &LIST_PARAMS, list, "ForAllNamespaces");
            o.insert("operationId".into(), json!(operation_id("list", d, "", "ForAllNamespaces")));
            all.insert("get".into(), Value::Object(o));
            all.insert("parameters".into(), json!([f.param(P_PRETTY)]));
            paths.insert(format!("{base}/{}", d.plural), Value::Object(all));
        }
    }
    if has("create") {
        let mut o = op("create", "post", &write_params, obj.clone(), "");
        f.body(&mut o, obj.clone(), &["application/json", "application/yaml"]);
        coll.insert("post".into(), Value::Object(o));
    }
    if has("deletecollection") {
        let mut params = DELETE_PARAMS.to_vec();
        params.extend_from_slice(&LIST_PARAMS);
        coll.insert("delete".into(), Value::Object(op("deletecollection", "deletecollection", &params, status.clone(), "")));
    }
    if !coll.is_empty() {
        coll.insert("parameters".into(), path_params(false));
        paths.insert(collection.clone(), Value::Object(coll));
    }

    let mut item = Map::new();
    if has("get") {
        item.insert("get".into(), Value::Object(op("read", "get", &[], obj.clone(), "")));
    }
    if has("update") {
        let mut o = op("replace", "put", &write_params, obj.clone(), "");
        f.body(&mut o, obj.clone(), &["application/json", "application/yaml"]);
        item.insert("put".into(), Value::Object(o));
    }
    // Custom resources take every patch but strategic merge.
    let patch_types: &[&str] = if d.custom.is_some() { &CUSTOM_PATCH_TYPES } else { &PATCH_TYPES };
    if has("patch") {
        let mut o = op("patch", "patch", &patch_params, obj.clone(), "");
        f.body(&mut o, f.reference("io.k8s.apimachinery.pkg.apis.meta.v1.Patch"), patch_types);
        item.insert("patch".into(), Value::Object(o));
    }
    if has("delete") {
        let mut o = op("delete", "delete", &DELETE_PARAMS, status.clone(), "");
        f.body(&mut o, f.reference("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"), &["application/json", "application/yaml"]);
        item.insert("delete".into(), Value::Object(o));
    }
    if !item.is_empty() {
        item.insert("parameters".into(), path_params(true));
        paths.insert(format!("{collection}/{{name}}"), Value::Object(item));
    }

    // status and scale have a schema (the object itself, or autoscaling/v1 Scale).
    for sub in &d.subresources {
        let schema = match sub.name.as_str() {
            "status" => obj.clone(),
            "scale" => f.reference("io.k8s.api.autoscaling.v1.Scale"),
            _ => continue,
        };
        let suffix = camel(&sub.name);
        let mut m = Map::new();
        for verb in &sub.verbs {
            let (method, action, id) = match verb.as_str() {
                "get" => ("get", "get", "read"),
                "update" => ("put", "put", "replace"),
                "patch" => ("patch", "patch", "patch"),
                _ => continue,
            };
            let params: &[Param] = match method {
                "put" => &write_params,
                "patch" => &patch_params,
                _ => &[],
            };
            let mut o = op(id, action, params, schema.clone(), &suffix);
            if sub.name == "scale" {
                o.insert("x-kubernetes-group-version-kind".into(), json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}));
            }
            match method {
                "put" => f.body(&mut o, schema.clone(), &["application/json", "application/yaml"]),
                "patch" => f.body(&mut o, f.reference("io.k8s.apimachinery.pkg.apis.meta.v1.Patch"), patch_types),
                _ => {}
            }
            m.insert(method.into(), Value::Object(o));
        }
        if !m.is_empty() {
            m.insert("parameters".into(), path_params(true));
            paths.insert(format!("{collection}/{{name}}/{}", sub.name), Value::Object(m));
        }
    }
}

/// A definition as it appears in a v3 document: references point into
/// `components/schemas`, and a reference with siblings (a description) is
/// wrapped in `allOf`, as upstream's v3 documents do.
fn to_v3(s: &Value) -> Value {
    match s {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        out.insert(k.clone(), json!(r.replacen(V2_REF, V3_REF, 1)));
                    }
                    ("properties" | "patternProperties", Value::Object(props)) => {
                        out.insert(k.clone(), Value::Object(props.iter().map(|(n, p)| (n.clone(), to_v3(p))).collect()));
                    }
                    ("enum" | "default" | "required" | "x-kubernetes-group-version-kind" | "x-kubernetes-list-map-keys", _) => {
                        out.insert(k.clone(), v.clone());
                    }
                    _ => {
                        out.insert(k.clone(), to_v3(v));
                    }
                }
            }
            if out.len() > 1
                && let Some(r) = out.remove("$ref")
            {
                out.insert("allOf".into(), json!([{"$ref": r}]));
            }
            if m.get("format").and_then(Value::as_str) == Some("int-or-string") {
                out.insert("x-kubernetes-int-or-string".into(), json!(true));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(to_v3).collect()),
        other => other.clone(),
    }
}

/// A served resource with the names of its definition and its list's definition.
type Served<'a> = (&'a ResourceDef, String, Option<String>);

/// A custom resource's definitions (object and list), named as upstream
/// names them: the group reversed, the version, the kind.
fn custom_definitions(d: &ResourceDef, c: &crate::crd::Custom) -> [(String, Value); 2] {
    let mut group: Vec<&str> = d.group.split('.').collect();
    group.reverse();
    let name = format!("{}.{}.{}", group.join("."), d.version, d.kind);
    let text = |description: &str| json!({"type": "string", "description": description});
    let api_version = text("APIVersion defines the versioned schema of this representation of an object.");
    let kind = text("Kind is a string value representing the REST resource this object represents.");
    let mut obj = c.schema.clone();
    if !obj.get("properties").is_some_and(Value::is_object) {
        obj["properties"] = json!({});
    }
    obj["properties"]["apiVersion"] = api_version.clone();
    obj["properties"]["kind"] = kind.clone();
    obj["properties"]["metadata"] =
        json!({"$ref": format!("{V2_REF}io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"), "description": "Standard object's metadata."});
    obj["x-kubernetes-group-version-kind"] = json!([{"group": d.group, "kind": d.kind, "version": d.version}]);
    let list = json!({
        "description": format!("{}List is a list of {}", d.kind, d.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": api_version,
            "items": {"type": "array", "items": {"$ref": format!("{V2_REF}{name}")}},
            "kind": kind,
            "metadata": {"$ref": format!("{V2_REF}io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")},
        },
        "x-kubernetes-group-version-kind": [{"group": d.group, "kind": format!("{}List", d.kind), "version": d.version}],
    });
    [(name.clone(), obj), (format!("{name}List"), list)]
}

/// The served resources that have definitions, the definitions a document
/// needs, and the definitions of custom resources (not in the embedded set).
fn definition_names<'a>(
    defs: &Definitions,
    resources: impl IntoIterator<Item = &'a ResourceDef>,
) -> (Vec<Served<'a>>, Vec<String>, Map<String, Value>) {
    let mut served = Vec::new();
    let mut roots: Vec<String> = META.iter().map(|s| s.to_string()).collect();
    let mut extra = Map::new();
    for d in resources {
        if let Some(c) = &d.custom {
            let [(name, obj), (list, lobj)] = custom_definitions(d, c);
            refs(&obj, &mut |r| roots.push(r.to_string()));
            roots.push("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta".into());
            extra.insert(name.clone(), obj);
            extra.insert(list.clone(), lobj);
            if d.subresource("scale").is_some() {
                roots.push("io.k8s.api.autoscaling.v1.Scale".into());
            }
            served.push((d, name, Some(list)));
            continue;
        }
        let Some(name) = defs.name_of(&d.group, &d.version, &d.kind) else { continue };
        let list = defs.name_of(&d.group, &d.version, &format!("{}List", d.kind)).map(str::to_string);
        roots.push(name.to_string());
        roots.extend(list.clone());
        if d.subresource("scale").is_some() {
            roots.push("io.k8s.api.autoscaling.v1.Scale".into());
        }
        served.push((d, name.to_string(), list));
    }
    (served, roots, extra)
}

fn info() -> Value {
    json!({"title": "Kubernetes", "version": format!("v1.{}.0", crate::KUBE_MINOR)})
}

/// The paths and schemas of a document over `resources`, in `flavor`'s form.
fn paths_and_schemas<'a>(flavor: Flavor, resources: impl IntoIterator<Item = &'a ResourceDef>) -> (BTreeMap<String, Value>, Map<String, Value>) {
    let defs = definitions();
    let (served, roots, extra) = definition_names(defs, resources);
    let mut paths = BTreeMap::new();
    for (d, name, list) in &served {
        resource_paths(flavor, d, name, list.as_deref(), &mut paths);
    }
    let form = |s: &Value| if flavor == Flavor::V3 { to_v3(s) } else { s.clone() };
    let mut schemas: Map<String, Value> =
        defs.closure(roots.iter().map(String::as_str)).into_iter().map(|n| (n.clone(), form(&defs.schemas[&n]))).collect();
    schemas.extend(extra.iter().map(|(n, s)| (n.clone(), form(s))));
    (paths, schemas)
}

fn bearer() -> Value {
    json!({"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header", "description": "Bearer Token authentication"}})
}

/// `/openapi/v2`: one Swagger 2.0 document for every served resource.
pub fn v2_document<'a>(resources: impl IntoIterator<Item = &'a ResourceDef>) -> Value {
    let (paths, definitions) = paths_and_schemas(Flavor::V2, resources);
    json!({
        "swagger": "2.0",
        "info": info(),
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": bearer(),
        "security": [{"BearerToken": []}],
    })
}

/// The v3 index's key for a group-version: "api/v1", "apis/apps/v1".
pub fn v3_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// `/openapi/v3/<api|apis/group>/<version>`: the resources of one group-version.
pub fn v3_document<'a>(resources: impl IntoIterator<Item = &'a ResourceDef>) -> Value {
    let (paths, schemas) = paths_and_schemas(Flavor::V3, resources);
    json!({
        "openapi": "3.0.0",
        "info": info(),
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": bearer()},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin() -> Vec<ResourceDef> {
        crate::builtin::builtin()
    }

    #[test]
    fn every_served_kind_has_a_definition() {
        let defs = definitions();
        let missing: Vec<String> = builtin()
            .iter()
            .filter(|d| defs.name_of(&d.group, &d.version, &d.kind).is_none())
            .map(|d| format!("{}/{} {}", d.group, d.version, d.kind))
            .collect();
        assert!(missing.is_empty(), "no OpenAPI definition for {missing:?}");
    }

    #[test]
    fn definitions_keep_patch_metadata_and_formats() {
        let defs = definitions();
        let spec = defs.get("io.k8s.api.core.v1.PodSpec").unwrap();
        let containers = &spec["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        assert_eq!(containers["type"], "array");
        assert_eq!(defs.get("io.k8s.apimachinery.pkg.util.intstr.IntOrString").unwrap()["format"], "int-or-string");
        assert_eq!(defs.get("io.k8s.apimachinery.pkg.apis.meta.v1.Time").unwrap()["format"], "date-time");
        let dep = defs.get("io.k8s.api.apps.v1.Deployment").unwrap();
        assert!(dep["properties"]["kind"].get("enum").is_none(), "{dep}");
    }

    #[test]
    fn v3_document_of_apps_v1() {
        let all = builtin();
        let doc = v3_document(all.iter().filter(|d| d.group == "apps" && d.version == "v1"));
        let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"], json!({"group": "apps", "version": "v1", "kind": "Deployment"}));
        assert_eq!(patch["operationId"], "patchAppsV1NamespacedDeployment");
        assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"), "{patch}");
        let scale = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["put"];
        assert_eq!(scale["x-kubernetes-group-version-kind"]["kind"], "Scale");
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let dep = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(dep["properties"]["spec"]["allOf"][0]["$ref"], "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec");
        assert!(schemas.contains_key("io.k8s.api.core.v1.PodSpec"));
        assert!(schemas.contains_key("io.k8s.api.autoscaling.v1.Scale"));
        assert!(!schemas.contains_key("io.k8s.api.batch.v1.Job"), "only what apps/v1 reaches");
        let ios = &schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"];
        assert_eq!(ios["x-kubernetes-int-or-string"], true);
    }

    #[test]
    fn v2_document_lists_core_paths() {
        let all = builtin();
        let doc = v2_document(all.iter());
        assert_eq!(doc["swagger"], "2.0");
        let post = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps"]["post"];
        assert_eq!(post["operationId"], "createCoreV1NamespacedConfigMap");
        assert_eq!(post["parameters"][0]["in"], "body");
        assert!(post["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation" && p["type"] == "string"));
        assert_eq!(doc["paths"]["/api/v1/pods"]["get"]["operationId"], "listCoreV1PodForAllNamespaces");
        assert!(doc["definitions"]["io.k8s.api.core.v1.Pod"].is_object());
    }
}
