//! `config`: reading the merged kubeconfig and editing the file kubectl
//! would edit. A change to `current-context` goes to the first file of the
//! chain; a change to a context goes to the file that defines it. Files are
//! edited as plain YAML values so fields unknown to us survive.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::client::{ConnFlags, Error, Result, err};
use crate::printers::{tabulate, to_yaml};

#[derive(clap::Subcommand, Debug)]
pub enum ConfigCmd {
    /// Print the merged kubeconfig (secrets redacted unless --raw).
    View {
        #[arg(long)]
        raw: bool,
        /// Only what the current context uses.
        #[arg(long)]
        minify: bool,
    },
    /// List the contexts.
    GetContexts,
    /// Print the current context.
    CurrentContext,
    /// Make a context the current one.
    UseContext { name: String },
    /// Set fields of a context (`--current` for the current one).
    SetContext {
        name: Option<String>,
        #[arg(long)]
        current: bool,
        #[arg(long)]
        namespace: Option<String>,
        #[arg(long)]
        cluster: Option<String>,
        #[arg(long)]
        user: Option<String>,
    },
}

/// The files in precedence order.
fn chain(conn: &ConnFlags) -> Vec<PathBuf> {
    if let Some(p) = &conn.kubeconfig {
        return vec![p.clone()];
    }
    if let Some(v) = std::env::var_os("KUBECONFIG") {
        let files: Vec<PathBuf> = std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect();
        if !files.is_empty() {
            return files;
        }
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    vec![home.join(".kube").join("config")]
}

fn load(p: &PathBuf) -> Result<Value> {
    match std::fs::read_to_string(p) {
        Ok(t) => Ok(serde_yaml::from_str::<Value>(&t).map_err(|e| Error::Msg(format!("{}: {e}", p.display())))?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({"apiVersion": "v1", "kind": "Config"})),
        Err(e) => Err(e.into()),
    }
}

fn save(p: &PathBuf, v: &Value) -> Result<()> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(p, to_yaml(v))?;
    Ok(())
}

fn named<'a>(v: &'a Value, list: &str, name: &str) -> Option<&'a Value> {
    v[list].as_array()?.iter().find(|e| e["name"] == name)
}

pub fn run(conn: &ConnFlags, cmd: &ConfigCmd) -> Result<()> {
    let files = chain(conn);
    match cmd {
        ConfigCmd::View { raw, minify } => {
            let kc = conn.kubeconfig()?;
            let mut v = serde_json::to_value(&kc)?;
            v["apiVersion"] = json!("v1");
            v["kind"] = json!("Config");
            v["preferences"] = v.get("preferences").cloned().filter(|p| !p.is_null()).unwrap_or(json!({}));
            if *minify {
                let cur = conn.context.clone().or(kc.current_context.clone()).unwrap_or_default();
                let ctx = named(&v, "contexts", &cur).cloned().ok_or_else(|| Error::Msg(format!("current-context \"{cur}\" not found")))?;
                let (cl, us) = (ctx["context"]["cluster"].clone(), ctx["context"]["user"].clone());
                for (list, keep) in [("contexts", json!(cur)), ("clusters", cl), ("users", us)] {
                    if let Some(a) = v[list].as_array_mut() {
                        a.retain(|e| e["name"] == keep);
                    }
                }
                v["current-context"] = json!(cur);
            }
            if !raw {
                redact(&mut v);
            }
            print!("{}", to_yaml(&v));
        }
        ConfigCmd::GetContexts => {
            let kc = conn.kubeconfig()?;
            let cur = kc.current_context.clone().unwrap_or_default();
            let mut rows = vec![["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"].map(String::from).to_vec()];
            for c in &kc.contexts {
                let x = c.context.clone().unwrap_or_default();
                let star = if c.name == cur { "*" } else { "" };
                rows.push(vec![star.into(), c.name.clone(), x.cluster, x.user.unwrap_or_default(), x.namespace.unwrap_or_default()]);
            }
            print!("{}", tabulate(&rows, &mut Vec::new(), &|_, _, c| c.to_string()));
        }
        ConfigCmd::CurrentContext => match conn.kubeconfig()?.current_context {
            Some(c) if !c.is_empty() => println!("{c}"),
            _ => return err("current-context is not set"),
        },
        ConfigCmd::UseContext { name } => {
            let kc = conn.kubeconfig()?;
            if !kc.contexts.iter().any(|c| c.name == *name) {
                return err(format!("no context exists with the name: \"{name}\""));
            }
            let mut v = load(&files[0])?;
            v["current-context"] = json!(name);
            save(&files[0], &v)?;
            println!("Switched to context \"{name}\".");
        }
        ConfigCmd::SetContext { name, current, namespace, cluster, user } => {
            let name = match (name, current) {
                (Some(n), false) => n.clone(),
                (None, true) => conn.kubeconfig()?.current_context.filter(|c| !c.is_empty()).ok_or(Error::Msg("no current context is set".into()))?,
                _ => return err("give a context name or --current"),
            };
            let file = files.iter().find(|f| load(f).is_ok_and(|v| named(&v, "contexts", &name).is_some())).unwrap_or(&files[0]).clone();
            let mut v = load(&file)?;
            let existed = named(&v, "contexts", &name).is_some();
            if !existed {
                if !v["contexts"].is_array() {
                    v["contexts"] = json!([]);
                }
                if let Some(a) = v["contexts"].as_array_mut() {
                    a.push(json!({"name": name, "context": {}}));
                }
            }
            if let Some(e) = v["contexts"].as_array_mut().and_then(|a| a.iter_mut().find(|e| e["name"] == name.as_str())) {
                for (k, val) in [("namespace", namespace), ("cluster", cluster), ("user", user)] {
                    if let Some(val) = val {
                        e["context"][k] = json!(val);
                    }
                }
            }
            save(&file, &v)?;
            println!("Context \"{name}\" {}.", if existed { "modified" } else { "created" });
        }
    }
    Ok(())
}

/// Hides key material and tokens as kubectl's `config view` does.
fn redact(v: &mut Value) {
    for (list, inner) in [("clusters", "cluster"), ("users", "user")] {
        for e in v[list].as_array_mut().into_iter().flatten() {
            if let Some(m) = e[inner].as_object_mut() {
                for (k, x) in m.iter_mut() {
                    if k.ends_with("-data") {
                        *x = json!("DATA+OMITTED");
                    } else if k == "token" || k == "password" {
                        *x = json!("REDACTED");
                    }
                }
            }
        }
    }
}
