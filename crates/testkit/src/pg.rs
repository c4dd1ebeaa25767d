//! A real PostgreSQL server, initialised and run as the unprivileged user when root.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::dir::{ensure_reachable, TestDir};
use crate::error::{Error, IoContext, Result};
use crate::port::try_free_port;
use crate::process::{pid_alive, Supervised};
use crate::tls::TestCerts;
use crate::user::{unprivileged_user, UnprivilegedCommand};

/// Directory holding `initdb`, `postgres`, `pg_ctl`..., overriding the search of `/usr/lib/postgresql/*/bin`.
pub const PG_BIN_DIR_ENV: &str = "PG_BIN_DIR";

const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: u32 = 3;
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);
/// What Drop gives PostgreSQL to shut down after SIGQUIT before SIGKILL: a clean exit frees its SysV shared memory
/// segment, which a SIGKILLed postmaster leaks until reboot (and leaks add up over many test runs).
const DROP_GRACE: Duration = Duration::from_secs(5);

/// `$PG_BIN_DIR`, else the highest version under `/usr/lib/postgresql/*/bin`, else the directory of `postgres` on
/// PATH.
pub fn pg_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(PG_BIN_DIR_ENV) {
        let dir = PathBuf::from(dir);
        if dir.join("postgres").exists() {
            return Ok(dir);
        }
        return Err(Error::NotFound {
            what: format!("postgres in {PG_BIN_DIR_ENV}={}", dir.display()),
            hint: "point it at the directory holding initdb and postgres".to_string(),
        });
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(std::result::Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version: Option<Vec<u32>> = name.split('.').map(|p| p.parse().ok()).collect();
            let bin = entry.path().join("bin");
            match version {
                Some(v) if bin.join("postgres").exists() => Some((v, bin)),
                _ => None,
            }
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Some(dir) = which::which("postgres").ok().and_then(|p| p.parent().map(Path::to_path_buf)) {
        return Ok(dir);
    }
    Err(Error::NotFound {
        what: "PostgreSQL server binaries".to_string(),
        hint: format!("install them under /usr/lib/postgresql/<version>/bin or set {PG_BIN_DIR_ENV}"),
    })
}

/// How PostgreSQL is asked to stop (`pg_ctl stop -m ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// SIGTERM: waits for clients to disconnect.
    Smart,
    /// SIGINT: disconnects clients, clean shutdown checkpoint.
    Fast,
    /// SIGQUIT: no checkpoint; crash recovery on the next start.
    Immediate,
}

impl StopMode {
    fn signal(self) -> Signal {
        match self {
            StopMode::Smart => Signal::SIGTERM,
            StopMode::Fast => Signal::SIGINT,
            StopMode::Immediate => Signal::SIGQUIT,
        }
    }
}

/// How to initialise and start a [`PgServer`]; `PgServer::builder()...start().await`.
#[derive(Debug, Clone)]
pub struct PgOptions {
    superuser: String,
    password: String,
    settings: Vec<(String, String)>,
    hba_lines: Vec<String>,
    initdb_args: Vec<String>,
    start_timeout: Duration,
    tls: bool,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            superuser: "postgres".to_string(),
            password: "testkit-password".to_string(),
            settings: Vec::new(),
            hba_lines: Vec::new(),
            initdb_args: Vec::new(),
            start_timeout: DEFAULT_START_TIMEOUT,
            tls: false,
        }
    }
}

impl PgOptions {
    /// Superuser name given to `initdb -U` (default `postgres`).
    pub fn superuser(mut self, name: impl Into<String>) -> Self {
        self.superuser = name.into();
        self
    }

