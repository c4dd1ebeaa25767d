//! The postmaster process: start, stop, signals, adoption of an already running one, and noticing its death.
//!
//! Death detection: a postmaster we started is our child, so a task waiting on it learns of its exit at once
//! (with the exit status). One we adopted (the agent restarted while PostgreSQL kept running) is not our child;
//! there we use a pidfd (Linux ≥ 5.3), which becomes readable the instant the process exits, and fall back to
//! polling `kill(pid, 0)` every [`POLL_INTERVAL`] where pidfds are unavailable. Either way the result is a
//! `watch` channel the HA loop can `select!` on, so a crash is seen without waiting for the next HA cycle.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::watch;

use crate::binaries::{Binaries, Tool};
use crate::error::{Error, Result};

/// Fallback liveness polling interval for adopted postmasters without pidfd support.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// After an immediate shutdown was requested, how long to wait before SIGKILL.
const IMMEDIATE_GRACE: Duration = Duration::from_secs(5);

/// Contents of `postmaster.pid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidFile {
    pub pid: i32,
    pub data_dir: PathBuf,
    /// Postmaster start time, seconds since the epoch.
    pub start_time: i64,
    pub port: Option<u16>,
    pub socket_dir: Option<String>,
    pub listen_address: Option<String>,
    /// `starting`, `stopping`, `ready` or `standby` (PostgreSQL 10+).
    pub status: Option<String>,
}

impl PidFile {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("postmaster.pid")
    }

    pub fn parse(text: &str) -> Option<Self> {
        let lines: Vec<&str> = text.lines().collect();
        let pid = lines.first()?.trim().parse::<i32>().ok().filter(|p| *p > 0)?;
        let non_empty = |i: usize| lines.get(i).map(|s| s.trim()).filter(|s| !s.is_empty()).map(str::to_string);
        Some(PidFile {
            pid,
            data_dir: PathBuf::from(lines.get(1).map(|s| s.trim()).unwrap_or("")),
            start_time: lines.get(2).and_then(|s| s.trim().parse().ok()).unwrap_or(0),
            port: lines.get(3).and_then(|s| s.trim().parse().ok()),
            socket_dir: non_empty(4),
            listen_address: non_empty(5),
            status: non_empty(7),
        })
    }

    /// `None` when there is no pid file (or it is being written and not parseable yet).
    pub fn read(data_dir: &Path) -> Result<Option<Self>> {
        let path = Self::path(data_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Self::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }
}

/// Shutdown modes, as `pg_ctl stop -m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StopMode {
    /// Wait for clients to disconnect (SIGTERM).
    Smart,
    /// Disconnect clients, checkpoint, shut down cleanly (SIGINT).
    Fast,
    /// Abort without a checkpoint; crash recovery on next start (SIGQUIT).
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

impl std::str::FromStr for StopMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "smart" => Ok(StopMode::Smart),
            "fast" => Ok(StopMode::Fast),
            "immediate" => Ok(StopMode::Immediate),
            other => Err(Error::Config(format!("unknown stop mode `{other}` (smart, fast or immediate)"))),
        }
    }
}

/// How the postmaster ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Exit status text when it was our child (`exit code 0`, `killed by signal 9`); unknown for adopted ones.
    pub status: Option<String>,
    /// We asked it to stop; anything else is a crash.
    pub requested: bool,
}

impl Exit {
    pub fn is_crash(&self) -> bool {
        !self.requested
    }
}

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// Stopped in the requested mode.
    Stopped,
    /// The requested mode did not finish in time; an immediate shutdown did.
    EscalatedToImmediate,
    /// Even the immediate shutdown hung; the postmaster and its children were SIGKILLed.
    Killed,
}

/// What [`Postmaster::start`] saw before returning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    /// Accepting connections (`ready` as a primary, `standby` as a hot standby).
    Ready,
    /// Still alive but not accepting connections within the timeout (e.g. a replica replaying WAL).
    StillStarting,
}

