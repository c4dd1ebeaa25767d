//! The agent's logging, tested through scoped subscribers (the global one can be set only once per process).

#[allow(dead_code, unused_imports)]
#[path = "../src/logging/mod.rs"]
mod logging;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logging::{build_with_stderr, LogHandle};
use patroni_config::{LogConfig, LogLevel, LogType};
use serde_json::{json, Value};
use tracing_subscriber::layer::SubscriberExt;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap().lines().map(str::to_owned).collect()
    }
}

/// Runs `f` with logging configured by `config`, returns what it wrote to "stderr".
fn capture_with(config: &LogConfig, f: impl FnOnce(&LogHandle)) -> Vec<String> {
    let buf = Buf::default();
    let (layer, handle) = build_with_stderr(Some(config), Box::new(buf.clone())).unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || f(&handle));
    assert!(handle.flush(Duration::from_secs(10)));
    handle.shutdown(Duration::from_secs(10));
    buf.lines()
}

fn capture(config: &LogConfig, f: impl FnOnce()) -> Vec<String> {
    capture_with(config, |_| f())
}

fn is_asctime(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 23
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            19 => *c == b',',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn default_plain_line_is_patronis() {
    let lines = capture(&LogConfig::default(), || {
        tracing::info!("no action. I am (pg1), the leader with the lock");
        tracing::warn!("something odd");
        tracing::error!("broken");
        tracing::error!(critical = true, "very broken");
        tracing::debug!("hidden at INFO");
        tracing::trace!("never");
    });
    assert_eq!(lines.len(), 4, "{lines:?}");
    let rest: Vec<&str> = lines
        .iter()
        .map(|l| {
            assert!(is_asctime(&l[..23]), "bad timestamp in {l:?}");
            &l[23..]
        })
        .collect();
    assert_eq!(
        rest,
        [
            " INFO: no action. I am (pg1), the leader with the lock",
            " WARNING: something odd",
            " ERROR: broken",
            " CRITICAL: very broken",
        ]
    );
}

#[test]
fn structured_fields_are_appended_to_plain_messages() {
    let lines = capture(&LogConfig::default(), || {
        tracing::info!(pid = 42, mode = "fast", "stopping PostgreSQL");
    });
    assert!(lines[0].ends_with(" INFO: stopping PostgreSQL pid=42 mode=fast"), "{lines:?}");
}

#[test]
fn custom_format_with_widths() {
    let config = LogConfig {
        format: Some(json!("[%(levelname)-8s] %(name)s:%(lineno)d %(levelno)03d %(missing)s %% %(message)s")),
        ..LogConfig::default()
    };
    let lines = capture(&config, || {
        tracing::warn!(target: "patroni_dcs::etcd3", "lost contact");
    });
    let re_line = lines[0].clone();
    let (head, tail) = re_line.split_once(' ').unwrap();
    assert_eq!(head, "[WARNING");
    let (_, after_name) = tail.split_once("patroni_dcs::etcd3:").expect(&re_line);
    let (lineno, rest) = after_name.split_once(' ').unwrap();
    assert!(lineno.parse::<u32>().unwrap() > 0);
    assert_eq!(rest, "030 %(missing)s % lost contact");
    assert!(re_line.starts_with("[WARNING ] patroni_dcs::etcd3:"), "{re_line}");
}

#[test]
fn dateformat_drops_milliseconds() {
    let config = LogConfig { dateformat: Some("%d/%m/%Y %H:%M".into()), ..LogConfig::default() };
    let lines = capture(&config, || tracing::info!("hello"));
    let line = &lines[0];
    let b = line.as_bytes();
    assert_eq!(b[2], b'/');
    assert_eq!(b[5], b'/');
    assert_eq!(b[13], b':');
    assert_eq!(&line[16..], " INFO: hello", "{line}");
}

#[test]
fn json_lines_carry_configured_and_static_fields() {
    let config = LogConfig {
        r#type: Some(LogType::Json),
        format: Some(json!(["asctime", {"levelname": "level"}, "message", "name", "nosuch"])),
        static_fields: Some(json!({"app": "patroni", "cluster": 7}).as_object().cloned().unwrap()),
        ..LogConfig::default()
    };
    let lines = capture(&config, || {
        tracing::info!(target: "patroni_ha", member = "pg1", "promoted é");
        tracing::error!(traceback = "Traceback:\n  boom", "failed");
    });
    assert_eq!(lines.len(), 2, "{lines:?}");
    let v: Value = serde_json::from_str(&lines[0]).unwrap();
    let obj = v.as_object().unwrap();
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(keys, ["asctime", "level", "message", "name", "nosuch", "app", "cluster", "member"]);
    assert!(is_asctime(obj["asctime"].as_str().unwrap()));
    assert_eq!(obj["level"], "INFO");
    assert_eq!(obj["message"], "promoted é");
    assert_eq!(obj["name"], "patroni_ha");
    assert_eq!(obj["nosuch"], Value::Null);
    assert_eq!(obj["app"], "patroni");
    assert_eq!(obj["cluster"], 7);
    assert_eq!(obj["member"], "pg1");
    // Python's json.dumps: ", " and ": " separators, ASCII only.
    assert!(lines[0].contains(r#""level": "INFO", "message": "promoted \u00e9""#), "{}", lines[0]);
    let v: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(v["exc_info"], "Traceback:\n  boom");
    assert_eq!(v["level"], "ERROR");
}

#[test]
fn json_default_and_string_formats() {
    let config = LogConfig { r#type: Some(LogType::Json), ..LogConfig::default() };
    let lines = capture(&config, || tracing::info!("hi"));
    let v: Value = serde_json::from_str(&lines[0]).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["asctime", "levelname", "message"]);

    let config = LogConfig {
        r#type: Some(LogType::Json),
        format: Some(json!("%(levelno)s %(process)d %(message)s")),
        ..LogConfig::default()
    };
    let lines = capture(&config, || tracing::warn!("hi"));
    let v: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["levelno"], 30);
    assert_eq!(v["process"], std::process::id());
}

#[test]
fn wrong_format_type_warns_and_uses_default() {
    let config = LogConfig { format: Some(json!(["message"])), ..LogConfig::default() };
    let lines = capture(&config, || tracing::info!("hi"));
    assert!(
        lines[0].ends_with(" WARNING: Expected log format to be a string when log type is plain, but got \"list\""),
        "{lines:?}"
    );
    assert!(lines[1].ends_with(" INFO: hi"));
}

#[test]
fn traceback_follows_traceback_level() {
    let lines = capture(&LogConfig::default(), || {
        tracing::error!(traceback = "Traceback (most recent call last):\n  oops", "failed");
    });
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].ends_with(" ERROR: failed"));
    assert_eq!(lines[1], "Traceback (most recent call last):");

    let config = LogConfig { traceback_level: Some(LogLevel::Debug), ..LogConfig::default() };
    let lines = capture(&config, || {
        tracing::error!(traceback = "first line\nsecond", "failed");
    });
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].ends_with(" ERROR: failed, DETAIL: 'first line'"));
}

