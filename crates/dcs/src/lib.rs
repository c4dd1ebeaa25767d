//! The DCS layer of patroni-rs: the cluster model Patroni stores, the [`Dcs`] trait the HA loop drives, and an
//! etcd v3 backend ([`etcd3::Etcd3`]).
//!
//! Keys and JSON values are exactly Python Patroni's, so `patronictl` can read a patroni-rs cluster and a
//! cluster can migrate member by member. Values written by someone else are parsed tolerantly: unknown fields
//! survive a round trip, bad values are reported per key in [`Cluster::problems`], never a panic.
//!
//! ```no_run
//! use std::time::Duration;
//! use patroni_dcs::etcd3::{Etcd3, Etcd3Settings};
//! use patroni_dcs::{Dcs, MemberData};
//!
//! # async fn demo() -> Result<(), patroni_dcs::DcsError> {
//! let mut settings = Etcd3Settings::new("batman", "node1").with_hosts(["127.0.0.1:2379"]);
//! settings.ttl = Duration::from_secs(30);
//! let dcs = Etcd3::new(settings).await?;
//!
//! dcs.touch_member(&MemberData { state: Some("running".into()), ..MemberData::default() }).await?;
//! let cluster = dcs.get_cluster().await?;
//! if cluster.is_unlocked() {
//!     match dcs.attempt_to_acquire_leader().await {
//!         Ok(()) => println!("we are the leader"),
//!         Err(e) if e.is_compare_failed() => println!("someone else won"),
//!         Err(e) => return Err(e), // unreachable within retry_timeout, or refused
//!     }
//! }
//! let leader_version = cluster.leader.as_ref().map(|l| l.version);
//! dcs.watch(leader_version, Duration::from_secs(10)).await?;
//! # Ok(())
//! # }
//! ```

mod dcs;
mod error;
pub mod etcd;
pub mod etcd3;
pub mod exhibitor;
pub mod keys;
pub mod model;
pub mod raft;
mod tls_key;
pub mod zookeeper;

pub use dcs::{Dcs, SlotPositions};
pub use error::{DcsError, DcsResult};
pub use model::{
    format_lsn, parse_lsn, parse_lsn_str, Cluster, ClusterConfig, Failover, Failsafe, HistoryLine, Leader, Member,
    MemberData, ParseProblem, RawNode, Session, Status, SyncState, TimelineHistory, Version,
};
