//! Kubernetes `Status` errors and the field-level causes inside them.
//!
//! Clients match on `reason` and `code`, and people read `message`, so both
//! are worded exactly as upstream words them: `pods "x" not found`,
//! `Pod "x" is invalid: [a: Required value, b: ...]`. Values inside messages
//! are rendered the way Go's `fmt` renders them (strings quoted with `%q`,
//! numbers bare, anything else as JSON), because that is what upstream prints.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The `reason` strings of field-level causes (`metav1.CauseType`).
pub mod cause {
    pub const REQUIRED: &str = "FieldValueRequired";
    pub const INVALID: &str = "FieldValueInvalid";
    pub const DUPLICATE: &str = "FieldValueDuplicate";
    pub const NOT_SUPPORTED: &str = "FieldValueNotSupported";
    pub const NOT_FOUND: &str = "FieldValueNotFound";
    pub const TOO_LONG: &str = "FieldValueTooLong";
    pub const TOO_MANY: &str = "FieldValueTooMany";
    pub const FORBIDDEN: &str = "FieldValueForbidden";
    pub const TYPE_INVALID: &str = "FieldValueTypeInvalid";
    pub const INTERNAL: &str = "InternalError";
}

/// One entry of `details.causes`: what is wrong with which field.
///
/// `message` is the body without the field (`Required value`), as upstream's
/// `ErrorBody`; [`StatusCause::line`] joins both for aggregated messages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCause {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

impl StatusCause {
    pub fn new(reason: &str, field: &str, message: impl Into<String>) -> Self {
        StatusCause { reason: reason.to_string(), message: message.into(), field: field.to_string() }
    }

    /// The cause as upstream prints a field error: `field: message`.
    pub fn line(&self) -> String {
        if self.field.is_empty() { self.message.clone() } else { format!("{}: {}", self.field, self.message) }
    }
}

impl fmt::Display for StatusCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line())
    }
}

// Field-error helpers. Each returns the cause upstream's `field.*` constructor
// would produce, with the message body built the same way: type text, then
// the rendered bad value for the types that show it, then `: detail`.

fn body(type_text: &str, value: Option<&Value>, detail: &str) -> String {
    let mut s = type_text.to_string();
    if let Some(v) = value {
        s.push_str(": ");
        s.push_str(&format_value(v));
    }
    if !detail.is_empty() {
        s.push_str(": ");
        s.push_str(detail);
    }
    s
}

/// `Required value`.
pub fn required(field: &str) -> StatusCause {
    required_detail(field, "")
}

/// `Required value: <detail>`.
pub fn required_detail(field: &str, detail: &str) -> StatusCause {
    StatusCause::new(cause::REQUIRED, field, body("Required value", None, detail))
}

/// `Invalid value: "abc": <detail>`.
pub fn invalid_value(field: &str, value: &Value, detail: &str) -> StatusCause {
    StatusCause::new(cause::INVALID, field, body("Invalid value", Some(value), detail))
}

/// `Invalid value: 3: <detail>` with reason `FieldValueTypeInvalid`.
pub fn type_invalid(field: &str, value: &Value, detail: &str) -> StatusCause {
    StatusCause::new(cause::TYPE_INVALID, field, body("Invalid value", Some(value), detail))
}

/// `Unsupported value: "x": supported values: "a", "b"`.
pub fn not_supported(field: &str, value: &Value, allowed: &[&str]) -> StatusCause {
    let detail = if allowed.is_empty() {
        String::new()
    } else {
        let quoted: Vec<String> = allowed.iter().map(|a| go_quote(a)).collect();
        format!("supported values: {}", quoted.join(", "))
    };
    StatusCause::new(cause::NOT_SUPPORTED, field, body("Unsupported value", Some(value), &detail))
}

/// `Duplicate value: "x"`.
pub fn duplicate(field: &str, value: &Value) -> StatusCause {
    StatusCause::new(cause::DUPLICATE, field, body("Duplicate value", Some(value), ""))
}

