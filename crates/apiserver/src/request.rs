//! Turns a request path and method into a `RequestInfo`: the verb, group,
//! version, namespace, resource, name and subresource that authorization and
//! the generic handler work on (upstream's request-info rules).

use http::Method;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// True for `/api/...` and `/apis/...` resource paths.
    pub is_resource: bool,
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// "api" or "apis".
    pub prefix: String,
    pub group: String,
    pub version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// The path split into segments (for discovery and non-resource paths).
    pub parts: Vec<String>,
}

/// Parses a path and method as upstream's RequestInfoFactory does.
pub fn parse(method: &Method, path: &str, watch_param: bool) -> RequestInfo {
    let parts: Vec<String> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect();
    let mut info = RequestInfo { parts: parts.clone(), ..Default::default() };
    info.verb = method.as_str().to_ascii_lowercase();
    let Some(prefix) = parts.first() else { return info };
    if prefix != "api" && prefix != "apis" {
        return info;
    }
    info.prefix = prefix.clone();
    let mut rest: &[String] = &parts[1..];
    if prefix == "apis" {
        // /apis and /apis/{group} are discovery, not resources.
        if rest.len() < 2 {
            if let Some(g) = rest.first() {
                info.group = g.clone();
            }
            return info;
        }
        info.group = rest[0].clone();
        rest = &rest[1..];
    }
    let Some(version) = rest.first() else { return info };
    info.version = version.clone();
    rest = &rest[1..];
    if rest.is_empty() {
        return info;
    }
    info.is_resource = true;
    // "watch" as a path segment is the deprecated form of ?watch=true.
    let mut path_watch = false;
    if rest[0] == "watch" {
        path_watch = true;
        rest = &rest[1..];
    }
    if rest.first().map(String::as_str) == Some("namespaces") {
        if rest.len() > 1 {
            info.namespace = rest[1].clone();
            if rest.len() > 2 {
                rest = &rest[2..];
            } else {
                // /namespaces/{name} addresses the namespace object itself.
                info.resource = "namespaces".into();
                info.name = rest[1].clone();
                info.namespace.clear();
                rest = &[];
            }
        } else {
            info.resource = "namespaces".into();
            rest = &[];
        }
    }
    if !rest.is_empty() {
        info.resource = rest[0].clone();
        if let Some(n) = rest.get(1) {
            info.name = n.clone();
        }
        if let Some(s) = rest.get(2) {
            info.subresource = s.clone();
        }
    }
    // /namespaces/{name}/status and /finalize address the namespace itself.
    if (info.resource == "status" || info.resource == "finalize") && !info.namespace.is_empty() && info.name.is_empty() && info.subresource.is_empty()
    {
        info.subresource = std::mem::take(&mut info.resource);
        info.resource = "namespaces".into();
        info.name = std::mem::take(&mut info.namespace);
    }
    info.verb = match *method {
        Method::POST => "create",
        Method::GET | Method::HEAD => {
            if path_watch || watch_param {
                "watch"
            } else if info.name.is_empty() {
                "list"
            } else {
                "get"
            }
        }
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => {
            if info.name.is_empty() {
                "deletecollection"
            } else {
                "delete"
            }
        }
        _ => "unknown",
    }
    .to_string();
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(m: Method, path: &str) -> (String, String, String, String, String, String, String) {
        let i = parse(&m, path, false);
        (i.verb, i.group, i.version, i.namespace, i.resource, i.name, i.subresource)
    }

    #[test]
    fn paths() {
        let s = |x: &str| x.to_string();
        let cases = [
            (Method::GET, "/api/v1/pods", ("list", "", "v1", "", "pods", "", "")),
            (Method::GET, "/api/v1/namespaces/ns/pods/p", ("get", "", "v1", "ns", "pods", "p", "")),
            (Method::PUT, "/api/v1/namespaces/ns/pods/p/status", ("update", "", "v1", "ns", "pods", "p", "status")),
            (Method::GET, "/apis/apps/v1/namespaces/ns/deployments", ("list", "apps", "v1", "ns", "deployments", "", "")),
            (Method::POST, "/apis/apps/v1/namespaces/ns/deployments", ("create", "apps", "v1", "ns", "deployments", "", "")),
            (Method::DELETE, "/apis/apps/v1/namespaces/ns/deployments", ("deletecollection", "apps", "v1", "ns", "deployments", "", "")),
            (Method::GET, "/api/v1/namespaces", ("list", "", "v1", "", "namespaces", "", "")),
            (Method::GET, "/api/v1/namespaces/kube-system", ("get", "", "v1", "", "namespaces", "kube-system", "")),
            (Method::PUT, "/api/v1/namespaces/x/finalize", ("update", "", "v1", "", "namespaces", "x", "finalize")),
            (Method::GET, "/api/v1/watch/namespaces/ns/pods", ("watch", "", "v1", "ns", "pods", "", "")),
            (Method::GET, "/api/v1/nodes/n1", ("get", "", "v1", "", "nodes", "n1", "")),
        ];
        for (m, path, want) in cases {
            let want = (s(want.0), s(want.1), s(want.2), s(want.3), s(want.4), s(want.5), s(want.6));
            assert_eq!(p(m, path), want, "{path}");
        }
        assert!(!parse(&Method::GET, "/apis/apps", false).is_resource);
        assert!(!parse(&Method::GET, "/api/v1", false).is_resource);
        assert_eq!(parse(&Method::GET, "/api/v1/pods", true).verb, "watch");
    }
}
