//! YAML text to a value tree with PyYAML's `safe_load` semantics (YAML 1.1 implicit types), so a file means
//! exactly what it means to Python Patroni: `on`/`yes` are booleans but `y`/`n` are strings, `0640` is
//! octal, `1_000` and `1:30` (sexagesimal) are integers, `1e3` is a string, merge keys `<<` work, duplicate
//! keys keep the last value. Events come from the parser serde-saphyr is built on.

use crate::tree::YamlError;
use serde_json::{Map, Number, Value};
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Tag};
use std::collections::HashMap;

enum Key {
    Plain(String),
    Merge,
}

enum Frame {
    Seq {
        items: Vec<Value>,
        anchor: usize,
        path: String,
    },
    Map {
        path: String,
        entries: Vec<(String, Value)>,
        merges: Vec<Value>,
        key: Option<Key>,
        anchor: usize,
        line: usize,
        col: usize,
    },
}

struct Builder<'a> {
    source: &'a str,
    anchors: HashMap<usize, Value>,
    stack: Vec<Frame>,
    root: Option<Value>,
    positions: Positions,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

impl Builder<'_> {
    /// The key path the next node will have, `None` when it is a mapping key (or a merge source).
    fn next_path(&self) -> Option<String> {
        match self.stack.last() {
            None => Some(String::new()),
            Some(Frame::Seq { items, path, .. }) => Some(format!("{path}[{}]", items.len())),
            Some(Frame::Map { key: Some(Key::Plain(k)), path, .. }) => Some(join(path, k)),
            Some(Frame::Map { .. }) => None,
        }
    }

    fn record(&mut self, path: Option<&String>, line: usize, col: usize) {
        if let Some(p) = path {
            self.positions.push((p.clone(), line as u64, col as u64 + 1));
        }
    }

    fn err(&self, line: usize, col: usize, message: impl Into<String>) -> YamlError {
        YamlError {
            source_name: self.source.to_owned(),
            line: line as u64,
            column: col as u64 + 1,
            message: message.into(),
        }
    }

    /// Adds a finished node to its parent; `merge_key` marks a plain `<<` scalar.
    fn push(&mut self, v: Value, merge_key: bool, line: usize, col: usize) -> Result<(), YamlError> {
        let err_key = |b: &Self| b.err(line, col, "mapping keys must be scalars");
        match self.stack.last_mut() {
            None => self.root = Some(v),
            Some(Frame::Seq { items, .. }) => items.push(v),
            Some(Frame::Map { entries, merges, key, .. }) => match key.take() {
                None => {
                    *key = Some(if merge_key {
                        Key::Merge
                    } else {
                        match v {
                            Value::String(s) => Key::Plain(s),
                            Value::Number(n) => Key::Plain(n.to_string()),
                            Value::Bool(b) => Key::Plain(if b { "True" } else { "False" }.to_owned()),
                            Value::Null => Key::Plain("None".to_owned()),
                            _ => return Err(err_key(self)),
                        }
                    });
                }
                Some(Key::Plain(k)) => entries.push((k, v)),
                Some(Key::Merge) => merges.push(v),
            },
        }
        Ok(())
    }

    fn finish_map(
        &self,
        entries: Vec<(String, Value)>,
        merges: Vec<Value>,
        line: usize,
        col: usize,
    ) -> Result<Value, YamlError> {
        let bad = || self.err(line, col, "expected a mapping or list of mappings for merging");
        // Earlier sources win over later ones, explicit keys over all of them.
        let mut sources: Vec<&Map<String, Value>> = Vec::new();
        for m in &merges {
            match m {
                Value::Object(o) => sources.push(o),
                Value::Array(items) => {
                    for i in items {
                        sources.push(i.as_object().ok_or_else(bad)?);
                    }
                }
                _ => return Err(bad()),
            }
        }
        let mut out = Map::new();
        for src in &sources {
            for (k, v) in src.iter() {
                if !out.contains_key(k) {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        for (k, v) in entries {
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// Parses one YAML document (an empty stream is `null`).
pub fn parse(text: &str, source: &str) -> Result<Value, YamlError> {
    parse_with_positions(text, source).map(|(v, _)| v)
}

/// Where each value of a document starts: `(key path, line, column)`, paths written as in diagnostics
/// (`postgresql.authentication.superuser`, `bootstrap.initdb[0]`).
pub type Positions = Vec<(String, u64, u64)>;

/// Like [`parse`], also returning the position of every value.
pub fn parse_with_positions(text: &str, source: &str) -> Result<(Value, Positions), YamlError> {
    let mut b = Builder { source, anchors: HashMap::new(), stack: Vec::new(), root: None, positions: Vec::new() };
    let mut documents = 0;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| {
            let m = e.marker();
            b.err(m.line(), m.col(), e.info().to_owned())
        })?;
        let (line, col) = (span.start.line(), span.start.col());
        match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(b.err(line, col, "expected a single document in the stream"));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let path = b.next_path();
                b.record(path.as_ref(), line, col);
                let merge_key = style == ScalarStyle::Plain && tag.is_none() && text == "<<";
                let v = scalar(&text, style, tag.as_deref()).map_err(|m| b.err(line, col, m))?;
                if anchor != 0 {
                    b.anchors.insert(anchor, v.clone());
                }
                b.push(v, merge_key, line, col)?;
            }
            Event::SequenceStart(_, anchor, tag) => {
                check_collection_tag(tag.as_deref(), "seq").map_err(|m| b.err(line, col, m))?;
                let path = b.next_path();
                b.record(path.as_ref(), line, col);
                b.stack.push(Frame::Seq { items: Vec::new(), anchor, path: path.unwrap_or_default() });
            }
            Event::MappingStart(_, anchor, tag) => {
                check_collection_tag(tag.as_deref(), "map").map_err(|m| b.err(line, col, m))?;
                let path = b.next_path();
                b.record(path.as_ref(), line, col);
                b.stack.push(Frame::Map {
                    path: path.unwrap_or_default(),
                    entries: Vec::new(),
                    merges: Vec::new(),
                    key: None,
                    anchor,
                    line,
                    col,
                });
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq { items, anchor, .. }) = b.stack.pop() {
                    let v = Value::Array(items);
                    if anchor != 0 {
                        b.anchors.insert(anchor, v.clone());
                    }
                    b.push(v, false, line, col)?;
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map { entries, merges, anchor, line: l, col: c, .. }) = b.stack.pop() {
                    let v = b.finish_map(entries, merges, l, c)?;
                    if anchor != 0 {
                        b.anchors.insert(anchor, v.clone());
                    }
                    b.push(v, false, line, col)?;
                }
            }
            Event::Alias(id) => {
                let path = b.next_path();
                b.record(path.as_ref(), line, col);
                let v = b.anchors.get(&id).cloned().ok_or_else(|| b.err(line, col, "found undefined alias"))?;
                b.push(v, false, line, col)?;
            }
            Event::UnresolvedAlias(name) => {
                return Err(b.err(line, col, format!("found undefined alias {name:?}")));
            }
            _ => {}
        }
    }
    Ok((b.root.unwrap_or(Value::Null), b.positions))
}

