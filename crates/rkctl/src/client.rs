//! The connection to the cluster: kubeconfig loading as kubectl does it
//! (`--kubeconfig`, else every file in `KUBECONFIG` merged, else
//! `~/.kube/config`; `--context`, `--cluster`, `--user`), the namespace to
//! use, raw JSON requests, and errors printed the way kubectl prints them.

use std::fmt;
use std::path::PathBuf;

use futures::AsyncBufRead;
use http::{Method, Request};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

/// The media type that asks the server to render rows as kubectl shows them.
pub const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

#[derive(Debug)]
pub enum Error {
    Kube(kube::Error),
    Msg(String),
    /// Ends the program with this code and nothing more to say (the command
    /// already printed why).
    Exit(u8),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Kube(e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Msg(e.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Msg(e.to_string())
    }
}

/// Shorthand for a plain error message.
pub fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Msg(msg.into()))
}

impl Error {
    /// The server's `Status` when the error is one.
    pub fn status(&self) -> Option<&kube::core::Status> {
        match self {
            Error::Kube(kube::Error::Api(s)) => Some(s),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status().is_some_and(|s| s.code == 404)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.reason.is_empty() => write!(f, "Error from server: {}", s.message),
            Error::Kube(kube::Error::Api(s)) => write!(f, "Error from server ({}): {}", s.reason, s.message),
            Error::Kube(e @ (kube::Error::HyperError(_) | kube::Error::Service(_))) => {
                write!(f, "Unable to connect to the server: {}", source_chain(e))
            }
            Error::Kube(e) => write!(f, "error: {}", source_chain(e)),
            Error::Msg(m) => write!(f, "error: {m}"),
            Error::Exit(c) => write!(f, "exit status {c}"),
        }
    }
}

/// An error with its causes, because the top-level message of a transport
/// error ("client error (Connect)") says nothing useful on its own.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// The connection-related flags every command shares.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ConnFlags {
    /// Path to the kubeconfig file to use.
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The kubeconfig cluster to use.
    #[arg(long, global = true)]
    pub cluster: Option<String>,
    /// The kubeconfig user to use.
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// The namespace scope for this request.
    #[arg(short, long, global = true)]
    pub namespace: Option<String>,
}

impl ConnFlags {
    /// The kubeconfig as kubectl would assemble it.
    pub fn kubeconfig(&self) -> Result<Kubeconfig> {
        let kc = match &self.kubeconfig {
            Some(p) => Kubeconfig::read_from(p),
            None => Kubeconfig::read(),
        };
        kc.map_err(|e| Error::Msg(format!("loading the kubeconfig: {e}")))
    }

    pub async fn connect(&self) -> Result<Ctx> {
        let kc = self.kubeconfig()?;
        let opts = KubeConfigOptions { context: self.context.clone(), cluster: self.cluster.clone(), user: self.user.clone() };
        let cfg = kube::Config::from_custom_kubeconfig(kc, &opts).await.map_err(|e| Error::Msg(format!("{e}")))?;
        let namespace = self.namespace.clone().unwrap_or_else(|| cfg.default_namespace.clone());
        let client = kube::Client::try_from(cfg)?;
        Ok(Ctx { client, namespace })
    }
}

/// A connected client and the namespace commands default to.
#[derive(Clone)]
pub struct Ctx {
    pub client: kube::Client,
    pub namespace: String,
}

impl Ctx {
    fn request(method: Method, path: &str, accept: &str, content_type: Option<&str>, body: Vec<u8>) -> Result<Request<Vec<u8>>> {
        let mut b = Request::builder().method(method).uri(path).header(http::header::ACCEPT, accept);
        if let Some(ct) = content_type {
            b = b.header(http::header::CONTENT_TYPE, ct);
        }
        b.body(body).map_err(|e| Error::Msg(e.to_string()))
    }

    /// GETs `path` with the given Accept header.
    pub async fn get_text(&self, path: &str, accept: &str) -> Result<String> {
        Ok(self.client.request_text(Self::request(Method::GET, path, accept, None, Vec::new())?).await?)
    }

    /// GETs `path` with the given Accept header and parses the JSON answer.
    pub async fn get_as(&self, path: &str, accept: &str) -> Result<Value> {
        Ok(serde_json::from_str(&self.get_text(path, accept).await?)?)
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.get_as(path, "application/json").await
    }

    /// Sends a body (JSON, or a patch of the given content type).
    pub async fn send(&self, method: Method, path: &str, content_type: &str, body: &Value) -> Result<Value> {
        let req = Self::request(method, path, "application/json", Some(content_type), serde_json::to_vec(body)?)?;
        let text = self.client.request_text(req).await?;
        Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? })
    }

    pub async fn delete(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(Method::DELETE, path, "application/json", body).await
    }

    /// A streaming GET (watch, logs): the body as it arrives.
    pub async fn stream(&self, path: &str, accept: &str) -> Result<impl AsyncBufRead + Unpin + use<>> {
        let req = Self::request(Method::GET, path, accept, None, Vec::new())?;
        Ok(self.client.request_stream(req).await?)
    }
}

/// Percent-encodes a query parameter value (selectors contain `=`, `,`, `!`).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
