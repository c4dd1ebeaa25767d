use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while managing PostgreSQL. Each variant names the thing the operator has to
/// look at (a path, a program, a setting) so the message alone is enough to act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("PostgreSQL binary `{name}` not found ({detail})")]
    BinaryNotFound { name: String, detail: String },

    #[error("could not run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{program} did not finish within {timeout:?} and was killed")]
    Timeout { program: String, timeout: Duration },

    #[error("{program} failed ({status}){}", stderr_suffix(.stderr))]
    CommandFailed { program: String, status: String, stderr: String },

    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot parse {what}: {detail}")]
    Parse { what: String, detail: String },

    #[error("PostgreSQL: {}", db_message(.0))]
    Db(#[from] tokio_postgres::Error),

    #[error("PostgreSQL did not answer within {0:?}")]
    DbTimeout(Duration),

    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("data directory {}: {detail}", .path.display())]
    DataDir { path: PathBuf, detail: String },

    #[error("{0}")]
    State(String),

    #[error("PostgreSQL {found} is not supported: patroni-rs runs PostgreSQL {oldest} and newer")]
    UnsupportedVersion { found: String, oldest: u32 },
}

/// tokio-postgres prints only "db error"; the server's message (and SQLSTATE) is what the operator needs.
fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(src) => format!("{e}: {src}"),
            None => e.to_string(),
        },
    }
}

fn stderr_suffix(stderr: &str) -> String {
    let trimmed = stderr.trim();
    if trimmed.is_empty() {
        String::new()
    } else {
        format!(": {trimmed}")
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn parse(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Parse { what: what.into(), detail: detail.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
