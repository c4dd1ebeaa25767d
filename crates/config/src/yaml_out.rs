//! YAML output exactly as PyYAML's `yaml.safe_dump(..., allow_unicode=True)` writes it, which is what Patroni
//! and patronictl print (`show-config`, `edit-config`, `list -f yaml`, `--generate-sample-config`,
//! `--validate-config --print`).
//!
//! This is a port of PyYAML's `Emitter` (6.0) restricted to what a JSON value can produce: the same state
//! (column, whitespace/indention flags, indent stack, flow level, contexts) and the same scalar analysis and
//! writers, so folding, quoting and indentation agree byte for byte. Strings are quoted only when PyYAML's
//! implicit resolvers would read them back as something else (booleans, numbers, nulls, timestamps, `<<`,
//! `=`). patronictl dumps with `width=200`, Patroni itself with the default 80.

use serde_json::{Map, Number, Value};

/// PyYAML's default `width`.
pub const DEFAULT_WIDTH: usize = 80;

/// The `yaml.safe_dump` arguments we support (`allow_unicode` is always on: every Patroni caller sets it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpOptions {
    /// `sort_keys` (PyYAML's default is `True`).
    pub sort_keys: bool,
    /// `width`: scalars are folded once a line is past it. As in PyYAML, values of 4 or less mean 80.
    pub width: usize,
    /// `default_flow_style`: `true` writes every collection as `{a: 1}` / `[1, 2]`.
    pub default_flow_style: bool,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions { sort_keys: true, width: DEFAULT_WIDTH, default_flow_style: false }
    }
}

/// `yaml.safe_dump(value, default_flow_style=False, allow_unicode=True, sort_keys=sort_keys)`.
pub fn to_yaml(value: &Value, sort_keys: bool) -> String {
    to_yaml_with(value, DumpOptions { sort_keys, ..DumpOptions::default() })
}

/// As [`to_yaml`], with PyYAML's `width` argument.
pub fn to_yaml_width(value: &Value, sort_keys: bool, width: usize) -> String {
    to_yaml_with(value, DumpOptions { sort_keys, width, default_flow_style: false })
}

/// `yaml.safe_dump(value, allow_unicode=True, ...)` with all of `options`.
pub fn to_yaml_with(value: &Value, options: DumpOptions) -> String {
    let mut e = Emitter {
        out: String::new(),
        options,
        // PyYAML ignores widths not larger than twice the indent.
        best_width: if options.width > 2 * INDENT { options.width } else { DEFAULT_WIDTH },
        column: 0,
        whitespace: true,
        indention: true,
        open_ended: false,
        indent: None,
        indents: Vec::new(),
        flow_level: 0,
        root_context: false,
        mapping_context: false,
        simple_key_context: false,
    };
    e.document(value);
    e.out
}

const INDENT: usize = 2;

/// The line breaks PyYAML knows.
fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Where a node sits, as PyYAML's `expect_node(root, sequence, mapping, simple_key)` records it.
#[derive(Clone, Copy, Default)]
struct Ctx {
    root: bool,
    mapping: bool,
    simple_key: bool,
}

struct Emitter {
    out: String,
    options: DumpOptions,
    best_width: usize,
    /// Column in characters (code points, as Python's `len` counts).
    column: usize,
    /// The last character written is a space (or nothing was written on the line).
    whitespace: bool,
    /// The line so far holds only indentation and indicators (`- `, `? `, `: `).
    indention: bool,
    /// A plain root scalar was written, so the document needs `...`.
    open_ended: bool,
    indent: Option<usize>,
    indents: Vec<Option<usize>>,
    flow_level: usize,
    root_context: bool,
    mapping_context: bool,
    simple_key_context: bool,
}

impl Emitter {
    fn document(&mut self, v: &Value) {
        self.node(v, Ctx { root: true, ..Ctx::default() });
        self.write_indent();
        if self.open_ended {
            self.write_indicator("...", true, false, false);
            self.write_indent();
        }
    }

    fn set_context(&mut self, ctx: Ctx) {
        self.root_context = ctx.root;
        self.mapping_context = ctx.mapping;
        self.simple_key_context = ctx.simple_key;
    }

