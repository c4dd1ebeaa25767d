//! YAML text for a JSON value, byte for byte what `yaml.safe_dump(value, allow_unicode=True, ...)` prints, which
//! is what Patroni and patronictl show (`show-config`, `edit-config`, `list -f yaml`, `--generate-sample-config`,
//! `--validate-config --print`). patronictl dumps with `width=200`, Patroni with the default 80.
//!
//! The output is verified against golden dumps PyYAML 6.0.3 wrote (`tests/fixtures/pyyaml/safe_dump*.json`:
//! widths 4 to 200, block and flow style, sorted and unsorted keys), plus read-back property tests below.
//!
//! The writer is three small parts:
//! - **choosing a scalar style** (`choose_style`): plain when the text reads back as the same string,
//!   otherwise single-quoted, or double-quoted when only escapes can carry it;
//! - **writing a scalar** on a `LineWriter`, folding a long line where a reader turns the break back into
//!   the space it replaced;
//! - **laying out the tree**: block mappings and sequences (`- ` items, a sequence under a key not indented),
//!   `{...}` / `[...]` flow collections (always for empty ones, everywhere with `default_flow_style`).

use serde_json::{Map, Number, Value};
use std::borrow::Cow;

/// PyYAML's default `width`.
pub const DEFAULT_WIDTH: usize = 80;

/// Indentation step of nested collections and of a scalar's continuation lines.
const INDENT: usize = 2;

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
    // PyYAML ignores a width not above twice the indentation step.
    let width = if options.width > 2 * INDENT { options.width } else { DEFAULT_WIDTH };
    let mut tree = TreeWriter { w: LineWriter { out: String::new(), column: 0, width }, options };
    tree.document(value);
    tree.w.out
}

// ---------------------------------------------------------------------------------------------------------
// Scalar style

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScalarStyle {
    Plain,
    SingleQuoted,
    DoubleQuoted,
}

/// What in a string's text matters for its style.
#[derive(Debug, Default)]
struct ScalarFacts {
    /// A line break: `\n`, U+0085, U+2028 or U+2029.
    line_break: bool,
    /// A space first or last.
    edge_space: bool,
    /// A space right before or right after a line break.
    space_at_break: bool,
    /// A character only an escape can write (controls, U+FEFF, U+FFFE, U+FFFF, U+10FFFF...).
    unprintable: bool,
    /// Something a block-context reader takes for syntax: `- `, `? `, `: `, ` #`, a leading `[`, `'`, `&`...
    block_indicator: bool,
    /// Something a flow-context reader takes for syntax: the block indicators and any of `,?:[]{}`.
    flow_indicator: bool,
}

/// Characters that end a token for a reader: after them `#` starts a comment, before them `:` ends a key.
fn is_blank(c: char) -> bool {
    matches!(c, '\0' | ' ' | '\t' | '\r') || is_break(c)
}

