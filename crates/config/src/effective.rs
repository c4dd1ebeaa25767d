//! The configuration a member runs with: dynamic configuration from the DCS, overridden by the local file
//! and environment, as documented in Patroni's "Important rules".

use crate::dynamic::{DynamicConfig, Timeouts};
use crate::model::{Config, PostgresqlConfig};
use crate::params::effective_parameters;

/// Local configuration merged over the dynamic one.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveConfig {
    /// `ttl`, `loop_wait`, `retry_timeout` after Patroni's adjustments.
    pub timeouts: Timeouts,
    /// The dynamic configuration as stored in the DCS.
    pub dynamic: DynamicConfig,
    /// The `postgresql` section members act on: dynamic `postgresql` keys, then local ones on top
    /// (except `use_slots`, which is cluster-wide), with `parameters` combined by
    /// [`effective_parameters`].
    pub postgresql: PostgresqlConfig,
    /// Replication slots on (from the dynamic configuration only).
    pub use_slots: bool,
    /// Everything that was adjusted or dropped, in words for the log.
    pub warnings: Vec<String>,
}

impl EffectiveConfig {
    /// Builds the effective configuration from the local `config` and the cluster's `dynamic` one.
    pub fn new(config: &Config, dynamic: &DynamicConfig) -> Self {
        let (timeouts, mut warnings) = dynamic.raw_timeouts().adjusted();
        let dpg = dynamic.postgresql.clone().unwrap_or_default();
        let mut pg = config.postgresql.clone();
        // Local keys win; dynamic values fill what the local file leaves out.
        if pg.use_pg_rewind.is_none() {
            pg.use_pg_rewind = dpg.use_pg_rewind;
        }
        if pg.pg_hba.is_none() {
            pg.pg_hba = dpg.pg_hba.clone();
        }
        if pg.pg_ident.is_none() {
            pg.pg_ident = dpg.pg_ident.clone();
        }
        if pg.recovery_conf.is_none() {
            pg.recovery_conf = dpg.recovery_conf.clone();
        }
        for (k, v) in &dpg.extra {
            // Settings that only make sense per member are never taken from the DCS.
            const LOCAL_ONLY: &[&str] =
                &["connect_address", "proxy_address", "listen", "config_dir", "data_dir", "pgpass", "authentication"];
            if !LOCAL_ONLY.contains(&k.as_str()) && !PostgresqlConfig::KEYS.contains(&k.as_str()) {
                pg.extra.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let (params, pw) = effective_parameters(dpg.parameters.as_ref(), config.postgresql.parameters.as_ref());
        warnings.extend(pw);
        pg.parameters = Some(params);
        let use_slots = dynamic.use_slots();
        pg.use_slots = Some(use_slots);
        Self { timeouts, dynamic: dynamic.clone(), postgresql: pg, use_slots, warnings }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::load_str;
    use serde_json::json;

    #[test]
    fn local_wins_except_slots_and_controlled_parameters() {
        let yaml = r"
scope: s
name: n1
restapi: {listen: ':8008', connect_address: 'h:8008'}
etcd3: {host: 'h:2379'}
postgresql:
  listen: '*:5432'
  connect_address: 'h:5432'
  data_dir: /d
  use_slots: false
  use_pg_rewind: false
  parameters: {work_mem: 8MB, max_connections: 1000}
  authentication:
    superuser: {username: p}
    replication: {username: r}
";
        let loaded = load_str(yaml, &Default::default()).unwrap();
        let dynamic = DynamicConfig::from_value(&json!({
            "ttl": 30, "loop_wait": 25, "retry_timeout": 10,
            "postgresql": {"use_pg_rewind": true, "use_slots": true, "pg_hba": ["host all all all md5"],
                           "parameters": {"max_connections": 200, "work_mem": "4MB"}}
        }))
        .unwrap();
        let e = EffectiveConfig::new(&loaded.config, &dynamic);
        assert_eq!(e.postgresql.use_pg_rewind, Some(false));
        assert!(e.use_slots);
        assert_eq!(e.postgresql.pg_hba.as_deref(), Some(&["host all all all md5".to_owned()][..]));
        let p = e.postgresql.parameters.as_ref().unwrap();
        assert_eq!(p["work_mem"], json!("8MB"));
        assert_eq!(p["max_connections"], json!(200));
        assert_eq!(e.timeouts.loop_wait, 10);
        assert_eq!(e.warnings.len(), 2, "{:?}", e.warnings);
    }
}