fn check_collection_tag(tag: Option<&Tag>, expected: &str) -> Result<(), String> {
    match tag {
        None => Ok(()),
        Some(t) if t.is_yaml_core_schema_tag(expected) => Ok(()),
        Some(t) => {
            Err(format!("could not determine a constructor for the tag '{}{}'", t.original_handle(), t.suffix()))
        }
    }
}

fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    if let Some(t) = tag {
        let suffix = t
            .suffix_in_namespace("tag:yaml.org,2002:")
            .map(|s| s.into_owned())
            .or_else(|| (t.handle() == "!!").then(|| t.suffix().to_owned()));
        let bad = || format!("invalid value {text:?} for the tag '!!{}'", suffix.as_deref().unwrap_or(""));
        return match suffix.as_deref() {
            Some("str") | Some("binary") | Some("timestamp") => Ok(Value::String(text.to_owned())),
            Some("int") => int_value(text).ok_or_else(bad),
            Some("float") => float_value(text).or_else(|| int_value(text)).ok_or_else(bad),
            Some("bool") => bool_value(text).map(Value::Bool).ok_or_else(bad),
            Some("null") => Ok(Value::Null),
            _ => Err(format!("could not determine a constructor for the tag '{}{}'", t.original_handle(), t.suffix())),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_owned()));
    }
    Ok(resolve_plain(text))
}

