//! Field ownership and server-side apply (`metadata.managedFields`).
//!
//! Every write records which manager set which fields, as sets of paths in
//! upstream's `FieldsV1` form (`f:<field>`, `k:<key fields as JSON>` for an
//! element of a list keyed by fields, `v:<value>` for an element of a set,
//! `.` for a map or keyed element that is itself owned). An update takes the
//! fields it changes from every other manager. An apply merges the applied
//! configuration into the live object (keyed lists by key, sets as sets,
//! atomic lists and scalars replaced), refuses to change a value another
//! manager owns unless forced, and removes the fields its manager applied
//! before but no longer applies, when nobody else owns them.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::openapi::Definitions;

/// One step of a path, as FieldsV1 spells it ("f:spec", `k:{"name":"app"}`, `v:"x"`).
pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

/// Who writes, and how.
pub struct Manager<'a> {
    pub name: &'a str,
    /// "Apply" or "Update".
    pub operation: &'a str,
    pub api_version: &'a str,
    /// "" for the main resource, "status" or "scale".
    pub subresource: &'a str,
    pub time: &'a str,
}

/// A field another manager owns whose value an apply would change.
#[derive(Debug, PartialEq)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    /// ".spec.replicas", `.spec.containers[name="app"].image`
    pub field: String,
}

/// How a node of an object is tracked, from its schema.
enum Shape<'a> {
    Struct,
    /// A map with free keys (labels, data): owned as a whole and per key.
    Map,
    /// A list of objects keyed by these fields.
    Keyed(Vec<&'a str>),
    /// A list of distinct scalars.
    Set,
    /// Replaced whole: scalars, atomic lists and maps.
    Atomic,
}

fn shape<'a>(defs: &'a Definitions, schema: &'a Value, v: &Value) -> Shape<'a> {
    let s = defs.resolve(schema);
    match v {
        Value::Object(_) => {
            if s.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic") {
                Shape::Atomic
            } else if s.get("properties").is_some() {
                Shape::Struct
            } else {
                Shape::Map
            }
        }
        Value::Array(_) => {
            let list_type = schema.get("x-kubernetes-list-type").or_else(|| s.get("x-kubernetes-list-type")).and_then(Value::as_str);
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .or_else(|| s.get("x-kubernetes-list-map-keys"))
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let merge = schema.get("x-kubernetes-patch-strategy").and_then(Value::as_str).is_some_and(|p| p.split(',').any(|x| x == "merge"));
            let merge_key = schema.get("x-kubernetes-patch-merge-key").and_then(Value::as_str);
            match (list_type, merge, merge_key) {
                (Some("map"), _, _) if !keys.is_empty() => Shape::Keyed(keys),
                (Some("set"), _, _) => Shape::Set,
                (Some(_), _, _) => Shape::Atomic,
                (None, true, Some(k)) => Shape::Keyed(vec![k]),
                (None, true, None) => Shape::Set,
                _ => Shape::Atomic,
            }
        }
        _ => Shape::Atomic,
    }
}

fn property<'a>(defs: &'a Definitions, schema: &'a Value, name: &str) -> &'a Value {
    let s = defs.resolve(schema);
    s.get("properties").and_then(|p| p.get(name)).or_else(|| s.get("additionalProperties").filter(|a| a.is_object())).unwrap_or(&Value::Null)
}

fn items<'a>(defs: &'a Definitions, schema: &'a Value) -> &'a Value {
    defs.resolve(schema).get("items").unwrap_or(&Value::Null)
}

/// The `k:` step of a keyed list element: its key fields, sorted, as compact JSON.
fn key_step(elem: &Value, keys: &[&str]) -> String {
    let mut ks: Vec<&&str> = keys.iter().collect();
    ks.sort();
    let m: Map<String, Value> = ks.iter().filter_map(|k| elem.get(**k).cloned().or_else(|| key_default(k)).map(|v| (k.to_string(), v))).collect();
    format!("k:{}", Value::Object(m))
}

/// Defaults of list-map key fields (upstream's OpenAPI declares `default: TCP`
/// on every port `protocol` that keys a list), so an applied port without a
/// protocol names the same element as the defaulted live one.
fn key_default(key: &str) -> Option<Value> {
    (key == "protocol").then(|| json!("TCP"))
}

