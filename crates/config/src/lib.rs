//! `patroni-config`: the typed model of `patroni.yml`, the `PATRONI_*` environment overrides, the dynamic
//! configuration kept in the DCS, and the loading pipeline that ties them together.
//!
//! Loading never stops at the first problem: every wrong value is reported with its key path and where it
//! was written (`file:line:column` or the `PATRONI_*` variable), and keys the schema does not know are
//! warnings (and are kept), as in Patroni. [`Mode::Run`] accepts every file Patroni runs with (values
//! Patroni adjusts or ignores are warnings); [`Mode::Validate`] is as strict as `patroni --validate-config`.
//!
//! Where things are:
//! - [`load()`], [`load_str`], [`load_tree`]: file, directory of `*.yml` (merged like Patroni's
//!   `patch_config`), `PATRONI_CONFIGURATION`, or the `PATRONI_*` variables alone ([`mod@env`]).
//! - [`Config`] and its sections ([`model`]); [`DynamicConfig`] (the DCS `config` key, defaults via
//!   accessors, [`Timeouts`] for `loop_wait + 2*retry_timeout <= ttl`); [`EffectiveConfig`] (local over
//!   dynamic); [`CONTROLLED_PARAMETERS`] and [`effective_parameters`] ([`params`]).
//! - [`parse_yaml`] / [`to_yaml`]: YAML read and written exactly as PyYAML's `safe_load` / `safe_dump`
//!   ([`to_yaml_with`] for `width` and flow style, as patronictl dumps).
//! - [`parse_duration`], [`parse_size`] ([`units`]); [`generate_sample`] ([`sample`]).
//!
//! ```
//! use patroni_config::{load_str, EnvMap};
//!
//! let yaml = "
//! scope: batman
//! name: node1
//! restapi: {listen: 0.0.0.0:8008, connect_address: 10.0.0.1:8008}
//! etcd3: {hosts: 10.0.0.5:2379}
//! postgresql:
//!   listen: 0.0.0.0:5432
//!   connect_address: 10.0.0.1:5432
//!   data_dir: /var/lib/postgresql/data
//!   authentication:
//!     superuser: {username: postgres, password: secret}
//!     replication: {username: replicator, password: rep-pass}
//! ";
//! let mut env = EnvMap::new();
//! env.insert("PATRONI_NAME".into(), "node2".into());
//! let loaded = load_str(yaml, &env).unwrap();
//! assert_eq!(loaded.config.name.as_deref(), Some("node2"));
//! assert_eq!(loaded.config.namespace, "/service/");
//! assert_eq!(loaded.config.bootstrap_dcs().ttl(), 30);
//! ```

pub mod convert;
pub mod dynamic;
pub mod effective;
pub mod env;
pub mod error;
pub mod load;
pub mod model;
pub mod params;
mod pyyaml;
pub mod sample;
pub mod tree;
pub mod units;
mod validate;
pub mod yaml_out;

pub use convert::{Cx, Diagnostic, StringList};
pub use dynamic::{
    DynamicConfig, DynamicConfigError, DynamicPostgresql, IgnoreSlot, SlotConfig, SlotFields, StandbyCluster,
    SynchronousMode, Timeouts,
};
pub use effective::EffectiveConfig;
pub use env::{environment_tree, environment_tree_with_origins, process_env, EnvMap, PATRONI_CONFIGURATION};
pub use error::ConfigError;
pub use load::{
    from_tree_in_mode, from_tree_with_origins, load, load_in_mode, load_str, load_str_in_mode, load_tree,
    load_tree_with_origins, read_path, ConfigSource, Loaded, Mode, Origins,
};
pub use model::*;
pub use params::{controlled, effective_parameters, ControlledParameter, ParamRule, CONTROLLED_PARAMETERS};
pub use sample::{generate_sample, render_config, sample_tree, SampleContext};
pub use tree::{deep_merge, parse_yaml, YamlError};
pub use units::{parse_duration, parse_size, Duration, Size, UnitError};
pub use validate::{split_host_port, validate_dynamic};
pub use yaml_out::{to_yaml, to_yaml_width, to_yaml_with, DumpOptions};
