//! Building a replica: `create_replica_methods` in order (`basebackup` built in, others user scripts called with
//! `--scope --role=replica --datadir --connstring` and their own `--key=value` options), falling back to the next
//! method when one fails.

use std::time::Duration;

use crate::binaries::Tool;
use crate::command::Cmd;
use crate::conninfo::ConnParams;
use crate::error::{Error, Result};
use crate::instance::{Postgres, ReplicaMethod};

/// pg_basebackup options Patroni sets itself (or that would produce something that is not a data directory).
const BASEBACKUP_NOT_ALLOWED: &[&str] = &[
    "pgdata",
    "format",
    "wal-method",
    "xlog-method",
    "gzip",
    "version",
    "dbname",
    "host",
    "port",
    "username",
    "password",
];

const BASEBACKUP_ATTEMPTS: u32 = 2;
const BASEBACKUP_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// Python-like truthiness of an option value (`no_leader: 1`, `keep_data: True`).
fn truthy(v: &str) -> bool {
    !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false" | "no" | "off" | "none")
}

impl ReplicaMethod {
    /// From the method's configuration map, keeping key order (options are passed in that order).
    pub fn from_options(options: Vec<(String, String)>) -> Self {
        let mut m = ReplicaMethod::default();
        for (k, v) in options {
            match k.as_str() {
                "command" => m.command = Some(v),
                "no_leader" | "no_master" => {
                    m.no_leader = truthy(&v);
                    m.options.push((k, v));
                }
                "keep_data" => {
                    m.keep_data = truthy(&v);
                    m.options.push((k, v));
                }
                "no_params" => {
                    m.no_params = truthy(&v);
                    m.options.push((k, v));
                }
                _ => m.options.push((k, v)),
            }
        }
        m
    }

    /// Arguments after the command: the method's options then Patroni's own, as `--key=value`; with
    /// `no_params` only the user's options (without the special keys).
    pub fn arguments(&self, scope: &str, datadir: &str, connstring: &str) -> Vec<String> {
        let mut pairs: Vec<(String, String)> = self.options.clone();
        if self.no_params {
            pairs.retain(|(k, _)| !matches!(k.as_str(), "no_params" | "no_leader" | "no_master" | "keep_data"));
        } else {
            for (k, v) in [("scope", scope), ("role", "replica"), ("datadir", datadir), ("connstring", connstring)] {
                match pairs.iter_mut().find(|(key, _)| key == k) {
                    Some(existing) => existing.1 = v.to_string(),
                    None => pairs.push((k.to_string(), v.to_string())),
                }
            }
        }
        pairs.into_iter().map(|(k, v)| format!("--{k}={v}")).collect()
    }
}

impl Postgres {
    fn replica_method_works_without_source(&self, name: &str) -> bool {
        name != "basebackup" && self.settings.replica_methods.get(name).is_some_and(|m| m.no_leader)
    }

    /// Creates the replica's data directory from `source` (a member's host/port/dbname; the replication role's
    /// credentials are added) or, with `None`, only with methods marked `no_leader`. Returns the method that
    /// succeeded. `basebackup_only` is `patronictl reinit --from-leader`.
    pub async fn create_replica(&mut self, source: Option<&ConnParams>, basebackup_only: bool) -> Result<String> {
        let methods = if basebackup_only { Vec::new() } else { self.settings.create_replica_methods.clone() };
        self.create_replica_using(source, &methods).await
    }

    /// [`Postgres::create_replica`] with an explicit method list, e.g. `standby_cluster.create_replica_methods`
    /// for a standby leader; an empty list means `basebackup`. Methods are configured under their names in
    /// [`crate::PgSettings::replica_methods`].
    pub async fn create_replica_using(&mut self, source: Option<&ConnParams>, methods: &[String]) -> Result<String> {
        if self.is_running() {
            return Err(Error::State("cannot create a replica while PostgreSQL is running".into()));
        }
        let mut methods = if methods.is_empty() { vec!["basebackup".to_string()] } else { methods.to_vec() };
        let (connstring, pgpass) = match source {
            Some(src) => {
                let mut p = ConnParams::for_role(
                    src.get("host").unwrap_or(""),
                    src.get("port").and_then(|p| p.parse().ok()).unwrap_or(5432),
                    src.get("dbname").unwrap_or(&self.settings.database),
                    &self.settings.replication,
                );
                let pgpass = self.files.write_pgpass(&p)?;
                p.remove("password");
                (p.to_dsn(), pgpass)
            }
            None => {
                methods.retain(|m| self.replica_method_works_without_source(m));
                (String::new(), false)
            }
        };
        if methods.is_empty() {
            return Err(Error::State(
                "no replica creation method works without a source to clone from (no_leader)".into(),
            ));
        }
        let mut errors = Vec::new();
        for method in &methods {
            let result = if method == "basebackup" {
                self.basebackup(&connstring, pgpass).await
            } else {
                self.custom_replica_method(method, &connstring, pgpass).await
            };
            match result {
                Ok(()) => {
                    tracing::info!("replica has been created using {method}");
                    self.files.restore_backups()?;
                    return Ok(method.clone());
                }
                Err(e) => {
                    tracing::error!("Error creating replica using method {method}: {e}");
                    errors.push(format!("{method}: {e}"));
                }
            }
        }
        Err(Error::State(format!("all replica creation methods failed: {}", errors.join("; "))))
    }

