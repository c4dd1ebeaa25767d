//! A record as Python's `LogRecord` has it: the event's fields collected from tracing, and the attributes
//! (`asctime`, `levelname`, `funcName`, `thread`, ...) a format can name.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Local};
use tracing::field::{Field, Visit};

use super::format::Val;
use super::levels::level_name;
use super::{CRITICAL_FIELD, HEARTBEAT_FIELD, TRACEBACK_FIELD};

pub(super) fn start_instant() -> Instant {
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

pub(super) struct Record<'a> {
    pub(super) time: DateTime<Local>,
    pub(super) elapsed: Duration,
    pub(super) levelno: u8,
    /// The effective level of the record's target: decides whether its traceback shows.
    pub(super) threshold: u8,
    pub(super) target: &'a str,
    pub(super) file: Option<&'a str>,
    pub(super) line: Option<u32>,
    pub(super) func: Option<&'a str>,
    pub(super) message: &'a str,
    pub(super) extras: &'a [(String, Val<'static>)],
    pub(super) traceback: Option<&'a str>,
}

pub(super) struct RecordView<'a> {
    pub(super) rec: &'a Record<'a>,
    pub(super) asctime: Option<&'a str>,
    pub(super) message: &'a str,
    pub(super) traceback: Option<&'a str>,
}

impl<'a> RecordView<'a> {
    pub(super) fn attr(&self, name: &str) -> Option<Val<'a>> {
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
pub(super) struct Fields {
    pub(super) message: String,
    pub(super) extras: Vec<(String, Val<'static>)>,
    pub(super) heartbeat: bool,
    pub(super) critical: bool,
    pub(super) traceback: Option<String>,
    pub(super) log_target: Option<String>,
    pub(super) log_file: Option<String>,
    pub(super) log_line: Option<u32>,
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
