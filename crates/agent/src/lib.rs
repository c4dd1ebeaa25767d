//! The `patroni` agent runtime: wires the configuration, the DCS, the local PostgreSQL, the HA core and the REST API
//! into the loop that runs beside one PostgreSQL server.

pub mod core_view;
pub mod member;
pub mod settings;

/// The Patroni version we are compatible with and publish in the member key and the REST API. Python Patroni
/// members and `patronictl` gate features on it (legacy `optime/leader`, failsafe, quorum), so it names the
/// behaviour we implement rather than this crate's own version.
pub const VERSION: &str = "4.1.5";
pub mod daemon;
pub mod dcs_setup;
pub mod dynamic_cache;
mod executor;
pub mod failsafe_memory;
pub mod guardian;
pub mod logging;
pub mod node;
pub mod peers;
pub mod pg;
mod pg_slots;
pub mod probe;
pub mod rest_control;
pub mod rest_status;
pub mod runtime;
pub mod slots;
mod standby;
pub mod watchdog;
