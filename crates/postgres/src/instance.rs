//! [`Postgres`]: one managed PostgreSQL instance, the API the HA runtime calls. It ties together the binaries,
//! the configuration files, the postmaster and the SQL connection, and fires callbacks on state changes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::Mutex;

use crate::binaries::PgVersion;
use crate::callbacks::{CallbackAction, CallbackRunner};
use crate::conf::{ConfigFiles, RecoverySettings};
use crate::conninfo::ConnParams;
use crate::controldata::ControlData;
use crate::error::{Error, Result};
use crate::parameters::{command_line_options, server_parameters, split_listen, Parameters, ServerParameters};
use crate::postmaster::{Exit, Postmaster, StartOptions, StartOutcome, StopMode, StopOutcome};
use crate::query::{ClusterInfo, Db, PendingRestart};
pub use crate::settings::{slot_name_from_member_name, PgSettings, ProcessState, ReplicaMethod, Role};
use crate::version::Features;

/// What a configuration change did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReloadOutcome {
    /// postgresql.conf (or hba/ident) changed and PostgreSQL was sent SIGHUP.
    pub reloaded: bool,
    /// PgSettings that only apply after a restart, as PostgreSQL itself reports them.
    pub pending_restart: Vec<PendingRestart>,
}

/// One managed PostgreSQL instance.
#[derive(Debug)]
pub struct Postgres {
    pub(crate) settings: PgSettings,
    pub(crate) files: ConfigFiles,
    pub(crate) version: PgVersion,
    pub(crate) server: ServerParameters,
    pub(crate) postmaster: Option<Postmaster>,
    pub(crate) db: Mutex<Option<Db>>,
    pub(crate) callbacks: CallbackRunner,
    pub(crate) role: Role,
    /// Recovery settings the running server was (last) configured with; `None` as a primary.
    pub(crate) recovery: Option<RecoverySettings>,
    /// During a custom bootstrap pg_hba.conf temporarily trusts the local superuser and replication user.
    pub(crate) trust_local_access: bool,
    /// A custom bootstrap recovering to a target with `recovery_target_action: promote` (or keeping the tool's
    /// recovery configuration) is running: its standby start goes without hot standby.
    pub(crate) custom_bootstrap_without_hot_standby: bool,
    /// `synchronous_standby_names` decided by the HA loop (synchronous mode); survives configuration updates.
    pub(crate) synchronous_standby_names: Option<String>,
}

impl Postgres {
    /// Reads the server version from the binaries (`postgres --version`); fails clearly when they are missing or
    /// older than the oldest supported major.
    pub async fn new(settings: PgSettings) -> Result<Self> {
        let version = settings.binaries.supported_version().await?;
        Ok(Self::with_version(settings, version))
    }

    pub fn with_version(settings: PgSettings, version: PgVersion) -> Self {
        let files = settings.config_files();
        let server =
            server_parameters(&settings.parameters, &settings.listen, &settings.scope, version, &files.config_dir);
        Postgres {
            files,
            version,
            server,
            postmaster: None,
            db: Mutex::new(None),
            callbacks: CallbackRunner::new(),
            role: Role::Uninitialized,
            recovery: None,
            trust_local_access: false,
            custom_bootstrap_without_hot_standby: false,
            synchronous_standby_names: None,
            settings,
        }
    }

    pub fn settings(&self) -> &PgSettings {
        &self.settings
    }

    pub fn version(&self) -> PgVersion {
        self.version
    }

    /// What the server's major version can do: the one thing to ask instead of comparing versions.
    pub fn features(&self) -> Features {
        self.version.features()
    }

    pub fn data_dir(&self) -> &Path {
        &self.settings.data_dir
    }

    pub fn config_files(&self) -> &ConfigFiles {
        &self.files
    }

