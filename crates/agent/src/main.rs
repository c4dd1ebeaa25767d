//! `patroni`: the agent binary. Command-line handling lives in `cli`; the runtime in the library.

mod cli;

use clap::Parser;
use cli::Cli;
use patroni_config::{process_env, EnvMap, Loaded, SampleContext};
use std::io::Write;

/// Version of the PostgreSQL binaries the environment points at, for the sample's version-dependent parts;
/// `None` when no server binary can be found or run.
fn detect_pg_version(env: &EnvMap) -> Option<patroni_postgres::PgVersion> {
    let bin_dir = env.get("PATRONI_POSTGRESQL_BIN_DIR").filter(|d| !d.is_empty()).map(std::path::PathBuf::from);
    let binaries = patroni_postgres::binaries::Binaries::new(bin_dir, &Default::default()).ok()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    rt.block_on(binaries.version()).ok()
}

/// The sample's facts about this machine, with what the PostgreSQL found there can do. A server older than the
/// oldest supported major still gets a sample (for the version it will be upgraded to), with a warning.
fn sample_context(env: &EnvMap, err: &mut impl Write) -> SampleContext {
    let mut ctx = SampleContext::detect();
    if let Some(version) = detect_pg_version(env) {
        if let Err(e) = version.require_supported() {
            let _ = writeln!(err, "patroni: warning: {e}");
        }
        ctx.wal_keep_segments = version.features().wal_keep() == patroni_postgres::WalKeep::Segments;
    }
    ctx
}

/// Runs the agent with a valid configuration until SIGTERM/SIGINT.
fn run_agent(loaded: Loaded, config_path: Option<std::path::PathBuf>) -> i32 {
    patroni_agent::daemon::run(loaded, config_path)
}

/// `--generate-config [--dsn DSN] [FILE]`: the sample configuration, filled in from a running PostgreSQL (cluster
/// name, data directory, addresses, authentication, parameters), for adopting a standalone server.
fn generate_config(cli: &Cli, env: &EnvMap, out: &mut impl Write, err: &mut impl Write) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(err, "patroni: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let dsn = cli.dsn.clone().unwrap_or_default();
    let mut ctx = SampleContext::detect();
    let found = match rt.block_on(patroni_postgres::generate::generate_config_and_version(&dsn, &ctx.ip)) {
        Ok((v, version)) => {
            // The server's version decides, not the binaries on PATH (they may be another major, or absent).
            ctx.wal_keep_segments = version.features().wal_keep() == patroni_postgres::WalKeep::Segments;
            v
        }
        Err(e) => {
            let _ = writeln!(err, "patroni: {e}");
            return 1;
        }
    };
    let mut tree = patroni_config::sample::sample_tree(&ctx, env);
    patroni_config::deep_merge(&mut tree, found);
    let text = patroni_config::sample::render_config(&tree);
    cli::write_generated(cli, &text, out, err)
}

fn main() {
    let cli = Cli::parse();
    let env = process_env();
    // Unlocked handles: holding stdout/stderr locks here would block every other thread (the agent's
    // logging) that writes to them while the agent runs.
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let code = if cli.validate_config {
        cli::validate_config(&cli, &env, &mut out, &mut err)
    } else if cli.generate_sample_config {
        let ctx = sample_context(&env, &mut err);
        cli::generate_sample_config(&cli, &env, &ctx, &mut out, &mut err)
    } else if cli.generate_config {
        generate_config(&cli, &env, &mut out, &mut err)
    } else {
        match cli::load_reporting(cli.configfile.as_deref(), &env, &mut err) {
            Some(loaded) => run_agent(loaded, cli.configfile.clone()),
            None => 1,
        }
    };
    let _ = out.flush();
    std::process::exit(code);
}
