//! YAML output in the style of PyYAML's `safe_dump(default_flow_style=False)`, which is what Patroni and
//! patronictl print (`show-config`, `--generate-sample-config`, `--validate-config --print`): block style,
//! optionally sorted keys, sequences in mappings not indented, strings quoted only when they would read back
//! as something else, single quotes preferred, long scalars folded past column 80.

use serde_json::{Map, Number, Value};

const BEST_WIDTH: usize = 80;

/// Renders `value` as PyYAML would with `default_flow_style=False` (and `sort_keys` as given).
pub fn to_yaml(value: &Value, sort_keys: bool) -> String {
    let mut e = Emitter { out: String::new(), sort_keys };
    match value {
        Value::Object(m) if !m.is_empty() => e.mapping(m, 0),
        Value::Array(a) if !a.is_empty() => e.sequence(a, 0),
        scalar => {
            // PyYAML indents the continuation lines of a top-level scalar, and closes a plain one with `...`.
            e.scalar(scalar, 2);
            e.out.push('\n');
            let plain = match scalar {
                Value::String(s) => matches!(style(s), Style::Plain),
                Value::Object(_) | Value::Array(_) => false,
                _ => true,
            };
            if plain {
                e.out.push_str("...\n");
            }
        }
    }
    e.out
}

struct Emitter {
    out: String,
    sort_keys: bool,
}

impl Emitter {
    /// Current column in characters, as PyYAML counts it.
    fn column(&self) -> usize {
        self.out[self.out.rfind('\n').map_or(0, |i| i + 1)..].chars().count()
    }

    fn pad(&mut self, n: usize) {
        self.out.extend(std::iter::repeat_n(' ', n));
    }