/// `Not found: "x"`.
pub fn field_not_found(field: &str, value: &Value) -> StatusCause {
    StatusCause::new(cause::NOT_FOUND, field, body("Not found", Some(value), ""))
}

/// `Forbidden: <detail>`.
pub fn forbidden(field: &str, detail: &str) -> StatusCause {
    StatusCause::new(cause::FORBIDDEN, field, body("Forbidden", None, detail))
}

/// `Too long: may not be more than <max> bytes`; the value is never shown.
pub fn too_long(field: &str, max: usize) -> StatusCause {
    let unit = if max == 1 { "byte" } else { "bytes" };
    StatusCause::new(cause::TOO_LONG, field, body("Too long", None, &format!("may not be more than {max} {unit}")))
}

/// `Too many: <actual>: must have at most <max> items`.
pub fn too_many(field: &str, actual: Option<usize>, max: usize) -> StatusCause {
    let unit = if max == 1 { "item" } else { "items" };
    let actual = actual.map(Value::from);
    StatusCause::new(cause::TOO_MANY, field, body("Too many", actual.as_ref(), &format!("must have at most {max} {unit}")))
}

/// `Internal error: <detail>`.
pub fn internal_cause(field: &str, detail: &str) -> StatusCause {
    StatusCause::new(cause::INTERNAL, field, body("Internal error", None, detail))
}

/// Joins error lines as upstream's aggregate error does: duplicates dropped,
/// one line stands alone, several become `[a, b]`.
pub(crate) fn aggregate(lines: impl IntoIterator<Item = String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for line in lines {
        if !seen.contains(&line) {
            seen.push(line);
        }
    }
    match seen.len() {
        1 => seen.pop().unwrap_or_default(),
        _ => format!("[{}]", seen.join(", ")),
    }
}

/// Renders a bad value as Go's `%v`/`%q` would for the type upstream holds:
/// strings quoted, numbers and booleans bare, everything else as JSON.
pub fn format_value(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !(n.is_i64() || n.is_u64()) => go_float(f),
            _ => n.to_string(),
        },
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_string(),
        _ => go_json(v),
    }
}

/// Go's `%v` for a float64: shortest digits, exponent form outside 1e-4..1e21.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if f == 0.0 {
        return "0".into();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..21).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// JSON as Go's `encoding/json` writes it, which escapes HTML-significant
/// characters and the two JavaScript line separators.
fn go_json(v: &Value) -> String {
    let s = serde_json::to_string(v).unwrap_or_default();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            _ => out.push(c),
        }
    }
    out
}

/// Go's `strconv.Quote`, which upstream's `%q` uses for names and values.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if !go_printable(c) => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint` for characters above ASCII:
/// control, format and non-ASCII space characters are escaped.
fn go_printable(c: char) -> bool {
    if c.is_ascii() {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}'))
}

/// `resource` or `resource.group`, as `schema.GroupResource.String()`.
fn qualified(name: &str, group: &str) -> String {
    if group.is_empty() { name.to_string() } else { format!("{name}.{group}") }
}

/// `details` with the identifying fields upstream sets, empty ones omitted.
fn details(name: &str, group: &str, kind: &str) -> Value {
    let mut d = Map::new();
    for (k, v) in [("name", name), ("group", group), ("kind", kind)] {
        if !v.is_empty() {
            d.insert(k.to_string(), Value::String(v.to_string()));
        }
    }
    Value::Object(d)
}

/// A failed request, rendered to clients as a `Status` object.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub details: Option<Value>,
}

/// Who asked to do what, for the authorizer's `Forbidden` message.
///
/// A request with an empty `resource` is a non-resource request (`path`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccessAttributes<'a> {
    pub user: &'a str,
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub path: &'a str,
}

