//! The one generic REST handler. Every resource, built-in or custom, goes
//! through these functions: get, list, watch, create, update, patch, delete and
//! deletecollection, and the generic subresources (status, scale, binding,
//! eviction, finalize). Per-kind behaviour comes only from the resource's
//! `ResourceDef` and `schema::hooks`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use api::ApiError;
use api::selector::{FieldSelector, LabelSelector};
use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, Limited};
use schema::{NameRule, ResourceDef};
use serde_json::{Map, Value, json};
use store::{KeyValue, RangeRequest, Revision};
use tokio::sync::{broadcast, mpsc};

use crate::cache::{CacheEvent, Cached, EventType};
use crate::output::{self, Format, IncludeObject, encode};
use crate::request::RequestInfo;
use crate::{ApiServer, BoxError, Inner, MAX_OBJECT_BYTES, MAX_REQUEST_BYTES, ResBody, User};

type Query = HashMap<String, String>;
type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Media types the server produces and consumes (for 406 and 415 answers).
const ACCEPTED: [&str; 3] = ["application/json", "application/yaml", "application/json;as=Table;v=v1;g=meta.k8s.io"];
const CONSUMED: [&str; 3] = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"];
/// Kinds without a Go type (custom resources) take every patch but strategic merge.
const SMP_UNSUPPORTED: [&str; 2] = ["application/json-patch+json", "application/merge-patch+json"];
const PATCH_TYPES: [&str; 4] = ["application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json", APPLY_PATCH];
const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// The storage of CustomResourceDefinitions.
pub(crate) const CRDS: &str = "customresourcedefinitions.apiextensions.k8s.io";

/// The definition of the Scale kind every scale subresource serves.
const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";

/// How long a read waits for the cache to catch up before answering 504.
const CACHE_WAIT: Duration = Duration::from_secs(3);

/// One request against one resource.
struct Ctx {
    srv: ApiServer,
    def: Arc<ResourceDef>,
    info: RequestInfo,
    query: Query,
    user: User,
    format: Format,
    /// True when the stored objects may carry another version's apiVersion.
    shared_storage: bool,
    /// `Warning` headers for the response (unknown fields under `fieldValidation=Warn`).
    warnings: std::sync::Mutex<Vec<String>>,
    /// Fields the request body held twice (reported per `fieldValidation`).
    duplicates: std::sync::Mutex<Vec<String>>,
    /// The client's User-Agent: the default field manager of its updates.
    user_agent: String,
    /// A server-side apply request: the apply computes managed fields itself.
    apply: bool,
}

/// What unknown fields in a write cost (`fieldValidation`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

pub async fn serve<B>(srv: &ApiServer, req: Request<B>, info: RequestInfo, query: Query, user: User) -> Result<Response<ResBody>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let reg = srv.registry();
    let def = reg.get(&info.group, &info.version, &info.resource).cloned().ok_or_else(ApiError::not_found_path)?;
    let shared_storage = reg.defs.iter().filter(|d| d.storage == def.storage).count() > 1;
    if !info.namespace.is_empty() && !def.namespaced {
        return Err(ApiError::not_found_path());
    }
    let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = output::negotiate(accept).ok_or_else(|| ApiError::not_acceptable(&ACCEPTED))?;
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let apply = info.verb == "patch" && content_type.starts_with(APPLY_PATCH);
    let ctx = Ctx {
        srv: srv.clone(),
        def,
        info,
        query,
        user,
        format,
        shared_storage,
        warnings: Default::default(),
        duplicates: Default::default(),
        user_agent,
        apply,
    };
    if !ctx.info.subresource.is_empty() && ctx.def.subresource(&ctx.info.subresource).is_none() {
        return Err(ApiError::not_found_path());
    }
    let verb = ctx.info.verb.clone();
    if !verb_allowed(&ctx, &verb) {
        return Err(ApiError::method_not_supported(&ctx.def.group, &ctx.def.plural, &verb));
    }
    check_dry_run(&ctx.query)?;
    if let Some(w) = ctx.def.custom.as_ref().and_then(|c| c.warning.clone()) {
        ctx.warnings.lock().unwrap().push(w);
    }
    let mut resp = ctx.dispatch(req, &verb, &content_type).await?;
    let mut warnings = ctx.warnings.into_inner().unwrap_or_default();
    warnings.dedup();
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(&w).unwrap_or_default());
        if let Ok(v) = http::HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    Ok(resp)
}

impl Ctx {
    async fn dispatch<B>(&self, req: Request<B>, verb: &str, content_type: &str) -> Result<Response<ResBody>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let ctx = self;
        let content_type = content_type.to_string();
        if ctx.def.kind == "Pod" && ctx.def.group.is_empty() && matches!(ctx.info.subresource.as_str(), "exec" | "attach" | "portforward") {
            return ctx.pod_stream(req).await;
        }
        match verb {
            "get" => ctx.get().await,
            "list" => ctx.list().await,
            "watch" => ctx.watch().await,
            "create" | "update" | "patch" => {
                let body = read_body(req.into_body()).await?;
                match verb {
                    "create" => ctx.create(&content_type, body).await,
                    "update" => ctx.update(&content_type, body).await,
                    _ => ctx.patch(&content_type, body).await,
                }
            }
            "delete" | "deletecollection" => {
                let body = read_body(req.into_body()).await?;
                let opts = DeleteOptions::parse(&ctx.query, &content_type, &body)?;
                if verb == "delete" { ctx.delete(opts).await } else { ctx.delete_collection(opts).await }
            }
            _ => Err(ApiError::method_not_supported(&ctx.def.group, &ctx.def.plural, verb)),
        }
    }
}

fn verb_allowed(ctx: &Ctx, verb: &str) -> bool {
    let verbs = match ctx.def.subresource(&ctx.info.subresource) {
        Some(s) => &s.verbs,
        None => &ctx.def.verbs,
    };
    verbs.iter().any(|v| v == verb)
}

fn check_dry_run(q: &Query) -> Result<()> {
    match q.get("dryRun").map(String::as_str) {
        None | Some("") | Some("All") => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!("dryRun: Unsupported value: \"{other}\": supported values: \"All\""))),
    }
}

async fn read_body<B>(body: B) -> Result<Bytes>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(ApiError::too_large(format!("Request entity too large: limit is {MAX_REQUEST_BYTES}")))
        }
        Err(e) => Err(ApiError::bad_request(format!("error reading request body: {e}"))),
    }
}

/// Decodes a JSON or YAML request body into a JSON object, collecting the
/// paths of fields a JSON body holds twice into `duplicates`.
fn decode_body(content_type: &str, body: &[u8]) -> Result<Value> {
    decode_body_tracking(content_type, body, None)
}

fn decode_body_tracking(content_type: &str, body: &[u8], duplicates: Option<&std::sync::Mutex<Vec<String>>>) -> Result<Value> {
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let v: Value = match mime.as_str() {
        "" | "application/json" | "*/*" => {
            let (v, dups) = api::json::from_slice_with_duplicates(body)
                .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}")))?;
            if let Some(d) = duplicates {
                d.lock().unwrap().extend(dups);
            }
            v
        }
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            serde_yaml::from_slice(body).map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: yaml: {e}")))?
        }
        "application/vnd.kubernetes.protobuf" => {
            schema::protobuf::decode(body).map_err(|e| ApiError::bad_request(format!("failed to decode protobuf body: {e}")))?
        }
        _ => return Err(ApiError::unsupported_media_type(&CONSUMED)),
    };
    if !v.is_object() {
        return Err(ApiError::bad_request("couldn't get version/kind; json parse error: the body is not a JSON object"));
    }
    Ok(v)
}

/// The JSON of a cached object as this resource serves it: the shared
/// encoding, unless another version of the resource stored it (apiVersion
/// rewritten) or its CRD has defaults (applied on read too, so defaults
/// added to a CRD later show on existing objects, as upstream).
fn served_bytes(def: &ResourceDef, shared_storage: bool, c: &Cached) -> Bytes {
    let defaults = def.custom.as_ref().is_some_and(|c| c.has_defaults);
    if !shared_storage && !defaults {
        return c.bytes.clone();
    }
    let mut v = c.value();
    if shared_storage {
        v["apiVersion"] = json!(def.api_version());
        schema::hooks::stored_to_served(def, &mut v);
    }
    if let (true, Some(custom)) = (defaults, &def.custom) {
        schema::crd::default(&custom.schema, &mut v);
    }
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// At most `n` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, n: usize) -> &str {
    let mut end = s.len().min(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn now() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", t.year(), t.month() as u8, t.day(), t.hour(), t.minute(), t.second())
}

fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    let m = obj.as_object_mut().expect("objects are JSON objects").entry("metadata").or_insert_with(|| json!({}));
    if !m.is_object() {
        *m = json!({});
    }
    m.as_object_mut().unwrap()
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    meta(obj).and_then(|m| m.get(field)).and_then(Value::as_str).unwrap_or("")
}

fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Finalizers that keep an object with a deletionTimestamp alive: its own, and
/// for namespaces the spec finalizers the namespace controller clears.
fn blocking_finalizers(def: &ResourceDef, obj: &Value) -> bool {
    if !finalizers(obj).is_empty() {
        return true;
    }
    def.group.is_empty() && def.kind == "Namespace" && obj.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|a| !a.is_empty())
}

/// A random suffix for generateName, from upstream's alphabet (no vowels, no
/// look-alike characters).
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4().as_bytes()[..5].iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

fn name_check(rule: NameRule) -> fn(&str) -> Vec<String> {
    match rule {
        NameRule::Subdomain => api::validation::is_dns1123_subdomain,
        NameRule::Label => api::validation::is_dns1123_label,
        NameRule::PathSegment => api::validation::is_path_segment_name,
    }
}

fn store_err(e: store::Error) -> ApiError {
    match e {
        store::Error::Compacted { requested, compacted } => ApiError::gone(format!("too old resource version: {requested} ({compacted})")),
        store::Error::FutureRevision { requested, current } => {
            ApiError::timeout(format!("Too large resource version: {requested}, current: {current}"))
        }
        other => ApiError::internal(other.to_string()),
    }
}

/// Parsed DeleteOptions, from the body and the query.
#[derive(Default)]
struct DeleteOptions {
    uid: Option<String>,
    resource_version: Option<String>,
    propagation: Option<String>,
    dry_run: bool,
    grace_period_seconds: Option<i64>,
}

impl DeleteOptions {
    fn parse(q: &Query, content_type: &str, body: &[u8]) -> Result<Self> {
        let mut o = DeleteOptions::default();
        if !body.iter().all(u8::is_ascii_whitespace) {
            let v = decode_body(content_type, body)?;
            o.uid = v.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_string);
            o.resource_version = v.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(str::to_string);
            o.propagation = v.get("propagationPolicy").and_then(Value::as_str).map(str::to_string);
            if v.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
                o.propagation.get_or_insert_with(|| "Orphan".into());
            }
            o.dry_run = v.get("dryRun").and_then(Value::as_array).is_some_and(|a| a.iter().any(|d| d == "All"));
            o.grace_period_seconds = v.get("gracePeriodSeconds").and_then(Value::as_i64);
        }
        if let Some(g) = q.get("gracePeriodSeconds") {
            o.grace_period_seconds = Some(g.parse().map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds: {g}")))?);
        }
        if let Some(p) = q.get("propagationPolicy") {
            o.propagation = Some(p.clone());
        }
        if q.get("orphanDependents").map(String::as_str) == Some("true") {
            o.propagation.get_or_insert_with(|| "Orphan".into());
        }
        if let Some(p) = &o.propagation
            && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
        {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
        o.dry_run |= q.get("dryRun").is_some_and(|d| d == "All");
        Ok(o)
    }
}

impl Ctx {
    fn inner(&self) -> &Inner {
        &self.srv.0
    }

    fn dry_run(&self) -> bool {
        self.query.get("dryRun").is_some_and(|d| d == "All")
    }

    fn key_for(&self, namespace: &str, name: &str) -> String {
        if self.def.namespaced {
            format!("/registry/{}/{}/{}", self.def.storage, namespace, name)
        } else {
            format!("/registry/{}/{}", self.def.storage, name)
        }
    }

    fn key(&self) -> String {
        self.key_for(&self.info.namespace, &self.info.name)
    }

