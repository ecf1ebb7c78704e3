//! Turning what a user types (`po`, `pods`, `Pod`, `deployments.apps`,
//! `deploy.v1.apps`, a custom resource's plural or short name, a category such
//! as `all`) into the resource to call. Uses aggregated discovery: two
//! requests (`/api`, `/apis`) describe every group, version and resource.

use serde_json::Value;

use crate::client::{Ctx, Error, Result};

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";

/// One served resource at its group's preferred version.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub verbs: Vec<String>,
    pub categories: Vec<String>,
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The collection or object URL; `ns` is ignored for cluster-scoped ones.
    pub fn url(&self, ns: Option<&str>, name: Option<&str>) -> String {
        let mut u = if self.group.is_empty() { "/api/v1".to_string() } else { format!("/apis/{}/{}", self.group, self.version) };
        if let (true, Some(ns)) = (self.namespaced, ns) {
            u.push_str("/namespaces/");
            u.push_str(ns);
        }
        u.push('/');
        u.push_str(&self.plural);
        if let Some(n) = name {
            u.push('/');
            u.push_str(n);
        }
        u
    }

    /// How kubectl names the type in `kind/name` output: `pod`, `deployment.apps`.
    pub fn kind_group(&self) -> String {
        let k = self.kind.to_lowercase();
        if self.group.is_empty() { k } else { format!("{k}.{}", self.group) }
    }

    /// `pods`, `deployments.apps`: how kubectl names the type in messages.
    pub fn plural_group(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    fn matches(&self, name: &str) -> bool {
        self.plural == name || self.singular == name || self.kind.to_lowercase() == name || self.short_names.iter().any(|s| s == name)
    }
}

/// Every resource the server serves, in discovery order (core group first),
/// so that an ambiguous short name resolves as kubectl resolves it.
pub struct Discovery {
    pub resources: Vec<Resource>,
    /// Every served group version, preferred first within a group.
    pub group_versions: Vec<String>,
}

impl Discovery {
    pub async fn load(ctx: &Ctx) -> Result<Discovery> {
        let (core, groups) = futures::future::try_join(ctx.get_as("/api", AGGREGATED), ctx.get_as("/apis", AGGREGATED)).await?;
        let mut d = Discovery { resources: Vec::new(), group_versions: Vec::new() };
        if core["kind"] != "APIGroupDiscoveryList" || groups["kind"] != "APIGroupDiscoveryList" {
            return Discovery::load_legacy(ctx, &groups).await;
        }
        d.add(&core);
        d.add(&groups);
        Ok(d)
    }

    /// Servers older than 1.26 answer with plain `APIVersions`/`APIGroupList`:
    /// then each group's preferred version is asked for its resources.
    async fn load_legacy(ctx: &Ctx, groups: &Value) -> Result<Discovery> {
        let mut d = Discovery { resources: Vec::new(), group_versions: vec!["v1".into()] };
        let mut wanted = vec![(String::new(), "v1".to_string(), "/api/v1".to_string())];
        for g in groups["groups"].as_array().into_iter().flatten() {
            let name = g["name"].as_str().unwrap_or_default();
            let preferred = g["preferredVersion"]["version"].as_str().unwrap_or_default();
            for v in g["versions"].as_array().into_iter().flatten() {
                d.group_versions.push(v["groupVersion"].as_str().unwrap_or_default().to_string());
            }
            wanted.push((name.to_string(), preferred.to_string(), format!("/apis/{name}/{preferred}")));
        }
        let lists = futures::future::join_all(wanted.iter().map(|(_, _, url)| ctx.get(url))).await;
        for ((group, version, _), list) in wanted.iter().zip(lists) {
            // A group whose server is down must not hide every other group.
            if let Ok(list) = list {
                d.add_legacy(group, version, &list);
            }
        }
        Ok(d)
    }

    fn add_legacy(&mut self, group: &str, version: &str, list: &Value) {
        for r in list["resources"].as_array().into_iter().flatten() {
            let plural = r["name"].as_str().unwrap_or_default();
            if plural.contains('/') {
                continue;
            }
            let strs = |k: &str| -> Vec<String> { r[k].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect() };
            let kind = r["kind"].as_str().unwrap_or_default().to_string();
            let singular = r["singularName"].as_str().filter(|s| !s.is_empty()).map_or_else(|| kind.to_lowercase(), str::to_string);
            self.resources.push(Resource {
                group: group.to_string(),
                version: version.to_string(),
                plural: plural.to_string(),
                singular,
                kind,
                namespaced: r["namespaced"].as_bool().unwrap_or(false),
                short_names: strs("shortNames"),
                verbs: strs("verbs"),
                categories: strs("categories"),
            });
        }
    }