    /// The superuser's password, required over TCP (scram-sha-256); local socket connections are trusted.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = password.into();
        self
    }

    /// A `postgresql.conf` setting, e.g. `.setting("wal_level", "logical")`.
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    /// A `pg_hba.conf` line placed before initdb's (first match wins).
    pub fn hba_line(mut self, line: impl Into<String>) -> Self {
        self.hba_lines.push(line.into());
        self
    }

    /// An extra `initdb` argument, e.g. `--data-checksums`.
    pub fn initdb_arg(mut self, arg: impl Into<String>) -> Self {
        self.initdb_args.push(arg.into());
        self
    }

    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// `ssl = on` with certificates from [`PgServer::certs`] (server cert valid for 127.0.0.1 and localhost,
    /// `ssl_ca_file` set so client certificates can be checked by `hostssl ... cert` lines).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// initdb, configure, start, wait until it answers queries.
    pub async fn start(self) -> Result<PgServer> {
        let mut server = self.init().await?;
        server.first_start().await?;
        Ok(server)
    }

    /// initdb and configure only: for code under test that starts PostgreSQL itself. [`PgServer::start_again`]
    /// starts it.
    pub async fn init(self) -> Result<PgServer> {
        let mut server = PgServer::prepare(self)?;
        server.initdb().await?;
        // Picked only now: the port stays free for milliseconds rather than for all of initdb, during which any
        // outgoing connection on the machine could be given it as its ephemeral port.
        server.port = try_free_port()?;
        server.configure()?;
        Ok(server)
    }
}

/// A PostgreSQL cluster in its own [`TestDir`] (`data/`, `sock/`, `postgres.log`) listening on 127.0.0.1 and a
/// socket directory inside that dir. On drop: immediate shutdown, then SIGKILL of anything left in its process
/// group, and of a postmaster someone else started on its data directory.
pub struct PgServer {
    options: PgOptions,
    port: u16,
    bin_dir: PathBuf,
    process: Option<Supervised>,
    certs: Option<TestCerts>,
    // Last: removed after the processes are gone.
    dir: TestDir,
}

impl std::fmt::Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgServer")
            .field("port", &self.port)
            .field("data_dir", &self.data_dir())
            .field("pid", &self.pid())
            .finish()
    }
}

impl PgServer {
    pub fn builder() -> PgOptions {
        PgOptions::default()
    }

    /// Defaults: superuser `postgres` with password `testkit-password`, `fsync=off`.
    pub async fn start() -> Result<Self> {
        PgOptions::default().start().await
    }

    pub async fn start_with(options: PgOptions) -> Result<Self> {
        options.start().await
    }

    fn prepare(options: PgOptions) -> Result<Self> {
        if crate::user::is_root() && unprivileged_user().is_none() {
            return Err(Error::NotFound {
                what: format!(
                    "user `{}` to run PostgreSQL as (it refuses to run as root)",
                    std::env::var(crate::user::USER_ENV).unwrap_or_else(|_| "postgres".to_string())
                ),
                hint: format!("create it, or set {} to another unprivileged user", crate::user::USER_ENV),
            });
        }
        let bin_dir = pg_bin_dir()?;
        if let Some((uid, gid)) = unprivileged_user() {
            ensure_reachable(&bin_dir.join("postgres"), uid, gid)?;
        }
        let dir = TestDir::with_prefix("patroni-pg-")?;
        dir.create_dir("sock", 0o755)?;
        let certs = if options.tls { Some(TestCerts::generate(&dir.create_dir("tls", 0o755)?)?) } else { None };
        // The port is chosen right before configuration (see `init`).
        Ok(PgServer { options, port: 0, bin_dir, process: None, certs, dir })
    }

