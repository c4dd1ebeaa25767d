//! Python's `%`-style formatting, as `logging.Formatter` applies `log.format` to a record, and `log.dateformat`.
//!
//! By hand because no crate formats the way Python's `%` operator does (`%(levelname)-8s`, `%(created).3f`,
//! `repr()` of floats): this is the part of Patroni's output a DBA's log parsers see.

use std::borrow::Cow;
use std::fmt::Write as _;

use chrono::format::{Item, StrftimeItems};
use serde_json::Value;

use super::record::{Record, RecordView};

#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Spec {
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    alt: bool,
    width: Option<usize>,
    prec: Option<usize>,
    conv: char,
}

#[derive(Debug)]
pub(super) enum Piece {
    Lit(String),
    Field {
        name: String,
        spec: Spec,
        /// The placeholder as written, printed when `name` names nothing.
        raw: String,
    },
}

pub(super) fn parse_percent(fmt: &str) -> Vec<Piece> {
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            lit.push(c);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('%') => {
                lit.push('%');
                i += 2;
            }
            Some('(') => match parse_field(&chars, i) {
                Some((piece, next)) => {
                    if !lit.is_empty() {
                        out.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    out.push(piece);
                    i = next;
                }
                None => {
                    lit.push('%');
                    i += 1;
                }
            },
            _ => {
                lit.push('%');
                i += 1;
            }
        }
    }
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    out
}

/// Parses `%(name)[flags][width][.precision][length]conversion` starting at `chars[start] == '%'`.
fn parse_field(chars: &[char], start: usize) -> Option<(Piece, usize)> {
    let mut i = start + 2;
    let name_start = i;
    let mut depth = 1;
    while i < chars.len() {
        match chars[i] {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
        i += 1;
    }
    if i >= chars.len() {
        return None;
    }
    let name: String = chars[name_start..i].iter().collect();
    i += 1;
    let mut spec = Spec::default();
    while let Some(&c) = chars.get(i) {
        match c {
            '-' => spec.left = true,
            '0' => spec.zero = true,
            '+' => spec.plus = true,
            ' ' => spec.space = true,
            '#' => spec.alt = true,
            _ => break,
        }
        i += 1;
    }
    let digits = |i: &mut usize| -> Option<usize> {
        let s = *i;
        while chars.get(*i).is_some_and(char::is_ascii_digit) {
            *i += 1;
        }
        (s != *i).then(|| chars[s..*i].iter().collect::<String>().parse().ok())?
    };
    spec.width = digits(&mut i);
    if chars.get(i) == Some(&'.') {
        i += 1;
        spec.prec = Some(digits(&mut i).unwrap_or(0));
    }
    if matches!(chars.get(i), Some('h' | 'l' | 'L')) {
        i += 1;
    }
    let conv = *chars.get(i)?;
    if !"diouxXeEfFgGcrsa".contains(conv) {
        return None;
    }
    spec.conv = conv;
    let raw: String = chars[start..=i].iter().collect();
    Some((Piece::Field { name, spec, raw }, i + 1))
}

/// A record attribute's value, typed as Python's would be.
#[derive(Clone, Debug)]
pub(super) enum Val<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    None,
}

