//! `/openapi/v2` and `/openapi/v3`: the documents `schema::openapi` renders
//! from the registry, rendered once per registry and cached with an ETag.
//! The v3 index links each group-version with a `?hash=` of its document; a
//! request carrying the current hash may be cached forever (upstream's
//! immutable URLs), one with a stale hash is redirected to the current one.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, OnceLock};

use api::ApiError;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde_json::{Map, json};

use crate::ResBody;
use crate::discovery::Registry;
use crate::output::full;

/// One rendered document and its hash.
#[derive(Clone)]
struct Doc {
    bytes: Bytes,
    hash: String,
}

impl Doc {
    fn new(v: &serde_json::Value) -> Doc {
        Doc::from_bytes(Bytes::from(serde_json::to_vec(v).unwrap_or_default()))
    }

    fn from_bytes(bytes: Bytes) -> Doc {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        Doc { hash: format!("{:016X}", h.finish()), bytes }
    }
}

/// The documents of one registry, rendered on first request.
#[derive(Default)]
pub struct OpenApiCache {
    v2: OnceLock<Doc>,
    v2_proto: OnceLock<Doc>,
    v3: Mutex<HashMap<String, Doc>>,
}

impl OpenApiCache {
    fn v2(&self, reg: &Registry) -> Doc {
        self.v2.get_or_init(|| Doc::new(&schema::openapi::v2_document(reg.defs.iter().map(|d| d.as_ref())))).clone()
    }

    /// The v2 document as gnostic's OpenAPIv2 protobuf, for kubectl's
    /// client-side validation (kinds without PATCH, such as `List`).
    fn v2_proto(&self, reg: &Registry) -> Doc {
        self.v2_proto
            .get_or_init(|| {
                let doc = schema::openapi::v2_document(reg.defs.iter().map(|d| d.as_ref()));
                Doc::from_bytes(Bytes::from(pb::document(&doc)))
            })
            .clone()
    }

    /// The v3 document of "api/v1" or "apis/G/V", if that group-version is served.
    fn v3(&self, reg: &Registry, key: &str) -> Option<Doc> {
        if let Some(d) = self.v3.lock().unwrap().get(key) {
            return Some(d.clone());
        }
        let (group, version) = match key.split('/').collect::<Vec<_>>().as_slice() {
            ["api", v] => ("", *v),
            ["apis", g, v] => (*g, *v),
            _ => return None,
        };
        if !reg.serves_group_version(group, version) {
            return None;
        }
        let doc = Doc::new(&schema::openapi::v3_document(reg.defs.iter().filter(|d| d.group == group && d.version == version).map(|d| d.as_ref())));
        self.v3.lock().unwrap().insert(key.to_string(), doc.clone());
        Some(doc)
    }
}

const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

fn response(doc: &Doc, headers: &HeaderMap, immutable: bool) -> Response<ResBody> {
    typed_response(doc, headers, immutable, "application/json")
}

fn typed_response(doc: &Doc, headers: &HeaderMap, immutable: bool, content_type: &'static str) -> Response<ResBody> {
    let etag = format!("\"{}\"", doc.hash);
    let mut r = if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(full(doc.bytes.clone()));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    let cache = if immutable { "public, immutable" } else { "no-cache, private" };
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r.headers_mut().insert(header::ETAG, HeaderValue::from_str(&etag).unwrap());
    r.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept"));
    r
}

