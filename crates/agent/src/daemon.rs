//! `patroni CONFIG`: start everything, run until SIGTERM/SIGINT, stop gracefully.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use patroni_api::{ApiClient, ApiServer, ClientSettings, NodeStatus, PatroniInfo, ServerSettings};
use patroni_config::{Config, Loaded};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tracing::{error, info};

use crate::member::Addresses;
use crate::pg::PgNode;
use crate::rest_control::{AgentControl, Request};
use crate::runtime::{ApiPublisher, Runtime};

/// Runs the agent; returns the process exit code.
pub fn run(loaded: Loaded, config_path: Option<PathBuf>) -> i32 {
    let log = match crate::logging::init(loaded.config.log.as_ref()) {
        Ok(h) => Some(h),
        Err(e) => {
            eprintln!("patroni: cannot set up logging: {e}");
            None
        }
    };
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    for w in loaded.config.tags.conflicts() {
        tracing::warn!("{w}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let code = match runtime {
        Ok(rt) => match rt.block_on(serve(loaded.config, config_path)) {
            Ok(()) => 0,
            Err(e) if e.is::<AlreadyLogged>() => 1,
            Err(e) => {
                error!("{e:#}");
                1
            }
        },
        Err(e) => {
            eprintln!("patroni: cannot start the async runtime: {e}");
            1
        }
    };
    if let Some(h) = log {
        h.shutdown(Duration::from_secs(2));
    }
    code
}

/// Where other members reach us. Like Patroni, a missing `connect_address` falls back to `listen` (the config
/// loader already warned about it).
fn addresses(config: &Config) -> anyhow::Result<Addresses> {
    let pg = config
        .postgresql
        .connect_address
        .clone()
        .or_else(|| config.postgresql.listen.as_deref().map(first_listen_address))
        .context("neither postgresql.connect_address nor postgresql.listen is set")?;
    let api = config
        .restapi
        .connect_address
        .clone()
        .or_else(|| config.restapi.listen.as_deref().map(first_listen_address))
        .context("neither restapi.connect_address nor restapi.listen is set")?;
    let scheme = if config.restapi.certfile.is_some() { "https" } else { "http" };
    Ok(Addresses {
        conn_url: format!("postgres://{pg}/postgres"),
        api_url: format!("{scheme}://{api}/patroni"),
        proxy_url: config.postgresql.proxy_address.as_ref().map(|p| format!("postgres://{p}/postgres")),
    })
}

/// `0.0.0.0,::1:5432` → `0.0.0.0:5432`: the first address of a listen list with its port.
fn first_listen_address(listen: &str) -> String {
    match listen.rsplit_once(':') {
        Some((hosts, port)) => format!("{}:{port}", hosts.split(',').next().unwrap_or(hosts).trim()),
        None => listen.to_owned(),
    }
}

async fn serve(config: Config, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    // PostgreSQL older than the oldest supported major stops the agent here, before it joins the cluster.
    // (Missing binaries are reported later, where Patroni reports them.)
    if let Ok(binaries) = patroni_postgres::Binaries::from_config(&config.postgresql) {
        if let Err(e @ patroni_postgres::Error::UnsupportedVersion { .. }) = binaries.supported_version().await {
            bail!("{e}");
        }
    }
    if nix::unistd::geteuid().is_root() {
        bail!("Patroni can't be run as root: PostgreSQL refuses to, start patroni as the user that owns the data directory");
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let name = config.name.clone().context("name is not set in the configuration (or PATRONI_NAME)")?;
    let scope = config.scope.clone().context("scope is not set in the configuration (or PATRONI_SCOPE)")?;
    let addresses = addresses(&config)?;
    // Patroni starts from the cached dynamic configuration, bootstrap.dcs only without one.
    let cache = config.postgresql.data_dir.as_deref().map(|d| crate::dynamic_cache::DynamicCache::load(d.as_ref()));
    let boot = cache.as_ref().and_then(|c| c.initial()).unwrap_or_else(|| config.bootstrap_dcs()).timeouts();
    let secs = |v: i64| Duration::from_secs(u64::try_from(v).unwrap_or(10));
    let dcs = crate::dcs_setup::connect(&config, &name, secs(boot.ttl), secs(boot.retry_timeout)).await?;
    // Peers are called as patronictl calls them: the REST API's CA, client certificate and credentials.
    let client_settings = ClientSettings::from_config(config.ctl.as_ref(), Some(&config.restapi));
    let http = ApiClient::peer_http(&client_settings).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Before anything touches PostgreSQL or the member key.
    ensure_unique_name(dcs.as_ref(), &http, &name).await?;
    let watchdog = crate::watchdog::Watchdog::new(
        &config,
        config.postgresql.data_dir.as_deref().map(PathBuf::from),
        patroni_postgres::from_config::pg_ctl_path(&config.postgresql),
    );
    if watchdog.unsupported_but_required() {
        bail!("Configuration requires a watchdog, but watchdog is not supported on this platform.");
    }
    let node = Arc::new(PgNode::new(&config, &name).await.map_err(|e| anyhow::anyhow!("{e}"))?);
    let probe = node.probe();

    let info = PatroniInfo { version: crate::VERSION.into(), scope: scope.clone(), name: name.clone() };
    let (status_tx, status_rx) = watch::channel(Arc::new(NodeStatus::starting(info.clone(), SystemTime::now())));
    let (req_tx, req_rx) = mpsc::channel::<Request>(16);
    let (rt, _published) = Runtime::new(name.clone(), config.clone(), dcs.clone(), node, addresses, http.clone());
    let schedule = crate::rest_control::SharedSchedule::default();
    let rt = rt
        .with_api(req_rx, ApiPublisher { tx: status_tx, info, schedule: schedule.clone() })
        .with_config_path(config_path)
        .with_watchdog(watchdog);
    let rt = match cache {
        Some(cache) => rt.with_dynamic_cache(cache),
        None => rt,
    };
    let mut control = AgentControl::new(dcs, rt.waker(), req_tx.clone(), status_rx.clone(), http);
    control.schedule = schedule;
    control.probe = Some(probe);
    control.failsafe_heartbeat = rt.failsafe_heartbeat();
    if let Some(dir) = config.postgresql.data_dir.as_deref() {
        let file = crate::failsafe_memory::HeartbeatFile::in_data_dir(dir.as_ref());
        // A heartbeat accepted before this agent (re)started still holds it back (failsafe_memory.rs).
        if let Some(remembered) = file.load() {
            if let Ok(mut h) = control.failsafe_heartbeat.lock() {
                *h = Some(remembered);
            }
        }
        control.heartbeat_file = Some(file);
    }
    control.failsafe_slots = rt.slots.failsafe_slots.clone();
    let control = Arc::new(control);

    let settings = ServerSettings::from_restapi(&config.restapi).map_err(|e| anyhow::anyhow!("restapi: {e}"))?;
    let server = ApiServer::bind(&settings, status_rx, control).await.map_err(|e| anyhow::anyhow!("restapi: {e}"))?;
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api_task = tokio::spawn(server.run(async {
        let _ = api_stopped.await;
    }));

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let waker = rt.waker();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    info!("received SIGHUP, reloading the configuration");
                    let _ = req_tx.send(Request::Reload).await;
                    waker.notify_one();
                }
            }
        }
        let _ = shutdown_tx.send(true);
    });

    notify_systemd();
    info!("starting patroni-rs {} as member {name} of cluster {scope}", env!("CARGO_PKG_VERSION"));
    let result = rt.run(shutdown_rx).await;
    let _ = stop_api.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), api_task).await;
    result.map_err(|e| anyhow::anyhow!("{e}"))
}

