//! Python's habits that users and tools can see in Patroni's output, or that decide how Patroni reads its
//! inputs, written once: `json.dumps`, `repr(float)`, `repr(str)`, `str()` of a JSON value,
//! `datetime.isoformat()`, `datetime.fromisoformat()`, `bool()` and Patroni's `parse_bool`.
//!
//! Each function is checked against CPython by the golden tables in `tests/golden/mod.rs`.

mod datetime;
mod json;
mod text;
mod truth;

pub use datetime::{isoformat, isoformat_sep, parse_datetime, str_datetime};
pub use json::{json_dumps, json_dumps_compact, json_dumps_with, Separators};
pub use text::{float_repr, py_repr, py_str, str_repr};
pub use truth::{parse_bool, parse_bool_value, py_bool};
