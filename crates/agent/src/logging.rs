//! The agent's logging, as Patroni's `log` section describes it.
//!
//! Records go through a [`tracing`] layer ([`PatroniLayer`]) that filters them, formats them on the calling thread
//! (so the text and timestamp are those of the moment of the call) and pushes the finished line into a bounded
//! in-memory queue. A background thread (`patroni-log`) drains the queue to stderr or to `<dir>/patroni.log`.
//! [`LogHandle::reconfigure`] swaps level, format and destination at runtime (SIGHUP).
//!
//! Compatibility decisions, each checked against Patroni 4.1 (`patroni/log.py`) and Python's `logging`:
//!
//! * **Levels.** tracing's ERROR/WARN/INFO/DEBUG print as `ERROR`/`WARNING`/`INFO`/`DEBUG` (levelno 40/30/20/10).
//!   tracing has no CRITICAL: an `error!` event carrying the field `critical = true` prints as `CRITICAL` (levelno
//!   50). TRACE sits below DEBUG (levelno 5) and is never shown: Patroni's lowest level is DEBUG.
//! * **Plain format.** Python `%`-style placeholders with flags, width and precision (`%(levelname)-8s`,
//!   `%(lineno)05d`, `%(created).3f`, `%%`). Attributes: `asctime created msecs relativeCreated levelname levelno
//!   message name process processName thread threadName filename pathname module funcName lineno exc_text
//!   exc_info stack_info taskName`, then the event's own fields (Python's `extra`). `name` is the tracing target
//!   (`patroni_dcs::etcd3`), `funcName` the innermost span's name, `thread` a small per-process thread number.
//!   A placeholder naming nothing is printed literally (Python would fail the record). Event fields other than
//!   `message` are appended to the plain message as ` key=value`, so structured data is never lost.
//! * **asctime.** Local time, `%Y-%m-%d %H:%M:%S,mmm`; with `dateformat` set, Python's `formatTime` uses only the
//!   strftime result, without the `,mmm` — so do we. strftime directives chrono does not share with glibc are
//!   printed literally.
//! * **JSON** (`type: json`). Like python-json-logger as Patroni configures it: `format` is a list of attribute
//!   names and `{attribute: renamed}` maps (or a `%`-format string whose placeholders name the attributes); the
//!   object holds those attributes in order (unknown ones as `null`), then `static_fields`, then `exc_info`, then
//!   the event's own fields; renames apply to all keys. Serialized as Python's `json.dumps` does
//!   (`{"a": 1, "b": "x"}`, non-ASCII as `\uXXXX`).
//! * **Tracebacks.** Rust has none; an event field `traceback` (for example an error chain) plays its part. It is
//!   printed on the following lines (JSON: `exc_info`) when the record's effective level is at or below
//!   `traceback_level` (default ERROR: always); otherwise its first line is appended as `, DETAIL: '...'`, as
//!   Patroni's `debug_exception` does.
//! * **`loggers`.** Python logger names map to tracing targets with [`python_logger_targets`]: `patroni` → every
//!   `patroni*` crate; `patroni.<m>[.<rest>]` → the crate that does `<m>`'s job (`dcs` → `patroni_dcs`, `ha` →
//!   `patroni_ha` and `patroni_agent::ha`, `postgresql` → `patroni_postgres`, `postmaster` →
//!   `patroni_postgres::postmaster`, `api` → `patroni_api`, `ctl` → `patroni_ctl`, `config`/`validator` →
//!   `patroni_config`, `log` → `patroni_agent::logging`, `__main__`/`daemon` → `patroni_agent` and `patroni`,
//!   anything else → `patroni_agent::<m>`) followed by `::<rest>`; `urllib3` → `reqwest`, `hyper`, `hyper_util`,
//!   `h2`; `psycopg`/`psycopg2` → `tokio_postgres`; any other name is a tracing target with `.` read as `::`
//!   (names containing `::` are used as they are). The most specific matching name wins, the root `level`
//!   applies to the rest — as Python's logger hierarchy does. `log`-crate records (rustls, tokio-postgres) are
//!   filtered by their own target.
//! * **Heartbeat.** The HA loop calls [`heartbeat`] for its every-loop status line and may call
//!   [`heartbeat_detail`] for the `Lock owner: ...; I am ...` line before it. When the root level is INFO or
//!   higher, a detail line is held back and dropped if the next INFO-or-higher record is a heartbeat (shown before
//!   it otherwise), and, with `deduplicate_heartbeat_logs`, a heartbeat equal to the previous heartbeat is dropped
//!   unless an INFO-or-higher record came in between. At DEBUG every line is shown. Other records are unaffected.
//! * **Queue.** `max_queue_size` (default 1000; 0 = unbounded, as Python's `Queue(0)`) bounds the queue. When it is
//!   full the record is dropped and counted, exactly as Patroni's `QueueHandler` does with `put_nowait`, and the
//!   next record that fits is followed by `QueueHandler has lost N log records` at WARNING. The HA loop never
//!   waits for the disk or a stuck stderr pipe.
//! * **Files.** With `dir`, `<dir>/patroni.log` is appended to and rotated like Python's `RotatingFileHandler`:
//!   before a write that would bring it to `file_size` bytes (default 25000000) or more it becomes `patroni.log.1`,
//!   older ones shift up to `patroni.log.<file_num>` (default 4) and the oldest goes; `file_num` or `file_size`
//!   of 0 disables rotation. An empty file is never rotated. `mode` is applied to the file each time it is opened
//!   (default: created with `0666 & ~umask`). If the file cannot be written, lines go to stderr instead.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Local};
use patroni_config::{LogConfig, LogLevel, LogType};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Patroni's default plain format.
pub const DEFAULT_FORMAT: &str = "%(asctime)s %(levelname)s: %(message)s";
/// The log file written in `log.dir`.
pub const LOG_FILE_NAME: &str = "patroni.log";
/// Default `log.file_size`.
pub const DEFAULT_FILE_SIZE: u64 = 25_000_000;
/// Default `log.file_num`.
pub const DEFAULT_FILE_NUM: u32 = 4;
/// Default `log.max_queue_size`.
pub const DEFAULT_MAX_QUEUE_SIZE: u64 = 1000;
/// The target of [`heartbeat`] and [`heartbeat_detail`] records (Python's `patroni.ha` logger).
pub const HEARTBEAT_TARGET: &str = "patroni_ha";
/// Field marking a [`heartbeat`] record.
pub const HEARTBEAT_FIELD: &str = "patroni_heartbeat";
/// Field marking a [`heartbeat_detail`] record.
pub const HEARTBEAT_DETAIL_FIELD: &str = "patroni_heartbeat_detail";
/// An `error!` event with `critical = true` is logged as CRITICAL.
pub const CRITICAL_FIELD: &str = "critical";
/// An event field shown like a Python traceback (see the module documentation).
pub const TRACEBACK_FIELD: &str = "traceback";

