//! kubectl's JSONPath templates (`-o jsonpath=…`, custom columns,
//! `--sort-by`): text with `{…}` actions holding a path (`.a.b`, `[0]`,
//! `[-1]`, `[1:3]`, `[*]`, `.*`, `..name`, `['key']`, filters such as
//! `[?(@.type=="Ready")]`), string literals (`{"\n"}`) and `{range …}…{end}`.
//! Missing keys print nothing, as with kubectl's default
//! `--allow-missing-template-keys`.

use serde_json::Value;

use crate::client::{Error, Result};
use crate::printers::to_json_compact;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Wildcard,
    Recursive(String),
    Index(i64),
    Slice(Option<i64>, Option<i64>),
    Filter(Vec<Step>, Option<(String, Value)>),
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

/// A parsed template, ready to run against many objects.
#[derive(Debug, Clone)]
pub struct Template(Vec<Node>);

fn bad(t: &str, why: &str) -> Error {
    Error::Msg(format!("error parsing jsonpath {t}, {why}"))
}

impl Template {
    pub fn parse(t: &str) -> Result<Template> {
        let mut stack: Vec<(Vec<Step>, Vec<Node>)> = Vec::new();
        let mut cur: Vec<Node> = Vec::new();
        let mut rest = t;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                cur.push(Node::Text(rest.to_string()));
                break;
            };
            if open > 0 {
                cur.push(Node::Text(rest[..open].to_string()));
            }
            let close = action_end(&rest[open..]).ok_or_else(|| bad(t, "unclosed action"))? + open;
            let action = rest[open + 1..close].trim();
            rest = &rest[close + 1..];
            if let Some(p) = action.strip_prefix("range").filter(|p| p.starts_with([' ', '.', '@', '$'])) {
                stack.push((parse_path(p.trim()).map_err(|w| bad(t, &w))?, std::mem::take(&mut cur)));
            } else if action == "end" {
                let (path, outer) = stack.pop().ok_or_else(|| bad(t, "not in range, nothing to end"))?;
                let body = std::mem::replace(&mut cur, outer);
                cur.push(Node::Range(path, body));
            } else if action.starts_with('"') {
                cur.push(Node::Text(unquote(action).ok_or_else(|| bad(t, "bad string literal"))?));
            } else {
                cur.push(Node::Path(parse_path(action).map_err(|w| bad(t, &w))?));
            }
        }
        if !stack.is_empty() {
            return Err(bad(t, "unclosed range"));
        }
        Ok(Template(cur))
    }

    /// kubectl's relaxed form for columns and sorting: `.a.b`, `a.b` or `{.a.b}`.
    pub fn relaxed(expr: &str) -> Result<Template> {
        let e = expr.trim();
        let e = e.strip_prefix('{').and_then(|x| x.strip_suffix('}')).unwrap_or(e);
        let e = if e.starts_with('.') || e.starts_with('$') || e.starts_with('@') { e.to_string() } else { format!(".{e}") };
        Template::parse(&format!("{{{e}}}"))
    }

    /// The template printed against `v`.
    pub fn render(&self, v: &Value) -> String {
        let mut out = String::new();
        run(&self.0, v, &mut out);
        out
    }

    /// Every value the template's paths select (for columns and sorting).
    pub fn values<'a>(&self, v: &'a Value) -> Vec<&'a Value> {
        let mut all = Vec::new();
        for n in &self.0 {
            if let Node::Path(p) = n {
                all.extend(eval(p, v));
            }
        }
        all
    }
}

/// The index of the `}` closing the action that starts at `s[0] == '{'`,
/// skipping braces inside string literals.
fn action_end(s: &str) -> Option<usize> {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (Some(q), c) if c == q && prev != '\\' => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '}') => return Some(i),
            _ => {}
        }
        prev = c;
    }
    None
}

fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            o => out.push(o),
        }
    }
    Some(out)
}

fn parse_path(p: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let b: Vec<char> = p.chars().collect();
    let mut i = 0;
    if matches!(b.first(), Some('$' | '@')) {
        i = 1;
    }
    let ident = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && !matches!(b[*i], '.' | '[' | ' ' | '=' | '!' | '<' | '>' | ')') {
            *i += 1;
        }
        b[start..*i].iter().collect::<String>()
    };
    while i < b.len() {
        match b[i] {
            '.' if b.get(i + 1) == Some(&'.') => {
                i += 2;
                steps.push(Step::Recursive(ident(&mut i)));
            }
            '.' => {
                i += 1;
                let name = ident(&mut i);
                match name.as_str() {
                    "" => {}
                    "*" => steps.push(Step::Wildcard),
                    _ => steps.push(Step::Field(name)),
                }
            }
            '[' => {
                let close = matching_bracket(&b, i).ok_or("unterminated [")?;
                let inner: String = b[i + 1..close].iter().collect();
                steps.push(parse_bracket(inner.trim())?);
                i = close + 1;
            }
            c if c.is_whitespace() => i += 1,
            _ => steps.push(Step::Field(ident(&mut i))),
        }
    }
    Ok(steps)
}

fn matching_bracket(b: &[char], open: usize) -> Option<usize> {
    let (mut depth, mut quote) = (0, None);
    for (j, &c) in b.iter().enumerate().skip(open) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

fn parse_bracket(inner: &str) -> Result<Step, String> {
    if inner == "*" {
        return Ok(Step::Wildcard);
    }
    if let Some(f) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        return parse_filter(f.trim());
    }
    if let Some(q) = inner.strip_prefix(['\'', '"']) {
        return Ok(Step::Field(q[..q.len().saturating_sub(1)].to_string()));
    }
    let num = |s: &str| if s.trim().is_empty() { Ok(None) } else { s.trim().parse::<i64>().map(Some).map_err(|_| format!("bad index {s}")) };
    match inner.split_once(':') {
        Some((a, b)) => Ok(Step::Slice(num(a)?, num(b.split(':').next().unwrap_or(""))?)),
        None => Ok(Step::Index(num(inner)?.ok_or("empty index")?)),
    }
}