impl Val<'_> {
    /// Python's `str()`.
    pub(super) fn py_str(&self) -> Cow<'_, str> {
        match self {
            Val::Str(s) => Cow::Borrowed(s),
            Val::Int(n) => n.to_string().into(),
            Val::Float(f) => patroni_pycompat::float_repr(*f).into(),
            Val::Bool(true) => "True".into(),
            Val::Bool(false) => "False".into(),
            Val::None => "None".into(),
        }
    }

    /// Python's `repr()`.
    pub(super) fn py_repr(&self) -> Cow<'_, str> {
        match self {
            Val::Str(s) => patroni_pycompat::str_repr(s).into(),
            other => other.py_str(),
        }
    }

    /// How an event field is appended to a plain message: as tracing's own formatter shows it.
    pub(super) fn write_plain(&self, out: &mut String) {
        match self {
            Val::Str(s) => out.push_str(s),
            Val::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Val::Float(f) => {
                let _ = write!(out, "{f}");
            }
            Val::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Val::None => out.push_str("None"),
        }
    }

    pub(super) fn to_json(&self) -> Value {
        match self {
            Val::Str(s) => Value::String(s.to_string()),
            Val::Int(n) => Value::from(*n),
            Val::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Val::Bool(b) => Value::Bool(*b),
            Val::None => Value::Null,
        }
    }

    pub(super) fn as_int(&self) -> Option<i64> {
        match self {
            Val::Int(n) => Some(*n),
            // Python's `%d` truncates floats.
            Val::Float(f) if f.is_finite() => Some(f.trunc() as i64),
            Val::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    pub(super) fn as_float(&self) -> Option<f64> {
        match self {
            Val::Int(n) => Some(*n as f64),
            Val::Float(f) => Some(*f),
            Val::Bool(b) => Some(f64::from(u8::from(*b))),
            _ => None,
        }
    }
}

/// `%e` as Python prints it: at least two exponent digits, with a sign.
fn py_exp(x: f64, prec: usize, upper: bool) -> String {
    let s = format!("{:.*e}", prec, x.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let esign = if exp < 0 { '-' } else { '+' };
    let e = if upper { 'E' } else { 'e' };
    format!("{mant}{e}{esign}{:02}", exp.abs())
}

/// `%g`: `%e` or `%f` by exponent, trailing zeros removed unless `#`.
fn py_general(x: f64, prec: usize, upper: bool, alt: bool) -> String {
    let p = if prec == 0 { 1 } else { prec };
    let exp = if x == 0.0 {
        0
    } else {
        let s = format!("{:.*e}", p - 1, x.abs());
        s.split_once('e').and_then(|(_, e)| e.parse::<i32>().ok()).unwrap_or(0)
    };
    let mut s = if exp < -4 || exp >= p as i32 {
        py_exp(x, p - 1, upper)
    } else {
        format!("{:.*}", (p as i32 - 1 - exp).max(0) as usize, x.abs())
    };
    if !alt {
        let (num, tail) = match s.find(['e', 'E']) {
            Some(i) => (s[..i].to_owned(), s[i..].to_owned()),
            None => (s.clone(), String::new()),
        };
        let num = if num.contains('.') { num.trim_end_matches('0').trim_end_matches('.').to_owned() } else { num };
        s = num + &tail;
    }
    s
}

pub(super) fn render(out: &mut String, v: &Val<'_>, spec: &Spec) {
    let truncate = |s: Cow<'_, str>| -> String {
        match spec.prec {
            Some(p) => s.chars().take(p).collect(),
            None => s.into_owned(),
        }
    };
    // (sign, body, numeric)
    let (sign, body, numeric): (&str, String, bool) = match spec.conv {
        's' => ("", truncate(v.py_str()), false),
        'r' | 'a' => ("", truncate(v.py_repr()), false),
        'c' => match v.as_int() {
            Some(n) => {
                ("", u32::try_from(n).ok().and_then(char::from_u32).map(String::from).unwrap_or_default(), false)
            }
            None => ("", v.py_str().into_owned(), false),
        },
        'd' | 'i' | 'u' | 'x' | 'X' | 'o' => match v.as_int() {
            Some(n) => {
                let mag = n.unsigned_abs();
                let mut digits = match spec.conv {
                    'x' => format!("{mag:x}"),
                    'X' => format!("{mag:X}"),
                    'o' => format!("{mag:o}"),
                    _ => mag.to_string(),
                };
                if let Some(p) = spec.prec {
                    if digits.len() < p {
                        digits = "0".repeat(p - digits.len()) + &digits;
                    }
                }
                if spec.alt {
                    match spec.conv {
                        'x' => digits.insert_str(0, "0x"),
                        'X' => digits.insert_str(0, "0X"),
                        'o' => digits.insert_str(0, "0o"),
                        _ => {}
                    }
                }
                (num_sign(n < 0, spec), digits, true)
            }
            None => ("", v.py_str().into_owned(), false),
        },
        _ => match v.as_float() {
            Some(x) => {
                let prec = spec.prec.unwrap_or(6);
                let body = if !x.is_finite() {
                    let s = if x.is_nan() { "nan" } else { "inf" };
                    if spec.conv.is_ascii_uppercase() {
                        s.to_ascii_uppercase()
                    } else {
                        s.to_owned()
                    }
                } else {
                    match spec.conv {
                        'e' | 'E' => py_exp(x, prec, spec.conv == 'E'),
                        'g' | 'G' => py_general(x, prec, spec.conv == 'G', spec.alt),
                        _ => format!("{:.*}", prec, x.abs()),
                    }
                };
                (num_sign(x.is_sign_negative() && x != 0.0, spec), body, true)
            }
            None => ("", v.py_str().into_owned(), false),
        },
    };
    let len = sign.chars().count() + body.chars().count();
    let pad = spec.width.unwrap_or(0).saturating_sub(len);
    if spec.left {
        out.push_str(sign);
        out.push_str(&body);
        out.extend(std::iter::repeat_n(' ', pad));
    } else if spec.zero && numeric {
        out.push_str(sign);
        out.extend(std::iter::repeat_n('0', pad));
        out.push_str(&body);
    } else {
        out.extend(std::iter::repeat_n(' ', pad));
        out.push_str(sign);
        out.push_str(&body);
    }
}

fn num_sign(negative: bool, spec: &Spec) -> &'static str {
    if negative {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    }
}

