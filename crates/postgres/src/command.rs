//! Running external programs (initdb, pg_basebackup, user scripts…) as fallible, logged, time-bounded steps.
//!
//! Every child runs in its own process group so that a timeout, or the caller dropping the future, can kill the
//! whole tree a shell script may have spawned, not just the direct child.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// Output kept for error messages; anything longer is still logged line by line, just not kept.
const CAPTURE_LIMIT: usize = 64 * 1024;
/// A backgrounded grandchild may hold our pipes open forever; after the child exits we read at most this long.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// One external program invocation.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    timeout: Option<Duration>,
    label: String,
}

/// What a finished program printed.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

impl Cmd {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        let program = program.into();
        let label = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.display().to_string());
        Cmd { program, args: Vec::new(), envs: Vec::new(), cwd: None, timeout: None, label }
    }

    /// Splits a user-configured command line (`command: /usr/bin/pgbackrest --stanza=x restore`) the way a shell
    /// would, without running a shell.
    pub fn from_command_line(line: &str) -> Result<Self> {
        let words = shell_split(line)
            .ok_or_else(|| Error::Config(format!("cannot parse command line `{line}`: unbalanced quotes")))?;
        let mut iter = words.into_iter();
        let program = iter.next().ok_or_else(|| Error::Config("empty command line".to_string()))?;
        Ok(Cmd::new(program).args(iter))
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    pub fn get_args(&self) -> &[OsString] {
        &self.args
    }

    fn display(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    /// Runs to completion; a non-zero exit is not an error here (see [`Cmd::run`]).
    pub async fn output(self) -> Result<CmdOutput> {
        tracing::info!("running {}", self.display());
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for (k, v) in &self.envs {
            command.env(k, v);
        }
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        let mut child =
            command.spawn().map_err(|source| Error::Spawn { program: self.program.display().to_string(), source })?;
        let guard = GroupGuard(child.id().map(|p| p as i32));
        let out = child.stdout.take().map(|s| spawn_reader(s, self.label.clone(), false));
        let err = child.stderr.take().map(|s| spawn_reader(s, self.label.clone(), true));

        let waited = match self.timeout {
            Some(t) => match tokio::time::timeout(t, child.wait()).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::error!("{} did not finish within {:?}, killing it", self.label, t);
                    drop(guard);
                    let _ = child.wait().await;
                    return Err(Error::Timeout { program: self.label.clone(), timeout: t });
                }
            },
            None => child.wait().await,
        };
        let status = waited.map_err(|source| Error::Spawn { program: self.program.display().to_string(), source })?;
        guard.disarm();
        let stdout = collect(out).await;
        let stderr = collect(err).await;
        if status.success() {
            tracing::debug!("{} finished: {}", self.label, status);
        } else {
            tracing::warn!("{} finished: {}", self.label, status);
        }
        Ok(CmdOutput { status, stdout, stderr })
    }

    /// Runs to completion and turns a non-zero exit into [`Error::CommandFailed`].
    pub async fn run(self) -> Result<CmdOutput> {
        let label = self.label.clone();
        let out = self.output().await?;
        if out.success() {
            Ok(out)
        } else {
            Err(Error::CommandFailed {
                program: label,
                status: describe_status(out.status),
                stderr: if out.stderr.trim().is_empty() { out.stdout.clone() } else { out.stderr.clone() },
            })
        }
    }
}

pub(crate) fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// Kills the child's whole process group unless disarmed; covers both timeouts and a cancelled caller.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            // SAFETY-free: killpg on a group we created; ESRCH just means it is already gone.
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn spawn_reader<R>(reader: R, label: String, is_stderr: bool) -> JoinHandle<String>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        let mut kept = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if is_stderr {
                tracing::info!("{label}: {line}");
            } else {
                tracing::debug!("{label}: {line}");
            }
            if kept.len() + line.len() < CAPTURE_LIMIT {
                kept.push_str(&line);
                kept.push('\n');
            }
        }
        kept
    })
}

async fn collect(handle: Option<JoinHandle<String>>) -> String {
    let Some(mut handle) = handle else {
        return String::new();
    };
    match tokio::time::timeout(DRAIN_GRACE, &mut handle).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => String::new(),
        Err(_) => {
            handle.abort();
            String::new()
        }
    }
}

/// POSIX-shell-like word splitting (quotes and backslashes), enough for configured command lines.
pub(crate) fn shell_split(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        ch => cur.push(ch),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => {
                            let n = chars.next()?;
                            if !matches!(n, '"' | '\\' | '$' | '`') {
                                cur.push('\\');
                            }
                            cur.push(n);
                        }
                        ch => cur.push(ch),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.push(chars.next()?);
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            shell_split(r#"/usr/bin/pgbackrest --stanza='my db' "a \"b\"" c\ d"#).unwrap(),
            vec!["/usr/bin/pgbackrest", "--stanza=my db", "a \"b\"", "c d"]
        );
        assert_eq!(shell_split("  ").unwrap(), Vec::<String>::new());
        assert!(shell_split("'open").is_none());
    }

    #[tokio::test]
    async fn captures_output_and_status() {
        let out = Cmd::new("/bin/sh").args(["-c", "echo out; echo err >&2; exit 3"]).output().await.unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        let err = Cmd::new("/bin/sh").args(["-c", "echo boom >&2; exit 1"]).run().await.unwrap_err();
        assert_eq!(err.to_string(), "sh failed (exit code 1): boom");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("late");
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let err =
            Cmd::new("/bin/sh").args(["-c", &script]).timeout(Duration::from_millis(300)).output().await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "grandchild survived the timeout");
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error() {
        let err = Cmd::new("/nonexistent/prog").output().await.unwrap_err();
        assert!(err.to_string().starts_with("could not run /nonexistent/prog"), "{err}");
    }
}
