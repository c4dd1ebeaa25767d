//! Bootstrapping a new cluster: `initdb` (or a custom bootstrap method), first start, roles, `post_bootstrap`.
//! A failed bootstrap stops what it started and moves the half-made data directory aside; nothing is deleted.

use std::time::Duration;

use crate::binaries::Tool;
use crate::command::Cmd;
use crate::conf::RecoverySettings;
use crate::conninfo::Credentials;
use crate::error::{Error, Result};
use crate::instance::{Postgres, Role};
use crate::parameters::Parameters;
use crate::postmaster::{StartOutcome, StopMode};
use crate::query::{quote_ident, quote_literal, Db};

/// initdb options Patroni decides itself.
const INITDB_NOT_ALLOWED: &[&str] = &["pgdata", "nosync", "pwfile", "sync-only", "version"];

/// `bootstrap.method` other than initdb.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomBootstrap {
    /// Command line, run with `--scope=… --datadir=…` unless `no_params`.
    pub command: String,
    pub no_params: bool,
    /// Keep the recovery configuration (signal files, settings) the method produced.
    pub keep_existing_recovery_conf: bool,
    /// Recovery settings to start with (typically a `recovery_target_*` and `recovery_target_action: promote`).
    pub recovery_conf: Option<Parameters>,
    /// Other keys, passed as `--key=value`.
    pub options: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapMethod {
    /// `bootstrap.initdb` as `--flag` / `--key=value` arguments (see [`tool_options`]).
    Initdb(Vec<String>),
    Custom(CustomBootstrap),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapSettings {
    pub method: BootstrapMethod,
    /// `bootstrap.post_bootstrap` / `post_init`: called with a connection string.
    pub post_bootstrap: Option<String>,
    /// Bound for initdb / the custom command / post_bootstrap, each.
    pub timeout: Duration,
    /// Bound for the new cluster to leave recovery (custom methods restoring a backup can take long).
    pub recovery_timeout: Duration,
}

impl BootstrapSettings {
    pub fn initdb(options: Vec<String>) -> Self {
        BootstrapSettings {
            method: BootstrapMethod::Initdb(options),
            post_bootstrap: None,
            timeout: Duration::from_secs(600),
            recovery_timeout: Duration::from_secs(3600),
        }
    }
}

/// Turns `initdb`/`basebackup` options written as strings (`data-checksums`) or single-key maps
/// (`encoding: UTF8`) into `--data-checksums` / `--encoding=UTF8`. Surrounding quotes in values are removed as
/// Patroni does. Options in `not_allowed` (Patroni sets them itself) are an error naming the option.
pub fn tool_options(tool: &str, value: &serde_json::Value, not_allowed: &[&str]) -> Result<Vec<String>> {
    use serde_json::Value;
    let scalar = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(unquote(s)),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    };
    let check = |name: &str| -> Result<()> {
        if not_allowed.contains(&name) {
            Err(Error::Config(format!("{name} option for {tool} is not allowed")))
        } else {
            Ok(())
        }
    };
    let mut out = Vec::new();
    match value {
        Value::Null => {}
        Value::Object(m) => {
            for (k, v) in m {
                check(k)?;
                match scalar(v) {
                    Some(s) if !s.is_empty() => out.push(format!("--{k}={s}")),
                    _ => {}
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::String(s) => {
                        check(s)?;
                        out.push(format!("--{s}"));
                    }
                    Value::Object(m) if m.len() == 1 => {
                        for (k, v) in m {
                            check(k)?;
                            let s = scalar(v)
                                .ok_or_else(|| Error::Config(format!("{tool} option {k}: value should be a string")))?;
                            out.push(format!("--{k}={s}"));
                        }
                    }
                    other => {
                        return Err(Error::Config(format!(
                            "{tool} option {other}: expected a string or a single key-value pair"
                        )))
                    }
                }
            }
        }
        other => return Err(Error::Config(format!("{tool} options must be a list or a map, got {other}"))),
    }
    Ok(out)
}

