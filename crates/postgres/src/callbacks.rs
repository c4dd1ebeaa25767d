//! User callbacks (`on_start`, `on_stop`, `on_restart`, `on_reload`, `on_role_change`), run as
//! `script action role scope` without waiting for them. A new callback kills one still running (with everything it
//! spawned), as Patroni does: only the latest state change matters to the script.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinHandle;

use crate::command::shell_split;
use crate::error::{Error, Result};

/// Which callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallbackAction {
    OnStart,
    OnStop,
    OnRestart,
    OnReload,
    OnRoleChange,
}

impl CallbackAction {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackAction::OnStart => "on_start",
            CallbackAction::OnStop => "on_stop",
            CallbackAction::OnRestart => "on_restart",
            CallbackAction::OnReload => "on_reload",
            CallbackAction::OnRoleChange => "on_role_change",
        }
    }
}

/// `postgresql.callbacks`: command lines per action.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallbackScripts {
    pub on_start: Option<String>,
    pub on_stop: Option<String>,
    pub on_restart: Option<String>,
    pub on_reload: Option<String>,
    pub on_role_change: Option<String>,
}

impl CallbackScripts {
    pub fn get(&self, action: CallbackAction) -> Option<&str> {
        match action {
            CallbackAction::OnStart => self.on_start.as_deref(),
            CallbackAction::OnStop => self.on_stop.as_deref(),
            CallbackAction::OnRestart => self.on_restart.as_deref(),
            CallbackAction::OnReload => self.on_reload.as_deref(),
            CallbackAction::OnRoleChange => self.on_role_change.as_deref(),
        }
        .filter(|s| !s.trim().is_empty())
    }
}

#[derive(Default)]
struct Running {
    pgid: Option<i32>,
    task: Option<JoinHandle<()>>,
}

/// Runs one callback at a time.
#[derive(Clone, Default)]
pub struct CallbackRunner {
    running: Arc<Mutex<Running>>,
}

impl std::fmt::Debug for CallbackRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackRunner")
    }
}

impl CallbackRunner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `script action role scope` in the background, killing a previous callback still running.
    pub fn call(&self, script: &str, action: CallbackAction, role: &str, scope: &str) -> Result<()> {
        let mut words =
            shell_split(script).ok_or_else(|| Error::Config(format!("callback `{script}`: unbalanced quotes")))?;
        if words.is_empty() {
            return Ok(());
        }
        let program = words.remove(0);
        words.extend([action.as_str().to_string(), role.to_string(), scope.to_string()]);

        let mut running = self.running.lock().map_err(|_| Error::State("callback runner lock poisoned".into()))?;
        if let (Some(pgid), Some(task)) = (running.pgid, running.task.as_ref()) {
            if !task.is_finished() {
                tracing::warn!("killing still-running callback (pgid {pgid}) before {}", action.as_str());
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::Signal::SIGKILL);
            }
        }
        tracing::info!("calling callback: {} {}", program, words.join(" "));
        let mut child = tokio::process::Command::new(&program)
            .args(&words)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Spawn { program: program.clone(), source })?;
        let pgid = child.id().and_then(|p| i32::try_from(p).ok());
        let label = format!("{} callback", action.as_str());
        let out = child.stdout.take();
        let err = child.stderr.take();
        let task = tokio::spawn(async move {
            let log_lines = |r: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>, label: String| async move {
                if let Some(r) = r {
                    let mut lines = BufReader::new(r).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        tracing::info!("{label}: {line}");
                    }
                }
            };
            let o = tokio::spawn(log_lines(out.map(|o| Box::new(o) as _), label.clone()));
            let e = tokio::spawn(log_lines(err.map(|e| Box::new(e) as _), label.clone()));
            match child.wait().await {
                Ok(s) if s.success() => tracing::debug!("{label} finished"),
                Ok(s) => tracing::warn!("{label} finished: {}", crate::command::describe_status(s)),
                Err(e) => tracing::warn!("{label}: {e}"),
            }
            // Output of a backgrounded grandchild must not keep this task alive forever.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                let _ = o.await;
                let _ = e.await;
            })
            .await;
        });
        running.pgid = pgid;
        running.task = Some(task);
        Ok(())
    }

    /// Waits for the current callback (if any) to finish.
    pub async fn wait(&self) {
        let task = self.running.lock().ok().and_then(|mut r| r.task.take());
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn runs_with_documented_arguments_and_kills_previous() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let script = dir.path().join("cb.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$@\" >> {}\n[ \"$1\" = on_stop ] && sleep 30\necho done-$1 >> {}\n",
                log.display(),
                log.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let r = CallbackRunner::new();
        let s = script.display().to_string();
        r.call(&s, CallbackAction::OnStop, "primary", "demo").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        r.call(&s, CallbackAction::OnStart, "replica", "demo").unwrap();
        tokio::time::timeout(Duration::from_secs(10), r.wait()).await.unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text, "on_stop primary demo\non_start replica demo\ndone-on_start\n");
    }
}