    pub fn server_parameters(&self) -> &Parameters {
        &self.server.parameters
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Overrides the role callbacks report (e.g. `standby_leader`, `demoted`), decided by the HA loop.
    pub fn set_role(&mut self, role: Role) {
        self.role = role;
    }

    pub fn postmaster(&self) -> Option<&Postmaster> {
        self.postmaster.as_ref()
    }

    pub fn is_running(&self) -> bool {
        self.postmaster.as_ref().is_some_and(Postmaster::is_alive)
    }

    /// Fires when the postmaster exits; `None` when nothing is running.
    pub fn exit_watch(&self) -> Option<tokio::sync::watch::Receiver<Option<Exit>>> {
        self.postmaster.as_ref().map(Postmaster::watch)
    }

    /// Stopped / starting / running / crashed, from the postmaster handle and `postmaster.pid`'s status line.
    pub fn process_state(&self) -> ProcessState {
        match &self.postmaster {
            None => ProcessState::Stopped,
            Some(pm) => match pm.exit() {
                Some(exit) if exit.is_crash() => ProcessState::Crashed,
                Some(_) => ProcessState::Stopped,
                None => match crate::postmaster::PidFile::read(&self.settings.data_dir) {
                    Ok(Some(pf)) if matches!(pf.status.as_deref(), Some("ready") | Some("standby")) => {
                        ProcessState::Running
                    }
                    _ => ProcessState::Starting,
                },
            },
        }
    }

    /// `Some` when the postmaster we managed died without being asked to: the crash report.
    pub fn crashed(&self) -> Option<Exit> {
        self.postmaster.as_ref().and_then(Postmaster::exit).filter(Exit::is_crash)
    }

    /// A signal file (or a `recovery.conf`) says the next start is a standby's.
    pub fn recovery_configured(&self) -> bool {
        self.files.recovery_signals().iter().any(|p| p.exists())
    }

    /// Marks a primary that cannot come back (it failed to start) as `demoted` and fires `on_role_change` with it.
    pub fn mark_demoted(&mut self) {
        self.role = Role::Demoted;
        self.fire(CallbackAction::OnRoleChange);
    }

    /// No data directory, or an empty one.
    pub fn data_directory_empty(&self) -> bool {
        match std::fs::read_dir(&self.settings.data_dir) {
            Ok(mut it) => it.next().is_none(),
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        }
    }

    /// A data directory with `PG_VERSION` and `global/pg_control`.
    pub fn is_initialized(&self) -> bool {
        self.settings.data_dir.join("PG_VERSION").is_file()
            && self.settings.data_dir.join("global/pg_control").is_file()
    }

    pub async fn controldata(&self) -> Result<ControlData> {
        ControlData::read(&self.settings.binaries, &self.settings.data_dir).await
    }

    /// Port PostgreSQL listens on.
    pub fn port(&self) -> u16 {
        split_listen(&self.settings.listen).1
    }

    /// Host used for local TCP connections: `localhost`-ish when listening there, else the first address.
    fn local_tcp_host(&self) -> String {
        let (addresses, _) = split_listen(&self.settings.listen);
        for a in addresses.split(',').map(str::trim) {
            if a == "*" || a.eq_ignore_ascii_case("localhost") || a == "0.0.0.0" || a == "127.0.0.1" {
                return "127.0.0.1".into();
            }
            if a == "::" || a == "::1" {
                return "::1".into();
            }
        }
        addresses.split(',').next().unwrap_or("127.0.0.1").trim().to_string()
    }

    /// Host for local connections: the first absolute `unix_socket_directories` entry when unix sockets are
    /// preferred, else TCP.
    fn local_host(&self, unix: bool) -> String {
        if unix {
            match self.server.parameters.get("unix_socket_directories") {
                Some(dirs) => {
                    if let Some(d) = dirs.split(',').map(str::trim).find(|d| d.starts_with('/')) {
                        return d.to_string();
                    }
                    return self.local_tcp_host();
                }
                // libpq's compiled-in default socket directory.
                None => return "/var/run/postgresql".into(),
            }
        }
        self.local_tcp_host()
    }

    /// Superuser connection parameters to the local instance.
    pub fn local_conn_params(&self) -> ConnParams {
        ConnParams::for_role(
            &self.local_host(self.settings.use_unix_socket),
            self.port(),
            &self.settings.database,
            &self.settings.superuser,
        )
    }

    /// Replication-role connection parameters to the local instance (for other tools on this host).
    pub fn local_replication_params(&self) -> ConnParams {
        ConnParams::for_role(
            &self.local_host(self.settings.use_unix_socket_repl),
            self.port(),
            &self.settings.database,
            &self.settings.replication,
        )
    }

    /// `postgres://host:port/postgres`, what goes to the member key as `conn_url`.
    pub fn connection_url(&self) -> String {
        let netloc = match &self.settings.connect_address {
            Some(a) => a.clone(),
            None => format!("{}:{}", self.local_tcp_host(), self.port()),
        };
        format!("postgres://{netloc}/{}", self.settings.database)
    }

    /// The cached superuser connection, reconnecting when closed.
    pub async fn db(&self) -> Result<tokio::sync::MappedMutexGuard<'_, Db>> {
        let mut guard = self.db.lock().await;
        if guard.as_ref().is_none_or(Db::is_closed) {
            *guard = None;
            let db = Db::connect(&self.local_conn_params(), self.settings.query_timeout).await?;
            *guard = Some(db);
        }
        tokio::sync::MutexGuard::try_map(guard, |g| g.as_mut())
            .map_err(|_| Error::State("no database connection".into()))
    }

