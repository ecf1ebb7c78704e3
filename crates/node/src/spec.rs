//! Turns a Pod's spec into what CRI wants: volumes prepared on disk,
//! environment resolved (fieldRef, resourceFieldRef, configMap and secret
//! keys, envFrom, `$(VAR)` expansion) and mounts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, ServiceAccount, ServiceAccountTokenProjection};
use kube::api::Api;
use kube::{Client, ResourceExt};

use crate::cri::api;

/// Where a pod's volumes and termination-message files live.
pub fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("pods").join(uid)
}

/// Makes every volume of the pod ready on disk and returns their host paths
/// by volume name. Volumes the agent cannot provide are an error naming them.
pub async fn prepare_volumes(client: &Client, root: &Path, pod: &Pod) -> Result<BTreeMap<String, PathBuf>> {
    let ns = pod.namespace().unwrap_or_default();
    let uid = pod.uid().unwrap_or_default();
    let base = pod_dir(root, &uid).join("volumes");
    let mut out = BTreeMap::new();
    for v in pod.spec.as_ref().and_then(|s| s.volumes.as_ref()).into_iter().flatten() {
        let dir = base.join(&v.name);
        if let Some(hp) = &v.host_path {
            let p = PathBuf::from(&hp.path);
            match hp.type_.as_deref().unwrap_or("") {
                "DirectoryOrCreate" => std::fs::create_dir_all(&p)?,
                "FileOrCreate" if !p.exists() => {
                    if let Some(parent) = p.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    std::fs::write(&p, b"")?;
                }
                "Directory" if !p.is_dir() => bail!("hostPath type check failed: {} is not a directory", hp.path),
                "File" if !p.is_file() => bail!("hostPath type check failed: {} is not a file", hp.path),
                _ => {}
            }
            out.insert(v.name.clone(), p);
            continue;
        }
        std::fs::create_dir_all(&dir)?;
        if let Some(ed) = &v.empty_dir {
            if ed.medium.as_deref() == Some("Memory") && !is_mountpoint(&dir) {
                let mut cmd = tokio::process::Command::new("mount");
                cmd.args(["-t", "tmpfs"]);
                if let Some(limit) = &ed.size_limit {
                    cmd.arg("-o").arg(format!("size={}", crate::pod::quantity_bytes(&limit.0).max(4096)));
                }
                let st = cmd.arg("tmpfs").arg(&dir).status().await.context("running mount")?;
                if !st.success() {
                    bail!("mounting a memory-backed emptyDir at {} failed", dir.display());
                }
            }
        } else if let Some(cm) = &v.config_map {
            let files = config_map_files(client, &ns, cm.name.as_str(), cm.items.as_deref(), cm.optional.unwrap_or(false)).await?;
            write_files(&dir, &files, cm.default_mode)?;
        } else if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            let files = secret_files(client, &ns, &name, s.items.as_deref(), s.optional.unwrap_or(false)).await?;
            write_files(&dir, &files, s.default_mode.or(Some(0o644)))?;
        } else if let Some(d) = &v.downward_api {
            let files = downward_files(pod, d.items.as_deref().unwrap_or_default())?;
            write_files(&dir, &files, d.default_mode)?;
        } else if let Some(p) = &v.projected {
            let mut files = Vec::new();
            for src in p.sources.iter().flatten() {
                if let Some(cm) = &src.config_map {
                    files.extend(config_map_files(client, &ns, &cm.name, cm.items.as_deref(), cm.optional.unwrap_or(false)).await?);
                } else if let Some(s) = &src.secret {
                    files.extend(secret_files(client, &ns, &s.name, s.items.as_deref(), s.optional.unwrap_or(false)).await?);
                } else if let Some(d) = &src.downward_api {
                    files.extend(downward_files(pod, d.items.as_deref().unwrap_or_default())?);
                } else if let Some(t) = &src.service_account_token {
                    files.push(service_account_token(client, pod, &dir, t).await?);
                }
            }
            write_files(&dir, &files, p.default_mode)?;
        } else {
            bail!("volume {:?}: only emptyDir, hostPath, configMap, secret, downwardAPI and projected volumes are supported", v.name);
        }
        out.insert(v.name.clone(), dir);
    }
    Ok(out)
}

fn is_mountpoint(dir: &Path) -> bool {
    let d = dir.to_string_lossy();
    std::fs::read_to_string("/proc/self/mounts").map(|m| m.lines().any(|l| l.split(' ').nth(1) == Some(&d))).unwrap_or(false)
}

