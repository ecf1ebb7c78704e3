//! Reading and writing `metadata` of objects held as JSON.
//!
//! Objects travel through the server as `serde_json::Value`, so these small
//! accessors are the one place that knows where metadata fields live. Getters
//! return `None` for absent fields and for fields of the wrong JSON type.

use serde_json::{Map, Value};

/// The `metadata` object, if present.
pub fn metadata(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata")?.as_object()
}

/// The `metadata` object for writing, created (or replaced, if it is not an
/// object) when needed. A non-object `obj` becomes an empty object first.
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let Value::Object(root) = obj else { unreachable!("obj was just made an object") };
    let meta = root.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    match meta {
        Value::Object(m) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

fn meta_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    metadata(obj)?.get(key)?.as_str()
}

pub fn api_version(obj: &Value) -> Option<&str> {
    obj.get("apiVersion")?.as_str()
}

pub fn kind(obj: &Value) -> Option<&str> {
    obj.get("kind")?.as_str()
}

pub fn name(obj: &Value) -> Option<&str> {
    meta_str(obj, "name")
}

pub fn generate_name(obj: &Value) -> Option<&str> {
    meta_str(obj, "generateName")
}

pub fn namespace(obj: &Value) -> Option<&str> {
    meta_str(obj, "namespace")
}

pub fn resource_version(obj: &Value) -> Option<&str> {
    meta_str(obj, "resourceVersion")
}

pub fn uid(obj: &Value) -> Option<&str> {
    meta_str(obj, "uid")
}

pub fn creation_timestamp(obj: &Value) -> Option<&str> {
    meta_str(obj, "creationTimestamp")
}

pub fn deletion_timestamp(obj: &Value) -> Option<&str> {
    meta_str(obj, "deletionTimestamp")
}

pub fn generation(obj: &Value) -> Option<i64> {
    metadata(obj)?.get("generation")?.as_i64()
}

pub fn deletion_grace_period_seconds(obj: &Value) -> Option<i64> {
    metadata(obj)?.get("deletionGracePeriodSeconds")?.as_i64()
}

pub fn labels(obj: &Value) -> Option<&Map<String, Value>> {
    metadata(obj)?.get("labels")?.as_object()
}

pub fn annotations(obj: &Value) -> Option<&Map<String, Value>> {
    metadata(obj)?.get("annotations")?.as_object()
}

/// One label's value.
pub fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    labels(obj)?.get(key)?.as_str()
}

/// One annotation's value.
pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    annotations(obj)?.get(key)?.as_str()
}

/// The finalizers, in order; empty when there are none.
pub fn finalizers(obj: &Value) -> Vec<&str> {
    metadata(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

pub fn owner_references(obj: &Value) -> Option<&Vec<Value>> {
    metadata(obj)?.get("ownerReferences")?.as_array()
}

/// Sets `metadata.<key>` to a value, creating `metadata` when missing.
pub fn set(obj: &mut Value, key: &str, value: impl Into<Value>) {
    metadata_mut(obj).insert(key.to_string(), value.into());
}

/// Removes `metadata.<key>`, returning what was there.
pub fn remove(obj: &mut Value, key: &str) -> Option<Value> {
    obj.get_mut("metadata")?.as_object_mut()?.remove(key)
}

pub fn set_name(obj: &mut Value, v: &str) {
    set(obj, "name", v);
}

pub fn set_namespace(obj: &mut Value, v: &str) {
    set(obj, "namespace", v);
}

pub fn set_resource_version(obj: &mut Value, v: &str) {
    set(obj, "resourceVersion", v);
}

pub fn set_uid(obj: &mut Value, v: &str) {
    set(obj, "uid", v);
}

pub fn set_generation(obj: &mut Value, v: i64) {
    set(obj, "generation", v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn getters() {
        let obj = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "p", "generateName": "p-", "namespace": "ns", "resourceVersion": "7", "uid": "u",
                "generation": 2, "creationTimestamp": "2024-01-01T00:00:00Z", "deletionTimestamp": "2024-01-02T00:00:00Z",
                "deletionGracePeriodSeconds": 30, "labels": {"app": "web"}, "annotations": {"a": "b"},
                "finalizers": ["f1", 3, "f2"], "ownerReferences": [{"kind": "ReplicaSet"}]
            }
        });
        let strs: Vec<(Option<&str>, Option<&str>)> = vec![
            (api_version(&obj), Some("v1")),
            (kind(&obj), Some("Pod")),
            (name(&obj), Some("p")),
            (generate_name(&obj), Some("p-")),
            (namespace(&obj), Some("ns")),
            (resource_version(&obj), Some("7")),
            (uid(&obj), Some("u")),
            (creation_timestamp(&obj), Some("2024-01-01T00:00:00Z")),
            (deletion_timestamp(&obj), Some("2024-01-02T00:00:00Z")),
            (label(&obj, "app"), Some("web")),
            (label(&obj, "missing"), None),
            (annotation(&obj, "a"), Some("b")),
        ];
        for (i, (got, want)) in strs.into_iter().enumerate() {
            assert_eq!(got, want, "getter #{i}");
        }
        assert_eq!(generation(&obj), Some(2));
        assert_eq!(deletion_grace_period_seconds(&obj), Some(30));
        assert_eq!(labels(&obj).map(|l| l.len()), Some(1));
        assert_eq!(annotations(&obj).map(|l| l.len()), Some(1));
        assert_eq!(finalizers(&obj), vec!["f1", "f2"]);
        assert_eq!(owner_references(&obj).map(Vec::len), Some(1));
    }

    #[test]
    fn getters_on_absent_or_mistyped_metadata() {
        for obj in [json!({}), json!({"metadata": null}), json!({"metadata": "x"}), json!(3), json!({"metadata": {"name": 5}})] {
            assert_eq!(name(&obj), None, "{obj}");
            assert_eq!(generation(&obj), None, "{obj}");
            assert!(labels(&obj).is_none(), "{obj}");
            assert!(finalizers(&obj).is_empty(), "{obj}");
        }
    }

    #[test]
    fn setters_create_metadata() {
        let cases = vec![json!({}), json!({"metadata": null}), json!({"metadata": {"name": "old", "keep": 1}}), json!("not an object")];
        for mut obj in cases {
            set_name(&mut obj, "n");
            set_namespace(&mut obj, "ns");
            set_resource_version(&mut obj, "9");
            set_uid(&mut obj, "u");
            set_generation(&mut obj, 4);
            assert_eq!(name(&obj), Some("n"));
            assert_eq!(namespace(&obj), Some("ns"));
            assert_eq!(resource_version(&obj), Some("9"));
            assert_eq!(uid(&obj), Some("u"));
            assert_eq!(generation(&obj), Some(4));
            assert_eq!(remove(&mut obj, "uid"), Some(json!("u")));
            assert_eq!(uid(&obj), None);
        }
        let mut obj = json!({"metadata": {"keep": 1}});
        metadata_mut(&mut obj).insert("x".into(), json!(true));
        assert_eq!(obj, json!({"metadata": {"keep": 1, "x": true}}));
    }
}
