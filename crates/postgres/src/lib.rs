//! Everything the agent does to PostgreSQL: binaries, configuration files, process control, state queries,
//! bootstrap, replica creation, rewind and callbacks. See ARCHITECTURE.md.

pub mod binaries;
pub mod command;
pub mod controldata;
pub mod error;
pub mod lsn;

pub use binaries::{Binaries, PgVersion, Tool};
pub use command::{Cmd, CmdOutput};
pub use controldata::{ClusterState, ControlData};
pub use error::{Error, Result};
pub use lsn::Lsn;
pub mod conf;
pub mod conninfo;
pub mod parameters;

pub use conf::{ConfigFiles, RecoverySettings};
pub use conninfo::{ConnParams, Credentials};
pub use parameters::Parameters;
pub mod postmaster;
pub use postmaster::{Postmaster, StartOptions, StartOutcome, StopMode, StopOutcome};
pub mod query;
pub use query::{ClusterInfo, Db, PendingRestart, ReplicationRow, SlotRow, WalReceiver};
pub mod callbacks;
pub use callbacks::{CallbackAction, CallbackRunner, CallbackScripts};
pub mod instance;
pub use instance::{Postgres, ReloadOutcome, ReplicaMethod, Role, Settings};
pub mod bootstrap;
pub use bootstrap::{BootstrapMethod, BootstrapSettings, CustomBootstrap};
pub mod replica;
pub mod rewind;
pub use rewind::{Divergence, RewindOutcome};
mod from_config;
pub mod generate;
pub use generate::generate_config;
