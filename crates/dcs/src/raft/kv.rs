//! The replicated data: keys with versions and optional lease binding, leases with TTL, and the commands that
//! change them. Pure and deterministic: every node applying the same log reaches the same state, which is why
//! every time used here comes from the command (stamped by the Raft leader), never from the local clock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One stored key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kv {
    pub value: String,
    /// The store revision of the last change of this key (Patroni's `version` of a node).
    pub mod_revision: i64,
    pub lease: Option<u64>,
}

/// A session: keys bound to it vanish when it is not kept alive for `ttl_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub ttl_ms: u64,
    /// Leader wall-clock milliseconds at which the lease expires.
    pub expires_ms: u64,
}

/// A condition on one key, checked before any operation of the command is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cond {
    Absent,
    Version(i64),
    Value(String),
    /// Holds our value, or nobody holds the key (the leader key refresh that re-creates an expired key).
    ValueOrAbsent(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Creates the lease or refreshes it with a (possibly new) TTL.
    KeepAlive {
        lease: u64,
        ttl_ms: u64,
    },
    Put {
        key: String,
        value: String,
        lease: Option<u64>,
        cond: Option<Cond>,
    },
    Delete {
        key: String,
        cond: Option<Cond>,
    },
    DeletePrefix {
        prefix: String,
    },
    /// Proposed by the leader: every lease whose deadline passed goes, with its keys.
    ExpireLeases,
    /// Proposed by a new leader: its clock may differ from the old one's, so every lease gets a full TTL from now
    /// (etcd does the same on a leader change) rather than expiring early.
    RenewAllLeases,
}

impl Op {
    fn cond(&self) -> Option<(&str, &Cond)> {
        match self {
            Op::Put { key, cond: Some(c), .. } | Op::Delete { key, cond: Some(c) } => Some((key, c)),
            _ => None,
        }
    }
}

/// A command: all conditions are checked first, then all operations are applied, atomically, as one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The proposing leader's wall clock in milliseconds since the epoch.
    pub now_ms: u64,
    pub ops: Vec<Op>,
}

/// Which condition failed and what the key held then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failed {
    pub key: String,
    pub current: Option<Kv>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The store revision after the command.
    pub revision: i64,
    pub failed: Option<Failed>,
}

/// The whole replicated state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvState {
    pub revision: i64,
    pub kvs: BTreeMap<String, Kv>,
    pub leases: BTreeMap<u64, Lease>,
}

impl KvState {
    fn holds(&self, key: &str, cond: &Cond) -> bool {
        let kv = self.kvs.get(key);
        match cond {
            Cond::Absent => kv.is_none(),
            Cond::Version(v) => kv.is_some_and(|kv| kv.mod_revision == *v),
            Cond::Value(v) => kv.is_some_and(|kv| &kv.value == v),
            Cond::ValueOrAbsent(v) => kv.is_none_or(|kv| &kv.value == v),
        }
    }

    /// Applies a command; returns the outcome and whether any key changed.
    pub fn apply(&mut self, cmd: &Command) -> (Outcome, bool) {
        for op in &cmd.ops {
            if let Some((key, cond)) = op.cond() {
                if !self.holds(key, cond) {
                    let failed = Failed { key: key.to_string(), current: self.kvs.get(key).cloned() };
                    return (Outcome { revision: self.revision, failed: Some(failed) }, false);
                }
            }
        }
        let rev = self.revision + 1;
        let mut changed = false;
        for op in &cmd.ops {
            match op {
                Op::KeepAlive { lease, ttl_ms } => {
                    let expires_ms = cmd.now_ms.saturating_add(*ttl_ms);
                    self.leases.insert(*lease, Lease { ttl_ms: *ttl_ms, expires_ms });
                }
                Op::Put { key, value, lease, .. } => {
                    // A lease that expired between the keepalive and this put cannot exist in the same command;
                    // binding to an unknown lease would make a key immortal, so it is stored without one only if
                    // no lease was asked for.
                    let lease = lease.filter(|l| self.leases.contains_key(l));
                    self.kvs.insert(key.clone(), Kv { value: value.clone(), mod_revision: rev, lease });
                    changed = true;
                }
                Op::Delete { key, .. } => changed |= self.kvs.remove(key).is_some(),
                Op::DeletePrefix { prefix } => {
                    let before = self.kvs.len();
                    self.kvs.retain(|k, _| !k.starts_with(prefix.as_str()));
                    changed |= self.kvs.len() != before;
                }
                Op::ExpireLeases => {
                    let expired: Vec<u64> =
                        self.leases.iter().filter(|(_, l)| l.expires_ms <= cmd.now_ms).map(|(id, _)| *id).collect();
                    for id in &expired {
                        self.leases.remove(id);
                    }
                    let before = self.kvs.len();
                    self.kvs.retain(|_, kv| kv.lease.is_none_or(|l| !expired.contains(&l)));
                    changed |= self.kvs.len() != before;
                }
                Op::RenewAllLeases => {
                    for l in self.leases.values_mut() {
                        l.expires_ms = cmd.now_ms.saturating_add(l.ttl_ms);
                    }
                }
            }
        }
        if changed {
            self.revision = rev;
        }
        (Outcome { revision: self.revision, failed: None }, changed)
    }

