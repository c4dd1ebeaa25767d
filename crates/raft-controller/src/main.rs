//! `patroni_raft_controller [CONFIG]`: runs one voting member of the embedded Raft DCS with no PostgreSQL, so
//! that two database nodes and this witness survive the loss of any one of the three. It reads the `raft`
//! section (`self_addr`, `bind_addr`, `partner_addrs`, `data_dir`, `password`) of a `patroni.yml`, with the
//! usual `PATRONI_*` overrides (`PATRONI_RAFT_SELF_ADDR`, ...), and runs until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use patroni_dcs::raft::{Raft, RaftSettings};
use serde_json::Value;
use tokio::signal::unix::{signal, SignalKind};
use tracing::info;

#[derive(Parser)]
#[command(name = "patroni_raft_controller", version, about = "Raft witness for Patroni's embedded Raft DCS")]
struct Args {
    /// Patroni configuration file (or directory); without it, PATRONI_CONFIGURATION or PATRONI_* variables.
    configfile: Option<PathBuf>,
}

/// Reads the `raft` section from the merged configuration tree. The tree rather than the validated
/// configuration: a witness's file needs nothing but `raft` (no `postgresql`, `restapi` or `name`), which a full
/// agent configuration check would refuse.
fn settings_from_tree(tree: &Value) -> Result<RaftSettings> {
    let Some(raft) = tree.get("raft").filter(|v| v.is_object()) else {
        bail!("the configuration has no raft section");
    };
    let text = |key: &str| -> Result<Option<String>> {
        match raft.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => bail!("raft.{key} must be a string, not {other}"),
        }
    };
    let Some(self_addr) = text("self_addr")? else {
        bail!("raft.self_addr is required: the witness must take part in the consensus");
    };
    let partners: Vec<String> = match raft.get("partner_addrs") {
        None | Some(Value::Null) => Vec::new(),
        // Patroni's environment form: "'ip1:port1','ip2:port2'".
        Some(Value::String(s)) => s
            .split(',')
            .map(|p| p.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(|s| s.trim().to_string()).context("raft.partner_addrs must list strings"))
            .collect::<Result<_>>()?,
        Some(other) => bail!("raft.partner_addrs must be a list of host:port, not {other}"),
    };
    let scope = tree.get("scope").and_then(Value::as_str).unwrap_or("patroni_raft_controller").to_string();
    let mut s = RaftSettings::new(scope, "", self_addr).with_partners(partners);
    if let Some(ns) = tree.get("namespace").and_then(Value::as_str) {
        s.namespace = ns.to_string();
    }
    s.bind_addr = text("bind_addr")?;
    s.password = text("password")?;
    s.data_dir = text("data_dir")?.map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    Ok(s)
}

/// Patroni's log line: `2024-01-01 12:00:00,123 INFO: message`.
struct PatroniFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for PatroniFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "ERROR",
            tracing::Level::WARN => "WARNING",
            tracing::Level::INFO => "INFO",
            _ => "DEBUG",
        };
        write!(writer, "{} {level}: ", chrono::Local::now().format("%Y-%m-%d %H:%M:%S,%3f"))?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("patroni_raft_controller: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .event_format(PatroniFormat)
        .init();
    let env = patroni_config::process_env();
    let (tree, _) = patroni_config::load_tree(args.configfile.as_deref(), &env)
        .map_err(|e| anyhow::anyhow!("cannot read the configuration: {e}"))?;
    let settings = settings_from_tree(&tree)?;
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create raft.data_dir {}", settings.data_dir.display()))?;
    info!("starting Raft witness on {} with partners {:?}", settings.self_addr, settings.partner_addrs);
    let node = Raft::new(settings).await.map_err(|e| anyhow::anyhow!("{e}"))?;

    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut status = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = status.tick() => {
                info!("Raft voters: {:?}; this node leads: {}", node.voters(), node.is_raft_leader());
            }
        }
    }
    info!("stopping the Raft witness");
    node.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_section_in_both_partner_forms() {
        let tree = serde_json::json!({"scope": "demo", "raft": {
            "self_addr": "127.0.0.1:5010", "partner_addrs": ["127.0.0.1:5011", " 127.0.0.1:5012"],
            "data_dir": "/tmp/w", "password": "x"}});
        let s = settings_from_tree(&tree).unwrap();
        assert_eq!(s.partner_addrs, ["127.0.0.1:5011", "127.0.0.1:5012"]);
        assert_eq!((s.scope.as_str(), s.name.as_str()), ("demo", ""));
        assert_eq!(s.password.as_deref(), Some("x"));
        let tree = serde_json::json!({"raft": {"self_addr": "a:1", "partner_addrs": "'b:2','c:3'"}});
        assert_eq!(settings_from_tree(&tree).unwrap().partner_addrs, ["b:2", "c:3"]);
        assert!(settings_from_tree(&serde_json::json!({"raft": {"partner_addrs": []}})).is_err());
        assert!(settings_from_tree(&serde_json::json!({"etcd3": {}})).is_err());
    }
}
