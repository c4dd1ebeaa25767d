//! `patronictl` for patroni-rs: the same commands, options, prompts and output as Python Patroni's, reading
//! the cluster from the DCS and acting through the members' REST APIs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), patroni_ctl::context::CtlError> {
//! use clap::Parser;
//! let cli = patroni_ctl::cli::Cli::parse_from(["patronictl", "-d", "etcd3://127.0.0.1:2379", "list", "demo"]);
//! patroni_ctl::run(cli).await
//! # }
//! ```

pub mod cli;
pub mod commands;
pub mod completion;
pub mod context;
pub mod members;
pub mod output;
pub mod prompt;
pub mod yaml;

use std::path::PathBuf;

use context::{Ctl, CtlResult};

/// The Patroni version this patronictl corresponds to.
pub const VERSION: &str = "4.1.5";

/// Loads the configuration the global options point at and runs the command.
pub async fn run(cli: cli::Cli) -> CtlResult<()> {
    let env = patroni_config::process_env();
    let (path, explicit) = match &cli.config_file {
        Some(p) => (PathBuf::from(p), true),
        None => (context::default_config_path(&env), false),
    };
    let config = context::load_config(&path, explicit, cli.dcs_url.as_deref(), &env)?;
    let insecure = cli.insecure || config.ctl.as_ref().and_then(|c| c.insecure).unwrap_or(false);
    let ctl = Ctl { config, insecure };
    commands::run(&ctl, cli.command).await
}