/// The line breaks of YAML 1.1, which PyYAML follows.
fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Characters a YAML stream may hold unescaped (`\n` and the printable set of YAML 1.1, minus the BOM; PyYAML
/// stops just short of U+10FFFF).
fn is_printable(c: char) -> bool {
    matches!(c, '\n' | '\u{20}'..='\u{7e}' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
        && c != '\u{feff}'
        || ('\u{10000}'..'\u{10ffff}').contains(&c)
}

impl ScalarFacts {
    fn of(text: &str) -> ScalarFacts {
        let Some(first) = text.chars().next() else {
            return ScalarFacts::default();
        };
        let chars: Vec<char> = text.chars().collect();
        let blank_at = |i: usize| chars.get(i).is_none_or(|&c| is_blank(c));
        let mut f = ScalarFacts {
            line_break: chars.iter().any(|&c| is_break(c)),
            edge_space: text.starts_with(' ') || text.ends_with(' '),
            space_at_break: chars
                .windows(2)
                .any(|p| (p[0] == ' ' && is_break(p[1])) || (is_break(p[0]) && p[1] == ' ')),
            unprintable: !chars.iter().all(|&c| is_printable(c)),
            // A document marker, or a character that starts a flow collection, quote, anchor, alias, tag, block
            // scalar, directive or reserved token.
            block_indicator: text.starts_with("---")
                || text.starts_with("...")
                || "#,[]{}&*!|>'\"%@`".contains(first)
                // A sequence entry or complex key: `- `, `? `.
                || ("-?".contains(first) && blank_at(1)),
            flow_indicator: false,
        };
        for (i, &c) in chars.iter().enumerate() {
            // `: ` ends a key and ` #` starts a comment wherever they are.
            f.block_indicator |= (c == ':' && blank_at(i + 1)) || (c == '#' && (i == 0 || is_blank(chars[i - 1])));
        }
        // In flow context these separate entries, open or close collections, or mark keys anywhere.
        f.flow_indicator = f.block_indicator || text.contains([',', '?', ':', '[', ']', '{', '}']);
        f
    }
}

/// The style for `text`, which reads back as the value being written when plain only if `reads_back`.
fn choose_style(text: &str, reads_back: bool, in_flow: bool) -> ScalarStyle {
    let f = ScalarFacts::of(text);
    let indicator = if in_flow { f.flow_indicator } else { f.block_indicator };
    // `reads_back` is false for the empty string (it reads as null) and for text like `on`, `1.5`, `~`.
    // A reader strips a plain scalar's edge spaces and folds its line breaks, and only escapes can write the
    // unprintable. (A plain scalar may span lines, but PyYAML never writes one with a line break.)
    if reads_back && !indicator && !f.line_break && !f.edge_space && !f.unprintable {
        ScalarStyle::Plain
    // Single quotes keep everything but unprintables; a line break is written as an empty line, but spaces next
    // to it would be trimmed away by the reader.
    } else if !f.unprintable && !f.space_at_break {
        ScalarStyle::SingleQuoted
    } else {
        ScalarStyle::DoubleQuoted
    }
}

// ---------------------------------------------------------------------------------------------------------
// Writing scalars

/// The output and its column, counted in characters (code points, as Python's `len` counts).
struct LineWriter {
    out: String,
    column: usize,
    /// The column past which a scalar folds at its next chance.
    width: usize,
}

impl LineWriter {
    fn write(&mut self, s: &str) {
        self.out.push_str(s);
        self.column += s.chars().count();
    }

    fn write_chars(&mut self, chars: &[char]) {
        self.out.extend(chars);
        self.column += chars.len();
    }

    /// Ends the line with `br` (any YAML line break; PyYAML writes them as they are).
    fn line_break(&mut self, br: char) {
        self.out.push(br);
        self.column = 0;
    }

    fn indent_to(&mut self, indent: usize) {
        if self.column < indent {
            self.out.extend(std::iter::repeat_n(' ', indent - self.column));
            self.column = indent;
        }
    }

    fn new_line(&mut self, indent: usize) {
        self.line_break('\n');
        self.indent_to(indent);
    }

    fn past_width(&self) -> bool {
        self.column > self.width
    }

    /// Plain or single-quoted scalar text. Where a single space sits between two other characters and the line
    /// is already past the width, the space becomes a line break (a reader folds the break back into one space;
    /// wider gaps stay, since trailing spaces would be lost). Line breaks are written as they are, each run of
    /// them led by an extra `\n` when it starts with one, because a lone `\n` reads back as a space.
    /// Continuation lines start at `indent`; `fold: false` keeps everything but line breaks on one line.
    fn folding_text(&mut self, text: &str, indent: usize, fold: bool) {
        #[derive(PartialEq)]
        enum Kind {
            Space,
            Break,
            Other,
        }
        let kind = |c: char| match c {
            ' ' => Kind::Space,
            c if is_break(c) => Kind::Break,
            _ => Kind::Other,
        };
        let chars: Vec<char> = text.chars().collect();
        let mut at = 0;
        for run in chars.chunk_by(|&a, &b| kind(a) == kind(b)) {
            let inner = at > 0 && at + run.len() < chars.len();
            at += run.len();
            match kind(run[0]) {
                Kind::Space if run.len() == 1 && inner && fold && self.past_width() => self.new_line(indent),
                Kind::Break => {
                    if run[0] == '\n' {
                        self.line_break('\n');
                    }
                    for &br in run {
                        self.line_break(br);
                    }
                    self.indent_to(indent);
                }
                _ => self.write_chars(run),
            }
        }
    }

    fn single_quoted(&mut self, text: &str, indent: usize, fold: bool) {
        self.write("'");
        self.folding_text(&text.replace('\'', "''"), indent, fold);
        self.write("'");
    }

    /// A double-quoted scalar: unprintables, `"`, `\` and line breaks escaped. A long line ends in `\` (an
    /// escaped line break, which reads back as nothing) before a space or next to an escape, and a space
    /// starting the next line is escaped so the reader keeps it.
    fn double_quoted(&mut self, text: &str, indent: usize, fold: bool) {
        self.write("\"");
        let chars: Vec<char> = text.chars().collect();
        // Printable characters are written in runs; `from` is the first one not written yet.
        let mut from = 0;
        for (i, &c) in chars.iter().enumerate() {
            let escape = escape_sequence(c);
            if let Some(seq) = &escape {
                self.write_chars(&chars[from..i]);
                self.write(seq);
                from = i + 1;
            }
            // A line may end before a space or right after an escape, but not at the first or last character.
            let breakable = i > 0 && i + 1 < chars.len() && (c == ' ' || from >= i);
            // The column the `\` would go at; right after an escape PyYAML counts one less, and so do we.
            let at = if escape.is_some() { self.column - 1 } else { self.column + (i - from) };
            if fold && breakable && at > self.width {
                self.write_chars(&chars[from.min(i)..i]);
                self.write("\\");
                self.new_line(indent);
                from = from.max(i);
                if chars[from] == ' ' {
                    self.write("\\");
                }
            }
        }
        self.write_chars(&chars[from..]);
        self.write("\"");
    }
}

/// How a double-quoted scalar writes `c`, if not as itself: PyYAML escapes the quote, the backslash, the BOM,
/// line breaks and everything outside the printable ranges of the Basic Multilingual Plane.
fn escape_sequence(c: char) -> Option<String> {
    let printable = matches!(c, '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}');
    if printable && !matches!(c, '"' | '\\' | '\u{feff}' | '\u{2028}' | '\u{2029}') {
        return None;
    }
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
        '\u{2028}' => 'L',
        '\u{2029}' => 'P',
        c if (c as u32) <= 0xff => return Some(format!("\\x{:02X}", c as u32)),
        c if (c as u32) <= 0xffff => return Some(format!("\\u{:04X}", c as u32)),
        c => return Some(format!("\\U{:08X}", c as u32)),
    };
    Some(format!("\\{short}"))
}

// ---------------------------------------------------------------------------------------------------------
// Laying out the tree

struct TreeWriter {
    w: LineWriter,
    options: DumpOptions,
}

impl TreeWriter {
    /// The document: a block collection from column 0, or a flow collection or scalar whose further lines are
    /// indented. A document that is a plain scalar is closed with `...`, as PyYAML does.
    fn document(&mut self, v: &Value) {
        let open_ended = scalar_text(v)
            .is_some_and(|(text, reads_back)| choose_style(&text, reads_back, false) == ScalarStyle::Plain);
        self.node(v, if self.is_block(v) { 0 } else { INDENT }, false);
        self.w.line_break('\n');
        if open_ended {
            self.w.write("...\n");
        }
    }

    /// Non-empty collections are block ones unless `default_flow_style`; a flow collection holds only flow
    /// collections.
    fn is_block(&self, v: &Value) -> bool {
        let non_empty = match v {
            Value::Array(items) => !items.is_empty(),
            Value::Object(map) => !map.is_empty(),
            _ => false,
        };
        non_empty && !self.options.default_flow_style
    }

    /// A node starting on the current line, where a block collection writes its first entry (the line is at
    /// `indent` then). `indent` is where its further lines start.
    fn node(&mut self, v: &Value, indent: usize, in_flow: bool) {
        match v {
            Value::Array(items) if self.is_block(v) => self.block_sequence(items, indent),
            Value::Object(map) if self.is_block(v) => self.block_mapping(map, indent),
            Value::Array(items) => self.flow_sequence(items, indent),
            Value::Object(map) => self.flow_mapping(map, indent),
            _ => {
                if let Some((text, reads_back)) = scalar_text(v) {
                    self.scalar(&text, reads_back, indent, in_flow, true);
                }
            }
        }
    }

    /// Writes `text` in the style [`choose_style`] picks; `fold: false` for simple keys, which must stay on
    /// their line.
    fn scalar(&mut self, text: &str, reads_back: bool, indent: usize, in_flow: bool, fold: bool) {
        match choose_style(text, reads_back, in_flow) {
            ScalarStyle::Plain => self.w.folding_text(text, indent, fold),
            ScalarStyle::SingleQuoted => self.w.single_quoted(text, indent, fold),
            ScalarStyle::DoubleQuoted => self.w.double_quoted(text, indent, fold),
        }
    }

    fn key(&mut self, key: &str, indent: usize, in_flow: bool, simple: bool) {
        self.scalar(key, !resolves_to_non_string(key), indent, in_flow, !simple);
    }

    fn entries<'m>(&self, map: &'m Map<String, Value>) -> Vec<(&'m String, &'m Value)> {
        let mut entries: Vec<_> = map.iter().collect();
        if self.options.sort_keys {
            // Byte order of UTF-8 is code point order, which is how Python sorts `str`.
            entries.sort_by(|a, b| a.0.cmp(b.0));
        }
        entries
    }

    /// `- item` lines at `indent`, the first on the current line.
    fn block_sequence(&mut self, items: &[Value], indent: usize) {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.w.new_line(indent);
            }
            self.w.write("- ");
            self.node(item, indent + INDENT, false);
        }
    }

    /// `key: value` lines at `indent`, the first on the current line. A key that cannot be simple takes two
    /// lines, `? key` and `: value`.
    fn block_mapping(&mut self, map: &Map<String, Value>, indent: usize) {
        let child = indent + INDENT;
        for (i, (key, value)) in self.entries(map).into_iter().enumerate() {
            if i > 0 {
                self.w.new_line(indent);
            }
            if !is_simple_key(key) {
                self.w.write("? ");
                self.key(key, child, false, false);
                self.w.new_line(indent);
                self.w.write(": ");
                self.node(value, child, false);
                continue;
            }
            self.key(key, child, false, true);
            self.w.write(":");
            match value {
                // A sequence under a key is written at the key's indentation: `key:\n- item`.
                Value::Array(items) if self.is_block(value) => {
                    self.w.new_line(indent);
                    self.block_sequence(items, indent);
                }
                Value::Object(map) if self.is_block(value) => {
                    self.w.new_line(child);
                    self.block_mapping(map, child);
                }
                _ => {
                    self.w.write(" ");
                    self.node(value, child, false);
                }
            }
        }
    }

    /// Before entry `i` of a flow collection wrapped at `indent`: a comma after the first entry, then a line
    /// break if the line is past the width, else a space (none right after the opening bracket).
    fn flow_separator(&mut self, i: usize, indent: usize) {
        if i > 0 {
            self.w.write(",");
        }
        if self.w.past_width() {
            self.w.new_line(indent);
        } else if i > 0 {
            self.w.write(" ");
        }
    }

    fn flow_sequence(&mut self, items: &[Value], indent: usize) {
        self.w.write("[");
        for (i, item) in items.iter().enumerate() {
            self.flow_separator(i, indent);
            self.node(item, indent + INDENT, true);
        }
        self.w.write("]");
    }

    fn flow_mapping(&mut self, map: &Map<String, Value>, indent: usize) {
        self.w.write("{");
        for (i, (key, value)) in self.entries(map).into_iter().enumerate() {
            self.flow_separator(i, indent);
            if is_simple_key(key) {
                self.key(key, indent + INDENT, true, true);
                self.w.write(": ");
            } else {
                self.w.write("? ");
                self.key(key, indent + INDENT, true, false);
                if self.w.past_width() {
                    self.w.new_line(indent);
                } else {
                    self.w.write(" ");
                }
                self.w.write(": ");
            }
            self.node(value, indent + INDENT, true);
        }
        self.w.write("}");
    }
}

