//! Conversion of the generic value tree into typed sections, collecting every problem with its key path.
//!
//! Patroni validates the whole file and reports everything at once; stopping at the first wrong type would
//! make a DBA fix one line per run. So conversion never fails early: wrong values are reported and skipped,
//! unknown keys are reported as warnings and kept.

use crate::units::{Duration, Size};
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{Map, Value};
use std::fmt;

/// One problem found in a configuration, tied to the key path it concerns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Dotted key path, e.g. `postgresql.authentication.replication.username`; empty for the whole document.
    pub path: String,
    /// What is wrong, e.g. `expected a string`.
    pub message: String,
    /// Where the value was written, when known: `patroni.yml:14:17` or `environment variable PATRONI_NAME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

impl Diagnostic {
    /// The diagnostic followed by where the value was written, when known.
    pub fn located(&self) -> String {
        match &self.origin {
            Some(o) => format!("{self} ({o})"),
            None => self.to_string(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Conversion context: the current key path plus the errors and warnings gathered so far.
#[derive(Debug, Default)]
pub struct Cx {
    path: Vec<String>,
    /// Problems that make the configuration invalid.
    pub errors: Vec<Diagnostic>,
    /// Problems that are reported but tolerated (unknown keys, deprecated spellings).
    pub warnings: Vec<Diagnostic>,
    /// Set while reading sections whose unknown keys are legitimate (user tags, custom methods).
    quiet_unknown: bool,
    /// `--validate-config` strictness: problems Patroni tolerates at run time (adjusting or ignoring the
    /// value) but its validator rejects are errors instead of warnings.
    pub strict: bool,
}

impl Cx {
    /// A fresh context rooted at `prefix` (empty for the top of a document).
    pub fn new(prefix: &str) -> Self {
        let path = if prefix.is_empty() { Vec::new() } else { vec![prefix.to_owned()] };
        Self { path, ..Self::default() }
    }

    /// The current key path, dotted.
    pub fn path(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            if !out.is_empty() && !seg.starts_with('[') {
                out.push('.');
            }
            out.push_str(seg);
        }
        out
    }

    /// Records an error at the current path.
    pub fn error(&mut self, message: impl Into<String>) {
        let path = self.path();
        self.errors.push(Diagnostic { path, message: message.into(), origin: None });
    }

    /// Records an error at `key` below the current path.
    pub fn error_at(&mut self, key: &str, message: impl Into<String>) {
        self.path.push(key.to_owned());
        self.error(message);
        self.path.pop();
    }

    /// Records that `key` (below the current path) is missing or incomplete, unless an error was already
    /// reported at or below it: a value of the wrong type is dropped, and saying "is required" about it
    /// too would only add noise.
    pub fn require_at(&mut self, key: &str, message: impl Into<String>) {
        self.path.push(key.to_owned());
        let full = self.path();
        self.path.pop();
        let already = self.errors.iter().any(|e| {
            e.path == full
                || e.path.strip_prefix(full.as_str()).is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        });
        if !already {
            self.error_at(key, message);
        }
    }

    /// Records a warning at the current path.
    pub fn warn(&mut self, message: impl Into<String>) {
        let path = self.path();
        self.warnings.push(Diagnostic { path, message: message.into(), origin: None });
    }

    /// A problem Patroni's validator rejects but Patroni itself survives (it adjusts or ignores the value):
    /// an error when validating strictly, a warning when loading to run.
    pub fn tolerated_at(&mut self, key: &str, message: impl Into<String>) {
        if self.strict {
            self.error_at(key, message);
        } else {
            self.warn_at(key, message);
        }
    }

    /// Records a warning at `key` below the current path.
    pub fn warn_at(&mut self, key: &str, message: impl Into<String>) {
        self.path.push(key.to_owned());
        self.warn(message);
        self.path.pop();
    }

    /// Reads `v` as a `T` with `key` appended to the path.
    pub fn field<T: FromTree>(&mut self, key: &str, v: &Value) -> Option<T> {
        self.path.push(key.to_owned());
        let r = T::from_tree(v, self);
        self.path.pop();
        r
    }

    /// Reports a key the schema does not know.
    pub fn unknown(&mut self, key: &str) {
        if !self.quiet_unknown {
            self.warn_at(key, "unknown key (kept, not used)");
        }
    }

    /// Runs `f` with unknown-key warnings silenced.
    pub fn quietly<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let old = std::mem::replace(&mut self.quiet_unknown, true);
        let r = f(self);
        self.quiet_unknown = old;
        r
    }

    /// The value as a mapping; `null` counts as an empty mapping because `section:` with nothing
    /// under it is common and harmless in YAML.
    pub fn map<'v>(&mut self, v: &'v Value) -> Option<MapRef<'v>> {
        match v {
            Value::Object(m) => Some(MapRef(Some(m))),
            Value::Null => Some(MapRef(None)),
            _ => {
                self.error("expected a mapping");
                None
            }
        }
    }
}

