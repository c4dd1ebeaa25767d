//! A one-member cluster's start-up duties, as Patroni does them: a second agent started under a name that a
//! running member already uses refuses to start (CRITICAL line, exit status 1) while the first one keeps running.

mod common;

use std::time::Duration;

use common::{Cluster, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_name_refuses_to_start() {
    let o = Options { members: 1, ..Options::default() };
    let c = Cluster::start(o.clone()).await;

    // Same name, own REST port and data directory, same etcd.
    let mut twin = c.spawn(0, &o);
    let status =
        twin.wait_exit(Duration::from_secs(30)).await.unwrap_or_else(|e| panic!("the twin keeps running: {e}"));
    assert_eq!(status.code(), Some(1), "{}", twin.log());
    let log = twin.log();
    assert!(log.contains(" CRITICAL: Can't start; there is already a node named 'pg0' running\n"), "{log}");
    assert!(!log.contains("ERROR"), "only the CRITICAL line, as Patroni: {log}");
    assert!(!twin.context().data_dir().join("PG_VERSION").exists(), "the twin touched no PostgreSQL");

    assert_eq!(c.status(0, "/primary").await, Some(200), "the first member keeps running as primary");
    assert_eq!(c.leader().await.as_deref(), Some("pg0"));
}
