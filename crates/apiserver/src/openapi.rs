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
        let bytes = Bytes::from(serde_json::to_vec(v).unwrap_or_default());
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        Doc { hash: format!("{:016X}", h.finish()), bytes }
    }
}

/// The documents of one registry, rendered on first request.
#[derive(Default)]
pub struct OpenApiCache {
    v2: OnceLock<Doc>,
    v3: Mutex<HashMap<String, Doc>>,
}

impl OpenApiCache {
    fn v2(&self, reg: &Registry) -> Doc {
        self.v2.get_or_init(|| Doc::new(&schema::openapi::v2_document(reg.defs.iter().map(|d| d.as_ref())))).clone()
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

fn response(doc: &Doc, headers: &HeaderMap, immutable: bool) -> Response<ResBody> {
    let etag = format!("\"{}\"", doc.hash);
    let mut r = if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(full(doc.bytes.clone()));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
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
            // Only JSON is produced; protobuf-only clients get 406 and fall back.
            let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !accept.is_empty()
                && !accept.split(',').any(|a| matches!(a.split(';').next().unwrap_or("").trim(), "application/json" | "*/*" | "application/*"))
            {
                return Err(ApiError::not_acceptable(&["application/json"]));
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
        assert_eq!(serve(&reg, &["openapi", "v2"], &none, &pb).unwrap_err().code, 406);
        let v2 = body(serve(&reg, &["openapi", "v2"], &none, &HeaderMap::new()).unwrap()).await;
        assert_eq!(v2["swagger"], "2.0");
    }
}
