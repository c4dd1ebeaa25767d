//! Command line of the `patroni` binary, as Python Patroni's: `patroni [CONFIG]` runs the agent, and the
//! mutually exclusive `--validate-config`, `--generate-sample-config` and `--generate-config` modes work
//! on configurations.

mod checks;

use clap::{ArgGroup, Parser};
use patroni_config::{generate_sample, to_yaml, ConfigError, Diagnostic, EnvMap, Loaded, Mode, SampleContext};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Patroni: PostgreSQL high availability.
#[derive(Debug, Parser)]
#[command(name = "patroni", version, about = "Patroni: PostgreSQL high availability")]
#[command(group(ArgGroup::new("mode").args(["validate_config", "generate_config", "generate_sample_config"])))]
pub struct Cli {
    /// Patroni may also read the configuration from the PATRONI_CONFIGURATION environment variable or from
    /// individual PATRONI_* environment variables.
    #[arg(value_name = "CONFIGFILE")]
    pub configfile: Option<PathBuf>,

    /// Run Patroni configuration validation and exit.
    #[arg(long)]
    pub validate_config: bool,

    /// Generate a Patroni yaml configuration file for a running instance.
    #[arg(long)]
    pub generate_config: bool,

    /// Generate a sample Patroni yaml configuration file.
    #[arg(long)]
    pub generate_sample_config: bool,

    /// Optional DSN string of the instance to be used as a source for config generation. Superuser connection
    /// is required.
    #[arg(long, requires = "generate_config")]
    pub dsn: Option<String>,

    /// Ignore the check of listen ports being already in use. Can only be used with --validate-config.
    #[arg(long, short = 'i', requires = "validate_config")]
    pub ignore_listen_port: bool,

    /// Print out local configuration (incl. environment configuration overrides). Can only be used with
    /// --validate-config.
    #[arg(long, short = 'p', requires = "validate_config")]
    pub print: bool,

    /// Internal: run as the guardian of the PostgreSQL whose lease file is given (started by the agent itself).
    #[arg(long, hide = true, value_name = "LEASE")]
    pub guardian: Option<PathBuf>,
}

/// Exit status of a command.
pub type Code = i32;

fn print_diagnostics(err: &mut impl Write, warnings: &[Diagnostic], errors: &[Diagnostic]) {
    for w in warnings {
        let _ = writeln!(err, "WARNING: {}", w.located());
    }
    for e in errors {
        let _ = writeln!(err, "{}", e.located());
    }
}

/// The configuration path to use: a path that does not exist falls back to the environment, as in Patroni,
/// but says so.
fn effective_path<'p>(path: Option<&'p Path>, err: &mut impl Write) -> Option<&'p Path> {
    match path {
        Some(p) if !p.exists() => {
            let _ = writeln!(
                err,
                "WARNING: configuration file {} does not exist, reading the configuration from the environment",
                p.display()
            );
            None
        }
        other => other,
    }
}

/// Loads and validates to run, printing every warning and error. `None` means invalid (already reported).
pub fn load_reporting(path: Option<&Path>, env: &EnvMap, err: &mut impl Write) -> Option<Loaded> {
    load_reporting_in(path, env, Mode::Run, err)
}

/// [`load_reporting`] with the given strictness.
pub fn load_reporting_in(path: Option<&Path>, env: &EnvMap, mode: Mode, err: &mut impl Write) -> Option<Loaded> {
    let path = effective_path(path, err);
    match patroni_config::load_in_mode(path, env, mode) {
        Ok(loaded) => {
            print_diagnostics(err, &loaded.warnings, &[]);
            Some(loaded)
        }
        Err(ConfigError::Invalid { errors, warnings }) => {
            print_diagnostics(err, &warnings, &errors);
            None
        }
        Err(e) => {
            let _ = writeln!(err, "{e}");
            None
        }
    }
}

/// `--validate-config`: exit status 1 exactly when the configuration is invalid, including what only this
/// machine can tell (binaries, data directory, and listen ports unless `--ignore-listen-port`).
pub fn validate_config(cli: &Cli, env: &EnvMap, out: &mut impl Write, err: &mut impl Write) -> Code {
    let Some(loaded) = load_reporting_in(cli.configfile.as_deref(), env, Mode::Validate, err) else {
        return 1;
    };
    let mut errors = checks::machine_checks(&loaded.config, !cli.ignore_listen_port);
    loaded.origins.annotate(&mut errors);
    print_diagnostics(err, &[], &errors);
    if !errors.is_empty() {
        return 1;
    }
    if cli.print {
        // Python Patroni prints the local configuration with yaml.safe_dump: sorted keys, block style.
        let _ = out.write_all(to_yaml(&loaded.tree, true).as_bytes());
    }
    0
}

/// `--generate-sample-config [FILE]`.
pub fn generate_sample_config(
    cli: &Cli,
    env: &EnvMap,
    ctx: &SampleContext,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Code {
    let text = generate_sample(ctx, env);
    write_generated(cli, &text, out, err)
}

/// Writes a generated configuration to the file the command line names, or to standard output.
pub fn write_generated(cli: &Cli, text: &str, out: &mut impl Write, err: &mut impl Write) -> Code {
    match &cli.configfile {
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => 0,
            Err(e) => {
                let _ = writeln!(err, "cannot write {}: {e}", path.display());
                1
            }
        },
        None => {
            let _ = out.write_all(text.as_bytes());
            0
        }
    }
}