/// The text of a scalar value, and whether it reads back as that value when written plain.
fn scalar_text(v: &Value) -> Option<(Cow<'_, str>, bool)> {
    match v {
        Value::String(s) => Some((Cow::Borrowed(s), !resolves_to_non_string(s))),
        Value::Null => Some((Cow::Borrowed("null"), true)),
        Value::Bool(b) => Some((Cow::Owned(b.to_string()), true)),
        Value::Number(n) => Some((Cow::Owned(number(n)), true)),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// Whether `key` can be written as `key: value`. Otherwise it takes the explicit form `? key` / `: value`: a
/// simple key must fit on one line, and PyYAML also caps its length at 128 counting the `!!str` tag it
/// (silently) carries.
fn is_simple_key(key: &str) -> bool {
    !key.is_empty() && key.chars().count() + "!!str".len() < 128 && !key.chars().any(is_break)
}

// ---------------------------------------------------------------------------------------------------------
// Non-string scalars and how plain text reads back

/// Numbers as Python prints them: integers as they are, floats as `repr()` with `.0` added to a bare
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
    let repr = patroni_pycompat::float_repr(f);
    if !repr.contains('.') && repr.contains('e') {
        repr.replacen('e', ".0e", 1)
    } else {
        repr
    }
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
mod tests;
