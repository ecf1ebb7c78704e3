//! Response encodings: content negotiation from the `Accept` header and the
//! conversions a client can ask for instead of the object itself: a
//! server-side `Table` (what `kubectl get` prints) and `PartialObjectMetadata`.

use std::convert::Infallible;

use api::ApiError;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use schema::ResourceDef;
use schema::printers::Printer;
use serde_json::{Map, Value, json};

use crate::ResBody;

/// What the client asked to receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    /// meta.k8s.io Table, v1 or v1beta1.
    Table {
        v1beta1: bool,
    },
    /// PartialObjectMetadata (or its List form for collections).
    Meta {
        v1beta1: bool,
    },
}

/// Picks the first acceptable media type of an `Accept` header, as upstream's
/// negotiation does. None when nothing offered can be served.
pub fn negotiate(accept: Option<&str>) -> Option<Format> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else { return Some(Format::Json) };
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let mime = parts.next().unwrap_or_default().to_ascii_lowercase();
        let (mut as_, mut g, mut v) = ("", "", "");
        for p in parts {
            if let Some((k, val)) = p.split_once('=') {
                match k.trim() {
                    "as" => as_ = val.trim(),
                    "g" => g = val.trim(),
                    "v" => v = val.trim(),
                    _ => {}
                }
            }
        }
        let json_like = matches!(mime.as_str(), "application/json" | "*/*" | "application/*");
        if !as_.is_empty() {
            if !json_like || g != "meta.k8s.io" || !matches!(v, "v1" | "v1beta1") {
                continue;
            }
            let v1beta1 = v == "v1beta1";
            match as_ {
                "Table" => return Some(Format::Table { v1beta1 }),
                "PartialObjectMetadata" | "PartialObjectMetadataList" => return Some(Format::Meta { v1beta1 }),
                _ => continue,
            }
        }
        if json_like {
            return Some(Format::Json);
        }
        if mime == "application/yaml" {
            return Some(Format::Yaml);
        }
    }
    None
}

pub fn full(bytes: impl Into<Bytes>) -> ResBody {
    Full::new(bytes.into()).map_err(|e: Infallible| match e {}).boxed()
}

pub fn respond(code: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<ResBody> {
    let mut r = Response::new(full(body));
    *r.status_mut() = code;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub fn json_response(code: StatusCode, body: impl Into<Bytes>) -> Response<ResBody> {
    respond(code, "application/json", body)
}

pub fn value_response(code: StatusCode, v: &Value) -> Response<ResBody> {
    json_response(code, serde_json::to_vec(v).unwrap_or_default())
}

pub fn error_response(e: &ApiError) -> Response<ResBody> {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    value_response(code, &e.to_status())
}

/// Encodes an already-serialised JSON document in the requested format.
pub fn encode(code: StatusCode, format: Format, json: Bytes) -> Response<ResBody> {
    if format == Format::Yaml {
        let v: Value = serde_json::from_slice(&json).unwrap_or(Value::Null);
        return respond(code, "application/yaml", serde_yaml::to_string(&v).unwrap_or_default());
    }
    json_response(code, json)
}

fn meta_api_version(v1beta1: bool) -> &'static str {
    if v1beta1 { "meta.k8s.io/v1beta1" } else { "meta.k8s.io/v1" }
}

/// The `PartialObjectMetadata` of an object's JSON, its metadata spliced from
/// the original bytes.
pub fn partial(obj: &[u8], v1beta1: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(obj.len() / 2 + 64);
    write_partial(&mut out, raw_metadata(obj), v1beta1);
    out
}

fn write_partial(out: &mut Vec<u8>, metadata: &[u8], v1beta1: bool) {
    out.extend_from_slice(b"{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"");
    out.extend_from_slice(meta_api_version(v1beta1).as_bytes());
    out.extend_from_slice(b"\",\"metadata\":");
    out.extend_from_slice(metadata);
    out.push(b'}');
}

/// An object's `metadata` as it is in its JSON (`{}` when it has none).
fn raw_metadata(obj: &[u8]) -> &[u8] {
    #[derive(serde::Deserialize)]
    struct Meta<'a> {
        #[serde(borrow)]
        metadata: Option<&'a serde_json::value::RawValue>,
    }
    match serde_json::from_slice::<Meta>(obj) {
        Ok(Meta { metadata: Some(m) }) => m.get().as_bytes(),
        _ => b"{}",
    }
}

/// An object's `metadata.resourceVersion`, read from its metadata alone.
pub fn resource_version(obj: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(rename = "resourceVersion", default)]
        resource_version: String,
    }
    serde_json::from_slice::<Meta>(raw_metadata(obj)).map(|m| m.resource_version).unwrap_or_default()
}

