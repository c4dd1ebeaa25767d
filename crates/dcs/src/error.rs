use thiserror::Error;

/// What a DCS call can go wrong with. The HA loop treats the kinds very differently: `Unreachable` may demote a
/// leader, `CompareFailed` means someone else changed the key first.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DcsError {
    /// No endpoint answered within `retry_timeout`, or answered that it cannot serve now.
    #[error("DCS is not reachable: {0}")]
    Unreachable(String),
    /// The compare of a compare-and-set did not hold: the key exists, is owned by someone else, or changed.
    #[error("compare failed on {key}: the key was changed or is held by someone else")]
    CompareFailed { key: String },
    /// The store answered but refused the request (permission, authentication, invalid argument).
    #[error("DCS rejected the request: {0}")]
    Rejected(String),
    /// The settings cannot work (bad URL, unreadable certificate, ...).
    #[error("invalid DCS settings: {0}")]
    Config(String),
    /// The store answered something we cannot read.
    #[error("unexpected answer from the DCS: {0}")]
    Protocol(String),
}

impl DcsError {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, DcsError::Unreachable(_))
    }

    pub fn is_compare_failed(&self) -> bool {
        matches!(self, DcsError::CompareFailed { .. })
    }
}

pub type DcsResult<T> = Result<T, DcsError>;