/// Unmounts memory-backed volumes and removes the pod's directory.
pub async fn cleanup_volumes(root: &Path, uid: &str) {
    let dir = pod_dir(root, uid);
    let d = dir.to_string_lossy().to_string();
    let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(1).map(str::to_string))
        .filter(|m| m.starts_with(&d))
        .collect();
    for m in mounts {
        let _ = tokio::process::Command::new("umount").arg(&m).status().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

type Files = Vec<(String, Vec<u8>, Option<i32>)>;

fn pick(data: BTreeMap<String, Vec<u8>>, items: Option<&[KeyToPath]>, what: &str) -> Result<Files> {
    match items {
        None => Ok(data.into_iter().map(|(k, v)| (k, v, None)).collect()),
        Some(items) => items
            .iter()
            .map(|it| data.get(&it.key).map(|v| (it.path.clone(), v.clone(), it.mode)).ok_or_else(|| anyhow!("{what} has no key {:?}", it.key)))
            .collect(),
    }
}

async fn config_map_files(client: &Client, ns: &str, name: &str, items: Option<&[KeyToPath]>, optional: bool) -> Result<Files> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let Some(cm) = api.get_opt(name).await? else {
        if optional {
            return Ok(Vec::new());
        }
        bail!("configmap {name:?} not found");
    };
    let mut data: BTreeMap<String, Vec<u8>> = cm.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    data.extend(cm.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
    pick(data, items, &format!("configmap {name:?}"))
}

async fn secret_files(client: &Client, ns: &str, name: &str, items: Option<&[KeyToPath]>, optional: bool) -> Result<Files> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let Some(s) = api.get_opt(name).await? else {
        if optional {
            return Ok(Vec::new());
        }
        bail!("secret {name:?} not found");
    };
    let data = s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
    pick(data, items, &format!("secret {name:?}"))
}

/// A token for the pod's service account, bound to the pod, from the
/// TokenRequest API. The one on disk is kept until 80% of its lifetime has
/// passed, as the kubelet's token manager.
async fn service_account_token(client: &Client, pod: &Pod, dir: &Path, t: &ServiceAccountTokenProjection) -> Result<(String, Vec<u8>, Option<i32>)> {
    let ttl = t.expiration_seconds.unwrap_or(3600).max(600);
    let file = dir.join(&t.path);
    let fresh = std::fs::metadata(&file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|age| age.as_secs() < (ttl as u64) * 8 / 10);
    if fresh && let Ok(token) = std::fs::read(&file) {
        return Ok((t.path.clone(), token, None));
    }
    let ns = pod.namespace().unwrap_or_default();
    let account = pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".into());
    let req = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: t.audience.clone().map(|a| vec![a]),
            expiration_seconds: Some(ttl),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let tr = api.create_token_request(&account, &Default::default(), &req).await.with_context(|| format!("requesting a token for service account {account:?}"))?;
    let token = tr.status.and_then(|s| s.token).unwrap_or_default();
    Ok((t.path.clone(), token.into_bytes(), None))
}

fn downward_files(pod: &Pod, items: &[DownwardAPIVolumeFile]) -> Result<Files> {
    items
        .iter()
        .map(|it| {
            let value = if let Some(f) = &it.field_ref {
                field_value(pod, &f.field_path)?
            } else if let Some(r) = &it.resource_field_ref {
                let c = find_container(pod, r.container_name.as_deref().unwrap_or_default())?;
                resource_value(c, &r.resource, r.divisor.as_ref().map(|d| d.0.as_str()))?
            } else {
                bail!("downwardAPI item {:?} has neither fieldRef nor resourceFieldRef", it.path)
            };
            Ok((it.path.clone(), value.into_bytes(), it.mode))
        })
        .collect()
}

fn write_files(dir: &Path, files: &Files, default_mode: Option<i32>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (path, data, mode) in files {
        if path.split('/').any(|p| p == "..") || path.starts_with('/') {
            bail!("volume file path {path:?} must be relative and must not contain '..'");
        }
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mode = mode.or(default_mode).unwrap_or(0o644) as u32;
        // Unchanged files stay as they are (a token's age is its file's mtime).
        let same = std::fs::metadata(&p).is_ok_and(|m| m.permissions().mode() & 0o7777 == mode) && std::fs::read(&p).is_ok_and(|d| &d == data);
        if same {
            continue;
        }
        // Written beside, then renamed, so a container never reads half a file.
        let tmp = p.with_extension("rkube-tmp");
        std::fs::write(&tmp, data)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&tmp, &p)?;
    }
    // Keys gone from the source go from the volume (on a later sync).
    let keep: std::collections::HashSet<&str> = files.iter().filter_map(|(p, _, _)| p.split('/').next()).collect();
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !keep.contains(name.as_str()) {
            let p = e.path();
            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
    }
    Ok(())
}