/// The target of the logging system's own records (Python's `patroni.log`).
const SELF_TARGET: &str = "patroni_agent::logging";

const TRACE_NO: u8 = 5;
const DEBUG_NO: u8 = 10;
const INFO_NO: u8 = 20;
const WARNING_NO: u8 = 30;
const ERROR_NO: u8 = 40;
const CRITICAL_NO: u8 = 50;

/// Logs the HA loop's status line (`no action. I am (pg1), the leader with the lock`) at INFO; see the module
/// documentation for how it is deduplicated.
pub fn heartbeat(status: &str) {
    tracing::info!(target: HEARTBEAT_TARGET, patroni_heartbeat = true, "{status}");
}

/// Logs the line that precedes the heartbeat (`Lock owner: pg1; I am pg2`) at INFO: shown at DEBUG, or when the
/// loop's next line is not a heartbeat; hidden at INFO when a heartbeat follows, as Patroni does.
pub fn heartbeat_detail(line: &str) {
    tracing::info!(target: HEARTBEAT_TARGET, patroni_heartbeat_detail = true, "{line}");
}

// ---------------------------------------------------------------------------------------------------------------
// Errors

/// Why logging could not be set up or changed.
#[derive(Debug)]
pub enum LoggingError {
    /// The log file could not be opened (or its mode set).
    Open {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The writer thread could not be started.
    Thread(io::Error),
    /// A global subscriber (or `log` logger) was already installed.
    AlreadyInitialized(String),
}

impl fmt::Display for LoggingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open { path, source } => {
                write!(f, "cannot open log file {}: {source}", path.display())
            }
            Self::Thread(e) => write!(f, "cannot start the log writer thread: {e}"),
            Self::AlreadyInitialized(e) => write!(f, "logging is already initialized: {e}"),
        }
    }
}

impl std::error::Error for LoggingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Open { source, .. } | Self::Thread(source) => Some(source),
            Self::AlreadyInitialized(_) => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Levels and logger names

