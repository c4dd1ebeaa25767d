//! A deterministic simulator of the patroni-rs HA core.
//!
//! One `u64` seed drives a whole world: members each running the real [`patroni_ha::Ha`] core inside a simulated
//! agent loop, a simulated DCS with leases on a simulated clock, simulated PostgreSQL servers with WAL, timelines
//! and replication, peer REST calls, a writing client, and a random fault schedule. After every event the
//! invariants of [`check::Invariant`] are checked; a failing seed reruns identically with its trace.
//!
//! ```
//! let report = patroni_sim::run(42, &patroni_sim::Options::default());
//! assert!(!report.failed(), "{}", report.explain());
//! ```

pub mod check;
pub mod dcs;
pub mod faults;
pub mod lineage;
pub mod mutation;
pub mod rng;
pub mod world;

pub use crate::check::{Invariant, Violation};
pub use crate::mutation::Mutation;
pub use crate::world::{run, Options, Report, Scenario};
