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
