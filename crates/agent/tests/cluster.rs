//! Issue #5 on real 3-member clusters: bootstrap and replication.

mod common;

use common::{name, Cluster, Options, START_TIMEOUT, WAIT};

/// Three members racing on an empty etcd: one bootstraps and is the only primary, the other two clone and stream
/// from it, and a row written on the primary is read on both replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_one_primary_two_streaming_replicas() {
    let c = Cluster::start(Options::default()).await;
    let primaries = c.primaries().await;
    assert_eq!(primaries.len(), 1, "exactly one primary, got {primaries:?}");
    let p = primaries[0];
    assert_eq!(c.leader().await.as_deref(), Some(name(p).as_str()));
    for r in (0..3).filter(|r| *r != p) {
        assert_eq!(c.status(r, "/replica").await, Some(200), "{} is a replica", name(r));
        assert_ne!(c.status(r, "/primary").await, Some(200), "{} is not a primary", name(r));
    }
    c.insert(p, "hello").await;
    for r in (0..3).filter(|r| *r != p) {
        c.wait_row(r, "hello", WAIT).await;
    }
    // The replicas refuse writes: they are read-only standbys.
    for r in (0..3).filter(|r| *r != p) {
        assert!(!c.writable(r).await, "{} must not accept writes", name(r));
    }
}

/// A member whose data directory belongs to another PostgreSQL cluster (different system identifier) refuses to
/// join, says why, and the running cluster is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_another_system_identifier_refuses_to_join() {
    let c = Cluster::start(Options::default()).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let foreign = patroni_testkit::PgServer::builder().init().await.expect("initdb of a foreign cluster");
    let mut o = c.options().clone();
    o.data_dirs = vec![None, None, None, Some(foreign.data_dir())];
    let mut stranger = c.spawn(3, &o);
    let status = match stranger.wait_exit(WAIT).await {
        Ok(s) => s,
        Err(e) => {
            c.dump("stranger still running");
            panic!("the member with a foreign data directory did not stop: {e}\n{}", stranger.log());
        }
    };
    assert!(!status.success(), "it exits with an error, got {status}");
    let log = stranger.log();
    assert!(log.contains("system ID mismatch"), "the log says why:\n{log}");
    assert_eq!(c.primaries().await, vec![p], "the cluster is untouched");
    assert_eq!(c.leader().await.as_deref(), Some(name(p).as_str()));
    assert!(c.etcd.get("/service/demo/members/pg3").await.unwrap().is_none(), "it did not register as a member");
}

/// `replicatefrom`: a replica tagged to stream from another replica (cascading) does so, and rows written on the
/// primary reach it through that replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicatefrom_cascades_through_another_replica() {
    // pg1 may not be the primary (nofailover keeps it out of bootstrap), so pg2's upstream is a replica.
    let tags = vec![None, Some("{nofailover: true}".into()), Some("{replicatefrom: pg1}".into())];
    let o = Options { tags, ..Options::default() };
    let c = Cluster::start_with(o, false).await;
    let p = c.wait_primary(START_TIMEOUT, &[]).await;
    assert_eq!(p, 0);
    c.wait_streaming(&[1], 0, START_TIMEOUT).await;
    c.wait_streaming(&[2], 1, START_TIMEOUT).await;
    c.insert(0, "cascaded").await;
    c.wait_row(2, "cascaded", WAIT).await;
}

/// Power loss of the whole cluster (every agent SIGKILLed, every PostgreSQL stopped immediately), then every agent
/// started again: members with data come back with the right roles — one primary, two replicas streaming from
/// it — and no committed row is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_restart_comes_back_with_the_right_roles() {
    let mut c = Cluster::start(Options::default()).await;
    let p = c.wait_primary(WAIT, &[]).await;
    c.insert(p, "before").await;
    for r in (0..3).filter(|r| *r != p) {
        c.wait_row(r, "before", WAIT).await;
    }
    for i in 0..3 {
        c.nodes[i].kill(nix::sys::signal::Signal::SIGKILL).unwrap();
        c.nodes[i].wait_exit(WAIT).await.unwrap();
    }
    for i in 0..3 {
        c.pg_stop_immediate(i);
    }
    for i in 0..3 {
        c.nodes[i].restart().unwrap();
    }
    let np = c.wait_primary(START_TIMEOUT, &[]).await;
    let others: Vec<usize> = (0..3).filter(|r| *r != np).collect();
    c.wait_streaming(&others, np, START_TIMEOUT).await;
    c.insert(np, "after").await;
    for r in 0..3 {
        c.wait_row(r, "before", WAIT).await;
        c.wait_row(r, "after", WAIT).await;
    }
}
