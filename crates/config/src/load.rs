//! The loading pipeline: file, directory or environment → merged value tree → `PATRONI_*` overrides →
//! typed [`Config`] with every error and warning collected.

use crate::convert::{Cx, Diagnostic, FromTree};
use crate::env::{environment_tree_with_origins, EnvMap, PATRONI_CONFIGURATION};
use crate::error::ConfigError;
use crate::model::Config;
use crate::pyyaml::{parse_with_positions, Positions};
use crate::tree::{deep_merge, yaml_files_in};
use crate::validate::validate;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
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
    /// Where each value was written (for messages about values found valid here but wrong later).
    pub origins: Origins,
}

/// Where each value of the merged tree was written: `file:line:column` or `environment variable NAME`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origins(BTreeMap<String, String>);

impl Origins {
    fn add_positions(&mut self, positions: Positions, source: &str) {
        for (path, line, col) in positions {
            if !path.is_empty() {
                self.set(path, format!("{source}:{line}:{col}"));
            }
        }
    }

    /// A later layer replaced the value at `path`: whatever was recorded inside it is stale.
    fn set(&mut self, path: String, origin: String) {
        let dot = format!("{path}.");
        let bracket = format!("{path}[");
        self.0.retain(|k, _| !(k.starts_with(&dot) || k.starts_with(&bracket)));
        self.0.insert(path, origin);
    }

    fn add_env(&mut self, origins: Vec<(String, String)>) {
        for (path, var) in origins {
            self.set(path, format!("environment variable {var}"));
        }
    }

    /// Where the value at `path` (or the nearest enclosing one) was written.
    pub fn of(&self, path: &str) -> Option<&str> {
        let mut p = path;
        loop {
            if let Some(o) = self.0.get(p) {
                return Some(o);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    /// Fills in [`Diagnostic::origin`] from the key paths.
    pub fn annotate(&self, diags: &mut [Diagnostic]) {
        for d in diags {
            d.origin = self.of(&d.path).map(str::to_owned);
        }
    }
}

fn read_file(path: &Path) -> Result<(Value, Positions), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_owned(), source })?;
    let (v, positions) = parse_with_positions(&text, &path.display().to_string())?;
    match v {
        Value::Object(_) => Ok((v, positions)),
        Value::Null => Ok((Value::Object(Map::new()), positions)),
        _ => Err(ConfigError::NotAMapping(path.display().to_string())),
    }
}

fn read_path_with_origins(path: &Path) -> Result<(Value, ConfigSource, Origins), ConfigError> {
    let mut origins = Origins::default();
    if path.is_dir() {
        let files = yaml_files_in(path).map_err(|source| ConfigError::Io { path: path.to_owned(), source })?;
        let mut merged = Value::Object(Map::new());
        for f in &files {
            let (v, positions) = read_file(f)?;
            origins.add_positions(positions, &f.display().to_string());
            deep_merge(&mut merged, v);
        }
        Ok((merged, ConfigSource::Directory(path.to_owned(), files), origins))
    } else {
        let (v, positions) = read_file(path)?;
        origins.add_positions(positions, &path.display().to_string());
        Ok((v, ConfigSource::File(path.to_owned()), origins))
    }
}

/// Reads a file, or every `*.yml`/`*.yaml` file of a directory in sorted order, deep-merged (later files win).
pub fn read_path(path: &Path) -> Result<(Value, ConfigSource), ConfigError> {
    read_path_with_origins(path).map(|(v, s, _)| (v, s))
}

/// [`load_tree`] plus where every value came from.
pub fn load_tree_with_origins(
    path: Option<&Path>,
    env: &EnvMap,
) -> Result<(Value, ConfigSource, Origins), ConfigError> {
    match path {
        Some(p) => {
            let (mut tree, source, mut origins) = read_path_with_origins(p)?;
            let (env_tree, env_origins) = environment_tree_with_origins(env);
            deep_merge(&mut tree, env_tree);
            origins.add_env(env_origins);
            Ok((tree, source, origins))
        }
        None => match env.get(PATRONI_CONFIGURATION) {
            Some(text) if !text.trim().is_empty() => {
                let (v, positions) = parse_with_positions(text, PATRONI_CONFIGURATION)?;
                let mut origins = Origins::default();
                origins.add_positions(positions, PATRONI_CONFIGURATION);
                match v {
                    Value::Object(_) => Ok((v, ConfigSource::ConfigurationVariable, origins)),
                    _ => Err(ConfigError::NotAMapping(PATRONI_CONFIGURATION.to_owned())),
                }
            }
            _ => {
                let (tree, env_origins) = environment_tree_with_origins(env);
                let mut origins = Origins::default();
                origins.add_env(env_origins);
                Ok((tree, ConfigSource::Environment, origins))
            }
        },
    }
}

