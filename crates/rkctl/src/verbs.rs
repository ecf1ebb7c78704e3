//! The other verbs: describe, scale, rollout, wait, logs, api-resources,
//! api-versions, explain, cordon/uncordon/drain, version, and the candidates
//! behind shell completion. Each does what kubectl's does, more briefly.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt};
use http::Method;
use serde_json::{Value, json};

use crate::apply::wait_gone;
use crate::client::{ConnFlags, Ctx, Error, Result, enc, err};
use crate::discovery::{Discovery, Resource};
use crate::jsonpath::{self, Template};
use crate::printers::{format_labels, human_duration, now_secs, parse_time, tabulate, to_yaml};

const MERGE: &str = "application/merge-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";

/// `TYPE NAME…` or `TYPE/NAME…` (or `TYPE` with a selector) to objects.
async fn objects(ctx: &Ctx, disc: &Discovery, args: &[String], selector: Option<&str>) -> Result<Vec<(Resource, String)>> {
    let mut out = Vec::new();
    if args.iter().any(|a| a.contains('/')) {
        for a in args {
            let (t, n) = a.split_once('/').ok_or_else(|| Error::Msg(format!("expected TYPE/NAME: {a}")))?;
            out.push((disc.resolve_one(t)?, n.to_string()));
        }
        return Ok(out);
    }
    let Some((t, names)) = args.split_first() else { return err("you must specify the type of resource") };
    let res = disc.resolve_one(t)?;
    if names.is_empty() {
        let q = selector.map(|s| format!("?labelSelector={}", enc(s))).unwrap_or_default();
        let list = ctx.get(&format!("{}{q}", res.url(Some(&ctx.namespace), None))).await?;
        for i in list["items"].as_array().into_iter().flatten() {
            out.push((res.clone(), i["metadata"]["name"].as_str().unwrap_or_default().to_string()));
        }
    }
    out.extend(names.iter().map(|n| (res.clone(), n.clone())));
    Ok(out)
}

#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    /// TYPE [NAME…] or TYPE/NAME.
    #[arg(required = true)]
    pub args: Vec<String>,
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

