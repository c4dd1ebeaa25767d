//! The loading pipeline: file, directory or environment → merged value tree → `PATRONI_*` overrides →
//! typed [`Config`] with every error and warning collected.

use crate::convert::{convert, Diagnostic};
use crate::env::{environment_tree, EnvMap, PATRONI_CONFIGURATION};
use crate::error::ConfigError;
use crate::model::Config;
use crate::tree::{deep_merge, parse_yaml, yaml_files_in};
use crate::validate::validate;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Where the configuration came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// One YAML file.
    File(PathBuf),
    /// A directory of YAML files merged in name order.
    Directory(PathBuf, Vec<PathBuf>),
    /// The `PATRONI_CONFIGURATION` variable.
    ConfigurationVariable,
    /// `PATRONI_*` variables alone.
    Environment,
}

/// A loaded, validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    /// The typed configuration.
    pub config: Config,
    /// Tolerated problems (unknown keys, adjusted values…).
    pub warnings: Vec<Diagnostic>,
    /// The merged value tree the configuration was read from (after environment overrides).
    pub tree: Value,
    /// Where it came from.
    pub source: ConfigSource,
}

fn read_file(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_owned(), source })?;
    let v = parse_yaml(&text, &path.display().to_string())?;
    match v {
        Value::Object(_) => Ok(v),
        Value::Null => Ok(Value::Object(Map::new())),
        _ => Err(ConfigError::NotAMapping(path.display().to_string())),
    }
}

/// Reads a file, or every `*.yml`/`*.yaml` file of a directory in sorted order, deep-merged (later files win).
pub fn read_path(path: &Path) -> Result<(Value, ConfigSource), ConfigError> {
    if path.is_dir() {
        let files = yaml_files_in(path).map_err(|source| ConfigError::Io { path: path.to_owned(), source })?;
        let mut merged = Value::Object(Map::new());
        for f in &files {
            deep_merge(&mut merged, read_file(f)?);
        }
        Ok((merged, ConfigSource::Directory(path.to_owned(), files)))
    } else {
        Ok((read_file(path)?, ConfigSource::File(path.to_owned())))
    }
}

/// Builds the merged value tree without typing it. With a path, the file(s) plus `PATRONI_*` overrides;
/// without one, `PATRONI_CONFIGURATION` alone when set (Patroni ignores every other variable then),
/// otherwise the configuration the `PATRONI_*` variables describe.
pub fn load_tree(path: Option<&Path>, env: &EnvMap) -> Result<(Value, ConfigSource), ConfigError> {
    match path {
        Some(p) => {
            let (mut tree, source) = read_path(p)?;
            deep_merge(&mut tree, environment_tree(env));
            Ok((tree, source))
        }
        None => match env.get(PATRONI_CONFIGURATION) {
            Some(text) if !text.trim().is_empty() => {
                let v = parse_yaml(text, PATRONI_CONFIGURATION)?;
                match v {
                    Value::Object(_) => Ok((v, ConfigSource::ConfigurationVariable)),
                    _ => Err(ConfigError::NotAMapping(PATRONI_CONFIGURATION.to_owned())),
                }
            }
            _ => Ok((environment_tree(env), ConfigSource::Environment)),
        },
    }
}

/// Types and validates a value tree.
pub fn from_tree(tree: Value, source: ConfigSource) -> Result<Loaded, ConfigError> {
    let (cfg, mut cx) = convert::<Config>(&tree, "");
    let Some(config) = cfg else {
        return Err(ConfigError::Invalid { errors: cx.errors, warnings: cx.warnings });
    };
    validate(&config, &mut cx);
    if !cx.errors.is_empty() {
        return Err(ConfigError::Invalid { errors: cx.errors, warnings: cx.warnings });
    }
    Ok(Loaded { config, warnings: cx.warnings, tree, source })
}

/// Loads and validates a configuration: see [`load_tree`] for where it is read from.
pub fn load(path: Option<&Path>, env: &EnvMap) -> Result<Loaded, ConfigError> {
    let (tree, source) = load_tree(path, env)?;
    from_tree(tree, source)
}

/// Loads a configuration from YAML text (plus `PATRONI_*` overrides from `env`).
pub fn load_str(text: &str, env: &EnvMap) -> Result<Loaded, ConfigError> {
    let mut tree = match parse_yaml(text, "<string>")? {
        v @ Value::Object(_) => v,
        Value::Null => Value::Object(Map::new()),
        _ => return Err(ConfigError::NotAMapping("<string>".to_owned())),
    };
    deep_merge(&mut tree, environment_tree(env));
    from_tree(tree, ConfigSource::Environment)
}
