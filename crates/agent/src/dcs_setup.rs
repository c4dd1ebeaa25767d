//! Which DCS backend a configuration selects, and its settings from `patroni.yml`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use patroni_config::{Config, DcsKind, EtcdConfig};
use patroni_dcs::etcd3::{Etcd3, Etcd3Settings};
use patroni_dcs::Dcs;

#[derive(Debug, thiserror::Error)]
pub enum DcsSetupError {
    #[error("no DCS configured: add an etcd3 section (or PATRONI_ETCD3_HOSTS) to the configuration")]
    Missing,
    #[error("the {0} DCS is not supported by this build yet; use etcd3")]
    Unsupported(&'static str),
    #[error(transparent)]
    Dcs(#[from] patroni_dcs::DcsError),
}

/// The etcd v3 settings of a configuration, with the timeouts of the dynamic configuration.
pub fn etcd3_settings(config: &Config, e: &EtcdConfig, name: &str, ttl: Duration, retry: Duration) -> Etcd3Settings {
    let mut s = Etcd3Settings::new(config.scope.clone().unwrap_or_default(), name);
    s.namespace = config.namespace.clone();
    s.citus_group = config.citus.as_ref().and_then(|c| c.group).and_then(|g| u32::try_from(g).ok());
    s.ttl = ttl;
    s.retry_timeout = retry;
    s.host = e.host.clone();
    s.hosts = e.hosts.as_ref().map(|h| h.0.clone()).unwrap_or_default();
    s.use_proxies = e.use_proxies.unwrap_or(false);
    s.url = e.url.clone();
    s.proxy = e.proxy.clone();
    s.srv = e.srv.clone();
    s.srv_suffix = e.srv_suffix.clone();
    s.protocol = e.protocol.clone();
    s.username = e.username.clone();
    s.password = e.password.clone();
    s.cacert = e.cacert.as_ref().map(PathBuf::from);
    s.cert = e.cert.as_ref().map(PathBuf::from);
    s.key = e.key.as_ref().map(PathBuf::from);
    s
}

/// Connects the DCS the configuration names. Only etcd v3 exists so far; the others say so clearly.
pub async fn connect(
    config: &Config,
    name: &str,
    ttl: Duration,
    retry: Duration,
) -> Result<Arc<dyn Dcs>, DcsSetupError> {
    let kinds = config.dcs_kinds();
    let Some(kind) = kinds.first() else { return Err(DcsSetupError::Missing) };
    match kind {
        DcsKind::Etcd3 => {
            let Some(e) = &config.etcd3 else { return Err(DcsSetupError::Missing) };
            let dcs = Etcd3::new(etcd3_settings(config, e, name, ttl, retry)).await?;
            Ok(Arc::new(dcs))
        }
        other => Err(DcsSetupError::Unsupported(other.as_str())),
    }
}
