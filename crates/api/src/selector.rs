//! Label and field selectors: parsing, validation and matching.
//!
//! Both parsers follow upstream's grammar and error wording, because clients
//! show the server's message verbatim (`kubectl get pods -l 'a b'`). Label
//! selectors come as strings (`labelSelector=`) or as `metav1.LabelSelector`
//! JSON inside objects; field selectors only as strings.

use std::fmt;

use serde_json::{Map, Value};

use crate::status::{self, StatusCause, aggregate};
use crate::validation::{is_qualified_name, is_valid_label_value};

/// How a label requirement relates a key to its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

impl Operator {
    /// Upstream's spelling (`selection.Operator`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

/// One condition on one label key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

fn quoted_list(values: &[String]) -> Value {
    // Upstream passes a nil slice when there are no values, which renders as null.
    if values.is_empty() { Value::Null } else { Value::Array(values.iter().map(|v| Value::String(v.clone())).collect()) }
}

impl Requirement {
    /// Builds a requirement, checking the key, the values and their number
    /// for the operator as upstream's `NewRequirement` does. The error is the
    /// aggregated field errors, e.g. `key: Invalid value: "a b": ...`.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self, String> {
        let mut errs: Vec<StatusCause> = Vec::new();
        let key_errs = is_qualified_name(key);
        if !key_errs.is_empty() {
            errs.push(status::invalid_value("key", &Value::String(key.into()), &key_errs.join("; ")));
        }
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                errs.push(status::invalid_value("values", &quoted_list(&values), "for 'in', 'notin' operators, values set can't be empty"));
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if values.len() != 1 => {
                errs.push(status::invalid_value("values", &quoted_list(&values), "exact-match compatibility requires one single value"));
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                errs.push(status::invalid_value("values", &quoted_list(&values), "values set must be empty for exists and does not exist"));
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(status::invalid_value("values", &quoted_list(&values), "for 'Gt', 'Lt' operators, exactly one value is required"));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(status::invalid_value(
                            &format!("values[{i}]"),
                            &Value::String(v.clone()),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let value_errs = is_valid_label_value(v);
            if !value_errs.is_empty() {
                errs.push(status::invalid_value(&format!("values[{i}][{key}]"), &Value::String(v.clone()), &value_errs.join("; ")));
            }
        }
        if errs.is_empty() { Ok(Requirement { key: key.to_string(), operator, values }) } else { Err(aggregate(errs.iter().map(StatusCause::line))) }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> Operator {
        self.operator
    }

    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether a label set satisfies this requirement. A missing key fails
    /// `in`, `=`, `exists`, `gt` and `lt` and satisfies `notin`, `!=` and `!`.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        let value = labels.get(&self.key).and_then(Value::as_str);
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => value.is_some_and(has),
            Operator::NotIn | Operator::NotEquals => !value.is_some_and(has),
            Operator::Exists => labels.contains_key(&self.key),
            Operator::DoesNotExist => !labels.contains_key(&self.key),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(have), [want]) = (value.and_then(|v| v.parse::<i64>().ok()), self.values.as_slice()) else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else { return false };
                if self.operator == Operator::GreaterThan { have > want } else { have < want }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            other => other.as_str(),
        };
        f.write_str(op)?;
        let set = matches!(self.operator, Operator::In | Operator::NotIn);
        let mut values = self.values.clone();
        values.sort();
        if set { write!(f, "({})", values.join(",")) } else { f.write_str(&values.join(",")) }
    }
}

