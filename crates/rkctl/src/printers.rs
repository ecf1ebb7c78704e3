//! Output formats that must match kubectl's byte for byte: column alignment
//! (kubectl's tab writer: minimum cell width 6, padding 3, the last column
//! unpadded), `-o json` (Go's indented encoding: sorted keys, four spaces,
//! HTML-safe escapes), `-o yaml` (go-yaml v2's style: natural key order,
//! quoting of strings that would read back as another type, folding of long
//! plain strings), Go's `%v` for custom columns, ages, label lists, and the
//! status-aware colours the table adds on a terminal.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

/// Aligns rows of cells as kubectl does. `widths` carries the column widths
/// between calls so that watch lines stay aligned with the table above them;
/// a wider cell widens its column from then on.
/// `paint(row, column, text)` may wrap a cell in colour codes; widths are
/// always measured on the plain text.
pub fn tabulate(rows: &[Vec<String>], widths: &mut Vec<usize>, paint: &dyn Fn(usize, usize, &str) -> String) -> String {
    for r in rows {
        for (i, c) in r.iter().enumerate().take(r.len().saturating_sub(1)) {
            let w = (c.chars().count() + 3).max(6);
            if widths.len() <= i {
                widths.push(w);
            } else if widths[i] < w {
                widths[i] = w;
            }
        }
    }
    let mut out = String::new();
    for (n, r) in rows.iter().enumerate() {
        for (i, c) in r.iter().enumerate() {
            out.push_str(&paint(n, i, c));
            if i + 1 < r.len() {
                out.extend(std::iter::repeat_n(' ', widths[i] - c.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

/// kubectl's `HumanDuration`: short, with more precision for young objects.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h) = (s / 60, s / 3600);
    let d = h / 24;
    match () {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 && s % 60 == 0 => format!("{m}m"),
        _ if m < 10 => format!("{m}m{}s", s % 60),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 && m % 60 == 0 => format!("{h}h"),
        _ if h < 8 => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if h < 192 && h % 24 == 0 => format!("{d}d"),
        _ if h < 192 => format!("{d}d{}h", h % 24),
        _ if d < 730 => format!("{d}d"),
        _ if d < 2920 && d % 365 == 0 => format!("{}y", d / 365),
        _ if d < 2920 => format!("{}y{}d", d / 365, d % 365),
        _ => format!("{}y", d / 365),
    }
}

/// Seconds since the Unix epoch of an RFC 3339 UTC timestamp as the API
/// writes them (`2024-05-01T12:00:00Z`, optionally with fractions).
pub fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (n(0..4)?, n(5..7)?, n(8..10)?, n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + mi * 60 + se)
}

/// Unix seconds as an RFC 3339 UTC timestamp (the inverse of `parse_time`).
pub fn rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// `k=v,k2=v2` sorted by key, or `<none>`.
pub fn format_labels(labels: &Value) -> String {
    let Some(m) = labels.as_object().filter(|m| !m.is_empty()) else { return "<none>".into() };
    let sorted: BTreeMap<&String, &Value> = m.iter().collect();
    sorted.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(",")
}

/// Go's `%v` of a decoded JSON value (custom columns print values this way).
pub fn go_fmt(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_fmt).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            format!("map[{}]", sorted.iter().map(|(k, v)| format!("{k}:{}", go_fmt(v))).collect::<Vec<_>>().join(" "))
        }
        other => other.to_string(),
    }
}

/// `json.MarshalIndent(v, "", "    ")` as Go writes it, plus a newline.
pub fn to_json(v: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, v, 0, true);
    out.push('\n');
    out
}

/// Compact Go JSON (jsonpath prints maps and lists this way).
pub fn to_json_compact(v: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, v, 0, false);
    out
}

fn write_json(out: &mut String, v: &Value, depth: usize, pretty: bool) {
    let nl = |out: &mut String, d: usize| {
        if pretty {
            out.push('\n');
            out.extend(std::iter::repeat_n("    ", d));
        }
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            out.push('{');
            for (i, (k, x)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, depth + 1);
                json_str(out, k);
                out.push_str(if pretty { ": " } else { ":" });
                write_json(out, x, depth + 1, pretty);
            }
            nl(out, depth);
            out.push('}');
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, depth + 1);
                write_json(out, x, depth + 1, pretty);
            }
            nl(out, depth);
            out.push(']');
        }
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        Value::String(s) => json_str(out, s),
        other => out.push_str(&other.to_string()),
    }
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// YAML as kubectl prints it (sigs.k8s.io/yaml over go-yaml v2).
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => yaml_map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => yaml_seq(&mut out, a, 0),
        scalar => {
            yaml_scalar(&mut out, scalar, 0);
            out.push('\n');
        }
    }
    out
}

fn yaml_map(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize) {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort_by(|a, b| natural_cmp(a, b));
    for (i, k) in keys.into_iter().enumerate() {
        // The first key of a map inside a list item sits after the "- ".
        if i > 0 || !out.ends_with("- ") {
            out.extend(std::iter::repeat_n(' ', indent));
        }
        yaml_scalar(out, &Value::String(k.clone()), indent);
        out.push(':');
        yaml_value(out, &m[k], indent, false);
    }
}

