//! Dynamic configuration: the JSON document kept in the DCS `config` key and applied on every member.
//!
//! Every field is optional and absent fields keep their Patroni default through the accessor methods, so a
//! document written by Python Patroni (or by `patronictl edit-config`) reads back and serializes without
//! gaining or losing keys. Unknown keys are kept in `extra`.

use crate::convert::{convert, section, Cx, Diagnostic, FromTree};
use crate::units::{Duration, Size};
use indexmap::IndexMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// Patroni's default leader-key TTL, seconds.
pub const DEFAULT_TTL: i64 = 30;
/// Patroni's default loop interval, seconds.
pub const DEFAULT_LOOP_WAIT: i64 = 10;
/// Patroni's default DCS/PostgreSQL retry timeout, seconds.
pub const DEFAULT_RETRY_TIMEOUT: i64 = 10;
/// Smallest `ttl` Patroni accepts (smaller values are raised to it).
pub const MIN_TTL: i64 = 20;
/// Smallest `loop_wait`.
pub const MIN_LOOP_WAIT: i64 = 1;
/// Smallest `retry_timeout`.
pub const MIN_RETRY_TIMEOUT: i64 = 3;
/// Default `maximum_lag_on_failover`, bytes.
pub const DEFAULT_MAXIMUM_LAG_ON_FAILOVER: u64 = 1_048_576;
/// Default `primary_start_timeout`, seconds.
pub const DEFAULT_PRIMARY_START_TIMEOUT: i64 = 300;
/// Default `member_slots_ttl`, seconds.
pub const DEFAULT_MEMBER_SLOTS_TTL: u64 = 1800;

/// `synchronous_mode`: `false`, `true` or `"quorum"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SynchronousMode {
    /// Asynchronous replication (default).
    #[default]
    Off,
    /// Classic synchronous mode.
    On,
    /// Quorum-based synchronous mode.
    Quorum,
}

impl SynchronousMode {
    /// Whether any synchronous mode is on.
    pub fn is_enabled(self) -> bool {
        self != SynchronousMode::Off
    }
}

impl Serialize for SynchronousMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SynchronousMode::Off => s.serialize_bool(false),
            SynchronousMode::On => s.serialize_bool(true),
            SynchronousMode::Quorum => s.serialize_str("quorum"),
        }
    }
}

impl FromTree for SynchronousMode {
    fn from_tree(v: &Value, cx: &mut Cx) -> Option<Self> {
        let r = match v {
            Value::Bool(true) => Some(SynchronousMode::On),
            Value::Bool(false) => Some(SynchronousMode::Off),
            Value::String(s) if s.eq_ignore_ascii_case("quorum") => Some(SynchronousMode::Quorum),
            Value::String(s) => {
                crate::convert::parse_bool(s).map(|b| if b { SynchronousMode::On } else { SynchronousMode::Off })
            }
            _ => None,
        };
        if r.is_none() {
            cx.error("expected a boolean or \"quorum\"");
        }
        r
    }
}

section! {
    /// `postgresql` inside the dynamic configuration.
    #[derive(Default)]
    pub struct DynamicPostgresql {
        /// Use pg_rewind on a former leader (default false).
        use_pg_rewind: Option<bool>,
        /// Use replication slots (default true).
        use_slots: Option<bool>,
        /// PostgreSQL parameters shared by all members.
        parameters: Option<Map<String, Value>>,
        /// Lines of `pg_hba.conf`.
        pg_hba: Option<Vec<String>>,
        /// Lines of `pg_ident.conf`.
        pg_ident: Option<Vec<String>>,
        /// Recovery settings for replicas.
        recovery_conf: Option<Map<String, Value>>,
    }
}

section! {
    /// `standby_cluster`: this cluster replicates from a remote primary.
    #[derive(Default)]
    pub struct StandbyCluster {
        /// Remote host.
        host: Option<String>,
        /// Remote port.
        port: Option<u16>,
        /// Slot to use on the remote node.
        primary_slot_name: Option<String>,
        /// Methods to create the standby leader.
        create_replica_methods: Option<Vec<String>>,
        /// WAL restore command.
        restore_command: Option<String>,
        /// Archive cleanup command.
        archive_cleanup_command: Option<String>,
        /// Delay before applying WAL (a PostgreSQL time value, e.g. `"1h"` or milliseconds).
        recovery_min_apply_delay: Option<Value>,
    }
}

