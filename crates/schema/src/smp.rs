//! Strategic merge patch with upstream's semantics, driven by the OpenAPI
//! definitions: a list whose field says `x-kubernetes-patch-strategy: merge`
//! merges element by element, keyed by `x-kubernetes-patch-merge-key` (or, for
//! lists of scalars, as a set); every other list is replaced; maps merge and a
//! `null` deletes. The directives: `$patch: replace|delete|merge` on a map or
//! list element, `$retainKeys`, `$setElementOrder/<list>` and
//! `$deleteFromPrimitiveList/<list>`.

use serde_json::{Map, Value};

use crate::openapi::Definitions;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

/// A patch that cannot be applied (upstream answers these with 422 or 400).
#[derive(Debug, PartialEq)]
pub struct PatchError(pub String);

/// Applies `patch` to `original`, an object of the definition `root`.
pub fn apply(defs: &Definitions, root: &str, original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let schema = defs.get(root).cloned().unwrap_or(Value::Null);
    let Value::Object(p) = patch else { return Err(PatchError("strategic merge patch must be a JSON object".into())) };
    let base = original.as_object().cloned().unwrap_or_default();
    Ok(Value::Object(merge_map(defs, &schema, base, p)?))
}

/// The schema of a property of `schema` (after following references).
fn field<'a>(defs: &'a Definitions, schema: &'a Value, name: &str) -> &'a Value {
    let s = defs.resolve(schema);
    if let Some(p) = s.get("properties").and_then(|p| p.get(name)) {
        return p;
    }
    s.get("additionalProperties").filter(|a| a.is_object()).unwrap_or(&Value::Null)
}

fn items<'a>(defs: &'a Definitions, list_schema: &'a Value) -> &'a Value {
    defs.resolve(list_schema).get("items").unwrap_or(&Value::Null)
}

fn strategy(list_schema: &Value) -> (bool, Option<&str>) {
    let merge = list_schema.get("x-kubernetes-patch-strategy").and_then(Value::as_str).is_some_and(|s| s.split(',').any(|p| p == "merge"));
    (merge, list_schema.get("x-kubernetes-patch-merge-key").and_then(Value::as_str))
}

fn merge_map(
    defs: &Definitions,
    schema: &Value,
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Map<String, Value>, PatchError> {
    match patch.get(DIRECTIVE).map(|d| d.as_str()) {
        Some(Some("replace")) => {
            // The patch (without its directives) is the new map.
            return Ok(strip(patch));
        }
        Some(Some("delete")) => return Ok(Map::new()),
        Some(Some("merge")) | None => {}
        Some(other) => {
            return Err(PatchError(format!("Unrecognized patch directive: {}", other.map(str::to_string).unwrap_or_else(|| "non-string".into()))));
        }
    }
    // Primitive-list deletions and element orders apply to the lists after the merge.
    let mut orders = Vec::new();
    for (k, v) in patch {
        if let Some(list) = k.strip_prefix(DELETE_PRIMITIVE) {
            let Value::Array(remove) = v else { return Err(PatchError(format!("{k} must be a list"))) };
            if let Some(Value::Array(cur)) = original.get_mut(list) {
                cur.retain(|x| !remove.contains(x));
            }
        } else if let Some(list) = k.strip_prefix(SET_ORDER) {
            let Value::Array(order) = v else { return Err(PatchError(format!("{k} must be a list"))) };
            orders.push((list.to_string(), order.clone()));
        }
    }
    for (k, pv) in patch {
        if k.starts_with('$') {
            continue;
        }
        let fs = field(defs, schema, k);
        if pv.is_null() || pv.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
            original.remove(k);
            continue;
        }
        let merged = match (original.remove(k), pv) {
            (Some(Value::Object(o)), Value::Object(p)) => Value::Object(merge_map(defs, fs, o, p)?),
            (None, Value::Object(p)) => Value::Object(merge_map(defs, fs, Map::new(), p)?),
            (Some(Value::Array(o)), Value::Array(p)) => Value::Array(merge_list(defs, fs, o, p)?),
            (None, Value::Array(p)) => Value::Array(merge_list(defs, fs, Vec::new(), p)?),
            (_, p) => p.clone(),
        };
        original.insert(k.clone(), merged);
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let Value::Array(keep) = retain else { return Err(PatchError("$retainKeys must be a list of strings".into())) };
        original.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k)));
    }
    for (list, order) in orders {
        let (_, key) = strategy(field(defs, schema, &list));
        if let Some(Value::Array(cur)) = original.get_mut(&list) {
            reorder(cur, &order, key);
        }
    }
    Ok(original)
}