impl ApiError {
    /// The message of a 409 Conflict when the resourceVersion did not match.
    pub const OPTIMISTIC_LOCK_MSG: &'static str = "the object has been modified; please apply your changes to the latest version and try again";
    /// A list or watch asked for a resourceVersion that was compacted away.
    pub const EXPIRED_LIST_MSG: &'static str = "The resourceVersion for the provided list is too old.";
    /// A continue token points at a compacted revision.
    pub const CONTINUE_EXPIRED_MSG: &'static str =
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.";
    /// A continue token points at a compacted revision, and the response
    /// carries a fresh token for an inconsistent continuation.
    pub const INCONSISTENT_CONTINUE_MSG: &'static str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

    pub fn new(code: u16, reason: &str, message: impl Into<String>, details: Option<Value>) -> Self {
        ApiError { code, reason: reason.to_string(), message: message.into(), details }
    }

    /// 404 `pods "x" not found` / `deployments.apps "x" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let msg = format!("{} {} not found", qualified(resource, group), go_quote(name));
        Self::new(404, "NotFound", msg, Some(details(name, group, resource)))
    }

    /// 404 for a path that names no API at all.
    pub fn not_found_path() -> Self {
        Self::new(404, "NotFound", "the server could not find the requested resource", Some(json!({})))
    }

    /// 409 `pods "x" already exists`.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let msg = format!("{} {} already exists", qualified(resource, group), go_quote(name));
        Self::new(409, "AlreadyExists", msg, Some(details(name, group, resource)))
    }

    /// 409 when a generated name collided; the client may retry.
    pub fn generate_name_conflict(group: &str, resource: &str, name: &str, retry_after_seconds: u32) -> Self {
        let msg = format!(
            "{} {} already exists, the server was not able to generate a unique name for the object",
            qualified(resource, group),
            go_quote(name)
        );
        let mut d = details(name, group, resource);
        if retry_after_seconds > 0 {
            d["retryAfterSeconds"] = retry_after_seconds.into();
        }
        Self::new(409, "AlreadyExists", msg, Some(d))
    }

    /// 409 `Operation cannot be fulfilled on pods "x": <msg>`.
    pub fn conflict(group: &str, resource: &str, name: &str, msg: &str) -> Self {
        let msg = format!("Operation cannot be fulfilled on {} {}: {msg}", qualified(resource, group), go_quote(name));
        Self::new(409, "Conflict", msg, Some(details(name, group, resource)))
    }

    /// 422 `Pod "x" is invalid: <causes>` with every cause in `details`.
    /// 409 from server-side apply: the fields other managers own, as
    /// `(manager, apiVersion, field)`, grouped per manager like upstream's message.
    pub fn apply_conflict(group: &str, resource: &str, name: &str, conflicts: &[(String, String, String)]) -> Self {
        let mut sections: Vec<(String, Vec<&str>)> = Vec::new();
        for (m, v, f) in conflicts {
            let who = if v.is_empty() { go_quote(m) } else { format!("{} using {v}", go_quote(m)) };
            match sections.iter_mut().find(|(w, _)| *w == who) {
                Some((_, fs)) => fs.push(f),
                None => sections.push((who, vec![f])),
            }
        }
        let text: Vec<String> = sections
            .iter()
            .map(|(who, fs)| match fs.as_slice() {
                [one] => format!("conflict with {who}: {one}"),
                many => format!("conflicts with {who}:\n{}", many.iter().map(|f| format!("- {f}")).collect::<Vec<_>>().join("\n")),
            })
            .collect();
        let n = conflicts.len();
        let msg = format!("Apply failed with {n} conflict{}: {}", if n == 1 { "" } else { "s" }, text.join("\n"));
        let mut d = details(name, group, resource);
        d["causes"] = Value::Array(
            conflicts
                .iter()
                .map(|(m, v, f)| {
                    let who = if v.is_empty() { go_quote(m) } else { format!("{} using {v}", go_quote(m)) };
                    serde_json::json!({"reason": "FieldManagerConflict", "message": format!("conflict with {who}"), "field": f})
                })
                .collect(),
        );
        Self::new(409, "Conflict", msg, Some(d))
    }

    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<StatusCause>) -> Self {
        let head = format!("{} {} is invalid", qualified(kind, group), go_quote(name));
        let msg = if causes.is_empty() { head } else { format!("{head}: {}", aggregate(causes.iter().map(StatusCause::line))) };
        let mut d = details(name, group, kind);
        d["causes"] = serde_json::to_value(&causes).unwrap_or_else(|_| json!([]));
        Self::new(422, "Invalid", msg, Some(d))
    }

    /// 400 BadRequest with the message as given.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", msg, None)
    }

    /// 410 with reason `Expired`, which clients treat as "relist"; this is
    /// what upstream sends for too-old resource versions and continue tokens.
    pub fn gone(msg: impl Into<String>) -> Self {
        Self::new(410, "Expired", msg, None)
    }

    /// Same as [`ApiError::gone`], named after upstream's constructor.
    pub fn resource_expired(msg: impl Into<String>) -> Self {
        Self::gone(msg)
    }

    /// 410 `too old resource version: <requested> (<oldest available>)`.
    pub fn too_old_resource_version(requested: u64, oldest: u64) -> Self {
        Self::gone(format!("too old resource version: {requested} ({oldest})"))
    }

    /// 405 `<action> is not supported on resources of kind "pods"`.
    pub fn method_not_supported(group: &str, resource: &str, action: &str) -> Self {
        let msg = format!("{action} is not supported on resources of kind {}", go_quote(&qualified(resource, group)));
        Self::new(405, "MethodNotAllowed", msg, Some(details("", group, resource)))
    }

    /// 401; an empty message becomes upstream's `not authorized`.
    pub fn unauthorized(msg: impl Into<String>) -> Self {
        let msg = msg.into();
        let msg = if msg.is_empty() { "not authorized".to_string() } else { msg };
        Self::new(401, "Unauthorized", msg, None)
    }

    /// 403 as `NewForbidden`: `pods "x" is forbidden: <reason>`,
    /// `pods is forbidden: <reason>` without a name, `forbidden: <reason>`
    /// without a resource.
    pub fn forbidden(group: &str, resource: &str, name: &str, reason: &str) -> Self {
        let msg = if group.is_empty() && resource.is_empty() {
            format!("forbidden: {reason}")
        } else if name.is_empty() {
            format!("{} is forbidden: {reason}", qualified(resource, group))
        } else {
            format!("{} {} is forbidden: {reason}", qualified(resource, group), go_quote(name))
        };
        Self::new(403, "Forbidden", msg, Some(details(name, group, resource)))
    }

    /// 403 from the authorizer: `pods "x" is forbidden: User "u" cannot get
    /// resource "pods" in API group "" in the namespace "ns"`, with the
    /// authorizer's reason appended after `: ` when there is one.
    pub fn access_denied(a: &AccessAttributes<'_>, reason: &str) -> Self {
        let who = go_quote(a.user);
        let mut msg = if a.resource.is_empty() {
            format!("User {who} cannot {} path {}", a.verb, go_quote(a.path))
        } else {
            let mut resource = a.resource.to_string();
            if !a.subresource.is_empty() {
                resource = format!("{resource}/{}", a.subresource);
            }
            let scope =
                if a.namespace.is_empty() { "at the cluster scope".to_string() } else { format!("in the namespace {}", go_quote(a.namespace)) };
            format!("User {who} cannot {} resource {} in API group {} {scope}", a.verb, go_quote(&resource), go_quote(a.group))
        };
        // Upstream keeps the message from looking like HTML.
        msg = msg.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        if !reason.is_empty() {
            msg = format!("{msg}: {reason}");
        }
        Self::forbidden(a.group, a.resource, a.name, &msg)
    }

    /// 413 `Request entity too large: <msg>`.
    pub fn too_large(msg: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", format!("Request entity too large: {}", msg.into()), None)
    }

    /// 415 for a body whose content type the server cannot decode.
    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        let msg = format!("the body of the request was in an unknown format - accepted media types include: {}", accepted.join(", "));
        Self::new(415, "UnsupportedMediaType", msg, None)
    }

    /// 406 when no offered media type is acceptable to the client.
    pub fn not_acceptable(accepted: &[&str]) -> Self {
        let msg = format!("only the following media types are accepted: {}", accepted.join(", "));
        Self::new(406, "NotAcceptable", msg, None)
    }

    /// 500 `Internal error occurred: <msg>`.
    pub fn internal(msg: impl Into<String>) -> Self {
        let msg = msg.into();
        let d = json!({ "causes": [{ "message": msg }] });
        Self::new(500, "InternalError", format!("Internal error occurred: {msg}"), Some(d))
    }

    /// 504 `Timeout: <msg>`.
    pub fn timeout(msg: impl Into<String>) -> Self {
        Self::new(504, "Timeout", format!("Timeout: {}", msg.into()), Some(json!({})))
    }

    /// 429 with the message as given and a retry hint for clients.
    pub fn too_many_requests(msg: impl Into<String>, retry_after_seconds: u32) -> Self {
        let d = if retry_after_seconds > 0 { json!({ "retryAfterSeconds": retry_after_seconds }) } else { json!({}) };
        Self::new(429, "TooManyRequests", msg, Some(d))
    }

    /// 503 ServiceUnavailable with the message as given.
    pub fn service_unavailable(msg: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", msg, None)
    }

    /// The `Status` object sent to clients.
    pub fn to_status(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), "Status".into());
        m.insert("apiVersion".into(), "v1".into());
        m.insert("metadata".into(), json!({}));
        m.insert("status".into(), "Failure".into());
        if !self.message.is_empty() {
            m.insert("message".into(), self.message.clone().into());
        }
        if !self.reason.is_empty() {
            m.insert("reason".into(), self.reason.clone().into());
        }
        if let Some(d) = &self.details {
            m.insert("details".into(), d.clone());
        }
        if self.code != 0 {
            m.insert("code".into(), self.code.into());
        }
        Value::Object(m)
    }

    /// The causes carried in `details`, if any.
    pub fn causes(&self) -> Vec<StatusCause> {
        self.details.as_ref().and_then(|d| d.get("causes")).and_then(|c| serde_json::from_value(c.clone()).ok()).unwrap_or_default()
    }
}