fn yaml_seq(out: &mut String, a: &[Value], indent: usize) {
    for (i, x) in a.iter().enumerate() {
        if i > 0 || !out.ends_with("- ") {
            out.extend(std::iter::repeat_n(' ', indent));
        }
        out.push('-');
        yaml_value(out, x, indent, true);
    }
}

/// A value after `key:` or `-`: nested collections go on the next lines
/// (mappings indented by two, lists in mappings not indented, as go-yaml does).
fn yaml_value(out: &mut String, v: &Value, indent: usize, in_seq: bool) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            if in_seq {
                out.push(' ');
                yaml_map(out, m, indent + 2);
            } else {
                out.push('\n');
                yaml_map(out, m, indent + 2);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            if in_seq {
                out.push(' ');
                yaml_seq(out, a, indent + 2);
            } else {
                out.push('\n');
                yaml_seq(out, a, indent);
            }
        }
        scalar => {
            out.push(' ');
            yaml_scalar(out, scalar, indent + 2);
            out.push('\n');
        }
    }
}

fn yaml_scalar(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_float(n)),
        Value::String(s) => yaml_str(out, s, indent),
    }
}

/// Numbers as go-yaml writes a decoded float64 or int.
fn go_float(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or_default();
    let exp = if f == 0.0 { 0 } else { f.abs().log10().floor() as i32 };
    if !(-4..21).contains(&exp) {
        let s = format!("{f:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
    } else {
        format!("{f}")
    }
}

fn yaml_str(out: &mut String, s: &str, indent: usize) {
    if s.contains('\n') && s.chars().all(|c| c == '\n' || !c.is_control() || c == '\t') && !s.starts_with(' ') {
        let chomp = if !s.ends_with('\n') {
            "-"
        } else if s.ends_with("\n\n") {
            "+"
        } else {
            ""
        };
        out.push('|');
        out.push_str(chomp);
        let body = s.strip_suffix('\n').unwrap_or(s);
        for line in body.split('\n') {
            out.push('\n');
            if !line.is_empty() {
                out.extend(std::iter::repeat_n(' ', indent));
                out.push_str(line);
            }
        }
        if chomp == "+" {
            out.push('\n');
        }
        return;
    }
    if resolves_as_non_string(s) || s.chars().any(|c| c.is_control() || c == '\u{feff}') {
        json_str_yaml(out, s);
    } else if !plain_allowed(s) {
        out.push('\'');
        fold(out, &s.replace('\'', "''"), indent);
        out.push('\'');
    } else {
        fold(out, s, indent);
    }
}

/// Writes a plain or single-quoted scalar, breaking it at a single space once
/// past column 80 as go-yaml does.
fn fold(out: &mut String, s: &str, indent: usize) {
    let mut col = out.len() - out.rfind('\n').map_or(0, |p| p + 1);
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' && col > 80 && i > 0 && chars[i - 1] != ' ' && chars.get(i + 1).is_some_and(|n| *n != ' ') {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', indent));
            col = indent;
            continue;
        }
        out.push(c);
        col += 1;
    }
}

/// Double-quoted YAML (go-yaml escapes like JSON, but not `<>&`).
fn json_str_yaml(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Whether YAML 1.1 (as go-yaml v2 reads it) would take the plain text as a
/// bool, null, number or timestamp; such strings must be quoted.
fn resolves_as_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false", "False",
        "FALSE", "on", "On", "ON", "off", "Off", "OFF", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN",
        ".NAN", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let t = s.strip_prefix(['+', '-']).unwrap_or(s).replace('_', "");
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    if digits(&t) || t.strip_prefix("0x").is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit())) {
        return true;
    }
    if t.strip_prefix("0b").is_some_and(|b| !b.is_empty() && b.bytes().all(|c| c == b'0' || c == b'1')) {
        return true;
    }
    // Floats: digits with one dot and/or an exponent.
    let (mant, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t.as_str(), None),
    };
    let mant_ok = match mant.split_once('.') {
        Some((a, b)) => (a.is_empty() || digits(a)) && (b.is_empty() || digits(b)) && !(a.is_empty() && b.is_empty()),
        None => digits(mant),
    };
    let exp_ok = exp.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    if mant_ok && exp_ok && (mant.contains('.') || exp.is_some()) {
        return true;
    }
    // Base 60 numbers ("1:20") and timestamps ("2001-12-14", "...T...Z").
    let b60 = s.contains(':') && s.split(':').all(digits) && s.split(':').next().is_some_and(|f| !f.is_empty());
    let date = s.len() >= 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-' && digits(&s[..4]) && digits(&s[5..7]) && digits(&s[8..10]);
    b60 || (date && (s.len() == 10 || matches!(s.as_bytes()[10], b'T' | b't' | b' ')))
}

