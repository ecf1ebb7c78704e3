//! The registry of served resources and the discovery documents rendered from
//! it: `/api`, `/apis`, `/apis/{group}`, the per-version resource lists, and
//! aggregated discovery (`apidiscovery.k8s.io` v2 and v2beta1).

use std::collections::HashMap;
use std::sync::Arc;

use schema::ResourceDef;
use serde_json::{Value, json};

/// Sort key of a version: Kubernetes-like versions first (GA, then beta,
/// then alpha; higher numbers first), then the rest by name.
pub fn version_priority(v: &str) -> (u8, std::cmp::Reverse<u32>, std::cmp::Reverse<u32>, String) {
    use std::cmp::Reverse;
    let parse = || -> Option<(u8, u32, u32)> {
        let rest = v.strip_prefix('v')?;
        let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let major: u32 = rest[..end].parse().ok()?;
        let tail = &rest[end..];
        if tail.is_empty() {
            return Some((0, major, 0));
        }
        for (tier, word) in [(1, "beta"), (2, "alpha")] {
            if let Some(n) = tail.strip_prefix(word) {
                return Some((tier, major, n.parse().ok()?));
            }
        }
        None
    };
    match parse() {
        Some((tier, major, minor)) => (tier, Reverse(major), Reverse(minor), String::new()),
        None => (3, Reverse(0), Reverse(0), v.to_string()),
    }
}

/// Every served resource, looked up by group, version and plural.
pub struct Registry {
    /// Groups in discovery order, each with its versions (preferred first).
    pub groups: Vec<(String, Vec<String>)>,
    pub defs: Vec<Arc<ResourceDef>>,
    by_gvr: HashMap<(String, String, String), Arc<ResourceDef>>,
    /// The OpenAPI documents of exactly these resources.
    pub openapi: crate::openapi::OpenApiCache,
}

impl Registry {
    pub fn new(defs: Vec<ResourceDef>, group_order: Vec<(String, Vec<String>)>) -> Registry {
        let defs: Vec<Arc<ResourceDef>> = defs.into_iter().map(Arc::new).collect();
        let by_gvr = defs.iter().map(|d| ((d.group.clone(), d.version.clone(), d.plural.clone()), d.clone())).collect();
        Registry { groups: group_order, defs, by_gvr, openapi: Default::default() }
    }

    pub fn builtin() -> Registry {
        Registry::with_custom(Vec::new())
    }

    /// The built-in resources and `custom` ones (from CRDs), whose groups
    /// follow the built-in groups in name order, each group's versions in
    /// upstream's priority order (v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > others).
    pub fn with_custom(custom: Vec<ResourceDef>) -> Registry {
        // The core group is served under /api, ahead of the named groups.
        let mut order: Vec<(String, Vec<String>)> = vec![(String::new(), vec!["v1".into()])];
        order.extend(
            schema::builtin::group_order()
                .into_iter()
                .filter(|(g, _)| !g.is_empty())
                .map(|(g, vs)| (g.to_string(), vs.into_iter().map(str::to_string).collect())),
        );
        let mut groups: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for d in &custom {
            let vs = groups.entry(d.group.clone()).or_default();
            if !vs.contains(&d.version) {
                vs.push(d.version.clone());
            }
        }
        for (g, mut vs) in groups {
            vs.sort_by_key(|v| version_priority(v));
            order.push((g, vs));
        }
        let mut defs = schema::builtin::builtin();
        defs.extend(custom);
        Registry::new(defs, order)
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<ResourceDef>> {
        self.by_gvr.get(&(group.to_string(), version.to_string(), plural.to_string()))
    }

    fn versions(&self, group: &str) -> Option<&Vec<String>> {
        self.groups.iter().find(|(g, _)| g == group).map(|(_, v)| v)
    }

    pub fn serves_group_version(&self, group: &str, version: &str) -> bool {
        self.versions(group).is_some_and(|vs| vs.iter().any(|v| v == version))
    }

    fn in_gv<'a>(&'a self, group: &'a str, version: &'a str) -> impl Iterator<Item = &'a Arc<ResourceDef>> + 'a {
        self.defs.iter().filter(move |d| d.group == group && d.version == version)
    }