#[test]
fn loggers_set_levels_per_module() {
    let loggers = [("patroni.dcs".to_owned(), LogLevel::Debug), ("patroni.postmaster".to_owned(), LogLevel::Warning)]
        .into_iter()
        .collect();
    let config = LogConfig {
        format: Some(json!("%(levelname)s %(name)s %(message)s")),
        loggers: Some(loggers),
        ..LogConfig::default()
    };
    let lines = capture(&config, || {
        tracing::debug!(target: "patroni_dcs::etcd3::client", "dcs debug");
        tracing::debug!(target: "patroni_ha", "ha debug");
        tracing::info!(target: "patroni_postgres::postmaster", "postmaster info");
        tracing::warn!(target: "patroni_postgres::postmaster", "postmaster warning");
        tracing::info!(target: "patroni_postgres::command", "command info");
    });
    assert_eq!(
        lines,
        [
            "DEBUG patroni_dcs::etcd3::client dcs debug",
            "WARNING patroni_postgres::postmaster postmaster warning",
            "INFO patroni_postgres::command command info",
        ]
    );
}

#[test]
fn reconfigure_changes_level_and_format() {
    let lines = capture_with(&LogConfig::default(), |handle| {
        tracing::debug!("before: hidden");
        handle
            .reconfigure(Some(&LogConfig {
                level: Some(LogLevel::Debug),
                format: Some(json!("%(levelname)s %(message)s")),
                ..LogConfig::default()
            }))
            .unwrap();
        tracing::debug!("after: shown");
        handle
            .reconfigure(Some(&LogConfig {
                level: Some(LogLevel::Error),
                format: Some(json!("%(levelname)s %(message)s")),
                ..LogConfig::default()
            }))
            .unwrap();
        tracing::warn!("hidden again");
        tracing::error!("shown");
    });
    assert_eq!(lines, ["DEBUG after: shown", "ERROR shown"]);
}