/// Answers `/openapi/...` (path without a trailing slash, split on '/').
pub fn serve(reg: &Registry, parts: &[&str], query: &HashMap<String, String>, headers: &HeaderMap) -> Result<Response<ResBody>, ApiError> {
    match parts {
        ["openapi", "v2"] => {
            // The first type asked for that is served: JSON or gnostic protobuf.
            let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
            let wanted = accept.split(',').map(|a| a.split(';').next().unwrap_or("").trim()).filter(|a| !a.is_empty());
            for a in wanted.clone() {
                match a {
                    "application/json" | "*/*" | "application/*" => return Ok(response(&reg.openapi.v2(reg), headers, false)),
                    // Some clients spell the version with a dot.
                    V2_PROTOBUF | "application/com.github.proto-openapi.spec.v2.v1.0+protobuf" => {
                        // Labelled as upstream does: the media type itself does not parse as one.
                        return Ok(typed_response(&reg.openapi.v2_proto(reg), headers, false, "application/octet-stream"));
                    }
                    _ => {}
                }
            }
            if wanted.count() > 0 {
                return Err(ApiError::not_acceptable(&["application/json", V2_PROTOBUF]));
            }
            Ok(response(&reg.openapi.v2(reg), headers, false))
        }
        ["openapi", "v3"] => {
            let mut paths = Map::new();
            for (group, versions) in &reg.groups {
                for v in versions {
                    let key = schema::openapi::v3_path(group, v);
                    if let Some(doc) = reg.openapi.v3(reg, &key) {
                        paths.insert(key.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", doc.hash)}));
                    }
                }
            }
            Ok(response(&Doc::new(&json!({"paths": paths})), headers, false))
        }
        ["openapi", "v3", rest @ ..] => {
            let key = rest.join("/");
            let doc = reg.openapi.v3(reg, &key).ok_or_else(ApiError::not_found_path)?;
            match query.get("hash") {
                Some(h) if *h != doc.hash => {
                    let mut r = Response::new(full(Bytes::new()));
                    *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
                    let loc = format!("/openapi/v3/{key}?hash={}", doc.hash);
                    r.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&loc).unwrap());
                    Ok(r)
                }
                Some(_) => Ok(response(&doc, headers, true)),
                None => Ok(response(&doc, headers, false)),
            }
        }
        _ => Err(ApiError::not_found_path()),
    }
}

