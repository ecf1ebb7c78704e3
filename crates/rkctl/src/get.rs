//! `get`: resolve the types, fetch server-side tables (or whole objects for
//! `-o json|yaml|name|jsonpath|custom-columns`), shape the rows as kubectl does
//! (`-o wide`, `-A`'s NAMESPACE, `kind/name` for several types, `-L`,
//! `--show-labels`, `--sort-by`) and print them; `-w` hands the same sources
//! to the live view.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use serde_json::{Value, json};

use crate::client::{Ctx, Error, Result, TABLE, enc, err};
use crate::discovery::{Discovery, Resource};
use crate::jsonpath::{self, Template};
use crate::model::{Column, Input};
use crate::printers::{self, RESET, go_fmt, parse_time, status_color, tabulate};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct GetArgs {
    /// TYPE[,TYPE…] [NAME…], or TYPE/NAME…
    pub args: Vec<String>,
    /// Output format: wide, yaml, json, name, jsonpath=…, custom-columns=….
    #[arg(short, long)]
    pub output: Option<String>,
    /// Label selector, e.g. `app=web,tier!=db`.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector, e.g. `status.phase=Running`.
    #[arg(long)]
    pub field_selector: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// After listing, watch for changes (a live table on a terminal).
    #[arg(short, long)]
    pub watch: bool,
    /// Watch without listing first.
    #[arg(long)]
    pub watch_only: bool,
    /// Print the event type (ADDED, MODIFIED, DELETED) of each watch event.
    #[arg(long)]
    pub output_watch_events: bool,
    /// Add a LABELS column.
    #[arg(long)]
    pub show_labels: bool,
    /// Add a column for each of these label keys.
    #[arg(short = 'L', long = "label-columns", value_delimiter = ',')]
    pub label_columns: Vec<String>,
    /// Sort by a JSONPath expression, e.g. `.metadata.name`.
    #[arg(long)]
    pub sort_by: Option<String>,
    /// Do not print column headers.
    #[arg(long)]
    pub no_headers: bool,
    /// Objects per list request.
    #[arg(long, default_value_t = 500)]
    pub chunk_size: u32,
    /// Do not fail on objects that do not exist.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Prefix names with their kind even for one type.
    #[arg(long)]
    pub show_kind: bool,
    /// Keep metadata.managedFields in json/yaml output.
    #[arg(long)]
    pub show_managed_fields: bool,
}

/// One thing to list or watch: a type in a namespace (or all), with
/// optional names and the selectors as a query string.
#[derive(Clone, Debug)]
pub struct Source {
    pub res: Resource,
    pub ns: Option<String>,
    pub names: Vec<String>,
    pub query: String,
}

impl Source {
    /// The collection URL with the selectors (a single name becomes a field
    /// selector so it can be watched too).
    pub fn list_url(&self, extra: &str) -> String {
        let mut q = self.query.clone();
        if let [name] = self.names.as_slice() {
            q.push_str(&format!("&fieldSelector={}", enc(&format!("metadata.name={name}"))));
        }
        format!("{}?{}{extra}", self.res.url(self.ns.as_deref(), None), q.trim_start_matches('&'))
    }
}

/// How rows are turned into text cells, shared by printing and the live view.
#[derive(Clone, Debug, Default)]
pub struct Shape {
    pub wide: bool,
    pub namespace_col: bool,
    /// `pod/` style prefix for the name column.
    pub kind_prefix: Option<String>,
    pub label_cols: Vec<String>,
    pub show_labels: bool,
}

/// A table's column definitions: name and priority (0 shows by default).
pub type Cols = Vec<(String, i64)>;

/// A server-side table (all pages of it).
#[derive(Debug, Default)]
pub struct Table {
    pub cols: Cols,
    pub rows: Vec<Row>,
    pub rv: String,
}

/// One table row: its cells, the metadata that tables use, and the whole
/// object when it was asked for (else null).
#[derive(Debug)]
pub struct Row {
    pub cells: Vec<Value>,
    pub meta: Meta,
    pub object: Value,
}

impl Row {
    /// A row of a watch event's table.
    pub fn from_event(r: &Value) -> Row {
        let object = r["object"].clone();
        let meta = serde_json::from_value(object["metadata"].clone()).unwrap_or_default();
        Row { cells: r["cells"].as_array().cloned().unwrap_or_default(), meta, object }
    }
}