    /// The key prefix of the request's collection (one namespace or all).
    fn prefix(&self) -> String {
        if self.def.namespaced && !self.info.namespace.is_empty() {
            format!("/registry/{}/{}/", self.def.storage, self.info.namespace)
        } else {
            format!("/registry/{}/", self.def.storage)
        }
    }

    fn not_found(&self) -> ApiError {
        ApiError::not_found(&self.def.group, &self.def.plural, &self.info.name)
    }

    fn conflict(&self, name: &str, msg: &str) -> ApiError {
        ApiError::conflict(&self.def.group, &self.def.plural, name, msg)
    }

    fn list_kind(&self) -> String {
        format!("{}List", self.def.kind)
    }

    /// Waits until the cache reflects every write acknowledged so far.
    async fn consistent(&self) -> Result<()> {
        let cur = self.inner().store.current_revision().await.map_err(store_err)?;
        self.wait_cache(cur).await
    }

    async fn wait_cache(&self, rev: Revision) -> Result<()> {
        if self.inner().cache.wait_for(rev, CACHE_WAIT).await {
            Ok(())
        } else {
            Err(ApiError::timeout(format!("Too large resource version: {rev}, current: {}", self.inner().cache.revision())))
        }
    }

    /// Honours a read's resourceVersion: unset is a consistent read, "0" any
    /// cached state, N at least N.
    async fn read_barrier(&self) -> Result<()> {
        match self.query.get("resourceVersion").map(String::as_str) {
            None | Some("") => self.consistent().await,
            Some("0") => Ok(()),
            Some(rv) => self.wait_cache(parse_rv(rv)?).await,
        }
    }

    /// The served JSON of a cached object: the cached bytes, with apiVersion
    /// rewritten when another version of the resource stored it.
    fn served_bytes(&self, c: &Cached) -> Bytes {
        served_bytes(&self.def, self.shared_storage, c)
    }

    fn served_value(&self, mut v: Value) -> Value {
        if self.shared_storage {
            v["apiVersion"] = json!(self.def.api_version());
            schema::hooks::stored_to_served(&self.def, &mut v);
        }
        v
    }

    /// The stored form of an object this resource was sent.
    fn encode_stored(&self, obj: &Value) -> Result<Bytes> {
        if !schema::hooks::converts(&self.def) {
            return encode_stored(obj);
        }
        let mut v = obj.clone();
        schema::hooks::served_to_stored(&self.def, &mut v);
        encode_stored(&v)
    }

    /// Encodes one object in the negotiated format.
    fn object_response(&self, code: StatusCode, obj: Bytes) -> Result<Response<ResBody>> {
        Ok(match self.format {
            Format::Json | Format::Yaml => encode(code, self.format, obj),
            Format::Table { v1beta1 } => {
                let include = IncludeObject::parse(self.query.get("includeObject").map(String::as_str))?;
                let list_meta = json!({"resourceVersion": output::resource_version(&obj)});
                output::json_response(code, output::table(&self.def, &[&obj], &list_meta, include, true, v1beta1))
            }
            Format::Meta { v1beta1 } => output::json_response(code, output::partial(&obj, v1beta1)),
        })
    }

    fn value_response(&self, code: StatusCode, v: &Value) -> Result<Response<ResBody>> {
        self.object_response(code, Bytes::from(serde_json::to_vec(v).unwrap_or_default()))
    }

    // ---- reads ----

    async fn get(&self) -> Result<Response<ResBody>> {
        match self.read_barrier().await {
            Ok(()) => {}
            // A cache behind the store: a consistent get reads the store.
            Err(e) if e.code == 504 && self.query.get("resourceVersion").is_none_or(|r| r.is_empty()) && self.info.subresource.is_empty() => {
                let (_, v) = self.read_current(&self.key()).await?;
                return self.value_response(StatusCode::OK, &self.served_value(v));
            }
            Err(e) => return Err(e),
        }
        let rc = self.inner().cache.resource(&self.def.storage);
        let obj = rc.get(&self.key()).ok_or_else(|| self.not_found())?;
        match self.info.subresource.as_str() {
            "" | "status" => self.object_response(StatusCode::OK, self.served_bytes(&obj)),
            "scale" => output_scale(&self.def, &obj.value()),
            "log" if self.def.kind == "Pod" => self.pod_log(&obj.value()).await,
            _ => Err(ApiError::method_not_supported(&self.def.group, &self.def.plural, "get")),
        }
    }

    /// pods/exec, attach and portforward: upgraded and spliced to the agent.
    async fn pod_stream<B>(&self, req: Request<B>) -> Result<Response<ResBody>> {
        let rc = self.inner().cache.resource(&self.def.storage);
        let obj = rc.get(&self.key()).ok_or_else(|| self.not_found())?;
        let pod = obj.value();
        let (ns, name) = (&self.info.namespace, &self.info.name);
        let path = match self.info.subresource.as_str() {
            "portforward" => format!("/portForward/{ns}/{name}"),
            sub => {
                let container = crate::nodeproxy::container_for(&pod, self.query.get("container").map(String::as_str))?;
                if sub == "exec" && self.query.get("command").is_none_or(|c| c.is_empty()) {
                    return Err(ApiError::bad_request("you must specify at least 1 command"));
                }
                format!("/{sub}/{ns}/{name}/{container}")
            }
        };
        if let Some(phase) = pod.pointer("/status/phase").and_then(Value::as_str).filter(|p| *p == "Succeeded" || *p == "Failed") {
            return Err(ApiError::bad_request(format!("cannot exec into a container in a completed pod; current phase is {phase}")));
        }
        crate::nodeproxy::upgrade(self.inner(), &pod, req, &path).await
    }

    /// pods/log: served by the node agent running the pod.
    async fn pod_log(&self, pod: &Value) -> Result<Response<ResBody>> {
        let container = crate::nodeproxy::container_for(pod, self.query.get("container").map(String::as_str))?;
        for k in ["tailLines", "sinceSeconds", "limitBytes"] {
            if let Some(v) = self.query.get(k)
                && v.parse::<i64>().map_or(true, |n| n < 0 || (n == 0 && k != "tailLines"))
            {
                return Err(ApiError::invalid("", "PodLogOptions", "", vec![api::status::invalid_value(k, &json!(v), "must be greater than 0")]));
            }
        }
        let pass = ["follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime", "limitBytes"];
        let query: Vec<(&str, String)> = pass.iter().filter_map(|k| self.query.get(*k).map(|v| (*k, v.clone()))).collect();
        let path = format!("/containerLogs/{}/{}/{}", self.info.namespace, self.info.name, container);
        crate::nodeproxy::get(self.inner(), pod, &path, &query).await
    }