fn unquote(s: &str) -> String {
    match crate::command::shell_split(s) {
        Some(words) if words.len() == 1 && (s.starts_with('"') || s.starts_with('\'')) => words[0].clone(),
        _ => s.to_string(),
    }
}

/// `initdb` option validation for already-formatted arguments.
pub fn check_initdb_options(options: &[String]) -> Result<()> {
    for o in options {
        let name = o.trim_start_matches('-').split('=').next().unwrap_or("");
        if INITDB_NOT_ALLOWED.contains(&name) {
            return Err(Error::Config(format!("{name} option for initdb is not allowed")));
        }
    }
    Ok(())
}

/// Creates the role or, when it exists, updates its options and password. Statement logging is switched off
/// around it so that the password does not reach the server log.
pub async fn create_or_update_role(db: &Db, name: &str, password: Option<&str>, options: &[&str]) -> Result<()> {
    let mut opts: Vec<String> = options.iter().map(|o| o.to_uppercase()).collect();
    if !opts.iter().any(|o| o == "LOGIN" || o == "NOLOGIN") {
        opts.push("LOGIN".into());
    }
    if let Some(pw) = password {
        opts.push("PASSWORD".into());
        opts.push(quote_literal(pw));
    }
    let sql = format!(
        "DO $$\nBEGIN\n    SET local synchronous_commit = 'local';\n    PERFORM * FROM pg_catalog.pg_authid WHERE \
         rolname = {lit};\n    IF FOUND THEN\n        ALTER ROLE {ident} WITH {opts};\n    ELSE\n        CREATE ROLE \
         {ident} WITH {opts};\n    END IF;\nEND;$$",
        lit = quote_literal(name),
        ident = quote_ident(name),
        opts = opts.join(" ")
    );
    db.execute(
        "SET log_statement TO none; SET log_min_duration_statement TO -1; SET log_min_error_statement TO 'log'; \
         SET pg_stat_statements.track_utility TO off; SET pgaudit.log TO none",
    )
    .await?;
    let result = db.execute(&sql).await;
    let reset = db
        .execute(
            "RESET log_min_error_statement; RESET log_min_duration_statement; RESET log_statement; \
             RESET pg_stat_statements.track_utility; RESET pgaudit.log",
        )
        .await;
    result?;
    reset
}

/// The functions pg_rewind needs on the source, granted to a dedicated rewind role.
const REWIND_FUNCTIONS: &[&str] = &[
    "pg_ls_dir(text, boolean, boolean)",
    "pg_stat_file(text, boolean)",
    "pg_read_binary_file(text)",
    "pg_read_binary_file(text, bigint, bigint, boolean)",
];