    fn node(&mut self, v: &Value, ctx: Ctx) {
        self.set_context(ctx);
        let flow = self.flow_level > 0 || self.options.default_flow_style;
        match v {
            Value::Array(items) if flow || items.is_empty() => self.flow_sequence(items),
            Value::Array(items) => self.block_sequence(items),
            Value::Object(m) if flow || m.is_empty() => self.flow_mapping(m),
            Value::Object(m) => self.block_mapping(m),
            Value::Null => self.scalar("null", true),
            Value::Bool(b) => self.scalar(if *b { "true" } else { "false" }, true),
            Value::Number(n) => self.scalar(&number(n), true),
            Value::String(s) => self.scalar(s, !resolves_to_non_string(s)),
        }
    }

    fn key(&mut self, k: &str, ctx: Ctx) {
        self.set_context(ctx);
        self.scalar(k, !resolves_to_non_string(k));
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        self.indent = match self.indent {
            None => Some(if flow { INDENT } else { 0 }),
            Some(i) if !indentless => Some(i + INDENT),
            same => same,
        };
    }

    fn decrease_indent(&mut self) {
        self.indent = self.indents.pop().flatten();
    }

    fn entries<'m>(&self, m: &'m Map<String, Value>) -> Vec<(&'m String, &'m Value)> {
        let mut v: Vec<_> = m.iter().collect();
        if self.options.sort_keys {
            // Byte order of UTF-8 is code point order, which is how Python sorts `str`.
            v.sort_by(|a, b| a.0.cmp(b.0));
        }
        v
    }

    /// PyYAML's `check_simple_key` for a string key: the implicit `!!str` tag (5 characters) counts
    /// towards the limit of 128.
    fn simple_key(k: &str) -> bool {
        !k.is_empty() && k.chars().count() + 5 < 128 && !k.chars().any(is_break)
    }

    fn flow_sequence(&mut self, items: &[Value]) {
        self.write_indicator("[", true, true, false);
        self.flow_level += 1;
        self.increase_indent(true, false);
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.write_indicator(",", false, false, false);
            }
            if self.column > self.best_width {
                self.write_indent();
            }
            self.node(item, Ctx::default());
        }
        self.decrease_indent();
        self.flow_level -= 1;
        self.write_indicator("]", false, false, false);
    }

    fn flow_mapping(&mut self, m: &Map<String, Value>) {
        self.write_indicator("{", true, true, false);
        self.flow_level += 1;
        self.increase_indent(true, false);
        let value_ctx = Ctx { mapping: true, ..Ctx::default() };
        for (i, (k, v)) in self.entries(m).into_iter().enumerate() {
            if i > 0 {
                self.write_indicator(",", false, false, false);
            }
            if self.column > self.best_width {
                self.write_indent();
            }
            if Self::simple_key(k) {
                self.key(k, Ctx { mapping: true, simple_key: true, ..Ctx::default() });
                self.write_indicator(":", false, false, false);
            } else {
                self.write_indicator("?", true, false, false);
                self.key(k, value_ctx);
                if self.column > self.best_width {
                    self.write_indent();
                }
                self.write_indicator(":", true, false, false);
            }
            self.node(v, value_ctx);
        }
        self.decrease_indent();
        self.flow_level -= 1;
        self.write_indicator("}", false, false, false);
    }

    fn block_sequence(&mut self, items: &[Value]) {
        // A sequence that is a mapping value is not indented.
        let indentless = self.mapping_context && !self.indention;
        self.increase_indent(false, indentless);
        for item in items {
            self.write_indent();
            self.write_indicator("-", true, false, true);
            self.node(item, Ctx::default());
        }
        self.decrease_indent();
    }

    fn block_mapping(&mut self, m: &Map<String, Value>) {
        self.increase_indent(false, false);
        let value_ctx = Ctx { mapping: true, ..Ctx::default() };
        for (k, v) in self.entries(m) {
            self.write_indent();
            if Self::simple_key(k) {
                self.key(k, Ctx { mapping: true, simple_key: true, ..Ctx::default() });
                self.write_indicator(":", false, false, false);
            } else {
                self.write_indicator("?", true, false, true);
                self.key(k, value_ctx);
                self.write_indent();
                self.write_indicator(":", true, false, true);
            }
            self.node(v, value_ctx);
        }
        self.decrease_indent();
    }

    /// `expect_scalar` + `process_scalar`; `implicit` is whether the plain text reads back as this value.
    fn scalar(&mut self, text: &str, implicit: bool) {
        self.increase_indent(true, false);
        let a = analyze(text);
        let simple_key = self.simple_key_context;
        let plain_allowed = if self.flow_level > 0 { a.allow_flow_plain } else { a.allow_block_plain };
        let chars: Vec<char> = text.chars().collect();
        let split = !simple_key;
        if implicit && !(simple_key && (a.empty || a.multiline)) && plain_allowed {
            self.write_plain(&chars, split);
        } else if a.allow_single_quoted && !(simple_key && a.multiline) {
            self.write_single_quoted(&chars, split);
        } else {
            self.write_double_quoted(&chars, split);
        }
        self.decrease_indent();
    }

    fn write(&mut self, text: &[char]) {
        self.column += text.len();
        self.out.extend(text);
    }

    fn write_str(&mut self, s: &str) {
        self.column += s.chars().count();
        self.out.push_str(s);
    }

    fn write_indicator(&mut self, indicator: &str, need_whitespace: bool, whitespace: bool, indention: bool) {
        if need_whitespace && !self.whitespace {
            self.write_str(" ");
        }
        self.write_str(indicator);
        self.whitespace = whitespace;
        self.indention = self.indention && indention;
        self.open_ended = false;
    }

    fn write_indent(&mut self) {
        let indent = self.indent.unwrap_or(0);
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.write_line_break('\n');
        }
        if self.column < indent {
            self.whitespace = true;
            self.out.extend(std::iter::repeat_n(' ', indent - self.column));
            self.column = indent;
        }
    }

    fn write_line_break(&mut self, c: char) {
        self.whitespace = true;
        self.indention = true;
        self.column = 0;
        self.out.push(c);
    }

    fn write_breaks(&mut self, breaks: &[char]) {
        // A lone `\n` would fold into a space when read back, hence the extra one.
        if breaks.first() == Some(&'\n') {
            self.write_line_break('\n');
        }
        for &br in breaks {
            self.write_line_break(br);
        }
    }

    fn write_plain(&mut self, text: &[char], split: bool) {
        if self.root_context {
            self.open_ended = true;
        }
        if text.is_empty() {
            return;
        }
        if !self.whitespace {
            self.write_str(" ");
        }
        self.whitespace = false;
        self.indention = false;
        let (mut spaces, mut breaks) = (false, false);
        let mut start = 0;
        for end in 0..=text.len() {
            let ch = text.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end && self.column > self.best_width && split {
                        self.write_indent();
                        self.whitespace = false;
                        self.indention = false;
                    } else {
                        self.write(&text[start..end]);
                    }
                    start = end;
                }
            } else if breaks {
                if !ch.is_some_and(is_break) {
                    self.write_breaks(&text[start..end]);
                    self.write_indent();
                    self.whitespace = false;
                    self.indention = false;
                    start = end;
                }
            } else if ch.is_none_or(|c| c == ' ' || is_break(c)) {
                self.write(&text[start..end]);
                start = end;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
                breaks = is_break(c);
            }
        }
    }

    fn write_single_quoted(&mut self, text: &[char], split: bool) {
        self.write_indicator("'", true, false, false);
        let (mut spaces, mut breaks) = (false, false);
        let mut start = 0;
        for end in 0..=text.len() {
            let ch = text.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end && self.column > self.best_width && split && start != 0 && end != text.len() {
                        self.write_indent();
                    } else {
                        self.write(&text[start..end]);
                    }
                    start = end;
                }
            } else if breaks {
                if !ch.is_some_and(is_break) {
                    self.write_breaks(&text[start..end]);
                    self.write_indent();
                    start = end;
                }
            } else if ch.is_none_or(|c| c == ' ' || c == '\'' || is_break(c)) && start < end {
                self.write(&text[start..end]);
                start = end;
            }
            if ch == Some('\'') {
                self.write_str("''");
                start = end + 1;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
                breaks = is_break(c);
            }
        }
        self.write_indicator("'", false, false, false);
    }

    fn write_double_quoted(&mut self, text: &[char], split: bool) {
        self.write_indicator("\"", true, false, false);
        let mut start = 0;
        for end in 0..=text.len() {
            let ch = text.get(end).copied();
            if ch.is_none_or(needs_escape) {
                if start < end {
                    self.write(&text[start..end]);
                    start = end;
                }
                if let Some(c) = ch {
                    self.write_str(&escape(c));
                    start = end + 1;
                }
            }
            // Signed on purpose: right after an escape `start` is past `end`, as in PyYAML.
            let past_width = self.column as isize + end as isize - start as isize > self.best_width as isize;
            if 0 < end && end + 1 < text.len() && (ch == Some(' ') || start >= end) && past_width && split {
                if start < end {
                    self.write(&text[start..end]);
                    start = end;
                }
                self.write_str("\\");
                self.write_indent();
                self.whitespace = false;
                self.indention = false;
                if text[start] == ' ' {
                    self.write_str("\\");
                }
            }
        }
        self.write_indicator("\"", false, false, false);
    }
}