    fn selectors(&self) -> Result<(LabelSelector, FieldSelector)> {
        let label = LabelSelector::parse(self.query.get("labelSelector").map(String::as_str).unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let field = FieldSelector::parse(self.query.get("fieldSelector").map(String::as_str).unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
        let probe = json!({});
        for f in field.fields() {
            if self.def.field_value(&probe, f).is_none() {
                return Err(ApiError::bad_request(format!("field label not supported: {f}")));
            }
        }
        Ok((label, field))
    }

    async fn list(&self) -> Result<Response<ResBody>> {
        let (label, field) = self.selectors()?;
        let filter = Filter { def: self.def.clone(), label, field };
        let limit: usize = match self.query.get("limit") {
            Some(l) if !l.is_empty() => l.parse().map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?,
            _ => 0,
        };
        let rv_match = self.query.get("resourceVersionMatch").map(String::as_str).unwrap_or("");
        let rv = self.query.get("resourceVersion").map(String::as_str).unwrap_or("");
        let cont = self.query.get("continue").map(String::as_str).unwrap_or("");
        if !rv_match.is_empty() && rv.is_empty() {
            return Err(ApiError::bad_request("resourceVersionMatch is forbidden unless resourceVersion is provided"));
        }
        if !matches!(rv_match, "" | "Exact" | "NotOlderThan") {
            return Err(ApiError::bad_request(format!(
                "resourceVersionMatch: Unsupported value: \"{rv_match}\": supported values: \"Exact\", \"NotOlderThan\""
            )));
        }
        if !cont.is_empty() && !rv.is_empty() && rv != "0" {
            return Err(ApiError::bad_request("specifying resource version is not allowed when using continue"));
        }
        let exact = rv_match == "Exact" || (rv_match.is_empty() && !rv.is_empty() && rv != "0" && limit > 0);
        let prefix = self.prefix();
        // Pages come from the cache while it still holds the snapshot they
        // belong to; otherwise from the store at that revision.
        let (start_after, at) = if !cont.is_empty() {
            let (rv, start) = decode_continue(cont)?;
            (Some(format!("{prefix}{start}")), Some(rv))
        } else if exact {
            (None, Some(parse_rv(rv)?))
        } else {
            match self.read_barrier().await {
                Ok(()) => (None, None),
                // The cache fell behind the store: as upstream, a consistent
                // list is then served by the store instead of failing.
                Err(e) if e.code == 504 && rv.is_empty() => {
                    let (items, rev, next, remaining) = self.list_from_store(&filter, limit, "", None).await?;
                    return self.list_response(items, rev, next, remaining);
                }
                Err(e) => return Err(e),
            }
        };
        let rc = self.inner().cache.resource(&self.def.storage);
        let global = self.inner().cache.revision();
        let page = rc.page(&prefix, start_after.as_deref(), limit, at, global, |o| filter.matches(o));
        let (items, rev, next, remaining) = match page {
            Some((objs, rev, more, remaining)) => {
                let next = (more && limit > 0).then(|| {
                    let last = &objs.last().expect("a full page").key;
                    encode_continue(rev, last.strip_prefix(&prefix).unwrap_or(last))
                });
                let remaining = (next.is_some() && filter.is_empty()).then_some(remaining);
                (objs.iter().map(|o| self.served_bytes(o)).collect(), rev, next, remaining)
            }
            None => self.list_from_store(&filter, limit, cont, at).await?,
        };
        self.list_response(items, rev, next, remaining)
    }

    /// A paged list read from the store at one revision (continue tokens keep
    /// that revision, so every page belongs to one consistent snapshot).
    async fn list_from_store(
        &self,
        filter: &Filter,
        limit: usize,
        cont: &str,
        at: Option<Revision>,
    ) -> Result<(Vec<Bytes>, Revision, Option<String>, Option<usize>)> {
        let prefix = self.prefix();
        let (mut start_after, mut revision) = (None, at);
        if !cont.is_empty() {
            let (rv, start) = decode_continue(cont)?;
            start_after = Some(format!("{prefix}{start}"));
            revision = Some(rv);
        }
        tracing::debug!(%prefix, limit, cont, at = ?at, filtered = !filter.is_empty(), "list from the store");
        let _permit = self.inner().store_lists.acquire().await.map_err(|_| ApiError::internal("the server is shutting down"))?;
        // The store is read a bounded number of objects at a time, at one
        // revision, so a selective list holds only what it matches.
        const CHUNK: usize = 1000;
        let mut items = Vec::new();
        let mut remaining;
        let mut last_key = None;
        let mut read_rev;
        loop {
            let want = if limit == 0 { CHUNK } else { (limit - items.len()).min(CHUNK) };
            let page = self
                .inner()
                .store
                .range(RangeRequest { prefix: prefix.clone(), start_after: start_after.clone(), revision, limit: want })
                .await
                .map_err(|e| match e {
                    store::Error::Compacted { .. } if !cont.is_empty() => ApiError::gone(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ),
                    other => store_err(other),
                })?;
            read_rev = page.revision;
            revision = Some(read_rev);
            for kv in &page.kvs {
                if let Some(c) = cached_from_kv(kv)
                    && filter.matches(&c)
                {
                    items.push(self.served_bytes(&c));
                }
            }
            remaining = page.remaining;
            if let Some(kv) = page.kvs.last() {
                last_key = Some(kv.key.clone());
                start_after = last_key.clone();
            }
            if page.remaining == 0 || page.kvs.is_empty() || (limit > 0 && items.len() >= limit) {
                break;
            }
        }
        let next = if remaining > 0 { last_key.map(|k| encode_continue(read_rev, k.strip_prefix(&prefix).unwrap_or(&k))) } else { None };
        let remaining = (next.is_some() && filter.is_empty()).then_some(remaining);
        Ok((items, read_rev, next, remaining))
    }

    fn list_response(&self, items: Vec<Bytes>, rev: Revision, next: Option<String>, remaining: Option<usize>) -> Result<Response<ResBody>> {
        let mut list_meta = json!({"resourceVersion": rev.to_string()});
        if let Some(n) = next {
            list_meta["continue"] = json!(n);
        }
        if let Some(r) = remaining {
            list_meta["remainingItemCount"] = json!(r);
        }
        match self.format {
            Format::Json | Format::Yaml => {
                // The list is spliced from the items' cached encodings.
                let mut out = Vec::with_capacity(64 + items.iter().map(|i| i.len() + 1).sum::<usize>());
                let head =
                    serde_json::to_string(&json!({"kind": self.list_kind(), "apiVersion": self.def.api_version(), "metadata": list_meta})).unwrap();
                // Drop only the object's closing brace; "items" follows inside it.
                out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
                out.extend_from_slice(b",\"items\":[");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(item);
                }
                out.extend_from_slice(b"]}");
                Ok(encode(StatusCode::OK, self.format, Bytes::from(out)))
            }
            Format::Table { v1beta1 } => {
                let include = IncludeObject::parse(self.query.get("includeObject").map(String::as_str))?;
                let objs: Vec<&[u8]> = items.iter().map(|b| &b[..]).collect();
                Ok(output::json_response(StatusCode::OK, output::table(&self.def, &objs, &list_meta, include, true, v1beta1)))
            }
            Format::Meta { v1beta1 } => Ok(output::json_response(StatusCode::OK, output::partial_list(&items, &list_meta, v1beta1))),
        }
    }

    // ---- watch ----

    async fn watch(&self) -> Result<Response<ResBody>> {
        if self.format == Format::Yaml {
            return Err(ApiError::not_acceptable(&["application/json", "application/json;stream=watch"]));
        }
        let (label, field) = self.selectors()?;
        let mut filter = Filter { def: self.def.clone(), label, field };
        if !self.info.name.is_empty() {
            // A watch on one object, as /watch/.../name or a metadata.name selector.
            filter.field = FieldSelector::parse(&format!("metadata.name={}", self.info.name)).unwrap_or(filter.field);
        }
        let q = |k: &str| self.query.get(k).map(String::as_str).unwrap_or("");
        let bookmarks = q("allowWatchBookmarks") == "true";
        let send_initial = match q("sendInitialEvents") {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        };
        if send_initial.is_some() && q("resourceVersionMatch") != "NotOlderThan" {
            return Err(invalid_list_options("resourceVersionMatch", "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"));
        }
        if send_initial == Some(true) && !bookmarks {
            return Err(invalid_list_options("allowWatchBookmarks", "sendInitialEvents requires setting allowWatchBookmarks to true"));
        }
        let timeout = match q("timeoutSeconds") {
            "" => Duration::from_secs(1800 + u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * 7),
            t => Duration::from_secs(t.parse().map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {t}")))?),
        };
        let rv = q("resourceVersion");
        let cache = self.inner().cache.clone();
        // Which point the watch starts from: None = the current state first.
        let from = match (rv, send_initial) {
            ("" | "0", None | Some(true)) => None,
            ("", Some(false)) | ("0", Some(false)) => Some(cache.revision()),
            (n, Some(true)) => {
                self.wait_cache(parse_rv(n)?).await?;
                None
            }
            (n, _) => {
                let n = parse_rv(n)?;
                self.wait_cache(n).await?;
                Some(n)
            }
        };
        if from.is_none() && rv.is_empty() {
            self.consistent().await?;
        }
        let rc = cache.resource(&self.def.storage);
        let prefix = self.prefix();
        let (tx, rx) = mpsc::channel::<Bytes>(256);
        let body = http_body_util::BodyExt::boxed(ChannelBody(rx));
        let mut resp = Response::new(body);
        resp.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        let sub = match rc.subscribe(&prefix, from, cache.revision()) {
            Ok(s) => s,
            Err(floor) => {
                let e = ApiError::gone(format!("too old resource version: {} ({floor})", from.unwrap_or(0)));
                let ev = json!({"type": "ERROR", "object": e.to_status()});
                let _ = tx.try_send(Bytes::from(format!("{ev}\n")));
                return Ok(resp);
            }
        };
        let include = IncludeObject::parse(self.query.get("includeObject").map(String::as_str))?;
        let w = Watcher {
            def: self.def.clone(),
            format: self.format,
            include,
            filter,
            prefix,
            shared_storage: self.shared_storage,
            headers_sent: false,
            last: sub.rev,
            tx,
            who: format!("{} ({})", self.user.name, self.user_agent),
        };
        tokio::spawn(w.run(sub, cache, send_initial == Some(true), bookmarks, timeout));
        Ok(resp)
    }

    // ---- writes ----

    async fn create(&self, content_type: &str, body: Bytes) -> Result<Response<ResBody>> {
        match self.info.subresource.as_str() {
            "" => {}
            "binding" => return self.bind(content_type, &body).await,
            "eviction" => return self.evict(content_type, &body).await,
            "token" => return self.token_request(content_type, &body),
            _ => return Err(ApiError::method_not_supported(&self.def.group, &self.def.plural, "create")),
        }
        let mut obj = decode_body_tracking(content_type, &body, Some(&self.duplicates))?;
        self.check_type(&mut obj)?;
        self.decode_typed(&mut obj, None)?;
        if self.def.virtual_only {
            return self.review(obj);
        }
        if self.def.kind == "Binding" && self.def.group.is_empty() {
            return self.bind_object(obj).await;
        }
        self.create_obj(obj).await
    }

    /// Stores a new object (from a create, or an apply of a missing object).
    async fn create_obj(&self, mut obj: Value) -> Result<Response<ResBody>> {
        if let Some(c) = &self.def.custom {
            let crd = self.inner().cache.resource(CRDS).get(&format!("/registry/{CRDS}/{}", c.crd));
            if crd.is_some_and(|c| c.value().pointer("/metadata/deletionTimestamp").is_some()) {
                return Err(ApiError::method_not_supported(
                    &self.def.group,
                    &self.def.plural,
                    "create not allowed while custom resource definition is terminating; create",
                ));
            }
        }
        let m = meta_mut(&mut obj);
        let ns_in_body = m.get("namespace").and_then(Value::as_str).unwrap_or("").to_string();
        if self.def.namespaced {
            if !ns_in_body.is_empty() && !self.info.namespace.is_empty() && ns_in_body != self.info.namespace {
                return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
            }
            if self.info.namespace.is_empty() {
                return Err(ApiError::bad_request("the namespace of the object must be set in the request path"));
            }
            m.insert("namespace".into(), json!(self.info.namespace));
        } else {
            m.remove("namespace");
        }
        let name = m.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        let generate = |prefix: &str| {
            let mut generated = prefix.to_string();
            // Upstream truncates the prefix so that prefix + suffix fits 63 characters.
            generated.truncate(58);
            generated.push_str(&random_suffix());
            generated
        };
        let mut generated_from = None;
        if name.is_empty()
            && let Some(prefix) = m.get("generateName").and_then(Value::as_str).filter(|p| !p.is_empty())
        {
            generated_from = Some(prefix.to_string());
            m.insert("name".into(), json!(generate(prefix)));
        }
        if m.get("resourceVersion").and_then(Value::as_str).is_some_and(|r| !r.is_empty()) {
            return Err(ApiError::bad_request("resourceVersion should not be set on objects to be created"));
        }
        m.remove("resourceVersion");
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        m.remove("selfLink");
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now()));
        if !self.apply {
            m.remove("managedFields");
        }
        if self.def.kind == "Pod" && self.def.group.is_empty() {
            self.admit_service_account(&mut obj).await?;
            self.admit_priority(&mut obj)?;
        }
        schema::hooks::apply_defaults(&self.def, &mut obj);
        schema::hooks::prepare_create(&self.def, &mut obj);
        if !self.apply {
            self.track(None, &mut obj)?;
        }
        if schema::hooks::tracks_generation(&self.def, &obj) {
            meta_mut(&mut obj).insert("generation".into(), json!(1));
        } else {
            meta_mut(&mut obj).remove("generation");
        }
        self.validate(&obj, None)?;
        let name = meta_str(&obj, "name").to_string();
        if self.def.namespaced {
            self.require_namespace(&self.info.namespace, &name).await?;
        }
        let bytes = self.encode_stored(&obj)?;
        if self.def.namespaced {
            self.charge_quota(&obj, &name).await?;
        }
        if self.dry_run() {
            return self.value_response(StatusCode::CREATED, &obj);
        }
        let (mut name, mut bytes, mut attempts) = (name, bytes, 1);
        let kv = loop {
            match self.inner().store.create(self.key_for(&self.info.namespace, &name), bytes).await {
                Ok(kv) => break kv,
                // A generated name that is taken: as upstream, try other
                // suffixes (8 names in all) before reporting the conflict.
                Err(store::Error::AlreadyExists) if attempts < 8 && generated_from.is_some() => {
                    attempts += 1;
                    name = generate(generated_from.as_deref().unwrap_or_default());
                    meta_mut(&mut obj).insert("name".into(), json!(name));
                    bytes = self.encode_stored(&obj)?;
                }
                Err(store::Error::AlreadyExists) => return Err(ApiError::already_exists(&self.def.group, &self.def.plural, &name)),
                Err(other) => return Err(store_err(other)),
            }
        };
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
        self.value_response(StatusCode::CREATED, &obj)
    }

    /// The field manager of this write: `fieldManager`, else (not for
    /// apply) the User-Agent's program name, as upstream.
    fn manager_name(&self) -> Result<String> {
        let name = match self.query.get("fieldManager").filter(|m| !m.is_empty()) {
            Some(m) => m.clone(),
            None if self.apply => {
                return Err(ApiError::bad_request("PATCH, application/apply-patch+yaml: fieldManager is required for apply requests"));
            }
            None => {
                let ua = self.user_agent.split('/').next().unwrap_or("").trim();
                if ua.is_empty() { "unknown".to_string() } else { ua.chars().take(128).collect() }
            }
        };
        if name.len() > 128 {
            return Err(ApiError::bad_request(format!("fieldManager: Too long: may not be more than 128 bytes, got {}", name.len())));
        }
        Ok(name)
    }

    /// Which paths this endpoint's writes own: a resource with a status
    /// subresource keeps status out of main-resource ownership and the reverse.
    fn owns(&self) -> impl Fn(&schema::managed::Path) -> bool + use<> {
        let sub = self.info.subresource.clone();
        let split = self.def.has_status();
        move |p: &schema::managed::Path| {
            let status = p.first().is_some_and(|f| f == "f:status");
            match sub.as_str() {
                "status" => status,
                "scale" => p.first().is_some_and(|f| f == "f:spec"),
                _ => !(split && status),
            }
        }
    }

    /// The schema of this resource's objects: the CRD version's, or the
    /// built-in definition (Null when there is none).
    fn root_schema(&self) -> &Value {
        static NONE: Value = Value::Null;
        match &self.def.custom {
            Some(c) => &c.schema,
            None => {
                let defs = schema::openapi::definitions();
                defs.name_of(&self.def.group, &self.def.version, &self.def.kind).and_then(|n| defs.get(n)).unwrap_or(&NONE)
            }
        }
    }

    /// Records `m`'s update of `old` into `new` in `new`'s managedFields.
    fn track(&self, old: Option<&Value>, new: &mut Value) -> Result<()> {
        let defs = schema::openapi::definitions();
        let root = self.root_schema();
        let (name, time, av) = (self.manager_name()?, now(), self.def.api_version());
        let sub = if matches!(self.info.subresource.as_str(), "status" | "scale") { self.info.subresource.as_str() } else { "" };
        let m = schema::managed::Manager { name: &name, operation: "Update", api_version: &av, subresource: sub, time: &time };
        schema::managed::track_update(defs, root, old, new, &m, self.owns());
        Ok(())
    }

    fn field_validation(&self) -> Result<FieldValidation> {
        match self.query.get("fieldValidation").map(String::as_str) {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => {
                Err(ApiError::bad_request(format!("invalid fieldValidation directive: {other}: supported values: \"Ignore\", \"Warn\", \"Strict\"")))
            }
        }
    }