/// Metadata the server owns; never part of anyone's field set.
const SERVER_META: [&str; 10] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// The fields of `obj` (whose schema is `schema`) as a set of paths.
pub fn field_set(defs: &Definitions, schema: &Value, obj: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    differing_field_sets(defs, schema, &Value::Object(Map::new()), obj, &mut FieldSet::new(), &mut out);
    out
}

fn collect(defs: &Definitions, schema: &Value, v: &Value, path: &mut Path, out: &mut FieldSet) {
    if v.is_null() {
        return;
    }
    match (shape(defs, schema, v), v) {
        (Shape::Struct, Value::Object(m)) => {
            if m.is_empty() {
                out.insert(path.clone());
            }
            for (k, c) in m {
                path.push(format!("f:{k}"));
                collect(defs, property(defs, schema, k), c, path, out);
                path.pop();
            }
        }
        (Shape::Map, Value::Object(m)) => {
            out.insert(path.clone());
            for (k, c) in m {
                path.push(format!("f:{k}"));
                collect(defs, property(defs, schema, k), c, path, out);
                path.pop();
            }
        }
        (Shape::Keyed(keys), Value::Array(a)) => {
            let item = items(defs, schema);
            for e in a {
                collect_element(defs, item, e, key_step(e, &keys), path, out);
            }
        }
        (Shape::Set, Value::Array(a)) => {
            for e in a {
                path.push(format!("v:{e}"));
                out.insert(path.clone());
                path.pop();
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

/// One element of a keyed list (at step `step`, with item schema `item`):
/// the element itself and its fields.
fn collect_element(defs: &Definitions, item: &Value, e: &Value, step: String, path: &mut Path, out: &mut FieldSet) {
    path.push(step);
    out.insert(path.clone());
    if let Value::Object(m) = e {
        for (k, c) in m {
            path.push(format!("f:{k}"));
            collect(defs, property(defs, item, k), c, path, out);
            path.pop();
        }
    }
    path.pop();
}

/// The value at `path` in `obj`.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for step in path {
        cur = step_into(cur, step)?;
    }
    Some(cur)
}

fn step_into<'a>(cur: &'a Value, step: &str) -> Option<&'a Value> {
    if let Some(f) = step.strip_prefix("f:") {
        return cur.get(f);
    }
    let list = cur.as_array()?;
    if let Some(k) = step.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(k).ok()?;
        return list.iter().find(|e| key.iter().all(|(kk, kv)| e.get(kk) == Some(kv)));
    }
    if let Some(v) = step.strip_prefix("v:") {
        let want: Value = serde_json::from_str(v).ok()?;
        return list.iter().find(|e| **e == want);
    }
    None
}

fn remove_path(obj: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else { return };
    let mut cur = obj;
    for step in parent {
        let next = match step.strip_prefix("f:") {
            Some(f) => cur.get_mut(f),
            None => {
                let found = step_into(cur, step).cloned();
                cur.as_array_mut().and_then(|l| l.iter_mut().find(|e| Some(&**e) == found.as_ref()))
            }
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(found) = step_into(cur, last).cloned()
        && let Some(l) = cur.as_array_mut()
    {
        l.retain(|e| *e != found);
    }
}

/// A FieldSet as the FieldsV1 trie.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for step in path {
            node = node.entry(step.clone()).or_insert_with(|| json!({})).as_object_mut().unwrap();
        }
    }
    // A path that is owned and has children too is marked with ".".
    fn mark(node: &mut Map<String, Value>, set: &FieldSet, path: &mut Path) {
        for (k, v) in node.iter_mut() {
            if k == "." {
                continue;
            }
            path.push(k.clone());
            if let Value::Object(child) = v {
                if !child.is_empty() && set.contains(path) {
                    child.insert(".".into(), json!({}));
                }
                mark(child, set, path);
            }
            path.pop();
        }
    }
    mark(&mut root, set, &mut Vec::new());
    Value::Object(root)
}

pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn walk(node: &Map<String, Value>, path: &mut Path, out: &mut FieldSet) {
        for (k, child) in node {
            if k == "." {
                out.insert(path.clone());
                continue;
            }
            path.push(k.clone());
            match child.as_object() {
                Some(c) if !c.is_empty() => walk(c, path, out),
                _ => {
                    out.insert(path.clone());
                }
            }
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    if let Value::Object(m) = v {
        walk(m, &mut Vec::new(), &mut out);
    }
    out
}

/// One `managedFields` entry.
struct Entry {
    raw: Map<String, Value>,
    set: FieldSet,
    /// `set` differs from the `fieldsV1` in `raw`.
    dirty: bool,
    /// Not read (`set` is empty): the update leaves it as it is.
    kept: bool,
}

impl Entry {
    fn get(&self, k: &str) -> &str {
        self.raw.get(k).and_then(Value::as_str).unwrap_or("")
    }

    fn is(&self, m: &Manager) -> bool {
        is_manager(&self.raw, m)
    }
}

/// Whether the managedFields entry `raw` is `m`'s.
fn is_manager(raw: &Map<String, Value>, m: &Manager) -> bool {
    let get = |k: &str| raw.get(k).and_then(Value::as_str).unwrap_or("");
    get("manager") == m.name && get("operation") == m.operation && get("subresource") == m.subresource
}

fn entries(obj: &Value) -> Vec<Entry> {
    entries_reading(obj, |_| true)
}

/// `entries`, reading the field set only of those `read` picks; the others are kept as they are.
fn entries_reading(obj: &Value, read: impl Fn(&Map<String, Value>) -> bool) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_object())
        .map(|raw| match read(raw) {
            true => Entry { set: raw.get("fieldsV1").map(from_fields_v1).unwrap_or_default(), raw: raw.clone(), dirty: false, kept: false },
            false => Entry { set: FieldSet::new(), raw: raw.clone(), dirty: false, kept: true },
        })
        .collect()
}

/// Whether the FieldsV1 trie `v` has `path` in its set.
fn trie_contains(v: &Value, path: &Path) -> bool {
    let mut node = v;
    for step in path {
        match node.as_object().and_then(|m| m.get(step)) {
            Some(n) => node = n,
            None => return false,
        }
    }
    node.as_object().is_none_or(|m| m.is_empty() || m.contains_key("."))
}

fn store_entries(obj: &mut Value, mut list: Vec<Entry>, m: &Manager, set: FieldSet) {
    match list.iter_mut().find(|e| e.is(m)) {
        // The entry's time says when its fields last changed.
        Some(e) if e.set == set => {}
        Some(e) => {
            e.set = set;
            e.raw.clear();
            e.dirty = true;
        }
        None => list.push(Entry { raw: Map::new(), set, dirty: true, kept: false }),
    }
    put_entries(obj, list, m);
}

/// Writes `list` as `obj`'s managedFields (entries not dirty as they were).
fn put_entries(obj: &mut Value, list: Vec<Entry>, m: &Manager) {
    let out: Vec<Value> = list
        .into_iter()
        .filter(|e| e.kept || !e.set.is_empty())
        .map(|mut e| {
            if !e.dirty {
                // As stored: its fieldsV1 already says this set.
                return Value::Object(e.raw);
            }
            if e.raw.is_empty() {
                e.raw.insert("manager".into(), json!(m.name));
                e.raw.insert("operation".into(), json!(m.operation));
                e.raw.insert("apiVersion".into(), json!(m.api_version));
                e.raw.insert("time".into(), json!(m.time));
                if !m.subresource.is_empty() {
                    e.raw.insert("subresource".into(), json!(m.subresource));
                }
            }
            e.raw.insert("fieldsType".into(), json!("FieldsV1"));
            e.raw.insert("fieldsV1".into(), to_fields_v1(&e.set));
            // Upstream's key order.
            let order = ["manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1", "subresource"];
            let mut sorted = Map::new();
            for k in order {
                if let Some(v) = e.raw.remove(k) {
                    sorted.insert(k.into(), v);
                }
            }
            sorted.extend(e.raw);
            Value::Object(sorted)
        })
        .collect();
    let meta = obj.as_object_mut().and_then(|o| o.get_mut("metadata")).and_then(Value::as_object_mut);
    if let Some(meta) = meta {
        if out.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(out));
        }
    }
}