section! {
    /// The properties of a permanent replication slot under `slots`.
    #[derive(Default)]
    pub struct SlotFields {
        /// `physical` or `logical`.
        r#type: Option<String> = "type",
        /// Database of a logical slot.
        database: Option<String>,
        /// Output plugin of a logical slot.
        plugin: Option<String>,
    }
}

section! {
    /// An entry of `ignore_slots`: any slot matching all given properties is left alone.
    #[derive(Default)]
    pub struct IgnoreSlot {
        /// Slot name.
        name: Option<String>,
        /// `physical` or `logical`.
        r#type: Option<String> = "type",
        /// Database.
        database: Option<String>,
        /// Plugin.
        plugin: Option<String>,
    }
}

section! {
    /// The cluster-wide dynamic configuration (DCS `config` key, `bootstrap.dcs`).
    #[derive(Default)]
    pub struct DynamicConfig {
        /// Leader key TTL, seconds (default 30, minimum 20).
        ttl: Option<i64>,
        /// Seconds between HA loop runs (default 10, minimum 1).
        loop_wait: Option<i64>,
        /// Retry timeout for DCS and PostgreSQL operations, seconds (default 10, minimum 3).
        retry_timeout: Option<i64>,
        /// Maximum lag in bytes for a failover candidate (default 1048576).
        maximum_lag_on_failover: Option<Size>,
        /// Maximum lag of a synchronous standby before it is swapped (default -1: never).
        maximum_lag_on_syncnode: Option<i64>,
        /// Timeline history entries kept in the DCS (0: all).
        max_timelines_history: Option<i64>,
        /// Seconds a crashed primary may take to recover before failover (default 300).
        primary_start_timeout: Option<i64>,
        /// Seconds before SIGKILL when stopping in synchronous mode (<= 0: never).
        primary_stop_timeout: Option<i64>,
        /// Deprecated spelling of `primary_start_timeout`.
        master_start_timeout: Option<i64>,
        /// Deprecated spelling of `primary_stop_timeout`.
        master_stop_timeout: Option<i64>,
        /// Synchronous replication mode.
        synchronous_mode: Option<SynchronousMode>,
        /// Never fall back to asynchronous replication.
        synchronous_mode_strict: Option<bool>,
        /// Number of synchronous standbys (default 1).
        synchronous_node_count: Option<i64>,
        /// DCS failsafe mode.
        failsafe_mode: Option<bool>,
        /// Check timelines during the leader race.
        check_timeline: Option<bool>,
        /// PostgreSQL settings shared by all members.
        postgresql: Option<DynamicPostgresql>,
        /// Standby cluster settings.
        standby_cluster: Option<StandbyCluster>,
        /// Permanent replication slots.
        slots: Option<IndexMap<String, SlotConfig>>,
        /// Slots Patroni must not touch.
        ignore_slots: Option<Vec<IgnoreSlot>>,
        /// How long slots of vanished members are kept (default 30min).
        member_slots_ttl: Option<Duration>,
        /// Maintenance mode.
        pause: Option<bool>,
    }
}

/// A permanent replication slot under `slots`. Patroni reads any false-like value (`null`, `0`, `""`, `false`,
/// `{}`, `[]`) as a physical slot, so those read as a slot without properties.
#[derive(Clone, Debug, PartialEq, Default, Serialize)]
#[serde(transparent)]
pub struct SlotConfig(pub SlotFields);

impl std::ops::Deref for SlotConfig {
    type Target = SlotFields;
    fn deref(&self) -> &SlotFields {
        &self.0
    }
}

impl crate::convert::SkipSerializing for SlotConfig {
    fn skip(&self) -> bool {
        false
    }
}

impl FromTree for SlotConfig {
    fn from_tree(v: &Value, cx: &mut Cx) -> Option<Self> {
        let false_like = match v {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Number(n) => n.as_f64() == Some(0.0),
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(_) => false,
        };
        if false_like {
            return Some(SlotConfig::default());
        }
        SlotFields::from_tree(v, cx).map(SlotConfig)
    }
}

/// Result of checking `loop_wait + 2 * retry_timeout <= ttl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Leader key TTL, seconds.
    pub ttl: i64,
    /// Loop interval, seconds.
    pub loop_wait: i64,
    /// Retry timeout, seconds.
    pub retry_timeout: i64,
}