    /// Upstream's typed decoding of a written object (`def_name`, or this
    /// resource's kind): unknown fields are dropped and, per
    /// `fieldValidation`, refused (Strict) or reported (Warn, the default);
    /// values of the wrong JSON type are refused.
    fn decode_typed(&self, obj: &mut Value, def_name: Option<&str>) -> Result<()> {
        if let (Some(c), None) = (&self.def.custom, def_name) {
            // Custom resources: pruning by the structural schema; types are
            // checked by validation (422, as upstream).
            let mut unknown = Vec::new();
            schema::crd::prune(&c.schema, obj, &mut unknown);
            return self.report_unknown(unknown, |msg| {
                ApiError::bad_request(format!(
                    "{} in version \"{}\" cannot be handled as a {}: {msg}",
                    self.def.kind, self.def.version, self.def.kind
                ))
            });
        }
        let defs = schema::openapi::definitions();
        let Some(name) = def_name.or_else(|| defs.name_of(&self.def.group, &self.def.version, &self.def.kind)) else { return Ok(()) };
        let mut parts = name.rsplit('.');
        let (kind, version) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let cannot = |msg: String| ApiError::bad_request(format!("{kind} in version \"{version}\" cannot be handled as a {kind}: {msg}"));
        let decoded = schema::typed::decode(defs, name, obj).map_err(|e| cannot(e.0))?;
        self.report_unknown(decoded.unknown, cannot)
    }

    /// Unknown (already dropped) and duplicate fields, refused or reported
    /// per `fieldValidation`.
    fn report_unknown(&self, unknown: Vec<String>, cannot: impl Fn(String) -> ApiError) -> Result<()> {
        let mode = self.field_validation()?;
        let mut unknown: Vec<String> = unknown.iter().map(|u| format!("unknown field \"{u}\"")).collect();
        unknown.extend(std::mem::take(&mut *self.duplicates.lock().unwrap()).iter().map(|d| format!("duplicate field \"{d}\"")));
        match mode {
            _ if unknown.is_empty() => Ok(()),
            FieldValidation::Strict => Err(cannot(format!("strict decoding error: {}", unknown.join(", ")))),
            FieldValidation::Warn => {
                self.warnings.lock().unwrap().extend(unknown);
                Ok(())
            }
            FieldValidation::Ignore => Ok(()),
        }
    }

    /// The object's apiVersion and kind must name this resource (missing ones
    /// are filled in).
    fn check_type(&self, obj: &mut Value) -> Result<()> {
        let want_kind = match self.info.subresource.as_str() {
            "" => self.def.kind.clone(),
            s => self.def.subresource(s).map(|s| s.kind.clone()).unwrap_or_default(),
        };
        let want_av = match self.def.subresource(&self.info.subresource) {
            Some(s) if s.group.is_some() => {
                let g = s.group.clone().unwrap();
                let v = s.version.clone().unwrap_or_default();
                if g.is_empty() { v } else { format!("{g}/{v}") }
            }
            _ => self.def.api_version(),
        };
        let map = obj.as_object_mut().unwrap();
        match map.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => {
                map.insert("apiVersion".into(), json!(want_av));
            }
            Some(av) if av != want_av && !(self.info.subresource == "status" && av == self.def.api_version()) => {
                return Err(ApiError::bad_request(format!("the API version in the data ({av}) does not match the expected API version ({want_av})")));
            }
            _ => {}
        }
        match map.get("kind").and_then(Value::as_str) {
            None | Some("") => {
                map.insert("kind".into(), json!(want_kind));
            }
            Some(k) if k != want_kind && !(self.info.subresource == "status" && k == self.def.kind) => {
                return Err(ApiError::bad_request(format!(
                    "{k} in version \"{}\" cannot be handled as a {want_kind}: the kind in the data does not match",
                    self.def.version
                )));
            }
            _ => {}
        }
        Ok(())
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Result<()> {
        static EMPTY: Value = Value::Null;
        let m = obj.get("metadata").unwrap_or(&EMPTY);
        let mut causes = api::validation::validate_object_meta(m, self.def.namespaced, name_check(self.def.name_rule), old.is_none());
        if let Some(old) = old {
            for f in ["name", "namespace", "uid", "creationTimestamp"] {
                let (a, b) = (meta_str(obj, f), meta_str(old, f));
                if a != b && !(f == "uid" && a.is_empty()) {
                    causes.push(api::StatusCause {
                        reason: "FieldValueInvalid".into(),
                        message: format!("Invalid value: {}: field is immutable", json!(a)),
                        field: format!("metadata.{f}"),
                    });
                }
            }
        }
        // Subresource writes (status, binding, scale) are not spec updates:
        // the spec immutability rules apply to main-resource updates only.
        let old = if self.info.subresource.is_empty() { old } else { None };
        causes.extend(schema::validate::validate(schema::openapi::definitions(), &self.def, obj, old));
        if !causes.is_empty() {
            return Err(ApiError::invalid(&self.def.group, &self.def.kind, meta_str(obj, "name"), causes));
        }
        Ok(())
    }

    async fn require_namespace(&self, ns: &str, name: &str) -> Result<()> {
        let key = format!("/registry/namespaces/{ns}");
        let cached = self.inner().cache.resource("namespaces").get(&key);
        let v = match cached {
            Some(c) => c.value(),
            None => match self.inner().store.get(&key).await.map_err(store_err)? {
                Some(kv) => serde_json::from_slice(&kv.value).unwrap_or(Value::Null),
                None => return Err(ApiError::not_found("", "namespaces", ns)),
            },
        };
        if v.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating") || meta(&v).is_some_and(|m| m.contains_key("deletionTimestamp"))
        {
            return Err(ApiError::forbidden(
                &self.def.group,
                &self.def.plural,
                name,
                &format!("unable to create new content in namespace {ns} because it is being terminated"),
            ));
        }
        Ok(())
    }

    async fn read_current(&self, key: &str) -> Result<(KeyValue, Value)> {
        let kv = self.inner().store.get(key).await.map_err(store_err)?.ok_or_else(|| self.not_found())?;
        let v: Value = serde_json::from_slice(&kv.value).map_err(|e| ApiError::internal(format!("stored object undecodable: {e}")))?;
        let rev = kv.mod_revision;
        Ok((kv, with_rv(v, rev)))
    }