/// PyYAML's implicit resolvers for an untagged plain scalar.
pub fn resolve_plain(text: &str) -> Value {
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Value::Null;
    }
    if let Some(b) = bool_value(text) {
        return Value::Bool(b);
    }
    if let Some(v) = int_value(text) {
        return v;
    }
    if let Some(v) = float_value(text) {
        return v;
    }
    Value::String(text.to_owned())
}

fn bool_value(s: &str) -> Option<bool> {
    match s {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

fn split_sign(s: &str) -> (bool, &str) {
    match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    }
}

fn digits_ok(s: &str, radix: u32) -> bool {
    !s.is_empty() && s.chars().all(|c| c == '_' || c.is_digit(radix)) && s.chars().any(|c| c != '_')
}

fn sexagesimal_parts(rest: &[&str]) -> bool {
    !rest.is_empty()
        && rest.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 2
                && p.chars().all(|c| c.is_ascii_digit())
                && (p.len() == 1 || p.as_bytes()[0] <= b'5')
        })
}

fn int_value(s: &str) -> Option<Value> {
    let (neg, body) = split_sign(s);
    let parsed: Option<i128> = if let Some(b) = body.strip_prefix("0b") {
        digits_ok(b, 2).then(|| i128::from_str_radix(&b.replace('_', ""), 2).ok()).flatten()
    } else if let Some(x) = body.strip_prefix("0x") {
        digits_ok(x, 16).then(|| i128::from_str_radix(&x.replace('_', ""), 16).ok()).flatten()
    } else if body == "0" {
        Some(0)
    } else if let Some(o) = body.strip_prefix('0') {
        digits_ok(o, 8).then(|| i128::from_str_radix(&o.replace('_', ""), 8).ok()).flatten()
    } else if body.contains(':') {
        let parts: Vec<&str> = body.split(':').collect();
        let head = parts[0];
        if head.starts_with(|c: char| ('1'..='9').contains(&c)) && digits_ok(head, 10) && sexagesimal_parts(&parts[1..])
        {
            let mut acc: i128 = head.replace('_', "").parse().ok()?;
            for p in &parts[1..] {
                acc = acc * 60 + p.parse::<i128>().ok()?;
            }
            Some(acc)
        } else {
            None
        }
    } else if body.starts_with(|c: char| ('1'..='9').contains(&c)) && digits_ok(body, 10) {
        body.replace('_', "").parse().ok()
    } else {
        None
    };
    let v = parsed?;
    let v = if neg { -v } else { v };
    Some(match (i64::try_from(v), u64::try_from(v)) {
        (Ok(i), _) => Value::from(i),
        (_, Ok(u)) => Value::from(u),
        // Beyond 64 bits: JSON numbers cannot carry it exactly, keep the text.
        _ => Value::String(s.to_owned()),
    })
}