/// A label selector: every requirement must hold.
///
/// The empty selector matches everything; [`LabelSelector::nothing`] (what a
/// null `metav1.LabelSelector` means) matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    /// The selector that matches no object.
    pub fn nothing() -> Self {
        LabelSelector { requirements: Vec::new(), nothing: true }
    }

    /// Parses the string form: `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
    /// `a notin (x)`, `a`, `!a`, `a>1`, `a<1`, comma-separated.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut requirements = Parser::new(s).parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements, nothing: false })
    }

    /// Converts a `metav1.LabelSelector` (`matchLabels`, `matchExpressions`).
    /// Null means nothing; an empty selector means everything.
    pub fn from_json(sel: &Value) -> Result<Self, String> {
        let obj = match sel {
            Value::Null => return Ok(LabelSelector::nothing()),
            Value::Object(o) => o,
            other => return Err(format!("label selector must be an object, got {other}")),
        };
        let mut requirements = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (k, v) in labels {
                    let Some(v) = v.as_str() else { return Err(format!("matchLabels[{k}] must be a string")) };
                    requirements.push(Requirement::new(k, Operator::Equals, vec![v.to_string()])?);
                }
            }
            Some(_) => return Err("matchLabels must be an object".to_string()),
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for expr in exprs {
                    requirements.push(requirement_from_json(expr)?);
                }
            }
            Some(_) => return Err("matchExpressions must be an array".to_string()),
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements, nothing: false })
    }

    /// Whether a label set (a JSON object of strings) satisfies the selector.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether an object's `metadata.labels` satisfy the selector; an object
    /// without labels has the empty label set.
    pub fn matches_object(&self, obj: &Value) -> bool {
        match crate::meta::labels(obj) {
            Some(labels) => self.matches(labels),
            None => self.matches(&Map::new()),
        }
    }

    /// True when the selector does not restrict anything.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// True for the selector that matches nothing.
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// The single value the selector requires for `label`, if it pins one
    /// (`label=v`, `label==v` or `label in (v)`), for index lookups.
    pub fn requires_exact_match(&self, label: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == label)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.requirements.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

fn requirement_from_json(expr: &Value) -> Result<Requirement, String> {
    let Some(e) = expr.as_object() else { return Err("matchExpressions entries must be objects".to_string()) };
    let key = e.get("key").and_then(Value::as_str).unwrap_or("");
    let op_text = e.get("operator").and_then(Value::as_str).unwrap_or("");
    let operator = match op_text {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => return Err(format!("{} is not a valid label selector operator", status::go_quote(other))),
    };
    let values: Vec<String> = match e.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => {
            a.iter().map(|v| v.as_str().map(str::to_string).ok_or("matchExpressions values must be strings")).collect::<Result<_, _>>()?
        }
        Some(_) => return Err("matchExpressions values must be an array".to_string()),
    };
    Requirement::new(key, operator, values)
}

