//! `/metrics`: Prometheus text exposition, written by hand so names, HELP texts and layout are
//! the ones Patroni's users already scrape and alert on.

use crate::status::{NodeStatus, PostgresRole, PostgresState, Timestamp, Xlog};
use std::fmt::Write;

/// Escapes a label value as the text format requires.
fn label_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// `2.1.3` → `020103`, as Patroni exports its version.
pub fn padded_semver(version: &str) -> String {
    version.split('.').map(|part| format!("{part:0>2}")).collect()
}

/// Epoch seconds printed like Python's `float` (always with a fraction), `0` when unknown.
fn epoch(t: Option<&Timestamp>) -> String {
    match t {
        None => "0".to_owned(),
        Some(t) => {
            let secs = t.timestamp() as f64 + f64::from(t.timestamp_subsec_micros()) / 1e6;
            let s = format!("{secs}");
            if s.contains('.') || s.contains('e') {
                s
            } else {
                s + ".0"
            }
        }
    }
}

struct Writer {
    out: String,
    labels: String,
}

impl Writer {
    fn metric(&mut self, name: &str, help: &str, kind: &str, value: impl std::fmt::Display) {
        // Writing into a String cannot fail.
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        let _ = writeln!(self.out, "{name}{} {value}", self.labels);
    }
}

/// Renders the whole `/metrics` page for this snapshot.
pub fn render(status: &NodeStatus) -> String {
    let labels =
        format!("{{scope=\"{}\",name=\"{}\"}}", label_value(&status.patroni.scope), label_value(&status.patroni.name));
    let mut w = Writer { out: String::with_capacity(4096), labels };
    let pg = status.postgres.as_ref();
    let role = status.effective_role();
    let b = |v: bool| u8::from(v);

    w.metric("patroni_version", "Patroni semver without periods.", "gauge", padded_semver(&status.patroni.version));
    w.metric(
        "patroni_postgres_running",
        "Value is 1 if Postgres is running, 0 otherwise.",
        "gauge",
        b(status.state == PostgresState::Running),
    );
    w.metric(
        "patroni_postmaster_start_time",
        "Epoch seconds since Postgres started.",
        "gauge",
        epoch(pg.and_then(|p| p.postmaster_start_time.as_ref())),
    );
    w.metric(
        "patroni_master",
        "Value is 1 if this node is the leader, 0 otherwise.",
        "gauge",
        b(role == PostgresRole::Primary),
    );
    w.metric(
        "patroni_primary",
        "Value is 1 if this node is the leader, 0 otherwise.",
        "gauge",
        b(role == PostgresRole::Primary),
    );
    let (location, received, replayed, replayed_ts, paused) = match pg.map(|p| &p.xlog) {
        Some(Xlog::Primary { location }) => (*location, 0, 0, None, false),
        Some(Xlog::Replica { received_location, replayed_location, replayed_timestamp, paused }) => {
            (0, *received_location, *replayed_location, replayed_timestamp.as_ref(), *paused)
        }
        None => (0, 0, 0, None, false),
    };
    w.metric(
        "patroni_xlog_location",
        "Current location of the Postgres transaction log, 0 if this node is not the leader.",
        "counter",
        location,
    );
    w.metric(
        "patroni_standby_leader",
        "Value is 1 if this node is the standby_leader, 0 otherwise.",
        "gauge",
        b(role == PostgresRole::StandbyLeader),
    );
    w.metric(
        "patroni_replica",
        "Value is 1 if this node is a replica, 0 otherwise.",
        "gauge",
        b(role == PostgresRole::Replica),
    );
    let is_replica_pg = pg.is_some_and(|p| p.role == PostgresRole::Replica);
    w.metric(
        "patroni_sync_standby",
        "Value is 1 if this node is a sync standby replica, 0 otherwise.",
        "gauge",
        b(is_replica_pg && status.sync_standby && !status.quorum_standby),
    );
    w.metric(
        "patroni_quorum_standby",
        "Value is 1 if this node is a quorum standby, 0 otherwise.",
        "gauge",
        b(is_replica_pg && status.quorum_standby),
    );
    w.metric(
        "patroni_xlog_received_location",
        "Current location of the received Postgres transaction log, 0 if this node is not a replica.",
        "counter",
        received,
    );
    w.metric(
        "patroni_xlog_replayed_location",
        "Current location of the replayed Postgres transaction log, 0 if this node is not a replica.",
        "counter",
        replayed,
    );
    w.metric(
        "patroni_xlog_replayed_timestamp",
        "Current timestamp of the replayed Postgres transaction log, 0 if null.",
        "gauge",
        epoch(replayed_ts),
    );
    w.metric("patroni_xlog_paused", "Value is 1 if the Postgres xlog is paused, 0 otherwise.", "gauge", b(paused));
    let server_version = pg.map_or(0, |p| p.server_version);
    // Patroni leaves these out while the server version is unknown (PostgreSQL not running); every supported
    // major has the WAL receiver view they come from.
    if server_version != 0 {
        let rs = pg.and_then(|p| p.replication_state.as_deref());
        w.metric(
            "patroni_postgres_streaming",
            "Value is 1 if Postgres is streaming, 0 otherwise.",
            "gauge",
            b(rs == Some("streaming")),
        );
        w.metric(
            "patroni_postgres_in_archive_recovery",
            "Value is 1 if Postgres is replicating from archive, 0 otherwise.",
            "gauge",
            b(rs == Some("in archive recovery")),
        );
    }
    w.metric(
        "patroni_postgres_server_version",
        "Version of Postgres (if running), 0 otherwise.",
        "gauge",
        server_version,
    );
    w.metric(
        "patroni_cluster_unlocked",
        "Value is 1 if the cluster is unlocked, 0 if locked.",
        "gauge",
        b(status.cluster_unlocked()),
    );
    w.metric(
        "patroni_failsafe_mode_is_active",
        "Value is 1 if failsafe mode is active, 0 if inactive.",
        "gauge",
        b(status.failsafe_mode_is_active),
    );
    w.metric(
        "patroni_postgres_timeline",
        "Postgres timeline of this node (if running), 0 otherwise.",
        "counter",
        pg.and_then(|p| p.timeline).unwrap_or(0),
    );
    w.metric(
        "patroni_dcs_last_seen",
        "Epoch timestamp when DCS was last contacted successfully by Patroni.",
        "gauge",
        status.dcs_last_seen,
    );
    w.metric(
        "patroni_pending_restart",
        "Value is 1 if the node needs a restart, 0 otherwise.",
        "gauge",
        b(!status.pending_restart_reason.is_empty()),
    );
    w.metric("patroni_is_paused", "Value is 1 if auto failover is disabled, 0 otherwise.", "gauge", b(status.paused));
    let legend: Vec<String> =
        PostgresState::INDEXED.iter().map(|s| format!("{}={}", s.index(), s.metric_name())).collect();
    let _ = writeln!(w.out, "# HELP patroni_postgres_state Numeric representation of Postgres state.");
    let _ = writeln!(w.out, "# Values: {}", legend.join(", "));
    let _ = writeln!(w.out, "# TYPE patroni_postgres_state gauge");
    let _ = writeln!(w.out, "patroni_postgres_state{} {}", w.labels, status.state.index());
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_padding() {
        assert_eq!(padded_semver("2.1.3"), "020103");
        assert_eq!(padded_semver("4.1.5"), "040105");
        assert_eq!(padded_semver("10.0.12"), "100012");
    }

    #[test]
    fn label_escaping() {
        assert_eq!(label_value(r#"a"b\c"#), r#"a\"b\\c"#);
    }
}
