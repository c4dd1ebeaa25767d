//! Per-logger levels: Python's level numbers, and `log.loggers` names mapped onto tracing targets.
//!
//! The rules are matched by hand rather than with `tracing_subscriber::filter::Targets`: `Targets` matches a
//! target by string prefix (`foo` also covers `foobar`) and picks the longest string, while Python's logger
//! hierarchy goes by whole dotted segments (`foo` covers `foo.bar`, never `foobar`); and tracing has no CRITICAL
//! level, which a logger's threshold (and `traceback_level`) must be able to name.

use std::borrow::Cow;

use patroni_config::LogLevel;
use tracing::Level;

use super::SELF_TARGET;

pub(super) const TRACE_NO: u8 = 5;
pub(super) const DEBUG_NO: u8 = 10;
pub(super) const INFO_NO: u8 = 20;
pub(super) const WARNING_NO: u8 = 30;
pub(super) const ERROR_NO: u8 = 40;
pub(super) const CRITICAL_NO: u8 = 50;

pub(super) fn config_level_no(level: LogLevel) -> u8 {
    match level {
        LogLevel::Debug => DEBUG_NO,
        LogLevel::Info => INFO_NO,
        LogLevel::Warning => WARNING_NO,
        LogLevel::Error => ERROR_NO,
        LogLevel::Critical => CRITICAL_NO,
    }
}

pub(super) fn tracing_level_no(level: &Level) -> u8 {
    match *level {
        Level::TRACE => TRACE_NO,
        Level::DEBUG => DEBUG_NO,
        Level::INFO => INFO_NO,
        Level::WARN => WARNING_NO,
        Level::ERROR => ERROR_NO,
    }
}

pub(super) fn level_name(no: u8) -> Cow<'static, str> {
    match no {
        DEBUG_NO => "DEBUG".into(),
        INFO_NO => "INFO".into(),
        WARNING_NO => "WARNING".into(),
        ERROR_NO => "ERROR".into(),
        CRITICAL_NO => "CRITICAL".into(),
        n => format!("Level {n}").into(),
    }
}

/// The tracing targets a Python logger name in `log.loggers` stands for (see the module documentation).
/// A target ending in `_*` stands for every crate whose name starts with what precedes the `*`.
pub fn python_logger_targets(name: &str) -> Vec<String> {
    let name = name.trim();
    if name.contains("::") {
        return vec![name.to_owned()];
    }
    let mut parts = name.split('.').filter(|p| !p.is_empty());
    let Some(first) = parts.next() else {
        return Vec::new();
    };
    let rest: Vec<&str> = parts.collect();
    let with_rest = |base: &str, rest: &[&str]| -> String {
        if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}::{}", rest.join("::"))
        }
    };
    match first {
        "patroni" => {
            let Some((module, rest)) = rest.split_first() else {
                return vec!["patroni".to_owned(), "patroni_*".to_owned()];
            };
            let bases: Vec<String> = match *module {
                "postgresql" => vec!["patroni_postgres".into()],
                "postmaster" => vec!["patroni_postgres::postmaster".into()],
                "dcs" => vec!["patroni_dcs".into()],
                "ha" => vec!["patroni_ha".into(), "patroni_agent::ha".into()],
                "api" => vec!["patroni_api".into()],
                "ctl" => vec!["patroni_ctl".into()],
                "config" | "validator" | "config_generator" => vec!["patroni_config".into()],
                "log" => vec![SELF_TARGET.into()],
                "__main__" | "daemon" => vec!["patroni_agent".into(), "patroni".into()],
                other => vec![format!("patroni_agent::{other}")],
            };
            bases.iter().map(|b| with_rest(b, rest)).collect()
        }
        "urllib3" => ["reqwest", "hyper", "hyper_util", "h2"].iter().map(|s| (*s).to_owned()).collect(),
        "psycopg" | "psycopg2" => vec!["tokio_postgres".to_owned()],
        _ => vec![with_rest(first, &rest)],
    }
}

#[derive(Debug)]
pub(super) struct Rule {
    pub(super) target: String,
    /// `patroni_*`: any crate whose name starts with `patroni_`.
    crate_prefix: Option<String>,
    pub(super) level: u8,
}

impl Rule {
    pub(super) fn new(target: String, level: u8) -> Self {
        let crate_prefix = target.strip_suffix('*').map(str::to_owned);
        Self { target, crate_prefix, level }
    }

    pub(super) fn matches(&self, target: &str) -> bool {
        if let Some(prefix) = &self.crate_prefix {
            let krate = target.split("::").next().unwrap_or(target);
            return krate.starts_with(prefix.as_str());
        }
        target == self.target
            || (target.starts_with(self.target.as_str()) && target[self.target.len()..].starts_with("::"))
    }

    /// More path segments first; a crate wildcard counts as one segment but loses to an exact crate name.
    pub(super) fn specificity(&self) -> (usize, bool) {
        (self.target.split("::").count(), self.crate_prefix.is_none())
    }
}
