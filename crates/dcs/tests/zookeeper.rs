//! The DCS contract and ZooKeeper-specific behaviour (ephemeral znodes, sessions, ACLs, an ensemble losing a member)
//! against a real ZooKeeper from the test kit. A JVM takes seconds to start, so each test shares one server among
//! several checks (clusters apart by scope).

mod contract;

use std::time::{Duration, Instant};

use patroni_dcs::zookeeper::{ZooKeeper, ZooKeeperSettings};
use patroni_dcs::Dcs;
use patroni_testkit::{ZooKeeperEnsemble, ZooKeeperServer};

fn settings(hosts: &str, scope: &str, name: &str) -> ZooKeeperSettings {
    let mut s = ZooKeeperSettings::new(scope, name).with_hosts([hosts]);
    s.ttl = Duration::from_secs(10);
    s.retry_timeout = Duration::from_secs(3);
    s
}

async fn client(hosts: &str, scope: &str, name: &str) -> ZooKeeper {
    ZooKeeper::new(settings(hosts, scope, name)).await.expect("client")
}

#[tokio::test]
async fn contract_on_one_server() {
    let zk = ZooKeeperServer::start().await.unwrap();
    let h = zk.endpoint();

    let (a, b) = (client(&h, "race", "a").await, client(&h, "race", "b").await);
    contract::leader_race(&a, &b, 30).await;
    contract::foreign_leader_is_untouchable(&a, &b).await;

    let (a, b) = (client(&h, "cas", "a").await, client(&h, "cas", "b").await);
    contract::config_cas(&a, &b).await;
    contract::initialize_sync_failover(&a, &b).await;

    let n = client(&h, "layout", "node1").await;
    contract::every_key_round_trips(&n).await;

    let (watcher, changer) = (client(&h, "watch", "watcher").await, client(&h, "watch", "changer").await);
    contract::watch_wakes_on_leader_change(&watcher, &changer).await;
    let (watcher, other) = (client(&h, "quiet", "watcher").await, client(&h, "quiet", "other").await);
    contract::watch_times_out(&watcher, &other).await;
    contract::wakeup_ends_watch(&watcher).await;

    let mut s = settings(&h, "refresh", "owner");
    s.ttl = Duration::from_secs(2);
    let owner = ZooKeeper::new(s).await.unwrap();
    let observer = client(&h, "refresh", "observer").await;
    contract::refreshing_keeps_keys(&owner, &observer).await;
}

/// The leader and member znodes are ephemeral: they live exactly as long as the session that made them. A session
/// that ends (the agent stops) takes them at once; one that expires (the agent froze longer than the TTL) takes
/// them within the TTL, and the frozen leader finds the key gone when it wakes (it must demote).
#[tokio::test]
async fn leader_and_member_znodes_live_with_the_session() {
    let zk = ZooKeeperServer::start().await.unwrap();
    let h = zk.endpoint();
    let observer = client(&h, "session", "observer").await;

    let owner = client(&h, "session", "owner").await;
    owner.touch_member(&contract::member_data("owner")).await.unwrap();
    owner.attempt_to_acquire_leader().await.unwrap();
    let c = observer.get_cluster().await.unwrap();
    assert_eq!(c.leader_name(), Some("owner"));
    let member = c.get_member("owner").unwrap();
    assert!(member.session.is_some(), "ephemeral member znode has an owner session");
    assert_eq!(c.leader.as_ref().unwrap().session, member.session);
    drop(owner);
    let gone = contract::wait_cluster(&observer, Duration::from_secs(5), |c| c.is_unlocked() && !c.has_member("owner"));
    assert!(gone.await.is_some(), "closing the session did not remove the ephemeral znodes");

    // A new TTL opens a new session: the keys are taken again by the next loop's writes.
    let mut s = settings(&h, "session", "retimed");
    s.ttl = Duration::from_secs(10);
    let retimed = ZooKeeper::new(s).await.unwrap();
    retimed.attempt_to_acquire_leader().await.unwrap();
    retimed.set_ttl(Duration::from_secs(4));
    let c = retimed.get_cluster().await.unwrap();
    retimed.update_leader(&c, None, None).await.unwrap();
    retimed.touch_member(&contract::member_data("retimed")).await.unwrap();
    let c = observer.get_cluster().await.unwrap();
    assert_eq!(c.leader_name(), Some("retimed"));
    assert!(c.has_member("retimed"));
    let leader = c.leader.clone().unwrap();
    retimed.delete_leader(&leader, None).await.unwrap();

    // patronictl mode reads without a member of its own
    let mut s = settings(&h, "session", "");
    s.ctl = true;
    let ctl = ZooKeeper::new(s).await.unwrap();
    assert!(ctl.get_cluster().await.unwrap().has_member("retimed"));
}