/// A borrowed mapping that may be absent (`null`).
pub struct MapRef<'v>(Option<&'v Map<String, Value>>);

impl<'v> MapRef<'v> {
    /// Entries in document order.
    pub fn iter(&self) -> impl Iterator<Item = (&'v String, &'v Value)> {
        self.0.into_iter().flat_map(|m| m.iter())
    }
}

/// Types that can be read from the generic value tree, reporting problems into a [`Cx`].
pub trait FromTree: Sized {
    /// `None` means the value was wrong and an error was recorded.
    fn from_tree(v: &Value, cx: &mut Cx) -> Option<Self>;
}

/// Tells serde which fields to leave out of the effective configuration (absent optional values).
pub trait SkipSerializing {
    /// True when the value carries nothing worth showing.
    fn skip(&self) -> bool;
}

impl<T> SkipSerializing for Option<T> {
    fn skip(&self) -> bool {
        self.is_none()
    }
}
impl<T> SkipSerializing for Vec<T> {
    fn skip(&self) -> bool {
        false
    }
}
impl SkipSerializing for String {
    fn skip(&self) -> bool {
        false
    }
}

/// Used by `skip_serializing_if` in the generated sections.
pub fn skip<T: SkipSerializing>(t: &T) -> bool {
    t.skip()
}

impl FromTree for Value {
    fn from_tree(v: &Value, _: &mut Cx) -> Option<Self> {
        Some(v.clone())
    }
}

impl FromTree for String {
    fn from_tree(v: &Value, cx: &mut Cx) -> Option<Self> {
        match v {
            Value::String(s) => Some(s.clone()),
            _ => {
                cx.error("expected a string");
                None
            }
        }
    }
}

/// Booleans the way Patroni's `parse_bool` reads them from strings (environment values arrive as text).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "on" | "true" | "y" | "t" => Some(true),
        "0" | "no" | "off" | "false" | "n" | "f" => Some(false),
        _ => None,
    }
}

impl FromTree for bool {
    fn from_tree(v: &Value, cx: &mut Cx) -> Option<Self> {
        let r = match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) => parse_bool(s),
            _ => None,
        };
        if r.is_none() {
            cx.error("expected a boolean");
        }
        r
    }
}

fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => {
            n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64))
        }
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

macro_rules! int_impl {
    ($($t:ty),*) => {$(
        impl FromTree for $t {
            fn from_tree(v: &Value, cx: &mut Cx) -> Option<Self> {
                match int_of(v) {
                    Some(i) => match <$t>::try_from(i) {
                        Ok(x) => Some(x),
                        Err(_) => {
                            cx.error(format!("{i} is out of range ({}..={})", <$t>::MIN, <$t>::MAX));
                            None
                        }
                    },
                    None => {
                        cx.error("expected an integer");
                        None
                    }
                }
            }
        }
    )*};
}
int_impl!(i64, i32, u64, u32, u16);

impl FromTree for f64 {
    fn from_tree(v: &Value, cx: &mut Cx) -> Option<Self> {
        let r = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        if r.is_none() {
            cx.error("expected a number");
        }
        r
    }
}

impl FromTree for Duration {
    fn from_tree(v: &Value, cx: &mut Cx) -> Option<Self> {
        match Duration::from_value(v) {
            Ok(d) => Some(d),
            Err(e) => {
                cx.error(format!("expected a duration such as 10, \"10s\", \"5min\" or \"1h\" ({e})"));
                None
            }
        }
    }
}

impl FromTree for Size {
    fn from_tree(v: &Value, cx: &mut Cx) -> Option<Self> {
        match Size::from_value(v) {
            Ok(d) => Some(d),
            Err(e) => {
                cx.error(format!("expected a size such as 1048576, \"1024kB\" or \"16MB\" ({e})"));
                None
            }
        }
    }
}

impl<T: FromTree> FromTree for Option<T> {
    fn from_tree(v: &Value, cx: &mut Cx) -> Option<Self> {
        if v.is_null() {
            return Some(None);
        }
        T::from_tree(v, cx).map(Some)
    }
}