fn find_container<'a>(pod: &'a Pod, name: &str) -> Result<&'a Container> {
    let spec = pod.spec.as_ref().ok_or_else(|| anyhow!("pod has no spec"))?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| name.is_empty() || c.name == name)
        .ok_or_else(|| anyhow!("no container {name:?}"))
}

/// The downward API's `fieldRef` values.
pub fn field_value(pod: &Pod, path: &str) -> Result<String> {
    let label_or_ann = |map: &BTreeMap<String, String>, key: &str| map.get(key).cloned().unwrap_or_default();
    let fmt_map = |m: &BTreeMap<String, String>| m.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join("\n");
    let status = pod.status.clone().unwrap_or_default();
    Ok(match path {
        "metadata.name" => pod.name_any(),
        "metadata.namespace" => pod.namespace().unwrap_or_default(),
        "metadata.uid" => pod.uid().unwrap_or_default(),
        "metadata.labels" => fmt_map(pod.labels()),
        "metadata.annotations" => fmt_map(pod.annotations()),
        "spec.nodeName" => pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.hostIP" => status.host_ip.unwrap_or_default(),
        "status.hostIPs" => status.host_ips.unwrap_or_default().into_iter().map(|i| i.ip).collect::<Vec<_>>().join(","),
        "status.podIP" => status.pod_ip.unwrap_or_default(),
        "status.podIPs" => status.pod_ips.unwrap_or_default().into_iter().map(|i| i.ip).collect::<Vec<_>>().join(","),
        p => {
            if let Some(k) = p.strip_prefix("metadata.labels['").and_then(|r| r.strip_suffix("']")) {
                label_or_ann(pod.labels(), k)
            } else if let Some(k) = p.strip_prefix("metadata.annotations['").and_then(|r| r.strip_suffix("']")) {
                label_or_ann(pod.annotations(), k)
            } else {
                bail!("unsupported fieldRef {p:?}")
            }
        }
    })
}

/// `resourceFieldRef` values: limits fall back to the node's capacity as
/// upstream does (here: the machine's CPUs and memory).
pub fn resource_value(c: &Container, resource: &str, divisor: Option<&str>) -> Result<String> {
    let res = c.resources.clone().unwrap_or_default();
    let (kind, name) = resource.split_once('.').ok_or_else(|| anyhow!("unsupported resource {resource:?}"))?;
    let map = if kind == "limits" { res.limits.clone() } else { res.requests.clone() };
    let q = map
        .and_then(|m| m.get(name).map(|q| q.0.clone()))
        .or_else(|| if kind == "requests" { res.limits.and_then(|m| m.get(name).map(|q| q.0.clone())) } else { None });
    let cpu = name == "cpu";
    let value = match q {
        Some(q) if cpu => crate::pod::quantity_millis(&q) as f64 / 1000.0,
        Some(q) => crate::pod::quantity_bytes(&q) as f64,
        None if kind == "requests" => 0.0,
        None if cpu => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64,
        None => crate::agent_memory_bytes() as f64,
    };
    let div = match divisor {
        Some(d) if cpu => crate::pod::quantity_millis(d) as f64 / 1000.0,
        Some(d) => crate::pod::quantity_bytes(d) as f64,
        None => 1.0,
    };
    Ok(format!("{}", (value / if div > 0.0 { div } else { 1.0 }).ceil() as i64))
}

