//! The guardian: while this member is the leading primary, a separate process (this binary, `--guardian LEASE`, in
//! its own process group so a SIGKILL of the agent or of the agent's group does not reach it) stops PostgreSQL when
//! the leader key was not renewed in time. It covers what Patroni leaves to the kernel watchdog: an agent killed
//! (OOM killer, `kill -9`, a crash) or frozen (SIGSTOP, swap storm) while its PostgreSQL keeps accepting writes
//! after the key expired and a replica was promoted.
//!
//! The channel is one small file in the data directory, `patroni.guardian.json` (the lease), rewritten atomically
//! by the agent after every successful leader-key refresh: the deadline (CLOCK_BOOTTIME milliseconds, the same in
//! every process and immune to wall-clock steps) is the start of that refresh plus the watchdog timeout (`ttl -
//! safety_margin`). The key cannot expire before the refresh start plus `ttl`, so the fence lands `safety_margin`
//! seconds before any replica may race. The guardian holds an exclusive `flock` on `patroni.guardian.lock` for its
//! whole life: an agent that starts while a guardian runs (a restart after SIGKILL) finds the lock taken and simply
//! goes on writing the lease, which is all adoption takes; when the lock is free it starts a new guardian. The
//! agent disarms it by writing a lease with `armed: false` (demotion, pause, release of the key, graceful shutdown).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tracing::{info, warn};

const LEASE: &str = "patroni.guardian.json";
const LOCK: &str = "patroni.guardian.lock";
/// How often the guardian reads the lease: the fence lands at most this late.
const POLL: Duration = Duration::from_millis(100);

/// Milliseconds of CLOCK_BOOTTIME: monotonic, counts suspended time, and shared by all processes.
pub fn boottime_ms() -> i64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() * 1000 + t.tv_nsec() / 1_000_000)
        .unwrap_or(0)
}

/// What the agent tells the guardian.
#[derive(Clone, Debug, PartialEq)]
pub struct Lease {
    pub armed: bool,
    /// CLOCK_BOOTTIME milliseconds at which PostgreSQL is stopped unless the lease is renewed.
    pub deadline_ms: i64,
    pub agent_pid: u32,
    pub data_dir: PathBuf,
    pub pg_ctl: PathBuf,
}

impl Lease {
    fn to_json(&self) -> String {
        json!({
            "armed": self.armed,
            "deadline_ms": self.deadline_ms,
            "agent_pid": self.agent_pid,
            "data_dir": self.data_dir,
            "pg_ctl": self.pg_ctl,
        })
        .to_string()
    }

    fn parse(text: &str) -> Option<Lease> {
        let v: Value = serde_json::from_str(text).ok()?;
        Some(Lease {
            armed: v.get("armed")?.as_bool()?,
            deadline_ms: v.get("deadline_ms")?.as_i64()?,
            agent_pid: u32::try_from(v.get("agent_pid")?.as_u64()?).ok()?,
            data_dir: PathBuf::from(v.get("data_dir")?.as_str()?),
            pg_ctl: PathBuf::from(v.get("pg_ctl")?.as_str()?),
        })
    }

    pub fn read(path: &Path) -> Option<Lease> {
        Lease::parse(&std::fs::read_to_string(path).ok()?)
    }

    /// Write-then-rename, so the guardian never reads half a lease.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(self.to_json().as_bytes())?;
        }
        std::fs::rename(&tmp, path)
    }
}

/// The agent's side: the lease it writes and the guardian it started (if it started one).
pub struct GuardianHandle {
    data_dir: PathBuf,
    pg_ctl: PathBuf,
    child: Option<Child>,
    armed: bool,
}

impl GuardianHandle {
    pub fn new(data_dir: PathBuf, pg_ctl: PathBuf) -> GuardianHandle {
        GuardianHandle { data_dir, pg_ctl, child: None, armed: false }
    }

    fn lease_path(&self) -> PathBuf {
        self.data_dir.join(LEASE)
    }

    pub fn is_armed(&self) -> bool {
        self.armed
    }

    /// Renews the deadline (arming the guardian if needed) and makes sure a guardian runs to enforce it.
    pub fn renew(&mut self, deadline_ms: i64) {
        let lease = Lease {
            armed: true,
            deadline_ms,
            agent_pid: std::process::id(),
            data_dir: self.data_dir.clone(),
            pg_ctl: self.pg_ctl.clone(),
        };
        if let Err(e) = lease.write(&self.lease_path()) {
            warn!("guardian: cannot write {}: {e}", self.lease_path().display());
            return;
        }
        if !self.armed {
            info!("guardian: armed, PostgreSQL is stopped unless the leader key is renewed within its deadline");
        }
        self.armed = true;
        self.ensure_running();
    }

    /// Tells the guardian to exit without touching PostgreSQL.
    pub fn disarm(&mut self) {
        let path = self.lease_path();
        let armed_on_disk = Lease::read(&path).is_some_and(|l| l.armed);
        if !self.armed && !armed_on_disk {
            return;
        }
        let lease = Lease {
            armed: false,
            deadline_ms: 0,
            agent_pid: std::process::id(),
            data_dir: self.data_dir.clone(),
            pg_ctl: self.pg_ctl.clone(),
        };
        match lease.write(&path) {
            Ok(()) => info!("guardian: disarmed"),
            Err(e) => warn!("guardian: cannot write {}: {e}", path.display()),
        }
        self.armed = false;
        self.reap();
    }

