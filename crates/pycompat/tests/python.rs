//! Every function against CPython. The expected values in `golden/mod.rs` were generated once by running
//! `python3 tests/gen_golden.py > tests/golden/mod.rs` (CPython 3.11); the tests themselves need no Python.

mod golden;

use chrono::{FixedOffset, NaiveDateTime, TimeZone};
use patroni_pycompat::*;
use serde_json::Value;

#[test]
fn float_repr_matches_python() {
    let mut wrong = Vec::new();
    for (bits, want) in golden::FLOATS {
        let got = float_repr(f64::from_bits(*bits));
        if got != *want {
            wrong.push(format!("{want}: {got}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(golden::FLOATS.len(), 200);
    assert_eq!(float_repr(f64::NAN), "nan");
}

#[test]
fn strings_dump_and_repr_as_python() {
    for (s, dumped, repr) in golden::STRINGS {
        assert_eq!(json_dumps(s), *dumped, "json.dumps({s:?})");
        assert_eq!(json_dumps(&Value::from(*s)), *dumped, "json.dumps({s:?}) of a Value");
        assert_eq!(str_repr(s), *repr, "repr({s:?})");
        assert_eq!(py_repr(&Value::from(*s)), *repr, "repr({s:?}) of a Value");
        assert_eq!(py_str(&Value::from(*s)), *s);
    }
}

#[test]
fn documents_dump_as_python() {
    for (text, default, compact) in golden::DOCS {
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(json_dumps(&v), *default, "{text}");
        assert_eq!(json_dumps_compact(&v), *compact, "{text}");
        assert_eq!(json_dumps_with(&v, Separators::COMPACT), *compact, "{text}");
    }
}

#[test]
fn datetimes_format_as_python() {
    for (y, mo, d, h, mi, s, us, off, iso, str_) in golden::MOMENTS {
        let tz = FixedOffset::east_opt(*off).unwrap();
        let t = tz.with_ymd_and_hms(*y, *mo, *d, *h, *mi, *s).unwrap() + chrono::Duration::microseconds(*us as i64);
        assert_eq!(isoformat(&t), *iso);
        assert_eq!(str_datetime(&t), *str_);
        assert_eq!(isoformat_sep(&t, 'T'), *iso);
    }
}

#[test]
fn fromisoformat_forms_parse_as_python() {
    for (text, want) in golden::FROMISO {
        let got = parse_datetime(text);
        match want {
            None => assert_eq!(got, None, "{text}"),
            Some((naive, off)) => {
                let naive = NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M:%S%.f").unwrap();
                let off = off.map(|o| FixedOffset::east_opt(o).unwrap());
                assert_eq!(got, Some((naive, off)), "{text}");
            }
        }
    }
}

#[test]
fn forms_beyond_fromisoformat() {
    // Written by people and by older patronictl: a space before the offset, compact times, lower-case `t`/`z`.
    for (text, naive, off) in [
        ("2030-04-14 20:27:00 +02:00", "2030-04-14T20:27:00", Some(7200)),
        ("2030-04-14t20:27:00z", "2030-04-14T20:27:00", Some(0)),
        ("2030-04-14T2027+0100", "2030-04-14T20:27:00", Some(3600)),
        ("  2030-04-14T20:27:00.5  ", "2030-04-14T20:27:00.5", None),
    ] {
        let naive = NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M:%S%.f").unwrap();
        assert_eq!(parse_datetime(text), Some((naive, off.map(|o| FixedOffset::east_opt(o).unwrap()))), "{text}");
    }
    assert_eq!(parse_datetime("2030-04-14T20:27:00+24:00"), None);
}

#[test]
fn truthiness_as_python_and_patroni() {
    for (text, bool_, parsed, str_) in golden::TRUTH {
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(py_bool(&v), *bool_, "bool({text})");
        assert_eq!(parse_bool_value(&v), *parsed, "parse_bool({text})");
        assert_eq!(py_str(&v), *str_, "str({text})");
    }
    assert_eq!(parse_bool("On"), Some(true));
    assert_eq!(parse_bool("y"), None);
}