    fn add(&mut self, list: &Value) {
        for g in list["items"].as_array().into_iter().flatten() {
            let group = g["metadata"]["name"].as_str().unwrap_or_default();
            let versions = g["versions"].as_array().into_iter().flatten();
            for (i, v) in versions.enumerate() {
                let version = v["version"].as_str().unwrap_or_default();
                self.group_versions.push(if group.is_empty() { version.to_string() } else { format!("{group}/{version}") });
                // Only the preferred (first) version of a group names its resources.
                if i > 0 {
                    continue;
                }
                for r in v["resources"].as_array().into_iter().flatten() {
                    let strs =
                        |k: &str| -> Vec<String> { r[k].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect() };
                    self.resources.push(Resource {
                        group: group.to_string(),
                        version: version.to_string(),
                        plural: r["resource"].as_str().unwrap_or_default().to_string(),
                        singular: r["singularResource"].as_str().unwrap_or_default().to_string(),
                        kind: r["responseKind"]["kind"].as_str().unwrap_or_default().to_string(),
                        namespaced: r["scope"] == "Namespaced",
                        short_names: strs("shortNames"),
                        verbs: strs("verbs"),
                        categories: strs("categories"),
                    });
                }
            }
        }
    }

    /// Resolves one type name; a category expands to all its members.
    pub fn resolve(&self, arg: &str) -> Result<Vec<Resource>> {
        let lower = arg.to_lowercase();
        if let Some(r) = self.find(&lower) {
            return Ok(vec![r.clone()]);
        }
        let members: Vec<Resource> = self.resources.iter().filter(|r| r.categories.contains(&lower)).cloned().collect();
        if members.is_empty() {
            return Err(Error::Msg(format!("the server doesn't have a resource type \"{arg}\"")));
        }
        Ok(members)
    }

    /// Resolves a name that must denote exactly one type.
    pub fn resolve_one(&self, arg: &str) -> Result<Resource> {
        self.find(&arg.to_lowercase()).cloned().ok_or_else(|| Error::Msg(format!("the server doesn't have a resource type \"{arg}\"")))
    }

    /// `name`, `name.group` or `name.version.group`, as kubectl parses them.
    fn find(&self, arg: &str) -> Option<&Resource> {
        if let Some(r) = self.resources.iter().find(|r| r.matches(arg)) {
            return Some(r);
        }
        let (name, rest) = arg.split_once('.')?;
        let by_group = |group: &str| self.resources.iter().find(|r| r.group == group && r.matches(name));
        if let Some((version, group)) = rest.split_once('.')
            && let Some(r) = self.resources.iter().find(|r| r.group == group && r.version == version && r.matches(name))
        {
            return Some(r);
        }
        by_group(rest)
    }

    /// The resource for an object's apiVersion and kind (for manifests).
    pub fn for_kind(&self, api_version: &str, kind: &str) -> Result<Resource> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        self.resources
            .iter()
            .find(|r| r.group == group && r.kind == kind)
            .map(|r| Resource { version: version.to_string(), ..r.clone() })
            .ok_or_else(|| Error::Msg(format!("resource mapping not found for kind \"{kind}\" in version \"{api_version}\"")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn disc() -> Discovery {
        let mut d = Discovery { resources: Vec::new(), group_versions: Vec::new() };
        d.add(&json!({"kind": "APIGroupDiscoveryList", "items": [{"metadata": {"name": ""}, "versions": [{"version": "v1", "resources": [
            {"resource": "pods", "singularResource": "pod", "scope": "Namespaced", "shortNames": ["po"], "categories": ["all"], "responseKind": {"kind": "Pod"}, "verbs": ["list"]}
        ]}]}]}));
        d.add_legacy("apps", "v1", &json!({"resources": [
            {"name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment", "shortNames": ["deploy"], "categories": ["all"]},
            {"name": "deployments/scale", "namespaced": true, "kind": "Scale"}
        ]}));
        d
    }

    #[test]
    fn names_resolve_as_kubectl_resolves_them() {
        let d = disc();
        for arg in ["pods", "pod", "po", "Pod", "pods.", "deploy", "deployments.apps", "deployment.v1.apps", "Deployment"] {
            assert!(d.resolve_one(arg).is_ok(), "{arg}");
        }
        assert_eq!(d.resolve_one("deploy").unwrap().url(Some("ns"), Some("x")), "/apis/apps/v1/namespaces/ns/deployments/x");
        assert_eq!(d.resolve_one("po").unwrap().url(Some("ns"), None), "/api/v1/namespaces/ns/pods");
        assert_eq!(d.resolve("all").unwrap().len(), 2, "a category expands to its members");
        assert!(d.resolve_one("scale").is_err(), "subresources are not types");
        assert_eq!(d.resolve_one("nope").unwrap_err().to_string(), "error: the server doesn't have a resource type \"nope\"");
        assert_eq!(d.for_kind("apps/v1", "Deployment").unwrap().kind_group(), "deployment.apps");
    }
}
