//! A `patroni` agent process under test: staged binary, generated config, captured log, signals, REST helper.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::dir::TestDir;
use crate::error::{Error, Result};
use crate::pg::kill_postmaster;
use crate::port::try_free_port;
use crate::process::{log_tail, Supervised};
use crate::user::{stage_executable, UnprivilegedCommand};

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// What Drop gives the agent to stop after SIGTERM, and then its PostgreSQL after SIGQUIT.
const DROP_GRACE: Duration = Duration::from_secs(10);

/// What a config template needs to know: where the agent lives and which ports are its own.
#[derive(Debug, Clone)]
pub struct AgentContext {
    /// The agent's temp dir (mode 755, owned by the unprivileged user when root): put `data_dir` etc. under it.
    pub dir: PathBuf,
    /// A free port for `restapi.listen`.
    pub api_port: u16,
    /// A free port for `postgresql.listen`.
    pub pg_port: u16,
    /// The member name given to the builder.
    pub name: String,
}

/// The superuser password of the members [`AgentContext::postgresql_yaml`] describes.
pub const SUPERUSER_PASSWORD: &str = "secret";

impl AgentContext {
    /// `dir/data`, the conventional data directory; cleaned up on drop like anything under `dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The `restapi:` section of a test member: listening on its own loopback port.
    pub fn restapi_yaml(&self) -> String {
        format!("restapi:\n  listen: 127.0.0.1:{api}\n  connect_address: 127.0.0.1:{api}\n", api = self.api_port)
    }

    /// The `postgresql:` section of a test member: its own loopback port, data in `data_dir`, binaries from
    /// `bin_dir`, the socket and `.pgpass` in its dir, superuser `postgres` / [`SUPERUSER_PASSWORD`], replication
    /// user `replicator`, md5 over TCP. Ends with the `pg_hba` list, so callers can append sections.
    pub fn postgresql_yaml(&self, bin_dir: &str, data_dir: &Path) -> String {
        let dir = self.dir.display();
        format!(
            r#"postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {data}
  bin_dir: {bin_dir}
  pgpass: {dir}/pgpass
  authentication:
    superuser: {{username: postgres, password: {SUPERUSER_PASSWORD}}}
    replication: {{username: replicator, password: rep-pass}}
  parameters:
    unix_socket_directories: {dir}
  pg_hba:
  - local all all trust
  - host all all 127.0.0.1/32 md5
  - host replication replicator 127.0.0.1/32 md5
"#,
            pg = self.pg_port,
            data = data_dir.display(),
        )
    }
}

type ConfigFn = Box<dyn FnOnce(&AgentContext) -> String + Send>;

/// How to start an [`AgentProcess`]; `AgentProcess::builder(path).config(|ctx| yaml).start()`.
pub struct AgentOptions {
    binary: PathBuf,
    name: String,
    config: Option<ConfigFn>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    unprivileged: bool,
    https_identity: Option<String>,
}

impl AgentOptions {
    /// The member name exposed to the config template (default `node1`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The YAML written to `patroni.yml` in the agent's dir and passed as the only positional argument.
    pub fn config(mut self, template: impl FnOnce(&AgentContext) -> String + Send + 'static) -> Self {
        self.config = Some(Box::new(template));
        self
    }

    /// Extra arguments placed before the config path.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// An environment variable for the agent (`PATRONI_*`, `RUST_LOG`, ...).
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// The REST API serves https (the config must set `restapi.certfile` etc.); the helpers ([`AgentProcess::get`],
    /// [`AgentProcess::request`], [`AgentProcess::wait_for_api`]) then present `identity_pem` (certificate
    /// followed by its key, as [`crate::TestCerts::client_identity_pem`]) as client certificate.
    ///
    /// They do not verify the agent's certificate: reqwest refuses a `CA:TRUE` certificate as a server
    /// certificate (the `openssl req -x509` one most such tests use), and these helpers only drive the test.
    /// The verification under test is the one the agents and `patronictl` do.
    pub fn https(mut self, identity_pem: impl Into<String>) -> Self {
        self.https_identity = Some(identity_pem.into());
        self
    }