#[tokio::test]
async fn stopped_or_hung_server_makes_every_call_unreachable_then_recovers() {
    let mut zk = ZooKeeperServer::start().await.unwrap();
    let h = zk.endpoint();
    let mut s = settings(&h, "down", "node1");
    s.retry_timeout = Duration::from_secs(1);
    s.ttl = Duration::from_secs(30);
    let dcs = ZooKeeper::new(s).await.unwrap();
    dcs.touch_member(&contract::member_data("node1")).await.unwrap();
    dcs.attempt_to_acquire_leader().await.unwrap();
    let cluster = dcs.get_cluster().await.unwrap();

    zk.stop().await.unwrap();
    contract::every_call_unreachable(&dcs, &cluster).await;
    zk.start_again().await.unwrap();
    assert!(contract::wait_cluster(&dcs, Duration::from_secs(30), |_| true).await.is_some(), "no recovery");
    // Back on the same session (within its timeout) or a new one: either way the key is ours again.
    let c = dcs.get_cluster().await.unwrap();
    dcs.update_leader(&c, None, None).await.unwrap();
    dcs.touch_member(&contract::member_data("node1")).await.unwrap();
    let c = dcs.get_cluster().await.unwrap();
    assert_eq!(c.leader_name(), Some("node1"));
    assert!(c.has_member("node1"));

    // SIGSTOP: connections stay open but nothing answers.
    zk.pause().unwrap();
    let result = tokio::time::timeout(Duration::from_secs(40), contract::every_call_unreachable(&dcs, &c)).await;
    zk.resume().unwrap();
    assert!(result.is_ok(), "calls blocked");
    assert!(contract::wait_cluster(&dcs, Duration::from_secs(30), |_| true).await.is_some());
}

/// Three servers; the one a client is connected to dies: the session moves to another server and carries on.
#[tokio::test]
async fn an_ensemble_member_down_is_survived() {
    let mut ensemble = ZooKeeperEnsemble::start(3).await.unwrap();
    let hosts = ensemble.connect_string();
    let a = client(&hosts, "ensemble", "a").await;
    let b = client(&hosts, "ensemble", "b").await;
    a.touch_member(&contract::member_data("a")).await.unwrap();
    a.attempt_to_acquire_leader().await.unwrap();
    b.touch_member(&contract::member_data("b")).await.unwrap();
    for i in 0..3 {
        ensemble.servers[i].stop().await.unwrap();
        let started = Instant::now();
        let c = contract::wait_cluster(&a, Duration::from_secs(20), |c| c.leader_name() == Some("a")).await;
        assert!(c.is_some(), "server {i} down: the leader lost its key");
        let c = a.get_cluster().await.unwrap();
        a.update_leader(&c, None, None).await.unwrap();
        assert!(b.get_cluster().await.unwrap().has_member("a"));
        assert!(started.elapsed() < Duration::from_secs(20));
        ensemble.servers[i].start_again().await.unwrap();
    }
    contract::leader_race(&a, &b, 3).await;
}

