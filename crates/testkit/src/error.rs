use std::path::PathBuf;
use std::time::Duration;

/// Everything the kit can fail with. Messages name the server, the path or the command involved, and for a server
/// that failed to start, the last lines of its log: a test failure should explain itself without a rerun.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "timed out after {timeout:?} waiting for {what}{}",
        last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default()
    )]
    Timeout { what: String, timeout: Duration, last_error: Option<String> },

    #[error("{what} not found: {hint}")]
    NotFound { what: String, hint: String },

    #[error("{what}: {reason}\n--- last lines of {} ---\n{log_tail}", log.display())]
    Server { what: String, reason: String, log: PathBuf, log_tail: String },

    #[error("`{command}` failed ({status}):\n{output}")]
    Command { command: String, status: String, output: String },

    #[error("{} cannot be reached by the unprivileged user (uid {uid}): {reason}", path.display())]
    NotReachable { path: PathBuf, uid: u32, reason: String },

    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),

    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),

    #[error("etcd {endpoint} answered {status}: {body}")]
    Etcd { endpoint: String, status: u16, body: String },

    #[error("unexpected answer from {what}: {detail}")]
    Protocol { what: String, detail: String },

    #[error("generating test certificates: {0}")]
    Certificate(#[from] rcgen::Error),

    #[error("{what}: {source}")]
    Os {
        what: String,
        #[source]
        source: nix::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a human context to io errors, which otherwise say "No such file or directory" without saying which.
pub(crate) trait IoContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io { context: context(), source })
    }
}