impl<T: FromTree> FromTree for Vec<T> {
    fn from_tree(v: &Value, cx: &mut Cx) -> Option<Self> {
        match v {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match cx.field::<T>(&format!("[{i}]"), item) {
                        Some(x) => out.push(x),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            Value::Null => Some(Vec::new()),
            _ => {
                cx.error("expected a list");
                None
            }
        }
    }
}

impl FromTree for Map<String, Value> {
    fn from_tree(v: &Value, cx: &mut Cx) -> Option<Self> {
        match v {
            Value::Object(m) => Some(m.clone()),
            Value::Null => Some(Map::new()),
            _ => {
                cx.error("expected a mapping");
                None
            }
        }
    }
}

impl<T: FromTree> FromTree for IndexMap<String, T> {
    fn from_tree(v: &Value, cx: &mut Cx) -> Option<Self> {
        let m = cx.map(v)?;
        let mut out = IndexMap::new();
        let mut ok = true;
        for (k, item) in m.iter() {
            match cx.field::<T>(k, item) {
                Some(x) => {
                    out.insert(k.clone(), x);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}

/// A list of strings that may also be written as one comma-separated string (`"h1:2379,h2:2379"`), as
/// Patroni accepts for host lists.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct StringList(pub Vec<String>);

impl std::ops::Deref for StringList {
    type Target = Vec<String>;
    fn deref(&self) -> &Vec<String> {
        &self.0
    }
}

impl FromTree for StringList {
    fn from_tree(v: &Value, cx: &mut Cx) -> Option<Self> {
        match v {
            Value::String(s) => Some(StringList(
                s.split(',')
                    .map(|p| p.trim().trim_matches(|c| c == '\'' || c == '"').to_owned())
                    .filter(|p| !p.is_empty())
                    .collect(),
            )),
            Value::Array(_) | Value::Null => Vec::<String>::from_tree(v, cx).map(StringList),
            _ => {
                cx.error("expected a list of strings or a comma-separated string");
                None
            }
        }
    }
}

/// Defines a configuration section: a public struct with the listed fields plus `extra` (unknown keys,
/// kept verbatim), and its [`FromTree`] conversion. A field may name its YAML key explicitly
/// (`r#type = "type"`) when the key is not a Rust identifier.
macro_rules! section {
    (
        $(#[$m:meta])*
        pub struct $name:ident {
            $( $(#[$fm:meta])* $field:ident : $ty:ty $(= $key:literal)? ),* $(,)?
        }
    ) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize)]
        pub struct $name {
            $(
                $(#[$fm])*
                #[serde(skip_serializing_if = "crate::convert::skip")]
                $(#[serde(rename = $key)])?
                pub $field: $ty,
            )*
            /// Keys this schema does not know, kept verbatim (and reported as warnings where that matters).
            #[serde(flatten)]
            pub extra: serde_json::Map<String, serde_json::Value>,
        }

        impl $name {
            /// The YAML keys this section knows.
            pub const KEYS: &'static [&'static str] = &[$( section!(@key $field $($key)?) ),*];
        }

        impl crate::convert::SkipSerializing for $name {
            fn skip(&self) -> bool {
                false
            }
        }

        impl crate::convert::FromTree for $name {
            fn from_tree(v: &serde_json::Value, cx: &mut crate::convert::Cx) -> Option<Self> {
                let map = cx.map(v)?;
                let mut out = Self::default();
                for (k, val) in map.iter() {
                    $(
                        if k == section!(@key $field $($key)?) {
                            if let Some(x) = cx.field(k, val) {
                                out.$field = x;
                            }
                            continue;
                        }
                    )*
                    cx.unknown(k);
                    out.extra.insert(k.clone(), val.clone());
                }
                Some(out)
            }
        }
    };
    (@key $field:ident $key:literal) => { $key };
    (@key $field:ident) => { stringify!($field) };
}
pub(crate) use section;

/// Defines a string-valued enumeration read case-insensitively, with extra accepted spellings.
macro_rules! string_enum {
    (
        $(#[$m:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vm:meta])* $variant:ident = $text:literal $(| $alias:literal)* ),* $(,)?
        }
    ) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vm])* $variant, )*
        }

        impl $name {
            /// The canonical spelling.
            pub fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $text, )* }
            }
            /// Parses any accepted spelling, ignoring case.
            pub fn parse(s: &str) -> Option<Self> {
                let l = s.trim().to_ascii_lowercase();
                $(
                    if l == $text.to_ascii_lowercase() $(|| l == $alias)* {
                        return Some(Self::$variant);
                    }
                )*
                None
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl crate::convert::FromTree for $name {
            fn from_tree(v: &serde_json::Value, cx: &mut crate::convert::Cx) -> Option<Self> {
                let r = v.as_str().and_then(Self::parse);
                if r.is_none() {
                    cx.error(format!(
                        "expected {}: {}",
                        $what,
                        [$($text),*].join(", ")
                    ));
                }
                r
            }
        }
    };
}
pub(crate) use string_enum;

/// Reads a whole document as a `T`, returning it with the warnings, or every error found.
pub fn convert<T: FromTree>(v: &Value, prefix: &str) -> (Option<T>, Cx) {
    let mut cx = Cx::new(prefix);
    let r = T::from_tree(v, &mut cx);
    (r, cx)
}