// The string parser mirrors upstream's lexer and recursive descent, token by
// token, so that the same inputs fail with the same messages.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &str) -> Option<Token> {
    Some(match s {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::DoesNotExist,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "in" => Token::In,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "notin" => Token::NotIn,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

struct Lexer<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// The next byte, or 0 at the end; upstream also treats a NUL byte as the end.
    fn peek(&self) -> u8 {
        self.s.as_bytes().get(self.pos).copied().unwrap_or(0)
    }

    fn lex(&mut self) -> (Token, &'a str) {
        while is_whitespace(self.peek()) {
            self.pos += 1;
        }
        match self.peek() {
            0 => (Token::EndOfString, ""),
            b if is_special(b) => self.special(),
            _ => self.identifier(),
        }
    }

    /// The longest run of special characters that still forms an operator.
    fn special(&mut self) -> (Token, &'a str) {
        let start = self.pos;
        let mut last: Option<(Token, usize)> = None;
        while is_special(self.peek()) {
            match keyword(&self.s[start..self.pos + 1]) {
                Some(t) => last = Some((t, self.pos + 1)),
                None if last.is_some() => break,
                None => {}
            }
            self.pos += 1;
        }
        // Every single special character is an operator, so `last` is set.
        let (tok, end) = last.unwrap_or((Token::EndOfString, start));
        self.pos = end;
        (tok, &self.s[start..end])
    }

    fn identifier(&mut self) -> (Token, &'a str) {
        let start = self.pos;
        while !matches!(self.peek(), 0) && !is_special(self.peek()) && !is_whitespace(self.peek()) {
            self.pos += 1;
        }
        let lit = &self.s[start..self.pos];
        (keyword(lit).unwrap_or(Token::Identifier), lit)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser<'a> {
    items: Vec<(Token, &'a str)>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        let mut lexer = Lexer { s, pos: 0 };
        let mut items = Vec::new();
        loop {
            let item = lexer.lex();
            items.push(item);
            if item.0 == Token::EndOfString {
                break;
            }
        }
        Parser { items, pos: 0 }
    }

    /// In value position the keywords `in` and `notin` are ordinary words.
    fn adjust(tok: Token, ctx: Context) -> Token {
        match (ctx, tok) {
            (Context::Values, Token::In | Token::NotIn) => Token::Identifier,
            _ => tok,
        }
    }

    fn lookahead(&self, ctx: Context) -> (Token, &'a str) {
        let (t, l) = self.items[self.pos.min(self.items.len() - 1)];
        (Self::adjust(t, ctx), l)
    }

    fn consume(&mut self, ctx: Context) -> (Token, &'a str) {
        let item = self.lookahead(ctx);
        if self.pos < self.items.len() - 1 {
            self.pos += 1;
        }
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut out = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self.requirement().map_err(|e| format!("unable to parse requirement: {e}"))?;
                    out.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::EndOfString => return Ok(out),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(format!("found '{l2}', expected: identifier after ','"));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Token::EndOfString => return Ok(out),
                _ => return Err(format!("found '{lit}', expected: !, identifier, or 'end of string'")),
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (key, inferred) = self.key_and_inferred_operator()?;
        if let Some(op) = inferred {
            return Requirement::new(key, op, Vec::new());
        }
        let op = self.operator()?;
        let mut values = match op {
            Operator::In | Operator::NotIn => self.set_values()?,
            _ => vec![self.exact_value()?],
        };
        // Upstream collects values in a set: sorted, duplicates dropped.
        values.sort();
        values.dedup();
        Requirement::new(key, op, values)
    }

    fn key_and_inferred_operator(&mut self) -> Result<(&'a str, Option<Operator>), String> {
        let mut operator = None;
        let (mut tok, mut lit) = self.consume(Context::Values);
        if tok == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (tok, lit) = self.consume(Context::Values);
        }
        if tok != Token::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let errs = is_qualified_name(lit);
        if !errs.is_empty() {
            // Upstream reports this with a nil field path, printed as `<nil>`.
            let cause = status::invalid_value("<nil>", &Value::String(lit.into()), &errs.join("; "));
            return Err(cause.line());
        }
        let (next, _) = self.lookahead(Context::Values);
        if (next == Token::EndOfString || next == Token::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((lit, operator))
    }

    fn operator(&mut self) -> Result<Operator, String> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => return Err(format!("found '{lit}', expected: in, notin, =, ==, !=, gt, lt")),
        })
    }

    fn set_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Token::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        match tok {
            Token::Identifier | Token::Comma => {
                let values = self.identifier_list()?;
                let (closing, _) = self.consume(Context::Values);
                if closing != Token::ClosedPar {
                    // Upstream quotes the token seen before the list here.
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    /// A comma-separated list in which empty entries stand for "".
    fn identifier_list(&mut self) -> Result<Vec<String>, String> {
        let mut values: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Token::Identifier => {
                    values.push(lit.to_string());
                    let (t2, l2) = self.lookahead(Context::Values);
                    match t2 {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    let (t2, _) = self.lookahead(Context::Values);
                    if t2 == Token::ClosedPar || t2 == Token::Comma {
                        values.push(String::new());
                    }
                    if t2 == Token::ClosedPar {
                        return Ok(values);
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<String, String> {
        let (tok, _) = self.lookahead(Context::Values);
        if tok == Token::EndOfString || tok == Token::Comma {
            return Ok(String::new());
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Token::Identifier { Ok(lit.to_string()) } else { Err(format!("found '{lit}', expected: identifier")) }
    }
}

/// One `field=value` or `field!=value` term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    pub field: String,
    pub value: String,
    pub negated: bool,
}

/// A field selector: every term must hold. Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses `f=v`, `f==v`, `f!=v`, comma-separated. In values, `\,`, `\=`
    /// and `\\` stand for `,`, `=` and `\`; an unescaped `,` or `=` or any
    /// other escape is an error, worded as upstream words it.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parts = split_terms(s);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((field, op, raw)) = split_term(part) else {
                return Err(format!("invalid selector: '{s}'; can't understand '{part}'"));
            };
            terms.push(FieldTerm { field: field.to_string(), value: unescape_value(raw)?, negated: op == "!=" });
        }
        Ok(FieldSelector { terms })
    }

    /// Whether an object passes; `get` returns a field's value, and a
    /// missing field compares as the empty string, as upstream's does.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|t| {
            let have = get(&t.field).unwrap_or_default();
            (have == t.value) != t.negated
        })
    }

    /// The fields the selector names, to reject unsupported ones.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(|t| t.field.as_str())
    }

    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The value the selector pins `field` to (`field=value`), for index lookups.
    pub fn exact_value(&self, field: &str) -> Option<&str> {
        self.terms.iter().find(|t| t.field == field && !t.negated).map(|t| t.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> =
            self.terms.iter().map(|t| format!("{}{}{}", t.field, if t.negated { "!=" } else { "=" }, escape_value(&t.value))).collect();
        f.write_str(&parts.join(","))
    }
}