/// The container's environment, in order: envFrom, then env, with
/// `$(VAR)` references to earlier variables expanded.
pub async fn environment(client: &Client, pod: &Pod, c: &Container) -> Result<Vec<(String, String)>> {
    let ns = pod.namespace().unwrap_or_default();
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(e) = env.iter_mut().find(|e| e.0 == k) {
            e.1 = v;
        } else {
            env.push((k, v));
        }
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            for (k, v, _) in config_map_files(client, &ns, &r.name, None, r.optional.unwrap_or(false)).await? {
                set(&mut env, format!("{prefix}{k}"), String::from_utf8_lossy(&v).into_owned());
            }
        }
        if let Some(r) = &from.secret_ref {
            for (k, v, _) in secret_files(client, &ns, &r.name, None, r.optional.unwrap_or(false)).await? {
                set(&mut env, format!("{prefix}{k}"), String::from_utf8_lossy(&v).into_owned());
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                field_value(pod, &f.field_path)?
            } else if let Some(r) = &from.resource_field_ref {
                let target = if r.container_name.as_deref().unwrap_or("").is_empty() {
                    c
                } else {
                    find_container(pod, r.container_name.as_deref().unwrap_or(""))?
                };
                resource_value(target, &r.resource, r.divisor.as_ref().map(|d| d.0.as_str()))?
            } else if let Some(k) = &from.config_map_key_ref {
                let files = config_map_files(client, &ns, &k.name, None, k.optional.unwrap_or(false)).await?;
                match files.into_iter().find(|f| f.0 == k.key) {
                    Some(f) => String::from_utf8_lossy(&f.1).into_owned(),
                    None if k.optional.unwrap_or(false) => continue,
                    None => bail!("couldn't find key {} in ConfigMap {}/{}", k.key, ns, k.name),
                }
            } else if let Some(k) = &from.secret_key_ref {
                let files = secret_files(client, &ns, &k.name, None, k.optional.unwrap_or(false)).await?;
                match files.into_iter().find(|f| f.0 == k.key) {
                    Some(f) => String::from_utf8_lossy(&f.1).into_owned(),
                    None if k.optional.unwrap_or(false) => continue,
                    None => bail!("couldn't find key {} in Secret {}/{}", k.key, ns, k.name),
                }
            } else {
                String::new()
            }
        } else {
            expand(e.value.as_deref().unwrap_or(""), &env)
        };
        set(&mut env, e.name.clone(), value);
    }
    Ok(env)
}

/// Upstream's `$(VAR)` expansion: known names are replaced, `$$` escapes,
/// unknown references stay as written.
pub fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(j) => {
                    let name = &inner[..j];
                    match env.iter().rev().find(|e| e.0 == name) {
                        Some(e) => out.push_str(&e.1),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[j + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// CRI mounts for the container's volumeMounts.
pub fn mounts(c: &Container, volumes: &BTreeMap<String, PathBuf>) -> Result<Vec<api::Mount>> {
    c.volume_mounts
        .iter()
        .flatten()
        .map(|m| {
            let base = volumes.get(&m.name).ok_or_else(|| anyhow!("volumeMount {:?}: the pod has no volume {:?}", m.mount_path, m.name))?;
            let mut host = base.clone();
            if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                if sub.split('/').any(|p| p == "..") || sub.starts_with('/') {
                    bail!("subPath {sub:?} must be relative and must not contain '..'");
                }
                host = base.join(sub);
                if !host.exists() {
                    std::fs::create_dir_all(&host)?;
                }
            }
            Ok(api::Mount {
                container_path: m.mount_path.clone(),
                host_path: host.to_string_lossy().into_owned(),
                readonly: m.read_only.unwrap_or(false),
                ..Default::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_as_upstream() {
        let env = vec![("A".to_string(), "1".to_string()), ("B".to_string(), "x y".to_string())];
        assert_eq!(expand("$(A)-$(B)", &env), "1-x y");
        assert_eq!(expand("$$(A) $(C) $A $(", &env), "$(A) $(C) $A $(");
    }

    #[test]
    fn rewriting_a_volume_keeps_unchanged_files_and_drops_removed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let files = |pairs: &[(&str, &str)]| -> Files { pairs.iter().map(|(p, d)| (p.to_string(), d.as_bytes().to_vec(), None)).collect() };
        write_files(dir.path(), &files(&[("token", "t1"), ("ca.crt", "c")]), None).unwrap();
        let mtime = || std::fs::metadata(dir.path().join("token")).unwrap().modified().unwrap();
        let before = mtime();
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_files(dir.path(), &files(&[("token", "t1"), ("ca.crt", "c")]), None).unwrap();
        assert_eq!(mtime(), before, "an unchanged token keeps its age");
        write_files(dir.path(), &files(&[("token", "t2")]), None).unwrap();
        assert_ne!(mtime(), before);
        assert_eq!(std::fs::read_to_string(dir.path().join("token")).unwrap(), "t2");
        assert!(!dir.path().join("ca.crt").exists());
    }
}