    fn reap(&mut self) {
        if let Some(c) = &mut self.child {
            if !matches!(c.try_wait(), Ok(None)) {
                self.child = None;
            }
        }
    }

    /// Starts a guardian unless one holds the lock (ours, or one a previous agent started: adopted as it is).
    fn ensure_running(&mut self) {
        self.reap();
        match guardian_running(&self.data_dir.join(LOCK)) {
            Ok(false) => {}
            Ok(true) => return,
            Err(e) => {
                warn!("guardian: cannot check {}: {e}", self.data_dir.join(LOCK).display());
                return;
            }
        }
        let exe = if Path::new("/proc/self/exe").exists() {
            PathBuf::from("/proc/self/exe")
        } else {
            match std::env::current_exe() {
                Ok(p) => p,
                Err(e) => {
                    warn!("guardian: cannot find my own binary: {e}");
                    return;
                }
            }
        };
        // `ps` shows the agent's own name, not /proc/self/exe.
        let arg0 = std::env::args_os().next().unwrap_or_else(|| "patroni".into());
        let spawned = Command::new(exe)
            .arg0(arg0)
            .arg("--guardian")
            .arg(self.lease_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Its log lines go where the agent's stderr goes.
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn();
        match spawned {
            Ok(child) => {
                info!("guardian: started (pid {})", child.id());
                self.child = Some(child);
            }
            Err(e) => warn!("guardian: cannot start: {e}"),
        }
    }
}

/// Whether a guardian holds the lock of this data directory (it does for its whole life).
fn guardian_running(path: &Path) -> std::io::Result<bool> {
    let f = OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        // Free: nobody guards. Dropping the probe releases it at once.
        Ok(_probe) => Ok(false),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(true),
        Err((_, e)) => Err(e.into()),
    }
}

/// A log line in Patroni's format, on stderr: the guardian has no logging configuration of its own.
fn log(level: &str, msg: &str) {
    let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S,%3f");
    let _ = writeln!(std::io::stderr(), "{now} {level}: guardian: {msg}");
}

fn postmaster_running(data_dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(data_dir.join("postmaster.pid")) else { return false };
    let Some(pid) = text.lines().next().and_then(|l| l.trim().parse::<i32>().ok()) else { return false };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

fn process_alive(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok())
}

/// The guardian process: `patroni --guardian LEASE`. Returns the exit code.
pub fn run(lease_path: &Path) -> i32 {
    let Some(dir) = lease_path.parent() else {
        log("ERROR", &format!("{} has no directory", lease_path.display()));
        return 1;
    };
    let lock_path = dir.join(LOCK);
    let f = match OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path) {
        Ok(f) => f,
        Err(e) => {
            log("ERROR", &format!("cannot open {}: {e}", lock_path.display()));
            return 1;
        }
    };
    // Held until this process ends (by any means): that is how agents know a guardian runs.
    let _lock = match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err(_) => return 0, // another guardian already watches this data directory
    };
    let mut agent: Option<u32> = None;
    let mut agent_gone_logged = false;
    let mut missing_pg = 0;
    loop {
        let Some(lease) = Lease::read(lease_path) else {
            log("INFO", &format!("{} is gone or unreadable, exiting", lease_path.display()));
            return 0;
        };
        if !lease.armed {
            log("INFO", "disarmed by the agent, exiting without touching PostgreSQL");
            return 0;
        }
        if agent != Some(lease.agent_pid) {
            let verb = if agent.is_none() { "watching" } else { "adopted by a new agent," };
            log(
                "INFO",
                &format!(
                    "{verb} agent pid {}; PostgreSQL in {} is stopped if the leader key is not renewed in time",
                    lease.agent_pid,
                    lease.data_dir.display()
                ),
            );
            agent = Some(lease.agent_pid);
            agent_gone_logged = false;
        }
        if !agent_gone_logged && !process_alive(lease.agent_pid) {
            let left = (lease.deadline_ms - boottime_ms()) as f64 / 1000.0;
            log(
                "WARNING",
                &format!(
                    "the agent (pid {}) is gone; PostgreSQL will be stopped in {left:.1} s unless a new agent renews the leader key",
                    lease.agent_pid
                ),
            );
            agent_gone_logged = true;
        }
        if !postmaster_running(&lease.data_dir) {
            missing_pg += 1;
            // A restart by the agent takes a moment; PostgreSQL gone for good leaves nothing to guard.
            if missing_pg >= 30 {
                log("INFO", "PostgreSQL is not running, nothing to guard, exiting");
                return 0;
            }
        } else {
            missing_pg = 0;
        }
        let now = boottime_ms();
        if now >= lease.deadline_ms {
            if !postmaster_running(&lease.data_dir) {
                log("INFO", "leader key not renewed in time, but PostgreSQL is not running; exiting");
                return 0;
            }
            log(
                "WARNING",
                &format!(
                    "leader key not renewed in time ({} ms past the deadline): fencing PostgreSQL (stop -m fast, then immediate)",
                    now - lease.deadline_ms
                ),
            );
            return match patroni_postgres::fence::stop_fast_then_immediate(&lease.pg_ctl, &lease.data_dir, 5) {
                Ok(how) => {
                    log("WARNING", &format!("PostgreSQL fenced ({how:?} shutdown)"));
                    0
                }
                Err(e) => {
                    log("ERROR", &format!("fencing failed: {e}"));
                    1
                }
            };
        }
        std::thread::sleep(POLL);
    }
}