impl Postgres {
    /// Creates a new cluster and starts it as the primary, with the configured roles and `post_bootstrap` done.
    /// On failure PostgreSQL is stopped and the data directory moved aside (its new name is in the log).
    pub async fn bootstrap(&mut self, bootstrap: &BootstrapSettings) -> Result<()> {
        if let Err(e) = std::fs::read_dir(&self.settings.data_dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(Error::DataDir { path: self.settings.data_dir.clone(), detail: e.to_string() });
            }
        }
        if !self.data_directory_empty() {
            return Err(Error::DataDir {
                path: self.settings.data_dir.clone(),
                detail: "is not empty; refusing to bootstrap over existing data".into(),
            });
        }
        match self.bootstrap_steps(bootstrap).await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::error!("bootstrap failed: {e}");
                if self.is_running() {
                    if let Err(stop) = self.stop_inner(StopMode::Immediate, None).await {
                        tracing::error!("stopping PostgreSQL after failed bootstrap: {stop}");
                    }
                }
                match self.move_data_directory_aside() {
                    Ok(Some(p)) => tracing::warn!("the failed bootstrap's data directory is kept as {}", p.display()),
                    Ok(None) => {}
                    Err(mv) => tracing::error!("moving the failed bootstrap's data directory aside: {mv}"),
                }
                self.role = Role::Uninitialized;
                self.trust_local_access = false;
                Err(e)
            }
        }
    }

    async fn bootstrap_steps(&mut self, bootstrap: &BootstrapSettings) -> Result<()> {
        let custom = match &bootstrap.method {
            BootstrapMethod::Initdb(options) => {
                self.run_initdb(options, bootstrap.timeout).await?;
                None
            }
            BootstrapMethod::Custom(c) => {
                self.run_custom_bootstrap(c, bootstrap.timeout).await?;
                Some(c)
            }
        };
        self.files.save_backups()?;

        let outcome = match custom {
            None => self.start_inner(None, false, Some(crate::CallbackAction::OnStart)).await?,
            Some(c) => {
                // The superuser password of a restored backup is unknown: let the local superuser and replication
                // user in without one until the roles are (re)created, then put the configured pg_hba.conf back.
                self.trust_local_access = true;
                let recovery = c.recovery_conf.as_ref().map(RecoverySettings::from_recovery_conf);
                let keep = c.keep_existing_recovery_conf && recovery.is_none();
                // Patroni's rule: the tool's own recovery configuration is trusted to do the right thing; a target
                // that promotes when reached must not stop at a hot-standby check on the way.
                let promotes = c.recovery_conf.as_ref().is_some_and(|r| {
                    let pause = r.get("pause_at_recovery_target").map(|v| crate::parameters::parse_bool(v));
                    let default = if pause == Some(Some(false)) { "promote" } else { "pause" };
                    r.get("recovery_target_action").map_or(default, String::as_str) == "promote"
                });
                self.custom_bootstrap_without_hot_standby = keep || promotes;
                let started = self.start_inner(recovery, keep, Some(crate::CallbackAction::OnStart)).await;
                self.custom_bootstrap_without_hot_standby = false;
                let started = started?;
                self.role = Role::Primary;
                started
            }
        };
        if outcome != StartOutcome::Ready {
            self.wait_accepting(bootstrap.recovery_timeout).await?;
        }
        if custom.is_some() {
            self.wait_until_promoted(bootstrap.recovery_timeout).await?;
        }
        self.post_bootstrap(bootstrap).await?;
        if custom.is_some() {
            self.trust_local_access = false;
            // Back to the configured access rules and recovery settings of a plain primary.
            self.files.remove_recovery_signals()?;
            if self.settings.pg_hba.is_empty() {
                self.files.restore_backups()?;
                let hba = self.files.pg_hba_conf();
                let backup = self.settings.data_dir.join("pg_hba.conf.backup");
                if backup.is_file() {
                    std::fs::copy(&backup, &hba).map_err(|e| Error::io(&hba, e))?;
                }
            }
            self.write_config(None, false)?;
            self.reload().await?;
        }
        self.role = Role::Primary;
        Ok(())
    }

    async fn run_initdb(&self, options: &[String], timeout: Duration) -> Result<()> {
        check_initdb_options(options)?;
        self.ensure_data_dir()?;
        let mut cmd = self
            .settings
            .binaries
            .cmd(Tool::Initdb)?
            .arg("-D")
            .arg(&self.settings.data_dir)
            .args(options)
            .timeout(timeout);
        let su = &self.settings.superuser;
        if !su.username.is_empty() {
            cmd = cmd.arg(format!("--username={}", su.username));
        }
        // Kept (and removed on drop) until initdb has read it; mkstemp semantics, mode 0600.
        let _pwfile = match &su.password {
            Some(pw) => {
                use std::io::Write;
                let mut f = tempfile::Builder::new()
                    .prefix("patroni-initdb-pw-")
                    .tempfile()
                    .map_err(|e| Error::io(std::env::temp_dir(), e))?;
                f.write_all(pw.as_bytes()).map_err(|e| Error::io(f.path(), e))?;
                f.flush().map_err(|e| Error::io(f.path(), e))?;
                cmd = cmd.arg(format!("--pwfile={}", f.path().display()));
                Some(f)
            }
            None => None,
        };
        cmd.run().await.map(|_| ())
    }

    async fn run_custom_bootstrap(&self, c: &CustomBootstrap, timeout: Duration) -> Result<()> {
        // The data directory is the tool's to create, as with Patroni: tools that copy or restore a backup into
        // place often refuse a directory that already exists.
        let mut cmd = Cmd::from_command_line(&c.command)?.timeout(timeout);
        if !c.no_params {
            cmd = cmd
                .arg(format!("--scope={}", self.settings.scope))
                .arg(format!("--datadir={}", self.settings.data_dir.display()));
        }
        for (k, v) in &c.options {
            if !matches!(
                k.as_str(),
                "command" | "no_params" | "keep_existing_recovery_conf" | "recovery_conf" | "scope" | "datadir"
            ) {
                cmd = cmd.arg(format!("--{k}={v}"));
            }
        }
        tracing::info!("running custom bootstrap script: {}", c.command);
        cmd.run().await?;
        if !self.is_initialized() {
            return Err(Error::State(format!(
                "custom bootstrap script `{}` succeeded but left no PostgreSQL data directory in {}",
                c.command,
                self.settings.data_dir.display()
            )));
        }
        self.restrict_data_dir_mode()?;
        self.files.restore_backups()?;
        // A leftover promote trigger would promote the restored instance behind our back.
        let trigger = self.settings.data_dir.join("promote");
        if trigger.exists() {
            std::fs::remove_file(&trigger).map_err(|e| Error::io(&trigger, e))?;
        }
        Ok(())
    }

    /// PostgreSQL refuses to start on a data directory that others than its owner and group may read (or its
    /// group may write); a tool that created it with the process umask (often 0755) would fail the first start
    /// with nothing for the DBA to act on. Tightened to 0700, as initdb makes it.
    fn restrict_data_dir_mode(&self) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = &self.settings.data_dir;
        let mode = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?.permissions().mode() & 0o7777;
        if mode & 0o027 != 0 {
            tracing::warn!("data directory {} was created with mode {mode:04o}; setting 0700", dir.display());
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| Error::io(dir, e))?;
        }
        Ok(())
    }

    pub(crate) fn write_trust_hba(&self) -> Result<()> {
        let su = if self.settings.superuser.username.is_empty() { "all" } else { &self.settings.superuser.username };
        let repl = &self.settings.replication.username;
        let host = self.local_conn_params().get("host").unwrap_or("127.0.0.1").to_string();
        let mut lines = vec![format!("local\treplication\t{repl}\t\ttrust"), format!("local\tall\t{su}\t\ttrust")];
        if !host.starts_with('/') {
            let cidr = if host.contains(':') { format!("{host}/128") } else { format!("{host}/32") };
            lines.push(format!("host\treplication\t{repl}\t{cidr}\ttrust"));
            lines.push(format!("host\tall\t{su}\t{cidr}\ttrust"));
        }
        self.files.write_pg_hba(&lines)
    }

    async fn wait_accepting(&self, timeout: Duration) -> Result<()> {
        let pm = self.postmaster.as_ref().ok_or_else(|| Error::State("PostgreSQL is not running".into()))?;
        match pm.wait_ready(timeout).await? {
            StartOutcome::Ready => Ok(()),
            StartOutcome::StillStarting => {
                Err(Error::State(format!("PostgreSQL did not accept connections within {timeout:?}")))
            }
        }
    }

    async fn wait_until_promoted(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(exit) = self.crashed() {
                return Err(Error::State(format!(
                    "PostgreSQL exited during recovery of the custom bootstrap ({})",
                    exit.status.unwrap_or_default()
                )));
            }
            match self.db().await {
                Ok(db) => {
                    if let Ok(false) = db.in_recovery().await {
                        return Ok(());
                    }
                }
                // The server answered and refused us (authentication, missing database): waiting won't help. Still
                // recovering without hot standby it refuses everyone for now (57P03): that is the wait.
                Err(Error::Db(e))
                    if e.as_db_error().is_some()
                        && e.code() != Some(&tokio_postgres::error::SqlState::CANNOT_CONNECT_NOW) =>
                {
                    return Err(Error::Db(e))
                }
                Err(_) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::State(format!(
                    "the custom-bootstrapped cluster is still in recovery after {timeout:?}; check recovery_conf \
                     (recovery_target_action: promote)"
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Roles and the post_bootstrap script, on the freshly started primary.
    async fn post_bootstrap(&self, bootstrap: &BootstrapSettings) -> Result<()> {
        let su = self.settings.superuser.clone();
        {
            let db = self.db().await?;
            if !su.username.is_empty() && su.password.is_some() {
                create_or_update_role(&db, &su.username, su.password.as_deref(), &["SUPERUSER"]).await?;
            }
        }
        if let Some(script) = &bootstrap.post_bootstrap {
            self.run_post_bootstrap(script, bootstrap.timeout).await?;
        }
        let db = self.db().await?;
        let repl = &self.settings.replication;
        if !repl.username.is_empty() {
            create_or_update_role(&db, &repl.username, repl.password.as_deref(), &["REPLICATION"]).await?;
        }
        if let Some(rw) = &self.settings.rewind {
            if rw != &su && !rw.username.is_empty() {
                create_or_update_role(&db, &rw.username, rw.password.as_deref(), &[]).await?;
                for f in REWIND_FUNCTIONS {
                    db.execute(&format!(
                        "DO $$\nBEGIN\n    SET local synchronous_commit = 'local';\n    GRANT EXECUTE ON function \
                         pg_catalog.{f} TO {};\nEND;$$",
                        quote_ident(&rw.username)
                    ))
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// `script "<connection string>"`, with the password in `PGPASSFILE` rather than on the command line.
    async fn run_post_bootstrap(&self, script: &str, timeout: Duration) -> Result<()> {
        let params = self.local_conn_params();
        let mut cmd = Cmd::from_command_line(script)?
            .timeout(timeout)
            .env("PGOPTIONS", "-c synchronous_commit=local -c statement_timeout=0");
        if self.files.write_pgpass(&params)? {
            cmd = cmd.env("PGPASSFILE", &self.files.pgpass);
        }
        let mut shown = params.clone();
        shown.remove("password");
        tracing::info!("running post_bootstrap script {script}");
        cmd.arg(shown.to_dsn()).run().await.map(|_| ()).map_err(|e| match e {
            Error::CommandFailed { program, status, stderr } => {
                Error::CommandFailed { program: format!("post_bootstrap script {program}"), status, stderr }
            }
            other => other,
        })
    }
}

/// Credentials helper for callers converting from the config crate.
pub fn credentials(username: Option<&str>, password: Option<&str>, options: &[(&str, &str)]) -> Option<Credentials> {
    let username = username?;
    let mut c = Credentials::new(username, password);
    for (k, v) in options {
        c.options.insert((*k).to_string(), (*v).to_string());
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn initdb_options_strings_and_maps() {
        let v = json!(["data-checksums", {"encoding": "UTF8"}, {"locale": "\"en_US.UTF-8\""}]);
        assert_eq!(
            tool_options("initdb", &v, INITDB_NOT_ALLOWED).unwrap(),
            vec!["--data-checksums", "--encoding=UTF8", "--locale=en_US.UTF-8"]
        );
        let err = tool_options("initdb", &json!(["pgdata"]), INITDB_NOT_ALLOWED).unwrap_err();
        assert_eq!(err.to_string(), "invalid configuration: pgdata option for initdb is not allowed");
        let err = tool_options("initdb", &json!([{"a": "1", "b": "2"}]), &[]).unwrap_err();
        assert!(err.to_string().contains("single key-value"), "{err}");
        assert_eq!(
            tool_options("basebackup", &json!({"max-rate": "100M", "checkpoint": "fast"}), &[]).unwrap(),
            vec!["--max-rate=100M", "--checkpoint=fast"]
        );
        assert!(check_initdb_options(&["--pwfile=/x".into()]).is_err());
        assert!(check_initdb_options(&["--data-checksums".into()]).is_ok());
    }
}
