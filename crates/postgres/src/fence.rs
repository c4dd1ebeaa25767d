//! Fencing: stopping a primary that may no longer hold the leader key, from outside the agent (the guardian).
//!
//! Synchronous on purpose: the guardian is a tiny process with no async runtime, and it has nothing else to do
//! while PostgreSQL stops.

use std::path::Path;
use std::process::{Command, Stdio};

/// How the fence ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Fenced {
    /// A fast shutdown stopped it: connections were refused and sessions ended at once.
    Fast,
    /// The fast shutdown did not finish in time; an immediate shutdown did.
    Immediate,
}

/// Stops the PostgreSQL of `data_dir` with `pg_ctl stop -m fast` (which refuses new connections and ends every
/// session at once, so writes stop the moment the postmaster gets the signal), waiting at most `fast_wait_secs` for
/// it to finish, then `-m immediate`.
pub fn stop_fast_then_immediate(pg_ctl: &Path, data_dir: &Path, fast_wait_secs: u64) -> Result<Fenced, String> {
    let stop = |mode: &str, wait: u64| {
        Command::new(pg_ctl)
            .arg("stop")
            .arg("-D")
            .arg(data_dir)
            .args(["-m", mode, "-w", "-t", &wait.max(1).to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run {}: {e}", pg_ctl.display()))
    };
    if stop("fast", fast_wait_secs)?.success() {
        return Ok(Fenced::Fast);
    }
    if stop("immediate", 30)?.success() {
        return Ok(Fenced::Immediate);
    }
    Err(format!("pg_ctl stop -m immediate failed for {}", data_dir.display()))
}