    /// Keep the current user even when root (for tests of the agent's own refusal to run as root).
    pub fn as_current_user(mut self) -> Self {
        self.unprivileged = false;
        self
    }

    /// Stages the binary, writes the config, spawns the agent; does not wait for anything (see
    /// [`AgentProcess::wait_for_api`] and [`AgentProcess::wait_for_log`]).
    pub fn start(self) -> Result<AgentProcess> {
        crate::install_crypto_provider();
        let dir = TestDir::with_prefix("patroni-agent-")?;
        let context = AgentContext {
            dir: dir.path().to_path_buf(),
            api_port: try_free_port()?,
            pg_port: try_free_port()?,
            name: self.name,
        };
        // The build tree may be unreachable for the unprivileged user (CI clones under /root).
        let binary = stage_executable(&self.binary, &dir)?;
        let config_path = match self.config {
            Some(template) => Some(dir.write_file("patroni.yml", template(&context), 0o600)?),
            None => None,
        };
        let mut http = reqwest::Client::builder().no_proxy().timeout(HTTP_TIMEOUT);
        if let Some(pem) = &self.https_identity {
            http = http.identity(reqwest::Identity::from_pem(pem.as_bytes())?).danger_accept_invalid_certs(true);
        }
        let mut agent = AgentProcess {
            https: self.https_identity.is_some(),
            http: http.build()?,
            context,
            binary,
            config_path,
            args: self.args,
            env: self.env,
            unprivileged: self.unprivileged,
            process: None,
            previous: Vec::new(),
            dir,
        };
        agent.spawn()?;
        Ok(agent)
    }
}

/// A running agent. Its stdout and stderr go to `patroni.log` in its dir. Drop sends SIGTERM (the agent's graceful
/// stop), then SIGKILL after 10 s, then stops any PostgreSQL left running on a data directory under its dir.
pub struct AgentProcess {
    context: AgentContext,
    binary: PathBuf,
    config_path: Option<PathBuf>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    unprivileged: bool,
    /// Whether the REST API is served over https ([`AgentOptions::https`]).
    https: bool,
    http: reqwest::Client,
    process: Option<Supervised>,
    /// Earlier runs (before [`AgentProcess::restart`]). Their process groups are killed only on drop: whatever an
    /// agent started and left running when it died (PostgreSQL) must survive until the test ends.
    previous: Vec<Supervised>,
    // Last: removed after the processes are gone.
    dir: TestDir,
}

impl std::fmt::Debug for AgentProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentProcess")
            .field("name", &self.context.name)
            .field("dir", &self.dir.path())
            .field("pid", &self.pid())
            .finish()
    }
}

impl AgentProcess {
    /// `binary` is the `patroni` executable, e.g. `env!("CARGO_BIN_EXE_patroni")` in the agent crate's tests.
    pub fn builder(binary: impl Into<PathBuf>) -> AgentOptions {
        AgentOptions {
            binary: binary.into(),
            name: "node1".to_string(),
            config: None,
            args: Vec::new(),
            env: Vec::new(),
            unprivileged: true,
            https_identity: None,
        }
    }

    fn spawn(&mut self) -> Result<()> {
        let mut cmd = std::process::Command::new(&self.binary);
        cmd.args(&self.args);
        if let Some(config) = &self.config_path {
            cmd.arg(config);
        }
        for (name, value) in &self.env {
            cmd.env(name, value);
        }
        cmd.current_dir(self.dir.path());
        if self.unprivileged {
            cmd.unprivileged();
        } else {
            cmd.die_with_parent();
        }
        let log = self.log_path();
        // Own process group, so drop can kill whatever the agent left behind (callbacks, a stray child).
        let process = Supervised::spawn(&format!("agent {}", self.context.name), cmd, &log, true)?;
        if let Some(old) = self.process.replace(process) {
            self.previous.push(old);
        }
        Ok(())
    }

    /// Starts the agent again with the same binary, config and ports (after it exited or was killed).
    pub fn restart(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        self.spawn()
    }