    pub(crate) async fn drop_connection(&self) {
        *self.db.lock().await = None;
    }

    /// Everything the HA loop needs this cycle.
    pub async fn cluster_info(&self) -> Result<ClusterInfo> {
        let r = self.db().await?.cluster_info(self.features()).await;
        if r.is_err() {
            self.drop_connection().await;
        }
        r
    }

    pub(crate) fn fire(&self, action: CallbackAction) {
        if let Some(script) = self.settings.callbacks.get(action) {
            if let Err(e) = self.callbacks.call(script, action, self.role.as_str(), &self.settings.scope) {
                tracing::error!("{} callback failed to start: {e}", action.as_str());
            }
        }
    }

    /// Waits for the last callback to finish (shutdown, tests).
    pub async fn wait_for_callbacks(&self) {
        self.callbacks.wait().await;
    }

    /// Writes postgresql.conf (with the recovery section for a standby), pg_hba.conf and pg_ident.conf (unless
    /// `hba_file`/`ident_file` point elsewhere) and the signal files.
    pub fn write_config(&self, recovery: Option<&RecoverySettings>, keep_existing_recovery: bool) -> Result<()> {
        self.write_config_with(&self.server.parameters, recovery, keep_existing_recovery)
    }

    fn write_config_with(
        &self,
        params: &Parameters,
        recovery: Option<&RecoverySettings>,
        keep_existing_recovery: bool,
    ) -> Result<()> {
        if !keep_existing_recovery {
            match recovery {
                Some(r) => self.files.write_recovery_signal(r)?,
                None => self.files.remove_recovery_signals()?,
            }
        }
        let recovery = if keep_existing_recovery { None } else { recovery };
        self.files.write_postgresql_conf(params, recovery, !keep_existing_recovery)?;
        if self.trust_local_access {
            self.write_trust_hba()?;
        } else if !params.contains_key("hba_file") && !self.settings.pg_hba.is_empty() {
            self.files.write_pg_hba(&self.settings.pg_hba)?;
        }
        if !params.contains_key("ident_file") && !self.settings.pg_ident.is_empty() {
            self.files.write_pg_ident(&self.settings.pg_ident)?;
        }
        Ok(())
    }