fn float_value(s: &str) -> Option<Value> {
    let (neg, body) = split_sign(s);
    let special = match body {
        ".inf" | ".Inf" | ".INF" => Some(if neg { "-.inf" } else { ".inf" }),
        ".nan" | ".NaN" | ".NAN" if s == body => Some(".nan"),
        _ => None,
    };
    if let Some(sp) = special {
        // JSON has no infinities or NaN; keep PyYAML's spelling.
        return Some(Value::String(sp.to_owned()));
    }
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    if let Some(e) = exp {
        // PyYAML requires a signed exponent and a dot in the mantissa.
        let (sign, digits) = e.split_at(e.len().min(1));
        if !(sign == "+" || sign == "-") || digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    let (int_part, frac) = mantissa.split_once('.')?;
    if !frac.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return None;
    }
    let value: f64 = if int_part.is_empty() {
        // `.5` form: unsigned only in PyYAML's resolver, and at least one digit.
        if s != body || !digits_ok(frac, 10) {
            return None;
        }
        format!("0.{}{}", frac.replace('_', ""), exp.map(|e| format!("e{e}")).unwrap_or_default()).parse().ok()?
    } else if int_part.contains(':') {
        if exp.is_some() {
            return None;
        }
        let parts: Vec<&str> = int_part.split(':').collect();
        if !parts[0].starts_with(|c: char| c.is_ascii_digit())
            || !digits_ok(parts[0], 10)
            || !sexagesimal_parts(&parts[1..])
        {
            return None;
        }
        let mut acc: f64 = parts[0].replace('_', "").parse().ok()?;
        for p in &parts[1..] {
            acc = acc * 60.0 + p.parse::<f64>().ok()?;
        }
        acc + format!("0.{}", if frac.is_empty() { "0".to_owned() } else { frac.replace('_', "") })
            .parse::<f64>()
            .ok()?
    } else {
        if !int_part.starts_with(|c: char| c.is_ascii_digit()) || !digits_ok(int_part, 10) {
            return None;
        }
        format!(
            "{}.{}{}",
            int_part.replace('_', ""),
            if frac.is_empty() { "0".to_owned() } else { frac.replace('_', "") },
            exp.map(|e| format!("e{e}")).unwrap_or_default()
        )
        .parse()
        .ok()?
    };
    Number::from_f64(if neg { -value } else { value }).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Value {
        parse(s, "t").unwrap()
    }

    #[test]
    fn scalars_resolve_like_pyyaml() {
        let v = p("a: y\nb: n\nc: on\nd: No\ne: 0640\nf: 1_000\ng: 1:30\nh: 1e3\ni: 1.0e+3\nj: .5\nk: ~\nl: \n\
m: 0x1F\nn: '0640'\no: 2002-12-14\np: -0b11\nq: 3.\nr: yEs\ns: 127.0.0.1:8008\nt: 1_0.5\nu: +12\nv: 0\nw: .inf\n");
        assert_eq!(
            v,
            json!({"a": "y", "b": "n", "c": true, "d": false, "e": 416, "f": 1000, "g": 90, "h": "1e3",
                   "i": 1000.0, "j": 0.5, "k": null, "l": null, "m": 31, "n": "0640", "o": "2002-12-14",
                   "p": -3, "q": 3.0, "r": "yEs", "s": "127.0.0.1:8008", "t": 10.5, "u": 12, "v": 0, "w": ".inf"})
        );
    }

    #[test]
    fn tags_anchors_and_merge_keys() {
        let v =
            p("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\nlist: [&s hello, *s]\nt: !!str 0640\nu: !!int '12'\n");
        assert_eq!(
            v,
            json!({"base": {"x": 1, "y": 2}, "other": {"x": 1, "y": 3}, "list": ["hello", "hello"], "t": "0640", "u": 12})
        );
        let v = p("a: &a {k: 1}\nb: &b {k: 2, j: 2}\nc:\n  <<: [*a, *b]\n");
        assert_eq!(v["c"], json!({"k": 1, "j": 2}));
    }

    #[test]
    fn positions_of_values() {
        let (_, pos) = parse_with_positions("a:\n  b: [1, {c: x}]\n  d: &x 5\ne: *x\n", "t").unwrap();
        let find = |p: &str| pos.iter().find(|(q, _, _)| q == p).map(|(_, l, c)| (*l, *c));
        assert_eq!(find("a"), Some((2, 3)));
        assert_eq!(find("a.b"), Some((2, 6)));
        assert_eq!(find("a.b[1].c"), Some((2, 14)));
        assert_eq!(find("a.d"), Some((3, 9)));
        assert_eq!(find("e"), Some((4, 4)));
    }

    #[test]
    fn duplicates_keep_the_last_and_keys_become_strings() {
        assert_eq!(p("a: 1\na: 2\n1: x\n"), json!({"a": 2, "1": "x"}));
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("a: 1\nb: [1,\n", "f.yml").unwrap_err();
        assert_eq!((e.line, e.column), (2, 4));
        let e = parse("a: !custom 1\n", "f.yml").unwrap_err();
        assert_eq!(e.to_string(), "f.yml:1:12: could not determine a constructor for the tag '!custom'");
        let e = parse("a: 1\n---\nb: 2\n", "f.yml").unwrap_err();
        assert_eq!(e.message, "expected a single document in the stream");
    }
}