/// The failure was logged where it happened, in the words Patroni uses; nothing more to print.
#[derive(Debug, thiserror::Error)]
#[error("already logged")]
struct AlreadyLogged;

/// How long the start-up check waits for the DCS and for the other member's REST API (Patroni's request timeout).
const UNIQUE_NAME_TIMEOUT: Duration = Duration::from_secs(3);

/// Refuses to start when a member key with our name exists and its REST API answers: two agents under one name
/// would overwrite each other's member key and fight over one PostgreSQL identity (an operator's naming error
/// turned split brain). Any HTTP answer counts, even an error status; only a failure to get one lets us start,
/// as it does when the key is our own previous run's. A DCS that does not answer within the bound skips the
/// check: the loop reports the DCS problem itself.
async fn ensure_unique_name(dcs: &dyn patroni_dcs::Dcs, http: &reqwest::Client, name: &str) -> anyhow::Result<()> {
    let bound = dcs.retry_timeout().min(UNIQUE_NAME_TIMEOUT);
    let cluster = match tokio::time::timeout(bound, dcs.get_cluster()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::warn!("Can not get cluster from dcs: {e}");
            return Ok(());
        }
        Err(_) => {
            tracing::warn!("Can not get cluster from dcs within {bound:?}");
            return Ok(());
        }
    };
    let Some(api_url) = cluster.get_member(name).and_then(|m| m.api_url()) else { return Ok(()) };
    let Ok(url) = ApiClient::endpoint_url(api_url, "liveness") else { return Ok(()) };
    if http.get(url).timeout(UNIQUE_NAME_TIMEOUT).send().await.is_ok() {
        error!(critical = true, "Can't start; there is already a node named '{name}' running");
        return Err(AlreadyLogged.into());
    }
    Ok(())
}

/// `Type=notify` units wait for READY=1 on the socket systemd names in NOTIFY_SOCKET.
fn notify_systemd() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else { return };
    let path = PathBuf::from(path);
    // An abstract socket is written with a leading '@'.
    let sent = match path.to_str().and_then(|p| p.strip_prefix('@')) {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|addr| sock.send_to_addr(b"READY=1", &addr))
        }
        None => sock.send_to(b"READY=1", &path),
    };
    if let Err(e) = sent {
        tracing::warn!("could not notify systemd: {e}");
    }
}
