//! JSON records (`log.type: json`), as python-json-logger writes them for Patroni, serialized as Python's
//! `json.dumps` does.
//!
//! The serializer is by hand because `serde_json` writes `{"a":1}` and raw UTF-8, while Python writes
//! `{"a": 1}`, `\uXXXX` escapes and `repr()` floats; log shippers parsing Patroni's lines see those bytes.

use serde_json::{Map, Value};

use super::record::{Record, RecordView};
use super::DEFAULT_FORMAT;

/// `log.format` and `log.static_fields` compiled for `type: json`.
#[derive(Debug)]
pub(super) struct JsonFormat {
    /// (attribute, output key) in order.
    pub(super) fields: Vec<(String, String)>,
    renames: Vec<(String, String)>,
    statics: Vec<(String, Value)>,
}

/// The Python type name of a configuration value, for warnings worded as Patroni's.
pub(super) fn py_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// The attribute names of `%(name)s` placeholders, as python-json-logger finds them.
pub(super) fn percent_names(fmt: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = fmt;
    while let Some(i) = rest.find("%(") {
        let after = &rest[i + 2..];
        // `.+?`: at least one character before the closing parenthesis.
        let Some(first) = after.chars().next() else { break };
        let skip = first.len_utf8();
        match after[skip..].find(')') {
            Some(j) => {
                out.push(after[..skip + j].to_owned());
                rest = &after[skip + j + 1..];
            }
            None => break,
        }
    }
    out
}

impl JsonFormat {
    /// `format` is a list of attribute names and `{attribute: renamed}` maps, or a `%`-format string whose
    /// placeholders name the attributes; anything else is reported in `warnings` and the default used.
    pub(super) fn compile(
        format: Option<&Value>,
        static_fields: Option<&Map<String, Value>>,
        warnings: &mut Vec<String>,
    ) -> Self {
        let mut fields: Vec<String> = Vec::new();
        let mut renames: Vec<(String, String)> = Vec::new();
        match format {
            None => fields = percent_names(DEFAULT_FORMAT),
            Some(Value::String(s)) => fields = percent_names(s),
            Some(Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::String(s) => fields.push(s.clone()),
                        Value::Object(m) => {
                            for (orig, renamed) in m {
                                match renamed {
                                    Value::String(r) => {
                                        fields.push(orig.clone());
                                        renames.retain(|(o, _)| o != orig);
                                        renames.push((orig.clone(), r.clone()));
                                    }
                                    other => warnings.push(format!(
                                        "Expected renamed log field to be a string, but got \"{}\"",
                                        py_type(other)
                                    )),
                                }
                            }
                        }
                        other => warnings.push(format!(
                            "Expected each item of log format to be a string or dictionary, but got \"{}\"",
                            py_type(other)
                        )),
                    }
                }
                if fields.is_empty() {
                    fields = percent_names(DEFAULT_FORMAT);
                }
            }
            Some(other) => {
                warnings.push(format!("Expected log format to be a string or a list, but got \"{}\"", py_type(other)));
                fields = percent_names(DEFAULT_FORMAT);
            }
        }
        let rename = |k: &str| -> String {
            renames.iter().find(|(o, _)| o == k).map_or_else(|| k.to_owned(), |(_, r)| r.clone())
        };
        let fields = fields
            .into_iter()
            .map(|f| {
                let key = rename(&f);
                (f, key)
            })
            .collect();
        let statics =
            static_fields.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
        Self { fields, renames, statics }
    }

    /// The finished JSON line, newline included: the configured attributes in order (unknown ones as `null`),
    /// then `static_fields`, then `exc_info`, then the event's own fields; renames apply to all keys.
    pub(super) fn line(
        &self,
        rec: &Record<'_>,
        asctime: Option<&str>,
        detail: &str,
        traceback: Option<&str>,
    ) -> String {
        let Self { fields, renames, statics } = self;
        let mut message = String::with_capacity(rec.message.len() + detail.len());
        message.push_str(rec.message);
        message.push_str(detail);
        let view = RecordView { rec, asctime, message: &message, traceback };
        let rename = |k: &str| -> String {
            renames.iter().find(|(o, _)| o == k).map_or_else(|| k.to_owned(), |(_, r)| r.clone())
        };
        let mut obj: Vec<(String, Value)> = Vec::with_capacity(fields.len() + 4);
        let mut set = |k: String, v: Value| match obj.iter_mut().find(|(x, _)| *x == k) {
            Some(slot) => slot.1 = v,
            None => obj.push((k, v)),
        };
        for (attr, key) in fields {
            let v = view.attr(attr).map_or(Value::Null, |v| v.to_json());
            set(key.clone(), v);
        }
        for (k, v) in statics {
            set(rename(k), v.clone());
        }
        if let Some(tb) = traceback {
            set(rename("exc_info"), Value::String(tb.to_owned()));
        }
        for (k, v) in rec.extras {
            let reserved =
                RESERVED_ATTRS.contains(&k.as_str()) || fields.iter().any(|(f, _)| f == k) || k.starts_with('_');
            if !reserved {
                set(rename(k), v.to_json());
            }
        }
        let obj: serde_json::Map<String, Value> = obj.into_iter().collect();
        let mut out = patroni_pycompat::json_dumps(&obj);
        out.push('\n');
        out
    }
}

/// `LogRecord` attributes python-json-logger does not repeat as extras.
const RESERVED_ATTRS: &[&str] = &[
    "args",
    "asctime",
    "created",
    "exc_info",
    "exc_text",
    "filename",
    "funcName",
    "levelname",
    "levelno",
    "lineno",
    "module",
    "msecs",
    "message",
    "msg",
    "name",
    "pathname",
    "process",
    "processName",
    "relativeCreated",
    "stack_info",
    "thread",
    "threadName",
    "taskName",
];
