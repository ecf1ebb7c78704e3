//! Writing manifests: `apply` as server-side apply (an upsert: the server
//! creates what is missing and merges what exists, field manager `rkctl`),
//! with conflicts explained by their owning manager; `--dry-run` and `--diff`
//! show a coloured diff of the live object against the server's dry-run
//! result. Also `create -f` and `delete`.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};

use crate::cli::expand_files;
use crate::client::{Ctx, Error, Result, enc, err};
use crate::discovery::{Discovery, Resource};
use crate::printers::{RESET, to_yaml, use_color};

#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// Files, directories or `-` (stdin) holding the manifests.
    #[arg(short, long = "filename", required_unless_present = "kustomize")]
    pub files: Vec<PathBuf>,
    /// A directory with a kustomization.yaml (resources, namespace,
    /// namePrefix, nameSuffix, commonLabels).
    #[arg(short = 'k', long, conflicts_with = "files")]
    pub kustomize: Option<PathBuf>,
    /// Descend into subdirectories of directories given with -f.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Take over fields that another field manager owns.
    #[arg(long)]
    pub force_conflicts: bool,
    /// The field manager recorded for the applied fields.
    #[arg(long, default_value = "rkctl")]
    pub field_manager: String,
    /// Accepted for kubectl compatibility: rkctl always applies server-side.
    #[arg(long)]
    pub server_side: bool,
    /// Only show what would change (the server computes it without saving).
    #[arg(long, num_args = 0..=1, default_missing_value = "server", value_parser = ["none", "server", "client"])]
    pub dry_run: Option<String>,
    /// Show what would change and ask before applying.
    #[arg(long)]
    pub diff: bool,
    /// Do not ask before applying (with --diff).
    #[arg(short, long)]
    pub yes: bool,
    /// Output format for the results: name, json or yaml.
    #[arg(short, long)]
    pub output: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// TYPE NAME…, or TYPE/NAME…
    pub args: Vec<String>,
    /// Files, directories or `-` naming the objects to delete.
    #[arg(short, long = "filename")]
    pub files: Vec<PathBuf>,
    /// The objects a kustomization directory renders.
    #[arg(short = 'k', long, conflicts_with = "files")]
    pub kustomize: Option<PathBuf>,
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Delete the objects matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Delete every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Succeed when the objects do not exist.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Wait until the objects are gone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub wait: bool,
    /// Seconds the objects get to terminate gracefully.
    #[arg(long)]
    pub grace_period: Option<i64>,
    /// Delete immediately (grace period 1).
    #[arg(long)]
    pub now: bool,
    /// Delete without waiting for termination (grace period 0).
    #[arg(long)]
    pub force: bool,
}

/// The objects of `-f` files, or of the kustomization named by `-k`.
fn objects_of(files: &[PathBuf], recursive: bool, kustomize: Option<&PathBuf>) -> Result<Vec<Value>> {
    match kustomize {
        Some(dir) => crate::kustomize::build(dir),
        None => read_manifests(files, recursive),
    }
}

/// Every document in the files, `List`s flattened.
pub fn read_manifests(files: &[PathBuf], recursive: bool) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for f in expand_files(files, recursive)? {
        let text = if f.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s
        } else {
            std::fs::read_to_string(&f).map_err(|e| Error::Msg(format!("the path \"{}\" does not exist or cannot be read: {e}", f.display())))?
        };
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).map_err(|e| Error::Msg(format!("error parsing {}: {e}", f.display())))?;
            flatten(v, &mut out);
        }
    }
    if out.is_empty() {
        return err("no objects passed to apply");
    }
    Ok(out)
}

fn flatten(v: Value, out: &mut Vec<Value>) {
    match v {
        Value::Null => {}
        Value::Object(ref m) if m.get("kind").and_then(Value::as_str).is_some_and(|k| k.ends_with("List")) && m.contains_key("items") => {
            for i in m["items"].as_array().cloned().unwrap_or_default() {
                flatten(i, out);
            }
        }
        v => out.push(v),
    }
}