    /// Whether a lease is due to expire at `now_ms` (the leader proposes [`Op::ExpireLeases`] then).
    pub fn any_lease_expired(&self, now_ms: u64) -> bool {
        self.leases.values().any(|l| l.expires_ms <= now_ms)
    }

    /// `(key, kv)` under a prefix.
    pub fn range<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a String, &'a Kv)> + 'a {
        self.kvs.range(prefix.to_string()..).take_while(move |(k, _)| k.starts_with(prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str, lease: Option<u64>, cond: Option<Cond>) -> Op {
        Op::Put { key: key.into(), value: value.into(), lease, cond }
    }

    #[test]
    fn create_if_absent_and_cas() {
        let mut s = KvState::default();
        let (o, changed) = s.apply(&Command { now_ms: 0, ops: vec![put("/a", "x", None, Some(Cond::Absent))] });
        assert!(changed && o.failed.is_none());
        assert_eq!(o.revision, 1);
        let (o, _) = s.apply(&Command { now_ms: 0, ops: vec![put("/a", "y", None, Some(Cond::Absent))] });
        assert_eq!(o.failed.unwrap().current.unwrap().value, "x");
        let (o, _) = s.apply(&Command { now_ms: 0, ops: vec![put("/a", "y", None, Some(Cond::Version(1)))] });
        assert!(o.failed.is_none());
        assert_eq!(s.kvs["/a"].mod_revision, 2);
        let (o, _) = s.apply(&Command { now_ms: 0, ops: vec![put("/a", "z", None, Some(Cond::Version(1)))] });
        assert!(o.failed.is_some());
        assert_eq!(s.kvs["/a"].value, "y");
    }

    #[test]
    fn leases_expire_by_the_command_clock() {
        let mut s = KvState::default();
        s.apply(&Command {
            now_ms: 1000,
            ops: vec![
                Op::KeepAlive { lease: 7, ttl_ms: 500 },
                put("/l", "me", Some(7), None),
                put("/p", "x", None, None),
            ],
        });
        assert!(!s.any_lease_expired(1499));
        assert!(s.any_lease_expired(1500));
        let (_, changed) = s.apply(&Command { now_ms: 1400, ops: vec![Op::ExpireLeases] });
        assert!(!changed);
        s.apply(&Command { now_ms: 1400, ops: vec![Op::RenewAllLeases] });
        let (_, changed) = s.apply(&Command { now_ms: 1600, ops: vec![Op::ExpireLeases] });
        assert!(!changed, "renewed at 1400 for 500 ms");
        let (_, changed) = s.apply(&Command { now_ms: 1900, ops: vec![Op::ExpireLeases] });
        assert!(changed);
        assert!(!s.kvs.contains_key("/l"));
        assert!(s.kvs.contains_key("/p"));
        assert!(s.leases.is_empty());
    }

    #[test]
    fn range_is_by_prefix() {
        let mut s = KvState::default();
        s.apply(&Command {
            now_ms: 0,
            ops: vec![put("/s/a/x", "1", None, None), put("/s/ab", "2", None, None), put("/s/a/y", "3", None, None)],
        });
        let keys: Vec<&String> = s.range("/s/a/").map(|(k, _)| k).collect();
        assert_eq!(keys, ["/s/a/x", "/s/a/y"]);
    }
}