/// Builds the merged value tree without typing it. With a path, the file(s) plus `PATRONI_*` overrides;
/// without one, `PATRONI_CONFIGURATION` alone when set (Patroni ignores every other variable then),
/// otherwise the configuration the `PATRONI_*` variables describe.
pub fn load_tree(path: Option<&Path>, env: &EnvMap) -> Result<(Value, ConfigSource), ConfigError> {
    load_tree_with_origins(path, env).map(|(v, s, _)| (v, s))
}

/// Types and validates a value tree.
pub fn from_tree(tree: Value, source: ConfigSource) -> Result<Loaded, ConfigError> {
    from_tree_with_origins(tree, source, &Origins::default())
}

/// How strictly to judge a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Loading to run: what Patroni tolerates at run time (values it raises to a minimum, contradictory
    /// tags) is a warning, so every file Patroni runs with loads.
    #[default]
    Run,
    /// `--validate-config`: those are errors too, as Patroni's validator reports them.
    Validate,
}

/// Types and validates a value tree, noting in each diagnostic where the value was written.
pub fn from_tree_with_origins(tree: Value, source: ConfigSource, origins: &Origins) -> Result<Loaded, ConfigError> {
    from_tree_in_mode(tree, source, origins, Mode::Run)
}

/// [`from_tree_with_origins`] with the given strictness.
pub fn from_tree_in_mode(
    tree: Value,
    source: ConfigSource,
    origins: &Origins,
    mode: Mode,
) -> Result<Loaded, ConfigError> {
    let mut cx = Cx::new("");
    cx.strict = mode == Mode::Validate;
    let cfg = Config::from_tree(&tree, &mut cx);
    if let Some(config) = &cfg {
        validate(config, &mut cx);
    }
    origins.annotate(&mut cx.errors);
    origins.annotate(&mut cx.warnings);
    match cfg {
        Some(config) if cx.errors.is_empty() => {
            Ok(Loaded { config, warnings: cx.warnings, tree, source, origins: origins.clone() })
        }
        _ => Err(ConfigError::Invalid { errors: cx.errors, warnings: cx.warnings }),
    }
}

/// Loads and validates a configuration to run with: see [`load_tree`] for where it is read from.
pub fn load(path: Option<&Path>, env: &EnvMap) -> Result<Loaded, ConfigError> {
    load_in_mode(path, env, Mode::Run)
}

/// [`load`] with the given strictness.
pub fn load_in_mode(path: Option<&Path>, env: &EnvMap, mode: Mode) -> Result<Loaded, ConfigError> {
    let (tree, source, origins) = load_tree_with_origins(path, env)?;
    from_tree_in_mode(tree, source, &origins, mode)
}

/// Loads a configuration from YAML text (plus `PATRONI_*` overrides from `env`).
pub fn load_str(text: &str, env: &EnvMap) -> Result<Loaded, ConfigError> {
    load_str_in_mode(text, env, Mode::Run)
}

/// [`load_str`] with the given strictness.
pub fn load_str_in_mode(text: &str, env: &EnvMap, mode: Mode) -> Result<Loaded, ConfigError> {
    let (tree, positions) = parse_with_positions(text, "<string>")?;
    let mut tree = match tree {
        v @ Value::Object(_) => v,
        Value::Null => Value::Object(Map::new()),
        _ => return Err(ConfigError::NotAMapping("<string>".to_owned())),
    };
    let mut origins = Origins::default();
    origins.add_positions(positions, "<string>");
    let (env_tree, env_origins) = environment_tree_with_origins(env);
    deep_merge(&mut tree, env_tree);
    origins.add_env(env_origins);
    from_tree_in_mode(tree, ConfigSource::Environment, &origins, mode)
}