#[test]
fn heartbeat_deduplication() {
    let config = LogConfig {
        format: Some(json!("%(message)s")),
        deduplicate_heartbeat_logs: Some(true),
        ..LogConfig::default()
    };
    let lines = capture(&config, || {
        for _ in 0..3 {
            logging::heartbeat("no action. I am (pg1), the leader with the lock");
        }
        tracing::debug!("debug chatter does not matter");
        logging::heartbeat("no action. I am (pg1), the leader with the lock");
        tracing::info!("something happened");
        logging::heartbeat("no action. I am (pg1), the leader with the lock");
        tracing::info!("promoted");
        logging::heartbeat("PAUSE: no action. I am (pg1), the leader with the lock");
        logging::heartbeat("PAUSE: no action. I am (pg1), the leader with the lock");
    });
    assert_eq!(
        lines,
        [
            "no action. I am (pg1), the leader with the lock",
            "something happened",
            "no action. I am (pg1), the leader with the lock",
            "promoted",
            "PAUSE: no action. I am (pg1), the leader with the lock",
        ]
    );
}

#[test]
fn heartbeats_repeat_without_deduplication_and_at_debug() {
    let config = LogConfig { format: Some(json!("%(message)s")), ..LogConfig::default() };
    let lines = capture(&config, || {
        logging::heartbeat("no action. following");
        logging::heartbeat("no action. following");
    });
    assert_eq!(lines, ["no action. following", "no action. following"]);

    let config = LogConfig {
        level: Some(LogLevel::Debug),
        format: Some(json!("%(message)s")),
        deduplicate_heartbeat_logs: Some(true),
        ..LogConfig::default()
    };
    let lines = capture(&config, || {
        logging::heartbeat("no action. following");
        logging::heartbeat("no action. following");
    });
    assert_eq!(lines, ["no action. following", "no action. following"]);
}

#[test]
fn files_rotate_at_file_size_and_keep_file_num() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        dir: Some(dir.path().to_str().unwrap().to_owned()),
        format: Some(json!("%(message)s")),
        file_num: Some(2),
        file_size: Some(patroni_config::Size(100)),
        mode: Some(0o640),
        ..LogConfig::default()
    };
    let lines = capture(&config, || {
        for i in 0..30 {
            // 20 bytes with the newline: five lines per file.
            tracing::info!("line {i:02} 34567890123");
        }
    });
    assert!(lines.is_empty(), "nothing on stderr: {lines:?}");
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["patroni.log", "patroni.log.1", "patroni.log.2"]);
    // A write that would reach file_size rotates first: 4 lines (80 bytes) per file.
    assert_eq!(read("patroni.log").lines().count(), 2);
    assert!(read("patroni.log").starts_with("line 28 "));
    assert_eq!(read("patroni.log.1").lines().count(), 4);
    assert!(read("patroni.log.1").starts_with("line 24 "));
    assert!(read("patroni.log.2").starts_with("line 20 "));
    for name in &names {
        assert!(std::fs::metadata(dir.path().join(name)).unwrap().len() < 100);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("patroni.log")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }
}