/// Escapes `\`, `,` and `=` so a value survives inside a field selector.
pub fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Splits on commas that are not escaped; escapes stay in the pieces.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits at the first operator; the field part supports no escaping.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        for op in ["!=", "==", "="] {
            if term[i..].starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

fn unescape_value(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(format!("invalid field selector: invalid escape sequence: \\{c}"));
            }
            out.push(c);
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // Upstream prints the rune with %v, which shows its code point number.
            ',' | '=' => return Err(format!("invalid field selector: unescaped character in value: {}", c as u32)),
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NAME_PART_ERR: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn label_selector_parses_to_canonical_form() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("   ", ""),
            ("x=a", "x=a"),
            ("x==a", "x==a"),
            ("x!=a", "x!=a"),
            ("x=", "x="),
            ("x=,z= ", "x=,z="),
            ("x= ,z= ", "x=,z="),
            ("x", "x"),
            ("!x", "!x"),
            ("x>1", "x>1"),
            ("x<1", "x<1"),
            ("x=a,y!=b", "x=a,y!=b"),
            ("y!=b,x=a", "x=a,y!=b"),
            ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
            ("x in (foo, bar)", "x in (bar,foo)"),
            ("x in (b,a,b)", "x in (a,b)"),
            ("x in (,)", "x in ()"),
            ("x notin (a)", "x notin (a)"),
            ("a in (in)", "a in (in)"),
            ("in=notin", "in=notin"),
            ("notin", "notin"),
            ("x=in", "x=in"),
            (" x = a , y ", "x=a,y"),
            ("example.com/app=web", "example.com/app=web"),
        ];
        for (input, want) in cases {
            let sel = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(sel.to_string(), *want, "input {input:?}");
        }
    }

    #[test]
    fn label_selector_parse_errors() {
        let cases: Vec<(&str, String)> = vec![
            ("x=a||y=b", format!("unable to parse requirement: values[0][x]: Invalid value: \"a||y\": {LABEL_VALUE_ERR}")),
            ("x==a==b", "found '==', expected: ',' or 'end of string'".into()),
            ("x=a,", "found '', expected: identifier after ','".into()),
            ("x,,y", "found ',', expected: identifier after ','".into()),
            ("=a", "found '=', expected: !, identifier, or 'end of string'".into()),
            (",x", "found ',', expected: !, identifier, or 'end of string'".into()),
            ("x in a", "unable to parse requirement: found 'a' expected: '('".into()),
            ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'".into()),
            ("x in (a,b", "unable to parse requirement: found '', expected: ',' or ')'".into()),
            ("x in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'".into()),
            ("x in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier".into()),
            ("x ( y", "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt".into()),
            ("x y", "unable to parse requirement: found 'y', expected: in, notin, =, ==, !=, gt, lt".into()),
            ("x=(", "unable to parse requirement: found '(', expected: identifier".into()),
            ("!=a", "found '!=', expected: !, identifier, or 'end of string'".into()),
            ("!,a", "unable to parse requirement: found ',', expected: identifier".into()),
            ("!x=a", "found '=', expected: ',' or 'end of string'".into()),
            ("app:monolith", format!("unable to parse requirement: <nil>: Invalid value: \"app:monolith\": {NAME_PART_ERR}")),
            ("x=a b", "found 'b', expected: ',' or 'end of string'".into()),
            ("x=-a", format!("unable to parse requirement: values[0][x]: Invalid value: \"-a\": {LABEL_VALUE_ERR}")),
            ("x>a", "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer".into()),
            (
                "x>-a",
                format!(
                    "unable to parse requirement: [values[0]: Invalid value: \"-a\": for 'Gt', 'Lt' operators, the value must be an integer, values[0][x]: Invalid value: \"-a\": {LABEL_VALUE_ERR}]"
                ),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(LabelSelector::parse(input), Err(want), "input {input:?}");
        }
    }

    #[test]
    fn label_selector_matching() {
        let l = labels(json!({"app": "web", "tier": "front", "n": "5", "empty": ""}));
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("missing=x", false),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("missing in (x)", false),
            ("app notin (db)", true),
            ("app notin (web)", false),
            ("missing notin (x)", true),
            ("empty=", true),
            ("empty in ()", true),
            ("missing=", false),
            ("n>4", true),
            ("n>5", false),
            ("n<6", true),
            ("app>1", false),
            ("missing<9", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
        ];
        for (input, want) in cases {
            let sel = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(sel.matches(&l), *want, "selector {input:?}");
        }
    }

    #[test]
    fn label_selector_from_json() {
        let l = labels(json!({"app": "web", "tier": "front"}));
        let cases: Vec<(Value, Result<(&str, bool), String>)> = vec![
            (json!({}), Ok(("", true))),
            (json!({"matchLabels": {}}), Ok(("", true))),
            (json!({"matchLabels": {"app": "web"}}), Ok(("app=web", true))),
            (json!({"matchLabels": {"tier": "front", "app": "db"}}), Ok(("app=db,tier=front", false))),
            (json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "db"]}]}), Ok(("app in (db,web)", true))),
            (json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}), Ok(("app notin (web)", false))),
            (json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}), Ok(("tier", true))),
            (json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist", "values": []}]}), Ok(("!tier", false))),
            (
                json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}),
                Ok(("app=web,tier in (front)", true)),
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}),
                Err("\"Gt\" is not a valid label selector operator".into()),
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
                Err("values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty".into()),
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
                Err("values: Invalid value: [\"x\"]: values set must be empty for exists and does not exist".into()),
            ),
            (json!({"matchLabels": {"bad key": "v"}}), Err(format!("key: Invalid value: \"bad key\": {NAME_PART_ERR}"))),
            (json!({"matchLabels": {"k": "bad value"}}), Err(format!("values[0][k]: Invalid value: \"bad value\": {LABEL_VALUE_ERR}"))),
            (
                json!({"matchExpressions": [{"key": "", "operator": "In"}]}),
                Err(format!(
                    "[key: Invalid value: \"\": name part must be non-empty; {NAME_PART_ERR}, values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty]"
                )),
            ),
        ];
        for (input, want) in cases {
            let got = LabelSelector::from_json(&input).map(|s| (s.to_string(), s.matches(&l)));
            let want = want.map(|(s, m)| (s.to_string(), m));
            assert_eq!(got, want, "selector {input}");
        }
    }

    #[test]
    fn null_selector_matches_nothing() {
        let sel = LabelSelector::from_json(&Value::Null).unwrap();
        assert!(sel.is_nothing());
        assert!(!sel.is_empty());
        assert!(!sel.matches(&Map::new()));
        assert!(LabelSelector::everything().matches(&Map::new()));
        assert!(LabelSelector::parse("").unwrap().is_empty());
        assert!(!LabelSelector::parse("a").unwrap().is_empty());
    }

    #[test]
    fn label_selector_on_objects() {
        let sel = LabelSelector::parse("!app").unwrap();
        assert!(sel.matches_object(&json!({"metadata": {"name": "x"}})));
        assert!(!sel.matches_object(&json!({"metadata": {"labels": {"app": "x"}}})));
        let sel = LabelSelector::parse("app=x").unwrap();
        assert!(sel.matches_object(&json!({"metadata": {"labels": {"app": "x"}}})));
        assert!(!sel.matches_object(&json!({})));
    }

    #[test]
    fn label_selector_exact_match() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("app=web", "app", Some("web")),
            ("app==web", "app", Some("web")),
            ("app in (web)", "app", Some("web")),
            ("app in (web,db)", "app", None),
            ("app!=web", "app", None),
            ("app", "app", None),
            ("tier=x", "app", None),
        ];
        for (input, label, want) in cases {
            assert_eq!(LabelSelector::parse(input).unwrap().requires_exact_match(label), *want, "{input:?}");
        }
    }

    #[test]
    fn field_selector_parsing() {
        let cases: Vec<(&str, Result<Vec<(&str, &str, bool)>, &str>)> = vec![
            ("", Ok(vec![])),
            ("metadata.name=x", Ok(vec![("metadata.name", "x", false)])),
            ("metadata.name==x", Ok(vec![("metadata.name", "x", false)])),
            ("metadata.name!=x", Ok(vec![("metadata.name", "x", true)])),
            ("metadata.name=", Ok(vec![("metadata.name", "", false)])),
            ("status.phase=Running,spec.nodeName=n1", Ok(vec![("spec.nodeName", "n1", false), ("status.phase", "Running", false)])),
            ("a=b,,c=d", Ok(vec![("a", "b", false), ("c", "d", false)])),
            (r"a=x\,y\=z\\", Ok(vec![("a", r"x,y=z\", false)])),
            (r"a=x\,y,b=1", Ok(vec![("a", "x,y", false), ("b", "1", false)])),
            ("a", Err("invalid selector: 'a'; can't understand 'a'")),
            ("a=b,c", Err("invalid selector: 'a=b,c'; can't understand 'c'")),
            ("a=b=c", Err("invalid field selector: unescaped character in value: 61")),
            ("a!=b!=c", Err("invalid field selector: unescaped character in value: 61")),
            (r"a=b\x", Err(r"invalid field selector: invalid escape sequence: \x")),
            (r"a=b\", Err(r"invalid field selector: invalid escape sequence: \")),
        ];
        for (input, want) in cases {
            let got =
                FieldSelector::parse(input).map(|s| s.terms().iter().map(|t| (t.field.clone(), t.value.clone(), t.negated)).collect::<Vec<_>>());
            let want = want.map(|ts| ts.into_iter().map(|(f, v, n)| (f.to_string(), v.to_string(), n)).collect::<Vec<_>>()).map_err(str::to_string);
            assert_eq!(got, want, "input {input:?}");
        }
    }

    #[test]
    fn field_selector_matching_and_lookup() {
        let obj = |field: &str| match field {
            "metadata.name" => Some("web".to_string()),
            "status.phase" => Some("Running".to_string()),
            _ => None,
        };
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("metadata.name=web", true),
            ("metadata.name=db", false),
            ("metadata.name!=db", true),
            ("metadata.name!=web", false),
            ("spec.nodeName=", true),
            ("spec.nodeName!=", false),
            ("metadata.name=web,status.phase=Running", true),
            ("metadata.name=web,status.phase!=Running", false),
        ];
        for (input, want) in cases {
            assert_eq!(FieldSelector::parse(input).unwrap().matches(obj), *want, "{input:?}");
        }
        let sel = FieldSelector::parse("metadata.namespace!=kube-system,metadata.name=web").unwrap();
        assert_eq!(sel.exact_value("metadata.name"), Some("web"));
        assert_eq!(sel.exact_value("metadata.namespace"), None);
        assert_eq!(sel.fields().collect::<Vec<_>>(), vec!["metadata.name", "metadata.namespace"]);
        assert!(!sel.is_empty());
        assert!(FieldSelector::parse("").unwrap().is_empty());
        assert_eq!(FieldSelector::parse(r"b!=x\,y,a=1").unwrap().to_string(), r"a=1,b!=x\,y");
        assert_eq!(escape_value(r"a,b=c\d"), r"a\,b\=c\\d");
    }

    #[test]
    fn requirement_construction() {
        let cases: Vec<(&str, Operator, Vec<&str>, Result<(), String>)> = vec![
            ("a", Operator::In, vec!["x"], Ok(())),
            (
                "a",
                Operator::Equals,
                vec!["x", "y"],
                Err("values: Invalid value: [\"x\",\"y\"]: exact-match compatibility requires one single value".into()),
            ),
            ("a", Operator::GreaterThan, vec![], Err("values: Invalid value: null: for 'Gt', 'Lt' operators, exactly one value is required".into())),
            ("a", Operator::LessThan, vec!["7"], Ok(())),
        ];
        for (key, op, values, want) in cases {
            let got = Requirement::new(key, op, values.iter().map(|v| v.to_string()).collect()).map(|_| ());
            assert_eq!(got, want, "{key} {op:?} {values:?}");
        }
    }
}