fn needs_escape(c: char) -> bool {
    matches!(c, '"' | '\\' | '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}')
        || !(('\u{20}'..='\u{7e}').contains(&c)
            || ('\u{a0}'..='\u{d7ff}').contains(&c)
            || ('\u{e000}'..='\u{fffd}').contains(&c))
}

fn escape(c: char) -> String {
    let short = match c {
        '\0' => '0',
        '\u{07}' => 'a',
        '\u{08}' => 'b',
        '\t' => 't',
        '\n' => 'n',
        '\u{0b}' => 'v',
        '\u{0c}' => 'f',
        '\r' => 'r',
        '\u{1b}' => 'e',
        '"' => '"',
        '\\' => '\\',
        '\u{85}' => 'N',
        '\u{a0}' => '_',
        '\u{2028}' => 'L',
        '\u{2029}' => 'P',
        c if (c as u32) <= 0xff => return format!("\\x{:02X}", c as u32),
        c if (c as u32) <= 0xffff => return format!("\\u{:04X}", c as u32),
        c => return format!("\\U{:08X}", c as u32),
    };
    format!("\\{short}")
}

/// What PyYAML's `analyze_scalar` finds out about a string (with `allow_unicode`).
struct Analysis {
    empty: bool,
    multiline: bool,
    allow_flow_plain: bool,
    allow_block_plain: bool,
    allow_single_quoted: bool,
}