fn config_level_no(level: LogLevel) -> u8 {
    match level {
        LogLevel::Debug => DEBUG_NO,
        LogLevel::Info => INFO_NO,
        LogLevel::Warning => WARNING_NO,
        LogLevel::Error => ERROR_NO,
        LogLevel::Critical => CRITICAL_NO,
    }
}

fn tracing_level_no(level: &Level) -> u8 {
    match *level {
        Level::TRACE => TRACE_NO,
        Level::DEBUG => DEBUG_NO,
        Level::INFO => INFO_NO,
        Level::WARN => WARNING_NO,
        Level::ERROR => ERROR_NO,
    }
}

fn level_name(no: u8) -> Cow<'static, str> {
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
struct Rule {
    target: String,
    /// `patroni_*`: any crate whose name starts with `patroni_`.
    crate_prefix: Option<String>,
    level: u8,
}

impl Rule {
    fn new(target: String, level: u8) -> Self {
        let crate_prefix = target.strip_suffix('*').map(str::to_owned);
        Self { target, crate_prefix, level }
    }

    fn matches(&self, target: &str) -> bool {
        if let Some(prefix) = &self.crate_prefix {
            let krate = target.split("::").next().unwrap_or(target);
            return krate.starts_with(prefix.as_str());
        }
        target == self.target
            || (target.starts_with(self.target.as_str()) && target[self.target.len()..].starts_with("::"))
    }