impl Timeouts {
    /// True when `loop_wait + 2 * retry_timeout <= ttl`.
    pub fn satisfies_rule(&self) -> bool {
        self.loop_wait + 2 * self.retry_timeout <= self.ttl
    }

    /// Brings values into range the way Patroni does and says what was changed: each value is raised to
    /// its minimum; then if even `loop_wait = 1` breaks the rule, `loop_wait` becomes 1 and `retry_timeout`
    /// `(ttl - 1) / 2`; otherwise only `loop_wait` is reduced to `ttl - 2 * retry_timeout`.
    pub fn adjusted(self) -> (Timeouts, Vec<String>) {
        let mut warnings = Vec::new();
        let mut raise = |name: &str, v: i64, min: i64| {
            if v < min {
                warnings.push(format!("{name}={v} can't be smaller than {min}, adjusting..."));
                min
            } else {
                v
            }
        };
        let loop_wait = raise("loop_wait", self.loop_wait, MIN_LOOP_WAIT);
        let retry_timeout = raise("retry_timeout", self.retry_timeout, MIN_RETRY_TIMEOUT);
        let ttl = raise("ttl", self.ttl, MIN_TTL);
        let mut out = Timeouts { ttl, loop_wait, retry_timeout };
        if MIN_LOOP_WAIT + 2 * retry_timeout > ttl {
            out.loop_wait = MIN_LOOP_WAIT;
            out.retry_timeout = (ttl - MIN_LOOP_WAIT) / 2;
            warnings.push(format!(
                "Violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl={ttl}. Adjusting loop_wait \
                 from {loop_wait} to {} and retry_timeout from {retry_timeout} to {}",
                out.loop_wait, out.retry_timeout
            ));
        } else if loop_wait + 2 * retry_timeout > ttl {
            out.loop_wait = ttl - 2 * retry_timeout;
            warnings.push(format!(
                "Violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl={ttl} and \
                 retry_timeout={retry_timeout}. Adjusting loop_wait from {loop_wait} to {}",
                out.loop_wait
            ));
        }
        (out, warnings)
    }
}

/// Why a dynamic configuration document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DynamicConfigError {
    /// Not JSON.
    #[error("dynamic configuration is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but some values have the wrong type.
    #[error("invalid dynamic configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Diagnostic>),
}