/// Protocol buffer encoding of an OpenAPI v2 document in gnostic's
/// `openapi.v2.Document` message: the swagger version, info and the
/// definitions (what kubectl reads; paths are left out). Vendor extensions
/// and defaults travel as YAML text, and JSON is YAML.
mod pb {
    use serde_json::Value;

    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
        varint(out, ((field as u64) << 3) | wire as u64);
    }

    fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
        key(out, field, 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }

    fn string(out: &mut Vec<u8>, field: u32, v: &Value) {
        if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
            bytes(out, field, s.as_bytes());
        }
    }

    fn boolean(out: &mut Vec<u8>, field: u32, v: &Value) {
        if v.as_bool() == Some(true) {
            key(out, field, 0);
            out.push(1);
        }
    }

    fn int(out: &mut Vec<u8>, field: u32, v: &Value) {
        if let Some(n) = v.as_i64() {
            key(out, field, 0);
            varint(out, n as u64);
        }
    }

    fn double(out: &mut Vec<u8>, field: u32, v: &Value) {
        if let Some(n) = v.as_f64() {
            key(out, field, 1);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }

    /// `Any { yaml = 2 }`.
    fn any(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        bytes(&mut out, 2, serde_json::to_string(v).unwrap_or_default().as_bytes());
        out
    }

    /// `NamedX { name = 1; value = 2 }`.
    fn named(name: &str, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        bytes(&mut out, 1, name.as_bytes());
        bytes(&mut out, 2, value);
        out
    }

    /// `type` and `items` may each be one value or a list of them.
    fn one_or_many(v: &Value) -> Vec<&Value> {
        match v {
            Value::Array(a) => a.iter().collect(),
            Value::Null => vec![],
            other => vec![other],
        }
    }

    fn schema(s: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        let Some(m) = s.as_object() else { return out };
        let f = |k: &str| m.get(k).unwrap_or(&Value::Null);
        string(&mut out, 1, f("$ref"));
        string(&mut out, 2, f("format"));
        string(&mut out, 3, f("title"));
        string(&mut out, 4, f("description"));
        if let Some(d) = m.get("default") {
            bytes(&mut out, 5, &any(d));
        }
        double(&mut out, 6, f("multipleOf"));
        double(&mut out, 7, f("maximum"));
        boolean(&mut out, 8, f("exclusiveMaximum"));
        double(&mut out, 9, f("minimum"));
        boolean(&mut out, 10, f("exclusiveMinimum"));
        int(&mut out, 11, f("maxLength"));
        int(&mut out, 12, f("minLength"));
        string(&mut out, 13, f("pattern"));
        int(&mut out, 14, f("maxItems"));
        int(&mut out, 15, f("minItems"));
        boolean(&mut out, 16, f("uniqueItems"));
        int(&mut out, 17, f("maxProperties"));
        int(&mut out, 18, f("minProperties"));
        for r in f("required").as_array().into_iter().flatten() {
            string(&mut out, 19, r);
        }
        for e in f("enum").as_array().into_iter().flatten() {
            bytes(&mut out, 20, &any(e));
        }
        match f("additionalProperties") {
            Value::Bool(b) => {
                let mut item = Vec::new();
                key(&mut item, 2, 0);
                item.push(*b as u8);
                bytes(&mut out, 21, &item);
            }
            v @ Value::Object(_) => {
                let mut item = Vec::new();
                bytes(&mut item, 1, &schema(v));
                bytes(&mut out, 21, &item);
            }
            _ => {}
        }
        let types = one_or_many(f("type"));
        if !types.is_empty() {
            let mut item = Vec::new();
            types.iter().for_each(|t| string(&mut item, 1, t));
            bytes(&mut out, 22, &item);
        }
        let items = one_or_many(f("items"));
        if !items.is_empty() {
            let mut item = Vec::new();
            items.iter().for_each(|i| bytes(&mut item, 1, &schema(i)));
            bytes(&mut out, 23, &item);
        }
        for a in f("allOf").as_array().into_iter().flatten() {
            bytes(&mut out, 24, &schema(a));
        }
        if let Some(props) = f("properties").as_object() {
            let mut p = Vec::new();
            for (name, s) in props {
                bytes(&mut p, 1, &named(name, &schema(s)));
            }
            bytes(&mut out, 25, &p);
        }
        boolean(&mut out, 27, f("readOnly"));
        if let Some(e) = m.get("example") {
            bytes(&mut out, 30, &any(e));
        }
        for (k, v) in m.iter().filter(|(k, _)| k.starts_with("x-")) {
            bytes(&mut out, 31, &named(k, &any(v)));
        }
        out
    }

    pub fn document(doc: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        string(&mut out, 1, &doc["swagger"]);
        let mut info = Vec::new();
        string(&mut info, 1, &doc["info"]["title"]);
        string(&mut info, 2, &doc["info"]["version"]);
        bytes(&mut out, 2, &info);
        let mut defs = Vec::new();
        for (name, s) in doc["definitions"].as_object().into_iter().flatten() {
            bytes(&mut defs, 1, &named(name, &schema(s)));
        }
        bytes(&mut out, 9, &defs);
        out
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body(r: Response<ResBody>) -> serde_json::Value {
        serde_json::from_slice(&r.into_body().collect().await.unwrap().to_bytes()).unwrap()
    }

    #[tokio::test]
    async fn index_links_hashed_documents_with_etags() {
        let reg = Registry::builtin();
        let none = HashMap::new();
        let index = body(serve(&reg, &["openapi", "v3"], &none, &HeaderMap::new()).unwrap()).await;
        let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap().to_string();
        assert!(index["paths"]["api/v1"].is_object(), "{index}");
        let hash = url.split("hash=").nth(1).unwrap().to_string();
        let q: HashMap<String, String> = [("hash".to_string(), hash.clone())].into();

        let r = serve(&reg, &["openapi", "v3", "apis", "apps", "v1"], &q, &HeaderMap::new()).unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "public, immutable");
        let etag = r.headers()[header::ETAG].clone();
        assert_eq!(etag.to_str().unwrap(), format!("\"{hash}\""));
        let doc = body(r).await;
        assert!(doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"].is_object());

        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        let r = serve(&reg, &["openapi", "v3", "apis", "apps", "v1"], &q, &h).unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

        let stale: HashMap<String, String> = [("hash".to_string(), "0000".to_string())].into();
        let r = serve(&reg, &["openapi", "v3", "apis", "apps", "v1"], &stale, &HeaderMap::new()).unwrap();
        assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(r.headers()[header::LOCATION].to_str().unwrap(), url);

        assert_eq!(serve(&reg, &["openapi", "v3", "apis", "nope", "v1"], &none, &HeaderMap::new()).unwrap_err().code, 404);
        let mut pb = HeaderMap::new();
        pb.insert(header::ACCEPT, HeaderValue::from_static("application/com.github.proto-openapi.spec.v2@v1.0+protobuf"));
        let r = serve(&reg, &["openapi", "v2"], &none, &pb).unwrap();
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/octet-stream");
        let mut odd = HeaderMap::new();
        odd.insert(header::ACCEPT, HeaderValue::from_static("application/xml"));
        assert_eq!(serve(&reg, &["openapi", "v2"], &none, &odd).unwrap_err().code, 406);
        let v2 = body(serve(&reg, &["openapi", "v2"], &none, &HeaderMap::new()).unwrap()).await;
        assert_eq!(v2["swagger"], "2.0");
    }
}
