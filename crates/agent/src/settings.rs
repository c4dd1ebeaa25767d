//! The effective settings of one loop: the local configuration merged with the dynamic configuration from the DCS.

use patroni_config::{Config, DynamicConfig, SynchronousMode};
use patroni_ha::{Millis, Settings, SyncCommit, SyncMode, WatchdogMode};

/// What `synchronous_commit` (local over dynamic) makes a commit wait for.
fn sync_commit(config: &Config, dynamic: &DynamicConfig) -> SyncCommit {
    let effective = config.effective(dynamic);
    let value = effective.postgresql.parameters.as_ref().and_then(|p| p.get("synchronous_commit")).cloned();
    match value.as_ref().and_then(serde_json::Value::as_str) {
        Some("remote_apply") => SyncCommit::Apply,
        Some("remote_write") => SyncCommit::Write,
        _ => SyncCommit::Flush,
    }
}

/// Builds the HA core's settings. `dynamic` is the DCS `config` key (or `bootstrap.dcs` before the cluster exists).
pub fn ha_settings(name: &str, config: &Config, dynamic: &DynamicConfig) -> Settings {
    // The dynamic timeouts are adjusted the way Patroni does when they break loop_wait + 2*retry_timeout <= ttl.
    let t = dynamic.timeouts();
    let secs = |v: i64| Millis::from_secs(u64::try_from(v).unwrap_or(0));
    Settings {
        name: name.to_owned(),
        ttl: secs(t.ttl),
        loop_wait: secs(t.loop_wait),
        retry_timeout: secs(t.retry_timeout),
        maximum_lag_on_failover: dynamic.maximum_lag_on_failover(),
        check_timeline: dynamic.check_timeline(),
        primary_start_timeout: secs(dynamic.primary_start_timeout()),
        sync_mode: match dynamic.synchronous_mode() {
            SynchronousMode::Off => SyncMode::Off,
            SynchronousMode::On => SyncMode::On,
            SynchronousMode::Quorum => SyncMode::Quorum,
        },
        sync_strict: dynamic.synchronous_mode_strict(),
        sync_node_count: usize::try_from(dynamic.synchronous_node_count()).unwrap_or(1).max(1),
        maximum_lag_on_syncnode: dynamic.maximum_lag_on_syncnode(),
        sync_commit: sync_commit(config, dynamic),
        pause: dynamic.is_paused(),
        failsafe_mode: dynamic.failsafe_mode(),
        watchdog_mode: match config.watchdog.as_ref().map_or(Default::default(), |w| w.mode.unwrap_or_default()) {
            patroni_config::WatchdogMode::Off => WatchdogMode::Off,
            patroni_config::WatchdogMode::Automatic => WatchdogMode::Automatic,
            patroni_config::WatchdogMode::Required => WatchdogMode::Required,
        },
        watchdog_safety_margin: config.watchdog.as_ref().and_then(|w| w.safety_margin).unwrap_or(5),
        guardian: config.watchdog.as_ref().is_none_or(|w| w.guardian()),
        use_pg_rewind: dynamic.use_pg_rewind(),
        remove_data_directory_on_diverged_timelines: config
            .postgresql
            .remove_data_directory_on_diverged_timelines
            .unwrap_or(false),
        replica_without_leader: patroni_postgres::from_config::replica_without_leader(&config.postgresql),
        standby_cluster: dynamic.is_standby_cluster(),
        tags: crate::core_view::local_tags(&config.tags),
    }
}
