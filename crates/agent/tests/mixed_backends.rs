//! Issue #20 against Python Patroni 4.1.5: on etcd's v2 API, on ZooKeeper, on ZooKeeper found through Exhibitor
//! (the members given only the `exhibitor` section) and on ZooKeeper over TLS (client certificates required, one
//! `openssl req -x509` certificate as CA, server and client certificate, `set_acls` giving only its subject rights),
//! a cluster of Python and Rust members (same `patroni.yml`) bootstraps and replicates, both `patronictl`s list it
//! identically — so each lists the other's members, keys and values as its own — a switchover asked with Python's
//! `patronictl` lands on a Rust member, and the Python member is then replaced by ours. On TLS both implementations
//! thus authenticate with the certificate (x509) and read the znodes the other created, which a client without the
//! certificate cannot. Runs when scripts/test.sh installed Python Patroni with its etcd and ZooKeeper (kazoo, which
//! its Exhibitor backend uses too) clients.

mod mixed;

use std::time::Duration;

use mixed::{name, Binaries, Impl, MixedCluster, Store, SCOPE};
use patroni_dcs::zookeeper::{ZooKeeper, ZooKeeperSettings};
use patroni_dcs::Dcs;

/// On [`Store::ZooKeeperTls`]: a ZooKeeper client without the certificate, on the server's plain port, cannot read
/// the cluster both implementations built (every znode's ACL names only the certificate's subject).
async fn outsider_cannot_read(c: &MixedCluster) {
    let zk = c.zookeeper.as_ref().expect("ZooKeeper");
    let mut s = ZooKeeperSettings::new(SCOPE, "outsider").with_hosts([zk.endpoint()]);
    s.ttl = Duration::from_secs(10);
    s.retry_timeout = Duration::from_secs(3);
    let outsider = ZooKeeper::new(s).await.expect("a plain ZooKeeper client");
    let read = outsider.get_cluster().await;
    assert!(read.is_err(), "a client without the certificate read the cluster: {read:?}");
    c.step(&format!("{:?}: a client without the certificate is refused", c.store));
}

async fn mixed_cluster_on(store: Store) {
    let Some(bins) = Binaries::find() else { return };
    let mut c = MixedCluster::start_on(store, bins, &[Impl::Python, Impl::Rust, Impl::Rust]).await;
    let leader = c.wait_healthy("bootstrap").await;
    c.step(&format!("{store:?}: healthy, leader {}", name(leader)));
    c.same_output(&["list"], "list").await;
    c.same_output(&["show-config"], "show-config").await;
    if store == Store::ZooKeeperTls {
        outsider_cannot_read(&c).await;
    }

    // Leadership to a Rust member, asked with Python's patronictl, then both list it the same again.
    let candidate = if leader == 1 { 2 } else { 1 };
    let (code, out, err) =
        c.ctl(Impl::Python, &["switchover", "--leader", &name(leader), "--candidate", &name(candidate), "--force"]);
    assert_eq!(code, 0, "Python patronictl switchover: {out}{err}");
    let now = c.wait_leader_among(&[candidate], "switchover to a Rust member").await;
    c.wait_healthy("after the switchover").await;
    c.step(&format!("{store:?}: leader {} after the switchover", name(now)));
    c.same_output(&["list"], "list after the switchover").await;
    c.same_output(&["history"], "history").await;
    // The migration step: the Python member stops (SIGTERM) and ours starts with its patroni.yml and data.
    c.replace(0, Impl::Rust).await;
    c.wait_healthy("all Rust").await;
    c.same_output(&["list"], "list, all Rust").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_rust_members_share_an_etcd_v2_cluster() {
    mixed_cluster_on(Store::EtcdV2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_rust_members_share_a_zookeeper_cluster() {
    mixed_cluster_on(Store::ZooKeeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_rust_members_share_an_exhibitor_cluster() {
    mixed_cluster_on(Store::Exhibitor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_rust_members_share_a_tls_zookeeper_cluster() {
    mixed_cluster_on(Store::ZooKeeperTls).await;
}