    fn entries<'m>(&self, m: &'m Map<String, Value>) -> Vec<(&'m String, &'m Value)> {
        let mut v: Vec<_> = m.iter().collect();
        if self.sort_keys {
            v.sort_by(|a, b| a.0.cmp(b.0));
        }
        v
    }

    /// Writes mapping entries, the first at the current position (callers pad), others at `indent`.
    fn mapping(&mut self, m: &Map<String, Value>, indent: usize) {
        for (i, (k, v)) in self.entries(m).into_iter().enumerate() {
            if i > 0 {
                self.pad(indent);
            }
            // Like PyYAML: empty keys, keys of 128 characters or more, or spanning lines, become
            // `? key` / `: value`, and the value then starts on the `:` line.
            // (PyYAML counts the implicit `!!str` tag, 5 characters, towards the 128.)
            if !k.is_empty() && k.chars().count() + 5 < 128 && !k.contains('\n') {
                self.string(k, indent + 2, false);
            } else {
                self.out.push_str("? ");
                self.string(k, indent + 2, true);
                self.out.push('\n');
                self.pad(indent);
                self.out.push_str(": ");
                match v {
                    Value::Object(inner) if !inner.is_empty() => self.mapping(inner, indent + 2),
                    Value::Array(items) if !items.is_empty() => self.sequence(items, indent + 2),
                    scalar => {
                        self.scalar(scalar, indent + 2);
                        self.out.push('\n');
                    }
                }
                continue;
            }
            self.out.push(':');
            match v {
                Value::Object(inner) if !inner.is_empty() => {
                    self.out.push('\n');
                    self.pad(indent + 2);
                    self.mapping(inner, indent + 2);
                }
                Value::Array(items) if !items.is_empty() => {
                    // PyYAML does not indent a sequence that is a mapping value.
                    self.out.push('\n');
                    self.pad(indent);
                    self.sequence(items, indent);
                }
                scalar => {
                    self.out.push(' ');
                    self.scalar(scalar, indent + 2);
                    self.out.push('\n');
                }
            }
        }
    }

    fn sequence(&mut self, items: &[Value], indent: usize) {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.pad(indent);
            }
            self.out.push_str("- ");
            match item {
                Value::Object(inner) if !inner.is_empty() => self.mapping(inner, indent + 2),
                Value::Array(inner) if !inner.is_empty() => self.sequence(inner, indent + 2),
                scalar => {
                    self.scalar(scalar, indent + 2);
                    self.out.push('\n');
                }
            }
        }
    }

    fn scalar(&mut self, v: &Value, indent: usize) {
        match v {
            Value::Null => self.out.push_str("null"),
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => self.out.push_str(&number(n)),
            Value::String(s) => self.string(s, indent, true),
            Value::Object(_) => self.out.push_str("{}"),
            Value::Array(_) => self.out.push_str("[]"),
        }
    }

    fn string(&mut self, s: &str, indent: usize, split: bool) {
        match style(s) {
            Style::Plain => self.folded(s, indent, split),
            Style::Single => {
                self.out.push('\'');
                let escaped = s.replace('\'', "''");
                // A run of k line breaks inside single quotes is written as k + 1 breaks (YAML folding).
                let mut rest = escaped.as_str();
                while let Some(i) = rest.find('\n') {
                    self.folded(&rest[..i], indent, split);
                    let run = rest[i..].bytes().take_while(|b| *b == b'\n').count();
                    for _ in 0..=run {
                        self.out.push('\n');
                    }
                    self.pad(indent);
                    rest = &rest[i + run..];
                }
                self.folded(rest, indent, split);
                self.out.push('\'');
            }
            Style::Double => self.double_quoted(s, indent, split),
        }
    }

    /// PyYAML's double-quoted writer: escapes, and folding with a trailing `\` once past the width.
    fn double_quoted(&mut self, s: &str, indent: usize, split: bool) {
        let text: Vec<char> = s.chars().collect();
        let n = text.len();
        self.out.push('"');
        let (mut start, mut end) = (0usize, 0usize);
        while end <= n {
            let ch = text.get(end).copied();
            let needs_escape = match ch {
                None => true,
                Some(c) => {
                    matches!(c, '"' | '\\' | '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}')
                        || !(('\u{20}'..='\u{7e}').contains(&c)
                            || ('\u{a0}'..='\u{d7ff}').contains(&c)
                            || ('\u{e000}'..='\u{fffd}').contains(&c)
                            || ('\u{10000}'..='\u{10ffff}').contains(&c))
                }
            };
            if needs_escape {
                if start < end {
                    self.out.extend(&text[start..end]);
                    start = end;
                }
                if let Some(c) = ch {
                    let esc = match c {
                        '\0' => "\\0".to_owned(),
                        '\u{07}' => "\\a".to_owned(),
                        '\u{08}' => "\\b".to_owned(),
                        '\t' => "\\t".to_owned(),
                        '\n' => "\\n".to_owned(),
                        '\u{0b}' => "\\v".to_owned(),
                        '\u{0c}' => "\\f".to_owned(),
                        '\r' => "\\r".to_owned(),
                        '\u{1b}' => "\\e".to_owned(),
                        '"' => "\\\"".to_owned(),
                        '\\' => "\\\\".to_owned(),
                        '\u{85}' => "\\N".to_owned(),
                        '\u{a0}' => "\\_".to_owned(),
                        '\u{2028}' => "\\L".to_owned(),
                        '\u{2029}' => "\\P".to_owned(),
                        c if (c as u32) <= 0xff => format!("\\x{:02X}", c as u32),
                        c if (c as u32) <= 0xffff => format!("\\u{:04X}", c as u32),
                        c => format!("\\U{:08X}", c as u32),
                    };
                    self.out.push_str(&esc);
                    start = end + 1;
                }
            }
            if split
                && 0 < end
                && end + 1 < n
                && (ch == Some(' ') || start >= end)
                // Signed on purpose: right after an escape `start` is past `end`, as in PyYAML.
                && self.column() as isize + end as isize - start as isize > BEST_WIDTH as isize
            {
                if start < end {
                    self.out.extend(&text[start..end]);
                    start = end;
                }
                self.out.push('\\');
                self.out.push('\n');
                self.pad(indent);
                if text.get(start) == Some(&' ') {
                    self.out.push('\\');
                }
            }
            end += 1;
        }
        self.out.push('"');
    }

    /// Writes text, breaking at a single space once the line is past the preferred width.
    fn folded(&mut self, s: &str, indent: usize, split: bool) {
        let text: Vec<char> = s.chars().collect();
        let mut start = 0;
        for i in 0..text.len() {
            let single_space =
                text[i] == ' ' && i > 0 && text[i - 1] != ' ' && i + 1 < text.len() && text[i + 1] != ' ';
            if split && single_space && self.column() + (i - start) > BEST_WIDTH {
                self.out.extend(&text[start..i]);
                self.out.push('\n');
                self.pad(indent);
                start = i + 1;
            }
        }
        self.out.extend(&text[start..]);
    }
}

