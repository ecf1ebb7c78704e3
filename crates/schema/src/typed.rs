//! Decoding a request body against a built-in kind's OpenAPI definition, the
//! way upstream's typed decoding does it: fields the type does not have are
//! found (and dropped), and values of the wrong JSON type are refused with
//! the error Go's decoder gives. `fieldValidation` decides what unknown
//! fields cost: `Strict` refuses them, `Warn` (the default) reports them as
//! warnings, `Ignore` drops them silently.

use serde_json::{Value, json};

use crate::openapi::Definitions;

/// What the walk found.
#[derive(Debug, Default, PartialEq)]
pub struct Decoded {
    /// Paths of unknown fields, as upstream prints them ("spec.foo",
    /// "spec.containers[0].bar"). They have been removed from the object.
    pub unknown: Vec<String>,
}

/// A value whose JSON type does not fit the schema, as Go's decoder words it:
/// `json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32`.
#[derive(Debug, PartialEq)]
pub struct TypeError(pub String);

/// Walks `obj` against the definition `root` (e.g. "io.k8s.api.apps.v1.Deployment"),
/// removing and reporting unknown fields and failing on type mismatches.
pub fn decode(defs: &Definitions, root: &str, obj: &mut Value) -> Result<Decoded, TypeError> {
    let mut out = Decoded::default();
    let Some(schema) = defs.get(root) else { return Ok(out) };
    let short = root.rsplit('.').next().unwrap_or(root);
    walk(defs, schema, short, root, obj, &mut String::new(), &mut out)?;
    Ok(out)
}

fn go_type(schema: &Value, def_name: &str) -> String {
    if def_name.ends_with("resource.Quantity") {
        return "resource.Quantity".into();
    }
    if def_name.ends_with("intstr.IntOrString") {
        return "intstr.IntOrString".into();
    }
    match (schema.get("type").and_then(Value::as_str), schema.get("format").and_then(Value::as_str)) {
        (Some("integer"), Some(f)) => f.to_string(),
        (Some("integer"), None) => "int".into(),
        (Some("number"), _) => "float64".into(),
        (Some("boolean"), _) => "bool".into(),
        (Some("string"), _) => "string".into(),
        (Some("array"), _) => "[]".into(),
        (Some("object"), _) => "object".into(),
        _ => "value".into(),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    }
}