    /// Recovery settings for following `primary` (a member's connection parameters: host and port), or for
    /// archive recovery only when `None`.
    pub fn follow_settings(&self, primary: Option<&ConnParams>) -> RecoverySettings {
        let conninfo = primary.map(|p| {
            let mut c = crate::conf::primary_conninfo(
                p.get("host").unwrap_or(""),
                p.get("port").and_then(|v| v.parse().ok()).unwrap_or(5432),
                &self.settings.replication,
                &self.settings.name,
                self.version,
            );
            if let Some(db) = p.get("dbname") {
                c.set("dbname", db);
            }
            c
        });
        let mut recovery_conf = self.server.recovery.clone();
        recovery_conf.extend(self.settings.recovery_conf.clone());
        let slot = self.settings.use_slots.then(|| slot_name_from_member_name(&self.settings.name));
        RecoverySettings::follow(conninfo, slot, &recovery_conf, self.version)
    }

    /// Adopts a PostgreSQL already running on the data directory (agent restart). Returns whether one was found.
    pub async fn adopt(&mut self) -> Result<bool> {
        match Postmaster::adopt(&self.settings.data_dir)? {
            Some(pm) => {
                self.postmaster = Some(pm);
                let role = match self.db().await {
                    Ok(db) => match db.in_recovery().await {
                        Ok(true) => Role::Replica,
                        Ok(false) => Role::Primary,
                        Err(_) => Role::Uninitialized,
                    },
                    Err(_) => Role::Uninitialized,
                };
                self.role = role;
                // A later restart or configuration update must keep a standby a standby: take over the recovery
                // settings it is running with.
                self.recovery = match role {
                    Role::Replica => self.running_recovery_settings().await.ok(),
                    _ => None,
                };
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The recovery settings a running standby uses, from `pg_settings` and its signal files.
    async fn running_recovery_settings(&self) -> Result<RecoverySettings> {
        let names: Vec<String> = crate::parameters::RECOVERY_PARAMETERS.iter().map(|s| s.to_string()).collect();
        let rows = self
            .db()
            .await?
            .query(
                "SELECT name, pg_catalog.current_setting(name) FROM pg_catalog.pg_settings WHERE name = ANY($1)",
                &[&names],
            )
            .await?;
        let mut r = RecoverySettings {
            standby: self.files.standby_signal().exists() || !self.files.recovery_signal().exists(),
            ..Default::default()
        };
        for row in rows {
            let (name, value): (String, String) = (row.try_get(0)?, row.try_get(1)?);
            match name.as_str() {
                "primary_conninfo" => r.primary_conninfo = ConnParams::parse(&value).filter(|p| !p.0.is_empty()),
                "primary_slot_name" if !value.is_empty() => r.primary_slot_name = Some(value),
                "primary_slot_name" => {}
                // Empty targets are written explicitly by Patroni; keep them so the file stays the same.
                n if n.starts_with("recovery_target") && n != "recovery_target_timeline" => {
                    r.parameters.insert(name, value);
                }
                _ if value.is_empty() => {}
                _ => {
                    r.parameters.insert(name, value);
                }
            }
        }
        Ok(r)
    }

    /// Writes the configuration and starts PostgreSQL as a primary (`recovery` `None`) or standby, waiting up to
    /// `pg_ctl_timeout` for it to accept connections. Fires `on_start`.
    pub async fn start(&mut self, recovery: Option<RecoverySettings>) -> Result<StartOutcome> {
        self.start_inner(recovery, false, Some(CallbackAction::OnStart)).await
    }

    pub(crate) async fn start_inner(
        &mut self,
        recovery: Option<RecoverySettings>,
        keep_existing_recovery: bool,
        callback: Option<CallbackAction>,
    ) -> Result<StartOutcome> {
        if self.is_running() {
            return Err(Error::State("PostgreSQL is already running".into()));
        }
        crate::postmaster::check_data_dir(&self.settings.data_dir)?;
        // Checked before touching any file, so a refused start leaves the data directory as it was.
        if let Some(existing) = Postmaster::adopt(&self.settings.data_dir)? {
            return Err(Error::State(format!(
                "PostgreSQL is already running on {} (pid {})",
                self.settings.data_dir.display(),
                existing.pid()
            )));
        }
        let (addresses, port) = split_listen(&self.settings.listen);
        crate::postmaster::check_port_free(&addresses, port)?;
        crate::postmaster::remove_stale_pid_file(&self.settings.data_dir)?;
        let params = if recovery.is_some() || keep_existing_recovery {
            self.standby_start_parameters().await
        } else {
            self.server.parameters.clone()
        };
        self.write_config_with(&params, recovery.as_ref(), keep_existing_recovery)?;
        let mut opts = StartOptions::new(&self.settings.data_dir, self.files.postgresql_conf());
        opts.options = command_line_options(&params);
        opts.timeout = self.settings.pg_ctl_timeout;
        opts.log_file = self.settings.log_file.clone();
        self.drop_connection().await;
        let (pm, outcome) = Postmaster::start(&self.settings.binaries, &opts).await?;
        self.postmaster = Some(pm);
        let before = self.role;
        self.role = if recovery.is_some() { Role::Replica } else { Role::Primary };
        self.recovery = recovery;
        // A former primary (stopped to step down, crashed, or marked demoted) coming back as a standby changed its
        // role: Patroni reports that as `on_role_change`, not as a plain start.
        let role_changed = crate::standby::role_changed(before, self.role);
        let callback = match callback {
            Some(CallbackAction::OnStart) if role_changed => Some(CallbackAction::OnRoleChange),
            other => other,
        };
        if let Some(cb) = callback {
            self.fire(cb);
        }
        Ok(outcome)
    }

    /// The parameters a standby starts with. A standby refuses to start with `max_connections` (and the other
    /// settings `pg_control` records) lower than the primary's, which a restored backup or a primary changed in
    /// the meantime can have: those start with the recorded value, as in Patroni, until a restart applies ours.
    /// A custom bootstrap that recovers to a target and then promotes starts without hot standby, so such a
    /// setting cannot stop it halfway.
    async fn standby_start_parameters(&self) -> Parameters {
        let mut params = self.server.parameters.clone();
        if self.custom_bootstrap_without_hot_standby {
            params.insert("hot_standby".into(), "off".into());
        }
        let Ok(control) = self.controldata().await else { return params };
        for &(name, line) in self.features().controldata_settings() {
            let Some(theirs) = control.raw.get(line).and_then(|v| v.trim().parse::<i64>().ok()) else {
                tracing::warn!("{line} is missing from pg_controldata output");
                continue;
            };
            let ours = params.get(name).and_then(|v| v.trim().parse::<i64>().ok());
            if let Some(ours) = ours.filter(|o| theirs > *o) {
                tracing::info!(
                    "{name} value in pg_controldata: {theirs}, in the global configuration: {ours}. pg_controldata \
                     value will be used. Setting 'Pending restart' flag"
                );
                params.insert(name.into(), theirs.to_string());
            }
        }
        params
    }

    /// Stops PostgreSQL (`before_stop` first, then the mode, escalating after `pg_ctl_timeout`). Fires `on_stop`.
    pub async fn stop(&mut self, mode: StopMode) -> Result<StopOutcome> {
        self.stop_inner(mode, Some(CallbackAction::OnStop)).await
    }

    pub(crate) async fn stop_inner(&mut self, mode: StopMode, callback: Option<CallbackAction>) -> Result<StopOutcome> {
        if self.postmaster.is_none() {
            // Never report "stopped" while a server we did not start (or forgot) still runs on our data dir.
            self.postmaster = Postmaster::adopt(&self.settings.data_dir)?;
        }
        let Some(pm) = self.postmaster.clone() else {
            return Ok(StopOutcome::Stopped);
        };
        if !pm.is_alive() {
            self.postmaster = None;
            return Ok(StopOutcome::Stopped);
        }
        if let Some(script) = &self.settings.before_stop {
            // Its result does not stop the shutdown; bounded so a hung script cannot block it forever.
            match crate::command::Cmd::from_command_line(script) {
                Ok(cmd) => {
                    if let Err(e) = cmd.timeout(self.settings.pg_ctl_timeout).run().await {
                        tracing::warn!("before_stop script: {e}");
                    }
                }
                Err(e) => tracing::warn!("before_stop script: {e}"),
            }
        }
        self.drop_connection().await;
        let outcome = pm.stop(mode, self.settings.pg_ctl_timeout).await?;
        self.postmaster = None;
        if let Some(cb) = callback {
            self.fire(cb);
        }
        Ok(outcome)
    }

    /// Recovery settings to rewrite the configuration with, keeping the current role. A standby whose settings
    /// we do not know is kept a standby (archive recovery only, until `follow` says whom to stream from):
    /// writing it out as a primary would promote it at the next start.
    pub(crate) fn recovery_for_rewrite(&self) -> Option<RecoverySettings> {
        match self.role {
            Role::Primary => None,
            _ if self.recovery.is_some() => self.recovery.clone(),
            Role::Uninitialized if !self.files.standby_signal().exists() && !self.files.recovery_signal().exists() => {
                None
            }
            _ => Some(self.follow_settings(None)),
        }
    }

    /// Stop and start again with the same role. Fires `on_restart`.
    pub async fn restart(&mut self, mode: StopMode) -> Result<StartOutcome> {
        self.stop_inner(mode, None).await?;
        let recovery = self.recovery_for_rewrite();
        self.start_inner(recovery, false, Some(CallbackAction::OnRestart)).await
    }

    /// Applies new effective parameters and `pg_hba`/`pg_ident`: rewrites the files, reloads when anything
    /// changed, and reports what PostgreSQL says needs a restart. Fires `on_reload` when it reloaded.
    pub async fn update_config(
        &mut self,
        parameters: Parameters,
        pg_hba: Vec<String>,
        pg_ident: Vec<String>,
    ) -> Result<ReloadOutcome> {
        let before = self.config_snapshot();
        let old_server = self.server.parameters.clone();
        self.settings.parameters = parameters;
        self.settings.pg_hba = pg_hba;
        self.settings.pg_ident = pg_ident;
        self.recompute_server_parameters();
        let recovery = self.recovery_for_rewrite();
        self.write_config(recovery.as_ref(), false)?;
        let changed = before != self.config_snapshot();
        if !self.is_running() {
            return Ok(ReloadOutcome { reloaded: false, pending_restart: Vec::new() });
        }
        if changed {
            self.reload().await?;
        }
        let mut pending_restart = self.db().await?.pending_restart().await?;
        // PgSettings on the postmaster command line outrank the files, so PostgreSQL cannot flag their change.
        for name in crate::parameters::CONTROLLED_NAMES {
            let (old, new) = (old_server.get(*name), self.server.parameters.get(*name));
            let on_command_line = !matches!(*name, "wal_keep_segments" | "wal_keep_size");
            if on_command_line && old != new && !pending_restart.iter().any(|p| p.name == *name) {
                pending_restart.push(PendingRestart {
                    name: name.to_string(),
                    old_value: old.cloned().unwrap_or_default(),
                    new_value: new.cloned().unwrap_or_default(),
                });
            }
        }
        Ok(ReloadOutcome { reloaded: changed, pending_restart })
    }

    fn recompute_server_parameters(&mut self) {
        self.server = server_parameters(
            &self.settings.parameters,
            &self.settings.listen,
            &self.settings.scope,
            self.version,
            &self.files.config_dir,
        );
        if let Some(names) = &self.synchronous_standby_names {
            self.server.parameters.insert("synchronous_standby_names".into(), names.clone());
        }
    }

    /// Sets (or with `None` clears) `synchronous_standby_names` in postgresql.conf and reloads when running.
    /// The HA loop owns this value in synchronous mode; it overrides the configured parameter.
    pub async fn set_synchronous_standby_names(&mut self, names: Option<String>) -> Result<()> {
        if self.synchronous_standby_names == names {
            return Ok(());
        }
        self.synchronous_standby_names = names;
        self.recompute_server_parameters();
        let recovery = self.recovery_for_rewrite();
        self.write_config(recovery.as_ref(), false)?;
        if self.is_running() {
            self.reload().await?;
        }
        Ok(())
    }

    /// The timeline history of the running primary (what Patroni publishes as the `history` key): one entry per
    /// earlier timeline with the LSN where it ended.
    pub async fn timeline_history(&self) -> Result<Vec<crate::rewind::HistoryEntry>> {
        let timeline = self.cluster_info().await?.timeline;
        if timeline <= 1 {
            return Ok(Vec::new());
        }
        let bytes = self.db().await?.read_data_file(&format!("pg_wal/{timeline:08X}.history")).await?;
        Ok(crate::rewind::parse_history(&String::from_utf8_lossy(&bytes)))
    }

    fn config_snapshot(&self) -> Vec<Option<Vec<u8>>> {
        [self.files.postgresql_conf(), self.files.pg_hba_conf(), self.files.pg_ident_conf()]
            .iter()
            .map(|p| std::fs::read(p).ok())
            .collect()
    }

    /// SIGHUP, then waits (bounded) until PostgreSQL has processed it, so a following `pending_restart`
    /// query sees the new files. Fires `on_reload`.
    pub async fn reload(&mut self) -> Result<()> {
        let pm = self.postmaster.as_ref().ok_or_else(|| Error::State("PostgreSQL is not running".into()))?;
        let before = self.db().await?.conf_load_time().await.ok();
        pm.reload()?;
        let deadline = tokio::time::Instant::now() + self.settings.query_timeout;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            // pg_conf_load_time is per backend: a new connection sees the postmaster's latest load.
            self.drop_connection().await;
            if let Ok(db) = self.db().await {
                if let Ok(t) = db.conf_load_time().await {
                    if Some(t) != before {
                        break;
                    }
                }
            }
        }
        self.fire(CallbackAction::OnReload);
        Ok(())
    }

    /// Promotes a standby and waits (bounded by `pg_ctl_timeout`) until it accepts writes. Runs `pre_promote`
    /// first; its failure aborts the promotion. Fires `on_role_change` with role `primary`.
    pub async fn promote(&mut self) -> Result<()> {
        if !self.is_running() {
            return Err(Error::State("cannot promote: PostgreSQL is not running".into()));
        }
        if let Some(script) = &self.settings.pre_promote {
            crate::command::Cmd::from_command_line(script)?
                .timeout(self.settings.pg_ctl_timeout)
                .run()
                .await
                .map_err(|e| Error::State(format!("pre_promote script failed, not promoting: {e}")))?;
        }
        let wait = i32::try_from(self.settings.pg_ctl_timeout.as_secs()).unwrap_or(60).max(1);
        tracing::info!("promoting PostgreSQL");
        let promoted = {
            let db = self.db().await?;
            // pg_promote waits server-side; give the client side the same budget.
            let row = tokio::time::timeout(
                Duration::from_secs(wait as u64 + 5),
                db.client().query_one("SELECT pg_catalog.pg_promote(true, $1)", &[&wait]),
            )
            .await
            .map_err(|_| Error::DbTimeout(Duration::from_secs(wait as u64 + 5)))??;
            row.try_get::<_, bool>(0)?
        };
        if !promoted {
            return Err(Error::State(format!("promotion did not finish within {wait}s")));
        }
        // pg_rewind on the old primary reads our timeline from pg_control, updated only by a checkpoint.
        if let Err(e) = self.db().await?.checkpoint().await {
            tracing::warn!("checkpoint after promote failed: {e}");
        }
        self.role = Role::Primary;
        self.recovery = None;
        // A primary has no recovery section and no signal file (PostgreSQL removed standby.signal itself).
        self.write_config(None, false)?;
        self.fire(CallbackAction::OnRoleChange);
        Ok(())
    }

    /// Rewrites the recovery settings for following another primary. PostgreSQL 13+ applies a new
    /// `primary_conninfo` on reload; a running primary must be demoted by a restart instead, which is what
    /// happens here when needed. Fires `on_role_change` when the role changes.
    pub async fn follow(&mut self, primary: Option<&ConnParams>) -> Result<StartOutcome> {
        let recovery = self.follow_settings(primary);
        self.follow_with(recovery).await
    }

    /// [`Postgres::follow`] with recovery settings built by the caller (a standby leader following a remote
    /// primary with its own slot name and `restore_command`). Nothing happens when they are already in effect.
    pub async fn follow_with(&mut self, recovery: RecoverySettings) -> Result<StartOutcome> {
        self.run_in_recovery_as(recovery, Role::Replica).await
    }

    /// Whether going from the recovery settings in effect to `wanted` takes a restart: some of the changed
    /// settings are not applied by a reload on this major (e.g. `primary_conninfo` before 13).
    pub(crate) fn recovery_change_needs_restart(&self, wanted: &RecoverySettings) -> bool {
        let features = self.features();
        let Some(current) = self.recovery.as_ref() else {
            // Settings in effect unknown (adopted server): whatever is wanted may be a change.
            return ["primary_conninfo", "primary_slot_name"]
                .into_iter()
                .chain(wanted.parameters.keys().map(String::as_str))
                .any(|name| !features.recovery_parameter_reloadable(name));
        };
        let mut changed: Vec<&str> = Vec::new();
        if current.primary_conninfo != wanted.primary_conninfo {
            changed.push("primary_conninfo");
        }
        if current.primary_slot_name != wanted.primary_slot_name {
            changed.push("primary_slot_name");
        }
        let names = current.parameters.keys().chain(wanted.parameters.keys());
        changed.extend(names.filter(|n| current.parameters.get(*n) != wanted.parameters.get(*n)).map(String::as_str));
        changed.iter().any(|name| !features.recovery_parameter_reloadable(name))
    }

    /// Moves the data directory aside as `<data_dir>_<YYYY-MM-DD-HH-MM-SS>`: failed bootstraps and replicas that
    /// cannot be repaired are kept for inspection, never deleted.
    pub fn move_data_directory_aside(&self) -> Result<Option<PathBuf>> {
        let dir = &self.settings.data_dir;
        if !dir.exists() {
            return Ok(None);
        }
        let stamp = chrono::Local::now().format("%Y-%m-%d-%H-%M-%S");
        let mut target = PathBuf::from(format!("{}_{stamp}", dir.display()));
        let mut n = 1;
        while target.exists() {
            target = PathBuf::from(format!("{}_{stamp}.{n}", dir.display()));
            n += 1;
        }
        tracing::warn!("moving data directory {} aside to {}", dir.display(), target.display());
        std::fs::rename(dir, &target).map_err(|e| Error::io(dir, e))?;
        Ok(Some(target))
    }

    /// Removes the data directory's contents (the directory itself stays, keeping its owner and mode).
    pub fn remove_data_directory(&self) -> Result<()> {
        let dir = &self.settings.data_dir;
        tracing::warn!("removing data directory {}", dir.display());
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let path = entry.path();
            let ft = entry.file_type().map_err(|e| Error::io(&path, e))?;
            let r = if ft.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            r.map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }

    /// Creates the data directory (mode 0700) if missing.
    pub(crate) fn ensure_data_dir(&self) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = &self.settings.data_dir;
        if !dir.exists() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| Error::io(dir, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