    async fn initdb(&self) -> Result<()> {
        let pwfile = self.dir.write_file("pwfile", format!("{}\n", self.options.password), 0o600)?;
        let mut cmd = tokio::process::Command::new(self.bin_dir.join("initdb"));
        cmd.arg("-D")
            .arg(self.data_dir())
            .arg("-U")
            .arg(&self.options.superuser)
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "-N"])
            .args(&self.options.initdb_args);
        run_bounded(cmd, "initdb", INITDB_TIMEOUT, self.dir.path()).await?;
        Ok(())
    }

    fn configure(&self) -> Result<()> {
        let data = self.data_dir();
        let mut conf = format!(
            "\n# patroni-testkit\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             fsync = off\nlogging_collector = off\n",
            self.port,
            self.socket_dir().display()
        );
        if let Some(certs) = &self.certs {
            conf.push_str(&format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nssl_ca_file = '{}'\n",
                certs.server_cert.display(),
                certs.server_key.display(),
                certs.ca_cert.display()
            ));
        }
        for (name, value) in &self.options.settings {
            conf.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
        }
        append(&data.join("postgresql.conf"), &conf)?;
        if !self.options.hba_lines.is_empty() {
            let hba = data.join("pg_hba.conf");
            let existing = std::fs::read_to_string(&hba).context(|| format!("reading {}", hba.display()))?;
            let mut text = self.options.hba_lines.join("\n");
            text.push('\n');
            text.push_str(&existing);
            std::fs::write(&hba, text).context(|| format!("writing {}", hba.display()))?;
        }
        Ok(())
    }

    /// `host=127.0.0.1 port=N user=U password=P dbname=postgres` (libpq keyword form).
    pub fn connstr(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user={} password={} dbname=postgres",
            self.port, self.options.superuser, self.options.password
        )
    }

    /// `postgresql://user:password@127.0.0.1:port/postgres` (URI form of [`Self::connstr`]).
    pub fn url(&self) -> String {
        format!("postgresql://{}:{}@127.0.0.1:{}/postgres", self.options.superuser, self.options.password, self.port)
    }

    /// Over the unix socket, where local trust auth needs no password.
    pub fn socket_connstr(&self) -> String {
        format!(
            "host={} port={} user={} dbname=postgres",
            self.socket_dir().display(),
            self.port,
            self.options.superuser
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The certificates when started with [`PgOptions::tls`].
    pub fn certs(&self) -> Option<&TestCerts> {
        self.certs.as_ref()
    }

    pub fn superuser(&self) -> &str {
        &self.options.superuser
    }

    pub fn password(&self) -> &str {
        &self.options.password
    }

    /// The server's temp dir (parent of `data/`), a place for its neighbours' files (replicas, archives).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("sock")
    }

    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// The postmaster's pid while this kit runs it.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Supervised::pid)
    }

    pub fn is_running(&mut self) -> bool {
        match self.process.as_mut() {
            Some(p) => p.exit_status().is_none(),
            None => false,
        }
    }

    /// Starts (again) on the same port and data, and waits until it accepts queries. A no-op while running.
    pub async fn start_again(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let mut cmd = std::process::Command::new(self.bin_dir.join("postgres"));
        cmd.arg("-D").arg(self.data_dir()).current_dir(self.dir.path()).unprivileged();
        // Own process group: backends can be killed together with the postmaster.
        let mut process = Supervised::spawn("postgres", cmd, &self.log_path(), true)?;
        let timeout = self.options.start_timeout;
        let connstr = self.connstr();
        let port = self.port;
        let expected_dir = self.data_dir().display().to_string();
        let mut last_error = String::from("no answer yet");
        let probing = async {
            loop {
                if let Some(status) = process.exit_status() {
                    return Err(format!("postgres exited during startup ({status})"));
                }
                // Short per attempt: if someone else's listener holds the port, the connection hangs, and the exit
                // of our postmaster must still be noticed.
                // Asking for the data directory makes sure the server answering is ours, not whoever has the port.
                match tokio::time::timeout(PROBE_TIMEOUT, query_once(&connstr, "show data_directory")).await {
                    Ok(Ok(rows))
                        if rows.first().and_then(|r| r.first()).cloned().flatten() == Some(expected_dir.clone()) =>
                    {
                        return Ok(())
                    }
                    Ok(Ok(rows)) => last_error = format!("port {port} is served by another PostgreSQL: {rows:?}"),
                    Ok(Err(e)) => last_error = e.to_string(),
                    Err(_) => last_error = format!("no answer within {PROBE_TIMEOUT:?}"),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let outcome = match tokio::time::timeout(timeout, probing).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "not accepting connections on port {} after {timeout:?} (last error: {last_error})",
                self.port
            )),
        };
        match outcome {
            Ok(()) => {
                self.process = Some(process);
                Ok(())
            }
            Err(reason) => {
                process.stop_blocking(Signal::SIGQUIT, DROP_GRACE);
                Err(process.failure(reason))
            }
        }
    }

    /// The first start, retried on a fresh port when another process took ours in between (the kit reserves ports
    /// among test processes, but not against every program's ephemeral ports).
    async fn first_start(&mut self) -> Result<()> {
        let mut attempt = 1;
        loop {
            match self.start_again().await {
                Err(e) if attempt < PORT_ATTEMPTS && crate::process::is_port_conflict(&e) => {
                    attempt += 1;
                    self.port = try_free_port()?;
                    append(&self.data_dir().join("postgresql.conf"), &format!("port = {}\n", self.port))?;
                }
                result => return result,
            }
        }
    }

    /// Stops with `mode`, waiting for the exit (bounded: SIGKILL to the group after 60 s).
    pub async fn stop(&mut self, mode: StopMode) -> Result<()> {
        if let Some(mut process) = self.process.take() {
            let status = process.stop(mode.signal(), Duration::from_secs(60)).await?;
            // Immediate shutdown exits non-zero by design; other modes should exit cleanly.
            if mode != StopMode::Immediate && !status.success() {
                return Err(process.failure(format!("postgres exited with {status} on {mode:?} stop")));
            }
        }
        Ok(())
    }

    /// SIGKILL to the postmaster only, as in a crash: backends notice and exit, shared memory is left behind.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.signal(Signal::SIGKILL);
            process.kill_now();
        }
    }

    /// A new connection (superuser, over TCP with the password); its connection task runs on the current runtime.
    pub async fn client(&self) -> Result<Client> {
        connect(&self.connstr()).await
    }

    /// Runs `sql` (one or more statements, simple query protocol) and returns every row's columns as text (NULL is
    /// None). A fresh connection each time, so it works across restarts.
    pub async fn query(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        query_once(&self.connstr(), sql).await
    }

    /// The first column of the first row.
    pub async fn query_value(&self, sql: &str) -> Result<Option<String>> {
        let rows = self.query(sql).await?;
        Ok(rows.into_iter().next().and_then(|row| row.into_iter().next()).flatten())
    }

    /// Like [`Self::query`] for statements whose rows do not matter.
    pub async fn execute(&self, sql: &str) -> Result<()> {
        self.query(sql).await.map(drop)
    }

    /// Runs a PostgreSQL client binary from [`Self::bin_dir`] (`pg_controldata`, `pg_basebackup`, ...) as the
    /// unprivileged user with `PGPASSWORD` set, bounded by `timeout`; returns stdout.
    pub async fn run_tool(&self, tool: &str, args: &[&str], timeout: Duration) -> Result<String> {
        let mut cmd = tokio::process::Command::new(self.bin_dir.join(tool));
        cmd.args(args).env("PGPASSWORD", &self.options.password);
        run_bounded(cmd, tool, timeout, self.dir.path()).await
    }

    /// A streaming replica of this server (`pg_basebackup -R -X stream`), started and accepting read-only queries.
    pub async fn start_replica(&self) -> Result<PgServer> {
        let replica = PgServer::prepare(self.options.clone())?;
        let data = replica.data_dir();
        let port = self.port.to_string();
        let data_arg = data.display().to_string();
        let args =
            ["-h", "127.0.0.1", "-p", &port, "-U", &self.options.superuser, "-D", &data_arg, "-R", "-X", "stream"];
        let mut cmd = tokio::process::Command::new(self.bin_dir.join("pg_basebackup"));
        cmd.args(args).env("PGPASSWORD", &self.options.password);
        run_bounded(cmd, "pg_basebackup", INITDB_TIMEOUT, replica.dir.path()).await?;
        // The copied postgresql.conf names the primary's port and socket; the appended block wins.
        let mut replica = replica;
        replica.port = try_free_port()?;
        replica.configure_copy()?;
        replica.first_start().await?;
        Ok(replica)
    }

    fn configure_copy(&self) -> Result<()> {
        let mut conf = format!(
            "\n# patroni-testkit (replica)\nport = {}\nunix_socket_directories = '{}'\n",
            self.port,
            self.socket_dir().display()
        );
        if let Some(certs) = &self.certs {
            conf.push_str(&format!(
                "ssl_cert_file = '{}'\nssl_key_file = '{}'\nssl_ca_file = '{}'\n",
                certs.server_cert.display(),
                certs.server_key.display(),
                certs.ca_cert.display()
            ));
        }
        append(&self.data_dir().join("postgresql.conf"), &conf)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop_blocking(Signal::SIGQUIT, DROP_GRACE);
        }
        // Code under test (pg_ctl, an agent) may have started its own postmaster on this data directory.
        kill_postmaster(&self.data_dir(), DROP_GRACE);
    }
}

