//! `json.dumps`: Python's separators, `ensure_ascii` escaping and float repr, so REST bodies, DCS values, the
//! dynamic configuration cache and JSON logs are byte for byte what Patroni writes.

use std::io;

use serde::Serialize;
use serde_json::ser::{Formatter, Serializer};

use crate::text::float_repr;

/// `json.dumps(..., separators=(item, key))`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Separators {
    pub item: &'static str,
    pub key: &'static str,
}

impl Separators {
    /// `json.dumps(v)`: `", "` and `": "` (REST bodies, logs, the dynamic configuration cache).
    pub const DEFAULT: Separators = Separators { item: ", ", key: ": " };
    /// `separators=(',', ':')`: what Patroni writes into the DCS.
    pub const COMPACT: Separators = Separators { item: ",", key: ":" };
}

struct PyFormatter(Separators);

impl Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(self.0.item.as_bytes())
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(self.0.item.as_bytes())
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(self.0.key.as_bytes())
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(float_repr(value).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(w, f64::from(value))
    }

    // serde_json escapes `"`, `\` and C0 controls itself, as Python does; what reaches here is the rest.
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        // Python's default `ensure_ascii=True` escapes everything outside printable ASCII, DEL included, as
        // `\uXXXX` UTF-16 units.
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c.is_ascii() && c != '\u{7f}' {
                continue;
            }
            w.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(w, "\\u{unit:04x}")?;
            }
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

/// `json.dumps(value)`.
pub fn json_dumps<T: Serialize + ?Sized>(value: &T) -> String {
    json_dumps_with(value, Separators::DEFAULT)
}

/// `json.dumps(value, separators=(',', ':'))`.
pub fn json_dumps_compact<T: Serialize + ?Sized>(value: &T) -> String {
    json_dumps_with(value, Separators::COMPACT)
}

/// `json.dumps(value, separators=...)`. Non-finite floats are written as `null`, as serde_json does: a
/// `serde_json::Value` cannot hold them, and Patroni's values never do.
pub fn json_dumps_with<T: Serialize + ?Sized>(value: &T, separators: Separators) -> String {
    let mut out = Vec::with_capacity(256);
    let mut ser = Serializer::with_formatter(&mut out, PyFormatter(separators));
    // Serialising into memory fails only for a type whose `Serialize` fails (a map with non-string keys);
    // none of ours does, and `null` is a better answer than a panic in a REST handler.
    if value.serialize(&mut ser).is_err() {
        return "null".to_owned();
    }
    // The formatter writes ASCII only, and serde_json writes valid UTF-8 around it.
    String::from_utf8(out).unwrap_or_else(|_| "null".to_owned())
}