/// A `Status` with `status: Success`, as returned by deletes.
pub fn status_success(details: Option<Value>) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), "Status".into());
    m.insert("apiVersion".into(), "v1".into());
    m.insert("metadata".into(), json!({}));
    m.insert("status".into(), "Success".into());
    if let Some(d) = details {
        m.insert("details".into(), d);
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_error_bodies() {
        let cases: Vec<(StatusCause, &str, &str, &str)> = vec![
            (required("spec.containers"), "FieldValueRequired", "spec.containers", "Required value"),
            (
                required_detail("metadata.name", "name or generateName is required"),
                "FieldValueRequired",
                "metadata.name",
                "Required value: name or generateName is required",
            ),
            (invalid_value("metadata.name", &json!("abc"), "bad"), "FieldValueInvalid", "metadata.name", r#"Invalid value: "abc": bad"#),
            (
                invalid_value("spec.replicas", &json!(-1), "must be greater than or equal to 0"),
                "FieldValueInvalid",
                "spec.replicas",
                "Invalid value: -1: must be greater than or equal to 0",
            ),
            (invalid_value("x", &json!(1.5), "d"), "FieldValueInvalid", "x", "Invalid value: 1.5: d"),
            (invalid_value("x", &json!(true), "d"), "FieldValueInvalid", "x", "Invalid value: true: d"),
            (invalid_value("x", &Value::Null, "d"), "FieldValueInvalid", "x", "Invalid value: null: d"),
            (invalid_value("x", &json!(["a", "b"]), "d"), "FieldValueInvalid", "x", r#"Invalid value: ["a","b"]: d"#),
            (invalid_value("x", &json!({"k": "<v>"}), "d"), "FieldValueInvalid", "x", r#"Invalid value: {"k":"\u003cv\u003e"}: d"#),
            (invalid_value("x", &json!("a"), ""), "FieldValueInvalid", "x", r#"Invalid value: "a""#),
            (
                not_supported("spec.restartPolicy", &json!("Sometimes"), &["Always", "OnFailure", "Never"]),
                "FieldValueNotSupported",
                "spec.restartPolicy",
                r#"Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never""#,
            ),
            (not_supported("f", &json!("x"), &[]), "FieldValueNotSupported", "f", r#"Unsupported value: "x""#),
            (duplicate("spec.ports[1].name", &json!("http")), "FieldValueDuplicate", "spec.ports[1].name", r#"Duplicate value: "http""#),
            (field_not_found("f", &json!("x")), "FieldValueNotFound", "f", r#"Not found: "x""#),
            (
                forbidden("metadata.namespace", "not allowed on this type"),
                "FieldValueForbidden",
                "metadata.namespace",
                "Forbidden: not allowed on this type",
            ),
            (too_long("metadata.annotations", 262144), "FieldValueTooLong", "metadata.annotations", "Too long: may not be more than 262144 bytes"),
            (too_long("f", 1), "FieldValueTooLong", "f", "Too long: may not be more than 1 byte"),
            (too_many("f", Some(5), 3), "FieldValueTooMany", "f", "Too many: 5: must have at most 3 items"),
            (too_many("f", None, 1), "FieldValueTooMany", "f", "Too many: must have at most 1 item"),
            (type_invalid("f", &json!(3), "must be a string"), "FieldValueTypeInvalid", "f", "Invalid value: 3: must be a string"),
            (internal_cause("f", "boom"), "InternalError", "f", "Internal error: boom"),
        ];
        for (got, reason, field, message) in cases {
            assert_eq!((got.reason.as_str(), got.field.as_str(), got.message.as_str()), (reason, field, message));
        }
    }

    #[test]
    fn go_value_rendering() {
        let cases: Vec<(Value, &str)> = vec![
            (json!("plain"), r#""plain""#),
            (json!("quo\"te\\"), r#""quo\"te\\""#),
            (json!("tab\there\nnl"), r#""tab\there\nnl""#),
            (json!("\u{1}"), r#""\x01""#),
            (json!("\u{7f}"), r#""\x7f""#),
            (json!("ünïcødé"), r#""ünïcødé""#),
            (json!("\u{a0}"), r#""\u00a0""#),
            (json!("\u{200b}"), r#""\u200b""#),
            (json!(42), "42"),
            (json!(-7), "-7"),
            (json!(u64::MAX), "18446744073709551615"),
            (json!(0.25), "0.25"),
            (json!(1e21), "1e+21"),
            (json!(1.5e-7), "1.5e-07"),
            (json!(0.0001), "0.0001"),
            (json!(false), "false"),
            (json!([1, "a & b"]), r#"[1,"a \u0026 b"]"#),
        ];
        for (v, want) in cases {
            assert_eq!(format_value(&v), want, "rendering {v}");
        }
    }

    #[test]
    fn aggregates_like_upstream() {
        let cases: Vec<(Vec<&str>, &str)> =
            vec![(vec!["a"], "a"), (vec!["a", "b"], "[a, b]"), (vec!["a", "a"], "a"), (vec!["a", "b", "a"], "[a, b]")];
        for (lines, want) in cases {
            assert_eq!(aggregate(lines.into_iter().map(String::from)), want);
        }
    }

    #[test]
    fn error_constructors() {
        let cases: Vec<(ApiError, u16, &str, &str, Option<Value>)> = vec![
            (ApiError::not_found("", "pods", "x"), 404, "NotFound", r#"pods "x" not found"#, Some(json!({"name": "x", "kind": "pods"}))),
            (
                ApiError::not_found("apps", "deployments", "web"),
                404,
                "NotFound",
                r#"deployments.apps "web" not found"#,
                Some(json!({"name": "web", "group": "apps", "kind": "deployments"})),
            ),
            (ApiError::not_found("", "namespaces", ""), 404, "NotFound", r#"namespaces "" not found"#, Some(json!({"kind": "namespaces"}))),
            (ApiError::not_found_path(), 404, "NotFound", "the server could not find the requested resource", Some(json!({}))),
            (
                ApiError::already_exists("", "pods", "x"),
                409,
                "AlreadyExists",
                r#"pods "x" already exists"#,
                Some(json!({"name": "x", "kind": "pods"})),
            ),
            (
                ApiError::generate_name_conflict("", "pods", "x-abcde", 1),
                409,
                "AlreadyExists",
                r#"pods "x-abcde" already exists, the server was not able to generate a unique name for the object"#,
                Some(json!({"name": "x-abcde", "kind": "pods", "retryAfterSeconds": 1})),
            ),
            (
                ApiError::conflict("", "pods", "x", ApiError::OPTIMISTIC_LOCK_MSG),
                409,
                "Conflict",
                r#"Operation cannot be fulfilled on pods "x": the object has been modified; please apply your changes to the latest version and try again"#,
                Some(json!({"name": "x", "kind": "pods"})),
            ),
            (ApiError::bad_request("nope"), 400, "BadRequest", "nope", None),
            (ApiError::gone("too old resource version: 1 (5)"), 410, "Expired", "too old resource version: 1 (5)", None),
            (ApiError::too_old_resource_version(1, 5), 410, "Expired", "too old resource version: 1 (5)", None),
            (ApiError::resource_expired("x"), 410, "Expired", "x", None),
            (
                ApiError::method_not_supported("", "pods", "create"),
                405,
                "MethodNotAllowed",
                r#"create is not supported on resources of kind "pods""#,
                Some(json!({"kind": "pods"})),
            ),
            (
                ApiError::method_not_supported("apps", "deployments", "deletecollection"),
                405,
                "MethodNotAllowed",
                r#"deletecollection is not supported on resources of kind "deployments.apps""#,
                Some(json!({"group": "apps", "kind": "deployments"})),
            ),
            (ApiError::unauthorized("Unauthorized"), 401, "Unauthorized", "Unauthorized", None),
            (ApiError::unauthorized(""), 401, "Unauthorized", "not authorized", None),
            (
                ApiError::forbidden("", "pods", "x", "nope"),
                403,
                "Forbidden",
                r#"pods "x" is forbidden: nope"#,
                Some(json!({"name": "x", "kind": "pods"})),
            ),
            (
                ApiError::forbidden("apps", "deployments", "", "nope"),
                403,
                "Forbidden",
                "deployments.apps is forbidden: nope",
                Some(json!({"group": "apps", "kind": "deployments"})),
            ),
            (ApiError::forbidden("", "", "", "nope"), 403, "Forbidden", "forbidden: nope", Some(json!({}))),
            (ApiError::too_large("limit is 3145728"), 413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728", None),
            (
                ApiError::unsupported_media_type(&["application/json", "application/yaml"]),
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
                None,
            ),
            (
                ApiError::not_acceptable(&["application/json", "application/yaml"]),
                406,
                "NotAcceptable",
                "only the following media types are accepted: application/json, application/yaml",
                None,
            ),
            (ApiError::internal("boom"), 500, "InternalError", "Internal error occurred: boom", Some(json!({"causes": [{"message": "boom"}]}))),
            (
                ApiError::timeout("request did not complete within 60s"),
                504,
                "Timeout",
                "Timeout: request did not complete within 60s",
                Some(json!({})),
            ),
            (ApiError::too_many_requests("slow down", 1), 429, "TooManyRequests", "slow down", Some(json!({"retryAfterSeconds": 1}))),
            (ApiError::service_unavailable("later"), 503, "ServiceUnavailable", "later", None),
        ];
        for (e, code, reason, message, details) in cases {
            assert_eq!((e.code, e.reason.as_str(), e.message.as_str(), e.details.clone()), (code, reason, message, details));
            assert_eq!(e.to_string(), message, "Display is the message");
        }
    }

    #[test]
    fn access_denied_messages() {
        let base = AccessAttributes { user: "u", verb: "get", resource: "pods", namespace: "ns", name: "x", ..Default::default() };
        let cases: Vec<(AccessAttributes<'_>, &str, &str)> = vec![
            (base, "", r#"pods "x" is forbidden: User "u" cannot get resource "pods" in API group "" in the namespace "ns""#),
            (
                AccessAttributes { name: "", verb: "list", namespace: "", ..base },
                "",
                r#"pods is forbidden: User "u" cannot list resource "pods" in API group "" at the cluster scope"#,
            ),
            (
                AccessAttributes { group: "apps", resource: "deployments", subresource: "scale", name: "web", verb: "update", ..base },
                "",
                r#"deployments.apps "web" is forbidden: User "u" cannot update resource "deployments/scale" in API group "apps" in the namespace "ns""#,
            ),
            (
                AccessAttributes { resource: "", name: "", namespace: "", path: "/healthz", ..base },
                "",
                r#"forbidden: User "u" cannot get path "/healthz""#,
            ),
            (
                AccessAttributes { user: "system:anonymous", name: "", namespace: "", verb: "list", ..base },
                "no RBAC policy matched",
                r#"pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group "" at the cluster scope: no RBAC policy matched"#,
            ),
            (
                AccessAttributes { resource: "", name: "", namespace: "", path: "/<x>", ..base },
                "",
                r#"forbidden: User "u" cannot get path "/&lt;x&gt;""#,
            ),
        ];
        for (attrs, reason, want) in cases {
            let e = ApiError::access_denied(&attrs, reason);
            assert_eq!((e.code, e.reason.as_str(), e.message.as_str()), (403, "Forbidden", want));
        }
        let e = ApiError::access_denied(&base, "");
        assert_eq!(e.details, Some(json!({"name": "x", "kind": "pods"})));
    }

    #[test]
    fn invalid_messages() {
        let one = ApiError::invalid("", "Pod", "x", vec![required("spec.containers")]);
        assert_eq!(one.message, r#"Pod "x" is invalid: spec.containers: Required value"#);
        assert_eq!(
            one.details,
            Some(json!({"name": "x", "kind": "Pod", "causes": [
                {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers"}
            ]}))
        );

        let two = ApiError::invalid(
            "apps",
            "Deployment",
            "web",
            vec![
                required("spec.selector"),
                invalid_value("spec.replicas", &json!(-1), "must be greater than or equal to 0"),
                required("spec.selector"),
            ],
        );
        assert_eq!(
            two.message,
            r#"Deployment.apps "web" is invalid: [spec.selector: Required value, spec.replicas: Invalid value: -1: must be greater than or equal to 0]"#
        );
        assert_eq!(two.causes().len(), 3, "details keep every cause, the message drops duplicates");
        assert_eq!(two.details.as_ref().and_then(|d| d.get("group")), Some(&json!("apps")));

        let none = ApiError::invalid("", "Pod", "x", vec![]);
        assert_eq!(none.message, r#"Pod "x" is invalid"#);
        assert_eq!(none.code, 422);
        assert_eq!(none.reason, "Invalid");
    }

    #[test]
    fn status_objects() {
        let s = ApiError::not_found("", "pods", "x").to_status();
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"x\" not found","reason":"NotFound","details":{"name":"x","kind":"pods"},"code":404}"#
        );
        let s = ApiError::bad_request("b").to_status();
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"b","reason":"BadRequest","code":400}"#
        );
        assert_eq!(
            serde_json::to_string(&status_success(Some(json!({"name": "x", "kind": "pods"})))).unwrap(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","details":{"name":"x","kind":"pods"}}"#
        );
        assert_eq!(serde_json::to_string(&status_success(None)).unwrap(), r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success"}"#);
    }

    #[test]
    fn cause_serialisation_omits_empty_fields() {
        let c = StatusCause::new("", "", "boom");
        assert_eq!(serde_json::to_value(&c).unwrap(), json!({"message": "boom"}));
        assert_eq!(c.line(), "boom");
        assert_eq!(required("a.b").to_string(), "a.b: Required value");
    }
}
