//! Patroni's REST API: the server the agent runs and a typed client for peers and `patronictl`.
//!
//! The agent publishes a [`NodeStatus`] snapshot through a `tokio::sync::watch` channel and
//! implements [`Control`]; the server answers read-only endpoints from the latest snapshot
//! only, so health checks never wait for the HA loop, the DCS or PostgreSQL.
//!
//! Map of the crate:
//! - [`status`] / [`cluster`]: the snapshot (`/patroni`, `/cluster`, `/history`, `/config` answer
//!   from it); [`model`] builds the cluster part from the DCS model and the server/client
//!   settings from `patroni.yml` sections.
//! - [`health`], [`metrics`]: pure functions of the snapshot (health codes, Prometheus text).
//! - [`control`]: request validation (pure) and the [`Control`] trait the agent implements;
//!   [`wait::await_failover`] helps it report the outcome of a switchover.
//! - [`server`]: the listener (TLS, keep-alive, access checks, reloadable settings);
//!   [`client`]: the typed client of peers and `patronictl`.
//!
//! Answers are checked byte for byte against Python Patroni 4.1.5 in `tests/compat.rs`.
//!
//! ```no_run
//! # async fn demo(control: std::sync::Arc<dyn patroni_api::Control>) -> Result<(), patroni_api::ApiError> {
//! use patroni_api::{ApiServer, NodeStatus, PatroniInfo, ServerSettings};
//! use std::sync::Arc;
//! let info = PatroniInfo { version: "4.1.5".into(), scope: "demo".into(), name: "pg1".into() };
//! let (tx, rx) = tokio::sync::watch::channel(Arc::new(NodeStatus::starting(info, std::time::SystemTime::now())));
//! let server = ApiServer::bind(&ServerSettings::new("127.0.0.1:8008"), rx, control).await?;
//! let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
//! tokio::spawn(server.run(async { let _ = stop_rx.await; }));
//! // each HA cycle: tx.send_replace(Arc::new(new_status));
//! # drop((tx, stop_tx)); Ok(()) }
//! ```

pub mod access;
pub mod client;
pub mod cluster;
pub mod config_patch;
pub mod control;
mod handlers;
pub mod health;
pub mod metrics;
pub mod model;
pub mod schedule;
pub mod server;
pub mod status;
pub mod tls;
pub mod units;
pub mod wait;

pub use access::Credentials;
pub use client::{ApiClient, ClientError, ClientSettings, MemberStatus};
pub use cluster::{ClusterDocument, ClusterMember, FailoverView};
pub use control::{
    CancelSwitchover, Control, ControlError, FailoverAction, FailoverOutcome, FailoverPlan, FailsafeReply,
    ReinitializeRequest, RestartRequest, VersionedConfig,
};
pub use server::{ApiError, ApiServer, ServerHandle, ServerSettings};
pub use status::{
    NodeStatus, PatroniInfo, PostgresRole, PostgresState, PostgresStatus, ReplicationRow, ScheduledRestart, Timestamp,
    Xlog,
};
pub use tls::{TlsSettings, VerifyClient};
pub use wait::{await_failover, failover_wait};