/// A map without its `$` directives, with directives removed below it too.
fn strip(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| {
            let v = match v {
                Value::Object(o) => Value::Object(strip(o)),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

fn merge_list(defs: &Definitions, schema: &Value, mut original: Vec<Value>, patch: &[Value]) -> Result<Vec<Value>, PatchError> {
    let (merge, key) = strategy(schema);
    // A `{"$patch": "replace"}` element replaces the whole list with the rest.
    let replace = patch.iter().any(|e| e.get(DIRECTIVE).and_then(Value::as_str) == Some("replace"));
    if replace || !merge {
        return Ok(patch
            .iter()
            .filter(|e| e.get(DIRECTIVE).is_none())
            .map(|e| match e {
                Value::Object(o) => Value::Object(strip(o)),
                other => other.clone(),
            })
            .collect());
    }
    let item_schema = items(defs, schema);
    match key {
        None => {
            // A set of scalars: add what is missing, keep the original order.
            for e in patch {
                if !original.contains(e) {
                    original.push(e.clone());
                }
            }
            Ok(original)
        }
        Some(key) => {
            for e in patch {
                let Value::Object(pe) = e else { return Err(PatchError(format!("element of a list merged by {key} must be an object: {e}"))) };
                let Some(kv) = pe.get(key) else {
                    return Err(PatchError(format!("map: {e} does not contain declared merge key: {key}")));
                };
                let pos = original.iter().position(|o| o.get(key) == Some(kv));
                if pe.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                    if let Some(i) = pos {
                        original.remove(i);
                    }
                    continue;
                }
                match pos {
                    Some(i) => {
                        let o = std::mem::take(&mut original[i]).as_object().cloned().unwrap_or_default();
                        original[i] = Value::Object(merge_map(defs, item_schema, o, pe)?);
                    }
                    None => original.push(Value::Object(merge_map(defs, item_schema, Map::new(), pe)?)),
                }
            }
            Ok(original)
        }
    }
}

/// `$setElementOrder`: the listed elements in the given order; elements the
/// order does not name keep their relative place after them.
fn reorder(list: &mut [Value], order: &[Value], key: Option<&str>) {
    let ident = |v: &Value| -> Value {
        match key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let rank = |v: &Value| {
        let id = ident(v);
        order.iter().position(|o| ident(o) == id || *o == id).unwrap_or(usize::MAX)
    };
    list.sort_by_key(|v| rank(v));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::openapi::definitions;

    fn pod(patch: Value, original: Value) -> Value {
        apply(definitions(), "io.k8s.api.core.v1.Pod", &original, &patch).unwrap()
    }

    fn containers() -> Value {
        json!({"spec": {"containers": [{"name": "a", "image": "a:1", "ports": [{"containerPort": 80}]}, {"name": "b", "image": "b:1"}]}})
    }

    #[test]
    fn lists_with_merge_keys_merge_by_key() {
        let got = pod(json!({"spec": {"containers": [{"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}]}}), containers());
        assert_eq!(
            got["spec"]["containers"],
            json!([{"name": "a", "image": "a:1", "ports": [{"containerPort": 80}]}, {"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}])
        );
    }

    #[test]
    fn directives() {
        let del = pod(json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}), containers());
        assert_eq!(del["spec"]["containers"], json!([{"name": "b", "image": "b:1"}]));
        let rep = pod(json!({"spec": {"containers": [{"name": "z", "image": "z"}, {"$patch": "replace"}]}}), containers());
        assert_eq!(rep["spec"]["containers"], json!([{"name": "z", "image": "z"}]));
        let map_rep = pod(json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}}}), json!({"metadata": {"labels": {"x": "1"}}}));
        assert_eq!(map_rep["metadata"]["labels"], json!({"only": "this"}));
        let order = pod(json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}), containers());
        assert_eq!(order["spec"]["containers"][0]["name"], "b");
        let fin = pod(json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}), json!({"metadata": {"finalizers": ["x", "y"]}}));
        assert_eq!(fin["metadata"]["finalizers"], json!(["y"]));
        let retain = pod(
            json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["name", "emptyDir"], "emptyDir": {}}]}}),
            json!({"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/x"}}]}}),
        );
        assert_eq!(retain["spec"]["volumes"], json!([{"name": "v", "emptyDir": {}}]));
        let bad = apply(definitions(), "io.k8s.api.core.v1.Pod", &containers(), &json!({"spec": {"containers": [{"image": "x"}]}}));
        assert!(bad.unwrap_err().0.contains("does not contain declared merge key: name"));
    }

    #[test]
    fn maps_merge_nulls_delete_and_other_lists_replace() {
        let got = pod(
            json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"containers": [{"name": "a", "args": ["y"]}]}}),
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"containers": [{"name": "a", "args": ["x", "z"]}]}}),
        );
        assert_eq!(got["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        assert_eq!(got["spec"]["containers"][0]["args"], json!(["y"]), "args has no merge strategy");
        // finalizers merge as a set of strings.
        let fin = pod(json!({"metadata": {"finalizers": ["b", "a"]}}), json!({"metadata": {"finalizers": ["a"]}}));
        assert_eq!(fin["metadata"]["finalizers"], json!(["a", "b"]));
    }
}