/// `owner` is the Go struct the current object belongs to (for messages),
/// `def_name` the definition the schema came from (for special types).
fn walk(
    defs: &Definitions,
    schema: &Value,
    owner: &str,
    def_name: &str,
    v: &mut Value,
    path: &mut String,
    out: &mut Decoded,
) -> Result<(), TypeError> {
    // A reference: continue in the definition it names.
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        let Some(target) = defs.get(name) else { return Ok(()) };
        let short = name.rsplit('.').next().unwrap_or(name);
        let owner = if target.get("properties").is_some() { short } else { owner };
        return walk(defs, target, owner, name, v, path, out);
    }
    if v.is_null() {
        // Go's decoder leaves a field at its zero value for null.
        return Ok(());
    }
    let mismatch = || {
        let field = if path.is_empty() { String::new() } else { format!(" field {owner}.{path}") };
        let what = if field.is_empty() { "value".to_string() } else { format!("Go struct{field}") };
        TypeError(format!("json: cannot unmarshal {} into {what} of type {}", json_kind(v), go_type(schema, def_name)))
    };
    let ok = match schema.get("type").and_then(Value::as_str) {
        _ if def_name.ends_with("intstr.IntOrString") => v.is_string() || v.as_i64().is_some(),
        _ if def_name.ends_with("resource.Quantity") => v.is_string() || v.is_number(),
        Some("string") => v.is_string(),
        Some("integer") => v.as_i64().is_some() || v.as_u64().is_some(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        Some("array") => v.is_array(),
        Some("object") => v.is_object(),
        _ => true,
    };
    if !ok {
        return Err(mismatch());
    }
    // Times are RFC 3339, as Go's time.Time decodes them.
    if let (Some("date-time"), Value::String(t)) = (schema.get("format").and_then(Value::as_str), &*v)
        && time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_err()
    {
        return Err(TypeError(format!("parsing time {} as \"2006-01-02T15:04:05Z07:00\": cannot parse {} as \"2006\"", json!(t), json!(t))));
    }
    // Quantities are stored in upstream's canonical form ("1000m" → "1").
    if def_name.ends_with("resource.Quantity") {
        *v = Value::String(api::quantity::canonical(v).map_err(TypeError)?);
        return Ok(());
    }
    match v {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                let mut unknown = Vec::new();
                for (k, child) in map.iter_mut() {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                    match props.get(k) {
                        Some(s) => walk(defs, s, owner, def_name, child, path, out)?,
                        None => {
                            out.unknown.push(path.clone());
                            unknown.push(k.clone());
                        }
                    }
                    path.truncate(len);
                }
                for k in unknown {
                    map.remove(&k);
                }
            } else if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, child) in map.iter_mut() {
                    let len = path.len();
                    path.push_str(&format!("[{k}]"));
                    walk(defs, extra, owner, def_name, child, path, out)?;
                    path.truncate(len);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                for (i, child) in items.iter_mut().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    walk(defs, item, owner, def_name, child, path, out)?;
                    path.truncate(len);
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::definitions;

    #[test]
    fn unknown_fields_are_found_and_removed() {
        let mut d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "bogus": 1,
            "metadata": {"name": "x", "labels": {"a": "b"}, "nope": true},
            "spec": {"replicas": 2, "extra": "x", "template": {"spec": {"containers": [{"name": "c", "image": "i", "imagee": "typo"}]}}},
        });
        let got = decode(definitions(), "io.k8s.api.apps.v1.Deployment", &mut d).unwrap();
        assert_eq!(got.unknown, ["bogus", "metadata.nope", "spec.extra", "spec.template.spec.containers[0].imagee"]);
        assert!(d.get("bogus").is_none() && d["spec"].get("extra").is_none());
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0], json!({"name": "c", "image": "i"}));
        assert_eq!(d["metadata"]["labels"]["a"], "b", "map values are not fields");
    }

    #[test]
    fn wrong_types_are_refused_as_go_would() {
        let mut d = json!({"spec": {"replicas": "two"}});
        let e = decode(definitions(), "io.k8s.api.apps.v1.Deployment", &mut d).unwrap_err();
        assert_eq!(e.0, "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32");
        let mut p = json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": "80"}]}]}});
        let e = decode(definitions(), "io.k8s.api.core.v1.Pod", &mut p).unwrap_err();
        assert!(e.0.contains("cannot unmarshal string into Go struct field ContainerPort"), "{e:?}");
    }

    #[test]
    fn special_types_accept_their_forms() {
        let mut s = json!({"spec": {"ports": [{"port": 80, "targetPort": "http"}, {"port": 81, "targetPort": 8081}]}});
        assert_eq!(decode(definitions(), "io.k8s.api.core.v1.Service", &mut s).unwrap(), Decoded::default());
        let mut p =
            json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": 1, "memory": "1024Mi"}, "requests": {"cpu": "1000m"}}}]}});
        assert_eq!(decode(definitions(), "io.k8s.api.core.v1.Pod", &mut p).unwrap(), Decoded::default());
        assert_eq!(p["spec"]["containers"][0]["resources"], json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1"}}));
        let mut bad = json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "lots"}}}]}});
        assert_eq!(decode(definitions(), "io.k8s.api.core.v1.Pod", &mut bad).unwrap_err().0, api::quantity::FORMAT_ERROR);
        let mut t = json!({"metadata": {"name": "x", "creationTimestamp": "yesterday"}});
        assert!(decode(definitions(), "io.k8s.api.core.v1.ConfigMap", &mut t).unwrap_err().0.starts_with("parsing time \"yesterday\""));
        // RawExtension and free-form JSON take anything.
        let mut r = json!({"data": {"anything": [1, {"x": null}]}, "revision": 1});
        assert_eq!(decode(definitions(), "io.k8s.api.apps.v1.ControllerRevision", &mut r).unwrap(), Decoded::default());
    }
}
