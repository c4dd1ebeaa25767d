//! The HA decision core, sans-IO.
//!
//! [`Ha::step`] is a pure function of what the runtime observed (the DCS cluster view, the local PostgreSQL, peers'
//! answers, the results of the previous actions and the current time) and the effective [`Settings`]. It returns a
//! [`Plan`]: actions for the runtime to carry out, the status line to log, and whether to step again at once. No
//! sockets, clocks or processes here, so the simulator in `crates/sim` can run thousands of members in one thread.
//!
//! ```
//! use patroni_ha::{Action, ClusterView, DataDir, Ha, LocalState, Observation, PgRole, Process, Settings, Time};
//!
//! let settings = Settings { name: "pg1".into(), ..Settings::default() };
//! let cluster = ClusterView {
//!     initialize: Some("7001".into()),
//!     leader: Some("pg1".into()),
//!     ..ClusterView::default()
//! };
//! let local = LocalState {
//!     data_dir: DataDir::Initialized { sysid: "7001".into() },
//!     process: Process::Running,
//!     role: PgRole::Primary,
//!     lsn: Some(0x3000060),
//!     ..LocalState::default()
//! };
//! let obs = Observation { now: Time(0), cluster: Some(cluster), local, ..Observation::default() };
//! let plan = Ha::new().step(&settings, &obs);
//! assert_eq!(plan.status, "no action. I am (pg1), the leader with the lock");
//! assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(0x3000060) }]);
//! ```

mod action;
mod core;
mod election;
mod quorum;
mod race;
mod requests;
mod rewind;
pub mod rounds;
pub mod slots;
mod standby;
mod sync;
mod time;
mod view;
pub mod watchdog;

pub use crate::action::{Action, DemoteMode, Divergence, LogLevel, Outcome, Plan};
pub use crate::core::{Ha, Observation};
pub use crate::requests::{failsafe_confirmation, Shutdown};
pub use crate::time::{Millis, Time};
pub use crate::view::{
    Busy, ClusterView, ControlState, DataDir, FailoverRequest, LocalState, Lsn, MemberView, Name, PeerReply,
    PeerStatus, PgRole, Process, ReplicaConn, Settings, SyncCommit, SyncMode, SyncStandbyNames, SyncView, Tags,
};
pub use crate::watchdog::{WatchdogMode, WatchdogState};
