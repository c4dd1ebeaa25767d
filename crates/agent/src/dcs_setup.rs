//! Which DCS backend a configuration selects, and its settings from `patroni.yml`.

use std::sync::Arc;
use std::time::Duration;

use patroni_config::{Config, DcsKind};
use patroni_dcs::etcd::Etcd;
use patroni_dcs::etcd3::{Etcd3, Etcd3Settings};
use patroni_dcs::exhibitor::{Exhibitor, ExhibitorSettings};
use patroni_dcs::raft::{Raft, RaftSettings};
use patroni_dcs::zookeeper::{ZooKeeper, ZooKeeperSettings};
use patroni_dcs::Dcs;

#[derive(Debug, thiserror::Error)]
pub enum DcsSetupError {
    #[error("no DCS configured: add an etcd3, etcd, zookeeper or raft section (or PATRONI_ETCD3_HOSTS) to the configuration")]
    Missing,
    #[error("the {0} DCS is not supported by this build yet; use etcd3, etcd, zookeeper, exhibitor or raft")]
    Unsupported(&'static str),
    #[error(transparent)]
    Dcs(#[from] patroni_dcs::DcsError),
}

/// Connects the DCS the configuration names: etcd v3, etcd v2, ZooKeeper (directly or through Exhibitor) or the embedded Raft; the others say so clearly.
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
            let mut settings = Etcd3Settings::from_config(config, e, name);
            settings.ttl = ttl;
            settings.retry_timeout = retry;
            let dcs = Etcd3::new(settings).await?;
            Ok(Arc::new(dcs))
        }
        DcsKind::Etcd => {
            let Some(e) = &config.etcd else { return Err(DcsSetupError::Missing) };
            let mut settings = Etcd3Settings::from_config(config, e, name);
            settings.ttl = ttl;
            settings.retry_timeout = retry;
            Ok(Arc::new(Etcd::new(settings).await?))
        }
        DcsKind::ZooKeeper => {
            let Some(z) = &config.zookeeper else { return Err(DcsSetupError::Missing) };
            let mut settings = ZooKeeperSettings::from_config(config, z, name);
            settings.ttl = ttl;
            settings.retry_timeout = retry;
            Ok(Arc::new(ZooKeeper::new(settings).await?))
        }
        DcsKind::Exhibitor => {
            let Some(x) = &config.exhibitor else { return Err(DcsSetupError::Missing) };
            let mut settings = ExhibitorSettings::from_config(config, x, name);
            settings.zookeeper.ttl = ttl;
            settings.zookeeper.retry_timeout = retry;
            Ok(Arc::new(Exhibitor::new(settings).await?))
        }
        DcsKind::Raft => {
            let Some(r) = &config.raft else { return Err(DcsSetupError::Missing) };
            let mut settings = RaftSettings::from_config(config, r, name);
            settings.ttl = ttl;
            settings.retry_timeout = retry;
            Ok(Arc::new(Raft::new(settings).await?))
        }
        other => Err(DcsSetupError::Unsupported(other.as_str())),
    }
}
