//! The rkube API server: one tower `Service` that answers every Kubernetes API
//! request. A request flows: authenticate (identity attached by the transport
//! or by an in-process layer) → request info → discovery or the one generic
//! REST handler (`handler`) → store compare-and-swap → watch cache → watchers.
//! Reads are served from the watch cache (`cache`).
//!
//! Not here: certificates and flags (the `rkube` binary), object schemas and
//! per-kind data (`schema`), storage engines (`store`).

pub mod cache;
pub mod crds;
pub mod discovery;
pub mod handler;
mod nodeproxy;
pub mod openapi;
pub mod output;
pub mod request;
pub mod server;
pub mod tokens;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use api::ApiError;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use serde_json::json;
use store::Store;

use crate::cache::WatchCache;
use crate::discovery::Registry;
use crate::output::{error_response, respond, value_response};

pub type ResBody = BoxBody<Bytes, Infallible>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The largest request body accepted (upstream: 3 MiB).
pub const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;
/// The largest object stored (upstream's etcd limit: 1.5 MiB).
pub const MAX_OBJECT_BYTES: usize = 3 * 512 * 1024;

/// An authenticated identity, attached to requests as an extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    pub fn new(name: &str, groups: &[&str]) -> User {
        let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        User { name: name.into(), groups }
    }
}

pub struct Inner {
    pub store: Arc<dyn Store>,
    pub cache: Arc<WatchCache>,
    pub registry: RwLock<Arc<Registry>>,
    /// "host:port" clients reach this server at (for `/api`).
    pub address: String,
    /// Presented to node agents when proxying logs, exec and port-forward.
    pub node_proxy_token: RwLock<String>,
    /// Bearer tokens the server accepts, and who presents them (nodes that
    /// joined with the join token).
    pub tokens: RwLock<HashMap<String, User>>,
    /// Signs and checks service account tokens (TokenRequest).
    pub signer: RwLock<Arc<tokens::Signer>>,
    /// Lists served from the store rather than the cache (paged lists whose
    /// snapshot the cache no longer holds, consistent lists while the cache
    /// lags) scan the store and decode every object in range; only this many
    /// run at once, so a burst of them cannot take the server's memory.
    pub store_lists: tokio::sync::Semaphore,
}

/// The API server as a tower service. Cheap to clone.
#[derive(Clone)]
pub struct ApiServer(pub Arc<Inner>);

