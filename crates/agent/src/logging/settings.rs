//! The `log` section compiled once per (re)configuration into what the layer, the queue and the writer need.

use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::format::Item;
use chrono::{DateTime, Local};
use patroni_config::{LogConfig, LogType};
use serde_json::Value;
use tracing::level_filters::LevelFilter;
use tracing::Metadata;

use super::format::{compile_datefmt, parse_percent, plain_line, Piece};
use super::json::{py_type, JsonFormat};
use super::levels::{
    config_level_no, python_logger_targets, tracing_level_no, Rule, DEBUG_NO, ERROR_NO, INFO_NO, WARNING_NO,
};
use super::record::Record;
use super::{DEFAULT_FILE_NUM, DEFAULT_FILE_SIZE, DEFAULT_FORMAT, DEFAULT_MAX_QUEUE_SIZE};

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Destination {
    Stderr,
    Dir { dir: PathBuf, mode: Option<u32>, file_num: u32, file_size: u64 },
}

#[derive(Debug)]
pub(super) enum Format {
    Plain(Vec<Piece>),
    Json(JsonFormat),
}

#[derive(Debug)]
pub(super) struct LogSettings {
    pub(super) root: u8,
    rules: Vec<Rule>,
    traceback: u8,
    format: Format,
    datefmt: Option<Vec<Item<'static>>>,
    uses_time: bool,
    pub(super) dedup: bool,
    pub(super) queue_cap: usize,
    pub(super) dest: Destination,
}

impl LogSettings {
    /// The settings, and warnings about the section to log once they apply.
    pub(super) fn compile(config: Option<&LogConfig>) -> (Self, Vec<String>) {
        let default = LogConfig::default();
        let c = config.unwrap_or(&default);
        let mut warnings = Vec::new();

        let root = c.level.map_or(INFO_NO, config_level_no);
        let traceback = c.traceback_level.map_or(ERROR_NO, config_level_no);

        let mut rules: Vec<Rule> = Vec::new();
        if let Some(loggers) = &c.loggers {
            for (name, level) in loggers {
                for target in python_logger_targets(name) {
                    rules.retain(|r| r.target != target);
                    rules.push(Rule::new(target, config_level_no(*level)));
                }
            }
        }
        // The Raft library reports its own elections and replication in detail; operators want Patroni's lines.
        if !rules.iter().any(|r| r.target == "openraft") {
            rules.push(Rule::new("openraft".to_owned(), WARNING_NO));
        }
        rules.sort_by_key(|r| std::cmp::Reverse(r.specificity()));

        let format = match c.r#type.unwrap_or(LogType::Plain) {
            LogType::Plain => {
                let text = match &c.format {
                    None => DEFAULT_FORMAT,
                    Some(Value::String(s)) if s.is_empty() => "%(message)s",
                    Some(Value::String(s)) => s.as_str(),
                    Some(other) => {
                        warnings.push(format!(
                            "Expected log format to be a string when log type is plain, but got \"{}\"",
                            py_type(other)
                        ));
                        DEFAULT_FORMAT
                    }
                };
                Format::Plain(parse_percent(text))
            }
            LogType::Json => {
                Format::Json(JsonFormat::compile(c.format.as_ref(), c.static_fields.as_ref(), &mut warnings))
            }
        };

        let uses_time = match &format {
            Format::Plain(pieces) => pieces.iter().any(|p| matches!(p, Piece::Field { name, .. } if name == "asctime")),
            Format::Json(json) => json.fields.iter().any(|(f, _)| f == "asctime"),
        };
        let datefmt = match c.dateformat.as_deref() {
            None | Some("") => None,
            Some(d) => {
                let items = compile_datefmt(d);
                if items.is_none() {
                    warnings.push(format!("Cannot use log dateformat \"{d}\"; using the default"));
                }
                items
            }
        };

        let queue_cap = c.max_queue_size.unwrap_or(DEFAULT_MAX_QUEUE_SIZE);
        let queue_cap = usize::try_from(queue_cap).unwrap_or(usize::MAX);

        let dest = match c.dir.as_deref() {
            Some(dir) => Destination::Dir {
                dir: PathBuf::from(dir),
                mode: c.mode,
                file_num: c.file_num.unwrap_or(DEFAULT_FILE_NUM),
                file_size: c.file_size.map_or(DEFAULT_FILE_SIZE, |s| s.bytes()),
            },
            None => Destination::Stderr,
        };

        let settings = Self {
            root,
            rules,
            traceback,
            format,
            datefmt,
            uses_time,
            dedup: c.deduplicate_heartbeat_logs.unwrap_or(false),
            queue_cap,
            dest,
        };
        (settings, warnings)
    }

    /// The level from which records of `target` are shown.
    pub(super) fn threshold(&self, target: &str) -> u8 {
        self.rules.iter().find(|r| r.matches(target)).map_or(self.root, |r| r.level)
    }

    pub(super) fn min_threshold(&self) -> u8 {
        self.rules.iter().map(|r| r.level).fold(self.root, u8::min)
    }

    /// The check made before a record's fields are known: `log`-crate records carry their real target in a
    /// field, and a CRITICAL threshold still needs ERROR events (one may be marked critical).
    pub(super) fn coarse_enabled(&self, meta: &Metadata<'_>) -> bool {
        let no = tracing_level_no(meta.level());
        let threshold = if meta.target() == "log" { self.min_threshold() } else { self.threshold(meta.target()) };
        no >= threshold.min(ERROR_NO)
    }

    pub(super) fn level_filter(&self) -> LevelFilter {
        match self.min_threshold() {
            0..=DEBUG_NO => LevelFilter::DEBUG,
            11..=INFO_NO => LevelFilter::INFO,
            21..=WARNING_NO => LevelFilter::WARN,
            _ => LevelFilter::ERROR,
        }
    }

    pub(super) fn asctime(&self, time: &DateTime<Local>) -> String {
        let mut s = String::with_capacity(23);
        match &self.datefmt {
            Some(items) => {
                let _ = write!(s, "{}", time.format_with_items(items.iter()));
            }
            None => {
                let _ =
                    write!(s, "{},{:03}", time.format("%Y-%m-%d %H:%M:%S"), time.timestamp_subsec_millis().min(999));
            }
        }
        s
    }

    /// The finished line, newline included.
    pub(super) fn format(&self, rec: &Record<'_>) -> String {
        let asctime = if self.uses_time { Some(self.asctime(&rec.time)) } else { None };
        let show_tb = rec.traceback.is_some() && rec.threshold <= self.traceback;
        let detail = match rec.traceback {
            Some(tb) if !show_tb => {
                format!(", DETAIL: '{}'", tb.lines().next().unwrap_or(""))
            }
            _ => String::new(),
        };
        let traceback = rec.traceback.filter(|_| show_tb);
        match &self.format {
            Format::Plain(pieces) => plain_line(pieces, rec, asctime.as_deref(), &detail, traceback),
            Format::Json(json) => json.line(rec, asctime.as_deref(), &detail, traceback),
        }
    }
}