    /// `/api`: the legacy core group's versions.
    pub fn api_versions(&self, server_address: &str) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        })
    }

    fn group_json(&self, group: &str, versions: &[String]) -> Value {
        let gv = |v: &String| json!({"groupVersion": format!("{group}/{v}"), "version": v});
        json!({
            "name": group,
            "versions": versions.iter().map(gv).collect::<Vec<_>>(),
            "preferredVersion": gv(&versions[0]),
        })
    }

    /// `/apis`: every named group.
    pub fn api_group_list(&self) -> Value {
        let groups: Vec<Value> = self.groups.iter().filter(|(g, _)| !g.is_empty()).map(|(g, vs)| self.group_json(g, vs)).collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `/apis/{group}`.
    pub fn api_group(&self, group: &str) -> Option<Value> {
        let vs = self.versions(group)?;
        let mut g = self.group_json(group, vs);
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        Some(g)
    }

    /// `/api/v1` or `/apis/{group}/{version}`: the resources and subresources.
    pub fn api_resource_list(&self, group: &str, version: &str) -> Option<Value> {
        if !self.serves_group_version(group, version) {
            return None;
        }
        let mut resources = Vec::new();
        for d in self.in_gv(group, version) {
            let mut r = json!({
                "name": d.plural,
                "singularName": d.singular,
                "namespaced": d.namespaced,
                "kind": d.kind,
                "verbs": d.verbs,
            });
            if !d.short_names.is_empty() {
                r["shortNames"] = json!(d.short_names);
            }
            if !d.categories.is_empty() {
                r["categories"] = json!(d.categories);
            }
            resources.push(r);
            for s in &d.subresources {
                let mut r = json!({
                    "name": format!("{}/{}", d.plural, s.name),
                    "singularName": "",
                    "namespaced": d.namespaced,
                    "kind": s.kind,
                    "verbs": s.verbs,
                });
                if let Some(g) = &s.group {
                    r["group"] = json!(g);
                }
                if let Some(v) = &s.version {
                    r["version"] = json!(v);
                }
                resources.push(r);
            }
        }
        let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
        Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
    }

    /// Aggregated discovery of the core group (`legacy`) or of every named group.
    pub fn aggregated(&self, legacy: bool, version: &str) -> Value {
        let items: Vec<Value> = self
            .groups
            .iter()
            .filter(|(g, _)| g.is_empty() == legacy)
            .map(|(g, vs)| {
                let versions: Vec<Value> = vs
                    .iter()
                    .map(|v| {
                        let resources: Vec<Value> = self.in_gv(g, v).map(|d| aggregated_resource(d)).collect();
                        json!({"version": v, "resources": resources, "freshness": "Current"})
                    })
                    .collect();
                let meta = if g.is_empty() { json!({"creationTimestamp": null}) } else { json!({"name": g, "creationTimestamp": null}) };
                json!({"metadata": meta, "versions": versions})
            })
            .collect();
        json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": format!("apidiscovery.k8s.io/{version}"),
            "metadata": {},
            "items": items,
        })
    }
}

fn aggregated_resource(d: &ResourceDef) -> Value {
    let mut r = json!({
        "resource": d.plural,
        "responseKind": {"group": d.group, "version": d.version, "kind": d.kind},
        "scope": if d.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": d.singular,
        "verbs": d.verbs,
    });
    if !d.short_names.is_empty() {
        r["shortNames"] = json!(d.short_names);
    }
    if !d.categories.is_empty() {
        r["categories"] = json!(d.categories);
    }
    if !d.subresources.is_empty() {
        r["subresources"] = d
            .subresources
            .iter()
            .map(|s| {
                json!({
                    "subresource": s.name,
                    "responseKind": {
                        "group": s.group.clone().unwrap_or_else(|| d.group.clone()),
                        "version": s.version.clone().unwrap_or_else(|| d.version.clone()),
                        "kind": s.kind,
                    },
                    "verbs": s.verbs,
                })
            })
            .collect();
    }
    r
}

/// The aggregated discovery version asked for in an `Accept` header, if any
/// ("v2" or "v2beta1"), in the client's order of preference.
pub fn wants_aggregated(accept: Option<&str>) -> Option<&'static str> {
    for item in accept?.split(',') {
        let item = item.replace(' ', "");
        if item.contains("as=APIGroupDiscoveryList") && item.contains("g=apidiscovery.k8s.io") {
            if item.contains("v=v2beta1") {
                return Some("v2beta1");
            }
            if item.contains("v=v2") {
                return Some("v2");
            }
        } else if item.starts_with("application/json") || item.starts_with("*/*") {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_accept() {
        let cases = [
            (None, None),
            (Some("application/json"), None),
            (Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"), Some("v2")),
            (
                Some(
                    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
                ),
                Some("v2beta1"),
            ),
            (Some("application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"), None),
        ];
        for (accept, want) in cases {
            assert_eq!(wants_aggregated(accept), want, "{accept:?}");
        }
    }
}