fn analyze(s: &str) -> Analysis {
    let text: Vec<char> = s.chars().collect();
    let n = text.len();
    if n == 0 {
        return Analysis {
            empty: true,
            multiline: false,
            allow_flow_plain: false,
            allow_block_plain: true,
            allow_single_quoted: true,
        };
    }
    let is_space = |c: char| matches!(c, '\0' | ' ' | '\t' | '\r') || is_break(c);
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let mut flow_indicators = block_indicators;
    let mut line_breaks = false;
    let mut special_characters = false;
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) = (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    for (i, &ch) in text.iter().enumerate() {
        let preceded_by_whitespace = i == 0 || is_space(text[i - 1]);
        let followed_by_whitespace = i + 1 >= n || is_space(text[i + 1]);
        if i == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(ch) {
                flow_indicators = true;
                block_indicators = true;
            }
            if ch == '?' || ch == ':' {
                flow_indicators = true;
                block_indicators |= followed_by_whitespace;
            }
            if ch == '-' && followed_by_whitespace {
                flow_indicators = true;
                block_indicators = true;
            }
        } else {
            if ",?[]{}".contains(ch) {
                flow_indicators = true;
            }
            if ch == ':' {
                flow_indicators = true;
                block_indicators |= followed_by_whitespace;
            }
            if ch == '#' && preceded_by_whitespace {
                flow_indicators = true;
                block_indicators = true;
            }
        }
        line_breaks |= is_break(ch);
        if !(ch == '\n' || ('\u{20}'..='\u{7e}').contains(&ch)) {
            // PyYAML's upper bound excludes U+10FFFF itself.
            let printable = (ch == '\u{85}'
                || ('\u{a0}'..='\u{d7ff}').contains(&ch)
                || ('\u{e000}'..='\u{fffd}').contains(&ch)
                || ('\u{10000}'..'\u{10ffff}').contains(&ch))
                && ch != '\u{feff}';
            special_characters |= !printable;
        }
        if ch == ' ' {
            leading_space |= i == 0;
            trailing_space |= i == n - 1;
            break_space |= previous_break;
            previous_space = true;
            previous_break = false;
        } else if is_break(ch) {
            leading_break |= i == 0;
            trailing_break |= i == n - 1;
            space_break |= previous_space;
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
    }
    let mut plain = !(leading_space || leading_break || trailing_space || trailing_break);
    let mut single = true;
    if break_space {
        plain = false;
        single = false;
    }
    if space_break || special_characters {
        plain = false;
        single = false;
    }
    if line_breaks {
        plain = false;
    }
    Analysis {
        empty: false,
        multiline: line_breaks,
        allow_flow_plain: plain && !flow_indicators,
        allow_block_plain: plain && !block_indicators,
        allow_single_quoted: single,
    }
}