    async fn basebackup(&self, connstring: &str, pgpass: bool) -> Result<()> {
        for opt in &self.settings.basebackup {
            let name = opt.trim_start_matches('-').split('=').next().unwrap_or("");
            let client_compress = name == "compress" && !opt.contains("=server");
            if BASEBACKUP_NOT_ALLOWED.contains(&name) || client_compress {
                return Err(Error::Config(format!("{name} option for basebackup is not allowed")));
            }
        }
        let mut last = Error::State("pg_basebackup was not run".into());
        for attempt in 1..=BASEBACKUP_ATTEMPTS {
            if !self.data_directory_empty() {
                self.remove_data_directory()?;
            }
            let mut cmd = self
                .settings
                .binaries
                .cmd(Tool::PgBasebackup)?
                .arg(format!("--pgdata={}", self.settings.data_dir.display()))
                .args(["-X", "stream"])
                .arg(format!("--dbname={connstring}"))
                .args(&self.settings.basebackup);
            if pgpass {
                cmd = cmd.env("PGPASSFILE", &self.files.pgpass);
            }
            if let Some(t) = self.settings.replica_creation_timeout {
                cmd = cmd.timeout(t);
            }
            match cmd.run().await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    tracing::error!("Error when fetching backup: {e}");
                    last = e;
                }
            }
            if attempt < BASEBACKUP_ATTEMPTS {
                tracing::warn!("Trying again in {} seconds", BASEBACKUP_RETRY_PAUSE.as_secs());
                tokio::time::sleep(BASEBACKUP_RETRY_PAUSE).await;
            }
        }
        if !self.data_directory_empty() {
            self.remove_data_directory()?;
        }
        Err(last)
    }

    async fn custom_replica_method(&self, name: &str, connstring: &str, pgpass: bool) -> Result<()> {
        let method = self.settings.replica_methods.get(name).cloned().unwrap_or_default();
        if !self.data_directory_empty() {
            if method.keep_data {
                tracing::info!("Leaving data directory uncleaned");
            } else {
                self.remove_data_directory()?;
            }
        }
        let command = method.command.clone().unwrap_or_else(|| name.to_string());
        let datadir = self.settings.data_dir.display().to_string();
        let mut cmd =
            Cmd::from_command_line(&command)?.args(method.arguments(&self.settings.scope, &datadir, connstring));
        if pgpass {
            cmd = cmd.env("PGPASSFILE", &self.files.pgpass);
        }
        if let Some(t) = self.settings.replica_creation_timeout {
            cmd = cmd.timeout(t);
        }
        let result = cmd.run().await.map(|_| ());
        if result.is_err() && !method.keep_data && !self.data_directory_empty() {
            self.remove_data_directory()?;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn documented_arguments() {
        let m = ReplicaMethod::from_options(kv(&[
            ("command", "/usr/bin/wale_restore"),
            ("no_leader", "1"),
            ("envdir", "/etc/env"),
            ("use_iam", "1"),
        ]));
        assert_eq!(m.command.as_deref(), Some("/usr/bin/wale_restore"));
        assert!(m.no_leader && !m.keep_data && !m.no_params);
        assert_eq!(
            m.arguments("demo", "/data", "dbname=postgres user=rep host=h port=5432"),
            vec![
                "--no_leader=1",
                "--envdir=/etc/env",
                "--use_iam=1",
                "--scope=demo",
                "--role=replica",
                "--datadir=/data",
                "--connstring=dbname=postgres user=rep host=h port=5432",
            ]
        );
        let np = ReplicaMethod::from_options(kv(&[("command", "x"), ("keep_data", "True"), ("no_params", "True")]));
        assert!(np.keep_data && np.no_params);
        assert!(np.arguments("demo", "/data", "").is_empty());
        assert!(!truthy("false") && truthy("yes"));
    }
}