    async fn update(&self, content_type: &str, body: Bytes) -> Result<Response<ResBody>> {
        let mut obj = decode_body_tracking(content_type, &body, Some(&self.duplicates))?;
        if self.info.subresource == "scale" {
            self.decode_typed(&mut obj, Some(SCALE))?;
            return self.update_scale(obj).await;
        }
        self.check_type(&mut obj)?;
        self.decode_typed(&mut obj, None)?;
        let body_name = meta_str(&obj, "name");
        if !body_name.is_empty() && body_name != self.info.name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({})",
                self.info.name
            )));
        }
        let body_ns = meta_str(&obj, "namespace");
        if self.def.namespaced && !body_ns.is_empty() && body_ns != self.info.namespace {
            return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
        }
        let want_rv = meta_str(&obj, "resourceVersion").to_string();
        let key = self.key();
        loop {
            let (kv, cur) = self.read_current(&key).await?;
            if !want_rv.is_empty() && want_rv != kv.mod_revision.to_string() {
                return Err(self.conflict(&self.info.name, api::ApiError::OPTIMISTIC_LOCK_MSG));
            }
            let new = self.merge_update(&cur, obj.clone())?;
            match self.write(&key, new, &kv, &cur).await {
                Err(WriteError::Conflict) if want_rv.is_empty() => continue,
                Err(WriteError::Conflict) => return Err(self.conflict(&self.info.name, api::ApiError::OPTIMISTIC_LOCK_MSG)),
                Err(WriteError::Api(e)) => return Err(e),
                Ok(v) => return self.value_response(StatusCode::OK, &v),
            }
        }
    }

    /// The object an update of `cur` with `new` stores: a write to the main
    /// resource keeps the old status, a write to `status` keeps everything
    /// but the status, system metadata is never taken from the client.
    fn merge_update(&self, cur: &Value, mut new: Value) -> Result<Value> {
        match self.info.subresource.as_str() {
            "status" => {
                let mut out = cur.clone();
                out["status"] = new.as_object_mut().and_then(|m| m.remove("status")).unwrap_or(json!({}));
                // Ownership of the status fields travels with them (recomputed for updates).
                if let Some(mf) = new.get_mut("metadata").and_then(Value::as_object_mut).and_then(|m| m.remove("managedFields")) {
                    meta_mut(&mut out).insert("managedFields".into(), mf);
                }
                // Status writers may still touch labels and annotations? Upstream keeps
                // the old metadata except for managed fields; so do we.
                return Ok(out);
            }
            "finalize" => {
                let mut out = cur.clone();
                out["spec"]["finalizers"] = new.pointer("/spec/finalizers").cloned().unwrap_or(json!([]));
                return Ok(out);
            }
            "" => {}
            other => return Err(ApiError::method_not_supported(&self.def.group, &self.def.plural, &format!("update {other}"))),
        }
        if self.def.has_status() {
            match cur.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    new.as_object_mut().unwrap().remove("status");
                }
            }
        }
        schema::hooks::prepare_update(&self.def, cur, &mut new);
        let cm = meta(cur).cloned().unwrap_or_default();
        let nm = meta_mut(&mut new);
        let body_uid = nm.get("uid").and_then(Value::as_str).unwrap_or("").to_string();
        let cur_uid = cm.get("uid").and_then(Value::as_str).unwrap_or("");
        if !body_uid.is_empty() && body_uid != cur_uid {
            return Err(
                self.conflict(&self.info.name, &format!("Precondition failed: UID in precondition: {body_uid}, UID in object meta: {cur_uid}"))
            );
        }
        for f in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
            match cm.get(f) {
                Some(v) => nm.insert(f.into(), v.clone()),
                None => nm.remove(f),
            };
        }
        if self.def.namespaced {
            nm.insert("namespace".into(), json!(self.info.namespace));
        }
        nm.insert("name".into(), json!(self.info.name));
        Ok(new)
    }

    /// Stores `new` over `cur` (read at `kv`): bumps the generation on spec
    /// changes, skips no-op writes, and deletes an object whose deletion was
    /// only waiting for the finalizers this write removes.
    async fn write(&self, key: &str, mut new: Value, kv: &KeyValue, cur: &Value) -> Result<Value, WriteError> {
        meta_mut(&mut new).remove("resourceVersion");
        schema::hooks::apply_defaults(&self.def, &mut new);
        // A binding writes the pod in storage directly, as upstream's: no
        // managedFields entry, no pod validation (it sets only the node and
        // the PodScheduled condition).
        let binding = self.info.subresource == "binding";
        if !self.apply && !binding {
            self.track(Some(cur), &mut new)?;
        }
        // A status write cannot change the spec (merge_update keeps the old one).
        if self.info.subresource != "status" && schema::hooks::tracks_generation(&self.def, &new) && spec_differs(&new, cur) {
            let g = meta(cur).and_then(|m| m.get("generation")).and_then(Value::as_i64).unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        if !binding {
            self.validate(&new, Some(cur))?;
        }
        let with_rv = |mut v: Value, rev: Revision| {
            meta_mut(&mut v).insert("resourceVersion".into(), json!(rev.to_string()));
            self.served_value(v)
        };
        if eq_but_resource_version(&new, cur) {
            return Ok(with_rv(new, kv.mod_revision));
        }
        let bytes = self.encode_stored(&new)?;
        if self.dry_run() {
            return Ok(with_rv(new, kv.mod_revision));
        }
        let store = &self.inner().store;
        if meta(&new).is_some_and(|m| m.contains_key("deletionTimestamp")) && !blocking_finalizers(&self.def, &new) {
            return match store.delete(key.to_string(), Some(kv.mod_revision)).await {
                Ok(d) => Ok(with_rv(new, d.mod_revision)),
                Err(store::Error::Conflict { .. }) | Err(store::Error::NotFound) => Err(WriteError::Conflict),
                Err(e) => Err(store_err(e).into()),
            };
        }
        match store.update(key.to_string(), bytes, kv.mod_revision).await {
            Ok(kv) => Ok(with_rv(new, kv.mod_revision)),
            Err(store::Error::Conflict { .. }) => Err(WriteError::Conflict),
            Err(store::Error::NotFound) => Err(self.not_found().into()),
            Err(e) => Err(store_err(e).into()),
        }
    }

    /// Reads, changes with `f` and writes, retrying on conflicts (upstream's
    /// GuaranteedUpdate).
    async fn guaranteed_update(&self, key: &str, mut f: impl FnMut(&Value) -> Result<Value>) -> Result<Value> {
        for _ in 0..100 {
            let (kv, cur) = self.read_current(key).await?;
            let new = f(&cur)?;
            match self.write(key, new, &kv, &cur).await {
                Err(WriteError::Conflict) => continue,
                Err(WriteError::Api(e)) => return Err(e),
                Ok(v) => return Ok(v),
            }
        }
        Err(ApiError::internal("too many conflicts"))
    }

    async fn patch(&self, content_type: &str, body: Bytes) -> Result<Response<ResBody>> {
        let mime = content_type.split(';').next().unwrap_or("").trim().to_string();
        if mime == APPLY_PATCH {
            return self.server_side_apply(&body).await;
        }
        let patch: Value = match mime.as_str() {
            "application/json-patch+json" | "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                let (v, dups) =
                    api::json::from_slice_with_duplicates(&body).map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                self.duplicates.lock().unwrap().extend(dups);
                v
            }
            _ => return Err(ApiError::unsupported_media_type(&PATCH_TYPES)),
        };
        if mime == "application/json-patch+json" {
            let ops = patch.as_array().ok_or_else(|| ApiError::bad_request("json patch must be a JSON array of operations"))?;
            if ops.len() > 10_000 {
                return Err(ApiError::too_large("The allowed maximum operations in a JSON patch is 10000, got more"));
            }
        } else if !patch.is_object() {
            return Err(ApiError::bad_request("patch body must be a JSON object"));
        }
        let key = self.key();
        let sub = self.info.subresource.clone();
        let v = self
            .guaranteed_update(&key, |cur| {
                // The patch applies to what the client sees: the object, or its Scale.
                let mut patched = if sub == "scale" { scale_of(&self.def, cur)? } else { self.served_value(cur.clone()) };
                let base_rv = meta_str(&patched, "resourceVersion").to_string();
                if mime == "application/json-patch+json" {
                    let p: json_patch::Patch =
                        serde_json::from_value(patch.clone()).map_err(|e| ApiError::bad_request(format!("invalid json patch: {e}")))?;
                    json_patch::patch(&mut patched, &p).map_err(|e| self.patch_invalid("", format!("the JSON patch could not be applied: {e}")))?;
                } else if mime == "application/strategic-merge-patch+json" {
                    let defs = schema::openapi::definitions();
                    let name = if sub == "scale" { Some(SCALE) } else { defs.name_of(&self.def.group, &self.def.version, &self.def.kind) };
                    let Some(name) = name else { return Err(ApiError::unsupported_media_type(&SMP_UNSUPPORTED)) };
                    patched = schema::smp::apply(defs, name, &patched, &patch)
                        .map_err(|e| self.patch_invalid("patch", format!("Invalid value: \"{}\": {}", truncate(&patch.to_string(), 256), e.0)))?;
                } else {
                    json_patch::merge(&mut patched, &patch);
                }
                if !patched.is_object() {
                    return Err(ApiError::bad_request("the patched object is not a JSON object"));
                }
                if sub == "status" {
                    // A status write keeps the stored spec (merge_update): no need to decode the patched one.
                    patched.as_object_mut().unwrap().remove("spec");
                }
                self.decode_typed(&mut patched, (sub == "scale").then_some(SCALE))?;
                let patched_rv = meta_str(&patched, "resourceVersion").to_string();
                if !patched_rv.is_empty() && patched_rv != base_rv {
                    return Err(self.conflict(&self.info.name, api::ApiError::OPTIMISTIC_LOCK_MSG));
                }
                if sub == "scale" {
                    return apply_scale(&self.def, cur, &patched);
                }
                let mut patched = patched;
                self.check_type(&mut patched)?;
                self.merge_update(cur, patched)
            })
            .await?;
        if sub == "scale" {
            return output_scale(&self.def, &v);
        }
        self.value_response(StatusCode::OK, &v)
    }

    /// Server-side apply: the body is the manager's whole intent for the
    /// object. A missing object is created from it (the upsert); otherwise
    /// it is merged in, refusing (409) to change fields other managers own
    /// unless `force=true`, and removing what the manager applied before but
    /// no longer does.
    async fn server_side_apply(&self, body: &[u8]) -> Result<Response<ResBody>> {
        let mut applied: Value = serde_yaml::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        if !applied.is_object() {
            return Err(ApiError::bad_request("the apply configuration must be an object"));
        }
        for f in ["apiVersion", "kind"] {
            if applied.get(f).and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err(ApiError::bad_request(format!("invalid object type: {f} must be set in an apply configuration")));
            }
        }
        let name = meta_str(&applied, "name");
        if !name.is_empty() && name != self.info.name {
            return Err(ApiError::bad_request(format!("the name of the object ({name}) does not match the name on the URL ({})", self.info.name)));
        }
        let sub = self.info.subresource.clone();
        if sub == "scale" {
            return Err(ApiError::method_not_supported(&self.def.group, &self.def.plural, "apply scale"));
        }
        self.check_type(&mut applied)?;
        self.decode_typed(&mut applied, None)?;
        let force = self.query.get("force").is_some_and(|f| f == "true");
        let defs = schema::openapi::definitions();
        let root = self.root_schema();
        let (manager, time, av) = (self.manager_name()?, now(), self.def.api_version());
        let subres = if sub == "status" { "status" } else { "" };
        let m = schema::managed::Manager { name: &manager, operation: "Apply", api_version: &av, subresource: subres, time: &time };
        let conflict = |c: Vec<schema::managed::Conflict>| {
            let list: Vec<(String, String, String)> = c.into_iter().map(|c| (c.manager, c.api_version, c.field)).collect();
            ApiError::apply_conflict(&self.def.group, &self.def.plural, &self.info.name, &list)
        };
        let key = self.key();
        for _ in 0..10 {
            if self.inner().store.get(&key).await.map_err(store_err)?.is_none() {
                if !sub.is_empty() {
                    return Err(self.not_found());
                }
                let mut obj = schema::managed::apply(defs, root, None, &applied, &m, force, self.owns()).map_err(conflict)?;
                meta_mut(&mut obj).insert("name".into(), json!(self.info.name));
                match self.create_obj(obj).await {
                    Err(e) if e.code == 409 && e.reason == "AlreadyExists" => continue,
                    other => return other,
                }
            }
            let v = self
                .guaranteed_update(&key, |cur| {
                    let live = self.served_value(cur.clone());
                    let merged = schema::managed::apply(defs, root, Some(&live), &applied, &m, force, self.owns()).map_err(conflict)?;
                    self.merge_update(cur, merged)
                })
                .await;
            match v {
                Err(e) if e.code == 404 => continue,
                Err(e) => return Err(e),
                Ok(v) => return self.value_response(StatusCode::OK, &v),
            }
        }
        Err(ApiError::internal("the object kept appearing and disappearing during apply"))
    }

    /// A patch that cannot be applied: 422 with one cause.
    fn patch_invalid(&self, field: &str, message: String) -> ApiError {
        ApiError::invalid(
            &self.def.group,
            &self.def.kind,
            &self.info.name,
            vec![api::StatusCause { reason: "FieldValueInvalid".into(), message, field: field.into() }],
        )
    }

    async fn delete(&self, opts: DeleteOptions) -> Result<Response<ResBody>> {
        if !self.info.subresource.is_empty() {
            return Err(ApiError::method_not_supported(&self.def.group, &self.def.plural, "delete"));
        }
        let v = self.delete_one(&self.key(), &self.info.name, &opts).await?;
        self.value_response(StatusCode::OK, &v)
    }

    async fn delete_one(&self, key: &str, name: &str, opts: &DeleteOptions) -> Result<Value> {
        let not_found = || ApiError::not_found(&self.def.group, &self.def.plural, name);
        for _ in 0..100 {
            let Some(kv) = self.inner().store.get(key).await.map_err(store_err)? else { return Err(not_found()) };
            let cur: Value = serde_json::from_slice(&kv.value).map_err(|e| ApiError::internal(e.to_string()))?;
            if let Some(uid) = &opts.uid
                && uid != meta_str(&cur, "uid")
            {
                return Err(
                    self.conflict(name, &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", meta_str(&cur, "uid")))
                );
            }
            if let Some(rv) = &opts.resource_version
                && *rv != kv.mod_revision.to_string()
            {
                return Err(self.conflict(
                    name,
                    &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", kv.mod_revision),
                ));
            }
            let mut new = cur.clone();
            let m = meta_mut(&mut new);
            let mut fins = finalizers(&cur);
            match opts.propagation.as_deref() {
                Some("Orphan") if !fins.iter().any(|f| f == "orphan") => fins.push("orphan".into()),
                Some("Foreground") if !fins.iter().any(|f| f == "foregroundDeletion") => fins.push("foregroundDeletion".into()),
                _ => {}
            }
            if let Some(f) = schema::hooks::deletion_finalizer(&self.def).filter(|f| !fins.iter().any(|x| x == f))
                && meta(&cur).is_none_or(|m| !m.contains_key("deletionTimestamp"))
            {
                fins.push(f.into());
            }
            let already = m.contains_key("deletionTimestamp");
            // A pod on a node terminates gracefully: it is marked with its
            // grace period and its node agent deletes it (with grace 0)
            // once its containers have stopped. A shorter grace period
            // shortens a pending deletion; it never lengthens.
            if let Some(grace) = schema::hooks::deletion_grace(&self.def, &cur, opts.grace_period_seconds).filter(|g| *g > 0) {
                let current = m.get("deletionGracePeriodSeconds").and_then(Value::as_i64);
                if already && current.is_some_and(|c| c <= grace) {
                    return Ok(with_rv(cur, kv.mod_revision));
                }
                if !fins.is_empty() {
                    m.insert("finalizers".into(), json!(fins));
                }
                m.insert("deletionTimestamp".into(), json!(rfc3339(time::OffsetDateTime::now_utc() + time::Duration::seconds(grace))));
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                match self.mark_deleting(key, name, new, kv.mod_revision, opts.dry_run).await? {
                    Some(v) => return Ok(v),
                    None => continue,
                }
            }
            let namespace_pending = self.def.group.is_empty() && self.def.kind == "Namespace" && blocking_finalizers(&self.def, &cur);
            if !fins.is_empty() || namespace_pending {
                if already {
                    return Ok(with_rv(cur, kv.mod_revision));
                }
                if !fins.is_empty() {
                    m.insert("finalizers".into(), json!(fins));
                }
                m.insert("deletionTimestamp".into(), json!(now()));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
                if namespace_pending {
                    new["status"]["phase"] = json!("Terminating");
                }
                match self.mark_deleting(key, name, new, kv.mod_revision, opts.dry_run).await? {
                    Some(v) => return Ok(v),
                    None => continue,
                }
            }
            if opts.dry_run {
                return Ok(with_rv(cur, kv.mod_revision));
            }
            match self.inner().store.delete(key.to_string(), Some(kv.mod_revision)).await {
                Ok(d) => return Ok(self.served_value(with_rv(cur, d.mod_revision))),
                Err(store::Error::Conflict { .. }) => continue,
                Err(store::Error::NotFound) => return Err(not_found()),
                Err(e) => return Err(store_err(e)),
            }
        }
        Err(ApiError::internal("too many conflicts"))
    }

    /// Writes an object marked for deletion (deletionTimestamp, finalizers)
    /// unless `dry_run`; `None` when a concurrent write won and the caller
    /// should look again.
    async fn mark_deleting(&self, key: &str, name: &str, new: Value, rev: Revision, dry_run: bool) -> Result<Option<Value>> {
        if dry_run {
            return Ok(Some(with_rv(new, rev)));
        }
        match self.inner().store.update(key.to_string(), self.encode_stored(&new)?, rev).await {
            Ok(kv) => Ok(Some(with_rv(new, kv.mod_revision))),
            Err(store::Error::Conflict { .. }) => Ok(None),
            Err(store::Error::NotFound) => Err(ApiError::not_found(&self.def.group, &self.def.plural, name)),
            Err(e) => Err(store_err(e)),
        }
    }

    async fn delete_collection(&self, opts: DeleteOptions) -> Result<Response<ResBody>> {
        let (label, field) = self.selectors()?;
        let filter = Filter { def: self.def.clone(), label, field };
        self.consistent().await?;
        let rc = self.inner().cache.resource(&self.def.storage);
        let (objs, _) = rc.list(&self.prefix(), self.inner().cache.revision());
        let mut deleted = Vec::new();
        for o in objs.iter().filter(|o| filter.matches(o)) {
            match self.delete_one(&o.key, &o.name, &opts).await {
                Ok(v) => deleted.push(Bytes::from(serde_json::to_vec(&v).unwrap_or_default())),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let rev = self.inner().cache.revision();
        self.list_response(deleted, rev, None, None)
    }

    // ---- subresources ----

    async fn update_scale(&self, scale: Value) -> Result<Response<ResBody>> {
        let want_rv = meta_str(&scale, "resourceVersion").to_string();
        let key = self.key();
        let v = self
            .guaranteed_update(&key, |cur| {
                if !want_rv.is_empty() && want_rv != meta_str(cur, "resourceVersion") {
                    return Err(self.conflict(&self.info.name, api::ApiError::OPTIMISTIC_LOCK_MSG));
                }
                apply_scale(&self.def, cur, &scale)
            })
            .await?;
        output_scale(&self.def, &v)
    }

    /// pods/binding and the core `bindings` resource: sets spec.nodeName once.
    async fn bind(&self, content_type: &str, body: &[u8]) -> Result<Response<ResBody>> {
        let b = decode_body(content_type, body)?;
        self.bind_pod(&self.info.name, &b).await
    }

    async fn bind_object(&self, b: Value) -> Result<Response<ResBody>> {
        let name = meta_str(&b, "name").to_string();
        self.bind_pod(&name, &b).await
    }

    async fn bind_pod(&self, pod: &str, b: &Value) -> Result<Response<ResBody>> {
        let node = b.pointer("/target/name").and_then(Value::as_str).unwrap_or("").to_string();
        if node.is_empty() {
            return Err(ApiError::invalid(
                "",
                "Binding",
                pod,
                vec![api::StatusCause { reason: "FieldValueRequired".into(), message: "Required value".into(), field: "target.name".into() }],
            ));
        }
        let key = format!("/registry/pods/{}/{}", self.info.namespace, pod);
        let pods = Ctx {
            srv: self.srv.clone(),
            def: self.srv.registry().get("", "v1", "pods").cloned().ok_or_else(ApiError::not_found_path)?,
            info: RequestInfo { name: pod.into(), subresource: "binding".into(), ..self.info.clone() },
            query: self.query.clone(),
            user: self.user.clone(),
            format: Format::Json,
            shared_storage: false,
            warnings: Default::default(),
            duplicates: Default::default(),
            user_agent: self.user_agent.clone(),
            apply: false,
        };
        pods.guaranteed_update(&key, |cur| {
            if meta(cur).is_some_and(|m| m.contains_key("deletionTimestamp")) {
                return Err(ApiError::conflict("", "pods", pod, "pod is being deleted, cannot be assigned to a host"));
            }
            if let Some(n) = cur.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
                return Err(ApiError::conflict("", "pods", pod, &format!("pod {pod} is already assigned to node \"{n}\"")));
            }
            let mut new = cur.clone();
            new["spec"]["nodeName"] = json!(node);
            let conds = new["status"]["conditions"].as_array().cloned().unwrap_or_default();
            let mut conds: Vec<Value> = conds.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
            conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now()}));
            new["status"]["conditions"] = json!(conds);
            Ok(new)
        })
        .await?;
        Ok(output::value_response(StatusCode::CREATED, &api::status_success(None)))
    }

    /// pods/eviction: a delete that honours the pod's PodDisruptionBudget,
    /// as upstream's eviction REST: while the budget allows no disruption
    /// the answer is 429 and the pod stays; otherwise the budget's
    /// `disruptionsAllowed` goes down by one (the pod noted in
    /// `disruptedPods`) and the pod is deleted with the eviction's options.
    async fn evict(&self, content_type: &str, body: &[u8]) -> Result<Response<ResBody>> {
        let eviction = if body.iter().all(u8::is_ascii_whitespace) { json!({}) } else { decode_body(content_type, body)? };
        let opts_body = eviction.get("deleteOptions").map(|d| serde_json::to_vec(d).unwrap_or_default()).unwrap_or_default();
        let opts = DeleteOptions::parse(&self.query, "application/json", &opts_body)?;
        let (ns, name) = (self.info.namespace.clone(), self.info.name.clone());
        let pod = self.inner().cache.resource("pods").get(&self.key()).ok_or_else(|| ApiError::not_found("", "pods", &name))?.value();
        let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
        // Pods that do not count towards a budget go at once.
        let ignores_budget = matches!(phase, "Succeeded" | "Failed" | "Pending" | "") || pod.pointer("/metadata/deletionTimestamp").is_some();
        if !ignores_budget {
            let labels = pod.pointer("/metadata/labels").and_then(Value::as_object).cloned().unwrap_or_default();
            const PDBS: &str = "poddisruptionbudgets.policy";
            let (pdbs, _) = self.inner().cache.resource(PDBS).list(&format!("/registry/{PDBS}/{ns}/"), self.inner().cache.revision());
            let matching: Vec<Value> = pdbs
                .iter()
                .map(|c| c.value())
                .filter(|b| {
                    b.pointer("/spec/selector")
                        .filter(|s| s.is_object())
                        .and_then(|s| api::selector::LabelSelector::from_json(s).ok())
                        .is_some_and(|sel| sel.matches(&labels))
                })
                .collect();
            if matching.len() > 1 {
                return Err(ApiError::internal("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."));
            }
            if let Some(pdb) = matching.first() {
                let ready = pod
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                self.take_disruption(pdb, &name, ready).await?;
            }
        }
        if opts.dry_run || self.dry_run() {
            return Ok(output::value_response(StatusCode::CREATED, &api::status_success(None)));
        }
        self.delete_one(&self.key(), &name, &opts).await?;
        Ok(output::value_response(StatusCode::CREATED, &api::status_success(None)))
    }

    /// Spends one of the budget's allowed disruptions on `pod`, or says why not.
    async fn take_disruption(&self, pdb: &Value, pod: &str, ready: bool) -> Result<()> {
        let name = meta_str(pdb, "name").to_string();
        let refuse = |cause: String| {
            ApiError::new(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
                Some(json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]})),
            )
        };
        let needs = |st: &Value| {
            let int = |k: &str| st.get(k).and_then(Value::as_i64).unwrap_or(0);
            format!("The disruption budget {name} needs {} healthy pods and has {} currently", int("desiredHealthy"), int("currentHealthy"))
        };
        if !ready {
            // An unready pod does not lower the healthy count: it may go while
            // the budget is met (IfHealthyBudget) or always (AlwaysAllow).
            let st = pdb.get("status").cloned().unwrap_or_default();
            let int = |k: &str| st.get(k).and_then(Value::as_i64).unwrap_or(0);
            let always = pdb.pointer("/spec/unhealthyPodEvictionPolicy").and_then(Value::as_str) == Some("AlwaysAllow");
            return if always || int("currentHealthy") >= int("desiredHealthy") { Ok(()) } else { Err(refuse(needs(&st))) };
        }
        let def = self.srv.registry().get("policy", "v1", "poddisruptionbudgets").cloned().ok_or_else(ApiError::not_found_path)?;
        let ctx = system_ctx(&self.srv, def, &self.info.namespace, &name, "status", "update");
        let key = ctx.key();
        let now = now();
        ctx.guaranteed_update(&key, |cur| {
            let st = cur.get("status").cloned().unwrap_or_else(|| json!({}));
            let int = |k: &str| st.get(k).and_then(Value::as_i64).unwrap_or(0);
            let generation = cur.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
            if int("observedGeneration") < generation {
                return Err(refuse(format!("The disruption budget {name} is still being processed by the server.")));
            }
            if int("disruptionsAllowed") <= 0 {
                return Err(refuse(needs(&st)));
            }
            let mut new = cur.clone();
            new["status"]["disruptionsAllowed"] = json!(int("disruptionsAllowed") - 1);
            if !new["status"]["disruptedPods"].is_object() {
                new["status"]["disruptedPods"] = json!({});
            }
            new["status"]["disruptedPods"][pod] = json!(now);
            Ok(new)
        })
        .await?;
        Ok(())
    }

    /// ResourceQuota admission for a new object: what it counts must fit
    /// every quota of its namespace (`status.hard` against `status.used`),
    /// and is then added to their `status.used` before the object is
    /// stored, so concurrent creates cannot overshoot. The quota controller
    /// recounts later (deletions give usage back there).
    async fn charge_quota(&self, obj: &Value, name: &str) -> Result<()> {
        use api::quantity::Quantity;
        const QUOTAS: &str = "resourcequotas";
        let ns = self.info.namespace.clone();
        let (quotas, _) = self.inner().cache.resource(QUOTAS).list(&format!("/registry/{QUOTAS}/{ns}/"), self.inner().cache.revision());
        if quotas.is_empty() {
            return Ok(());
        }
        let usage = api::quota::usage(&self.def.plural, &self.def.group, obj);
        let forbidden = |reason: String| ApiError::forbidden(&self.def.group, &self.def.plural, name, &reason);
        let def = self.srv.registry().get("", "v1", QUOTAS).cloned().ok_or_else(ApiError::not_found_path)?;
        let parse = |v: &Value| -> std::collections::BTreeMap<String, Quantity> {
            v.as_object().into_iter().flatten().filter_map(|(k, v)| Some((k.clone(), v.as_str().and_then(|s| Quantity::parse(s).ok())?))).collect()
        };
        for quota in quotas {
            let qname = quota.name.clone();
            let ctx = system_ctx(&self.srv, def.clone(), &ns, &qname, "status", "update");
            let key = ctx.key();
            let charge = |cur: &Value| -> Result<Option<Value>> {
                let hard = parse(cur.pointer("/status/hard").unwrap_or(&Value::Null));
                let used = parse(cur.pointer("/status/used").unwrap_or(&Value::Null));
                let delta: Vec<(&String, &Quantity)> = usage.iter().filter(|(k, _)| hard.contains_key(*k)).collect();
                if self.def.group.is_empty() && self.def.plural == "pods" && !usage.is_empty() {
                    let missing = api::quota::missing_compute(obj, &hard);
                    if !missing.is_empty() {
                        return Err(forbidden(format!("failed quota: {qname}: must specify {}", missing.join("; "))));
                    }
                }
                if delta.is_empty() {
                    return Ok(None);
                }
                let mut new_used = used.clone();
                let mut over = Vec::new();
                for (k, d) in &delta {
                    let total = used.get(*k).copied().unwrap_or_else(Quantity::zero).add(d);
                    if total.value_cmp(&hard[*k]).is_gt() {
                        over.push(*k);
                    }
                    new_used.insert((*k).clone(), total);
                }
                if !over.is_empty() {
                    let list = |m: &dyn Fn(&String) -> String| over.iter().map(|k| format!("{k}={}", m(k))).collect::<Vec<_>>().join(",");
                    return Err(forbidden(format!(
                        "exceeded quota: {qname}, requested: {}, used: {}, limited: {}",
                        list(&|k| usage[k].canonical()),
                        list(&|k| used.get(k).copied().unwrap_or_else(Quantity::zero).canonical()),
                        list(&|k| hard[k].canonical()),
                    )));
                }
                let mut next = cur.clone();
                for (k, v) in new_used {
                    next["status"]["used"][k] = json!(v.canonical());
                }
                Ok(Some(next))
            };
            // Checked on what the cache holds, then charged on the stored quota.
            if charge(&quota.value())?.is_none() || self.dry_run() {
                continue;
            }
            ctx.guaranteed_update(&key, |cur| Ok(charge(cur)?.unwrap_or_else(|| cur.clone()))).await?;
        }
        Ok(())
    }

    /// Priority admission: `spec.priority` (and `preemptionPolicy`) come from
    /// the pod's PriorityClass, the global default class, or 0.
    fn admit_priority(&self, pod: &mut Value) -> Result<()> {
        let name = meta_str(pod, "name").to_string();
        let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return Ok(()) };
        let (classes, _) =
            self.inner().cache.resource(PRIORITY_CLASSES).list(&format!("/registry/{PRIORITY_CLASSES}/"), self.inner().cache.revision());
        let wanted = spec.get("priorityClassName").and_then(Value::as_str).filter(|n| !n.is_empty()).map(str::to_string);
        let class = match &wanted {
            Some(c) => Some(
                classes
                    .iter()
                    .find(|pc| &pc.name == c)
                    .map(|pc| pc.value())
                    .ok_or_else(|| ApiError::forbidden("", "pods", &name, &format!("no PriorityClass with name {c} was found")))?,
            ),
            None => classes.iter().map(|pc| pc.value()).find(|pc| pc["globalDefault"] == true),
        };
        let (value, policy) = match &class {
            Some(pc) => (pc["value"].as_i64().unwrap_or(0), pc["preemptionPolicy"].as_str().unwrap_or("PreemptLowerPriority").to_string()),
            None => (0, "PreemptLowerPriority".to_string()),
        };
        if let Some(given) = spec.get("priority").and_then(Value::as_i64)
            && given != value
        {
            let reason = format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
            );
            return Err(ApiError::forbidden("", "pods", &name, &reason));
        }
        if wanted.is_none()
            && let Some(pc) = &class
        {
            spec.insert("priorityClassName".into(), json!(meta_str(pc, "name")));
        }
        spec.insert("priority".into(), json!(value));
        if !spec.get("preemptionPolicy").is_some_and(Value::is_string) {
            spec.insert("preemptionPolicy".into(), json!(policy));
        }
        Ok(())
    }

    /// ServiceAccount admission: the pod's account must exist (a new
    /// namespace's `default` one is waited for briefly, as the controller
    /// makes it within moments), and its token volume is mounted.
    async fn admit_service_account(&self, pod: &mut Value) -> Result<()> {
        if pod.pointer("/metadata/annotations/kubernetes.io~1config.mirror").is_some() {
            return Ok(());
        }
        let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return Ok(()) };
        let account = [spec.get("serviceAccountName"), spec.get("serviceAccount")]
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|n| !n.is_empty())
            .unwrap_or("default")
            .to_string();
        spec.insert("serviceAccountName".into(), json!(account));
        spec.insert("serviceAccount".into(), json!(account));
        let ns = &self.info.namespace;
        let cache = self.inner().cache.resource("serviceaccounts");
        let key = format!("/registry/serviceaccounts/{ns}/{account}");
        let mut sa = cache.get(&key);
        for _ in 0..40 {
            if sa.is_some() || account != "default" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            sa = cache.get(&key);
        }
        let Some(sa) = sa else {
            let reason = format!("error looking up service account {ns}/{account}: serviceaccount \"{account}\" not found");
            return Err(ApiError::forbidden("", "pods", meta_str(pod, "name"), &reason));
        };
        crate::tokens::mount_service_account(pod, &sa.value(), &random_suffix());
        Ok(())
    }

    /// serviceaccounts/token: a signed token for the account, optionally
    /// bound to a pod, secret or node, valid for `expirationSeconds`.
    fn token_request(&self, content_type: &str, body: &[u8]) -> Result<Response<ResBody>> {
        use crate::tokens::{Claims, DEFAULT_EXPIRATION, ISSUER, MIN_EXPIRATION};
        let mut tr = decode_body(content_type, body)?;
        self.check_type(&mut tr)?;
        let (ns, name) = (self.info.namespace.clone(), self.info.name.clone());
        let sa = self.inner().cache.resource("serviceaccounts").get(&self.key()).ok_or_else(|| ApiError::not_found("", "serviceaccounts", &name))?;
        let account_uid = meta_str(&sa.value(), "uid").to_string();
        let spec = tr.get("spec").cloned().unwrap_or_else(|| json!({}));
        let exp = spec.get("expirationSeconds").and_then(Value::as_i64).unwrap_or(DEFAULT_EXPIRATION);
        let mut causes = Vec::new();
        if exp < MIN_EXPIRATION {
            causes.push(api::status::invalid_value("spec.expirationSeconds", &json!(exp), "may not specify a duration less than 10 minutes"));
        } else if exp > 1 << 32 {
            causes.push(api::status::invalid_value("spec.expirationSeconds", &json!(exp), "may not specify a duration larger than 2^32 seconds"));
        }
        let mut bound = None;
        if let Some(r) = spec.get("boundObjectRef").filter(|r| r.is_object()) {
            let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let (kind, bname, buid) = (s("kind"), s("name"), s("uid"));
            let resource = match kind.as_str() {
                "Pod" => Some(("pods", format!("/registry/pods/{ns}/{bname}"))),
                "Secret" => Some(("secrets", format!("/registry/secrets/{ns}/{bname}"))),
                "Node" => Some(("nodes", format!("/registry/nodes/{bname}"))),
                _ => {
                    causes.push(api::status::not_supported("spec.boundObjectRef.kind", &json!(kind), &["Pod", "Secret", "Node"]));
                    None
                }
            };
            if !matches!(s("apiVersion").as_str(), "v1" | "") {
                causes.push(api::status::not_supported("spec.boundObjectRef.apiVersion", &json!(s("apiVersion")), &["v1"]));
            }
            if causes.is_empty()
                && let Some((resource, key)) = resource
            {
                let obj = self.inner().cache.resource(resource).get(&key).ok_or_else(|| ApiError::not_found("", resource, &bname))?;
                let uid = meta_str(&obj.value(), "uid").to_string();
                if !buid.is_empty() && buid != uid {
                    let msg = format!(
                        "the UID in the bound object reference ({buid}) does not match the UID in record. The object might have been deleted and then recreated"
                    );
                    return Err(ApiError::conflict("", resource, &bname, &msg));
                }
                bound = Some((kind, bname, uid));
            }
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid("authentication.k8s.io", "TokenRequest", &name, causes));
        }
        let audiences: Vec<String> =
            spec.get("audiences").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect();
        let audiences = if audiences.is_empty() { vec![ISSUER.to_string()] } else { audiences };
        let expires = time::OffsetDateTime::now_utc() + time::Duration::seconds(exp);
        let claims = Claims {
            namespace: ns.clone(),
            account: name.clone(),
            account_uid,
            bound,
            audiences: audiences.clone(),
            jti: uuid::Uuid::new_v4().to_string(),
            exp: expires.unix_timestamp(),
        };
        let token = if self.dry_run() { String::new() } else { self.inner().signer.read().unwrap().sign(&claims) };
        let m = meta_mut(&mut tr);
        m.insert("name".into(), json!(name));
        m.insert("namespace".into(), json!(ns));
        m.insert("creationTimestamp".into(), json!(now()));
        tr["spec"] = spec;
        tr["spec"]["audiences"] = json!(audiences);
        tr["spec"]["expirationSeconds"] = json!(exp);
        if tr["spec"].get("boundObjectRef").is_none() {
            tr["spec"]["boundObjectRef"] = Value::Null;
        }
        let expiration = expires.replace_nanosecond(0).unwrap_or(expires).format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        tr["status"] = json!({"token": token, "expirationTimestamp": expiration});
        self.value_response(StatusCode::CREATED, &tr)
    }

    /// TokenReview: who a bearer token belongs to, for the audiences asked.
    fn token_review(&self, review: &Value) -> Value {
        use crate::tokens::ISSUER;
        let token = review.pointer("/spec/token").and_then(Value::as_str).unwrap_or("");
        let asked: Vec<String> =
            review.pointer("/spec/audiences").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect();
        let audiences = if asked.is_empty() { vec![ISSUER.to_string()] } else { asked };
        let user_json = |u: &User, uid: &str, extra: Value| json!({"username": u.name, "uid": uid, "groups": u.groups, "extra": extra});
        if let Some(u) = self.inner().tokens.read().unwrap().get(token) {
            return json!({"authenticated": true, "user": user_json(u, "", json!({})), "audiences": [ISSUER]});
        }
        match self.srv.validate_token(token, &audiences) {
            Ok(c) => {
                let mut extra = json!({"authentication.kubernetes.io/credential-id": [format!("JTI={}", c.jti)]});
                if let Some((_, name, uid)) = c.bound.as_ref().filter(|b| b.0 == "Pod") {
                    extra["authentication.kubernetes.io/pod-name"] = json!([name]);
                    extra["authentication.kubernetes.io/pod-uid"] = json!([uid]);
                }
                let matched: Vec<&String> = audiences.iter().filter(|a| c.audiences.contains(a)).collect();
                json!({"authenticated": true, "user": user_json(&c.user(), &c.account_uid, extra), "audiences": matched})
            }
            Err(e) => json!({"user": {}, "error": format!("[invalid bearer token, {e}]")}),
        }
    }

    /// Create-only review resources answer with a computed status and store nothing.
    fn review(&self, mut obj: Value) -> Result<Response<ResBody>> {
        let groups: Vec<Value> = self.user.groups.iter().map(|g| json!(g)).collect();
        let status = match self.def.kind.as_str() {
            "SelfSubjectReview" => json!({"userInfo": {"username": self.user.name, "groups": groups}}),
            "SelfSubjectAccessReview" | "SubjectAccessReview" | "LocalSubjectAccessReview" => {
                // Authorization is not enforced yet: every authenticated user is allowed.
                json!({"allowed": true, "reason": "rkube does not enforce RBAC yet"})
            }
            "SelfSubjectRulesReview" => json!({
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": false,
            }),
            "TokenReview" => self.token_review(&obj),
            _ => json!({}),
        };
        obj["status"] = status;
        meta_mut(&mut obj).insert("creationTimestamp".into(), Value::Null);
        self.value_response(StatusCode::CREATED, &obj)
    }
}

