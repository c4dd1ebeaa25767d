//! Everything the agent does to PostgreSQL, as a library with an async API: finding the binaries, writing the
//! configuration files the way Patroni does, starting/stopping/promoting the postmaster and noticing its death,
//! the per-cycle state query, bootstrap, replica creation, rewind, callbacks and `--generate-config`.
//!
//! The entry point is [`Postgres`], built from [`PgSettings`] (directly, or with [`PgSettings::from_config`] from the
//! member's effective `postgresql` section):
//!
//! ```no_run
//! # async fn demo(pg_config: &patroni_config::PostgresqlConfig,
//! #               bootstrap: &patroni_config::BootstrapConfig) -> patroni_postgres::Result<()> {
//! use patroni_postgres::{BootstrapSettings, Postgres, PgSettings, StopMode};
//!
//! let settings = PgSettings::from_config("node1", "demo", pg_config, true)?;
//! let mut pg = Postgres::new(settings).await?; // fails clearly when the binaries are missing
//! if !pg.adopt().await? {
//!     pg.bootstrap(&BootstrapSettings::from_config(bootstrap)?).await?;
//! }
//! let info = pg.cluster_info().await?; // role, LSNs, timeline, replication rows, pending_restart
//! if let Some(mut died) = pg.exit_watch() {
//!     tokio::select! {
//!         _ = died.changed() => { /* crashed: pg.crashed() says how */ }
//!         _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {}
//!     }
//! }
//! pg.stop(StopMode::Fast).await?;
//! # let _ = info; Ok(()) }
//! ```
//!
//! Invariants: nothing here decides *when* to do something (that is the HA core's job), and nothing stops
//! PostgreSQL behind the caller's back — dropping a [`Postgres`] leaves the server running, as SIGKILL of the
//! agent must. Every external program runs through [`Cmd`]: logged, time-bounded, killed with its whole process
//! group on timeout or cancellation.

pub mod adhoc;
pub mod binaries;
pub mod bootstrap;
pub mod callbacks;
pub mod command;
pub mod conf;
pub mod conninfo;
pub mod controldata;
pub mod error;
pub mod fence;
pub mod from_config;
pub mod generate;
pub mod instance;
pub mod lsn;
pub mod parameters;
pub mod postmaster;
pub mod query;
pub mod replica;
pub mod rewind;
pub mod settings;
pub mod slots;
pub mod standby;
pub mod sync_names;
mod tls;
pub mod version;

pub use binaries::{Binaries, PgVersion, Tool};
pub use bootstrap::{BootstrapMethod, BootstrapSettings, CustomBootstrap};
pub use callbacks::{CallbackAction, CallbackRunner, CallbackScripts};
pub use command::{Cmd, CmdOutput};
pub use conf::{ConfigFiles, RecoverySettings};
pub use conninfo::{ConnParams, Credentials};
pub use controldata::{ClusterState, ControlData};
pub use error::{Error, Result};
pub use generate::generate_config;
pub use instance::{Postgres, ReloadOutcome};
pub use lsn::Lsn;
pub use parameters::Parameters;
pub use postmaster::{Exit, Postmaster, StartOptions, StartOutcome, StopMode, StopOutcome};
pub use query::{ClusterInfo, Db, PendingRestart, ReplicationRow, SlotRow, WalReceiver};
pub use rewind::{Divergence, HistoryEntry};
pub use settings::{PgSettings, ProcessState, ReplicaMethod, Role};
pub use tls::connect_with_sslmode;
pub use version::{Features, RewindRestore, WalKeep, OLDEST_SUPPORTED_MAJOR};