pub fn partial_list(items: &[Bytes], list_meta: &Value, v1beta1: bool) -> Vec<u8> {
    let head = json!({"kind": "PartialObjectMetadataList", "apiVersion": meta_api_version(v1beta1), "metadata": list_meta});
    let mut out = open_object(&head, "items", items.iter().map(|i| i.len() / 2).sum());
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_partial(&mut out, raw_metadata(item), v1beta1);
    }
    out.extend_from_slice(b"]}");
    out
}

/// `head` serialised without its closing brace, followed by `,"field":[`.
fn open_object(head: &Value, field: &str, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity + 256);
    serde_json::to_writer(&mut out, head).unwrap_or_default();
    out.pop();
    out.extend_from_slice(b",\"");
    out.extend_from_slice(field.as_bytes());
    out.extend_from_slice(b"\":[");
    out
}

/// An object's JSON as a tree for a built-in printer, which never reads
/// `metadata.managedFields`: leaving it out saves most of the decoding.
fn for_printer(obj: &[u8]) -> Value {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
    /// `Object(true)` reads the object itself, `Object(false)` its metadata.
    struct Object(bool);
    impl<'de> Visitor<'de> for Object {
        type Value = Value;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = Map::new();
            while let Some(k) = map.next_key::<String>()? {
                if self.0 && k == "metadata" {
                    let v = map.next_value_seed(Object(false))?;
                    out.insert(k, v);
                } else if !self.0 && k == "managedFields" {
                    map.next_value::<IgnoredAny>()?;
                } else {
                    let v = map.next_value::<Value>()?;
                    out.insert(k, v);
                }
            }
            Ok(Value::Object(out))
        }
    }
    impl<'de> DeserializeSeed<'de> for Object {
        type Value = Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_map(self)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(obj);
    Object(true).deserialize(&mut de).unwrap_or(Value::Null)
}

/// What each Table row carries besides its cells (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Result<Self, ApiError> {
        match s.unwrap_or("Metadata") {
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "None" => Ok(IncludeObject::None),
            "Object" => Ok(IncludeObject::Object),
            other => Err(ApiError::bad_request(format!(
                "includeObject: Unsupported value: \"{other}\": supported values: \"None\", \"Metadata\", \"Object\""
            ))),
        }
    }
}

/// A Table of objects given as their JSON, written straight to bytes: each
/// object is decoded once for its cells, and a row's object is spliced from
/// the original JSON. `headers` false leaves out the column definitions
/// (watch events after the first).
pub fn table(def: &ResourceDef, objects: &[&[u8]], list_meta: &Value, include: IncludeObject, headers: bool, v1beta1: bool) -> Vec<u8> {
    let printer: Printer = schema::printers::printer(&def.group, &def.kind);
    let now = time::OffsetDateTime::now_utc();
    let columns: Vec<Value> = match (&def.custom, headers) {
        (_, false) => Vec::new(),
        (Some(c), true) => schema::printers::custom_columns(c),
        (None, true) => printer
            .columns
            .iter()
            .map(|c| json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority}))
            .collect(),
    };
    let head = json!({"kind": "Table", "apiVersion": meta_api_version(v1beta1), "metadata": list_meta, "columnDefinitions": columns});
    let per_row = match include {
        IncludeObject::None => 128,
        IncludeObject::Metadata => 1024,
        IncludeObject::Object => 4096,
    };
    let mut out = open_object(&head, "rows", objects.len() * per_row);
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let cells = match &def.custom {
            // A custom column's JSONPath may name any field.
            Some(c) => schema::printers::custom_cells(c, &serde_json::from_slice(o).unwrap_or(Value::Null), now),
            None => (printer.cells)(&for_printer(o), now),
        };
        out.extend_from_slice(b"{\"cells\":");
        serde_json::to_writer(&mut out, &cells).unwrap_or_default();
        match include {
            IncludeObject::None => {}
            IncludeObject::Metadata => {
                out.extend_from_slice(b",\"object\":");
                write_partial(&mut out, raw_metadata(o), v1beta1);
            }
            IncludeObject::Object => {
                out.extend_from_slice(b",\"object\":");
                out.extend_from_slice(o);
            }
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        let cases = [
            (None, Some(Format::Json)),
            (Some("application/json"), Some(Format::Json)),
            (Some("*/*"), Some(Format::Json)),
            (Some("application/yaml"), Some(Format::Yaml)),
            (
                Some("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"),
                Some(Format::Table { v1beta1: false }),
            ),
            (Some("application/json;as=Table;v=v1beta1;g=meta.k8s.io"), Some(Format::Table { v1beta1: true })),
            (Some("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"), Some(Format::Meta { v1beta1: false })),
            (Some("application/vnd.kubernetes.protobuf"), None),
            (Some("application/vnd.kubernetes.protobuf, application/json"), Some(Format::Json)),
            (Some("application/json;as=Foo;v=v1;g=meta.k8s.io"), None),
        ];
        for (accept, want) in cases {
            assert_eq!(negotiate(accept), want, "{accept:?}");
        }
    }
}