/// The object's identity, then its spec and status, then its events.
pub async fn describe(ctx: &Ctx, a: &DescribeArgs) -> Result<()> {
    let disc = Discovery::load(ctx).await?;
    let mut first = true;
    for (res, name) in objects(ctx, &disc, &a.args, a.selector.as_deref()).await? {
        let o = ctx.get(&res.url(Some(&ctx.namespace), Some(&name))).await?;
        let m = &o["metadata"];
        if !first {
            println!();
        }
        first = false;
        println!("Name:         {}", m["name"].as_str().unwrap_or_default());
        if res.namespaced {
            println!("Namespace:    {}", m["namespace"].as_str().unwrap_or_default());
        }
        println!("Kind:         {}", res.kind);
        println!("Labels:       {}", format_labels(&m["labels"]).replace(',', "\n              "));
        println!("Annotations:  {}", format_labels(&m["annotations"]).replace(',', "\n              "));
        if let Some(t) = m["creationTimestamp"].as_str() {
            println!("Created:      {t} ({} ago)", parse_time(t).map(|c| human_duration(now_secs() - c)).unwrap_or_default());
        }
        for part in ["spec", "status", "data"] {
            if o[part].is_object() {
                let mut c = part.chars();
                let title: String = c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default();
                println!("{title}:");
                for l in to_yaml(&o[part]).lines() {
                    println!("  {l}");
                }
            }
        }
        let uid = m["uid"].as_str().unwrap_or_default();
        let ev = ctx.get(&format!("/api/v1/namespaces/{}/events?fieldSelector={}", ctx.namespace, enc(&format!("involvedObject.uid={uid}")))).await;
        let items = ev.as_ref().ok().and_then(|e| e["items"].as_array()).cloned().unwrap_or_default();
        if items.is_empty() {
            println!("Events:       <none>");
        } else {
            println!("Events:");
            let mut rows = vec![["Type", "Reason", "Age", "From", "Message"].map(String::from).to_vec()];
            for e in items {
                let t = e["lastTimestamp"].as_str().or(e["eventTime"].as_str()).and_then(parse_time);
                rows.push(vec![
                    e["type"].as_str().unwrap_or_default().into(),
                    e["reason"].as_str().unwrap_or_default().into(),
                    t.map(|t| human_duration(now_secs() - t)).unwrap_or_default(),
                    e["source"]["component"].as_str().or(e["reportingComponent"].as_str()).unwrap_or_default().into(),
                    e["message"].as_str().unwrap_or_default().into(),
                ]);
            }
            for l in tabulate(&rows, &mut Vec::new(), &|_, _, c| c.to_string()).lines() {
                println!("  {l}");
            }
        }
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct ScaleArgs {
    /// TYPE NAME or TYPE/NAME.
    #[arg(required = true)]
    pub args: Vec<String>,
    /// The new number of replicas.
    #[arg(long)]
    pub replicas: i64,
}

pub async fn scale(ctx: &Ctx, a: &ScaleArgs) -> Result<()> {
    let disc = Discovery::load(ctx).await?;
    for (res, name) in objects(ctx, &disc, &a.args, None).await? {
        let url = format!("{}/scale", res.url(Some(&ctx.namespace), Some(&name)));
        ctx.send(Method::PATCH, &url, MERGE, &json!({"spec": {"replicas": a.replicas}})).await?;
        println!("{}/{name} scaled", res.kind_group());
    }
    Ok(())
}

#[derive(clap::Subcommand, Debug)]
pub enum RolloutCmd {
    /// Wait until the rollout is complete.
    Status {
        target: Vec<String>,
        /// Give up after this long (e.g. 30s, 5m; 0 waits forever).
        #[arg(long, default_value = "0s")]
        timeout: String,
    },
    /// Restart the pods by changing the template.
    Restart { target: Vec<String> },
    /// Go back to the previous (or a given) revision of a Deployment.
    Undo {
        target: Vec<String>,
        #[arg(long, default_value_t = 0)]
        to_revision: i64,
    },
}

/// `30s`, `5m`, `1h`, `500ms`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.parse().map_err(|_| Error::Msg(format!("invalid duration {s}")))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return err(format!("invalid duration {s}")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// Lists then watches one object until `done` says the version it got is
/// the one waited for; `Ok(None)` when it does not exist (or is deleted).
async fn watch_until(ctx: &Ctx, res: &Resource, name: &str, timeout: Duration, mut done: impl FnMut(&Value) -> bool) -> Result<Option<Value>> {
    let base = res.url(Some(&ctx.namespace), None);
    let sel = enc(&format!("metadata.name={name}"));
    let work = async {
        loop {
            let list = ctx.get(&format!("{base}?fieldSelector={sel}")).await?;
            let Some(o) = list["items"].get(0).cloned() else { return Ok(None) };
            if done(&o) {
                return Ok(Some(o));
            }
            let rv = list["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
            let body = ctx.stream(&format!("{base}?fieldSelector={sel}&watch=true&resourceVersion={rv}"), "application/json").await?;
            let mut lines = body.lines();
            while let Some(Ok(l)) = lines.next().await {
                let ev: Value = serde_json::from_str(&l)?;
                match ev["type"].as_str() {
                    Some("DELETED") => return Ok(None),
                    Some("ADDED" | "MODIFIED") if done(&ev["object"]) => return Ok(Some(ev["object"].clone())),
                    _ => {}
                }
            }
        }
    };
    if timeout.is_zero() {
        return work.await;
    }
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => err(format!("timed out waiting for the condition on {}/{name}", res.plural_group())),
    }
}

/// kubectl's rollout messages for Deployments, StatefulSets and DaemonSets.
fn rollout_progress(kind: &str, o: &Value) -> (bool, String) {
    let (spec, st, name) = (&o["spec"], &o["status"], o["metadata"]["name"].as_str().unwrap_or_default());
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    if n(&st["observedGeneration"]) < n(&o["metadata"]["generation"]) {
        return (false, format!("Waiting for {} spec update to be observed...", kind.to_lowercase()));
    }
    let lower = kind.to_lowercase();
    let (want, updated, avail, total) = match kind {
        "DaemonSet" => {
            (n(&st["desiredNumberScheduled"]), n(&st["updatedNumberScheduled"]), n(&st["numberAvailable"]), n(&st["desiredNumberScheduled"]))
        }
        "StatefulSet" => (spec["replicas"].as_i64().unwrap_or(1), n(&st["updatedReplicas"]), n(&st["readyReplicas"]), n(&st["replicas"])),
        _ => (spec["replicas"].as_i64().unwrap_or(1), n(&st["updatedReplicas"]), n(&st["availableReplicas"]), n(&st["replicas"])),
    };
    if updated < want {
        return (false, format!("Waiting for {lower} \"{name}\" rollout to finish: {updated} out of {want} new replicas have been updated..."));
    }
    if total > updated {
        return (false, format!("Waiting for {lower} \"{name}\" rollout to finish: {} old replicas are pending termination...", total - updated));
    }
    if avail < updated {
        return (false, format!("Waiting for {lower} \"{name}\" rollout to finish: {avail} of {updated} updated replicas are available..."));
    }
    (true, format!("{lower} \"{name}\" successfully rolled out"))
}

pub async fn rollout(ctx: &Ctx, cmd: &RolloutCmd) -> Result<()> {
    let disc = Discovery::load(ctx).await?;
    match cmd {
        RolloutCmd::Status { target, timeout } => {
            for (res, name) in objects(ctx, &disc, target, None).await? {
                let mut last = String::new();
                let found = watch_until(ctx, &res, &name, parse_duration(timeout)?, |o| {
                    let (ok, msg) = rollout_progress(&res.kind, o);
                    if msg != last {
                        println!("{msg}");
                        last = msg;
                    }
                    ok
                })
                .await?;
                if found.is_none() {
                    return Err(Error::Msg(format!("{} \"{name}\" not found", res.plural_group())));
                }
            }
        }
        RolloutCmd::Restart { target } => {
            for (res, name) in objects(ctx, &disc, target, None).await? {
                let at = crate::printers::rfc3339(now_secs());
                let patch = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": at}}}}});
                ctx.send(Method::PATCH, &res.url(Some(&ctx.namespace), Some(&name)), STRATEGIC, &patch).await?;
                println!("{}/{name} restarted", res.kind_group());
            }
        }
        RolloutCmd::Undo { target, to_revision } => {
            for (res, name) in objects(ctx, &disc, target, None).await? {
                if res.kind != "Deployment" {
                    return err(format!("rollout undo supports Deployments only, not {}", res.kind));
                }
                undo_deployment(ctx, &disc, &res, &name, *to_revision).await?;
                println!("{}/{name} rolled back", res.kind_group());
            }
        }
    }
    Ok(())
}

/// Puts the template of an earlier ReplicaSet of the Deployment back.
async fn undo_deployment(ctx: &Ctx, disc: &Discovery, res: &Resource, name: &str, to: i64) -> Result<()> {
    let d = ctx.get(&res.url(Some(&ctx.namespace), Some(name))).await?;
    let uid = d["metadata"]["uid"].clone();
    let rs_res = disc.resolve_one("replicasets.apps")?;
    let list = ctx.get(&rs_res.url(Some(&ctx.namespace), None)).await?;
    let rev = |o: &Value| o["metadata"]["annotations"]["deployment.kubernetes.io/revision"].as_str().and_then(|r| r.parse::<i64>().ok()).unwrap_or(0);
    let mut owned: Vec<Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|rs| rs["metadata"]["ownerReferences"].as_array().into_iter().flatten().any(|r| r["uid"] == uid))
        .cloned()
        .collect();
    owned.sort_by_key(|o| std::cmp::Reverse(rev(o)));
    let pick = if to > 0 { owned.iter().find(|o| rev(o) == to) } else { owned.get(1) };
    let Some(rs) = pick else { return err(format!("no rollout history found for deployment \"{name}\"")) };
    let mut tpl = rs["spec"]["template"].clone();
    if let Some(l) = tpl["metadata"]["labels"].as_object_mut() {
        l.remove("pod-template-hash");
    }
    // A JSON patch replaces the template whole (a merge patch would keep
    // annotations the old template lacks, such as restartedAt).
    let patch = json!([{"op": "replace", "path": "/spec/template", "value": tpl}]);
    ctx.send(Method::PATCH, &res.url(Some(&ctx.namespace), Some(name)), "application/json-patch+json", &patch).await?;
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct WaitArgs {
    /// TYPE/NAME…, or TYPE [NAME…] with -l or --all.
    #[arg(required = true)]
    pub args: Vec<String>,
    /// `condition=NAME[=VALUE]`, `delete`, `create` or `jsonpath={…}=VALUE`.
    #[arg(long = "for", required = true)]
    pub for_: String,
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    #[arg(long)]
    pub all: bool,
    /// How long to wait (e.g. 30s, 5m).
    #[arg(long, default_value = "30s")]
    pub timeout: String,
}

pub async fn wait(ctx: &Ctx, a: &WaitArgs) -> Result<()> {
    let disc = Discovery::load(ctx).await?;
    let timeout = parse_duration(&a.timeout)?;
    let targets = objects(ctx, &disc, &a.args, a.selector.as_deref()).await?;
    if targets.is_empty() {
        return err("no matching resources found");
    }
    let cond: Box<dyn Fn(&Value) -> bool> = if let Some(c) = a.for_.strip_prefix("condition=") {
        let (ty, want) = c.split_once('=').unwrap_or((c, "True"));
        let (ty, want) = (ty.to_lowercase(), want.to_string());
        Box::new(move |o: &Value| {
            o["status"]["conditions"].as_array().into_iter().flatten().any(|x| {
                x["type"].as_str().is_some_and(|t| t.to_lowercase() == ty) && x["status"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(&want))
            })
        })
    } else if let Some(j) = a.for_.strip_prefix("jsonpath=") {
        let (path, want) = j.rsplit_once('=').map_or((j, None), |(p, v)| (p, Some(v.to_string())));
        let t = Template::relaxed(path.trim_matches('\''))?;
        Box::new(move |o: &Value| {
            let vals = t.values(o);
            match &want {
                Some(w) => vals.iter().any(|v| jsonpath::text(v) == *w),
                None => !vals.is_empty(),
            }
        })
    } else if a.for_ == "delete" || a.for_ == "create" {
        Box::new(|_: &Value| true)
    } else {
        return err(format!("unrecognized condition: \"{}\"", a.for_));
    };
    for (res, name) in targets {
        let label = format!("{}/{name}", res.kind_group());
        if a.for_ == "delete" {
            if !wait_gone(ctx, &res.url(Some(&ctx.namespace), Some(&name)), timeout).await? {
                return err(format!("timed out waiting for the condition on {}/{name}", res.plural_group()));
            }
            println!("{label} condition met");
            continue;
        }
        match watch_until(ctx, &res, &name, timeout, &cond).await? {
            Some(_) => println!("{label} condition met"),
            None => return Err(Error::Msg(format!("{} \"{name}\" not found", res.plural_group()))),
        }
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// POD, or TYPE/NAME of a workload or Service (one of its pods).
    pub target: Option<String>,
    #[arg(short, long)]
    pub container: Option<String>,
    /// Stream new lines as they come.
    #[arg(short, long)]
    pub follow: bool,
    /// Lines from the end to show first (default: all, or 10 with a selector).
    #[arg(long)]
    pub tail: Option<i64>,
    /// The pods matching this selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Prefix each line with its source, [pod/NAME/CONTAINER].
    #[arg(long)]
    pub prefix: bool,
    /// Every container of each pod.
    #[arg(long)]
    pub all_containers: bool,
    /// The previous instance of the container, if it restarted.
    #[arg(short, long)]
    pub previous: bool,
    /// Start each line with its RFC 3339 timestamp.
    #[arg(long)]
    pub timestamps: bool,
    /// Only lines newer than this (e.g. 5s, 2m, 3h).
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many log streams followed at once.
    #[arg(long, default_value_t = 5)]
    pub max_log_requests: usize,
    /// No "Defaulted container" notes.
    #[arg(short, long)]
    pub quiet: bool,
}

pub async fn logs(ctx: &Ctx, a: &LogsArgs) -> Result<()> {
    let ns = &ctx.namespace;
    let pods: Vec<Value> = match (&a.selector, &a.target) {
        (Some(sel), _) => {
            ctx.get(&format!("/api/v1/namespaces/{ns}/pods?labelSelector={}", enc(sel))).await?["items"].as_array().cloned().unwrap_or_default()
        }
        (None, Some(t)) => vec![crate::streams::resolve_pod(ctx, t).await?],
        (None, None) => return err("expected POD or -l selector"),
    };
    if pods.is_empty() {
        eprintln!("No resources found in {ns} namespace.");
        return Ok(());
    }
    // kubectl shows the last 10 lines of each source when a selector picks them.
    let tail = a.tail.filter(|t| *t >= 0).or(a.selector.as_ref().map(|_| 10));
    let since = a.since.as_deref().map(parse_duration).transpose()?;
    let mut sources = Vec::new();
    for p in &pods {
        let pod = p["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let containers = if a.all_containers {
            let names = |key: &str| -> Vec<String> {
                p["spec"][key].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str().map(str::to_string)).collect()
            };
            let mut all = names("initContainers");
            all.extend(names("containers"));
            all
        } else {
            let c = crate::streams::pick_container(p, a.container.as_deref(), a.quiet)?;
            // kubectl checks the name itself before asking the server.
            let known = ["containers", "initContainers", "ephemeralContainers"]
                .iter()
                .any(|k| p["spec"][*k].as_array().into_iter().flatten().any(|x| x["name"] == c.as_str()));
            if !known {
                return err(format!("container {c} is not valid for pod {pod}"));
            }
            vec![c]
        };
        sources.extend(containers.into_iter().map(|c| (pod.clone(), c)));
    }
    if a.follow && sources.len() > a.max_log_requests {
        return err(format!(
            "you are attempting to follow {} log streams, but maximum allowed concurrency is {}, use --max-log-requests to increase the limit",
            sources.len(),
            a.max_log_requests
        ));
    }
    let mut streams = Vec::new();
    for (pod, c) in sources {
        let mut url = format!("/api/v1/namespaces/{ns}/pods/{pod}/log?container={c}");
        for (on, q) in [(a.follow, "follow"), (a.previous, "previous"), (a.timestamps, "timestamps")] {
            if on {
                url.push_str(&format!("&{q}=true"));
            }
        }
        if let Some(t) = tail {
            url.push_str(&format!("&tailLines={t}"));
        }
        if let Some(d) = since {
            url.push_str(&format!("&sinceSeconds={}", d.as_secs().max(1)));
        }
        let tag = if a.prefix { format!("[pod/{pod}/{c}] ") } else { String::new() };
        streams.push(async move {
            let body = ctx.stream(&url, "*/*").await?;
            let mut lines = body.lines();
            while let Some(l) = lines.next().await {
                let l = l?;
                let mut o = std::io::stdout().lock();
                writeln!(o, "{tag}{l}")?;
                o.flush()?;
            }
            Ok::<(), Error>(())
        });
    }
    // Followed streams run side by side; otherwise one source after another,
    // so each source's lines stay together, as kubectl prints them.
    if a.follow {
        for r in futures::future::join_all(streams).await {
            r?;
        }
    } else {
        for s in streams {
            s.await?;
        }
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct ApiResourcesArgs {
    /// Output format: wide or name.
    #[arg(short, long)]
    pub output: Option<String>,
    /// Only namespaced (true) or cluster-scoped (false) resources.
    #[arg(long)]
    pub namespaced: Option<bool>,
    /// Only resources of this API group.
    #[arg(long)]
    pub api_group: Option<String>,
    #[arg(long)]
    pub no_headers: bool,
}

pub async fn api_resources(ctx: &Ctx, a: &ApiResourcesArgs) -> Result<()> {
    let disc = Discovery::load(ctx).await?;
    let mut rs: Vec<&Resource> = disc
        .resources
        .iter()
        .filter(|r| a.namespaced.is_none_or(|n| n == r.namespaced) && a.api_group.as_ref().is_none_or(|g| *g == r.group))
        .collect();
    rs.sort_by(|x, y| (&x.group, &x.plural).cmp(&(&y.group, &y.plural)));
    if a.output.as_deref() == Some("name") {
        for r in rs {
            println!("{}", r.plural_group());
        }
        return Ok(());
    }
    let wide = a.output.as_deref() == Some("wide");
    let mut rows = Vec::new();
    if !a.no_headers {
        let mut h = vec!["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"];
        if wide {
            h.extend(["VERBS", "CATEGORIES"]);
        }
        rows.push(h.into_iter().map(String::from).collect());
    }
    for r in rs {
        let mut row = vec![r.plural.clone(), r.short_names.join(","), r.api_version(), r.namespaced.to_string(), r.kind.clone()];
        if wide {
            row.push(format!("[{}]", r.verbs.join(" ")));
            row.push(r.categories.join(","));
        }
        rows.push(row);
    }
    print!("{}", tabulate(&rows, &mut Vec::new(), &|_, _, c| c.to_string()));
    Ok(())
}

pub async fn api_versions(ctx: &Ctx) -> Result<()> {
    let disc = Discovery::load(ctx).await?;
    let mut v = disc.group_versions.clone();
    v.sort();
    v.dedup();
    for gv in v {
        println!("{gv}");
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// TYPE or TYPE.field.path, e.g. `pods.spec.containers`.
    pub path: String,
}

/// Field documentation from the server's OpenAPI v3 schema.
pub async fn explain(ctx: &Ctx, a: &ExplainArgs) -> Result<()> {
    let disc = Discovery::load(ctx).await?;
    let mut parts = a.path.split('.');
    let first = parts.next().unwrap_or_default();
    let mut fields: Vec<&str> = parts.collect();
    // `deployments.apps.spec` names a group; try the longest type name first.
    let mut res = disc.resolve_one(first);
    if let Some(g) = fields.first().copied()
        && let Ok(r) = disc.resolve_one(&format!("{first}.{g}"))
        && !["spec", "status", "metadata"].contains(&g)
    {
        res = Ok(r);
        fields.remove(0);
    }
    let res = res?;
    let gv = if res.group.is_empty() { format!("api/{}", res.version) } else { format!("apis/{}/{}", res.group, res.version) };
    let doc = ctx.get(&format!("/openapi/v3/{gv}")).await?;
    let schemas = &doc["components"]["schemas"];
    let is_kind = |s: &Value| {
        s["x-kubernetes-group-version-kind"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|g| g["kind"] == res.kind.as_str() && g["group"] == res.group.as_str())
    };
    let Some(mut schema) = schemas.as_object().and_then(|m| m.values().find(|s| is_kind(s))).cloned() else {
        return err(format!("no schema for {} in the server's OpenAPI", res.kind));
    };
    let resolve = |s: &Value| -> Value {
        let r = s["$ref"].as_str().or(s["allOf"][0]["$ref"].as_str());
        match r.and_then(|r| r.rsplit('/').next()) {
            Some(name) => Value::Object(schemas[name].as_object().cloned().unwrap_or_default()).tap_desc(s),
            None => s.clone(),
        }
    };
    let mut field_name = String::new();
    for f in &fields {
        let next = schema["properties"][*f].clone();
        if next.is_null() {
            return err(format!("field \"{f}\" does not exist"));
        }
        let next = resolve(&next);
        schema = if next["type"] == "array" { resolve(&next["items"]).tap_desc(&next) } else { next };
        field_name = f.to_string();
    }
    println!("GROUP:      {}\nKIND:       {}\nVERSION:    {}\n", res.group, res.kind, res.version);
    if !field_name.is_empty() {
        println!("FIELD: {field_name} <{}>\n", type_name(&schema));
    }
    println!("DESCRIPTION:\n    {}\n", schema["description"].as_str().unwrap_or("<empty>").replace('\n', "\n    "));
    if let Some(props) = schema["properties"].as_object() {
        println!("FIELDS:");
        let sorted: BTreeMap<&String, &Value> = props.iter().collect();
        let required: Vec<&str> = schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        for (k, v) in sorted {
            let v = resolve(v);
            let req = if required.contains(&k.as_str()) { " -required-" } else { "" };
            println!("  {k}\t<{}>{req}", type_name(&v));
            let d = v["description"].as_str().unwrap_or_default();
            println!("    {}\n", d.lines().next().unwrap_or_default());
        }
    }
    Ok(())
}

/// Keeps the description of a `$ref`ing property over the referenced type's.
trait TapDesc {
    fn tap_desc(self, from: &Value) -> Value;
}

impl TapDesc for Value {
    fn tap_desc(mut self, from: &Value) -> Value {
        if let Some(d) = from.get("description") {
            self["description"] = d.clone();
        }
        self
    }
}

fn type_name(s: &Value) -> String {
    match s["type"].as_str() {
        Some("array") => format!("[]{}", s["items"]["type"].as_str().unwrap_or("Object")),
        Some("object") | None => "Object".into(),
        Some(t) => t.to_string(),
    }
}

pub async fn cordon(ctx: &Ctx, node: &str, on: bool) -> Result<()> {
    let url = format!("/api/v1/nodes/{node}");
    let n = ctx.get(&url).await?;
    let word = if on { "cordoned" } else { "uncordoned" };
    if n["spec"]["unschedulable"].as_bool().unwrap_or(false) == on {
        println!("node/{node} already {word}");
        return Ok(());
    }
    ctx.send(Method::PATCH, &url, MERGE, &json!({"spec": {"unschedulable": if on { json!(true) } else { Value::Null }}})).await?;
    println!("node/{node} {word}");
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct DrainArgs {
    pub node: String,
    /// Leave pods of DaemonSets in place (they would come back anyway).
    #[arg(long)]
    pub ignore_daemonsets: bool,
    /// Also evict pods that no controller would recreate.
    #[arg(long)]
    pub force: bool,
    /// Evict pods that use emptyDir volumes (their data is lost).
    #[arg(long)]
    pub delete_emptydir_data: bool,
    /// How long to wait for the pods to go.
    #[arg(long, default_value = "0s")]
    pub timeout: String,
}

/// Cordons the node, evicts its pods through the Eviction API (so
/// disruption budgets hold) and waits until they are gone.
pub async fn drain(ctx: &Ctx, a: &DrainArgs) -> Result<()> {
    cordon(ctx, &a.node, true).await?;
    let pods = ctx.get(&format!("/api/v1/pods?fieldSelector={}", enc(&format!("spec.nodeName={}", a.node)))).await?;
    let mut evict = Vec::new();
    let mut problems = Vec::new();
    for p in pods["items"].as_array().into_iter().flatten() {
        let (ns, name) = (p["metadata"]["namespace"].as_str().unwrap_or_default(), p["metadata"]["name"].as_str().unwrap_or_default());
        let owners: Vec<&str> = p["metadata"]["ownerReferences"].as_array().into_iter().flatten().filter_map(|o| o["kind"].as_str()).collect();
        if matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")) {
            evict.push((ns.to_string(), name.to_string()));
        } else if owners.contains(&"DaemonSet") {
            if !a.ignore_daemonsets {
                problems.push(format!("cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {ns}/{name}"));
            }
        } else if owners.is_empty() && !a.force {
            problems.push(format!("cannot delete Pods that declare no controller (use --force to override): {ns}/{name}"));
        } else if p["spec"]["volumes"].as_array().into_iter().flatten().any(|v| v.get("emptyDir").is_some()) && !a.delete_emptydir_data {
            problems.push(format!("cannot delete Pods with local storage (use --delete-emptydir-data to override): {ns}/{name}"));
        } else {
            evict.push((ns.to_string(), name.to_string()));
        }
    }
    if !problems.is_empty() {
        return err(format!("unable to drain node \"{}\" due to error: {}", a.node, problems.join(", ")));
    }
    for (ns, name) in &evict {
        println!("evicting pod {ns}/{name}");
        let body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": ns}});
        match ctx.send(Method::POST, &format!("/api/v1/namespaces/{ns}/pods/{name}/eviction"), "application/json", &body).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    let timeout = parse_duration(&a.timeout)?;
    let timeout = if timeout.is_zero() { Duration::from_secs(24 * 3600) } else { timeout };
    for (ns, name) in &evict {
        if !wait_gone(ctx, &format!("/api/v1/namespaces/{ns}/pods/{name}"), timeout).await? {
            return err(format!("timed out waiting for pod {ns}/{name} to be evicted"));
        }
        println!("pod/{name} evicted");
    }
    println!("node/{} drained", a.node);
    Ok(())
}

pub async fn version(ctx: &Ctx) -> Result<()> {
    println!("Client Version: v{}", env!("CARGO_PKG_VERSION"));
    let v = ctx.get("/version").await?;
    println!("Server Version: {}", v["gitVersion"].as_str().unwrap_or("unknown"));
    Ok(())
}

/// Completion candidates, one per line: verbs, then flags, resource types,
/// object names (from the server) and namespaces after `-n`.
pub async fn complete(conn: &ConnFlags, cmd: &clap::Command, words: &[String]) -> Result<()> {
    let (cur, done) = words.split_last().map_or(("", &[][..]), |(c, d)| (c.as_str(), d));
    let mut out: Vec<String> = Vec::new();
    // Connection flags typed on the line (`-n team`, `--context=b`) choose
    // where names come from, and are neither the verb nor its arguments.
    let mut conn = conn.clone();
    let mut rest: Vec<&String> = Vec::new();
    let mut i = 0;
    while i < done.len() {
        let w = &done[i];
        let (flag, inline) = match w.split_once('=') {
            Some((f, v)) if f.starts_with('-') => (f, Some(v.to_string())),
            _ => (w.as_str(), None),
        };
        if matches!(flag, "-n" | "--namespace" | "--context" | "--kubeconfig" | "--cluster" | "--user") {
            let value = inline.or_else(|| done.get(i + 1).cloned());
            i += if w.contains('=') { 1 } else { 2 };
            match flag {
                "-n" | "--namespace" => conn.namespace = value,
                "--context" => conn.context = value,
                "--kubeconfig" => conn.kubeconfig = value.map(Into::into),
                "--cluster" => conn.cluster = value,
                _ => conn.user = value,
            }
            continue;
        }
        rest.push(w);
        i += 1;
    }
    let at = rest.iter().position(|w| !w.starts_with('-'));
    let verb = at.and_then(|i| cmd.find_subcommand(rest[i]));
    let positional: Vec<&String> = at.map_or(&[][..], |i| &rest[i + 1..]).iter().copied().filter(|w| !w.starts_with('-')).collect();
    let prev = done.last().map(String::as_str).unwrap_or_default();
    let conn = &conn;
    let server = async |kind: &str| -> Result<Vec<String>> {
        let ctx = conn.connect().await?;
        let disc = Discovery::load(&ctx).await?;
        if kind.is_empty() {
            let mut v: Vec<String> = disc.resources.iter().filter(|r| r.verbs.iter().any(|v| v == "list")).map(|r| r.plural.clone()).collect();
            v.sort();
            v.dedup();
            return Ok(v);
        }
        let res = disc.resolve_one(kind)?;
        let list = ctx.get(&res.url(Some(&ctx.namespace), None)).await?;
        Ok(list["items"].as_array().into_iter().flatten().filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string)).collect())
    };
    match verb {
        None => out.extend(cmd.get_subcommands().filter(|s| !s.is_hide_set()).map(|s| s.get_name().to_string())),
        Some(_) if prev == "-n" || prev == "--namespace" => out = server("namespaces").await.unwrap_or_default(),
        Some(v) if cur.starts_with('-') => {
            out.extend(v.get_arguments().chain(cmd.get_arguments()).filter_map(|a| a.get_long().map(|l| format!("--{l}"))));
        }
        Some(v) if ["get", "describe", "delete", "explain", "scale", "wait"].contains(&v.get_name()) => {
            out = match positional.first() {
                None => server("").await.unwrap_or_default(),
                Some(kind) => server(kind.split(',').next().unwrap_or_default()).await.unwrap_or_default(),
            };
        }
        Some(v) if ["logs", "exec", "attach", "port-forward"].contains(&v.get_name()) => out = server("pods").await.unwrap_or_default(),
        Some(v) if ["cordon", "uncordon", "drain"].contains(&v.get_name()) => out = server("nodes").await.unwrap_or_default(),
        Some(v) => out.extend(v.get_subcommands().map(|s| s.get_name().to_string())),
    }
    for c in out.into_iter().filter(|c| c.starts_with(cur)) {
        println!("{c}");
    }
    Ok(())
}