enum WriteError {
    Conflict,
    Api(ApiError),
}

impl From<ApiError> for WriteError {
    fn from(e: ApiError) -> Self {
        WriteError::Api(e)
    }
}

fn invalid_list_options(field: &str, msg: &str) -> ApiError {
    ApiError::invalid(
        "meta.k8s.io",
        "ListOptions",
        "",
        vec![api::StatusCause { reason: "FieldValueForbidden".into(), message: format!("Forbidden: {msg}"), field: field.into() }],
    )
}

fn with_rv(mut v: Value, rev: Revision) -> Value {
    meta_mut(&mut v).insert("resourceVersion".into(), json!(rev.to_string()));
    v
}

/// Whether anything but metadata and status (what a generation counts) differs.
fn spec_differs(a: &Value, b: &Value) -> bool {
    fn counted(v: &Value) -> Vec<(&String, &Value)> {
        v.as_object().into_iter().flatten().filter(|(k, _)| *k != "metadata" && *k != "status").collect()
    }
    let (a, b) = (counted(a), counted(b));
    a.len() != b.len() || a.iter().any(|(k, v)| b.iter().find(|(bk, _)| bk == k).is_none_or(|(_, bv)| bv != v))
}

/// Whether `a` and `b` are the same object, their resourceVersions aside.
fn eq_but_resource_version(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return a == b };
    let fields_eq = |a: &serde_json::Map<String, Value>, b: &serde_json::Map<String, Value>, skip: &str| {
        let count = |m: &serde_json::Map<String, Value>| m.len() - usize::from(m.contains_key(skip));
        count(a) == count(b) && a.iter().filter(|(k, _)| *k != skip).all(|(k, v)| b.get(k) == Some(v))
    };
    let metas_eq = match (a.get("metadata").and_then(Value::as_object), b.get("metadata").and_then(Value::as_object)) {
        (Some(am), Some(bm)) => fields_eq(am, bm, "resourceVersion"),
        (am, bm) => am == bm && a.get("metadata") == b.get("metadata"),
    };
    metas_eq && fields_eq(a, b, "metadata")
}