/// How much of each object a table row carries (`includeObject`): nothing
/// when the cells say it all, metadata for namespaces, labels and the live
/// view's keys and ages, the whole object for sorting and object formats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<O> {
    #[serde(default)]
    column_definitions: Vec<ColDef>,
    #[serde(default = "Vec::new")]
    rows: Vec<PageRow<O>>,
    #[serde(default)]
    metadata: PageMeta,
}

#[derive(serde::Deserialize)]
struct ColDef {
    name: String,
    #[serde(default)]
    priority: i64,
}

#[derive(serde::Deserialize)]
struct PageRow<O> {
    cells: Vec<Value>,
    object: Option<O>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PageMeta {
    #[serde(default)]
    resource_version: String,
    #[serde(default, rename = "continue")]
    cont: String,
}

/// The part of an object's metadata that tables use; the rest (managed
/// fields above all) is skipped while parsing, which keeps big lists cheap.
#[derive(serde::Deserialize)]
struct Slim {
    metadata: Meta,
}

#[derive(serde::Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub creation_timestamp: Option<String>,
}

impl Table {
    /// Appends one page of a list; returns its `continue` token.
    fn add_page(&mut self, text: &str, include: Include) -> Result<String> {
        fn take<O>(t: &mut Table, p: Page<O>, split: impl Fn(Option<O>) -> (Meta, Value)) -> String {
            if !p.column_definitions.is_empty() {
                t.cols = p.column_definitions.into_iter().map(|d| (d.name, d.priority)).collect();
            }
            t.rows.extend(p.rows.into_iter().map(|r| {
                let (meta, object) = split(r.object);
                Row { cells: r.cells, meta, object }
            }));
            t.rv = p.metadata.resource_version;
            p.metadata.cont
        }
        Ok(match include {
            Include::Object => take(self, serde_json::from_str::<Page<Value>>(text)?, |o| {
                let o = o.unwrap_or_default();
                (serde_json::from_value(o["metadata"].clone()).unwrap_or_default(), o)
            }),
            _ => take(self, serde_json::from_str::<Page<Slim>>(text)?, |o| (o.map(|s| s.metadata).unwrap_or_default(), Value::Null)),
        })
    }
}

/// A table cell as kubectl prints it.
fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => go_fmt(other),
    }
}

/// The text after the last `/` of a label key, upper-cased (kubectl's `-L` header).
fn label_header(key: &str) -> String {
    key.rsplit('/').next().unwrap_or(key).to_uppercase()
}

impl Shape {
    fn visible(&self, cols: &[(String, i64)]) -> Vec<usize> {
        (0..cols.len()).filter(|&i| self.wide || cols[i].1 == 0).collect()
    }

    pub fn columns(&self, cols: &[(String, i64)]) -> Vec<Column> {
        let mut out = Vec::new();
        if self.namespace_col {
            out.push(Column { name: "NAMESPACE".into(), priority: 0 });
        }
        for i in self.visible(cols) {
            out.push(Column { name: cols[i].0.to_uppercase(), priority: cols[i].1 });
        }
        out.extend(self.label_cols.iter().map(|k| Column { name: label_header(k), priority: 0 }));
        if self.show_labels {
            out.push(Column { name: "LABELS".into(), priority: 0 });
        }
        out
    }

    pub fn cells(&self, cols: &[(String, i64)], row: &Row) -> Vec<String> {
        let meta = &row.meta;
        let mut out = Vec::new();
        if self.namespace_col {
            out.push(meta.namespace.clone());
        }
        for (n, i) in self.visible(cols).into_iter().enumerate() {
            let mut t = row.cells.get(i).map(cell_text).unwrap_or_default();
            if let (0, Some(p)) = (n, &self.kind_prefix) {
                t = format!("{p}/{t}");
            }
            out.push(t);
        }
        for k in &self.label_cols {
            out.push(meta.labels.get(k).cloned().unwrap_or_default());
        }
        if self.show_labels {
            let l: Vec<String> = meta.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push(if l.is_empty() { "<none>".into() } else { l.join(",") });
        }
        out
    }

    /// A row for the live model, keyed by namespace and name.
    pub fn input(&self, cols: &[(String, i64)], row: &Row) -> Input {
        let key = format!("{}/{}", row.meta.namespace, row.meta.name);
        Input { key, cells: self.cells(cols, row), created: row.meta.creation_timestamp.as_deref().and_then(parse_time) }
    }
}

