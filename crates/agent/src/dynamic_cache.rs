//! `<data_dir>/patroni.dynamic.json`: the last dynamic configuration seen, kept where Patroni keeps it.
//!
//! Patroni reads the file at start, so the DCS client's timeouts and the first decisions use the cluster's
//! configuration rather than `bootstrap.dcs` until the DCS answers (and keep using it if the DCS answers without
//! a `config` key). It writes the file whenever the configuration changes, once the data directory holds a
//! cluster. The contents are `json.dumps` of the DCS `config` value, with the timeouts Patroni adjusted
//! (`ttl` below 20 and the like) written back, exactly as Python Patroni leaves the file, so either
//! implementation can start from the other's cache.

use std::io::Write;
use std::path::{Path, PathBuf};

use patroni_config::DynamicConfig;
use serde_json::{Map, Value};
use tracing::error;

/// The file name Patroni uses, and the prefix of its temporary files.
pub const FILE_NAME: &str = "patroni.dynamic.json";

/// The cache of one data directory: what was read at start and what was last written.
#[derive(Debug)]
pub struct DynamicCache {
    data_dir: PathBuf,
    /// The value written last (or read at start): rewritten only when the configuration differs.
    saved: Option<Map<String, Value>>,
    /// What the file held at start.
    initial: Option<DynamicConfig>,
}

impl DynamicCache {
    /// Reads the cache of `data_dir`. A file that cannot be read or is not a JSON object is reported (in
    /// Patroni's words) and ignored.
    pub fn load(data_dir: &Path) -> DynamicCache {
        let path = data_dir.join(FILE_NAME);
        let saved = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(m)) => Some(m),
                Ok(_) => {
                    error!(traceback = "not a JSON object", "Exception when loading file: {}", path.display());
                    None
                }
                Err(e) => {
                    error!(traceback = %e, "Exception when loading file: {}", path.display());
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                error!(traceback = %e, "Exception when loading file: {}", path.display());
                None
            }
        };
        let initial = saved.as_ref().map(|m| {
            let (dynamic, problems) = DynamicConfig::from_value_lossy(&Value::Object(m.clone()));
            for p in problems {
                tracing::warn!("{}: {p}", path.display());
            }
            dynamic
        });
        DynamicCache { data_dir: data_dir.to_owned(), saved, initial }
    }

    /// The configuration read at start, if the file held one.
    pub fn initial(&self) -> Option<DynamicConfig> {
        self.initial.clone()
    }

    /// Records the DCS `config` value: written to the file when it differs from the last one written and the
    /// data directory holds a cluster (before that the directory belongs to initdb or a base backup). A
    /// failed write is logged and tried again on the next call.
    pub fn store(&mut self, config: &Map<String, Value>) {
        let value = with_adjusted_timeouts(config);
        if self.saved.as_ref() == Some(&value) || !self.data_dir.join("PG_VERSION").is_file() {
            return;
        }
        let path = self.data_dir.join(FILE_NAME);
        match write_atomically(&self.data_dir, &path, &patroni_pycompat::json_dumps(&value)) {
            Ok(()) => self.saved = Some(value),
            Err(e) => error!(traceback = %e, "Exception when saving file: {}", path.display()),
        }
    }
}

/// The value with the timeouts Patroni changes in place when it accepts a configuration (minimums, and
/// `loop_wait + 2*retry_timeout <= ttl`): only the keys it changes, each where the value had it (or last).
fn with_adjusted_timeouts(config: &Map<String, Value>) -> Map<String, Value> {
    let (dynamic, _) = DynamicConfig::from_value_lossy(&Value::Object(config.clone()));
    let raw = dynamic.raw_timeouts();
    let adjusted = dynamic.timeouts();
    let mut out = config.clone();
    for (key, before, after) in [
        ("loop_wait", raw.loop_wait, adjusted.loop_wait),
        ("retry_timeout", raw.retry_timeout, adjusted.retry_timeout),
        ("ttl", raw.ttl, adjusted.ttl),
    ] {
        if before != after {
            out.insert(key.to_owned(), Value::from(after));
        }
    }
    out
}

/// A temporary file beside `path` (its name + random suffix, as mkstemp names it), renamed over it, so a reader
/// never sees half a file; then the mode PostgreSQL gives files in that directory.
pub(crate) fn write_atomically(dir: &Path, path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let prefix = path.file_name().unwrap_or(std::ffi::OsStr::new(FILE_NAME));
    let mut tmp = tempfile::Builder::new().prefix(prefix).rand_bytes(8).tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // Group access follows the data directory's (initdb --allow-group-access makes it 0750, files 0640).
    let dir_mode = std::fs::metadata(dir)?.permissions().mode();
    let mode = if dir_mode & 0o750 == 0o750 { 0o640 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn written_as_python_json_dumps_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(dir.path().join("PG_VERSION"), "15\n").unwrap();
        let mut cache = DynamicCache::load(dir.path());
        assert!(cache.initial().is_none());
        let config = obj(json!({"ttl": 30, "loop_wait": 10, "postgresql": {"parameters": {"max_connections": 100}}}));
        cache.store(&config);
        let path = dir.path().join(FILE_NAME);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            r#"{"ttl": 30, "loop_wait": 10, "postgresql": {"parameters": {"max_connections": 100}}}"#
        );
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().filter_map(Result::ok).collect();
        assert_eq!(leftovers.len(), 2, "no temporary file left: {leftovers:?}");

        // At the next start the cached configuration is the effective one.
        let reloaded = DynamicCache::load(dir.path());
        let initial = reloaded.initial().unwrap();
        assert_eq!(initial.ttl(), 30);
        assert_eq!(initial.loop_wait(), 10);
    }

    #[test]
    fn timeouts_are_written_as_patroni_adjusts_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("PG_VERSION"), "15\n").unwrap();
        let mut cache = DynamicCache::load(dir.path());
        cache.store(&obj(json!({"ttl": 10, "loop_wait": 10, "retry_timeout": 10})));
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        // ttl raised to 20; loop_wait + 2*retry_timeout <= ttl then needs loop_wait 1, retry_timeout 9.
        assert_eq!(text, r#"{"ttl": 20, "loop_wait": 1, "retry_timeout": 9}"#);
    }

    #[test]
    fn nothing_is_written_before_the_data_directory_holds_a_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = DynamicCache::load(dir.path());
        cache.store(&obj(json!({"ttl": 30})));
        assert!(!dir.path().join(FILE_NAME).exists());
        std::fs::write(dir.path().join("PG_VERSION"), "15\n").unwrap();
        cache.store(&obj(json!({"ttl": 30})));
        assert!(dir.path().join(FILE_NAME).exists());
    }

    #[test]
    fn bad_contents_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["{not json", "[1, 2]", ""] {
            std::fs::write(dir.path().join(FILE_NAME), bad).unwrap();
            assert!(DynamicCache::load(dir.path()).initial().is_none(), "{bad:?}");
        }
    }
}
