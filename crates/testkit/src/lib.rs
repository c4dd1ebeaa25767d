//! Real servers for integration tests: etcd, PostgreSQL and patroni agents, each on free loopback ports, in
//! its own temp dir, stopped on drop — and run as the unprivileged `postgres` user when the tests run as root
//! (PostgreSQL refuses root, and CI is root).
//!
//! ```no_run
//! use patroni_testkit::{EtcdServer, PgServer};
//!
//! #[tokio::test]
//! async fn leader_key_round_trip() -> patroni_testkit::Result<()> {
//!     let etcd = EtcdServer::start().await?;
//!     etcd.put("/service/demo/leader", "node1").await?;
//!     assert_eq!(etcd.get("/service/demo/leader").await?.as_deref(), Some("node1"));
//!
//!     let pg = PgServer::start().await?; // initdb + start as `postgres` when root
//!     assert_eq!(pg.query("select 1").await?, vec![vec![Some("1".to_string())]]);
//!     Ok(())
//! } // both stopped, their dirs removed
//!
//! #[tokio::test]
//! async fn library_code_that_spawns_postgres_itself() {
//!     // Root re-runs this very test as `postgres` and returns here; the re-run proceeds.
//!     if !patroni_testkit::run_unprivileged("library_code_that_spawns_postgres_itself") {
//!         return;
//!     }
//!     assert!(!patroni_testkit::is_root());
//! }
//! ```
//!
//! Servers:
//! - [`EtcdServer`], [`EtcdCluster`]: options v2, TLS, client certificates, auth; `stop` / `kill` / `pause` /
//!   `start_again`; v3 JSON gateway helpers (`put`, `get`, `get_prefix`, `delete`, `v3`).
//! - [`PgServer`]: options settings, hba lines, initdb args, TLS; `query`, `stop(StopMode)`, `start_again`,
//!   `start_replica`, `init` without starting, `run_tool`.
//! - [`AgentProcess`]: a `patroni` binary given by path, its config from a template that gets the agent's dir and
//!   free ports; signals, `wait_exit`, `wait_for_log`, REST helpers.
//! - [`TestCerts`]: a CA with `CA:FALSE` server and client leaves.
//!
//! Building blocks: [`free_port`], [`TestDir`], [`wait_until`] / [`wait_for`], [`unprivileged_user`],
//! [`UnprivilegedCommand`] (spawn any command as that user), [`pid_alive`].
//!
//! Every child gets SIGKILL if the thread that spawned it dies (a test killed by nextest leaves nothing behind),
//! so start servers from the test's thread, not from `spawn_blocking`.

mod agent;
mod dir;
mod error;
mod etcd;
mod pg;
mod port;
mod process;
mod tls;
mod user;
mod wait;
mod zookeeper;

pub use agent::{AgentContext, AgentOptions, AgentProcess, SUPERUSER_PASSWORD};
pub use dir::{ensure_reachable, give_to_unprivileged, write_file, TestDir, KEEP_DIRS_ENV};
pub use error::{Error, Result};
pub use etcd::{etcd_binary, EtcdCluster, EtcdOptions, EtcdServer, ETCD_BIN_ENV};
pub use pg::{kill_postmaster, pg_bin_dir, PgOptions, PgServer, StopMode, PG_BIN_DIR_ENV};
pub use port::{free_port, try_free_port};
pub use process::{log_tail, pid_alive};
pub use tls::TestCerts;
pub use user::{
    is_root, run_unprivileged, stage_executable, stage_executable_in, unprivileged_user, UnprivilegedCommand,
    RERUN_ENV, RERUN_TIMEOUT_ENV, USER_ENV,
};
pub use wait::{wait_for, wait_until};
pub use zookeeper::{exhibitor_stand_in, ZooKeeperEnsemble, ZooKeeperServer, ZOOKEEPER_CLASSPATH_ENV};

/// reqwest is built without a default crypto provider; installing one twice is harmless (the Err is ignored).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