impl ApiServer {
    /// Loads the cache from the store and makes sure the system namespaces exist.
    pub async fn new(store: Arc<dyn Store>, address: String) -> anyhow_free::Result<ApiServer> {
        // The OpenAPI definitions are decoded once, off the request path.
        std::thread::spawn(|| {
            schema::openapi::definitions();
        });
        let cache = WatchCache::start(store.clone()).await?;
        let srv = ApiServer(Arc::new(Inner {
            store,
            cache,
            registry: RwLock::new(Arc::new(Registry::builtin())),
            address,
            node_proxy_token: RwLock::new(uuid::Uuid::new_v4().simple().to_string()),
            tokens: RwLock::new(HashMap::new()),
            // A key for this run; `set_service_account_key` keeps tokens valid across restarts.
            signer: RwLock::new(Arc::new(tokens::Signer::new(&tokens::generate_key())?)),
            store_lists: tokio::sync::Semaphore::new(2),
        }));
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            handler::ensure_namespace(&srv.0, ns).await?;
        }
        handler::ensure_system_priority_classes(&srv.0).await?;
        crds::start(srv.clone()).await;
        Ok(srv)
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.0.registry.read().unwrap().clone()
    }

    /// Accepts `token` as a bearer token for `user`.
    pub fn add_token(&self, token: &str, user: User) {
        self.0.tokens.write().unwrap().insert(token.to_string(), user);
    }

    /// Signs service account tokens with `pkcs8` (a P-256 key) from now on.
    pub fn set_service_account_key(&self, pkcs8: &[u8]) -> Result<(), String> {
        *self.0.signer.write().unwrap() = Arc::new(tokens::Signer::new(pkcs8)?);
        Ok(())
    }

    /// The service account behind a token this server signed, while its
    /// account (and the object it is bound to) still exist with the same uid.
    pub fn validate_token(&self, token: &str, audiences: &[String]) -> Result<tokens::Claims, String> {
        let signer = self.0.signer.read().unwrap().clone();
        let c = signer.verify(token, audiences)?;
        let uid_of = |resource: &str, ns: &str, name: &str| {
            let key = if ns.is_empty() { format!("/registry/{resource}/{name}") } else { format!("/registry/{resource}/{ns}/{name}") };
            let obj = self.0.cache.resource(resource).get(&key)?.value();
            obj.pointer("/metadata/uid").and_then(|u| u.as_str()).map(str::to_string)
        };
        match uid_of("serviceaccounts", &c.namespace, &c.account) {
            Some(uid) if uid == c.account_uid => {}
            Some(_) => return Err(format!("service account UID ({}) does not match claim", c.account_uid)),
            None => return Err(format!("serviceaccounts \"{}\" not found", c.account)),
        }
        if let Some((kind, name, uid)) = &c.bound {
            let (resource, ns) = match kind.as_str() {
                "Pod" => ("pods", c.namespace.as_str()),
                "Secret" => ("secrets", c.namespace.as_str()),
                _ => ("nodes", ""),
            };
            match uid_of(resource, ns, name) {
                Some(u) if &u == uid => {}
                Some(_) => return Err(format!("{} UID ({uid}) does not match claim", kind.to_lowercase())),
                None => return Err(format!("{} \"{name}\" not found", resource)),
            }
        }
        Ok(c)
    }

    /// What the server presents to node agents (every agent must know it).
    pub fn set_node_proxy_token(&self, token: &str) {
        *self.0.node_proxy_token.write().unwrap() = token.to_string();
    }

    /// This server as seen by an in-process client acting as `user`.
    pub fn as_user(&self, user: User) -> AsUser {
        AsUser { srv: self.clone(), user }
    }

    /// Answers one request.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<ResBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let user = req.extensions().get::<User>().cloned().or_else(|| {
            let auth = req.headers().get(http::header::AUTHORIZATION)?.to_str().ok()?;
            let token = auth.strip_prefix("Bearer ")?.trim();
            if let Some(u) = self.0.tokens.read().unwrap().get(token) {
                return Some(u.clone());
            }
            self.validate_token(token, &[tokens::ISSUER.to_string()]).ok().map(|c| c.user())
        });
        let resp = match self.route(req, user.as_ref()).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        };
        tracing::debug!(
            method = %method,
            path = %path,
            code = resp.status().as_u16(),
            user = user.as_ref().map(|u| u.name.as_str()).unwrap_or("-"),
            micros = started.elapsed().as_micros() as u64,
            "request"
        );
        resp
    }

    async fn route<B>(&self, req: Request<B>, user: Option<&User>) -> Result<Response<ResBody>, ApiError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let path = req.uri().path().trim_end_matches('/').to_string();
        let query = parse_query(req.uri().query());
        // Health and version answer anyone, as upstream's default RBAC allows.
        match path.as_str() {
            "/healthz" | "/livez" | "/readyz" => return Ok(health(&path, query.contains_key("verbose"))),
            "/version" => return Ok(value_response(StatusCode::OK, &version())),
            _ => {}
        }
        let Some(user) = user else { return Err(ApiError::unauthorized("Unauthorized")) };
        let accept = req.headers().get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).map(str::to_string);
        let info = request::parse(req.method(), &path, query.get("watch").is_some_and(|w| w == "true" || w == "1"));
        if info.is_resource {
            return handler::serve(self, req, info, query, user.clone()).await;
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Err(ApiError::method_not_supported("", &path, req.method().as_str()));
        }
        match path.as_str() {
            "/.well-known/openid-configuration" => return Ok(value_response(StatusCode::OK, &tokens::openid_configuration())),
            "/openid/v1/jwks" => {
                let jwks = self.0.signer.read().unwrap().jwks();
                return Ok(respond(StatusCode::OK, "application/jwk-set+json", serde_json::to_vec(&jwks).unwrap_or_default()));
            }
            _ => {}
        }
        let reg = self.registry();
        if path.starts_with("/openapi/") {
            let parts: Vec<&str> = path[1..].split('/').collect();
            return openapi::serve(&reg, &parts, &query, req.headers());
        }
        let agg = discovery::wants_aggregated(accept.as_deref());
        let parts: Vec<&str> = info.parts.iter().map(String::as_str).collect();
        let doc = match (parts.as_slice(), agg) {
            (["api"], Some(v)) => return Ok(aggregated_response(reg.aggregated(true, v), v)),
            (["apis"], Some(v)) => return Ok(aggregated_response(reg.aggregated(false, v), v)),
            (["api"], None) => Some(reg.api_versions(&self.0.address)),
            (["apis"], None) => Some(reg.api_group_list()),
            (["api", v], _) => reg.api_resource_list("", v),
            (["apis", g], _) => reg.api_group(g),
            (["apis", g, v], _) => reg.api_resource_list(g, v),
            _ => None,
        };
        match doc {
            Some(d) => Ok(value_response(StatusCode::OK, &d)),
            None => Err(ApiError::not_found_path()),
        }
    }
}