    /// More path segments first; a crate wildcard counts as one segment but loses to an exact crate name.
    fn specificity(&self) -> (usize, bool) {
        (self.target.split("::").count(), self.crate_prefix.is_none())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Settings compiled from `LogConfig`

#[derive(Clone, Debug, PartialEq)]
enum Destination {
    Stderr,
    Dir { dir: PathBuf, mode: Option<u32>, file_num: u32, file_size: u64 },
}

#[derive(Debug)]
enum Format {
    Plain(Vec<Piece>),
    Json {
        /// (attribute, output key) in order.
        fields: Vec<(String, String)>,
        renames: Vec<(String, String)>,
        statics: Vec<(String, Value)>,
    },
}

#[derive(Debug)]
struct Settings {
    root: u8,
    rules: Vec<Rule>,
    traceback: u8,
    format: Format,
    datefmt: Option<Vec<Item<'static>>>,
    uses_time: bool,
    dedup: bool,
    queue_cap: usize,
    dest: Destination,
}

fn py_type(v: &Value) -> &'static str {
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
fn percent_names(fmt: &str) -> Vec<String> {
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

impl Settings {
    fn compile(config: Option<&LogConfig>) -> (Self, Vec<String>) {
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
                let mut fields: Vec<String> = Vec::new();
                let mut renames: Vec<(String, String)> = Vec::new();
                match &c.format {
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
                        warnings.push(format!(
                            "Expected log format to be a string or a list, but got \"{}\"",
                            py_type(other)
                        ));
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
                let statics = c
                    .static_fields
                    .as_ref()
                    .map(|m: &Map<String, Value>| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                Format::Json { fields, renames, statics }
            }
        };

        let uses_time = match &format {
            Format::Plain(pieces) => pieces.iter().any(|p| matches!(p, Piece::Field { name, .. } if name == "asctime")),
            Format::Json { fields, .. } => fields.iter().any(|(f, _)| f == "asctime"),
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
    fn threshold(&self, target: &str) -> u8 {
        self.rules.iter().find(|r| r.matches(target)).map_or(self.root, |r| r.level)
    }

    fn min_threshold(&self) -> u8 {
        self.rules.iter().map(|r| r.level).fold(self.root, u8::min)
    }

    /// The check made before a record's fields are known: `log`-crate records carry their real target in a
    /// field, and a CRITICAL threshold still needs ERROR events (one may be marked critical).
    fn coarse_enabled(&self, meta: &Metadata<'_>) -> bool {
        let no = tracing_level_no(meta.level());
        let threshold = if meta.target() == "log" { self.min_threshold() } else { self.threshold(meta.target()) };
        no >= threshold.min(ERROR_NO)
    }

    fn level_filter(&self) -> LevelFilter {
        match self.min_threshold() {
            0..=DEBUG_NO => LevelFilter::DEBUG,
            11..=INFO_NO => LevelFilter::INFO,
            21..=WARNING_NO => LevelFilter::WARN,
            _ => LevelFilter::ERROR,
        }
    }

    fn asctime(&self, time: &DateTime<Local>) -> String {
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
    fn format(&self, rec: &Record<'_>) -> String {
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
            Format::Plain(pieces) => {
                let mut message = String::with_capacity(rec.message.len() + detail.len());
                message.push_str(rec.message);
                for (k, v) in rec.extras {
                    message.push(' ');
                    message.push_str(k);
                    message.push('=');
                    v.write_plain(&mut message);
                }
                message.push_str(&detail);
                let view = RecordView { rec, asctime: asctime.as_deref(), message: &message, traceback };
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
            Format::Json { fields, renames, statics } => {
                let mut message = String::with_capacity(rec.message.len() + detail.len());
                message.push_str(rec.message);
                message.push_str(&detail);
                let view = RecordView { rec, asctime: asctime.as_deref(), message: &message, traceback };
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
                    let reserved = RESERVED_ATTRS.contains(&k.as_str())
                        || fields.iter().any(|(f, _)| f == k)
                        || k.starts_with('_');
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

// ---------------------------------------------------------------------------------------------------------------
// Python %-format strings

#[derive(Clone, Debug, Default, PartialEq)]
struct Spec {
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
enum Piece {
    Lit(String),
    Field {
        name: String,
        spec: Spec,
        /// The placeholder as written, printed when `name` names nothing.
        raw: String,
    },
}

fn parse_percent(fmt: &str) -> Vec<Piece> {
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
enum Val<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    None,
}

impl Val<'_> {
    /// Python's `str()`.
    fn py_str(&self) -> Cow<'_, str> {
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
    fn py_repr(&self) -> Cow<'_, str> {
        match self {
            Val::Str(s) => patroni_pycompat::str_repr(s).into(),
            other => other.py_str(),
        }
    }

    /// How an event field is appended to a plain message: as tracing's own formatter shows it.
    fn write_plain(&self, out: &mut String) {
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

    fn to_json(&self) -> Value {
        match self {
            Val::Str(s) => Value::String(s.to_string()),
            Val::Int(n) => Value::from(*n),
            Val::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Val::Bool(b) => Value::Bool(*b),
            Val::None => Value::Null,
        }
    }

    fn as_int(&self) -> Option<i64> {
        match self {
            Val::Int(n) => Some(*n),
            // Python's `%d` truncates floats.
            Val::Float(f) if f.is_finite() => Some(f.trunc() as i64),
            Val::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    fn as_float(&self) -> Option<f64> {
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

fn render(out: &mut String, v: &Val<'_>, spec: &Spec) {
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

fn compile_datefmt(fmt: &str) -> Option<Vec<Item<'static>>> {
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
// Records

fn start_instant() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

thread_local! {
    static THREAD: (u64, String) = {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = match std::thread::current().name() {
            Some("main") => "MainThread".to_owned(),
            Some(n) => n.to_owned(),
            None => format!("Thread-{id}"),
        };
        (id, name)
    };
}

struct Record<'a> {
    time: DateTime<Local>,
    elapsed: Duration,
    levelno: u8,
    /// The effective level of the record's target: decides whether its traceback shows.
    threshold: u8,
    target: &'a str,
    file: Option<&'a str>,
    line: Option<u32>,
    func: Option<&'a str>,
    message: &'a str,
    extras: &'a [(String, Val<'static>)],
    traceback: Option<&'a str>,
}

struct RecordView<'a> {
    rec: &'a Record<'a>,
    asctime: Option<&'a str>,
    message: &'a str,
    traceback: Option<&'a str>,
}

impl<'a> RecordView<'a> {
    fn attr(&self, name: &str) -> Option<Val<'a>> {
        let r = self.rec;
        let file = r.file.unwrap_or("(unknown file)");
        let base = file.rsplit(['/', '\\']).next().unwrap_or(file);
        Some(match name {
            "asctime" => Val::Str(Cow::Borrowed(self.asctime?)),
            "created" => Val::Float(r.time.timestamp_micros() as f64 / 1e6),
            "msecs" => Val::Float(f64::from(r.time.timestamp_subsec_millis().min(999))),
            "relativeCreated" => Val::Float(r.elapsed.as_secs_f64() * 1000.0),
            "levelname" => Val::Str(level_name(r.levelno)),
            "levelno" => Val::Int(i64::from(r.levelno)),
            "message" | "msg" => Val::Str(Cow::Borrowed(self.message)),
            "name" => Val::Str(Cow::Borrowed(r.target)),
            "process" => Val::Int(i64::from(std::process::id())),
            "processName" => Val::Str(Cow::Borrowed("MainProcess")),
            "thread" => Val::Int(THREAD.with(|t| t.0) as i64),
            "threadName" => Val::Str(Cow::Owned(THREAD.with(|t| t.1.clone()))),
            "pathname" => Val::Str(Cow::Borrowed(file)),
            "filename" => Val::Str(Cow::Borrowed(base)),
            "module" => {
                if r.file.is_none() {
                    Val::Str(Cow::Borrowed("Unknown module"))
                } else {
                    Val::Str(Cow::Borrowed(base.rsplit_once('.').map_or(base, |(stem, _)| stem)))
                }
            }
            "funcName" => Val::Str(Cow::Borrowed(r.func.unwrap_or("(unknown function)"))),
            "lineno" => Val::Int(i64::from(r.line.unwrap_or(0))),
            "exc_text" | "exc_info" => match self.traceback {
                Some(tb) => Val::Str(Cow::Borrowed(tb)),
                None => Val::None,
            },
            "stack_info" | "taskName" | "args" => Val::None,
            other => r.extras.iter().find(|(k, _)| k == other).map(|(_, v)| v.clone())?,
        })
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    extras: Vec<(String, Val<'static>)>,
    heartbeat: bool,
    detail: bool,
    critical: bool,
    traceback: Option<String>,
    log_target: Option<String>,
    log_file: Option<String>,
    log_line: Option<u32>,
}

impl Fields {
    fn put(&mut self, name: &str, v: Val<'static>) {
        let truthy = |v: &Val<'_>| match v {
            Val::Bool(b) => *b,
            Val::Int(n) => *n != 0,
            Val::Str(s) => s == "true" || s == "True",
            _ => false,
        };
        let text = |v: Val<'static>| v.py_str().into_owned();
        match name {
            "message" => self.message = text(v),
            HEARTBEAT_FIELD => self.heartbeat = truthy(&v),
            HEARTBEAT_DETAIL_FIELD => self.detail = truthy(&v),
            CRITICAL_FIELD => self.critical = truthy(&v),
            TRACEBACK_FIELD => self.traceback = Some(text(v)),
            "log.target" => self.log_target = Some(text(v)),
            "log.file" => self.log_file = Some(text(v)),
            "log.line" => self.log_line = v.as_int().and_then(|n| u32::try_from(n).ok()),
            "log.module_path" => {}
            _ => self.extras.push((name.to_owned(), v)),
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field.name(), Val::Str(Cow::Owned(format!("{value:?}"))));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field.name(), Val::Str(Cow::Owned(value.to_owned())));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field.name(), Val::Int(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        let v = i64::try_from(value).map_or_else(|_| Val::Str(value.to_string().into()), Val::Int);
        self.put(field.name(), v);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field.name(), Val::Float(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field.name(), Val::Bool(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field.name(), Val::Str(Cow::Owned(value.to_string())));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Destinations

struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    backups: u32,
    mode: Option<u32>,
    /// An error was already reported on stderr; cleared by the next successful write.
    failing: bool,
}

fn open_append(path: &Path, mode: Option<u32>) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if let Some(m) = mode {
            o.mode(m);
        }
        let f = o.open(path)?;
        // Patroni chmods on every open: the file may predate the configured mode.
        if let Some(m) = mode {
            f.set_permissions(std::fs::Permissions::from_mode(m))?;
        }
        Ok(f)
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        o.open(path)
    }
}

impl RotatingFile {
    fn open(dir: &Path, mode: Option<u32>, file_num: u32, file_size: u64) -> Result<Self, LoggingError> {
        let path = dir.join(LOG_FILE_NAME);
        let open = || -> io::Result<(File, u64)> {
            let file = open_append(&path, mode)?;
            let size = file.metadata()?.len();
            Ok((file, size))
        };
        let (file, size) = open().map_err(|source| LoggingError::Open { path: path.clone(), source })?;
        Ok(Self { path, file, size, max_bytes: file_size, backups: file_num, mode, failing: false })
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    fn rotate(&mut self) -> io::Result<()> {
        for i in (1..self.backups).rev() {
            let src = self.numbered(i);
            if src.exists() {
                std::fs::rename(&src, self.numbered(i + 1))?;
            }
        }
        std::fs::rename(&self.path, self.numbered(1))?;
        self.file = open_append(&self.path, self.mode)?;
        self.size = 0;
        Ok(())
    }

    /// Called before each batch: another program (logrotate's copytruncate) may have changed the file.
    fn resync(&mut self) {
        if let Ok(m) = self.file.metadata() {
            self.size = m.len();
        }
    }

    fn write_line(&mut self, line: &str) -> io::Result<()> {
        let len = line.len() as u64;
        if self.max_bytes > 0 && self.backups > 0 && self.size > 0 && self.size + len >= self.max_bytes {
            if let Err(e) = self.rotate() {
                // Keep appending to the file we have rather than lose lines.
                self.report(&format!("cannot rotate {}: {e}", self.path.display()));
            }
        }
        self.file.write_all(line.as_bytes())?;
        self.size += len;
        self.failing = false;
        Ok(())
    }

    fn report(&mut self, what: &str) {
        if !self.failing {
            self.failing = true;
            eprintln!("patroni: logging: {what}");
        }
    }
}

struct Sink {
    stderr: Box<dyn Write + Send>,
    file: Option<RotatingFile>,
}

impl Sink {
    fn write_batch(&mut self, lines: &[String]) {
        if let Some(f) = &mut self.file {
            f.resync();
        }
        for line in lines {
            if let Some(f) = &mut self.file {
                match f.write_line(line) {
                    Ok(()) => continue,
                    Err(e) => {
                        let what = format!("cannot write {}: {e}", f.path.display());
                        f.report(&what);
                    }
                }
            }
            let _ = self.stderr.write_all(line.as_bytes());
        }
        let _ = self.stderr.flush();
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Queue and writer thread

#[derive(Default)]
struct QueueState {
    items: VecDeque<String>,
    cap: usize,
    /// Dropped since the last "lost" warning.
    lost: u64,
    pushed: u64,
    written: u64,
    stopping: bool,
    /// The writer thread is gone: callers write themselves.
    direct: bool,
    held_detail: Option<String>,
    last_heartbeat: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    Heartbeat,
    Detail,
}

struct Shared {
    settings: RwLock<Arc<Settings>>,
    queue: Mutex<QueueState>,
    ready: Condvar,
    drained: Condvar,
    sink: Mutex<Sink>,
    worker: Mutex<Option<JoinHandle<()>>>,
    /// While installing the global subscriber, report no level hint so that the `log` crate's maximum level
    /// (fixed once, at installation) lets everything through to our own filter.
    open_hint: AtomicBool,
    lost_total: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn settings(&self) -> Arc<Settings> {
        self.settings.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Queues `line`; false when the queue is full (the line is counted as lost).
    fn push(&self, q: &mut QueueState, line: String, direct: &mut Vec<String>) -> bool {
        if q.direct {
            direct.push(line);
            return true;
        }
        if q.cap > 0 && q.items.len() >= q.cap {
            q.lost += 1;
            self.lost_total.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        q.items.push_back(line);
        q.pushed += 1;
        self.ready.notify_one();
        true
    }

    fn submit(&self, settings: &Settings, kind: Kind, levelno: u8, line: String, message: &str) {
        let mut direct = Vec::new();
        let mut report_lost = 0;
        {
            let mut q = lock(&self.queue);
            let quiet = settings.root >= INFO_NO;
            match kind {
                Kind::Detail if quiet => {
                    q.held_detail = Some(line);
                    return;
                }
                Kind::Heartbeat if quiet => {
                    q.held_detail = None;
                    if settings.dedup && q.last_heartbeat.as_deref() == Some(message) {
                        return;
                    }
                    q.last_heartbeat = Some(message.to_owned());
                }
                Kind::Normal if quiet && levelno >= INFO_NO => {
                    if let Some(held) = q.held_detail.take() {
                        self.push(&mut q, held, &mut direct);
                    }
                    q.last_heartbeat = None;
                }
                _ => {}
            }
            if self.push(&mut q, line, &mut direct) && q.lost > 0 {
                report_lost = std::mem::take(&mut q.lost);
            }
        }
        if report_lost > 0 {
            let line =
                self.internal_line(settings, WARNING_NO, &format!("QueueHandler has lost {report_lost} log records"));
            let mut q = lock(&self.queue);
            if !self.push(&mut q, line, &mut direct) {
                // That one was ours, not the caller's.
                q.lost += report_lost - 1;
                self.lost_total.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if !direct.is_empty() {
            // After shutdown; a writer thread left stuck on a dead pipe may still hold the sink: drop the lines
            // rather than block the caller.
            if let Ok(mut sink) = self.sink.try_lock() {
                sink.write_batch(&direct);
            }
        }
    }

    /// A record of the logging system itself.
    fn internal_line(&self, settings: &Settings, levelno: u8, message: &str) -> String {
        let rec = Record {
            time: Local::now(),
            elapsed: start_instant().elapsed(),
            levelno,
            threshold: settings.threshold(SELF_TARGET),
            target: SELF_TARGET,
            file: Some(file!()),
            line: Some(line!()),
            func: None,
            message,
            extras: &[],
            traceback: None,
        };
        settings.format(&rec)
    }

    fn warn(&self, settings: &Settings, message: &str) {
        if WARNING_NO >= settings.threshold(SELF_TARGET) {
            let line = self.internal_line(settings, WARNING_NO, message);
            self.submit(settings, Kind::Normal, WARNING_NO, line, message);
        }
    }

    fn run_writer(&self) {
        loop {
            let batch: Vec<String> = {
                let mut q = lock(&self.queue);
                while q.items.is_empty() && !q.stopping {
                    q = self.ready.wait(q).unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                if q.items.is_empty() {
                    return;
                }
                q.items.drain(..).collect()
            };
            lock(&self.sink).write_batch(&batch);
            let mut q = lock(&self.queue);
            q.written += batch.len() as u64;
            self.drained.notify_all();
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The layer

/// The tracing layer that filters, formats and queues records. Build one with [`build`] (or let [`init`] install
/// it); configure it through its [`LogHandle`].
pub struct PatroniLayer {
    shared: Arc<Shared>,
}

impl<S> Layer<S> for PatroniLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.shared.settings().coarse_enabled(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.shared.settings().coarse_enabled(meta)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        if self.shared.open_hint.load(Ordering::Relaxed) {
            None
        } else {
            Some(self.shared.settings().level_filter())
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let settings = self.shared.settings();
        let meta = event.metadata();
        let mut f = Fields::default();
        event.record(&mut f);
        let target = f.log_target.as_deref().unwrap_or(meta.target());
        let levelno =
            if f.critical && *meta.level() == Level::ERROR { CRITICAL_NO } else { tracing_level_no(meta.level()) };
        let threshold = settings.threshold(target);
        if levelno < threshold {
            return;
        }
        let kind = if f.heartbeat {
            Kind::Heartbeat
        } else if f.detail {
            Kind::Detail
        } else {
            Kind::Normal
        };
        let span = ctx.event_span(event);
        let rec = Record {
            time: Local::now(),
            elapsed: start_instant().elapsed(),
            levelno,
            threshold,
            target,
            file: f.log_file.as_deref().or(meta.file()),
            line: f.log_line.or(meta.line()),
            func: span.as_ref().map(|s| s.name()),
            message: &f.message,
            extras: &f.extras,
            traceback: f.traceback.as_deref(),
        };
        let line = settings.format(&rec);
        self.shared.submit(&settings, kind, levelno, line, &f.message);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Handle and entry points

/// Controls the logging set up by [`init`] or [`build`]: reconfigure it (SIGHUP), flush it, stop it. Cloning
/// gives another handle to the same logging.
#[derive(Clone)]
pub struct LogHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogHandle")
            .field("queue_size", &self.queue_size())
            .field("records_lost", &self.records_lost())
            .finish()
    }
}

impl LogHandle {
    /// Applies a new `log` section: level, loggers, format, destination, queue size. On error (the new log file
    /// cannot be opened) nothing changes. Warnings about the section (a format of the wrong type) are logged.
    pub fn reconfigure(&self, config: Option<&LogConfig>) -> Result<(), LoggingError> {
        let (new, warnings) = Settings::compile(config);
        let old = self.shared.settings();
        if new.dest != old.dest {
            let file = match &new.dest {
                Destination::Stderr => None,
                Destination::Dir { dir, mode, file_num, file_size } => {
                    let same_file = matches!(&old.dest, Destination::Dir { dir: d, .. } if d == dir);
                    if same_file {
                        let mut sink = lock(&self.shared.sink);
                        if let Some(f) = sink.file.as_mut() {
                            f.max_bytes = *file_size;
                            f.backups = *file_num;
                            if f.mode != *mode {
                                f.mode = *mode;
                                #[cfg(unix)]
                                if let Some(m) = mode {
                                    use std::os::unix::fs::PermissionsExt;
                                    f.file
                                        .set_permissions(std::fs::Permissions::from_mode(*m))
                                        .map_err(|source| LoggingError::Open { path: f.path.clone(), source })?;
                                }
                            }
                        }
                        drop(sink);
                        Some(None)
                    } else {
                        Some(Some(RotatingFile::open(dir, *mode, *file_num, *file_size)?))
                    }
                }
            };
            match file {
                // Same file, updated in place.
                Some(None) => {}
                Some(Some(f)) => lock(&self.shared.sink).file = Some(f),
                None => lock(&self.shared.sink).file = None,
            }
        }
        let new = Arc::new(new);
        lock(&self.shared.queue).cap = new.queue_cap;
        *self.shared.settings.write().unwrap_or_else(std::sync::PoisonError::into_inner) = new.clone();
        // Callsites cached their interest under the old levels.
        tracing::callsite::rebuild_interest_cache();
        for w in warnings {
            self.shared.warn(&new, &w);
        }
        Ok(())
    }

    /// Waits until every record queued so far is written, at most `timeout`; false if that was not enough.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut q = lock(&self.shared.queue);
        let target = q.pushed;
        while q.written < target && !q.direct {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            q = self
                .shared
                .drained
                .wait_timeout(q, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Writes what is queued (waiting at most `timeout`) and stops the writer thread; later records are written
    /// by the threads that log them. Call it before the process exits, or queued lines are lost.
    pub fn shutdown(&self, timeout: Duration) {
        let done = self.flush(timeout);
        {
            let mut q = lock(&self.shared.queue);
            q.stopping = true;
            self.shared.ready.notify_all();
        }
        let worker = lock(&self.shared.worker).take();
        if let Some(w) = worker {
            // A writer stuck on a dead stderr pipe must not keep us from exiting.
            if done {
                let _ = w.join();
            }
        }
        let mut q = lock(&self.shared.queue);
        q.direct = true;
        let rest: Vec<String> = q.items.drain(..).collect();
        drop(q);
        if done && !rest.is_empty() {
            lock(&self.shared.sink).write_batch(&rest);
        }
    }

    /// Records dropped because the queue was full, since the start.
    pub fn records_lost(&self) -> u64 {
        self.shared.lost_total.load(Ordering::Relaxed)
    }

    /// Records waiting in the queue.
    pub fn queue_size(&self) -> usize {
        lock(&self.shared.queue).items.len()
    }
}

/// Builds the layer and its handle without installing anything, writing to stderr when the configuration has no
/// `dir`.
pub fn build(config: Option<&LogConfig>) -> Result<(PatroniLayer, LogHandle), LoggingError> {
    build_with_stderr(config, Box::new(io::stderr()))
}

/// Like [`build`], with `stderr` standing for the standard error stream (tests capture output this way).
pub fn build_with_stderr(
    config: Option<&LogConfig>,
    stderr: Box<dyn Write + Send>,
) -> Result<(PatroniLayer, LogHandle), LoggingError> {
    start_instant();
    let (settings, warnings) = Settings::compile(config);
    let file = match &settings.dest {
        Destination::Stderr => None,
        Destination::Dir { dir, mode, file_num, file_size } => {
            Some(RotatingFile::open(dir, *mode, *file_num, *file_size)?)
        }
    };
    let settings = Arc::new(settings);
    let shared = Arc::new(Shared {
        queue: Mutex::new(QueueState { cap: settings.queue_cap, ..QueueState::default() }),
        settings: RwLock::new(settings.clone()),
        ready: Condvar::new(),
        drained: Condvar::new(),
        sink: Mutex::new(Sink { stderr, file }),
        worker: Mutex::new(None),
        open_hint: AtomicBool::new(false),
        lost_total: AtomicU64::new(0),
    });
    let writer = shared.clone();
    let worker = std::thread::Builder::new()
        .name("patroni-log".into())
        .spawn(move || writer.run_writer())
        .map_err(LoggingError::Thread)?;
    *lock(&shared.worker) = Some(worker);
    for w in warnings {
        shared.warn(&settings, &w);
    }
    Ok((PatroniLayer { shared: shared.clone() }, LogHandle { shared }))
}

/// Installs the global subscriber (and the `log`-crate bridge) configured by `config` (`None`: Patroni's
/// defaults, INFO to stderr). Can succeed once per process; use [`LogHandle::reconfigure`] afterwards.
pub fn init(config: Option<&LogConfig>) -> Result<LogHandle, LoggingError> {
    let (layer, handle) = build(config)?;
    handle.shared.open_hint.store(true, Ordering::Relaxed);
    let installed = tracing_subscriber::registry().with(layer).try_init();
    handle.shared.open_hint.store(false, Ordering::Relaxed);
    if let Err(e) = installed {
        handle.shutdown(Duration::from_secs(1));
        return Err(LoggingError::AlreadyInitialized(e.to_string()));
    }
    tracing::callsite::rebuild_interest_cache();
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let time = chrono::TimeZone::with_ymd_and_hms(&Local, 2024, 1, 1, 12, 0, 0).unwrap()
            + chrono::Duration::milliseconds(123);
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
            Settings::compile(Some(&config)).0.format(rec)
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
}