/// Whether the YAML emitter may write the string without quotes.
fn plain_allowed(s: &str) -> bool {
    let first = s.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        // A leading "-", "?" or ":" is fine when followed by a non-space.
        let second = s.chars().nth(1);
        if !("-?:".contains(first) && second.is_some_and(|c| c != ' ')) {
            return false;
        }
    }
    if s.starts_with(' ') || s.ends_with(' ') || s.ends_with(':') {
        return false;
    }
    !(s.contains(": ") || s.contains(" #") || s.contains('\t'))
}

/// go-yaml v2's key order: runs of digits compare as numbers, and a letter
/// sorts after anything that is not a letter.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    let (ar, br): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    for i in 0..ar.len().min(br.len()) {
        if ar[i] == br[i] {
            continue;
        }
        let (al, bl) = (ar[i].is_alphabetic(), br[i].is_alphabetic());
        if al && bl {
            return ar[i].cmp(&br[i]);
        }
        if al || bl {
            return if bl { Less } else { Greater };
        }
        let (mut an, mut bn) = (0i64, 0i64);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    (an, bn) = (1, 1);
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an.saturating_mul(10).saturating_add(ar[ai] as i64 - '0' as i64);
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn.saturating_mul(10).saturating_add(br[bi] as i64 - '0' as i64);
            bi += 1;
        }
        if an != bn {
            return an.cmp(&bn);
        }
        if ai != bi {
            return ai.cmp(&bi);
        }
        return ar[i].cmp(&br[i]);
    }
    ar.len().cmp(&br.len())
}

/// Whether to colour, from `--color` and the environment.
pub fn use_color(flag: &str, is_tty: bool) -> bool {
    match flag {
        "always" => true,
        "never" => false,
        _ => is_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::env::var("TERM").map_or(true, |t| t != "dumb"),
    }
}

pub const RESET: &str = "\x1b[0m";

/// The colour of a status word: healthy green, in progress yellow, broken
/// red, finished dim.
pub fn status_color(s: &str) -> Option<&'static str> {
    let s = s.strip_prefix("Init:").unwrap_or(s);
    Some(match s {
        "Running" | "Ready" | "Active" | "Bound" | "Available" | "True" | "Complete" => "\x1b[32m",
        "Pending" | "ContainerCreating" | "PodInitializing" | "Terminating" | "NotReady" | "Unknown" | "Waiting" | "Suspended" => "\x1b[33m",
        "Completed" | "Succeeded" => "\x1b[2m",
        _ if s.contains("Error")
            || s.contains("BackOff")
            || s.contains("Err")
            || s.starts_with("Failed")
            || s.starts_with("OOMKilled")
            || s.starts_with("Evicted")
            || s.starts_with("Invalid")
            || s == "Lost" =>
        {
            "\x1b[31m"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ages_as_kubectl() {
        let cases = [(5, "5s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (3 * 3600, "3h"), (3 * 3600 + 120, "3h2m"), (30 * 3600, "30h")];
        for (s, want) in cases {
            assert_eq!(human_duration(s), want, "{s}s");
        }
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
        assert_eq!(human_duration(100 * 86400), "100d");
        assert_eq!(human_duration(800 * 86400), "2y70d");
    }

    #[test]
    fn times_parse() {
        assert_eq!(parse_time("1970-01-02T00:00:01Z"), Some(86401));
        assert_eq!(parse_time("2024-03-01T00:00:00Z"), Some(1709251200));
        assert_eq!(rfc3339(1709251200 + 3661), "2024-03-01T01:01:01Z");
        assert_eq!(parse_time(&rfc3339(951782400)), Some(951782400));
    }

    #[test]
    fn tab_alignment_matches_kubectl() {
        let rows = vec![vec!["NAME".into(), "A".into(), "AGE".into()], vec!["web-1".into(), "1".into(), "5s".into()]];
        let mut w = Vec::new();
        assert_eq!(tabulate(&rows, &mut w, &|_, _, c| c.to_string()), "NAME    A     AGE\nweb-1   1     5s\n");
    }

    #[test]
    fn yaml_quotes_like_go_yaml() {
        let v = json!({"b": "true", "a10": 1, "a9": "2024-01-01T00:00:00Z", "c": "", "d": ["x", {"k": "v", "j": null}], "e": {}, "f": "a: b", "g": "*x", "h": "l1\nl2\n"});
        let want =
            "a9: \"2024-01-01T00:00:00Z\"\na10: 1\nb: \"true\"\nc: \"\"\nd:\n- x\n- j: null\n  k: v\ne: {}\nf: 'a: b'\ng: '*x'\nh: |\n  l1\n  l2\n";
        assert_eq!(to_yaml(&v), want);
    }

    #[test]
    fn json_is_go_style() {
        assert_eq!(to_json(&json!({"b": [], "a": "<&>"})), "{\n    \"a\": \"\\u003c\\u0026\\u003e\",\n    \"b\": []\n}\n");
        assert_eq!(go_fmt(&json!({"b": 1, "a": ["x", "y"]})), "map[a:[x y] b:1]");
    }
}
