//! Name, label and object-metadata validation with upstream's messages.
//!
//! The `is_*` checks return the list of problems upstream's
//! `k8s.io/apimachinery` validators return (empty when valid); the
//! `validate_*` functions turn them into [`StatusCause`]s on the upstream
//! field paths, in upstream's order, so a 422 reads the same as upstream's.

use serde_json::{Map, Value};

use crate::status::{self, StatusCause};

pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
pub const DNS1035_LABEL_MAX_LENGTH: usize = 63;
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
pub const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
/// Keys plus values of all annotations together.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;
pub const MAX_SUBRESOURCE_NAME_LENGTH: usize = 256;

/// Upstream's message for changing a field that may not change.
pub const FIELD_IMMUTABLE_MSG: &str = "field is immutable";
/// Upstream's message for a negative count.
pub const IS_NEGATIVE_MSG: &str = "must be greater than or equal to 0";

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_MSG: &str =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// `must be no more than N bytes`. Current upstream counts and says bytes
/// (its `content` package); older releases said "characters".
pub fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} bytes")
}

/// Upstream's regex failure text, including its doubled space before "or".
pub fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut s = format!("{msg} (e.g. ");
    for (i, ex) in examples.iter().enumerate() {
        if i > 0 {
            s.push_str(" or ");
        }
        s.push_str(&format!("'{ex}', "));
    }
    s.push_str(&format!("regex used for validation is '{fmt}')"));
    s
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` without a length limit.
fn matches_dns1123_label(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && is_lower_alnum(b[0]) && is_lower_alnum(b[b.len() - 1]) && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
}

fn matches_dns1123_subdomain(v: &str) -> bool {
    v.split('.').all(matches_dns1123_label)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn matches_qualified_name(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A DNS label (RFC 1123): namespaces, most short names.
pub fn is_dns1123_label(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_dns1123_label(v) {
        if matches_dns1123_subdomain(v) {
            // A valid subdomain that is not a label can only differ by dots.
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, &["my-name", "123-abc"]));
        }
    }
    errs
}

/// A DNS subdomain (RFC 1123): the name rule of most kinds.
pub fn is_dns1123_subdomain(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !matches_dns1123_subdomain(v) {
        errs.push(regex_error(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, &["example.com"]));
    }
    errs
}

/// A DNS-1035 label: starts with a letter (Services, for example).
pub fn is_dns1035_label(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > DNS1035_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1035_LABEL_MAX_LENGTH));
    }
    if !(matches_dns1123_label(v) && v.as_bytes()[0].is_ascii_lowercase()) {
        errs.push(regex_error(DNS1035_LABEL_MSG, DNS1035_LABEL_FMT, &["my-name", "abc-123"]));
    }
    errs
}

/// A name that can be one segment of a URL path; the rule for kinds with
/// no stricter one. Like upstream, it checks neither emptiness nor length.
pub fn is_path_segment_name(v: &str) -> Vec<String> {
    if v == "." || v == ".." {
        return vec![format!("may not be '{v}'")];
    }
    is_path_segment_prefix(v)
}

/// The part of [`is_path_segment_name`] that also applies to prefixes.
pub fn is_path_segment_prefix(v: &str) -> Vec<String> {
    ["/", "%"].iter().filter(|bad| v.contains(**bad)).map(|bad| format!("may not contain '{bad}'")).collect()
}

/// A qualified name, the format of label and annotation keys and finalizers:
/// an optional DNS subdomain prefix and `/`, then a name of up to 63 bytes.
pub fn is_qualified_name(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = v.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(is_dns1123_subdomain(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            *name
        }
        _ => {
            return vec![format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errs.push(format!("name part {}", max_len_error(QUALIFIED_NAME_MAX_LENGTH)));
    }
    if !matches_qualified_name(name) {
        errs.push(format!("name part {}", regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])));
    }
    errs
}

/// A label value: empty, or a qualified name part of up to 63 bytes.
pub fn is_valid_label_value(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !(v.is_empty() || matches_qualified_name(v)) {
        errs.push(regex_error(LABEL_VALUE_MSG, LABEL_VALUE_FMT, &["MyValue", "my_value", "12345"]));
    }
    errs
}

/// Checks a `generateName` with a name rule. Upstream replaces a trailing
/// dash before checking (dropping the character before it too), because
/// random characters will follow it.
pub fn check_generate_name(prefix: &str, name_check: fn(&str) -> Vec<String>) -> Vec<String> {
    if let Some(stripped) = prefix.strip_suffix('-') {
        let mut bytes = stripped.as_bytes().to_vec();
        bytes.pop();
        bytes.push(b'a');
        return name_check(&String::from_utf8_lossy(&bytes));
    }
    name_check(prefix)
}

fn str_field<'a>(m: &'a Map<String, Value>, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Label keys must be qualified names and values valid label values.
pub fn validate_labels(labels: Option<&Map<String, Value>>, field: &str) -> Vec<StatusCause> {
    let mut out = Vec::new();
    for (k, v) in labels.into_iter().flatten() {
        out.extend(is_qualified_name(k).iter().map(|m| status::invalid_value(field, &Value::String(k.clone()), m)));
        if let Some(v) = v.as_str() {
            out.extend(is_valid_label_value(v).iter().map(|m| status::invalid_value(field, &Value::String(v.to_string()), m)));
        }
    }
    out
}

/// Annotation keys are qualified names regardless of case, and all
/// annotations together may not exceed 256 KiB.
pub fn validate_annotations(annotations: Option<&Map<String, Value>>, field: &str) -> Vec<StatusCause> {
    let mut out = Vec::new();
    let mut total = 0usize;
    for (k, v) in annotations.into_iter().flatten() {
        out.extend(is_qualified_name(&k.to_lowercase()).iter().map(|m| status::invalid_value(field, &Value::String(k.clone()), m)));
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        out.push(status::too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    out
}

/// The version of an `apiVersion`, empty when it does not parse as
/// `version` or `group/version`.
fn api_version_version(api_version: &str) -> &str {
    match api_version.split('/').collect::<Vec<_>>().as_slice() {
        [v] => v,
        [_, v] => v,
        _ => "",
    }
}

/// Each reference needs apiVersion, kind, name and uid; Events may not own
/// anything; at most one reference may be the controller.
pub fn validate_owner_references(refs: Option<&Vec<Value>>, field: &str) -> Vec<StatusCause> {
    let mut out = Vec::new();
    let Some(refs) = refs else { return out };
    let mut first_controller: Option<String> = None;
    for r in refs {
        let empty = Map::new();
        let m = r.as_object().unwrap_or(&empty);
        let api_version = str_field(m, "apiVersion");
        let kind = str_field(m, "kind");
        let version = api_version_version(api_version);
        if version.is_empty() {
            out.push(status::invalid_value(&format!("{field}.apiVersion"), &Value::String(api_version.into()), "version must not be empty"));
        }
        for key in ["kind", "name", "uid"] {
            let v = str_field(m, key);
            if v.is_empty() {
                out.push(status::invalid_value(&format!("{field}.{key}"), &Value::String(v.into()), "must not be empty"));
            }
        }
        if api_version == "v1" && kind == "Event" {
            out.push(status::invalid_value(field, r, "/v1, Kind=Event is disallowed from being an owner"));
        }
        if m.get("controller").and_then(Value::as_bool) == Some(true) {
            let current = format!("{kind}/{}", str_field(m, "name"));
            match &first_controller {
                Some(first) => out.push(status::invalid_value(
                    field,
                    &Value::Array(refs.clone()),
                    &format!("Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"),
                )),
                None => first_controller = Some(current),
            }
        }
    }
    out
}

/// Finalizers are qualified names, and `orphan` excludes `foregroundDeletion`.
pub fn validate_finalizers(finalizers: Option<&Vec<Value>>, field: &str) -> Vec<StatusCause> {
    let mut out = Vec::new();
    let Some(list) = finalizers else { return out };
    for f in list.iter().filter_map(Value::as_str) {
        out.extend(is_qualified_name(f).iter().map(|m| status::invalid_value(field, &Value::String(f.into()), m)));
    }
    let has = |name: &str| list.iter().any(|f| f.as_str() == Some(name));
    if has("orphan") && has("foregroundDeletion") {
        out.push(status::invalid_value(field, &Value::Array(list.clone()), "finalizer orphan and foregroundDeletion cannot be both set"));
    }
    out
}

/// Managed-field entries: operation, fieldsType, manager and subresource.
pub fn validate_managed_fields(entries: Option<&Vec<Value>>, field: &str) -> Vec<StatusCause> {
    let mut out = Vec::new();
    for (i, e) in entries.into_iter().flatten().enumerate() {
        let empty = Map::new();
        let m = e.as_object().unwrap_or(&empty);
        let path = format!("{field}[{i}]");
        let op = str_field(m, "operation");
        if op != "Apply" && op != "Update" {
            out.push(status::invalid_value(&format!("{path}.operation"), &Value::String(op.into()), "must be `Apply` or `Update`"));
        }
        let fields_type = str_field(m, "fieldsType");
        if !fields_type.is_empty() && fields_type != "FieldsV1" {
            out.push(status::invalid_value(&format!("{path}.fieldsType"), &Value::String(fields_type.into()), "must be `FieldsV1`"));
        }
        out.extend(validate_field_manager(str_field(m, "manager"), &format!("{path}.manager")));
        if str_field(m, "subresource").len() > MAX_SUBRESOURCE_NAME_LENGTH {
            out.push(status::too_long(&format!("{path}.subresource"), MAX_SUBRESOURCE_NAME_LENGTH));
        }
    }
    out
}

/// A field manager name: at most 128 bytes, printable characters only.
pub fn validate_field_manager(manager: &str, field: &str) -> Vec<StatusCause> {
    let mut out = Vec::new();
    if manager.len() > FIELD_MANAGER_MAX_LENGTH {
        out.push(status::too_long(field, FIELD_MANAGER_MAX_LENGTH));
    }
    for (i, c) in manager.char_indices() {
        if c.is_control() {
            out.push(status::invalid_value(
                field,
                &Value::String(manager.into()),
                &format!("invalid character U+{:04X} (at position {i})", c as u32),
            ));
        }
    }
    out
}

/// Validates `metadata` of an object about to be stored.
///
/// `name_check` is the kind's name rule (usually [`is_dns1123_subdomain`]).
/// On create a missing name is fine when `generateName` is set (the server
/// fills it in) and `generateName` itself is checked; on update neither
/// applies. Namespaced kinds need a namespace that is a DNS label;
/// cluster-scoped kinds may not have one.
pub fn validate_object_meta(meta: &Value, namespaced: bool, name_check: fn(&str) -> Vec<String>, is_create: bool) -> Vec<StatusCause> {
    let empty = Map::new();
    let m = meta.as_object().unwrap_or(&empty);
    let mut out = Vec::new();

    let name = str_field(m, "name");
    let generate_name = str_field(m, "generateName");
    if is_create && !generate_name.is_empty() {
        let v = Value::String(generate_name.into());
        out.extend(check_generate_name(generate_name, name_check).iter().map(|e| status::invalid_value("metadata.generateName", &v, e)));
    }
    if name.is_empty() {
        if !is_create || generate_name.is_empty() {
            out.push(status::required_detail("metadata.name", "name or generateName is required"));
        }
    } else {
        let v = Value::String(name.into());
        out.extend(name_check(name).iter().map(|e| status::invalid_value("metadata.name", &v, e)));
    }

    out.extend(validate_meta_common(m, namespaced));
    out
}

/// The checks shared by create and update, in upstream's order.
fn validate_meta_common(m: &Map<String, Value>, namespaced: bool) -> Vec<StatusCause> {
    let mut out = Vec::new();
    let namespace = str_field(m, "namespace");
    if namespaced {
        if namespace.is_empty() {
            out.push(status::required("metadata.namespace"));
        } else {
            let v = Value::String(namespace.into());
            out.extend(is_dns1123_label(namespace).iter().map(|e| status::invalid_value("metadata.namespace", &v, e)));
        }
    } else if !namespace.is_empty() {
        out.push(status::forbidden("metadata.namespace", "not allowed on this type"));
    }
    if let Some(g) = m.get("generation").and_then(Value::as_i64)
        && g < 0
    {
        out.push(status::invalid_value("metadata.generation", &Value::from(g), IS_NEGATIVE_MSG));
    }
    out.extend(validate_labels(m.get("labels").and_then(Value::as_object), "metadata.labels"));
    out.extend(validate_annotations(m.get("annotations").and_then(Value::as_object), "metadata.annotations"));
    out.extend(validate_owner_references(m.get("ownerReferences").and_then(Value::as_array), "metadata.ownerReferences"));
    out.extend(validate_finalizers(m.get("finalizers").and_then(Value::as_array), "metadata.finalizers"));
    out.extend(validate_managed_fields(m.get("managedFields").and_then(Value::as_array), "metadata.managedFields"));
    out
}

/// Validates `metadata` of an update against the stored object's: the
/// identity fields are immutable, generation may not go down, a deleting
/// object may gain no finalizers, and the new metadata must itself be valid.
pub fn validate_object_meta_update(new_meta: &Value, old_meta: &Value, namespaced: bool) -> Vec<StatusCause> {
    let empty = Map::new();
    let new = new_meta.as_object().unwrap_or(&empty);
    let old = old_meta.as_object().unwrap_or(&empty);
    let mut out = Vec::new();

    let deleting = old.get("deletionTimestamp").is_some_and(|v| !v.is_null());
    if deleting {
        let old_f: Vec<&str> = old.get("finalizers").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let mut added: Vec<&str> =
            new.get("finalizers").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).filter(|f| !old_f.contains(f)).collect();
        added.sort_unstable();
        added.dedup();
        if !added.is_empty() {
            let listed: Vec<String> = added.iter().map(|f| status::go_quote(f)).collect();
            out.push(status::forbidden(
                "metadata.finalizers",
                &format!("no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}", listed.join(", ")),
            ));
        }
    }

    if str_field(new, "resourceVersion").is_empty() {
        out.push(status::invalid_value("metadata.resourceVersion", &Value::String(String::new()), "must be specified for an update"));
    }
    let generation = |m: &Map<String, Value>| m.get("generation").and_then(Value::as_i64).unwrap_or(0);
    if generation(new) < generation(old) {
        out.push(status::invalid_value("metadata.generation", &Value::from(generation(new)), "must not be decremented"));
    }

    // Strings compare as strings (absent is ""); timestamps and the grace
    // period are pointers upstream, so absent shows as null.
    for key in ["name", "namespace", "uid"] {
        let (n, o) = (str_field(new, key), str_field(old, key));
        if n != o {
            out.push(status::invalid_value(&format!("metadata.{key}"), &Value::String(n.into()), FIELD_IMMUTABLE_MSG));
        }
    }
    for key in ["creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"] {
        let n = new.get(key).cloned().unwrap_or(Value::Null);
        let o = old.get(key).cloned().unwrap_or(Value::Null);
        if n != o {
            out.push(status::invalid_value(&format!("metadata.{key}"), &n, FIELD_IMMUTABLE_MSG));
        }
    }

    let mut common = validate_meta_common(new, namespaced);
    // Namespace presence was already compared against the stored object.
    common.retain(|c| c.field != "metadata.namespace");
    out.extend(common);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    const LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    const NAME_PART_ERR: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
    const DNS1035_ERR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

    fn check(f: fn(&str) -> Vec<String>, cases: &[(&str, &[&str])]) {
        for (input, want) in cases {
            assert_eq!(f(input), want.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "input {input:?}");
        }
    }

    #[test]
    fn dns1123_subdomain() {
        let long_ok = "a".repeat(253);
        let too_long = "a".repeat(254);
        let good = ["a", "ab", "a-1", "a--1--2--b", "0", "1a", "a.b.c.d.e", "1.2.3.4.5", "11.22.33.44.55", long_ok.as_str()];
        for g in good {
            assert!(is_dns1123_subdomain(g).is_empty(), "{g} should be valid");
        }
        let bad = ["", "A", "aBc", "-", "a-", "-a", "_", "a_b", ".", "a.", ".a", "a..b", " ", "a b", "A.a", "a@b", "a:b", "a%b", "ü"];
        for b in bad {
            assert_eq!(is_dns1123_subdomain(b), vec![SUBDOMAIN_ERR.to_string()], "{b:?}");
        }
        check(is_dns1123_subdomain, &[(too_long.as_str(), &["must be no more than 253 bytes"])]);
        let too_long_bad = format!("{}-", "a".repeat(253));
        check(is_dns1123_subdomain, &[(too_long_bad.as_str(), &["must be no more than 253 bytes", SUBDOMAIN_ERR])]);
    }

    #[test]
    fn dns1123_label() {
        let long_ok = "a".repeat(63);
        let too_long = "a".repeat(64);
        for g in ["a", "abc", "a-1", "0", "01", "1--a--b--2", long_ok.as_str()] {
            assert!(is_dns1123_label(g).is_empty(), "{g} should be valid");
        }
        check(
            is_dns1123_label,
            &[
                ("", &[LABEL_ERR]),
                ("A", &[LABEL_ERR]),
                ("a_b", &[LABEL_ERR]),
                ("-a", &[LABEL_ERR]),
                ("a.b", &["must not contain dots"]),
                ("1.2", &["must not contain dots"]),
                (".a", &[LABEL_ERR]),
                (too_long.as_str(), &["must be no more than 63 bytes"]),
            ],
        );
    }

    #[test]
    fn dns1035_label() {
        for g in ["a", "ab", "a-1", "a--1--2--b"] {
            assert!(is_dns1035_label(g).is_empty(), "{g} should be valid");
        }
        check(is_dns1035_label, &[("0", &[DNS1035_ERR]), ("1a", &[DNS1035_ERR]), ("", &[DNS1035_ERR]), ("a.b", &[DNS1035_ERR])]);
    }

    #[test]
    fn path_segment_names() {
        check(
            is_path_segment_name,
            &[
                ("ok", &[]),
                ("", &[]),
                ("Caps_and.dots", &[]),
                (".", &["may not be '.'"]),
                ("..", &["may not be '..'"]),
                ("...", &[]),
                ("a/b", &["may not contain '/'"]),
                ("a%b", &["may not contain '%'"]),
                ("a/%b", &["may not contain '/'", "may not contain '%'"]),
            ],
        );
    }

    #[test]
    fn qualified_names() {
        let name63 = "a".repeat(63);
        let name64 = "a".repeat(64);
        let long_prefix = format!("{}/{}", "a".repeat(253), "b".repeat(63));
        let too_long_prefix = format!("{}/abc", "a".repeat(254));
        let good = [
            "simple",
            "now-with-dashes",
            "1-starts-with-num",
            "1234",
            "simple/simple",
            "now-with.dashes-and.dots/simple",
            "1.2.3.4/5678",
            "Uppercase_Is_OK_123",
            "example.com/Uppercase_Is_OK_123",
            name63.as_str(),
            long_prefix.as_str(),
        ];
        for g in good {
            assert!(is_qualified_name(g).is_empty(), "{g} should be valid");
        }
        let slashes = "a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
        let prefix_err = format!("prefix part {SUBDOMAIN_ERR}");
        check(
            is_qualified_name,
            &[
                ("nospecialchars%^=@", &[NAME_PART_ERR]),
                ("cantendwithadash-", &[NAME_PART_ERR]),
                ("only/one/slash", &[slashes]),
                ("Example.com/abc", &[prefix_err.as_str()]),
                ("example.com/", &["name part must be non-empty", NAME_PART_ERR]),
                ("/simple", &["prefix part must be non-empty"]),
                ("", &["name part must be non-empty", NAME_PART_ERR]),
                (name64.as_str(), &["name part must be no more than 63 bytes"]),
                (too_long_prefix.as_str(), &["prefix part must be no more than 253 bytes"]),
            ],
        );
    }

    #[test]
    fn label_values() {
        let v63 = "a".repeat(63);
        let v64 = "a".repeat(64);
        for g in ["", "simple", "now-with-dashes", "1-starts-with-num", "end-with-num-1", "1234", v63.as_str()] {
            assert!(is_valid_label_value(g).is_empty(), "{g:?} should be valid");
        }
        check(
            is_valid_label_value,
            &[
                ("nospecialchars%^=@", &[LABEL_VALUE_ERR]),
                ("Tama-nui-te-rā.is.Māori.sun", &[LABEL_VALUE_ERR]),
                ("\\backslashes\\are\\bad", &[LABEL_VALUE_ERR]),
                ("-starts-with-dash", &[LABEL_VALUE_ERR]),
                ("ends.with.dot.", &[LABEL_VALUE_ERR]),
                (v64.as_str(), &["must be no more than 63 bytes"]),
            ],
        );
    }

    #[test]
    fn generate_name_prefixes() {
        let cases: &[(&str, bool)] = &[("web-", true), ("web", true), ("a-", true), ("Web-", false), ("we_b-", false), ("-", true), ("web--", true)];
        for (prefix, ok) in cases {
            assert_eq!(check_generate_name(prefix, is_dns1123_subdomain).is_empty(), *ok, "{prefix:?}");
        }
    }

    fn lines(causes: &[StatusCause]) -> Vec<String> {
        causes.iter().map(|c| format!("{}|{}", c.reason, c.line())).collect()
    }

    #[test]
    fn object_meta_on_create() {
        let inv = "FieldValueInvalid";
        let cases: Vec<(Value, bool, Vec<String>)> = vec![
            (json!({"name": "ok", "namespace": "default"}), true, vec![]),
            (json!({"name": "ok"}), false, vec![]),
            (json!({"generateName": "web-", "namespace": "default"}), true, vec![]),
            (
                json!({"namespace": "default"}),
                true,
                vec!["FieldValueRequired|metadata.name: Required value: name or generateName is required".into()],
            ),
            (
                json!({"name": "Bad_Name", "namespace": "default"}),
                true,
                vec![format!("{inv}|metadata.name: Invalid value: \"Bad_Name\": {SUBDOMAIN_ERR}")],
            ),
            (
                json!({"generateName": "Bad-", "namespace": "default"}),
                true,
                vec![format!("{inv}|metadata.generateName: Invalid value: \"Bad-\": {SUBDOMAIN_ERR}")],
            ),
            (json!({"name": "ok"}), true, vec!["FieldValueRequired|metadata.namespace: Required value".into()]),
            (json!({"name": "ok", "namespace": "Bad"}), true, vec![format!("{inv}|metadata.namespace: Invalid value: \"Bad\": {LABEL_ERR}")]),
            (
                json!({"name": "ok", "namespace": "default"}),
                false,
                vec!["FieldValueForbidden|metadata.namespace: Forbidden: not allowed on this type".into()],
            ),
            (
                json!({"name": "ok", "generation": -1}),
                false,
                vec![format!("{inv}|metadata.generation: Invalid value: -1: must be greater than or equal to 0")],
            ),
            (
                json!({"name": "ok", "labels": {"bad key": "ok", "k": "bad value"}}),
                false,
                vec![
                    format!("{inv}|metadata.labels: Invalid value: \"bad key\": {NAME_PART_ERR}"),
                    format!("{inv}|metadata.labels: Invalid value: \"bad value\": {LABEL_VALUE_ERR}"),
                ],
            ),
            (json!({"name": "ok", "annotations": {"Example.COM/Key": "any value at all"}}), false, vec![]),
            (
                json!({"name": "ok", "annotations": {"a/b/c": "v"}}),
                false,
                vec![format!(
                    "{inv}|metadata.annotations: Invalid value: \"a/b/c\": a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
                )],
            ),
            (
                json!({"name": "ok", "annotations": {"big": "x".repeat(262_142)}}),
                false,
                vec!["FieldValueTooLong|metadata.annotations: Too long: may not be more than 262144 bytes".into()],
            ),
            (json!({"name": "ok", "annotations": {"big": "x".repeat(262_141)}}), false, vec![]),
            (
                json!({"name": "ok", "ownerReferences": [{"apiVersion": "", "kind": "", "name": "", "uid": ""}]}),
                false,
                vec![
                    format!("{inv}|metadata.ownerReferences.apiVersion: Invalid value: \"\": version must not be empty"),
                    format!("{inv}|metadata.ownerReferences.kind: Invalid value: \"\": must not be empty"),
                    format!("{inv}|metadata.ownerReferences.name: Invalid value: \"\": must not be empty"),
                    format!("{inv}|metadata.ownerReferences.uid: Invalid value: \"\": must not be empty"),
                ],
            ),
            (json!({"name": "ok", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1"}]}), false, vec![]),
            (
                json!({"name": "ok", "ownerReferences": [{"apiVersion": "a/b/c", "kind": "K", "name": "n", "uid": "u"}]}),
                false,
                vec![format!("{inv}|metadata.ownerReferences.apiVersion: Invalid value: \"a/b/c\": version must not be empty")],
            ),
            (
                json!({"name": "ok", "ownerReferences": [{"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "u"}]}),
                false,
                vec![format!(
                    "{inv}|metadata.ownerReferences: Invalid value: {{\"apiVersion\":\"v1\",\"kind\":\"Event\",\"name\":\"e\",\"uid\":\"u\"}}: /v1, Kind=Event is disallowed from being an owner"
                )],
            ),
            (
                json!({"name": "ok", "ownerReferences": [
                    {"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": true},
                    {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "2", "controller": true}
                ]}),
                false,
                vec![format!(
                    "{inv}|metadata.ownerReferences: Invalid value: [{{\"apiVersion\":\"v1\",\"kind\":\"A\",\"name\":\"a\",\"uid\":\"1\",\"controller\":true}},{{\"apiVersion\":\"v1\",\"kind\":\"B\",\"name\":\"b\",\"uid\":\"2\",\"controller\":true}}]: Only one reference can have Controller set to true. Found \"true\" in references for A/a and B/b"
                )],
            ),
            (json!({"name": "ok", "finalizers": ["kubernetes", "example.com/cleanup"]}), false, vec![]),
            (
                json!({"name": "ok", "finalizers": ["bad finalizer"]}),
                false,
                vec![format!("{inv}|metadata.finalizers: Invalid value: \"bad finalizer\": {NAME_PART_ERR}")],
            ),
            (
                json!({"name": "ok", "finalizers": ["orphan", "foregroundDeletion"]}),
                false,
                vec![format!(
                    "{inv}|metadata.finalizers: Invalid value: [\"orphan\",\"foregroundDeletion\"]: finalizer orphan and foregroundDeletion cannot be both set"
                )],
            ),
            (
                json!({"name": "ok", "managedFields": [{"manager": "kubectl", "operation": "Patch", "fieldsType": "FieldsV2"}]}),
                false,
                vec![
                    format!("{inv}|metadata.managedFields[0].operation: Invalid value: \"Patch\": must be `Apply` or `Update`"),
                    format!("{inv}|metadata.managedFields[0].fieldsType: Invalid value: \"FieldsV2\": must be `FieldsV1`"),
                ],
            ),
            (json!({"name": "ok", "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1"}]}), false, vec![]),
        ];
        for (meta, namespaced, want) in cases {
            let got = validate_object_meta(&meta, namespaced, is_dns1123_subdomain, true);
            assert_eq!(lines(&got), want, "metadata {meta}");
        }
    }

    #[test]
    fn object_meta_on_update_ignores_generate_name() {
        let meta = json!({"generateName": "Bad-", "namespace": "default"});
        let got = validate_object_meta(&meta, true, is_dns1123_subdomain, false);
        assert_eq!(lines(&got), vec!["FieldValueRequired|metadata.name: Required value: name or generateName is required".to_string()]);
        let got = validate_object_meta(&json!({"name": "a/b"}), false, is_path_segment_name, false);
        assert_eq!(lines(&got), vec!["FieldValueInvalid|metadata.name: Invalid value: \"a/b\": may not contain '/'".to_string()]);
    }

    #[test]
    fn object_meta_update_rules() {
        let old = json!({"name": "a", "namespace": "ns", "uid": "u1", "resourceVersion": "5", "generation": 3,
                         "creationTimestamp": "2024-01-01T00:00:00Z"});
        let inv = "FieldValueInvalid";
        let cases: Vec<(Value, Value, Vec<String>)> = vec![
            (old.clone(), old.clone(), vec![]),
            (
                json!({"name": "b", "namespace": "ns", "uid": "u1", "resourceVersion": "5", "generation": 3, "creationTimestamp": "2024-01-01T00:00:00Z"}),
                old.clone(),
                vec![format!("{inv}|metadata.name: Invalid value: \"b\": field is immutable")],
            ),
            (
                json!({"name": "a", "namespace": "ns", "uid": "u2", "generation": 2}),
                old.clone(),
                vec![
                    format!("{inv}|metadata.resourceVersion: Invalid value: \"\": must be specified for an update"),
                    format!("{inv}|metadata.generation: Invalid value: 2: must not be decremented"),
                    format!("{inv}|metadata.uid: Invalid value: \"u2\": field is immutable"),
                    format!("{inv}|metadata.creationTimestamp: Invalid value: null: field is immutable"),
                ],
            ),
            (
                json!({"name": "a", "namespace": "ns", "resourceVersion": "6", "finalizers": ["z", "keep", "new"],
                       "deletionTimestamp": "2024-02-02T00:00:00Z"}),
                json!({"name": "a", "namespace": "ns", "resourceVersion": "5", "finalizers": ["keep"],
                       "deletionTimestamp": "2024-02-02T00:00:00Z"}),
                vec![r#"FieldValueForbidden|metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{"new", "z"}"#.to_string()],
            ),
            (
                json!({"name": "a", "namespace": "ns", "resourceVersion": "6", "deletionGracePeriodSeconds": 0}),
                json!({"name": "a", "namespace": "ns", "resourceVersion": "5", "deletionGracePeriodSeconds": 30}),
                vec![format!("{inv}|metadata.deletionGracePeriodSeconds: Invalid value: 0: field is immutable")],
            ),
            (
                json!({"name": "a", "namespace": "ns", "resourceVersion": "6", "labels": {"k": "-bad"}}),
                json!({"name": "a", "namespace": "ns", "resourceVersion": "5"}),
                vec![format!("{inv}|metadata.labels: Invalid value: \"-bad\": {LABEL_VALUE_ERR}")],
            ),
        ];
        for (new, old, want) in cases {
            assert_eq!(lines(&validate_object_meta_update(&new, &old, true)), want, "new {new}");
        }
    }

    #[test]
    fn field_manager_rules() {
        assert!(validate_field_manager("kubectl-client-side-apply", "fieldManager").is_empty());
        let long = "m".repeat(129);
        assert_eq!(
            lines(&validate_field_manager(&long, "fieldManager")),
            vec!["FieldValueTooLong|fieldManager: Too long: may not be more than 128 bytes".to_string()]
        );
        assert_eq!(
            lines(&validate_field_manager("a\u{1}", "fieldManager")),
            vec!["FieldValueInvalid|fieldManager: Invalid value: \"a\\x01\": invalid character U+0001 (at position 1)".to_string()]
        );
    }
}