/// Exhibitor gives the ZooKeeper servers; the backend connects to them and follows a changed list at the next poll.
#[tokio::test]
async fn exhibitor_feeds_the_zookeeper_server_list() {
    use patroni_dcs::exhibitor::{Exhibitor, ExhibitorSettings};
    let zk = ZooKeeperServer::start().await.unwrap();
    let list = |port: u16| format!(r#"{{"servers":["127.0.0.1"],"port":{port}}}"#);
    let answer = std::sync::Arc::new(std::sync::Mutex::new(list(zk.client_port())));
    let port = patroni_testkit::exhibitor_stand_in(answer.clone()).await.unwrap();
    let settings = |name: &str| ExhibitorSettings {
        // an Exhibitor that is down is skipped for one that answers
        hosts: vec!["127.0.0.1".into(), "localhost".into()],
        port,
        poll_interval: Duration::from_secs(1),
        zookeeper: settings("unused:1", "exhibitor", name),
    };
    let a = Exhibitor::new(settings("a")).await.unwrap();
    let b = Exhibitor::new(settings("b")).await.unwrap();
    assert_eq!(a.zookeeper_hosts(), zk.endpoint());
    contract::leader_race(&a, &b, 3).await;
    contract::watch_wakes_on_leader_change(&a, &b).await;

    // The ensemble moves (here: one more server listed); the next read after poll_interval picks it up.
    *answer.lock().unwrap() = r#"{"servers":["127.0.0.2","127.0.0.1"],"port":9}"#.into();
    let moved = contract::wait_cluster(&a, Duration::from_secs(10), |_| true);
    assert!(moved.await.is_some());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.get_cluster().await.unwrap();
    assert_eq!(a.zookeeper_hosts(), "127.0.0.1:9,127.0.0.2:9");
}

/// `use_ssl` against a ZooKeeper that serves TLS and demands a client certificate, set up as kazoo takes it:
/// `cacert`, `cert`, `key` (also encrypted, with `key_password`), no host-name check (the server is reached by an
/// address). The contract holds over TLS; `set_acls` gives the certificate's subject (`x509`, `CN=root`) the rights
/// on every znode it creates, so a client without that certificate (on the server's plain port) can neither read
/// the cluster nor take its leader key; and the wrong CA is refused, the setting named.
#[tokio::test]
async fn tls_with_a_client_certificate_and_x509_acls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = patroni_testkit::TestCerts::generate(dir.path()).unwrap();
    let zk = ZooKeeperServer::start_tls(&certs, true).await.unwrap();
    let h = zk.tls_endpoint().expect("a TLS port");
    let tls = |scope: &str, name: &str| {
        let mut s = settings(&h, scope, name);
        s.use_ssl = true;
        s.cacert = Some(certs.ca_cert.clone());
        s.cert = Some(certs.client_cert.clone());
        s.key = Some(certs.client_key.clone());
        s
    };

    let (a, b) = (ZooKeeper::new(tls("race", "a")).await.unwrap(), ZooKeeper::new(tls("race", "b")).await.unwrap());
    contract::leader_race(&a, &b, 10).await;
    let n = ZooKeeper::new(tls("layout", "node1")).await.unwrap();
    contract::every_key_round_trips(&n).await;

    // The same key encrypted (PKCS#8, as `openssl pkcs8 -topk8` writes it) and opened with key_password.
    let encrypted = dir.path().join("client.enc.key");
    patroni_testkit::TestCerts::encrypt_key(&certs.client_key, &encrypted, "s3cret").expect("openssl pkcs8");
    let mut s = tls("acl", "owner");
    s.key = Some(encrypted);
    s.key_password = Some("s3cret".into());
    s.set_acls = vec![("CN=root".into(), vec!["ALL".into()])];
    let owner = ZooKeeper::new(s).await.unwrap();
    owner.touch_member(&contract::member_data("owner")).await.unwrap();
    owner.attempt_to_acquire_leader().await.unwrap();
    owner.initialize(true, "12345").await.unwrap();
    let c = ZooKeeper::new(tls("acl", "reader")).await.unwrap().get_cluster().await.unwrap();
    assert_eq!(c.leader_name(), Some("owner"));
    assert!(c.has_member("owner"));

    let outsider = client(&zk.endpoint(), "acl", "outsider").await;
    let read = outsider.get_cluster().await;
    assert!(read.is_err(), "a client without the certificate read the cluster: {read:?}");
    let took = outsider.attempt_to_acquire_leader().await;
    assert!(took.is_err(), "a client without the certificate took the leader key: {took:?}");

    // A CA that did not sign the server's certificate: no session, an error naming the cause.
    let other_dir = tempfile::tempdir().unwrap();
    let other = patroni_testkit::TestCerts::generate(other_dir.path()).unwrap();
    let mut s = tls("wrongca", "n");
    s.cacert = Some(other.ca_cert.clone());
    // Long enough for a handshake to fail on a loaded machine; the cause is in the error however the call ends.
    s.retry_timeout = Duration::from_secs(6);
    let stranger = ZooKeeper::new(s).await.unwrap();
    let e = stranger.get_cluster().await.unwrap_err().to_string();
    assert!(e.contains("TLS handshake failed: invalid peer certificate"), "{e}");
}