/// Options for starting PostgreSQL.
#[derive(Debug, Clone)]
pub struct StartOptions {
    pub data_dir: PathBuf,
    /// Our `postgresql.conf`.
    pub config_file: PathBuf,
    /// `--name=value` settings with top precedence (see [`crate::parameters::command_line_options`]).
    pub options: Vec<String>,
    /// How long to wait for connections to be accepted (`pg_ctl_timeout`).
    pub timeout: Duration,
    /// Append the server's stdout/stderr here instead of inheriting the agent's.
    pub log_file: Option<PathBuf>,
    /// Refuse to start when `listen_addresses:port` is taken, with a clear error, instead of leaving the
    /// postmaster to fail.
    pub check_port: Option<(String, u16)>,
}

impl StartOptions {
    pub fn new(data_dir: impl Into<PathBuf>, config_file: impl Into<PathBuf>) -> Self {
        StartOptions {
            data_dir: data_dir.into(),
            config_file: config_file.into(),
            options: Vec::new(),
            timeout: Duration::from_secs(60),
            log_file: None,
            check_port: None,
        }
    }
}

/// A running postmaster we started or adopted.
#[derive(Debug, Clone)]
pub struct Postmaster {
    pid: i32,
    data_dir: PathBuf,
    adopted: bool,
    stop_requested: Arc<AtomicBool>,
    exit: watch::Receiver<Option<Exit>>,
}

impl Postmaster {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Whether we found it running rather than starting it.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// `Some` once the postmaster has exited.
    pub fn exit(&self) -> Option<Exit> {
        self.exit.borrow().clone()
    }

    pub fn is_alive(&self) -> bool {
        self.exit.borrow().is_none()
    }

    /// A receiver that changes to `Some(exit)` when the postmaster dies; `select!` on `changed()`.
    pub fn watch(&self) -> watch::Receiver<Option<Exit>> {
        self.exit.clone()
    }

    /// Resolves when the postmaster has exited.
    pub async fn wait_exit(&self) -> Exit {
        let mut rx = self.exit.clone();
        loop {
            if let Some(e) = rx.borrow_and_update().clone() {
                return e;
            }
            if rx.changed().await.is_err() {
                // The watcher task is gone; the last value is final.
                return rx
                    .borrow()
                    .clone()
                    .unwrap_or(Exit { status: None, requested: self.stop_requested.load(Ordering::SeqCst) });
            }
        }
    }

    pub fn signal(&self, sig: Signal) -> Result<()> {
        if !self.is_alive() {
            return Err(Error::State(format!("postmaster (pid {}) is not running", self.pid)));
        }
        kill(Pid::from_raw(self.pid), sig)
            .map_err(|e| Error::State(format!("cannot send {sig} to postmaster pid {}: {e}", self.pid)))
    }

    /// Re-reads the configuration files (SIGHUP).
    pub fn reload(&self) -> Result<()> {
        tracing::info!("reloading PostgreSQL configuration (pid {})", self.pid);
        self.signal(Signal::SIGHUP)
    }