fn parse_filter(f: &str) -> Result<Step, String> {
    for op in ["==", "!=", "<=", ">=", "<", ">"] {
        if let Some((l, r)) = f.split_once(op) {
            let r = r.trim();
            let lit = if let Some(s) = unquote(&r.replace('\'', "\"")) {
                Value::String(s)
            } else {
                serde_json::from_str(r).map_err(|_| format!("bad literal {r}"))?
            };
            return Ok(Step::Filter(parse_path(l.trim())?, Some((op.to_string(), lit))));
        }
    }
    Ok(Step::Filter(parse_path(f)?, None))
}

fn eval<'a>(steps: &[Step], root: &'a Value) -> Vec<&'a Value> {
    let mut cur = vec![root];
    for s in steps {
        let mut next = Vec::new();
        for v in cur {
            match s {
                Step::Field(name) => next.extend(v.get(name.as_str())),
                Step::Wildcard => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Recursive(name) => recurse(v, name, &mut next),
                Step::Index(i) => {
                    if let Some(a) = v.as_array() {
                        let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                        next.extend(usize::try_from(idx).ok().and_then(|i| a.get(i)));
                    }
                }
                Step::Slice(from, to) => {
                    if let Some(a) = v.as_array() {
                        let n = a.len() as i64;
                        let fix = |x: i64| (if x < 0 { n + x } else { x }).clamp(0, n) as usize;
                        let (f, t) = (fix(from.unwrap_or(0)), fix(to.unwrap_or(n)));
                        if f < t {
                            next.extend(a[f..t].iter());
                        }
                    }
                }
                Step::Filter(path, cond) => {
                    for item in v.as_array().into_iter().flatten() {
                        let found = eval(path, item);
                        let keep = match cond {
                            None => !found.is_empty(),
                            Some((op, lit)) => found.iter().any(|x| compare(x, op, lit)),
                        };
                        if keep {
                            next.push(item);
                        }
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

fn recurse<'a>(v: &'a Value, name: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            if name.is_empty() || name == "*" {
                out.push(v);
            } else if let Some(x) = m.get(name) {
                out.push(x);
            }
            for x in m.values() {
                recurse(x, name, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| recurse(x, name, out)),
        _ => {}
    }
}

fn compare(x: &Value, op: &str, lit: &Value) -> bool {
    let ord = match (x.as_f64(), lit.as_f64()) {
        (Some(a), Some(b)) => a.partial_cmp(&b),
        _ => match (x.as_str(), lit.as_str()) {
            (Some(a), Some(b)) => Some(a.cmp(b)),
            _ => (x == lit).then_some(std::cmp::Ordering::Equal),
        },
    };
    use std::cmp::Ordering::*;
    match (op, ord) {
        ("==", o) => o == Some(Equal),
        ("!=", o) => o != Some(Equal),
        ("<", Some(o)) => o == Less,
        ("<=", Some(o)) => o != Greater,
        (">", Some(o)) => o == Greater,
        (">=", Some(o)) => o != Less,
        _ => false,
    }
}

/// How a selected value prints: strings raw, collections as compact JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(_) | Value::Object(_) => to_json_compact(v),
        other => other.to_string(),
    }
}

fn run(nodes: &[Node], v: &Value, out: &mut String) {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Path(p) => out.push_str(&eval(p, v).into_iter().map(text).collect::<Vec<_>>().join(" ")),
            Node::Range(p, body) => {
                let found = eval(p, v);
                let items: Vec<&Value> = match found.as_slice() {
                    [Value::Array(a)] => a.iter().collect(),
                    _ => found,
                };
                for item in items {
                    run(body, item, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v)
    }

    #[test]
    fn paths_ranges_filters() {
        let v = json!({"items": [
            {"metadata": {"name": "a", "labels": {"x": "1"}}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}, "n": 3},
            {"metadata": {"name": "b"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}, "n": 5}
        ]});
        assert_eq!(r("{.items[0].metadata.name}", &v), "a");
        assert_eq!(r("{.items[-1].metadata.name}", &v), "b");
        assert_eq!(r("{.items[*].metadata.name}", &v), "a b");
        assert_eq!(r("{range .items[*]}{.metadata.name}{\"\\n\"}{end}", &v), "a\nb\n");
        assert_eq!(r("{range.items[*]}[{.n}]{end}", &v), "[3][5]");
        assert_eq!(r("{.items[?(@.n>4)].metadata.name}", &v), "b");
        assert_eq!(r("{.items[?(@.status.conditions[0].status==\"True\")].metadata.name}", &v), "a");
        assert_eq!(r("{..name}", &v), "a b");
        assert_eq!(r("{.items[0].metadata.labels}", &v), "{\"x\":\"1\"}");
        assert_eq!(r("{.items[0].metadata['labels'].x}", &v), "1");
        assert_eq!(r("{.nope}", &v), "");
        assert_eq!(r("{range.items[*]}[{.n}]{end}", &v), "[3][5]");
        assert_eq!(r("x={.items[0:1].n}", &v), "x=3");
        assert!(Template::parse("{range .items[*]}").is_err());
        assert_eq!(Template::relaxed("metadata.name").unwrap().values(&v["items"][0]), vec![&json!("a")]);
    }
}