/// The resource, namespace and name a manifest addresses.
fn target(disc: &Discovery, ctx: &Ctx, o: &Value) -> Result<(Resource, Option<String>, String)> {
    let (api, kind) = (o["apiVersion"].as_str().unwrap_or_default(), o["kind"].as_str().unwrap_or_default());
    if api.is_empty() || kind.is_empty() {
        return err("every object needs apiVersion and kind");
    }
    let res = disc.for_kind(api, kind)?;
    let name = o["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let ns = res.namespaced.then(|| o["metadata"]["namespace"].as_str().map_or(ctx.namespace.clone(), str::to_string));
    Ok((res, ns, name))
}

/// What a diff leaves out: the status (apply never changes it, and it moves
/// on its own between two reads) and metadata the server bumps on writes.
fn for_diff(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
    }
    if let Some(m) = v["metadata"].as_object_mut() {
        for k in ["managedFields", "resourceVersion", "generation", "uid", "creationTimestamp"] {
            m.remove(k);
        }
    }
    v
}

pub async fn apply(ctx: &Ctx, a: &ApplyArgs, color_flag: &str) -> Result<()> {
    let disc = Discovery::load(ctx).await?;
    let color = use_color(color_flag, std::io::stdout().is_terminal());
    let dry = a.dry_run.as_deref().is_some_and(|d| d != "none");
    let mut failed = false;
    for o in objects_of(&a.files, a.recursive, a.kustomize.as_ref())? {
        let (res, ns, name) = target(&disc, ctx, &o)?;
        let url = res.url(ns.as_deref(), Some(&name));
        let label = format!("{}/{name}", res.kind_group());
        let patch = |dry: bool| {
            let q = format!("{url}?fieldManager={}&force={}{}", enc(&a.field_manager), a.force_conflicts, if dry { "&dryRun=All" } else { "" });
            let ctx = &ctx;
            let o = &o;
            async move { ctx.send(Method::PATCH, &q, "application/apply-patch+yaml", o).await }
        };
        let live = match ctx.get(&url).await {
            Ok(v) => Some(v),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        if dry || a.diff {
            let after = match patch(true).await {
                Ok(v) => v,
                Err(e) => {
                    failed = true;
                    eprintln!("{}", explain_apply_error(&e, &label));
                    continue;
                }
            };
            let before = live.clone().map(for_diff).map(|v| to_yaml(&v)).unwrap_or_default();
            let diff = unified_diff(&before, &to_yaml(&for_diff(after)), color);
            if diff.is_empty() {
                println!("{label} unchanged{}", if dry { " (server dry run)" } else { "" });
                continue;
            }
            println!("{}{label}{}", if color { "\x1b[1m" } else { "" }, if color { RESET } else { "" });
            print!("{diff}");
            if dry {
                println!("{label} {} (server dry run)", if live.is_some() { "configured" } else { "created" });
                continue;
            }
            if !a.yes && !confirm(&format!("Apply these changes to {label}?"))? {
                println!("{label} skipped");
                continue;
            }
        }
        match patch(false).await {
            Ok(v) => {
                let verb = match &live {
                    None => "created",
                    Some(l) if l["metadata"]["resourceVersion"] == v["metadata"]["resourceVersion"] => "unchanged",
                    // Written meanwhile, but only by others (a controller's status).
                    Some(l) if for_diff(l.clone()) == for_diff(v.clone()) => "unchanged",
                    Some(_) => "configured",
                };
                print_result(a.output.as_deref(), &label, verb, v)?;
            }
            Err(e) => {
                failed = true;
                eprintln!("{}", explain_apply_error(&e, &label));
            }
        }
    }
    if failed { Err(Error::Exit(1)) } else { Ok(()) }
}

fn print_result(output: Option<&str>, label: &str, verb: &str, v: Value) -> Result<()> {
    match output {
        Some("name") => println!("{label}"),
        Some("json") => print!("{}", crate::printers::to_json(&v)),
        Some("yaml") => print!("{}", to_yaml(&v)),
        Some(o) => return err(format!("unsupported output format {o}")),
        None => println!("{label} {verb}"),
    }
    Ok(())
}

/// A server-side apply conflict, said plainly: which fields, who owns them,
/// and how to go on.
pub fn explain_apply_error(e: &Error, label: &str) -> String {
    let Some(s) = e.status().filter(|s| s.code == 409 && s.reason == "Conflict") else { return e.to_string() };
    let causes: Vec<_> = s.details.iter().flat_map(|d| d.causes.iter()).filter(|c| c.reason == "FieldManagerConflict").collect();
    if causes.is_empty() {
        return e.to_string();
    }
    let mut m = format!("error: applying {label} conflicts with other field managers:\n");
    for c in &causes {
        let owner = c.message.strip_prefix("conflict with ").unwrap_or(&c.message);
        m.push_str(&format!("  {} is owned by {owner}\n", c.field));
    }
    m.push_str("hint: re-run with --force-conflicts to take these fields over, or drop them from the manifest to leave them to their owner");
    m
}

/// Asks on the terminal; anything but yes is no.
fn confirm(q: &str) -> Result<bool> {
    eprint!("{q} [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// A line diff with three lines of context (longest common subsequence;
/// objects are small enough for the quadratic table).
pub fn unified_diff(a: &str, b: &str, color: bool) -> String {
    let (x, y): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let (n, m) = (x.len(), y.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if x[i] == y[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && x[i] == y[j] {
            ops.push((' ', x[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', x[i]));
            i += 1;
        } else {
            ops.push(('+', y[j]));
            j += 1;
        }
    }
    let near = |k: usize| ops[k.saturating_sub(3)..(k + 4).min(ops.len())].iter().any(|(c, _)| *c != ' ');
    let mut out = String::new();
    let mut skipped = false;
    for (k, (c, l)) in ops.iter().enumerate() {
        if !near(k) {
            skipped = true;
            continue;
        }
        if std::mem::take(&mut skipped) {
            out.push_str(if color { "\x1b[36m…\x1b[0m\n" } else { "…\n" });
        }
        let code = match c {
            '+' => "\x1b[32m",
            '-' => "\x1b[31m",
            _ => "",
        };
        if color && !code.is_empty() {
            out.push_str(&format!("{code}{c} {l}{RESET}\n"));
        } else {
            out.push_str(&format!("{c} {l}\n"));
        }
    }
    if !ops.iter().any(|(c, _)| *c != ' ') {
        return String::new();
    }
    out
}

pub async fn create(ctx: &Ctx, a: &ApplyArgs) -> Result<()> {
    let disc = Discovery::load(ctx).await?;
    let dry = a.dry_run.as_deref().is_some_and(|d| d != "none");
    let mut failed = false;
    for o in objects_of(&a.files, a.recursive, a.kustomize.as_ref())? {
        let (res, ns, name) = target(&disc, ctx, &o)?;
        let url = format!("{}?fieldManager={}{}", res.url(ns.as_deref(), None), enc(&a.field_manager), if dry { "&dryRun=All" } else { "" });
        match ctx.send(Method::POST, &url, "application/json", &o).await {
            Ok(v) => {
                let name = v["metadata"]["name"].as_str().unwrap_or(&name).to_string();
                let label = format!("{}/{name}", res.kind_group());
                print_result(a.output.as_deref(), &label, if dry { "created (server dry run)" } else { "created" }, v)?;
            }
            Err(e) => {
                failed = true;
                eprintln!("{e}");
            }
        }
    }
    if failed { Err(Error::Exit(1)) } else { Ok(()) }
}

pub async fn delete(ctx: &Ctx, a: &DeleteArgs) -> Result<()> {
    let disc = Discovery::load(ctx).await?;
    let mut targets: Vec<(Resource, Option<String>, String)> = Vec::new();
    if !a.files.is_empty() || a.kustomize.is_some() {
        let mut objects = objects_of(&a.files, a.recursive, a.kustomize.as_ref())?;
        // A kustomization is ordered for creation (namespaces first); what
        // lives in a namespace goes before it.
        if a.kustomize.is_some() {
            objects.reverse();
        }
        for o in objects {
            targets.push(target(&disc, ctx, &o)?);
        }
    }
    let ns = Some(ctx.namespace.clone());
    if a.args.iter().any(|x| x.contains('/')) {
        for x in &a.args {
            let (t, n) =
                x.split_once('/').ok_or_else(|| Error::Msg(format!("arguments in resource/name form must have a single resource and name: {x}")))?;
            targets.push((disc.resolve_one(t)?, ns.clone(), n.to_string()));
        }
    } else if let Some((t, names)) = a.args.split_first() {
        for res in t.split(',').map(|t| disc.resolve_one(t)).collect::<Result<Vec<_>>>()? {
            if names.is_empty() {
                if a.selector.is_none() && !a.all {
                    return err("resource(s) were provided, but no name was specified");
                }
                let sel = a.selector.as_deref().map(|s| format!("?labelSelector={}", enc(s))).unwrap_or_default();
                let list = ctx.get(&format!("{}{sel}", res.url(ns.as_deref(), None))).await?;
                for i in list["items"].as_array().into_iter().flatten() {
                    targets.push((res.clone(), ns.clone(), i["metadata"]["name"].as_str().unwrap_or_default().to_string()));
                }
            }
            targets.extend(names.iter().map(|n| (res.clone(), ns.clone(), n.clone())));
        }
    }
    if targets.is_empty() {
        if a.args.is_empty() && a.files.is_empty() {
            return err("you must provide one or more resources by argument or filename");
        }
        eprintln!("No resources found");
        return Ok(());
    }
    let grace = if a.force {
        Some(0)
    } else if a.now {
        Some(1)
    } else {
        a.grace_period
    };
    let body = match grace {
        Some(g) => json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": g, "propagationPolicy": "Background"}),
        None => json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}),
    };
    let mut failed = false;
    let mut deleted = Vec::new();
    for (res, ns, name) in targets {
        let url = res.url(ns.as_deref(), Some(&name));
        match ctx.delete(&url, &body).await {
            Ok(_) => {
                println!("{} \"{name}\" deleted", res.kind_group());
                deleted.push(url);
            }
            Err(e) if a.ignore_not_found && e.is_not_found() => {}
            Err(e) => {
                failed = true;
                eprintln!("{e}");
            }
        }
    }
    if a.wait {
        for url in deleted {
            wait_gone(ctx, &url, Duration::from_secs(3600)).await?;
        }
    }
    if failed { Err(Error::Exit(1)) } else { Ok(()) }
}

/// Waits until GET answers 404 (the object, finalizers and all, is gone).
pub async fn wait_gone(ctx: &Ctx, url: &str, timeout: Duration) -> Result<bool> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(50);
    loop {
        match ctx.get(url).await {
            Err(e) if e.is_not_found() => return Ok(true),
            Err(e) => return Err(e),
            Ok(_) if tokio::time::Instant::now() >= deadline => return Ok(false),
            Ok(_) => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_shows_changes_with_context() {
        let a = "a: 1\nb: 2\nc: 3\nd: 4\ne: 5\nf: 6\ng: 7\nh: 8\n";
        let b = "a: 1\nb: 2\nc: 3\nd: 4\ne: 5\nf: 6\ng: 70\nh: 8\n";
        assert_eq!(unified_diff(a, b, false), "…\n  d: 4\n  e: 5\n  f: 6\n- g: 7\n+ g: 70\n  h: 8\n");
        assert_eq!(unified_diff(a, a, false), "");
        assert_eq!(unified_diff("", "x: 1\n", false), "+ x: 1\n");
    }
}
