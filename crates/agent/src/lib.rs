//! The `patroni` agent runtime: wires the configuration, the DCS, the local PostgreSQL, the HA core and the REST API
//! into the loop that runs beside one PostgreSQL server.

pub mod settings;
pub mod view;