// ---------------------------------------------------------------------------------------------------------------
// dateformat

/// strftime directives glibc and chrono agree on; any other is printed literally.
const DATE_DIRECTIVES: &str = "aAbBcCdDeFgGhHIjklmMnpPrRsStTuUVwWxXyYzZ%";

pub(super) fn compile_datefmt(fmt: &str) -> Option<Vec<Item<'static>>> {
    let mut s = String::with_capacity(fmt.len() + 4);
    let mut it = fmt.chars().peekable();
    while let Some(c) = it.next() {
        if c != '%' {
            s.push(c);
            continue;
        }
        let flag = it.next_if(|f| matches!(f, '-' | '_' | '0'));
        match it.next() {
            Some(d) if DATE_DIRECTIVES.contains(d) && !(d == '%' && flag.is_some()) => {
                s.push('%');
                s.extend(flag);
                s.push(d);
            }
            other => {
                s.push_str("%%");
                s.extend(flag);
                match other {
                    Some('%') => s.push_str("%%"),
                    Some(d) => s.push(d),
                    None => {}
                }
            }
        }
    }
    StrftimeItems::new(&s).parse_to_owned().ok()
}

// ---------------------------------------------------------------------------------------------------------------
// Plain lines

/// The finished plain line, newline included. `detail` is the `, DETAIL: '...'` suffix of a hidden traceback,
/// `traceback` the one shown on the following lines.
pub(super) fn plain_line(
    pieces: &[Piece],
    rec: &Record<'_>,
    asctime: Option<&str>,
    detail: &str,
    traceback: Option<&str>,
) -> String {
    let mut message = String::with_capacity(rec.message.len() + detail.len());
    message.push_str(rec.message);
    for (k, v) in rec.extras {
        message.push(' ');
        message.push_str(k);
        message.push('=');
        v.write_plain(&mut message);
    }
    message.push_str(detail);
    let view = RecordView { rec, asctime, message: &message, traceback };
    let mut out = String::with_capacity(64 + message.len());
    for p in pieces {
        match p {
            Piece::Lit(s) => out.push_str(s),
            Piece::Field { name, spec, raw } => match view.attr(name) {
                Some(v) => render(&mut out, &v, spec),
                None => out.push_str(raw),
            },
        }
    }
    if let Some(tb) = traceback {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(tb);
    }
    out.push('\n');
    out
}
