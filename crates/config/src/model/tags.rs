//! The `tags` section: member properties published in the DCS.

use crate::convert::section;

section! {
    /// `tags`. User-defined tags are kept in [`extra`](Self::extra) and never warned about.
    #[derive(Default)]
    pub struct Tags {
        /// Never become leader.
        nofailover: Option<bool>,
        /// Failover preference; 0 or negative means never become leader.
        failover_priority: Option<i64>,
        /// Preferred source for new replicas.
        clonefrom: Option<bool>,
        /// Excluded from `GET /replica` load balancing.
        noloadbalance: Option<bool>,
        /// Member to stream from (cascading replication).
        replicatefrom: Option<String>,
        /// Never a synchronous standby.
        nosync: Option<bool>,
        /// Preference as a synchronous standby.
        sync_priority: Option<i64>,
        /// Do not stream; replay from the archive only.
        nostream: Option<bool>,
    }
}

impl Tags {
    /// Whether this member may take part in the leader race: `nofailover: true` or a
    /// `failover_priority` <= 0 forbid it.
    pub fn can_failover(&self) -> bool {
        match (self.nofailover, self.failover_priority) {
            (Some(true), _) => false,
            (_, Some(p)) => p > 0,
            _ => true,
        }
    }

    /// Failover priority as Patroni computes it (`nofailover: true` → 0, unset → 1).
    pub fn effective_failover_priority(&self) -> i64 {
        match (self.failover_priority, self.nofailover) {
            (Some(p), _) => p,
            (None, Some(true)) => 0,
            (None, _) => 1,
        }
    }

    /// All tags as a JSON object, predefined ones first, as published in the member key.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}