/// Errors of server construction, kept free of `anyhow` (a library crate).
pub mod anyhow_free {
    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
}

fn aggregated_response(doc: serde_json::Value, version: &str) -> Response<ResBody> {
    let ct = if version == "v2beta1" {
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
    } else {
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    };
    respond(StatusCode::OK, ct, serde_json::to_vec(&doc).unwrap_or_default())
}

fn health(path: &str, verbose: bool) -> Response<ResBody> {
    let name = &path[1..];
    if !verbose {
        return respond(StatusCode::OK, "text/plain; charset=utf-8", "ok");
    }
    let checks = ["ping", "log", "etcd", "poststarthook/start-apiextensions-controllers", "poststarthook/bootstrap-controller"];
    let mut body: String = checks.iter().map(|c| format!("[+]{c} ok\n")).collect();
    body.push_str(&format!("{name} check passed\n"));
    respond(StatusCode::OK, "text/plain; charset=utf-8", body)
}

/// The Kubernetes version whose API this server serves.
pub const KUBE_MINOR: &str = schema::KUBE_MINOR;

fn version() -> serde_json::Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "emulationMajor": "1",
        "emulationMinor": KUBE_MINOR,
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "36",
        "gitVersion": format!("v1.{KUBE_MINOR}.0-rkube.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    })
}

/// Query parameters, percent-decoded; the last value of a repeated key wins.
pub fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in q.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(percent_decode(k), percent_decode(v));
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An in-process client's view of the server: every request carries `user`.
#[derive(Clone)]
pub struct AsUser {
    srv: ApiServer,
    user: User,
}

impl<B> tower::Service<Request<B>> for AsUser
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // In-process components name themselves (the default field manager of their writes).
        if !req.headers().contains_key(http::header::USER_AGENT) {
            let agent = self.user.name.trim_start_matches("system:").replace(':', "-");
            if let Ok(v) = http::HeaderValue::from_str(&agent) {
                req.headers_mut().insert(http::header::USER_AGENT, v);
            }
        }
        req.extensions_mut().insert(self.user.clone());
        let srv = self.srv.clone();
        Box::pin(async move { Ok(srv.handle(req).await) })
    }
}

impl<B> tower::Service<Request<B>> for ApiServer
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let srv = self.clone();
        Box::pin(async move { Ok(srv.handle(req).await) })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_decoding() {
        let q = super::parse_query(Some("labelSelector=app%3Dweb%2Ctier+in+(a)&limit=5&watch"));
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["limit"], "5");
        assert_eq!(q["watch"], "");
        assert_eq!(super::percent_decode("100%"), "100%");
        assert_eq!(super::percent_decode("%zz%41"), "%zzA");
    }
}