/// Whether (and how) stdout gets colour; decided once per run.
pub fn paint_fn(color: bool, header: &[Column]) -> impl Fn(usize, &str) -> String + '_ {
    move |i, text: &str| {
        let col = header.get(i).map_or("", |c| c.name.as_str());
        match (color, col == "STATUS", status_color(text)) {
            (true, true, Some(c)) => format!("{c}{text}{RESET}"),
            _ => text.to_string(),
        }
    }
}

/// Resolves the positional arguments to sources.
pub fn sources(disc: &Discovery, ctx: &Ctx, a: &GetArgs) -> Result<(Vec<Source>, bool)> {
    if a.args.is_empty() {
        return err("you must specify the type of resource to get");
    }
    let ns = (!a.all_namespaces).then(|| ctx.namespace.clone());
    let mut query = String::new();
    if let Some(l) = &a.selector {
        query.push_str(&format!("&labelSelector={}", enc(l)));
    }
    if let Some(f) = &a.field_selector {
        query.push_str(&format!("&fieldSelector={}", enc(f)));
    }
    let mk = |res: Resource, names: Vec<String>| Source { ns: ns.clone(), res, names, query: query.clone() };
    let mut out: Vec<Source> = Vec::new();
    let slash = a.args.iter().any(|x| x.contains('/'));
    if slash {
        for x in &a.args {
            let Some((t, name)) = x.split_once('/') else {
                return err(format!(
                    "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'rkctl get resource/<resource_name>' instead of 'rkctl get resource resource/<resource_name>'): {x}"
                ));
            };
            let res = disc.resolve_one(t)?;
            match out.iter_mut().find(|s| s.res == res) {
                Some(s) => s.names.push(name.to_string()),
                None => out.push(mk(res, vec![name.to_string()])),
            }
        }
    } else {
        let names: Vec<String> = a.args[1..].to_vec();
        for t in a.args[0].split(',').filter(|t| !t.is_empty()) {
            for res in disc.resolve(t)? {
                if !out.iter().any(|s| s.res == res) {
                    out.push(mk(res, names.clone()));
                }
            }
        }
    }
    let with_kind = slash || out.len() > 1 || a.show_kind;
    Ok((out, with_kind))
}

impl GetArgs {
    pub fn shape(&self, src: &Source, with_kind: bool) -> Shape {
        Shape {
            wide: self.output.as_deref() == Some("wide"),
            namespace_col: self.all_namespaces && src.res.namespaced,
            kind_prefix: with_kind.then(|| src.res.kind_group()),
            label_cols: self.label_columns.clone(),
            show_labels: self.show_labels,
        }
    }
}

/// Lists a source as a table, following `continue` tokens.
pub async fn fetch_table(ctx: &Ctx, src: &Source, chunk: u32, include: Include) -> Result<Table> {
    let mut t = Table::default();
    fetch_table_pages(ctx, src, chunk, include, |p| {
        t.cols = p.cols;
        t.rows.extend(p.rows);
        t.rv = p.rv;
    })
    .await?;
    Ok(t)
}

/// Lists a source as a table one page at a time, so a caller that keeps
/// something smaller than the rows never holds the whole list as rows.
/// Every page carries the columns.
pub async fn fetch_table_pages(ctx: &Ctx, src: &Source, chunk: u32, include: Include, mut each: impl FnMut(Table)) -> Result<()> {
    let q = match include {
        Include::None => "includeObject=None",
        Include::Metadata => "includeObject=Metadata",
        Include::Object => "includeObject=Object",
    };
    let mut cols = Cols::default();
    // Hands one page on; its `continue` token, and whether it had rows.
    let mut page = |text: &str, cols: &mut Cols| -> Result<(String, bool)> {
        let mut t = Table::default();
        let next = t.add_page(text, include)?;
        if t.cols.is_empty() {
            t.cols = cols.clone();
        } else {
            *cols = t.cols.clone();
        }
        let rows = !t.rows.is_empty();
        each(t);
        Ok((next, rows))
    };
    if src.names.len() > 1 {
        // Several names: one GET each, in the order given.
        for n in &src.names {
            let text = ctx.get_text(&format!("{}?{q}", src.res.url(src.ns.as_deref(), Some(n))), TABLE).await?;
            page(&text, &mut cols)?;
        }
        return Ok(());
    }
    let mut cont = String::new();
    let mut found = false;
    loop {
        let url = src.list_url(&format!("&limit={chunk}&{q}{cont}"));
        let (next, rows) = page(&ctx.get_text(&url, TABLE).await?, &mut cols)?;
        found |= rows;
        if next.is_empty() {
            break;
        }
        cont = format!("&continue={}", enc(&next));
    }
    if let ([name], false) = (src.names.as_slice(), found) {
        // Listing by name found nothing: say so as a GET would.
        ctx.get_as(&src.res.url(src.ns.as_deref(), Some(name)), TABLE).await?;
    }
    Ok(())
}

