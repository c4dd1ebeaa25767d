//! Finding the PostgreSQL programs: `bin_dir`, per-program `bin_name` overrides, else `PATH`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::command::Cmd;
use crate::error::{Error, Result};
pub use crate::version::PgVersion;

/// The programs the agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tool {
    PgCtl,
    Initdb,
    PgControldata,
    PgBasebackup,
    Postgres,
    PgIsready,
    PgRewind,
}

impl Tool {
    pub const ALL: [Tool; 7] = [
        Tool::PgCtl,
        Tool::Initdb,
        Tool::PgControldata,
        Tool::PgBasebackup,
        Tool::Postgres,
        Tool::PgIsready,
        Tool::PgRewind,
    ];

    /// Default program name, which is also its key under `postgresql.bin_name`.
    pub fn default_name(self) -> &'static str {
        match self {
            Tool::PgCtl => "pg_ctl",
            Tool::Initdb => "initdb",
            Tool::PgControldata => "pg_controldata",
            Tool::PgBasebackup => "pg_basebackup",
            Tool::Postgres => "postgres",
            Tool::PgIsready => "pg_isready",
            Tool::PgRewind => "pg_rewind",
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.default_name())
    }
}

/// Where the binaries are; resolution is lazy so a missing `pg_rewind` only matters when a rewind is needed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binaries {
    bin_dir: Option<PathBuf>,
    names: BTreeMap<Tool, String>,
}

impl Binaries {
    /// `bin_name` keys are the program names (`pg_ctl`, `initdb`, …); the documentation's spelling
    /// `pgcontroldata` is accepted too. Unknown keys are a configuration error.
    pub fn new(bin_dir: Option<PathBuf>, bin_name: &BTreeMap<String, String>) -> Result<Self> {
        let mut names = BTreeMap::new();
        for (key, value) in bin_name {
            let tool = match key.as_str() {
                "pgcontroldata" => Tool::PgControldata,
                k => Tool::ALL
                    .into_iter()
                    .find(|t| t.default_name() == k)
                    .ok_or_else(|| Error::Config(format!("postgresql.bin_name: unknown program `{key}`")))?,
            };
            if !value.trim().is_empty() {
                names.insert(tool, value.trim().to_string());
            }
        }
        let bin_dir = bin_dir.filter(|d| !d.as_os_str().is_empty());
        Ok(Binaries { bin_dir, names })
    }

    /// Binaries found in one directory with default names (tests, simple setups).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Binaries { bin_dir: Some(dir.into()), names: BTreeMap::new() }
    }

    pub fn name(&self, tool: Tool) -> &str {
        self.names.get(&tool).map(String::as_str).unwrap_or(tool.default_name())
    }

    /// Full path of `tool`, checked to exist and be executable.
    pub fn path(&self, tool: Tool) -> Result<PathBuf> {
        let name = self.name(tool);
        match &self.bin_dir {
            Some(dir) => {
                let p = dir.join(name);
                if is_executable(&p) {
                    Ok(p)
                } else {
                    Err(Error::BinaryNotFound {
                        name: name.to_string(),
                        detail: format!("{} is missing or not executable; check postgresql.bin_dir", p.display()),
                    })
                }
            }
            None => which::which(name).map_err(|e| Error::BinaryNotFound {
                name: name.to_string(),
                detail: format!("not on PATH: {e}; set postgresql.bin_dir"),
            }),
        }
    }

    pub fn cmd(&self, tool: Tool) -> Result<Cmd> {
        Ok(Cmd::new(self.path(tool)?))
    }

    /// `postgres --version` of the installed server binary.
    pub async fn version(&self) -> Result<PgVersion> {
        let out = self.cmd(Tool::Postgres)?.arg("--version").timeout(Duration::from_secs(30)).run().await?;
        PgVersion::parse_version_output(&out.stdout)
    }

    /// [`Self::version`], refused with [`Error::UnsupportedVersion`] when older than the oldest supported major.
    pub async fn supported_version(&self) -> Result<PgVersion> {
        self.version().await?.require_supported()
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_dir_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let mut names = BTreeMap::new();
        names.insert("pg_ctl".to_string(), "my_pg_ctl".to_string());
        let b = Binaries::new(Some(dir.path().to_path_buf()), &names).unwrap();
        let err = b.path(Tool::PgCtl).unwrap_err().to_string();
        assert!(err.contains("my_pg_ctl") && err.contains("bin_dir"), "{err}");
        let script = dir.path().join("my_pg_ctl");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(b.path(Tool::PgCtl).unwrap(), script);

        names.insert("psql".to_string(), "x".to_string());
        assert!(Binaries::new(None, &names).is_err());
        names.remove("psql");
        names.insert("pgcontroldata".to_string(), "pgcd".to_string());
        assert_eq!(Binaries::new(None, &names).unwrap().name(Tool::PgControldata), "pgcd");
    }

    #[test]
    fn path_lookup() {
        let b = Binaries::new(Some(PathBuf::new()), &BTreeMap::new()).unwrap();
        assert_eq!(b.bin_dir, None);
        let mut names = BTreeMap::new();
        names.insert("postgres".to_string(), "sh".to_string());
        let b = Binaries::new(None, &names).unwrap();
        assert!(b.path(Tool::Postgres).unwrap().ends_with("sh"));
    }
}