/// The stored encoding: no resourceVersion (the store's revision is the truth).
fn encode_stored(obj: &Value) -> Result<Bytes> {
    let bytes = if meta(obj).is_some_and(|m| m.contains_key("resourceVersion")) {
        let mut v = obj.clone();
        meta_mut(&mut v).remove("resourceVersion");
        serde_json::to_vec(&v)
    } else {
        serde_json::to_vec(obj)
    };
    let bytes = bytes.map_err(|e| ApiError::internal(e.to_string()))?;
    if bytes.len() > MAX_OBJECT_BYTES {
        return Err(ApiError::too_large(format!("object is larger than the maximum of {MAX_OBJECT_BYTES} bytes")));
    }
    Ok(Bytes::from(bytes))
}

fn parse_rv(rv: &str) -> Result<Revision> {
    rv.parse::<Revision>().ok().filter(|r| *r >= 0).ok_or_else(|| ApiError::bad_request(format!("invalid resource version \"{rv}\"")))
}

fn encode_continue(rev: Revision, start: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": rev, "start": start});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(Revision, String)> {
    let bad = |why: &str| ApiError::bad_request(format!("continue key is not valid: {why}"));
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| bad("incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad("incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))?;
    if v["v"] != "meta.k8s.io/v1" {
        return Err(bad("server does not recognize this encoded version"));
    }
    let rv = v["rv"].as_i64().filter(|r| *r > 0).ok_or_else(|| bad("incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))?;
    let start = v["start"].as_str().ok_or_else(|| bad("missing start key"))?;
    if start.contains("..") || start.starts_with('/') {
        return Err(bad("path traversal attempt"));
    }
    Ok((rv, start.to_string()))
}

/// An object read straight from the store, shaped as the cache shapes it.
fn cached_from_kv(kv: &KeyValue) -> Option<Cached> {
    Cached::from_stored(&kv.key, &kv.value, kv.mod_revision)
}

/// Label and field selectors of a list or watch.
struct Filter {
    def: Arc<ResourceDef>,
    label: LabelSelector,
    field: FieldSelector,
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.label.is_empty() && self.field.is_empty()
    }

    fn matches(&self, c: &Cached) -> bool {
        if !self.label.matches(&c.labels) {
            return false;
        }
        if self.field.is_empty() {
            return true;
        }
        // Name and namespace are known without decoding the object.
        let only_meta = self.field.fields().all(|f| f == "metadata.name" || f == "metadata.namespace");
        if only_meta {
            return self.field.matches(|f| Some(if f == "metadata.name" { c.name.clone() } else { c.namespace.clone() }));
        }
        // Only the parts the selector reads are decoded (resources stored in
        // another shape than served are converted whole).
        let v = if schema::hooks::converts(&self.def) {
            let mut v = c.value();
            schema::hooks::stored_to_served(&self.def, &mut v);
            v
        } else {
            self.def.selected_parts(&c.bytes, self.field.fields()).unwrap_or(Value::Null)
        };
        self.field.matches(|f| self.def.field_value(&v, f))
    }
}