/// Lists a source as whole objects, with apiVersion and kind set on each.
pub async fn fetch_objects(ctx: &Ctx, src: &Source, chunk: u32, managed_fields: bool) -> Result<Vec<Value>> {
    let mut items = Vec::new();
    let mut set_kind = |mut o: Value| {
        o["apiVersion"] = json!(src.res.api_version());
        o["kind"] = json!(src.res.kind);
        if !managed_fields && let Some(m) = o["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
        o
    };
    if !src.names.is_empty() {
        for n in &src.names {
            let o = ctx.get(&src.res.url(src.ns.as_deref(), Some(n))).await?;
            items.push(set_kind(o));
        }
        return Ok(items);
    }
    let mut cont = String::new();
    loop {
        let page = ctx.get(&src.list_url(&format!("&limit={chunk}{cont}"))).await?;
        items.extend(page["items"].as_array().cloned().unwrap_or_default().into_iter().map(&mut set_kind));
        match page["metadata"]["continue"].as_str().filter(|c| !c.is_empty()) {
            Some(c) => cont = format!("&continue={}", enc(c)),
            None => break,
        }
    }
    Ok(items)
}

/// The value `--sort-by` compares; numbers compare as numbers.
fn sort_rows<T>(rows: &mut [T], expr: &Template, obj: impl Fn(&T) -> &Value) {
    rows.sort_by(|a, b| {
        let (x, y) = (expr.values(obj(a)).first().copied().cloned(), expr.values(obj(b)).first().copied().cloned());
        match (&x, &y) {
            (Some(Value::Number(p)), Some(Value::Number(q))) => p.as_f64().partial_cmp(&q.as_f64()).unwrap_or(std::cmp::Ordering::Equal),
            _ => x.as_ref().map(jsonpath::text).cmp(&y.as_ref().map(jsonpath::text)),
        }
    });
}

/// Runs `get`.
pub async fn run(ctx: &Ctx, a: &GetArgs, color_flag: &str) -> Result<()> {
    let disc = Discovery::load(ctx).await?;
    let (srcs, with_kind) = sources(&disc, ctx, a)?;
    let stdout_tty = std::io::stdout().is_terminal();
    let color = printers::use_color(color_flag, stdout_tty);
    if a.watch || a.watch_only {
        return crate::live::run(ctx, a, srcs, with_kind, stdout_tty, color).await;
    }
    let sort = a.sort_by.as_deref().map(Template::relaxed).transpose()?;
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut failures = Vec::new();
    let mut found = 0;
    let fmt = a.output.as_deref().unwrap_or("");
    if matches!(fmt, "" | "wide") {
        let mut first = true;
        for src in &srcs {
            let shape = a.shape(src, with_kind);
            let include = match (&sort, shape.namespace_col || shape.show_labels || !shape.label_cols.is_empty()) {
                (Some(_), _) => Include::Object,
                (None, true) => Include::Metadata,
                (None, false) => Include::None,
            };
            let mut t = match fetch_table(ctx, src, a.chunk_size, include).await {
                Ok(t) => t,
                Err(e) if a.ignore_not_found && e.is_not_found() => continue,
                Err(e) if !src.names.is_empty() => {
                    failures.push(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(s) = &sort {
                sort_rows(&mut t.rows, s, |r| &r.object);
            }
            if t.rows.is_empty() {
                continue;
            }
            found += t.rows.len();
            let header = shape.columns(&t.cols);
            let mut rows: Vec<Vec<String>> = Vec::with_capacity(t.rows.len() + 1);
            if !a.no_headers {
                rows.push(header.iter().map(|c| c.name.clone()).collect());
            }
            rows.extend(t.rows.iter().map(|r| shape.cells(&t.cols, r)));
            let paint = paint_fn(color, &header);
            let has_header = !a.no_headers;
            // Header cells are never status-coloured.
            let text = tabulate(&rows, &mut Vec::new(), &|r, i, c| if r == 0 && has_header { c.to_string() } else { paint(i, c) });
            if !first {
                writeln!(out)?;
            }
            first = false;
            out.write_all(text.as_bytes())?;
        }
    } else {
        let mut items = Vec::new();
        for src in &srcs {
            match fetch_objects(ctx, src, a.chunk_size, a.show_managed_fields).await {
                Ok(v) => items.extend(v),
                Err(e) if a.ignore_not_found && e.is_not_found() => {}
                Err(e) if !src.names.is_empty() => failures.push(e),
                Err(e) => return Err(e),
            }
        }
        if let Some(s) = &sort {
            sort_rows(&mut items, s, |o| o);
        }
        found = items.len();
        let single = srcs.len() == 1 && srcs[0].names.len() == 1 && !a.args[0].contains(',');
        if !items.is_empty() || failures.is_empty() {
            print_objects(&mut out, fmt, items, single, a.no_headers)?;
        }
    }
    out.flush()?;
    for f in &failures {
        eprintln!("{f}");
    }
    if found == 0 && failures.is_empty() && matches!(fmt, "" | "wide") && srcs.iter().all(|s| s.names.is_empty()) {
        match srcs.first().and_then(|s| s.ns.as_deref().filter(|_| s.res.namespaced)) {
            Some(ns) => eprintln!("No resources found in {ns} namespace."),
            None => eprintln!("No resources found"),
        }
    }
    if failures.is_empty() { Ok(()) } else { Err(Error::Exit(1)) }
}

/// The object formats (`json`, `yaml`, `name`, `jsonpath=`, `custom-columns=`).
pub fn print_objects(out: &mut impl Write, fmt: &str, items: Vec<Value>, single: bool, no_headers: bool) -> Result<()> {
    let doc = |items: Vec<Value>| {
        if single && items.len() == 1 {
            items.into_iter().next().unwrap_or_default()
        } else {
            json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}})
        }
    };
    let (name, arg) = fmt.split_once('=').unwrap_or((fmt, ""));
    match name {
        "json" => out.write_all(printers::to_json(&doc(items)).as_bytes())?,
        "yaml" => out.write_all(printers::to_yaml(&doc(items)).as_bytes())?,
        "name" => {
            for o in &items {
                out.write_all(object_name(o).as_bytes())?;
                out.write_all(b"\n")?;
            }
        }
        "jsonpath" => {
            let t = Template::parse(arg.trim_matches('\''))?;
            out.write_all(t.render(&doc(items)).as_bytes())?;
        }
        "custom-columns" => {
            let mut headers = Vec::new();
            let mut exprs = Vec::new();
            for spec in arg.split(',') {
                let Some((h, e)) = spec.split_once(':') else {
                    return err(format!("unexpected custom-columns spec: {spec}, expected <header>:<json-path-expr>"));
                };
                headers.push(h.to_string());
                exprs.push(Template::relaxed(e)?);
            }
            let mut rows = Vec::new();
            if !no_headers {
                rows.push(headers);
            }
            for o in &items {
                rows.push(
                    exprs
                        .iter()
                        .map(|e| {
                            let vals = e.values(o);
                            if vals.is_empty() { "<none>".to_string() } else { vals.into_iter().map(go_fmt).collect::<Vec<_>>().join(",") }
                        })
                        .collect(),
                );
            }
            out.write_all(tabulate(&rows, &mut Vec::new(), &|_, _, c| c.to_string()).as_bytes())?;
        }
        _ => {
            return err(format!(
                "unable to match a printer suitable for the output format \"{fmt}\", allowed formats are: custom-columns,json,jsonpath,name,wide,yaml"
            ));
        }
    }
    Ok(())
}

/// `kind.group/name` as `-o name` prints it.
pub fn object_name(o: &Value) -> String {
    let kind = o["kind"].as_str().unwrap_or_default().to_lowercase();
    let api = o["apiVersion"].as_str().unwrap_or_default();
    let name = o["metadata"]["name"].as_str().unwrap_or_default();
    match api.split_once('/') {
        Some((group, _)) => format!("{kind}.{group}/{name}"),
        None => format!("{kind}/{name}"),
    }
}