/// `SafeRepresenter`: integers as Python prints them, floats as `repr()` with a `.0` forced into a bare
/// exponent (`1e+16` is not a YAML 1.1 float, `1.0e+16` is).
fn number(n: &Number) -> String {
    let Some(f) = n.as_f64().filter(|_| n.is_f64()) else {
        return n.to_string();
    };
    if f.is_nan() {
        return ".nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.to_owned();
    }
    let repr = python_float_repr(f);
    if !repr.contains('.') && repr.contains('e') {
        repr.replacen('e', ".0e", 1)
    } else {
        repr
    }
}

/// Python's `repr(float)`: the shortest digits that read back, positional for exponents -4..16, else
/// scientific with a signed exponent of at least two digits.
fn python_float_repr(f: f64) -> String {
    // `{:e}` gives the shortest round-trip digits too, e.g. `1.5e-5`, `-0e0`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let body = if (-4..16).contains(&exp) {
        if exp >= 0 {
            let point = exp as usize + 1;
            if digits.len() > point {
                format!("{}.{}", &digits[..point], &digits[point..])
            } else {
                format!("{digits}{}.0", "0".repeat(point - digits.len()))
            }
        } else {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        format!("{first}{frac}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.unsigned_abs())
    };
    format!("{sign}{body}")
}

/// Whether PyYAML's implicit resolvers (`yaml.resolver.Resolver`) would read plain `s` as something other
/// than a string.
fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON",
        "off", "Off", "OFF", "~", "null", "Null", "NULL", "", "=", "<<", ".inf", ".Inf", ".INF", "-.inf", "-.Inf",
        "-.INF", "+.inf", "+.Inf", "+.INF", ".nan", ".NaN", ".NAN",
    ];
    // Python's `$` also matches before a final newline; such strings are never written plain anyway.
    let s = s.strip_suffix('\n').unwrap_or(s);
    WORDS.contains(&s) || is_int(s) || is_float(s) || is_timestamp(s)
}

fn strip_sign(s: &str) -> &str {
    s.strip_prefix(['-', '+']).unwrap_or(s)
}

fn all(s: &str, f: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.chars().all(f)
}

/// `(?::[0-5]?[0-9])+`, the parts after the first `:`.
fn is_sexagesimal_tail(parts: &[&str]) -> bool {
    !parts.is_empty()
        && parts.iter().all(|p| {
            (1..=2).contains(&p.len()) && all(p, |c| c.is_ascii_digit()) && (p.len() == 1 || p.as_bytes()[0] <= b'5')
        })
}

/// `[-+]?0b[0-1_]+ | [-+]?0[0-7_]+ | [-+]?(?:0|[1-9][0-9_]*) | [-+]?0x[0-9a-fA-F_]+ |
/// [-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+`
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

/// `[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)? | \.[0-9][0-9_]*(?:[eE][-+][0-9]+)? |
/// [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*` (the infinities and NaNs are in the word list)
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
        // `.5`, but only unsigned, and a digit must follow the point.
        return t.len() == s.len()
            && rest.starts_with(|c: char| c.is_ascii_digit())
            && all(rest, |c| c.is_ascii_digit() || c == '_')
            && exp_ok;
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