/// A changed leaf or a newly present node: what an update takes ownership of.
/// (A struct or map is only changed by its fields; an atomic map is a value.)
fn changed(defs: &Definitions, root: &Value, old: Option<&Value>, new: &Value, p: &Path, old_set: &FieldSet) -> bool {
    if !old_set.contains(p) {
        return true;
    }
    match (old.and_then(|o| value_at(o, p)), value_at(new, p)) {
        (_, Some(Value::Object(_))) if !atomic_map_at(defs, root, p) => false,
        (a, b) => a != b,
    }
}

/// Whether the schema makes the object at `path` one atomic value.
fn atomic_map_at(defs: &Definitions, root: &Value, path: &[String]) -> bool {
    let mut schema = root;
    for step in path {
        schema = match step.strip_prefix("f:") {
            Some(f) => property(defs, schema, f),
            None => items(defs, schema),
        };
    }
    defs.resolve(schema).get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic")
}

/// Records an update (create, PUT, non-apply patch) of `old` into `new` by `m`:
/// `m` takes the fields it set or changed, removed fields leave every set.
/// `keep` limits tracking to the fields this endpoint may write.
///
/// Only the parts of the object that differ between `old` and `new` can
/// change anyone's fields, so an update walks both together and collects
/// field paths only where they differ (`old_set` and `new_set` below are the
/// object's field sets restricted to those parts).
pub fn track_update(defs: &Definitions, root: &Value, old: Option<&Value>, new: &mut Value, m: &Manager, keep: impl Fn(&Path) -> bool) {
    let (old_set, new_set) = match old {
        Some(o) => {
            let (mut os, mut ns) = (FieldSet::new(), FieldSet::new());
            differing_field_sets(defs, root, o, new, &mut os, &mut ns);
            (os, ns)
        }
        None => (FieldSet::new(), field_set(defs, root, new)),
    };
    let (mut old_set, mut new_set) = (old_set, new_set);
    old_set.retain(|p| keep(p));
    new_set.retain(|p| keep(p));
    let taken: FieldSet = new_set.iter().filter(|p| changed(defs, root, old, new, p, &old_set)).cloned().collect();
    // Only entries holding a path taken or removed change (and this manager's own).
    let removed: Vec<&Path> = old_set.iter().filter(|p| !new_set.contains(*p)).collect();
    let touched = |raw: &Map<String, Value>| {
        let trie = raw.get("fieldsV1").unwrap_or(&Value::Null);
        taken.iter().chain(removed.iter().copied()).any(|p| trie_contains(trie, p))
    };
    // A create starts the history: managedFields a client sent are not trusted.
    let mut list = old.map(|o| entries_reading(o, |raw| touched(raw) || is_manager(raw, m))).unwrap_or_default();
    let mut own = None;
    for (i, e) in list.iter_mut().enumerate().filter(|(_, e)| !e.kept) {
        let before = e.set.len();
        e.set.retain(|p| !taken.contains(p) && (new_set.contains(p) || !old_set.contains(p)));
        e.dirty |= e.set.len() != before;
        if e.is(m) {
            own = Some(i);
        }
    }
    match own.map(|i| &mut list[i]) {
        // The manager's set stays as it was (a renewal, a status rewrite):
        // its fieldsV1 stays too; only the time moves if this write changed
        // anything (the apiVersion says how it was written).
        Some(e) if !e.dirty && taken.iter().all(|p| e.set.contains(p)) => {
            if !taken.is_empty() {
                e.raw.insert("time".into(), json!(m.time));
                e.raw.insert("apiVersion".into(), json!(m.api_version));
            }
            put_entries(new, list, m);
        }
        Some(e) => {
            let mut mine = std::mem::take(&mut e.set);
            mine.extend(taken);
            store_entries(new, list, m, mine);
        }
        None => store_entries(new, list, m, taken),
    }
}