/// Stops the postmaster named in `data_dir/postmaster.pid`, if it is alive and is a postgres process: SIGQUIT
/// (immediate shutdown), then SIGKILL to it and its process group after `grace`. For cleaning up servers that code
/// under test started. Blocking, bounded by `grace` plus a moment.
pub fn kill_postmaster(data_dir: &Path, grace: Duration) {
    let Ok(text) = std::fs::read_to_string(data_dir.join("postmaster.pid")) else {
        return;
    };
    let Some(pid) = text.lines().next().and_then(|l| l.trim().parse::<i32>().ok()) else {
        return;
    };
    // A stale file may name a recycled pid; only touch a postgres process.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if pid <= 0 || !comm.trim().starts_with("postgres") {
        return;
    }
    let nix_pid = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(nix_pid, Signal::SIGQUIT);
    let deadline = Instant::now() + grace;
    while pid_alive(pid as u32) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if pid_alive(pid as u32) {
        let _ = nix::sys::signal::kill(nix_pid, Signal::SIGKILL);
        if nix::unistd::getpgid(Some(nix_pid)) == Ok(nix_pid) {
            let _ = nix::sys::signal::killpg(nix_pid, Signal::SIGKILL);
        }
    }
}

fn append(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut file =
        std::fs::OpenOptions::new().append(true).open(path).context(|| format!("opening {}", path.display()))?;
    file.write_all(text.as_bytes()).context(|| format!("writing {}", path.display()))
}

