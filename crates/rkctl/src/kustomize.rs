//! `-k DIR`: a small subset of kustomize, enough for the common overlay.
//! A `kustomization.yaml` lists `resources` (files, or directories with a
//! kustomization of their own) and may set `namespace`, `namePrefix`,
//! `nameSuffix` and `commonLabels`. As kustomize does, common labels also go
//! into the selectors and pod templates of workloads and Services, and the
//! namespace onto every namespaced object. Generators, patches, images and
//! name references are not supported; a kustomization using them is refused
//! rather than applied half-understood.

use std::path::Path;

use serde_json::{Map, Value};

use crate::client::{Error, Result, err};

/// Kinds that live outside namespaces (kustomize's own list, in short).
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "CSIDriver",
    "CSINode",
    "VolumeAttachment",
];

const KNOWN: &[&str] = &["apiVersion", "kind", "resources", "namespace", "namePrefix", "nameSuffix", "commonLabels"];

/// The objects the kustomization in `dir` renders.
pub fn build(dir: &Path) -> Result<Vec<Value>> {
    let file = ["kustomization.yaml", "kustomization.yml", "Kustomization"].iter().map(|n| dir.join(n)).find(|p| p.is_file()).ok_or_else(|| {
        Error::Msg(format!("unable to find one of 'kustomization.yaml', 'kustomization.yml' or 'Kustomization' in directory '{}'", dir.display()))
    })?;
    let text = std::fs::read_to_string(&file)?;
    let k: Value = serde_yaml::from_str(&text).map_err(|e| Error::Msg(format!("error parsing {}: {e}", file.display())))?;
    let fields = k.as_object().cloned().unwrap_or_default();
    if let Some(other) = fields.keys().find(|f| !KNOWN.contains(&f.as_str())) {
        return err(format!(
            "{}: `{other}` is not supported by rkctl's kustomize subset (resources, namespace, namePrefix, nameSuffix, commonLabels)",
            file.display()
        ));
    }
    let mut objects = Vec::new();
    for r in k["resources"].as_array().into_iter().flatten() {
        let r = r.as_str().ok_or_else(|| Error::Msg(format!("{}: resources must be paths", file.display())))?;
        let path = dir.join(r);
        if path.is_dir() {
            objects.extend(build(&path)?);
        } else {
            objects.extend(crate::apply::read_manifests(&[path], false)?);
        }
    }
    let text = |key: &str| k[key].as_str().unwrap_or_default();
    let labels = k["commonLabels"].as_object().cloned().unwrap_or_default();
    for o in &mut objects {
        transform(o, text("namespace"), text("namePrefix"), text("nameSuffix"), &labels);
    }
    // kustomize's order: what others depend on first (namespaces before
    // what lives in them), webhooks last; the rest as listed.
    objects.sort_by_key(|o| rank(o["kind"].as_str().unwrap_or_default()));
    Ok(objects)
}

const FIRST: &[&str] = &[
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];
const LAST: &[&str] = &["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"];

fn rank(kind: &str) -> usize {
    match (FIRST.iter().position(|k| *k == kind), LAST.iter().position(|k| *k == kind)) {
        (Some(i), _) => i,
        (None, Some(i)) => FIRST.len() + 1 + i,
        (None, None) => FIRST.len(),
    }
}

fn transform(o: &mut Value, namespace: &str, prefix: &str, suffix: &str, labels: &Map<String, Value>) {
    let kind = o["kind"].as_str().unwrap_or_default().to_string();
    let meta = &mut o["metadata"];
    if !namespace.is_empty() && !CLUSTER_SCOPED.contains(&kind.as_str()) {
        meta["namespace"] = namespace.into();
    }
    if (!prefix.is_empty() || !suffix.is_empty()) && !matches!(kind.as_str(), "Namespace" | "CustomResourceDefinition") {
        let name = meta["name"].as_str().unwrap_or_default();
        meta["name"] = format!("{prefix}{name}{suffix}").into();
    }
    if labels.is_empty() {
        return;
    }
    add(&mut o["metadata"]["labels"], labels);
    // Where pods are selected and templated, so the labels keep matching.
    // (Only these kinds: indexing would add a `spec: null` to others.)
    if !matches!(kind.as_str(), "Service" | "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "ReplicationController" | "Job" | "CronJob") {
        return;
    }
    let spec = &mut o["spec"];
    match kind.as_str() {
        "Service" => add(&mut spec["selector"], labels),
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => {
            add(&mut spec["selector"]["matchLabels"], labels);
            add(&mut spec["template"]["metadata"]["labels"], labels);
        }
        "ReplicationController" => {
            add(&mut spec["selector"], labels);
            add(&mut spec["template"]["metadata"]["labels"], labels);
        }
        "Job" => add(&mut spec["template"]["metadata"]["labels"], labels),
        "CronJob" => add(&mut spec["jobTemplate"]["spec"]["template"]["metadata"]["labels"], labels),
        _ => {}
    }
}

fn add(at: &mut Value, labels: &Map<String, Value>) {
    if !at.is_object() {
        *at = Value::Object(Map::new());
    }
    let m = at.as_object_mut().expect("an object");
    for (k, v) in labels {
        m.insert(k.clone(), v.as_str().map_or_else(|| v.to_string().into(), |s| s.into()));
    }
}