#[test]
fn reconfigure_moves_between_stderr_and_dir() {
    let dir = tempfile::tempdir().unwrap();
    let to_dir = LogConfig {
        dir: Some(dir.path().to_str().unwrap().to_owned()),
        format: Some(json!("%(message)s")),
        ..LogConfig::default()
    };
    let missing = LogConfig { dir: Some(dir.path().join("nope").to_str().unwrap().to_owned()), ..LogConfig::default() };
    let lines = capture_with(&LogConfig { format: Some(json!("%(message)s")), ..LogConfig::default() }, |handle| {
        tracing::info!("to stderr");
        assert!(handle.flush(Duration::from_secs(10)));
        handle.reconfigure(Some(&to_dir)).unwrap();
        tracing::info!("to file");
        let err = handle.reconfigure(Some(&missing)).unwrap_err();
        assert!(err.to_string().contains("nope/patroni.log"), "{err}");
        tracing::info!("still to file");
        assert!(handle.flush(Duration::from_secs(10)));
        handle.reconfigure(None).unwrap();
        tracing::info!("back to stderr");
    });
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], "to stderr");
    assert!(lines[1].ends_with(" INFO: back to stderr"));
    assert_eq!(std::fs::read_to_string(dir.path().join("patroni.log")).unwrap(), "to file\nstill to file\n");
}

/// A writer that blocks until released, standing for a stuck stderr pipe.
struct Gate(Arc<(Mutex<bool>, std::sync::Condvar)>, Buf);

impl Write for Gate {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let (m, cv) = &*self.0;
        let mut open = m.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
        self.1.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn full_queue_drops_and_reports_lost_records() {
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let buf = Buf::default();
    let config =
        LogConfig { format: Some(json!("%(levelname)s %(message)s")), max_queue_size: Some(3), ..LogConfig::default() };
    let (layer, handle) = build_with_stderr(Some(&config), Box::new(Gate(gate.clone(), buf.clone()))).unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!("first");
        // Let the writer take "first" and block on the gate.
        let t0 = std::time::Instant::now();
        while handle.queue_size() > 0 && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        for i in 0..10 {
            tracing::info!("burst {i}");
        }
        assert_eq!(handle.queue_size(), 3);
        assert_eq!(handle.records_lost(), 7);
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        assert!(handle.flush(Duration::from_secs(10)));
        tracing::info!("after");
    });
    handle.shutdown(Duration::from_secs(10));
    assert_eq!(
        buf.lines(),
        [
            "INFO first",
            "INFO burst 0",
            "INFO burst 1",
            "INFO burst 2",
            "INFO after",
            "WARNING QueueHandler has lost 7 log records",
        ]
    );
}

#[test]
fn span_names_are_func_names() {
    let config = LogConfig {
        level: Some(LogLevel::Debug),
        format: Some(json!("%(funcName)s %(module)s %(filename)s: %(message)s")),
        ..LogConfig::default()
    };
    let lines = capture(&config, || {
        tracing::info_span!("run_cycle").in_scope(|| tracing::info!("in span"));
        tracing::info!("outside");
    });
    assert_eq!(lines, ["run_cycle logging logging.rs: in span", "(unknown function) logging logging.rs: outside",]);
}

/// The only test that installs the global subscriber: once per process.
#[test]
fn init_installs_once_and_reconfigures_globally() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        dir: Some(dir.path().to_str().unwrap().to_owned()),
        format: Some(json!("%(levelname)s %(message)s")),
        ..LogConfig::default()
    };
    // A thread of its own, so no scoped subscriber of another test is in the way.
    std::thread::spawn(move || {
        let handle = logging::init(Some(&config)).unwrap();
        tracing::info!("global");
        tracing::debug!("global debug hidden");
        handle.reconfigure(Some(&LogConfig { level: Some(LogLevel::Debug), ..config.clone() })).unwrap();
        tracing::debug!("global debug shown");
        let again = logging::init(None).unwrap_err();
        assert!(matches!(again, logging::LoggingError::AlreadyInitialized(_)), "{again}");
        handle.shutdown(Duration::from_secs(10));
        tracing::info!("written directly after shutdown");
    })
    .join()
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("patroni.log")).unwrap(),
        "INFO global\nDEBUG global debug shown\nINFO written directly after shutdown\n"
    );
}