/// PyYAML's timestamp resolver, which must match the whole string:
/// `[0-9]{4}-[0-9]{2}-[0-9]{2}` or
/// `[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?`
/// `(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?`.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    // Up to `max` digits at `i`; the count.
    let digits = |i: &mut usize, max: usize| {
        let n = b[*i..].iter().take(max).take_while(|c| c.is_ascii_digit()).count();
        *i += n;
        n
    };
    let byte = |i: &mut usize, want: &[u8]| {
        let ok = b.get(*i).is_some_and(|c| want.contains(c));
        if ok {
            *i += 1;
        }
        ok
    };
    if digits(&mut i, 4) != 4 || !byte(&mut i, b"-") {
        return false;
    }
    let month = digits(&mut i, 2);
    if month == 0 || !byte(&mut i, b"-") {
        return false;
    }
    let day = digits(&mut i, 2);
    if day == 0 {
        return false;
    }
    if i == b.len() {
        return month == 2 && day == 2;
    }
    if !byte(&mut i, b"Tt") {
        let blanks = b[i..].iter().take_while(|c| matches!(c, b' ' | b'\t')).count();
        if blanks == 0 {
            return false;
        }
        i += blanks;
    }
    if digits(&mut i, 2) == 0 || !byte(&mut i, b":") || digits(&mut i, 2) != 2 {
        return false;
    }
    if !byte(&mut i, b":") || digits(&mut i, 2) != 2 {
        return false;
    }
    if byte(&mut i, b".") {
        i += b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    }
    if i == b.len() {
        return true;
    }
    i += b[i..].iter().take_while(|c| matches!(c, b' ' | b'\t')).count();
    if byte(&mut i, b"Z") {
        return i == b.len();
    }
    if !byte(&mut i, b"+-") || digits(&mut i, 2) == 0 {
        return false;
    }
    if byte(&mut i, b":") && digits(&mut i, 2) != 2 {
        return false;
    }
    i == b.len()
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

    #[test]
    fn width_200_keeps_long_lines() {
        let long = format!("{} yy zz {} end", "x".repeat(70), "w".repeat(20));
        assert_eq!(to_yaml_width(&json!({ "e": long }), true, 200), format!("e: {long}\n"));
        // Widths PyYAML rejects fall back to 80.
        assert_eq!(to_yaml_width(&json!({ "e": long }), true, 4), to_yaml(&json!({ "e": long }), true));
    }

    #[test]
    fn only_whole_timestamps_are_quoted() {
        for s in ["2024-01-01", "2024-01-01T10:00:00+00:00", "2024-1-1 1:00:00", "2026-11-22 03:00:00+00:00"] {
            assert!(is_timestamp(s), "{s}");
        }
        for s in [
            "2024-1-1",
            "2024-01-01 12:00:00.123+00:00 extra",
            "2030-01-01T10:00:00+00:00 if version < 16.0",
            "2024-01-01x",
            "2024-01-01 ",
            "2024-01-01T10:00:00+",
        ] {
            assert!(!is_timestamp(s), "{s}");
        }
    }

    #[test]
    fn floats_as_python_repr() {
        let cases = [
            (1e16, "1.0e+16"),
            (1e-5, "1.0e-05"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (123456.789, "123456.789"),
            (-0.0, "-0.0"),
            (1e15, "1000000000000000.0"),
            (2.5e300, "2.5e+300"),
        ];
        for (f, want) in cases {
            assert_eq!(number(&Number::from_f64(f).unwrap()), want);
        }
    }

    #[test]
    fn flow_style() {
        let opts = DumpOptions { default_flow_style: true, width: 200, sort_keys: true };
        assert_eq!(to_yaml_with(&json!({"b": [1, {"c": "x y"}], "a": {}}), opts), "{a: {}, b: [1, {c: x y}]}\n");
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
        fn any_value_reads_back(v in arb_value(), width in proptest::sample::select(vec![20usize, 80, 200]),
                                flow in proptest::bool::ANY) {
            let opts = DumpOptions { sort_keys: false, width, default_flow_style: flow };
            let text = to_yaml_with(&v, opts);
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