fn number(n: &Number) -> String {
    if n.is_f64() {
        let f = n.as_f64().unwrap_or_default();
        if f.is_nan() {
            ".nan".to_owned()
        } else if f.is_infinite() {
            if f > 0.0 { ".inf" } else { "-.inf" }.to_owned()
        } else if f.fract() == 0.0 && f.abs() < 1e16 {
            format!("{f:.1}")
        } else {
            format!("{f}")
        }
    } else {
        n.to_string()
    }
}

enum Style {
    Plain,
    Single,
    Double,
}

fn style(s: &str) -> Style {
    if s.chars().any(|c| (c.is_control() && c != '\n') || c == '\u{feff}') {
        return Style::Double;
    }
    if s.contains(" \n") || s.contains("\n ") {
        return Style::Double;
    }
    if s.contains('\n') || !plain_ok(s) || resolves_to_non_string(s) {
        return Style::Single;
    }
    Style::Plain
}

fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if s.starts_with(' ') || s.ends_with(' ') || s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if "#,[]{}&*!|>'\"%@`".contains(first) {
        return false;
    }
    if "-?:".contains(first) {
        let next = s[1..].chars().next();
        if next.is_none() || next == Some(' ') {
            return false;
        }
    }
    !(s.contains(": ") || s.contains(" #") || s.ends_with(':'))
}

/// Whether PyYAML's implicit resolvers would read `s` as something other than a string.
fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON",
        "off", "Off", "OFF", "~", "null", "Null", "NULL", "=", "<<", ".inf", ".Inf", ".INF", "-.inf", "-.Inf", "-.INF",
        "+.inf", "+.Inf", "+.INF", ".nan", ".NaN", ".NAN",
    ];
    WORDS.contains(&s) || is_int(s) || is_float(s) || is_timestamp(s)
}

fn strip_sign(s: &str) -> &str {
    s.strip_prefix(['-', '+']).unwrap_or(s)
}

fn all(s: &str, f: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.chars().all(f)
}

fn is_sexagesimal_tail(parts: &[&str]) -> bool {
    !parts.is_empty()
        && parts.iter().all(|p| {
            (1..=2).contains(&p.len()) && all(p, |c| c.is_ascii_digit()) && (p.len() == 1 || p.as_bytes()[0] <= b'5')
        })
}

fn is_int(s: &str) -> bool {
    let t = strip_sign(s);
    if let Some(b) = t.strip_prefix("0b") {
        return all(b, |c| c == '0' || c == '1' || c == '_');
    }
    if let Some(x) = t.strip_prefix("0x") {
        return all(x, |c| c.is_ascii_hexdigit() || c == '_');
    }
    if t == "0" {
        return true;
    }
    if let Some(octal) = t.strip_prefix('0') {
        return all(octal, |c| ('0'..='7').contains(&c) || c == '_');
    }
    let parts: Vec<&str> = t.split(':').collect();
    let head = parts[0];
    let head_ok = head.starts_with(|c: char| ('1'..='9').contains(&c)) && all(head, |c| c.is_ascii_digit() || c == '_');
    head_ok && (parts.len() == 1 || is_sexagesimal_tail(&parts[1..]))
}