/// `field_set` of `old` and of `new`, each restricted to the parts where
/// the two differ: equal subtrees (which have equal field paths) are skipped.
/// (An object that is not a JSON object has no fields.)
fn differing_field_sets(defs: &Definitions, schema: &Value, old: &Value, new: &Value, old_out: &mut FieldSet, new_out: &mut FieldSet) {
    let empty = Map::new();
    let (o, n) = (map_or(Some(old), &empty), map_or(Some(new), &empty));
    let mut path = Vec::new();
    for k in union_keys(o, n) {
        if k == "apiVersion" || k == "kind" {
            continue;
        }
        let (ov, nv) = (o.get(k), n.get(k));
        if ov == nv {
            continue;
        }
        path.push(format!("f:{k}"));
        if k == "metadata" {
            let (om, nm) = (map_or(ov, &empty), map_or(nv, &empty));
            let meta_schema = property(defs, schema, "metadata");
            for mk in union_keys(om, nm).filter(|mk| !SERVER_META.contains(mk)) {
                path.push(format!("f:{mk}"));
                diff_node(defs, property(defs, meta_schema, mk), om.get(mk), nm.get(mk), &mut path, old_out, new_out);
                path.pop();
            }
        } else {
            diff_node(defs, property(defs, schema, k), ov, nv, &mut path, old_out, new_out);
        }
        path.pop();
    }
}

fn map_or<'a>(v: Option<&'a Value>, empty: &'a Map<String, Value>) -> &'a Map<String, Value> {
    v.and_then(Value::as_object).unwrap_or(empty)
}

/// The keys of `a`, then those only in `b`.
fn union_keys<'a>(a: &'a Map<String, Value>, b: &'a Map<String, Value>) -> impl Iterator<Item = &'a str> {
    a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))).map(String::as_str)
}

/// `collect` of the node at `path` in the old and the new object, skipping
/// what is equal in both.
fn diff_node(defs: &Definitions, schema: &Value, old: Option<&Value>, new: Option<&Value>, path: &mut Path, old_out: &mut FieldSet, new_out: &mut FieldSet) {
    let (old, new) = (old.filter(|v| !v.is_null()), new.filter(|v| !v.is_null()));
    if old == new {
        return;
    }
    let (Some(o), Some(n)) = (old, new) else {
        if let Some(o) = old {
            collect(defs, schema, o, path, old_out);
        }
        if let Some(n) = new {
            collect(defs, schema, n, path, new_out);
        }
        return;
    };
    match (shape(defs, schema, o), o, n) {
        (shape @ (Shape::Struct | Shape::Map), Value::Object(om), Value::Object(nm)) => {
            // The node itself, as `collect` has it: a map always, a struct when empty.
            let is_map = matches!(shape, Shape::Map);
            if is_map || om.is_empty() {
                old_out.insert(path.clone());
            }
            if is_map || nm.is_empty() {
                new_out.insert(path.clone());
            }
            for k in union_keys(om, nm) {
                path.push(format!("f:{k}"));
                diff_node(defs, property(defs, schema, k), om.get(k), nm.get(k), path, old_out, new_out);
                path.pop();
            }
        }
        (Shape::Keyed(keys), Value::Array(oa), Value::Array(na)) => {
            let item = items(defs, schema);
            let steps = |a: &[Value]| a.iter().map(|e| key_step(e, &keys)).collect::<Vec<String>>();
            let (os, ns) = (steps(oa), steps(na));
            let distinct = |s: &[String]| s.iter().collect::<std::collections::HashSet<_>>().len() == s.len();
            if !distinct(&os) || !distinct(&ns) {
                // Elements with equal keys: no pairing, take both lists whole.
                collect(defs, schema, o, path, old_out);
                collect(defs, schema, n, path, new_out);
                return;
            }
            for (e, step) in na.iter().zip(&ns) {
                let before = os.iter().position(|s| s == step).map(|i| &oa[i]);
                if before == Some(e) {
                    continue;
                }
                path.push(step.clone());
                new_out.insert(path.clone());
                if before.is_some() {
                    old_out.insert(path.clone());
                }
                let empty = Map::new();
                let (of, nf) = (map_or(before, &empty), map_or(Some(e), &empty));
                for k in union_keys(of, nf) {
                    path.push(format!("f:{k}"));
                    diff_node(defs, property(defs, item, k), of.get(k), nf.get(k), path, old_out, new_out);
                    path.pop();
                }
                path.pop();
            }
            for (e, step) in oa.iter().zip(&os).filter(|(_, s)| !ns.contains(s)) {
                collect_element(defs, item, e, step.clone(), path, old_out);
            }
        }
        _ => {
            collect(defs, schema, o, path, old_out);
            collect(defs, schema, n, path, new_out);
        }
    }
}