impl DynamicConfig {
    /// Parses the JSON text of the DCS `config` key. An empty document is an empty configuration.
    pub fn from_json(text: &str) -> Result<Self, DynamicConfigError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let v: Value = serde_json::from_str(text)?;
        Self::from_value(&v)
    }

    /// Reads an already parsed value (the `bootstrap.dcs` tree, a REST `PATCH /config` body…).
    pub fn from_value(v: &Value) -> Result<Self, DynamicConfigError> {
        let (cfg, cx) = convert::<Self>(v, "");
        match cfg {
            Some(c) if cx.errors.is_empty() => Ok(c),
            _ => Err(DynamicConfigError::Invalid(cx.errors)),
        }
    }

    /// Reads what can be read and returns the problems instead of failing: a member must keep running
    /// when someone else wrote a bad value into the DCS. Bad values fall back to their defaults.
    pub fn from_value_lossy(v: &Value) -> (Self, Vec<Diagnostic>) {
        let (cfg, cx) = convert::<Self>(v, "");
        (cfg.unwrap_or_default(), cx.errors)
    }

    /// Range and consistency problems (`ttl` below 20, invalid controlled parameters, a logical slot without
    /// plugin…) as `(errors, warnings)`, e.g. to refuse a bad `PATCH /config` or `edit-config`.
    pub fn check(&self) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
        let mut cx = Cx::new("");
        cx.strict = true;
        crate::validate::validate_dynamic(self, "", &mut cx);
        let strip = |mut d: Diagnostic| {
            d.path = d.path.trim_start_matches('.').to_owned();
            d
        };
        (cx.errors.into_iter().map(strip).collect(), cx.warnings.into_iter().map(strip).collect())
    }

    /// The JSON text Patroni stores in the DCS. Keys keep their order and unknown keys are kept, but values
    /// written with units are normalized (`member_slots_ttl: "30min"` becomes `1800`, `"30"` becomes `30`):
    /// to change a document someone else wrote without touching the rest, patch its JSON and use this type
    /// to read and [`check`](Self::check) the result.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The value tree of this configuration.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Object(Map::new()))
    }

    /// `ttl`, `loop_wait` and `retry_timeout` as configured (defaults filled in), not yet adjusted.
    pub fn raw_timeouts(&self) -> Timeouts {
        Timeouts {
            ttl: self.ttl.unwrap_or(DEFAULT_TTL),
            loop_wait: self.loop_wait.unwrap_or(DEFAULT_LOOP_WAIT),
            retry_timeout: self.retry_timeout.unwrap_or(DEFAULT_RETRY_TIMEOUT),
        }
    }

    /// The timeouts Patroni actually uses, after [`Timeouts::adjusted`].
    pub fn timeouts(&self) -> Timeouts {
        self.raw_timeouts().adjusted().0
    }

    /// Leader key TTL in seconds, adjusted.
    pub fn ttl(&self) -> i64 {
        self.timeouts().ttl
    }
    /// Loop interval in seconds, adjusted.
    pub fn loop_wait(&self) -> i64 {
        self.timeouts().loop_wait
    }
    /// Retry timeout in seconds, adjusted.
    pub fn retry_timeout(&self) -> i64 {
        self.timeouts().retry_timeout
    }
    /// Maximum failover lag in bytes.
    pub fn maximum_lag_on_failover(&self) -> u64 {
        self.maximum_lag_on_failover.map_or(DEFAULT_MAXIMUM_LAG_ON_FAILOVER, Size::bytes)
    }
    /// Maximum synchronous standby lag in bytes; `None` when the check is off (<= 0, the default).
    pub fn maximum_lag_on_syncnode(&self) -> Option<u64> {
        self.maximum_lag_on_syncnode.filter(|v| *v > 0).map(|v| v as u64)
    }
    /// Timeline history entries kept (0: all).
    pub fn max_timelines_history(&self) -> i64 {
        self.max_timelines_history.unwrap_or(0).max(0)
    }
    /// `primary_start_timeout` (or its old name), default 300 s.
    pub fn primary_start_timeout(&self) -> i64 {
        self.primary_start_timeout.or(self.master_start_timeout).unwrap_or(DEFAULT_PRIMARY_START_TIMEOUT).max(0)
    }
    /// `primary_stop_timeout` (or its old name); `None` when unset or <= 0.
    pub fn primary_stop_timeout(&self) -> Option<i64> {
        self.primary_stop_timeout.or(self.master_stop_timeout).filter(|v| *v > 0)
    }
    /// Synchronous mode (default off).
    pub fn synchronous_mode(&self) -> SynchronousMode {
        self.synchronous_mode.unwrap_or_default()
    }
    /// Strict synchronous mode (default false).
    pub fn synchronous_mode_strict(&self) -> bool {
        self.synchronous_mode_strict.unwrap_or(false)
    }
    /// Number of synchronous standbys (default 1, at least 1).
    pub fn synchronous_node_count(&self) -> i64 {
        self.synchronous_node_count.unwrap_or(1).max(1)
    }
    /// Failsafe mode (default false).
    pub fn failsafe_mode(&self) -> bool {
        self.failsafe_mode.unwrap_or(false)
    }
    /// Timeline check in the leader race (default false).
    pub fn check_timeline(&self) -> bool {
        self.check_timeline.unwrap_or(false)
    }
    /// Maintenance mode (default false).
    pub fn is_paused(&self) -> bool {
        self.pause.unwrap_or(false)
    }
    /// Replication slots enabled (default true).
    pub fn use_slots(&self) -> bool {
        self.postgresql.as_ref().and_then(|p| p.use_slots).unwrap_or(true)
    }
    /// pg_rewind enabled (default false).
    pub fn use_pg_rewind(&self) -> bool {
        self.postgresql.as_ref().and_then(|p| p.use_pg_rewind).unwrap_or(false)
    }
    /// How long slots of vanished members are retained (default 30 minutes).
    pub fn member_slots_ttl(&self) -> std::time::Duration {
        self.member_slots_ttl.map_or(std::time::Duration::from_secs(DEFAULT_MEMBER_SLOTS_TTL), Duration::as_std)
    }
    /// Whether this is a standby cluster (a `standby_cluster` section with a host, port or restore command).
    pub fn is_standby_cluster(&self) -> bool {
        self.standby_cluster.as_ref().is_some_and(|s| {
            s.host.as_deref().is_some_and(|h| !h.is_empty())
                || s.port.is_some()
                || s.restore_command.as_deref().is_some_and(|c| !c.is_empty())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn false_like_slot_values_are_physical_slots() {
        let cfg = DynamicConfig::from_value(&json!({"slots": {"a": null, "b": 0, "c": "", "d": {}, "e": {"type": "logical", "database": "postgres", "plugin": "test_decoding"}}})).unwrap();
        let slots = cfg.slots.unwrap();
        assert_eq!(slots.len(), 5);
        assert!(slots["b"].r#type.is_none() && slots["b"].database.is_none());
        assert_eq!(slots["e"].plugin.as_deref(), Some("test_decoding"));
    }

    #[test]
    fn python_written_config_round_trips() {
        let text = r#"{"ttl":30,"loop_wait":10,"retry_timeout":10,"maximum_lag_on_failover":1048576,"postgresql":{"use_pg_rewind":true,"use_slots":true,"parameters":{"max_connections":100,"wal_level":"replica","hot_standby":"on"}},"synchronous_mode":"quorum","slots":{"s1":{"type":"logical","database":"db","plugin":"pgoutput"}},"ignore_slots":[{"name":"x"}],"some_future_key":{"a":1}}"#;
        let cfg = DynamicConfig::from_json(text).unwrap();
        assert_eq!(cfg.synchronous_mode(), SynchronousMode::Quorum);
        assert_eq!(cfg.extra["some_future_key"], json!({"a": 1}));
        assert!(cfg.use_pg_rewind());
        let back: Value = serde_json::from_str(&cfg.to_json()).unwrap();
        let orig: Value = serde_json::from_str(text).unwrap();
        assert_eq!(back, orig);
    }

    #[test]
    fn check_reports_ranges_and_the_timeout_rule() {
        let cfg = DynamicConfig::from_value(&json!({"ttl": 10, "slots": {"s": {"type": "logical"}}})).unwrap();
        let (errors, warnings) = cfg.check();
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors, vec!["ttl: 10 is smaller than the minimum 20"]);
        assert_eq!(warnings[0].to_string(), "slots.s: a logical slot needs database and plugin: it is ignored");
        let cfg = DynamicConfig::from_value(&json!({"loop_wait": 20})).unwrap();
        let (errors, warnings) = cfg.check();
        assert!(errors.is_empty());
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].path, "");
    }

    #[test]
    fn defaults() {
        let cfg = DynamicConfig::from_json("{}").unwrap();
        assert_eq!((cfg.ttl(), cfg.loop_wait(), cfg.retry_timeout()), (30, 10, 10));
        assert_eq!(cfg.maximum_lag_on_failover(), 1048576);
        assert_eq!(cfg.maximum_lag_on_syncnode(), None);
        assert_eq!(cfg.primary_start_timeout(), 300);
        assert_eq!(cfg.primary_stop_timeout(), None);
        assert!(cfg.use_slots());
        assert_eq!(cfg.member_slots_ttl().as_secs(), 1800);
        assert_eq!(cfg.to_json(), "{}");
    }

    #[test]
    fn timeouts_adjust_like_patroni() {
        let t = |ttl, loop_wait, retry_timeout| Timeouts { ttl, loop_wait, retry_timeout };
        assert_eq!(t(30, 10, 10).adjusted(), (t(30, 10, 10), vec![]));
        let (adj, w) = t(30, 15, 10).adjusted();
        assert_eq!(adj, t(30, 10, 10));
        assert_eq!(w, vec!["Violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl=30 and retry_timeout=10. Adjusting loop_wait from 15 to 10"]);
        let (adj, w) = t(20, 10, 15).adjusted();
        assert_eq!(adj, t(20, 1, 9));
        assert_eq!(w.len(), 1);
        let (adj, w) = t(5, 0, 1).adjusted();
        assert_eq!(adj, t(20, 1, 3));
        assert_eq!(w[0], "loop_wait=0 can't be smaller than 1, adjusting...");
        assert_eq!(w.len(), 3);
    }

    #[test]
    fn wrong_types_are_reported_with_paths() {
        let err =
            DynamicConfig::from_value(&json!({"ttl": "abc", "postgresql": {"use_slots": 3}})).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid dynamic configuration: ttl: expected an integer; postgresql.use_slots: expected a boolean"
        );
        let (cfg, errs) = DynamicConfig::from_value_lossy(&json!({"ttl": "abc", "loop_wait": 5}));
        assert_eq!(cfg.loop_wait, Some(5));
        assert_eq!(errs.len(), 1);
    }
}