    /// Starts PostgreSQL and waits (bounded) until it accepts connections.
    pub async fn start(binaries: &Binaries, opts: &StartOptions) -> Result<(Postmaster, StartOutcome)> {
        check_data_dir(&opts.data_dir)?;
        if let Some(existing) = Self::adopt(&opts.data_dir)? {
            return Err(Error::State(format!(
                "PostgreSQL is already running on {} (pid {})",
                opts.data_dir.display(),
                existing.pid
            )));
        }
        if let Some((addresses, port)) = &opts.check_port {
            check_port_free(addresses, *port)?;
        }
        let program = binaries.path(Tool::Postgres)?;
        let mut cmd = tokio::process::Command::new(&program);
        cmd.arg("-D")
            .arg(&opts.data_dir)
            .arg(format!("--config-file={}", opts.config_file.display()))
            .args(&opts.options)
            .stdin(Stdio::null())
            // Own process group: a ^C meant for the agent must not reach PostgreSQL, and the agent's death
            // (even SIGKILL) leaves PostgreSQL running.
            .process_group(0)
            .kill_on_drop(false);
        match &opts.log_file {
            Some(path) => {
                let f =
                    std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))?;
                let f2 = f.try_clone().map_err(|e| Error::io(path, e))?;
                cmd.stdout(f).stderr(f2);
            }
            None => {
                cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
            }
        }
        tracing::info!(
            "starting PostgreSQL: {} -D {} --config-file={} {}",
            program.display(),
            opts.data_dir.display(),
            opts.config_file.display(),
            opts.options.join(" ")
        );
        let mut child =
            cmd.spawn().map_err(|source| Error::Spawn { program: program.display().to_string(), source })?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| Error::State("postmaster exited immediately after spawn".into()))?;
        let stop_requested = Arc::new(AtomicBool::new(false));
        let (tx, rx) = watch::channel(None);
        let flag = stop_requested.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            let requested = flag.load(Ordering::SeqCst);
            let status_text = match status {
                Ok(s) => crate::command::describe_status(s),
                Err(e) => format!("unknown ({e})"),
            };
            if requested {
                tracing::info!("postmaster (pid {pid}) exited: {status_text}");
            } else {
                tracing::error!("postmaster (pid {pid}) died unexpectedly: {status_text}");
            }
            let _ = tx.send(Some(Exit { status: Some(status_text), requested }));
            // Keep the sender alive until every receiver is gone so `changed()` never errors spuriously.
            tx.closed().await;
        });
        let pm = Postmaster { pid, data_dir: opts.data_dir.clone(), adopted: false, stop_requested, exit: rx };
        let outcome = pm.wait_ready(opts.timeout).await.map_err(|e| match &opts.log_file {
            Some(log) => Error::State(format!("{e}; last lines of {}:\n{}", log.display(), tail(log, 20))),
            None => e,
        })?;
        Ok((pm, outcome))
    }

    /// Polls `postmaster.pid`'s status line (what `pg_ctl -w` reads); needs no credentials.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<StartOutcome> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(exit) = self.exit() {
                return Err(Error::State(format!(
                    "postmaster exited during startup ({})",
                    exit.status.unwrap_or_else(|| "status unknown".into())
                )));
            }
            if let Ok(Some(pf)) = PidFile::read(&self.data_dir) {
                if pf.pid == self.pid && matches!(pf.status.as_deref(), Some("ready") | Some("standby")) {
                    return Ok(StartOutcome::Ready);
                }
            }
            if Instant::now() >= deadline {
                tracing::warn!("PostgreSQL (pid {}) is not accepting connections after {:?}", self.pid, timeout);
                return Ok(StartOutcome::StillStarting);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Finds a postmaster already running on `data_dir`: `postmaster.pid` names a live process whose working
    /// directory is the data directory and which started when the pid file says (guards against pid reuse).
    pub fn adopt(data_dir: &Path) -> Result<Option<Postmaster>> {
        let Some(pf) = PidFile::read(data_dir)? else {
            return Ok(None);
        };
        if !is_postmaster_of(pf.pid, data_dir, pf.start_time)? {
            tracing::info!(
                "postmaster.pid in {} names pid {}, which is not a running postmaster of it",
                data_dir.display(),
                pf.pid
            );
            return Ok(None);
        }
        let stop_requested = Arc::new(AtomicBool::new(false));
        let (tx, rx) = watch::channel(None);
        let pid = pf.pid;
        let flag = stop_requested.clone();
        tokio::spawn(async move {
            wait_foreign_exit(pid).await;
            let requested = flag.load(Ordering::SeqCst);
            if requested {
                tracing::info!("postmaster (pid {pid}) exited");
            } else {
                tracing::error!("postmaster (pid {pid}) died unexpectedly");
            }
            let _ = tx.send(Some(Exit { status: None, requested }));
            tx.closed().await;
        });
        tracing::info!("found PostgreSQL already running on {} (pid {})", data_dir.display(), pid);
        Ok(Some(Postmaster { pid, data_dir: data_dir.to_path_buf(), adopted: true, stop_requested, exit: rx }))
    }

    /// Stops in `mode`; after `timeout` escalates to an immediate shutdown, then to SIGKILL of the postmaster and
    /// its children. Returns once the postmaster is gone.
    pub async fn stop(&self, mode: StopMode, timeout: Duration) -> Result<StopOutcome> {
        if !self.is_alive() {
            return Ok(StopOutcome::Stopped);
        }
        self.stop_requested.store(true, Ordering::SeqCst);
        tracing::info!("stopping PostgreSQL (pid {}) in {:?} mode", self.pid, mode);
        if self.send_if_alive(mode.signal()) && self.exited_within(timeout).await {
            return Ok(StopOutcome::Stopped);
        }
        if mode != StopMode::Immediate {
            tracing::warn!(
                "PostgreSQL (pid {}) did not stop within {:?}; switching to immediate shutdown",
                self.pid,
                timeout
            );
            if self.send_if_alive(Signal::SIGQUIT) && self.exited_within(IMMEDIATE_GRACE).await {
                return Ok(StopOutcome::EscalatedToImmediate);
            }
        }
        tracing::warn!("sending SIGKILL to postmaster (pid {}) and its children", self.pid);
        let children = child_pids(self.pid);
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        for c in children {
            let _ = kill(Pid::from_raw(c), Signal::SIGKILL);
        }
        if self.exited_within(Duration::from_secs(10)).await {
            Ok(StopOutcome::Killed)
        } else {
            Err(Error::State(format!("postmaster (pid {}) survived SIGKILL", self.pid)))
        }
    }

    /// Sends `sig` unless the postmaster is already gone; `false` when it is gone.
    fn send_if_alive(&self, sig: Signal) -> bool {
        self.is_alive() && kill(Pid::from_raw(self.pid), sig).is_ok()
    }

    async fn exited_within(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.wait_exit()).await.is_ok()
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Removes a `postmaster.pid` whose pid now belongs to an unrelated live process (pid reuse after a host crash):
/// PostgreSQL would refuse to start, believing another postmaster runs. Only called once [`Postmaster::adopt`]
/// established it is not a postmaster of this data directory.
pub fn remove_stale_pid_file(data_dir: &Path) -> Result<()> {
    let Some(pf) = PidFile::read(data_dir)? else {
        return Ok(());
    };
    if kill(Pid::from_raw(pf.pid), None).is_ok() && !is_postmaster_of(pf.pid, data_dir, pf.start_time)? {
        let path = PidFile::path(data_dir);
        tracing::warn!("removing stale {} (pid {} is an unrelated process)", path.display(), pf.pid);
        std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// The checks PostgreSQL would make, done first so that the error names the data directory and the fix.
pub fn check_data_dir(data_dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let err = |detail: String| Error::DataDir { path: data_dir.to_path_buf(), detail };
    let meta = std::fs::metadata(data_dir).map_err(|e| err(e.to_string()))?;
    if !meta.is_dir() {
        return Err(err("is not a directory".into()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(err(format!(
            "is owned by uid {} but the agent runs as uid {}; PostgreSQL only starts on a data directory owned by \
             its own user",
            meta.uid(),
            me
        )));
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o027 != 0 {
        return Err(err(format!("has mode {mode:04o}; PostgreSQL requires 0700 (or 0750 for group access)")));
    }
    if !data_dir.join("PG_VERSION").is_file() {
        return Err(err("is not a PostgreSQL data directory (no PG_VERSION)".into()));
    }
    Ok(())
}

/// Binds each listen address on `port` briefly to turn "could not bind" into a clear error before starting.
pub fn check_port_free(addresses: &str, port: u16) -> Result<()> {
    for addr in addresses.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        let host = match addr {
            "*" => "0.0.0.0",
            "localhost" => "127.0.0.1",
            other => other,
        };
        let sock = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => std::net::SocketAddr::new(ip, port),
            // Host names are left to PostgreSQL to resolve and bind.
            Err(_) => continue,
        };
        if let Err(e) = std::net::TcpListener::bind(sock) {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                return Err(Error::State(format!(
                    "cannot start PostgreSQL: port {port} on {host} is already in use (postgresql.listen)"
                )));
            }
        }
    }
    Ok(())
}

/// Is `pid` alive, a process whose cwd is `data_dir` (the postmaster chdirs there) and started at `start_time`?
fn is_postmaster_of(pid: i32, data_dir: &Path, start_time: i64) -> Result<bool> {
    if kill(Pid::from_raw(pid), None).is_err() {
        // ESRCH: gone. EPERM: someone else's process, so not a postmaster we could manage anyway.
        return Ok(false);
    }
    let cwd = match std::fs::read_link(format!("/proc/{pid}/cwd")) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(Error::State(format!(
                "cannot inspect pid {pid} named by {}/postmaster.pid: {e}",
                data_dir.display()
            )))
        }
    };
    let want = std::fs::canonicalize(data_dir).map_err(|e| Error::io(data_dir, e))?;
    if cwd != want {
        return Ok(false);
    }
    if let Some(started) = process_start_time(pid) {
        // The pid file's start time is written by the postmaster right after it starts.
        if start_time > 0 && (started - start_time).abs() > 5 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Process start time in seconds since the epoch, from /proc.
fn process_start_time(pid: i32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let starttime: i64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let btime: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().filter(|t| *t > 0).unwrap_or(100);
    Some(btime + starttime / ticks)
}

/// Direct children of `pid` (PostgreSQL backends and auxiliary processes).
fn child_pids(pid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat")).ok().and_then(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1).and_then(|p| p.parse::<i32>().ok()))
            }) == Some(pid)
        })
        .collect()
}