/// Server-side apply of `applied` (the manager's whole intent) to `live`
/// (None: the object does not exist yet). Returns the merged object with its
/// managed fields, or the conflicts when `force` is false.
pub fn apply(
    defs: &Definitions,
    root: &Value,
    live: Option<&Value>,
    applied: &Value,
    m: &Manager,
    force: bool,
    keep: impl Fn(&Path) -> bool,
) -> Result<Value, Vec<Conflict>> {
    let schema = root;
    let applied_set: FieldSet = field_set(defs, root, applied).into_iter().filter(|p| keep(p)).collect();
    let Some(live) = live else {
        let mut obj = strip_nulls(applied);
        store_entries(&mut obj, Vec::new(), m, applied_set);
        return Ok(obj);
    };
    let mut list = entries(live);
    let mut conflicts = Vec::new();
    for e in list.iter_mut().filter(|e| !e.is(m)) {
        let clash: Vec<Path> = e
            .set
            .intersection(&applied_set)
            .filter(|p| match (value_at(applied, p), value_at(live, p)) {
                (Some(Value::Object(_)), _) | (_, Some(Value::Object(_))) if !atomic_map_at(defs, root, p) => false,
                (a, b) => a != b,
            })
            .cloned()
            .collect();
        for p in clash {
            conflicts.push(Conflict { manager: e.get("manager").to_string(), api_version: e.get("apiVersion").to_string(), field: describe(&p) });
            e.set.remove(&p);
            e.dirty = true;
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let mut merged = merge(defs, schema, live, applied);
    let previous: FieldSet = list.iter().find(|e| e.is(m)).map(|e| e.set.clone()).unwrap_or_default();
    let others: FieldSet = list.iter().filter(|e| !e.is(m)).flat_map(|e| e.set.iter().cloned()).collect();
    // Remove the highest paths only: a removed element takes its fields along.
    let mut removed: Vec<&Path> = Vec::new();
    for p in previous.difference(&applied_set) {
        // Kept when someone else owns it or anything below it.
        let owned_below = others.range(p.clone()..).next().is_some_and(|o| o.starts_with(p));
        if owned_below || removed.iter().any(|r| p.starts_with(r)) {
            continue;
        }
        remove_path(&mut merged, p);
        removed.push(p);
    }
    store_entries(&mut merged, list, m, applied_set);
    Ok(merged)
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), strip_nulls(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// The applied configuration merged into the live object.
fn merge(defs: &Definitions, schema: &Value, live: &Value, applied: &Value) -> Value {
    match (shape(defs, schema, applied), live, applied) {
        (Shape::Struct | Shape::Map, Value::Object(l), Value::Object(a)) => {
            let mut out = l.clone();
            for (k, av) in a {
                if av.is_null() {
                    out.remove(k);
                    continue;
                }
                let merged = match l.get(k) {
                    Some(lv) => merge(defs, property(defs, schema, k), lv, av),
                    None => strip_nulls(av),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Shape::Keyed(keys), Value::Array(l), Value::Array(a)) => {
            let item = items(defs, schema);
            let mut out = l.clone();
            for ae in a {
                let step = key_step(ae, &keys);
                match out.iter().position(|le| key_step(le, &keys) == step) {
                    Some(i) => out[i] = merge(defs, item, &out[i], ae),
                    None => out.push(strip_nulls(ae)),
                }
            }
            Value::Array(out)
        }
        (Shape::Set, Value::Array(l), Value::Array(a)) => {
            let mut out = l.clone();
            for ae in a {
                if !out.contains(ae) {
                    out.push(ae.clone());
                }
            }
            Value::Array(out)
        }
        _ => strip_nulls(applied),
    }
}

/// A path as upstream prints it in conflicts: `.spec.containers[name="app"].image`.
pub fn describe(p: &Path) -> String {
    let mut s = String::new();
    for step in p {
        if let Some(f) = step.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = step.strip_prefix("k:") {
            let m: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = step.strip_prefix("v:") {
            s.push_str(&format!("[{v}]"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::definitions;

    fn dep() -> &'static Value {
        definitions().get("io.k8s.api.apps.v1.Deployment").unwrap()
    }

    fn mgr<'a>(name: &'a str, op: &'a str) -> Manager<'a> {
        Manager { name, operation: op, api_version: "apps/v1", subresource: "", time: "2026-01-01T00:00:00Z" }
    }

    fn applied(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"app": "d"}},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
    }

    fn all(_: &Path) -> bool {
        true
    }

    #[test]
    fn field_sets_round_trip_through_fields_v1() {
        let set = field_set(definitions(), dep(), &applied(1, "x"));
        let v1 = to_fields_v1(&set);
        assert_eq!(
            v1,
            json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                   "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );
        assert_eq!(from_fields_v1(&v1), set);
    }

    #[test]
    fn apply_creates_then_conflicts_then_forces() {
        let defs = definitions();
        let a = apply(defs, dep(), None, &applied(1, "x"), &mgr("alice", "Apply"), false, all).unwrap();
        assert_eq!(a["metadata"]["managedFields"][0]["manager"], "alice");
        // bob updates replicas: he owns it now.
        let mut b = a.clone();
        b["spec"]["replicas"] = json!(5);
        track_update(defs, dep(), Some(&a), &mut b, &mgr("bob", "Update"), all);
        assert_eq!(b["metadata"]["managedFields"].as_array().unwrap().len(), 2, "{b:#}");
        // alice re-applies replicas 1: conflict with bob.
        let err = apply(defs, dep(), Some(&b), &applied(1, "y"), &mgr("alice", "Apply"), false, all).unwrap_err();
        assert_eq!(err, vec![Conflict { manager: "bob".into(), api_version: "apps/v1".into(), field: ".spec.replicas".into() }]);
        // The same value is no conflict; forcing takes ownership.
        apply(defs, dep(), Some(&b), &applied(5, "y"), &mgr("alice", "Apply"), false, all).unwrap();
        let c = apply(defs, dep(), Some(&b), &applied(1, "y"), &mgr("alice", "Apply"), true, all).unwrap();
        assert_eq!(c["spec"]["replicas"], 1);
        assert_eq!(c["spec"]["template"]["spec"]["containers"][0]["image"], "y");
        assert_eq!(c["metadata"]["managedFields"].as_array().unwrap().len(), 1, "bob owned nothing else: {c:#}");
    }

    /// The update tracking as first written: whole field sets of both
    /// objects. `track_update` must reach the same managedFields.
    fn track_update_by_whole_sets(defs: &Definitions, root: &Value, old: &Value, new: &mut Value, m: &Manager) {
        let mut list = entries(old);
        let old_set = field_set(defs, root, old);
        let new_set = field_set(defs, root, new);
        let taken: FieldSet = new_set.iter().filter(|p| changed(defs, root, Some(old), new, p, &old_set)).cloned().collect();
        let mut mine = FieldSet::new();
        for e in list.iter_mut() {
            e.set.retain(|p| !taken.contains(p) && (new_set.contains(p) || !old_set.contains(p)));
            e.dirty = true;
            if e.is(m) {
                mine = std::mem::take(&mut e.set);
            }
        }
        mine.extend(taken);
        store_entries(new, list, m, mine);
    }

    #[test]
    fn updates_track_the_same_fields_as_whole_field_sets_would() {
        let defs = definitions();
        let root = definitions().get("io.k8s.api.core.v1.Pod").unwrap();
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1"}, "annotations": {"x": "y"}},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}], "env": [{"name": "E", "value": "1"}]}],
                     "tolerations": [{"key": "k", "operator": "Exists"}], "nodeSelector": {}}});
        track_update(defs, root, None, &mut pod, &Manager { name: "kubectl", operation: "Update", api_version: "v1", subresource: "", time: "t0" }, all);
        // Each step edits the object as one manager; both ways must agree.
        let steps: Vec<(&str, &str, Box<dyn Fn(&mut Value)>)> = vec![
            ("labeller", "", Box::new(|v| v["metadata"]["labels"]["b"] = json!("2"))),
            ("labeller", "", Box::new(|v| v["metadata"]["labels"]["a"] = json!("changed"))),
            ("imager", "", Box::new(|v| v["spec"]["containers"][0]["image"] = json!("j"))),
            ("porter", "", Box::new(|v| v["spec"]["containers"][0]["ports"].as_array_mut().unwrap().push(json!({"containerPort": 81, "protocol": "UDP"})))),
            ("adder", "", Box::new(|v| v["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "side", "image": "s"})))),
            ("remover", "", Box::new(|v| { v["spec"]["containers"].as_array_mut().unwrap().remove(0); })),
            ("kubelet", "status", Box::new(|v| v["status"] = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}]}))),
            ("kubelet", "status", Box::new(|v| v["status"]["conditions"][0]["status"] = json!("False"))),
            ("other", "status", Box::new(|v| v["status"]["conditions"].as_array_mut().unwrap().retain(|c| c["type"] != "Initialized"))),
            ("dup", "", Box::new(|v| v["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "side", "image": "again"})))),
            ("nuller", "", Box::new(|v| { v["spec"]["nodeSelector"] = json!({"zone": "a"}); v["metadata"]["annotations"] = Value::Null; })),
            ("typer", "", Box::new(|v| v["spec"]["tolerations"] = json!([]))),
            ("nobody", "", Box::new(|_| {})),
        ];
        for (name, sub, edit) in steps {
            let m = Manager { name, operation: "Update", api_version: "v1", subresource: sub, time: "t1" };
            let mut new = pod.clone();
            edit(&mut new);
            let (mut fast, mut whole) = (new.clone(), new);
            track_update(defs, root, Some(&pod), &mut fast, &m, all);
            track_update_by_whole_sets(defs, root, &pod, &mut whole, &m);
            assert_eq!(fast["metadata"]["managedFields"], whole["metadata"]["managedFields"], "after {name}");
            pod = fast;
        }
        let managers: Vec<&str> = pod["metadata"]["managedFields"].as_array().unwrap().iter().map(|e| e["manager"].as_str().unwrap()).collect();
        assert_eq!(managers, ["kubectl", "labeller", "adder", "kubelet", "nuller", "typer"]);
        // nodeSelector is an atomic map: changing it takes it whole.
        let nuller = &pod["metadata"]["managedFields"][4];
        assert_eq!(nuller["fieldsV1"], json!({"f:spec": {"f:nodeSelector": {}}}), "{nuller:#}");

        // A status rewrite that keeps the kubelet's fields: same fieldsV1, a new time.
        let before = pod["metadata"]["managedFields"][3].clone();
        let m = Manager { name: "kubelet", operation: "Update", api_version: "v1", subresource: "status", time: "t2" };
        let mut new = pod.clone();
        new["status"]["phase"] = json!("Succeeded");
        track_update(defs, root, Some(&pod), &mut new, &m, all);
        let after = &new["metadata"]["managedFields"][3];
        assert_eq!((&after["manager"], &after["time"]), (&json!("kubelet"), &json!("t2")), "{after:#}");
        assert_eq!(after["fieldsV1"], before["fieldsV1"]);
        assert_eq!(new["metadata"]["managedFields"][0], pod["metadata"]["managedFields"][0], "the others stay as they were");
    }

    #[test]
    fn apply_prunes_what_the_manager_stopped_applying() {
        let defs = definitions();
        let mut with_sidecar = applied(1, "x");
        with_sidecar["spec"]["template"]["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "side", "image": "s"}));
        with_sidecar["metadata"]["labels"]["extra"] = json!("1");
        let a = apply(defs, dep(), None, &with_sidecar, &mgr("alice", "Apply"), false, all).unwrap();
        let b = apply(defs, dep(), Some(&a), &applied(1, "x"), &mgr("alice", "Apply"), false, all).unwrap();
        assert_eq!(b["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(), 1, "{b:#}");
        assert_eq!(b["metadata"]["labels"], json!({"app": "d"}));
        // A field someone else set stays when alice stops applying it.
        let mut c = b.clone();
        c["metadata"]["labels"]["team"] = json!("t");
        track_update(defs, dep(), Some(&b), &mut c, &mgr("kubectl-label", "Update"), all);
        let d = apply(defs, dep(), Some(&c), &applied(1, "x"), &mgr("alice", "Apply"), false, all).unwrap();
        assert_eq!(d["metadata"]["labels"]["team"], "t");
    }
}
