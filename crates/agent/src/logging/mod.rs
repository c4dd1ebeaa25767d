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
//! * **Heartbeat.** The HA loop calls [`heartbeat`] for its every-loop status line. When the root level is INFO
//!   or higher and `deduplicate_heartbeat_logs` is set, a heartbeat equal to the previous heartbeat is dropped
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
//!
//! One job per file: `levels` (level numbers, `loggers`), `format` (`%`-format, `dateformat`, plain lines), `json`
//! (`type: json`), `record` (a record's attributes), `settings` (the compiled `log` section), `heartbeat`
//! (the status line and its deduplication), `queue` (`max_queue_size` and the writer thread), `rotate`
//! (`patroni.log` and its rotation); this file wires them into a tracing layer.
//!
//! Reconfiguration swaps the compiled settings behind an `Arc` and rebuilds tracing's interest cache, which is
//! what `tracing_subscriber::reload` would do; it is by hand because the settings are shared with the writer
//! thread (destination, queue size), not only with the layer, and so `LogHandle` does not carry the subscriber's
//! type.

mod format;
mod heartbeat;
mod json;
mod levels;
mod queue;
mod record;
mod rotate;
mod settings;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Local;
use patroni_config::LogConfig;
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

pub use heartbeat::heartbeat;
pub use levels::python_logger_targets;

use heartbeat::Kind;
use levels::{tracing_level_no, CRITICAL_NO};
use queue::Shared;
use record::{start_instant, Fields, Record};
use rotate::{RotatingFile, Sink};
use settings::{Destination, LogSettings};

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
/// The target of [`heartbeat`] records (Python's `patroni.ha` logger).
pub const HEARTBEAT_TARGET: &str = "patroni_ha";
/// Field marking a [`heartbeat`] record.
pub const HEARTBEAT_FIELD: &str = "patroni_heartbeat";
/// An `error!` event with `critical = true` is logged as CRITICAL.
pub const CRITICAL_FIELD: &str = "critical";
/// An event field shown like a Python traceback (see the module documentation).
pub const TRACEBACK_FIELD: &str = "traceback";

/// The target of the logging system's own records (Python's `patroni.log`).
const SELF_TARGET: &str = "patroni_agent::logging";

// ---------------------------------------------------------------------------------------------------------------
// Errors

/// Why logging could not be set up or changed.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The log file could not be opened (or its mode set).
    #[error("cannot open log file {}: {source}", .path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the log writer thread: {0}")]
    Thread(#[source] io::Error),
    /// A global subscriber (or `log` logger) was already installed.
    #[error("logging is already initialized: {0}")]
    AlreadyInitialized(String),
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
        if self.shared.open_hint() {
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
        let kind = if f.heartbeat { Kind::Heartbeat } else { Kind::Normal };
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
        let (new, warnings) = LogSettings::compile(config);
        let old = self.shared.settings();
        if new.dest != old.dest {
            match &new.dest {
                Destination::Stderr => self.shared.sink().file = None,
                Destination::Dir { dir, mode, file_num, file_size } => {
                    let same_file = matches!(&old.dest, Destination::Dir { dir: d, .. } if d == dir);
                    if same_file {
                        if let Some(f) = self.shared.sink().file.as_mut() {
                            f.update(*mode, *file_num, *file_size)?;
                        }
                    } else {
                        let f = RotatingFile::open(dir, *mode, *file_num, *file_size)?;
                        self.shared.sink().file = Some(f);
                    }
                }
            }
        }
        let new = Arc::new(new);
        self.shared.apply(new.clone());
        // Callsites cached their interest under the old levels.
        tracing::callsite::rebuild_interest_cache();
        for w in warnings {
            self.shared.warn(&new, &w);
        }
        Ok(())
    }

    /// Waits until every record queued so far is written, at most `timeout`; false if that was not enough.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.shared.flush(timeout)
    }

    /// Writes what is queued (waiting at most `timeout`) and stops the writer thread; later records are written
    /// by the threads that log them. Call it before the process exits, or queued lines are lost.
    pub fn shutdown(&self, timeout: Duration) {
        self.shared.shutdown(timeout)
    }

    /// Records dropped because the queue was full, since the start.
    pub fn records_lost(&self) -> u64 {
        self.shared.records_lost()
    }

    /// Records waiting in the queue.
    pub fn queue_size(&self) -> usize {
        self.shared.queue_size()
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
    let (settings, warnings) = LogSettings::compile(config);
    let file = match &settings.dest {
        Destination::Stderr => None,
        Destination::Dir { dir, mode, file_num, file_size } => {
            Some(RotatingFile::open(dir, *mode, *file_num, *file_size)?)
        }
    };
    let settings = Arc::new(settings);
    let shared = Arc::new(Shared::new(settings.clone(), Sink { stderr, file }));
    shared.start_writer().map_err(LoggingError::Thread)?;
    for w in warnings {
        shared.warn(&settings, &w);
    }
    Ok((PatroniLayer { shared: shared.clone() }, LogHandle { shared }))
}

/// Installs the global subscriber (and the `log`-crate bridge) configured by `config` (`None`: Patroni's
/// defaults, INFO to stderr). Can succeed once per process; use [`LogHandle::reconfigure`] afterwards.
pub fn init(config: Option<&LogConfig>) -> Result<LogHandle, LoggingError> {
    let (layer, handle) = build(config)?;
    handle.shared.set_open_hint(true);
    let installed = tracing_subscriber::registry().with(layer).try_init();
    handle.shared.set_open_hint(false);
    if let Err(e) = installed {
        handle.shutdown(Duration::from_secs(1));
        return Err(LoggingError::AlreadyInitialized(e.to_string()));
    }
    tracing::callsite::rebuild_interest_cache();
    Ok(handle)
}
