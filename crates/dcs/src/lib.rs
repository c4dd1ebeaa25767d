//! The DCS layer of patroni-rs: the cluster model Patroni stores, the [`Dcs`] trait the HA loop drives, and an
//! etcd v3 backend ([`etcd3::Etcd3`]).
//!
//! Keys and JSON values are exactly Python Patroni's, so `patronictl` can read a patroni-rs cluster and a
//! cluster can migrate member by member. Values written by someone else are parsed tolerantly: unknown fields
//! survive a round trip, bad values are reported per key in [`Cluster::problems`], never a panic.

mod dcs;
mod error;
pub mod etcd3;
pub mod keys;
pub mod model;

pub use dcs::{Dcs, SlotPositions};
pub use error::{DcsError, DcsResult};
pub use model::{
    format_lsn, parse_lsn, parse_lsn_str, Cluster, ClusterConfig, Failover, Failsafe, HistoryLine, Leader, Member,
    MemberData, ParseProblem, RawNode, Session, Status, SyncState, TimelineHistory, Version,
};