/// Waits for a process that is not our child to exit.
async fn wait_foreign_exit(pid: i32) {
    if let Some(fd) = pidfd_open(pid) {
        // SAFETY: `fd` is an OwnedFd moved into the AsyncFd, so it stays open and unchanged for its lifetime.
        let registered = unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) };
        if let Ok(async_fd) = registered {
            let _ = async_fd.readable().await;
            return;
        }
    }
    while kill(Pid::from_raw(pid), None).is_ok() {
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

fn pidfd_open(pid: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new file descriptor or -1; no memory is shared.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    let fd = i32::try_from(fd).ok()?;
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// The exit status of a child that ended with `code` (for tests and messages).
pub fn status_from_code(code: i32) -> std::process::ExitStatus {
    std::process::ExitStatus::from_raw(code << 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pid_file() {
        let text =
            "21494\n/tmp/pgsample/d\n1795303255\n54399\n/tmp/pgsample\nlocalhost\n 10029449         4\nready   \n";
        let pf = PidFile::parse(text).unwrap();
        assert_eq!(pf.pid, 21494);
        assert_eq!(pf.data_dir, PathBuf::from("/tmp/pgsample/d"));
        assert_eq!(pf.start_time, 1795303255);
        assert_eq!(pf.port, Some(54399));
        assert_eq!(pf.socket_dir.as_deref(), Some("/tmp/pgsample"));
        assert_eq!(pf.status.as_deref(), Some("ready"));
        assert!(PidFile::parse("").is_none());
        assert!(PidFile::parse("abc\n").is_none());
        assert_eq!(PidFile::parse("12\n/d\n").unwrap().status, None);
    }

    #[tokio::test]
    async fn foreign_exit_is_noticed() {
        let mut child = std::process::Command::new("sleep").arg("0.3").spawn().unwrap();
        let pid = child.id() as i32;
        let reaper = std::thread::spawn(move || child.wait());
        tokio::time::timeout(Duration::from_secs(5), wait_foreign_exit(pid)).await.unwrap();
        reaper.join().unwrap().unwrap();
    }

    #[test]
    fn start_time_of_self() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let t = process_start_time(std::process::id() as i32).unwrap();
        assert!(t <= now + 1 && t > now - 3600, "{t} vs {now}");
    }

    #[test]
    fn port_check() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let err = check_port_free("127.0.0.1", port).unwrap_err().to_string();
        assert!(err.contains("already in use"), "{err}");
        drop(l);
        check_port_free("127.0.0.1", port).unwrap();
    }

    #[test]
    fn data_dir_checks() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = check_data_dir(d.path()).unwrap_err().to_string();
        assert!(err.ends_with("has mode 0755; PostgreSQL requires 0700 (or 0750 for group access)"), "{err}");
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o750)).unwrap();
        let err = check_data_dir(d.path()).unwrap_err().to_string();
        assert!(err.contains("PG_VERSION"), "{err}");
        let err = check_data_dir(&d.path().join("nope")).unwrap_err().to_string();
        assert!(err.contains("No such file"), "{err}");
    }
}