    /// Starts the agent again with another executable (Python Patroni's `patroni` in place of ours, or back) and
    /// the same config, ports and data directory: the member-by-member switch of a migration. Fails if the agent
    /// still runs (stop it first: SIGTERM and [`AgentProcess::wait_exit`]).
    pub fn restart_with(&mut self, binary: impl AsRef<Path>) -> Result<()> {
        if self.is_running() {
            return Err(Error::Protocol {
                what: format!("agent {}", self.context.name),
                detail: "still running; stop it before switching binaries".to_string(),
            });
        }
        // Both implementations name their executable `patroni`: each run gets its own subdirectory.
        let slot = self.dir.create_dir(format!("bin{}", self.previous.len() + 1), 0o755)?;
        self.binary = crate::user::stage_executable_in(binary.as_ref(), &slot)?;
        self.spawn()
    }

    pub fn context(&self) -> &AgentContext {
        &self.context
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("patroni.log")
    }

    /// Everything the agent logged so far.
    pub fn log(&self) -> String {
        std::fs::read(self.log_path()).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// `http://127.0.0.1:<api_port>` (`https://` with [`AgentOptions::https`]).
    pub fn api_url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.context.api_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Supervised::pid)
    }

    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none() && self.process.is_some()
    }

    /// The exit status once the agent has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.process.as_mut().and_then(Supervised::exit_status)
    }

    /// Sends `signal` (SIGTERM: graceful stop; SIGKILL: the agent dies and PostgreSQL keeps running; SIGHUP:
    /// reload).
    pub fn kill(&mut self, signal: Signal) -> Result<()> {
        match self.process.as_mut() {
            Some(p) => p.signal(signal),
            None => Ok(()),
        }
    }

    /// Waits up to `timeout` for the agent to exit on its own (after a signal, or a fatal error).
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.process.as_mut() {
                None => {
                    return Err(Error::NotFound {
                        what: format!("agent {} process", self.context.name),
                        hint: "it was never started".to_string(),
                    })
                }
                Some(p) => {
                    if let Some(status) = p.exit_status() {
                        return Ok(status);
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("agent {} to exit", self.context.name),
                    timeout,
                    last_error: Some(format!("log tail:\n{}", log_tail(&self.log_path(), 20))),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the log contains `needle`; the timeout error quotes the log tail. Fails at once if the agent
    /// exits first.
    pub async fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return Ok(());
            }
            if let Some(status) = self.exit_status() {
                return Err(self.failure(format!("exited ({status}) before logging {needle:?}")));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.failure(format!("no {needle:?} in the log after {timeout:?}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the REST API answers `GET path` at all (any status); fails at once if the agent exits.
    pub async fn wait_for_api(&mut self, path: &str, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let last_error = match self.get(path).await {
                Ok(_) => return Ok(()),
                Err(e) => e.to_string(),
            };
            if let Some(status) = self.exit_status() {
                return Err(self.failure(format!("exited ({status}) before its REST API answered")));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.failure(format!(
                    "REST API {}{path} not answering after {timeout:?} ({last_error})",
                    self.api_url()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET <api_url><path>`: status code and body, whatever the status.
    pub async fn get(&self, path: &str) -> Result<(u16, String)> {
        self.request(reqwest::Method::GET, path, None).await
    }

    /// Any REST call, with an optional JSON body (`POST /switchover`, `PATCH /config`, ...).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        json: Option<&serde_json::Value>,
    ) -> Result<(u16, String)> {
        let mut request = self.http.request(method, format!("{}{path}", self.api_url()));
        if let Some(body) = json {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }

    fn failure(&self, reason: String) -> Error {
        crate::process::server_error(&format!("agent {}", self.context.name), reason, &self.log_path())
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop_blocking(Signal::SIGTERM, DROP_GRACE);
        }
        // A SIGKILLed agent leaves PostgreSQL running by design; tests must not leak it.
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.join("postmaster.pid").exists() {
                    kill_postmaster(&path, DROP_GRACE);
                }
            }
        }
    }
}