// ---- scale ----

/// The Scale (autoscaling/v1) of an object: built-in kinds keep replicas at
/// spec.replicas and status.replicas; custom resources say where in their CRD.
fn scale_of(def: &ResourceDef, obj: &Value) -> Result<Value> {
    let custom = def.custom.as_ref().and_then(|c| c.scale.as_ref());
    let (replicas, status_replicas, selector) = match custom {
        Some(p) => (
            schema::crd::read_path(obj, &p.spec_replicas).and_then(Value::as_i64).unwrap_or(0),
            schema::crd::read_path(obj, &p.status_replicas).and_then(Value::as_i64).unwrap_or(0),
            p.label_selector.as_deref().and_then(|l| schema::crd::read_path(obj, l)).and_then(Value::as_str).unwrap_or("").to_string(),
        ),
        None => {
            let selector = match obj.pointer("/spec/selector") {
                Some(s) if s.get("matchLabels").is_some() || s.get("matchExpressions").is_some() => {
                    LabelSelector::from_json(s).map(|l| l.to_string()).unwrap_or_default()
                }
                // ReplicationControllers use a plain map as selector.
                Some(Value::Object(m)) => m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(","),
                _ => String::new(),
            };
            (
                obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1),
                obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
                selector,
            )
        }
    };
    let m = meta(obj).cloned().unwrap_or_default();
    let mut sm = Map::new();
    for f in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if let Some(v) = m.get(f) {
            sm.insert(f.into(), v.clone());
        }
    }
    let mut status = json!({"replicas": status_replicas});
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": sm,
        "spec": {"replicas": replicas},
        "status": status,
    }))
}

/// `cur` with the replicas of `scale`.
fn apply_scale(def: &ResourceDef, cur: &Value, scale: &Value) -> Result<Value> {
    let replicas = scale.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
    if replicas < 0 {
        return Err(ApiError::invalid(
            "autoscaling",
            "Scale",
            meta_str(cur, "name"),
            vec![api::StatusCause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                field: "spec.replicas".into(),
            }],
        ));
    }
    let mut new = cur.clone();
    match def.custom.as_ref().and_then(|c| c.scale.as_ref()) {
        Some(p) => schema::crd::write_path(&mut new, &p.spec_replicas, json!(replicas)),
        None => new["spec"]["replicas"] = json!(replicas),
    }
    Ok(new)
}

fn output_scale(def: &ResourceDef, obj: &Value) -> Result<Response<ResBody>> {
    Ok(output::value_response(StatusCode::OK, &scale_of(def, obj)?))
}

// ---- watch streaming ----

/// A response body fed by a channel (watch streams).
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

struct Watcher {
    def: Arc<ResourceDef>,
    format: Format,
    include: IncludeObject,
    filter: Filter,
    prefix: String,
    shared_storage: bool,
    headers_sent: bool,
    /// Revision of the newest event sent.
    last: Revision,
    tx: mpsc::Sender<Bytes>,
    /// Who watches (user and agent), for the log.
    who: String,
}

impl Watcher {
    async fn run(
        mut self,
        sub: crate::cache::Subscription,
        cache: Arc<crate::cache::WatchCache>,
        initial_end: bool,
        bookmarks: bool,
        timeout: Duration,
    ) {
        let crate::cache::Subscription { initial, replay, rev, mut rx } = sub;
        for obj in initial {
            if self.filter.matches(&obj) && !self.send("ADDED", &obj).await {
                return;
            }
        }
        if initial_end && !self.bookmark(rev, true).await {
            return;
        }
        for ev in replay {
            if !self.event(&ev).await {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        tick.tick().await;
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(ev) => if !self.event(&ev).await { return },
                    // Fell behind the bounded buffer, or the cache went away: end
                    // the watch; the client resumes or relists.
                    Err(e) => {
                        if let broadcast::error::RecvError::Lagged(n) = e {
                            tracing::info!(resource = %self.def.plural, missed = n, who = %self.who, "closing a watch that fell behind");
                        }
                        return;
                    }
                },
                _ = &mut deadline => return,
                _ = tick.tick(), if bookmarks => {
                    // Every event up to the cache revision read before draining is
                    // in the channel already, so after the drain it has been sent.
                    let global = cache.revision();
                    loop {
                        match rx.try_recv() {
                            Ok(ev) => if !self.event(&ev).await { return },
                            Err(broadcast::error::TryRecvError::Empty) => break,
                            Err(_) => return,
                        }
                    }
                    let r = global.max(self.last);
                    if !self.bookmark(r, false).await { return }
                }
                _ = self.tx.closed() => return,
            }
        }
    }

    async fn event(&mut self, ev: &CacheEvent) -> bool {
        if !ev.obj.key.starts_with(&self.prefix) {
            return true;
        }
        let now = self.filter.matches(&ev.obj);
        let before = ev.prev.as_ref().is_some_and(|p| self.filter.matches(p));
        let typ = match ev.typ {
            EventType::Added if now => "ADDED",
            EventType::Modified => match (before, now) {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                _ => return true,
            },
            EventType::Deleted if now || before => "DELETED",
            _ => return true,
        };
        self.last = ev.obj.rev;
        self.send(typ, &ev.obj).await
    }

    async fn send(&mut self, typ: &str, obj: &Cached) -> bool {
        let line = match self.format {
            Format::Json | Format::Yaml => event_line(typ, &served_bytes(&self.def, self.shared_storage, obj)),
            Format::Table { v1beta1 } => {
                let bytes = served_bytes(&self.def, self.shared_storage, obj);
                let t =
                    output::table(&self.def, &[&bytes], &json!({"resourceVersion": obj.rev.to_string()}), self.include, !self.headers_sent, v1beta1);
                self.headers_sent = true;
                event_line(typ, &t)
            }
            Format::Meta { v1beta1 } => event_line(typ, &output::partial(&served_bytes(&self.def, self.shared_storage, obj), v1beta1)),
        };
        self.tx.send(line).await.is_ok()
    }

    async fn bookmark(&mut self, rev: Revision, initial_end: bool) -> bool {
        let mut m = json!({"resourceVersion": rev.to_string(), "creationTimestamp": null});
        if initial_end {
            m["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let (kind, av) = match self.format {
            Format::Meta { v1beta1 } => {
                ("PartialObjectMetadata".to_string(), if v1beta1 { "meta.k8s.io/v1beta1" } else { "meta.k8s.io/v1" }.to_string())
            }
            _ => (self.def.kind.clone(), self.def.api_version()),
        };
        let ev = json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": av, "metadata": m}});
        self.last = self.last.max(rev);
        self.tx.send(Bytes::from(format!("{ev}\n"))).await.is_ok()
    }
}

/// One line of a watch stream: `{"type":…,"object":…}` around an object's JSON.
fn event_line(typ: &str, object: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object.len() + 32);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(typ.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

/// Creates a namespace if it does not exist (system namespaces at start-up).
/// The server's own writes (the CRD controller) go through the same path
/// as every client's, as the `system:apiserver` user.
fn system_ctx(srv: &ApiServer, def: Arc<ResourceDef>, namespace: &str, name: &str, subresource: &str, verb: &str) -> Ctx {
    let info = RequestInfo {
        is_resource: true,
        verb: verb.into(),
        group: def.group.clone(),
        version: def.version.clone(),
        namespace: namespace.into(),
        resource: def.plural.clone(),
        subresource: subresource.into(),
        name: name.into(),
        ..Default::default()
    };
    let query = [("fieldManager".to_string(), "rkube-apiserver".to_string())].into();
    Ctx {
        srv: srv.clone(),
        shared_storage: srv.registry().defs.iter().filter(|d| d.storage == def.storage).count() > 1,
        def,
        info,
        query,
        user: User::new("system:apiserver", &["system:masters"]),
        format: Format::Json,
        warnings: Default::default(),
        duplicates: Default::default(),
        user_agent: "rkube-apiserver".into(),
        apply: false,
    }
}

/// Changes one object with `f` (retrying on conflicts) as the server itself.
pub(crate) async fn system_update(
    srv: &ApiServer,
    def: Arc<ResourceDef>,
    name: &str,
    subresource: &str,
    f: impl FnMut(&Value) -> Result<Value>,
) -> Result<Value> {
    let ctx = system_ctx(srv, def, "", name, subresource, "update");
    let key = ctx.key();
    ctx.guaranteed_update(&key, f).await
}

/// Deletes one object as the server itself (its finalizers still apply).
pub(crate) async fn system_delete(srv: &ApiServer, def: Arc<ResourceDef>, namespace: &str, name: &str) -> Result<()> {
    let ctx = system_ctx(srv, def, namespace, name, "", "delete");
    let key = ctx.key();
    match ctx.delete_one(&key, name, &DeleteOptions::default()).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Where PriorityClasses are stored.
const PRIORITY_CLASSES: &str = "priorityclasses.scheduling.k8s.io";

/// The two classes every cluster has (upstream's scheduling bootstrap).
pub async fn ensure_system_priority_classes(inner: &Inner) -> store::Result<()> {
    for (name, value, what) in [
        ("system-node-critical", 2_000_001_000, "Used for system critical pods that must not be moved from their current node."),
        (
            "system-cluster-critical",
            2_000_000_000,
            "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
        ),
    ] {
        let key = format!("/registry/{PRIORITY_CLASSES}/{name}");
        if inner.store.get(&key).await?.is_some() {
            continue;
        }
        let pc = json!({
            "kind": "PriorityClass",
            "apiVersion": "scheduling.k8s.io/v1",
            "metadata": {"name": name, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": now()},
            "value": value,
            "description": what,
            "preemptionPolicy": "PreemptLowerPriority",
        });
        match inner.store.create(key, Bytes::from(serde_json::to_vec(&pc).unwrap())).await {
            Ok(_) | Err(store::Error::AlreadyExists) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub async fn ensure_namespace(inner: &Inner, name: &str) -> store::Result<()> {
    let key = format!("/registry/namespaces/{name}");
    if inner.store.get(&key).await?.is_some() {
        return Ok(());
    }
    let ns = json!({
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": now(),
            "labels": {"kubernetes.io/metadata.name": name},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    });
    match inner.store.create(key, Bytes::from(serde_json::to_vec(&ns).unwrap())).await {
        Ok(_) | Err(store::Error::AlreadyExists) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "ns/pod-7");
        assert_eq!(decode_continue(&t).unwrap(), (42, "ns/pod-7".to_string()));
        assert_eq!(decode_continue("!!!").unwrap_err().code, 400);
        let evil = base64::engine::general_purpose::URL_SAFE.encode(r#"{"v":"meta.k8s.io/v1","rv":3,"start":"../x"}"#);
        assert_eq!(decode_continue(&evil).unwrap_err().code, 400);
    }

    #[test]
    fn generate_name_suffix() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|c| b"bcdfghjklmnpqrstvwxz2456789".contains(&c)));
    }
}