fn is_float(s: &str) -> bool {
    let t = strip_sign(s);
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let exp_ok = exp.is_none_or(|e| {
        e.len() > 1 && (e.starts_with('-') || e.starts_with('+')) && all(&e[1..], |c| c.is_ascii_digit())
    });
    if let Some(rest) = mantissa.strip_prefix('.') {
        // `.5`, but only unsigned
        return t.len() == s.len() && all(rest, |c| c.is_ascii_digit() || c == '_') && exp_ok;
    }
    let Some((int, frac)) = mantissa.split_once('.') else {
        return false;
    };
    let int_parts: Vec<&str> = int.split(':').collect();
    let int_ok = int_parts[0].starts_with(|c: char| c.is_ascii_digit())
        && all(int_parts[0], |c| c.is_ascii_digit() || c == '_')
        && (int_parts.len() == 1 || (exp.is_none() && is_sexagesimal_tail(&int_parts[1..])));
    int_ok && frac.chars().all(|c| c.is_ascii_digit() || c == '_') && exp_ok
}

fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 10 {
        return false;
    }
    let date = b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit);
    date && (b.len() == 10 || matches!(b[10], b'T' | b't' | b' ' | b'\t'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_pyyaml_safe_dump() {
        let v = json!({
            "a": "on", "aa": "Y", "ab": "=", "ac": "1:30", "ad": ".5", "ae": "x: ", "af": "a,b", "ag": "*",
            "ah": "!x", "ai": "x'y", "b": "", "c": "#x", "d": "%(a)s: b",
            "e": format!("{} yy zz {} end", "x".repeat(70), "w".repeat(20)),
            "f": [{"k": 1, "j": "2"}, "s"], "g": {}, "h": [], "i": null, "j": 1.4, "k": "1_000",
            "l": "2002-12-14", "m": "a\nb", "n": " lead", "p": "127.0.0.1:8008", "q": "a: b",
            "r": "- x", "s": "x #y", "t": "0777", "u": "1e3", "v": "null", "w": "~",
            "x": {"n": {"m": [1, [2, 3]]}}, "y": "host all all 0.0.0.0/0 md5", "z": "é"
        });
        let expected = "a: 'on'\naa: Y\nab: '='\nac: '1:30'\nad: '.5'\nae: 'x: '\naf: a,b\nag: '*'\nah: '!x'\n\
ai: x'y\nb: ''\nc: '#x'\nd: '%(a)s: b'\n\
e: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx yy zz wwwwwwwwwwwwwwwwwwww\n  end\n\
f:\n- j: '2'\n  k: 1\n- s\ng: {}\nh: []\ni: null\nj: 1.4\nk: '1_000'\nl: '2002-12-14'\nm: 'a\n\n  b'\n\
n: ' lead'\np: 127.0.0.1:8008\nq: 'a: b'\nr: '- x'\ns: 'x #y'\nt: '0777'\nu: 1e3\nv: 'null'\nw: '~'\n\
x:\n  n:\n    m:\n    - 1\n    - - 2\n      - 3\ny: host all all 0.0.0.0/0 md5\nz: é\n";
        assert_eq!(to_yaml(&v, true), expected);
    }

    fn arb_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let scalar = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1.0e6f64..1.0e6).prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "[ -~]{0,12}".prop_map(Value::String),
            "[a-z0-9:#'\\-. ,\n]{0,100}".prop_map(Value::String),
            prop::sample::select(vec!["on", "y", "0640", "1:30", "1e3", "~", "-", "- a", "a: b", "", " x", "<<"])
                .prop_map(|s| Value::String(s.to_owned())),
        ];
        scalar.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec(("[a-z_<~ :#-]{1,8}", inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn any_value_reads_back(v in arb_value()) {
            let text = to_yaml(&v, false);
            let back = crate::tree::parse_yaml(&text, "t").unwrap();
            proptest::prop_assert_eq!(back, v, "{}", text);
        }
    }

    #[test]
    fn output_reads_back() {
        let v = json!({"s": "a: b", "n": 5, "l": ["x", {"y": "on"}], "q": "it's", "m": "a\nb"});
        let back = crate::tree::parse_yaml(&to_yaml(&v, false), "t").unwrap();
        assert_eq!(back, v);
    }
}
