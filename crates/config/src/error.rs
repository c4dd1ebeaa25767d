//! Errors of the loading pipeline.

use crate::convert::Diagnostic;
use crate::tree::YamlError;
use std::path::PathBuf;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// What we tried to read.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// YAML syntax error.
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// The document is not a mapping at the top.
    #[error("{0}: the configuration must be a YAML mapping")]
    NotAMapping(String),
    /// The configuration parsed but is not valid; every problem is listed.
    #[error("{}", render(.errors))]
    Invalid {
        /// Every error, with its key path.
        errors: Vec<Diagnostic>,
        /// Warnings found along the way.
        warnings: Vec<Diagnostic>,
    },
}

fn render(errors: &[Diagnostic]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}
