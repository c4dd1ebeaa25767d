//! JSON text laid out the way Python's `json.dumps` writes it (`", "` and `": "` separators,
//! non-ASCII escaped), so `curl` output and anything diffing it sees what Patroni printed.

use serde::Serialize;
use serde_json::ser::{Formatter, Serializer};
use std::io;

struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        // Python's default `ensure_ascii=True`: everything outside ASCII becomes \uXXXX (UTF-16 units).
        for c in fragment.chars() {
            if c.is_ascii() {
                let mut buf = [0u8; 1];
                writer.write_all(c.encode_utf8(&mut buf).as_bytes())?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// Serialises `value` as Python's `json.dumps(value)` would.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::with_capacity(512);
    let mut ser = Serializer::with_formatter(&mut out, PythonFormatter);
    // Serialising a `serde_json::Value` or our plain structs into memory cannot fail; fall back
    // to `null` rather than panic should a future type ever add a failing `Serialize`.
    if value.serialize(&mut ser).is_err() {
        return "null".to_owned();
    }
    String::from_utf8(out).unwrap_or_else(|_| "null".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_python_json_dumps_layout() {
        let v = json!({"a": 1, "b": [1, "x", null], "c": {"d": true}, "e": "é☃"});
        assert_eq!(to_string(&v), r#"{"a": 1, "b": [1, "x", null], "c": {"d": true}, "e": "\u00e9\u2603"}"#);
        assert_eq!(to_string(&json!("😀")), r#""\ud83d\ude00""#);
        assert_eq!(to_string(&json!([])), "[]");
        assert_eq!(to_string(&json!({})), "{}");
    }
}
