//! A child server process that is always stopped: explicitly, on drop, or (via the parent-death signal) when the
//! test process dies.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::error::{Error, IoContext, Result};

/// Lines of a server log quoted in errors.
const LOG_TAIL_LINES: usize = 40;

#[derive(Debug)]
pub(crate) struct Supervised {
    name: String,
    child: Child,
    log: PathBuf,
    /// The child leads its own process group, so its whole tree (PostgreSQL backends) can be killed at once.
    own_group: bool,
    exited: Option<ExitStatus>,
}

impl Supervised {
    /// Spawns `cmd` with stdout and stderr appended to `log`. With `own_group` the child leads a new process group.
    pub(crate) fn spawn(name: &str, mut cmd: std::process::Command, log: &Path, own_group: bool) -> Result<Self> {
        let out =
            File::options().create(true).append(true).open(log).context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone().context(|| format!("opening {}", log.display()))?;
        crate::dir::give_to_unprivileged(log)?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        if own_group {
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        let child = cmd.spawn().context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        Ok(Supervised { name: name.to_string(), child, log: log.to_path_buf(), own_group, exited: None })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn nix_pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// The exit status once the process has exited (and been reaped).
    pub(crate) fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
            }
        }
        self.exited
    }

    pub(crate) fn signal(&mut self, signal: Signal) -> Result<()> {
        if self.exit_status().is_some() {
            return Ok(());
        }
        kill(self.nix_pid(), signal).map_err(|source| Error::Os {
            what: format!("sending {signal} to {} (pid {})", self.name, self.pid()),
            source,
        })
    }

    /// Sends `signal`, waits up to `grace` for the exit, then kills (the group, if any) and reaps.
    pub(crate) async fn stop(&mut self, signal: Signal, grace: Duration) -> Result<ExitStatus> {
        self.signal(signal)?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.exit_status() {
                self.kill_group_leftovers();
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(self.kill_now())
    }

    /// Blocking [`Self::stop`], for Drop: `signal`, up to `grace` for the exit, then SIGKILL.
    pub(crate) fn stop_blocking(&mut self, signal: Signal, grace: Duration) -> ExitStatus {
        let _ = self.signal(signal);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exit_status().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill_now()
    }

    /// SIGKILL to the process (and its group), then a bounded blocking reap. For Drop and timeouts.
    pub(crate) fn kill_now(&mut self) -> ExitStatus {
        if let Some(status) = self.exit_status() {
            self.kill_group_leftovers();
            return status;
        }
        let _ = kill(self.nix_pid(), Signal::SIGKILL);
        self.kill_group_leftovers();
        // SIGKILL is not deferrable except in uninterruptible sleep; bounded anyway so a Drop never hangs a test.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.exit_status() {
                return status;
            }
            if Instant::now() >= deadline {
                // Unreaped: report a signal death anyway; the pid is gone from our point of view.
                return std::os::unix::process::ExitStatusExt::from_raw(libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn kill_group_leftovers(&self) {
        if !self.own_group {
            return;
        }
        if killpg(self.nix_pid(), Signal::SIGKILL).is_err() {
            return;
        }
        // Members are not our children, so they cannot be reaped here; wait (bounded) until the kernel has torn
        // them down and their ports are free, so the next test step does not see a ghost.
        let deadline = Instant::now() + Duration::from_secs(3);
        while group_alive(self.child.id()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// An error naming this server, carrying `reason` and the tail of its log.
    pub(crate) fn failure(&self, reason: impl Into<String>) -> Error {
        server_error(&self.name, reason, &self.log)
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.kill_now();
    }
}

pub(crate) fn server_error(name: &str, reason: impl Into<String>, log: &Path) -> Error {
    Error::Server {
        what: name.to_string(),
        reason: reason.into(),
        log: log.to_path_buf(),
        log_tail: log_tail(log, LOG_TAIL_LINES),
    }
}

/// True when a server failed to start because its port was taken (etcd: "bind: address already in use";
/// PostgreSQL: "could not bind ...: Address already in use").
pub(crate) fn is_port_conflict(error: &Error) -> bool {
    match error {
        Error::Server { log_tail, .. } => log_tail.to_ascii_lowercase().contains("address already in use"),
        _ => false,
    }
}

/// The last `lines` lines of a log file, or a note saying why there are none.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(no log: {e})"),
    }
}

/// True while a process with this pid exists and is not a zombie. Orphans are reparented to PID 1, which on some
/// machines (this one: a VM init) reaps them only after seconds; a zombie holds no ports, files or shared memory.
pub fn pid_alive(pid: u32) -> bool {
    match i32::try_from(pid) {
        Ok(raw) if raw > 0 => {
            !matches!(kill(Pid::from_raw(raw), None), Err(nix::errno::Errno::ESRCH))
                && proc_stat(pid).is_none_or(|(state, _)| state != 'Z')
        }
        _ => false,
    }
}

/// True while some non-zombie process is in process group `pgid`.
pub(crate) fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter_map(proc_stat)
        .any(|(state, group)| group == pgid && state != 'Z')
}

/// `(state, process group)` from `/proc/<pid>/stat`.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; the fields after its last ')' are fixed.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestDir;

    #[tokio::test]
    async fn drop_kills_and_reaps() {
        let dir = TestDir::new().unwrap();
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("60");
        let proc = Supervised::spawn("sleep", cmd, &dir.join("log"), true).unwrap();
        let pid = proc.pid();
        assert!(pid_alive(pid));
        drop(proc);
        assert!(!pid_alive(pid));
    }

    #[tokio::test]
    async fn failure_quotes_the_log() {
        let dir = TestDir::new().unwrap();
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "echo first; echo boom >&2; exit 3"]);
        let mut proc = Supervised::spawn("sh", cmd, &dir.join("log"), false).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while proc.exit_status().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(proc.exit_status().unwrap().code(), Some(3));
        let err = proc.failure("exited").to_string();
        assert!(err.contains("boom") && err.contains("first"), "{err}");
    }
}