async fn connect(connstr: &str) -> Result<Client> {
    let mut config: tokio_postgres::Config = connstr.parse()?;
    config.connect_timeout(Duration::from_secs(5));
    let (client, connection) = match tokio::time::timeout(QUERY_TIMEOUT, config.connect(NoTls)).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(Error::Timeout {
                what: format!("connecting to PostgreSQL ({connstr})"),
                timeout: QUERY_TIMEOUT,
                last_error: None,
            })
        }
    };
    tokio::spawn(async move {
        // The error (server gone) surfaces on the client's next call; nothing to do with it here.
        let _ = connection.await;
    });
    Ok(client)
}

async fn query_once(connstr: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    let client = connect(connstr).await?;
    let messages = match tokio::time::timeout(QUERY_TIMEOUT, client.simple_query(sql)).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(Error::Timeout { what: format!("query `{sql}`"), timeout: QUERY_TIMEOUT, last_error: None })
        }
    };
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some((0..row.len()).map(|i| row.get(i).map(str::to_string)).collect()),
            _ => None,
        })
        .collect())
}

/// Runs `cmd` as the unprivileged user in `cwd` with a deadline; Ok(stdout) on success, else an error with both
/// streams.
async fn run_bounded(mut cmd: tokio::process::Command, name: &str, timeout: Duration, cwd: &Path) -> Result<String> {
    cmd.current_dir(cwd)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .unprivileged();
    let description = format!("{:?}", cmd.as_std());
    let child = cmd.spawn().context(|| format!("starting {name}"))?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(result) => result.context(|| format!("waiting for {name}"))?,
        Err(_) => return Err(Error::Timeout { what: format!("{name} to finish"), timeout, last_error: None }),
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(Error::Command {
            command: description,
            status: output.status.to_string(),
            output: format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)),
        });
    }
    Ok(stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_is_replaced_on_first_start() {
        let mut server = PgOptions::default().init().await.unwrap();
        let taken = std::net::TcpListener::bind(("127.0.0.1", server.port())).unwrap();
        server.first_start().await.unwrap();
        assert_ne!(server.port(), taken.local_addr().unwrap().port());
        assert_eq!(server.query_value("select 1").await.unwrap().as_deref(), Some("1"));
        // The new port is in the config, so a restart keeps it.
        server.stop(StopMode::Fast).await.unwrap();
        server.start_again().await.unwrap();
    }
}
