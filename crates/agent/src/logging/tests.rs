//! Unit tests of the parts the integration tests (`tests/logging.rs`) cannot reach one by one.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::Local;
use patroni_config::LogConfig;
use serde_json::Value;

use super::format::{compile_datefmt, parse_percent, render, Piece, Val};
use super::json::percent_names;
use super::levels::{python_logger_targets, Rule, INFO_NO};
use super::record::Record;
use super::settings::LogSettings;
use super::DEFAULT_FORMAT;

fn fmt(f: &str, v: Val<'_>) -> String {
    let pieces = parse_percent(f);
    let mut out = String::new();
    for p in &pieces {
        match p {
            Piece::Lit(s) => out.push_str(s),
            Piece::Field { spec, .. } => render(&mut out, &v, spec),
        }
    }
    out
}

#[test]
fn percent_formatting_matches_python() {
    assert_eq!(fmt("%(x)-8s|", Val::Str("INFO".into())), "INFO    |");
    assert_eq!(fmt("%(x)8s|", Val::Str("INFO".into())), "    INFO|");
    assert_eq!(fmt("%(x).2s", Val::Str("INFO".into())), "IN");
    assert_eq!(fmt("%(x)05d", Val::Int(42)), "00042");
    assert_eq!(fmt("%(x)+d", Val::Int(42)), "+42");
    assert_eq!(fmt("%(x)d", Val::Float(123.9)), "123");
    assert_eq!(fmt("%(x)03d", Val::Float(7.0)), "007");
    assert_eq!(fmt("%(x)f", Val::Float(1.5)), "1.500000");
    assert_eq!(fmt("%(x).3f", Val::Float(1704110400.123456)), "1704110400.123");
    assert_eq!(fmt("%(x)e", Val::Float(1704110400.0)), "1.704110e+09");
    assert_eq!(fmt("%(x)g", Val::Float(0.0001)), "0.0001");
    assert_eq!(fmt("%(x)g", Val::Float(1704110400.0)), "1.70411e+09");
    assert_eq!(fmt("%(x)#x", Val::Int(255)), "0xff");
    assert_eq!(fmt("%(x)s", Val::Float(123.0)), "123.0");
    assert_eq!(fmt("%(x)r", Val::Str("a".into())), "'a'");
    assert_eq!(fmt("100%% %(x)s", Val::None), "100% None");
}

#[test]
fn json_field_names_like_python_json_logger() {
    assert_eq!(percent_names(DEFAULT_FORMAT), ["asctime", "levelname", "message"]);
    assert_eq!(percent_names("%()s) %(é)s %(x"), [")s", "é"]);
}

/// Expected lines produced by Python 3.11's `logging.Formatter` for the same record.
#[test]
fn plain_lines_match_python_logging() {
    let time =
        chrono::TimeZone::with_ymd_and_hms(&Local, 2024, 1, 1, 12, 0, 0).unwrap() + chrono::Duration::milliseconds(123);
    let extras = [("member".to_owned(), Val::Str("pg1".into()))];
    let rec = Record {
        time,
        elapsed: Duration::ZERO,
        levelno: INFO_NO,
        threshold: INFO_NO,
        target: "patroni.ha",
        file: Some("/x/ha.py"),
        line: Some(42),
        func: Some("run_cycle"),
        message: "hello world",
        extras: &extras[..0],
        traceback: None,
    };
    let line_of = |rec: &Record<'_>, format: &str, datefmt: Option<&str>| {
        let config = LogConfig {
            format: Some(Value::String(format.into())),
            dateformat: datefmt.map(str::to_owned),
            ..LogConfig::default()
        };
        LogSettings::compile(Some(&config)).0.format(rec)
    };
    let line = |format: &str, datefmt: Option<&str>| line_of(&rec, format, datefmt);
    assert_eq!(line(DEFAULT_FORMAT, None), "2024-01-01 12:00:00,123 INFO: hello world\n");
    assert_eq!(
        line(
            "%(asctime)s %(levelname)-8s|%(name)10s|%(lineno)05d|%(msecs)d|%(msecs)03d|%(levelno)s|%(module)s|\
             %(filename)s|%(funcName)s %% %(message)s",
            Some("%d/%m/%Y %H:%M")
        ),
        "01/01/2024 12:00 INFO    |patroni.ha|00042|123|123|20|ha|ha.py|run_cycle % hello world\n"
    );
    let rec = Record { extras: &extras, ..rec };
    assert_eq!(line_of(&rec, "%(member)s: %(message)s", None), "pg1: hello world member=pg1\n");
}

#[test]
fn datefmt_unknown_directives_are_literal() {
    let items = compile_datefmt("%Y %f %Q %").unwrap();
    let t = chrono::TimeZone::with_ymd_and_hms(&Local, 2024, 1, 1, 12, 0, 0).unwrap();
    assert_eq!(t.format_with_items(items.iter()).to_string(), "2024 %f %Q %");
    let items = compile_datefmt("%a %b %e %-d %Z %z %p %j %%").unwrap();
    let mut s = String::new();
    assert!(write!(s, "{}", t.format_with_items(items.iter())).is_ok());
    assert!(s.starts_with("Mon Jan  1 1 "), "{s}");
}

#[test]
fn logger_names() {
    assert_eq!(python_logger_targets("patroni.dcs.etcd3"), ["patroni_dcs::etcd3"]);
    assert_eq!(python_logger_targets("patroni.postmaster"), ["patroni_postgres::postmaster"]);
    assert_eq!(python_logger_targets("patroni"), ["patroni", "patroni_*"]);
    assert_eq!(python_logger_targets("tokio_postgres::connection"), ["tokio_postgres::connection"]);
    let r = Rule::new("patroni_*".into(), 10);
    assert!(r.matches("patroni_dcs::etcd3") && !r.matches("hyper"));
    let r = Rule::new("patroni_dcs".into(), 10);
    assert!(r.matches("patroni_dcs::etcd3") && r.matches("patroni_dcs") && !r.matches("patroni_dcsx"));
}
