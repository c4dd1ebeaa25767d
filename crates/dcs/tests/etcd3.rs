//! The DCS contract and etcd-specific behaviour against a real etcd from the test kit.

mod contract;

use std::time::{Duration, Instant};

use patroni_dcs::etcd3::{Etcd3, Etcd3Settings};
use patroni_dcs::{Dcs, DcsError};
use patroni_testkit::{free_port, EtcdServer};

fn settings(etcd: &EtcdServer, scope: &str, name: &str) -> Etcd3Settings {
    let mut s = Etcd3Settings::new(scope, name).with_hosts([etcd.endpoint()]);
    s.ttl = Duration::from_secs(10);
    s.retry_timeout = Duration::from_secs(2);
    if etcd.certs().is_some() {
        s.protocol = Some("https".into());
    }
    s
}

async fn client(etcd: &EtcdServer, scope: &str, name: &str) -> Etcd3 {
    Etcd3::new(settings(etcd, scope, name)).await.expect("client")
}

async fn with_ttl(etcd: &EtcdServer, scope: &str, name: &str, ttl: u64) -> Etcd3 {
    let mut s = settings(etcd, scope, name);
    s.ttl = Duration::from_secs(ttl);
    Etcd3::new(s).await.expect("client")
}

/// SIGSTOP takes effect only when one of etcd's threads is scheduled to handle it; on a loaded machine the others
/// can still answer for some milliseconds. Waits until every thread is stopped, so "hung" really means hung.
async fn pause_fully(etcd: &mut EtcdServer) {
    etcd.pause().unwrap();
    let Some(pid) = etcd.pid() else { return };
    let start = Instant::now();
    loop {
        let all_stopped = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|dir| {
                dir.flatten().all(|t| {
                    let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                    // the state follows the parenthesised command name
                    stat.rsplit(')').next().and_then(|r| r.split_whitespace().next()) == Some("T")
                })
            })
            .unwrap_or(true);
        if all_stopped || start.elapsed() > Duration::from_secs(5) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn leader_race_has_exactly_one_winner_each_time() {
    let etcd = EtcdServer::start().await.unwrap();
    // 100 rounds of fsynced writes: on a loaded CI machine one etcd fsync can take longer than the 2 s the other
    // tests allow, which would fail the race for a reason that has nothing to do with who wins it.
    let race_client = |name: &'static str| {
        let mut s = settings(&etcd, "race", name);
        s.retry_timeout = Duration::from_secs(10);
        Etcd3::new(s)
    };
    let a = race_client("a").await.unwrap();
    let b = race_client("b").await.unwrap();
    contract::leader_race(&a, &b, 100).await;
}

#[tokio::test]
async fn leader_and_member_keys_expire_after_ttl() {
    let etcd = EtcdServer::start().await.unwrap();
    let owner = with_ttl(&etcd, "expire", "owner", 2).await;
    let observer = client(&etcd, "expire", "observer").await;
    contract::keys_expire_with_ttl(&owner, &observer).await;
}

#[tokio::test]
async fn refreshing_keeps_leader_and_member_keys() {
    let etcd = EtcdServer::start().await.unwrap();
    let owner = with_ttl(&etcd, "refresh", "owner", 2).await;
    let observer = client(&etcd, "refresh", "observer").await;
    contract::refreshing_keeps_keys(&owner, &observer).await;
}

#[tokio::test]
async fn ttl_change_takes_effect_on_the_next_refresh() {
    let etcd = EtcdServer::start().await.unwrap();
    let owner = with_ttl(&etcd, "ttl", "owner", 30).await;
    let observer = client(&etcd, "ttl", "observer").await;
    owner.attempt_to_acquire_leader().await.unwrap();
    owner.touch_member(&contract::member_data("owner")).await.unwrap();
    let first_lease = owner.lease_id().await;
    owner.set_ttl(Duration::from_secs(2));
    // the next loop's writes rebind both keys to a 2 s lease
    let c = owner.get_cluster().await.unwrap();
    owner.update_leader(&c, None, None).await.unwrap();
    owner.touch_member(&contract::member_data("owner")).await.unwrap();
    let silent_since = Instant::now();
    assert_ne!(owner.lease_id().await, first_lease);
    let gone =
        contract::wait_cluster(&observer, Duration::from_secs(10), |c| c.is_unlocked() && !c.has_member("owner")).await;
    assert!(gone.is_some(), "keys still bound to the 30 s lease");
    assert!(silent_since.elapsed() <= Duration::from_secs(3), "{:?}", silent_since.elapsed());
}

#[tokio::test]
async fn foreign_leader_key_cannot_be_updated_or_deleted() {
    let etcd = EtcdServer::start().await.unwrap();
    let a = client(&etcd, "foreign", "a").await;
    let b = client(&etcd, "foreign", "b").await;
    contract::foreign_leader_is_untouchable(&a, &b).await;
}

#[tokio::test]
async fn config_compare_and_set() {
    let etcd = EtcdServer::start().await.unwrap();
    let a = client(&etcd, "cas", "a").await;
    let b = client(&etcd, "cas", "b").await;
    contract::config_cas(&a, &b).await;
    contract::initialize_sync_failover(&a, &b).await;
}

#[tokio::test]
async fn every_key_kind_round_trips_and_is_stored_as_patroni_does() {
    let etcd = EtcdServer::start().await.unwrap();
    let a = client(&etcd, "layout", "node1").await;
    // raw layout first, then the full round trip (which ends by deleting the cluster)
    a.touch_member(&contract::member_data("node1")).await.unwrap();
    a.attempt_to_acquire_leader().await.unwrap();
    a.write_sync_state(Some("node1"), &["node3".into(), "node2".into()], 1, None).await.unwrap();
    assert_eq!(etcd.get("/service/layout/leader").await.unwrap().as_deref(), Some("node1"));
    assert_eq!(
        etcd.get("/service/layout/sync").await.unwrap().as_deref(),
        Some(r#"{"leader":"node1","quorum":1,"sync_standby":"node2,node3"}"#)
    );
    let member = etcd.get("/service/layout/members/node1").await.unwrap().unwrap();
    assert!(
        member.starts_with(r#"{"conn_url":"postgres://127.0.0.1:5432/postgres?name=node1","api_url":"#),
        "{member}"
    );
    a.delete_cluster().await.unwrap();
    assert!(etcd.get_prefix("/service/layout/").await.unwrap().is_empty());
    contract::every_key_round_trips(&a).await;
}

#[tokio::test]
async fn values_written_by_python_patroni_are_read() {
    let etcd = EtcdServer::start().await.unwrap();
    // The exact values Python Patroni 4.1.5 wrote (see tests/fixtures).
    let raw: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/python-patroni-4.1.5-range.json")).unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    for kv in raw["kvs"].as_array().unwrap() {
        let key = String::from_utf8(b64.decode(kv["key"].as_str().unwrap()).unwrap()).unwrap();
        let value = String::from_utf8(b64.decode(kv["value"].as_str().unwrap()).unwrap()).unwrap();
        etcd.put(&key, &value).await.unwrap();
    }
    let ours = client(&etcd, "pyclus", "node2").await;
    let c = ours.get_cluster().await.unwrap();
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    assert_eq!(c.leader_name(), Some("node1"));
    assert_eq!(c.leader.as_ref().unwrap().member.data.role.as_deref(), Some("primary"));
    assert_eq!(c.sync.sync_standby, vec!["node2", "node3"]);
    assert_eq!(c.leader_optime(), 50331968);
    assert_eq!(c.config.as_ref().unwrap().data["loop_wait"], 10);
    assert_eq!(c.history.as_ref().unwrap().lines.len(), 1);
    assert_eq!(c.failover.as_ref().unwrap().candidate.as_deref(), Some("node2"));
    assert_eq!(c.failsafe.as_ref().unwrap().len(), 2);
    // The Python-written leader key (no lease here) is someone else's: we cannot take or drop it.
    assert!(ours.attempt_to_acquire_leader().await.unwrap_err().is_compare_failed());
}

#[tokio::test]
async fn bad_values_from_another_writer_are_reported_not_fatal() {
    let etcd = EtcdServer::start().await.unwrap();
    etcd.put("/service/junk/config", "{oops").await.unwrap();
    etcd.put("/service/junk/members/weird", "[1,2,3]").await.unwrap();
    etcd.put("/service/junk/leader", "weird").await.unwrap();
    etcd.put("/service/junk/status", r#"{"optime":"nope"}"#).await.unwrap();
    let ours = client(&etcd, "junk", "me").await;
    let c = ours.get_cluster().await.unwrap();
    let keys: Vec<&str> = c.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys.len(), 3, "{:?}", c.problems);
    assert!(keys.contains(&"config") && keys.contains(&"members/weird") && keys.contains(&"status"));
    assert_eq!(c.leader_name(), Some("weird"));
    assert!(c.has_member("weird"));
    // and the bad config can still be replaced with compare-and-set
    let v = c.config.unwrap().version;
    ours.set_config_value(r#"{"ttl":30}"#, Some(v)).await.unwrap();
}

#[tokio::test]
async fn watch_returns_soon_after_a_leader_change() {
    let etcd = EtcdServer::start().await.unwrap();
    let watcher = client(&etcd, "watch", "watcher").await;
    let changer = client(&etcd, "watch", "changer").await;
    contract::watch_wakes_on_leader_change(&watcher, &changer).await;
}

#[tokio::test]
async fn watch_returns_at_the_timeout_when_nothing_relevant_changes() {
    let etcd = EtcdServer::start().await.unwrap();
    let watcher = client(&etcd, "quiet", "watcher").await;
    let other = client(&etcd, "quiet", "other").await;
    contract::watch_times_out(&watcher, &other).await;
    contract::wakeup_ends_watch(&watcher).await;
}

#[tokio::test]
async fn stopped_etcd_makes_every_call_unreachable_then_recovers() {
    let mut etcd = EtcdServer::start().await.unwrap();
    let mut s = settings(&etcd, "down", "node1");
    s.retry_timeout = Duration::from_secs(1);
    let dcs = Etcd3::new(s).await.unwrap();
    dcs.touch_member(&contract::member_data("node1")).await.unwrap();
    dcs.attempt_to_acquire_leader().await.unwrap();
    let cluster = dcs.get_cluster().await.unwrap();

    etcd.stop().await.unwrap();
    contract::every_call_unreachable(&dcs, &cluster).await;

    etcd.start_again().await.unwrap();
    let back = contract::wait_cluster(&dcs, Duration::from_secs(15), |_| true).await;
    assert!(back.is_some(), "no recovery after etcd came back");
    let c = dcs.get_cluster().await.unwrap();
    // Our lease survived the restart (etcd persists leases), so the leader key is still ours and refreshable.
    dcs.update_leader(&c, None, None).await.unwrap();
    dcs.touch_member(&contract::member_data("node1")).await.unwrap();
    assert!(dcs.get_cluster().await.unwrap().has_member("node1"));
}

#[tokio::test]
async fn a_hung_etcd_cannot_block_a_call_past_retry_timeout() {
    let mut etcd = EtcdServer::start().await.unwrap();
    let mut s = settings(&etcd, "hung", "node1");
    s.retry_timeout = Duration::from_secs(1);
    let dcs = Etcd3::new(s).await.unwrap();
    dcs.attempt_to_acquire_leader().await.unwrap();
    let cluster = dcs.get_cluster().await.unwrap();
    pause_fully(&mut etcd).await;
    // connections are accepted by the kernel but never answered
    let result = tokio::time::timeout(Duration::from_secs(30), async {
        contract::every_call_unreachable(&dcs, &cluster).await;
    })
    .await;
    etcd.resume().unwrap();
    assert!(result.is_ok(), "calls blocked");
    // (requests given up on were still delivered and run after the resume, delete_cluster among them)
    assert!(contract::wait_cluster(&dcs, Duration::from_secs(15), |_| true).await.is_some());
}

#[tokio::test]
async fn a_dead_endpoint_among_two_is_skipped() {
    let etcd = EtcdServer::start().await.unwrap();
    let dead = format!("127.0.0.1:{}", free_port());
    for hosts in [vec![dead.clone(), etcd.endpoint()], vec![etcd.endpoint(), dead.clone()]] {
        let mut s = settings(&etcd, "twohosts", "node1");
        s.hosts = hosts.clone();
        let dcs = Etcd3::new(s).await.unwrap();
        let start = Instant::now();
        dcs.touch_member(&contract::member_data("node1")).await.unwrap();
        dcs.attempt_to_acquire_leader().await.unwrap();
        let c = dcs.get_cluster().await.unwrap();
        assert_eq!(c.leader_name(), Some("node1"), "{hosts:?}");
        dcs.delete_leader(c.leader.as_ref().unwrap(), None).await.unwrap();
        assert!(start.elapsed() < dcs.retry_timeout(), "{hosts:?}");
    }
}

#[tokio::test]
async fn hosts_given_as_one_comma_separated_string() {
    let etcd = EtcdServer::start().await.unwrap();
    let dead = format!("127.0.0.1:{}", free_port());
    let mut s = settings(&etcd, "comma", "node1");
    s.hosts = vec![format!("{dead},{}", etcd.endpoint())];
    let dcs = Etcd3::new(s).await.unwrap();
    dcs.get_cluster().await.unwrap();
}

#[tokio::test]
async fn url_and_proxy_settings_work() {
    let etcd = EtcdServer::start().await.unwrap();
    for (url, proxy) in [(Some(etcd.client_url()), None), (None, Some(etcd.client_url()))] {
        let mut s = Etcd3Settings::new("urls", "node1");
        s.url = url;
        s.proxy = proxy;
        let dcs = Etcd3::new(s).await.unwrap();
        dcs.touch_member(&contract::member_data("node1")).await.unwrap();
        assert!(dcs.get_cluster().await.unwrap().has_member("node1"));
    }
}

#[tokio::test]
async fn etcd_with_authentication() {
    let etcd = EtcdServer::builder().auth("rootpw").start().await.unwrap();
    etcd.add_user("patroni", "secret", "/service/").await.unwrap();

    let mut s = settings(&etcd, "auth", "a");
    s.username = Some("patroni".into());
    s.password = Some("secret".into());
    let a = Etcd3::new(s.clone()).await.unwrap();
    s.name = "b".into();
    let b = Etcd3::new(s.clone()).await.unwrap();
    contract::leader_race(&a, &b, 5).await;
    contract::config_cas(&a, &b).await;
    contract::watch_wakes_on_leader_change(&a, &b).await;

    // credentials in the url work too
    let mut u = Etcd3Settings::new("auth", "c");
    u.url = Some(format!("http://patroni:secret@{}", etcd.endpoint()));
    let c = Etcd3::new(u).await.unwrap();
    c.touch_member(&contract::member_data("c")).await.unwrap();

    // wrong password: refused, and said so (not "unreachable")
    s.password = Some("wrong".into());
    let bad = Etcd3::new(s.clone()).await.unwrap();
    match bad.get_cluster().await {
        Err(DcsError::Rejected(m)) => assert!(m.contains("authentication"), "{m}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    // no credentials at all against an auth-enabled etcd: refused too
    let mut anon = settings(&etcd, "auth", "anon");
    anon.retry_timeout = Duration::from_secs(1);
    let anon = Etcd3::new(anon).await.unwrap();
    assert!(matches!(anon.get_cluster().await, Err(DcsError::Rejected(_))));
}

#[tokio::test]
async fn expired_auth_token_is_renewed() {
    let etcd = EtcdServer::builder().auth("rootpw").arg("--auth-token-ttl=1").start().await.unwrap();
    etcd.add_user("patroni", "secret", "/service/").await.unwrap();
    let mut s = settings(&etcd, "token", "a");
    s.username = Some("patroni".into());
    s.password = Some("secret".into());
    let a = Etcd3::new(s).await.unwrap();
    a.touch_member(&contract::member_data("a")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.touch_member(&contract::member_data("a2")).await.unwrap();
    assert!(a.get_cluster().await.unwrap().has_member("a"));
}

#[tokio::test]
async fn etcd_over_tls() {
    // etcd 3.4 asks for client certificates whenever it has a trusted CA file, so clients present one.
    let etcd = EtcdServer::builder().tls().start().await.unwrap();
    let certs = etcd.certs().unwrap();
    let mut s = settings(&etcd, "tls", "a");
    s.cacert = Some(certs.ca_cert.clone());
    s.cert = Some(certs.client_cert.clone());
    s.key = Some(certs.client_key.clone());
    let a = Etcd3::new(s.clone()).await.unwrap();
    s.name = "b".into();
    let b = Etcd3::new(s.clone()).await.unwrap();
    contract::leader_race(&a, &b, 5).await;
    contract::watch_wakes_on_leader_change(&a, &b).await;

    // without our CA the server is not trusted: a clear failure, bounded by retry_timeout
    let mut untrusted = settings(&etcd, "tls", "c");
    untrusted.cert = Some(certs.client_cert.clone());
    untrusted.key = Some(certs.client_key.clone());
    untrusted.retry_timeout = Duration::from_secs(1);
    let c = Etcd3::new(untrusted).await.unwrap();
    assert!(c.get_cluster().await.is_err());
}

/// One `openssl req -x509` certificate (CA:TRUE) as etcd's --cert-file, --trusted-ca-file and our client
/// certificate, with --client-cert-auth: Patroni's acceptance suite's setup. OpenSSL and Go trust a peer that
/// presents exactly a certificate of the CA file; rustls alone does not.
#[tokio::test]
async fn etcd_with_one_openssl_self_signed_certificate_for_everything() {
    let etcd = EtcdServer::builder().openssl_self_signed().start().await.unwrap();
    let certs = etcd.certs().unwrap();
    let mut s = settings(&etcd, "selfsigned", "a");
    s.cacert = Some(certs.ca_cert.clone());
    s.cert = Some(certs.client_cert.clone());
    s.key = Some(certs.client_key.clone());
    let a = Etcd3::new(s.clone()).await.unwrap();
    s.name = "b".into();
    let b = Etcd3::new(s.clone()).await.unwrap();
    contract::leader_race(&a, &b, 3).await;
    contract::watch_wakes_on_leader_change(&a, &b).await;

    // Another self-signed certificate as our CA: etcd is not trusted.
    let dir = tempfile::tempdir().unwrap();
    let other = patroni_testkit::TestCerts::openssl_self_signed(dir.path(), "root").unwrap();
    let mut untrusted = settings(&etcd, "selfsigned", "c");
    untrusted.cacert = Some(other.ca_cert.clone());
    untrusted.cert = Some(certs.client_cert.clone());
    untrusted.key = Some(certs.client_key.clone());
    untrusted.retry_timeout = Duration::from_secs(1);
    let c = Etcd3::new(untrusted).await.unwrap();
    assert!(c.get_cluster().await.is_err());
    // Another self-signed client certificate: etcd refuses us.
    let mut stranger = settings(&etcd, "selfsigned", "d");
    stranger.cacert = Some(certs.ca_cert.clone());
    stranger.cert = Some(other.client_cert.clone());
    stranger.key = Some(other.client_key.clone());
    stranger.retry_timeout = Duration::from_secs(1);
    let d = Etcd3::new(stranger).await.unwrap();
    assert!(d.get_cluster().await.is_err());
}

#[tokio::test]
async fn etcd_over_tls_without_client_certificates() {
    // An empty trusted CA file (the last flag wins) makes etcd 3.4 stop asking for client certificates.
    let etcd = EtcdServer::builder().tls().arg("--trusted-ca-file=").start().await.unwrap();
    let certs = etcd.certs().unwrap();
    let mut s = settings(&etcd, "tlsonly", "a");
    s.cacert = Some(certs.ca_cert.clone());
    let a = Etcd3::new(s.clone()).await.unwrap();
    s.name = "b".into();
    let b = Etcd3::new(s).await.unwrap();
    contract::leader_race(&a, &b, 3).await;
    contract::config_cas(&a, &b).await;
}

#[tokio::test]
async fn etcd_with_client_certificates_including_an_encrypted_key() {
    let etcd = EtcdServer::builder().client_cert_auth().start().await.unwrap();
    let certs = etcd.certs().unwrap();
    let mut s = settings(&etcd, "mtls", "a");
    s.cacert = Some(certs.ca_cert.clone());
    s.cert = Some(certs.client_cert.clone());
    s.key = Some(certs.client_key.clone());
    let a = Etcd3::new(s.clone()).await.unwrap();
    a.touch_member(&contract::member_data("a")).await.unwrap();
    assert!(a.get_cluster().await.unwrap().has_member("a"));

    // the same key, encrypted with a password (PKCS#8), via key_password
    let dir = tempfile::tempdir().unwrap();
    let encrypted = dir.path().join("client.enc.key");
    match patroni_testkit::TestCerts::encrypt_key(&certs.client_key, &encrypted, "s3cret") {
        Ok(()) => {
            s.key = Some(encrypted.clone());
            s.key_password = Some("s3cret".into());
            s.name = "b".into();
            let b = Etcd3::new(s.clone()).await.unwrap();
            b.touch_member(&contract::member_data("b")).await.unwrap();
            s.key_password = Some("wrong".into());
            assert!(matches!(Etcd3::new(s.clone()).await, Err(DcsError::Config(_))));
            s.key_password = None;
            assert!(matches!(Etcd3::new(s).await, Err(DcsError::Config(m)) if m.contains("key_password")));
        }
        _ => eprintln!("openssl not available: encrypted key part skipped"),
    }

    // without a client certificate the server refuses us
    let mut nocert = settings(&etcd, "mtls", "c");
    nocert.cacert = Some(certs.ca_cert.clone());
    nocert.retry_timeout = Duration::from_secs(1);
    let c = Etcd3::new(nocert).await.unwrap();
    assert!(c.get_cluster().await.is_err());
}

#[tokio::test]
async fn citus_groups_live_under_the_scope_and_the_coordinator_sees_workers() {
    let etcd = EtcdServer::start().await.unwrap();
    let mut w = settings(&etcd, "citus", "worker1");
    w.citus_group = Some(1);
    let worker = Etcd3::new(w).await.unwrap();
    let mut c = settings(&etcd, "citus", "coord1");
    c.citus_group = Some(0);
    let coord = Etcd3::new(c).await.unwrap();
    worker.attempt_to_acquire_leader().await.unwrap();
    coord.attempt_to_acquire_leader().await.unwrap();
    assert_eq!(etcd.get("/service/citus/1/leader").await.unwrap().as_deref(), Some("worker1"));
    assert_eq!(etcd.get("/service/citus/0/leader").await.unwrap().as_deref(), Some("coord1"));
    let view = coord.get_cluster().await.unwrap();
    assert_eq!(view.leader_name(), Some("coord1"));
    assert_eq!(view.workers[&1].leader_name(), Some("worker1"));
    let wview = worker.get_cluster().await.unwrap();
    assert_eq!(wview.leader_name(), Some("worker1"));
    assert!(wview.workers.is_empty());
}

#[tokio::test]
async fn bad_settings_are_reported() {
    let s = Etcd3Settings::new("x", "y");
    assert!(matches!(Etcd3::new(s).await, Err(DcsError::Config(_))));
    let mut s = Etcd3Settings::new("x", "y").with_hosts(["127.0.0.1:1"]);
    s.cacert = Some("/nonexistent/ca.pem".into());
    assert!(matches!(Etcd3::new(s).await, Err(DcsError::Config(m)) if m.contains("cacert")));
}

// ---- the watch-fed cluster cache ----

/// A client whose cache is built and whose HA-loop gate is open (a `watch` just returned), as in the HA loop.
async fn cached_client(etcd: &EtcdServer, scope: &str, name: &str) -> Etcd3 {
    cached(settings(etcd, scope, name)).await
}

/// A client with these settings whose member key exists and whose cluster cache is ready.
async fn cached(s: Etcd3Settings) -> Etcd3 {
    let name = s.name.clone();
    let dcs = Etcd3::new(s).await.expect("client");
    dcs.touch_member(&contract::member_data(&name)).await.unwrap();
    dcs.get_cluster().await.unwrap();
    let start = Instant::now();
    while !dcs.cache_ready() {
        assert!(start.elapsed() < Duration::from_secs(10), "cache never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dcs
}

/// The HA loop's order: a `watch` ends, then the next cycle reads.
async fn loop_read(dcs: &Etcd3) -> Result<patroni_dcs::Cluster, DcsError> {
    dcs.watch(None, Duration::from_millis(1)).await.unwrap();
    dcs.get_cluster().await
}

fn count(dcs: &Etcd3, method: &str) -> u64 {
    dcs.request_counts().get(method).copied().unwrap_or(0)
}

#[tokio::test]
async fn cache_serves_another_writers_change_without_a_range() {
    let etcd = EtcdServer::start().await.unwrap();
    let a = cached_client(&etcd, "cache", "a").await;
    let b = client(&etcd, "cache", "b").await;
    let first = loop_read(&a).await.unwrap();
    let (ranges, watches) = (count(&a, "/kv/range"), count(&a, "/watch"));
    b.set_config_value(r#"{"ttl":31}"#, None).await.unwrap();
    // the cache wakes the watch on the config change, then the next read answers from it
    let version = first.leader.as_ref().map(|l| l.version);
    assert_eq!(a.watch(version, Duration::from_secs(5)).await, Ok(true));
    let c = a.get_cluster().await.unwrap();
    assert_eq!(c.config.unwrap().data["ttl"], 31);
    b.touch_member(&contract::member_data("b")).await.unwrap();
    let c = loop_read(&a).await.unwrap();
    assert!(c.has_member("b") && c.has_member("a"));
    assert_eq!(count(&a, "/kv/range"), ranges, "{:?}", a.request_counts());
    assert_eq!(count(&a, "/watch"), watches, "{:?}", a.request_counts());
    // a read right after another client's write sees it (through the cache or, if the event is late, a Range)
    for i in 0..20 {
        b.set_config_value(&format!(r#"{{"ttl":{}}}"#, 40 + i), None).await.unwrap();
        assert_eq!(loop_read(&a).await.unwrap().config.unwrap().data["ttl"], 40 + i);
    }
}

#[tokio::test]
async fn cache_wakes_the_leader_watch_on_delete_and_on_change() {
    let etcd = EtcdServer::start().await.unwrap();
    let w = cached_client(&etcd, "cwatch", "w").await;
    let x = client(&etcd, "cwatch", "x").await;
    let y = client(&etcd, "cwatch", "y").await;
    x.attempt_to_acquire_leader().await.unwrap();
    let watches = count(&w, "/watch");
    for step in 0..3 {
        let c = loop_read(&w).await.unwrap();
        let version = c.leader.as_ref().map(|l| l.version);
        let change = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            match step {
                // deleted
                0 => x.delete_leader(&c.leader.clone().unwrap(), None).await.unwrap(),
                // created by someone else
                1 => y.attempt_to_acquire_leader().await.unwrap(),
                // changed hands (deleted and taken again before we look)
                _ => {
                    y.delete_leader(&c.leader.clone().unwrap(), None).await.unwrap();
                    x.attempt_to_acquire_leader().await.unwrap();
                }
            }
            Instant::now()
        };
        let (woke, changed_at) = tokio::join!(
            async {
                let r = w.watch(version, Duration::from_secs(10)).await;
                (r, Instant::now())
            },
            change
        );
        assert_eq!(woke.0, Ok(true), "step {step}");
        assert!(woke.1.saturating_duration_since(changed_at) < Duration::from_secs(1), "step {step}");
    }
    assert_eq!(loop_read(&w).await.unwrap().leader_name(), Some("x"));
    // a leader refreshing its key (same value) does not wake anyone
    let c = loop_read(&w).await.unwrap();
    let version = c.leader.as_ref().map(|l| l.version);
    let started = Instant::now();
    let (r, ()) = tokio::join!(w.watch(version, Duration::from_millis(1500)), async {
        for _ in 0..3 {
            let c = x.get_cluster().await.unwrap();
            x.update_leader(&c, None, None).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    assert_eq!(r, Ok(false));
    assert!(started.elapsed() >= Duration::from_millis(1450));
    assert_eq!(count(&w, "/watch"), watches, "the waits used the cache, not watches of their own");
}

#[tokio::test]
async fn own_writes_are_visible_in_the_next_read() {
    let etcd = EtcdServer::start().await.unwrap();
    let a = cached_client(&etcd, "ownwrite", "a").await;
    let ranges = count(&a, "/kv/range");
    for i in 0..20u32 {
        a.attempt_to_acquire_leader().await.unwrap();
        let c = loop_read(&a).await.unwrap();
        assert_eq!(c.leader_name(), Some("a"), "round {i}");
        a.update_leader(&c, None, None).await.unwrap();
        let sync = a.write_sync_state(Some("a"), &[format!("r{i}")], 0, c.sync.version).await.unwrap();
        let c = a.get_cluster().await.unwrap();
        assert_eq!(c.sync.version, sync.version, "round {i}");
        assert_eq!(c.sync.sync_standby, vec![format!("r{i}")], "round {i}");
        a.delete_leader(c.leader.as_ref().unwrap(), None).await.unwrap();
        assert!(loop_read(&a).await.unwrap().is_unlocked(), "round {i}");
    }
    // (a Range only when an event took longer than the catch-up wait; on a quiet machine never)
    let extra = count(&a, "/kv/range") - ranges;
    assert!(extra <= 10, "{extra} of 60 reads went to a range: {:?}", a.request_counts());
}

#[tokio::test]
async fn cached_reads_report_a_stopped_or_hung_etcd_then_recover() {
    let mut etcd = EtcdServer::start().await.unwrap();
    let mut s = settings(&etcd, "cdown", "node1");
    s.retry_timeout = Duration::from_secs(1);
    let dcs = cached(s).await;
    loop_read(&dcs).await.unwrap();
    let limit = dcs.retry_timeout() + Duration::from_secs(1);

    // hung: the stream stays open and silent, the cache looks healthy; the read must still fail
    pause_fully(&mut etcd).await;
    let t = Instant::now();
    let r = loop_read(&dcs).await;
    etcd.resume().unwrap();
    assert!(matches!(r, Err(DcsError::Unreachable(_))), "{r:?}");
    assert!(t.elapsed() <= limit, "{:?}", t.elapsed());
    assert!(contract::wait_cluster(&dcs, Duration::from_secs(15), |_| true).await.is_some());

    // stopped
    etcd.stop().await.unwrap();
    let t = Instant::now();
    let r = loop_read(&dcs).await;
    assert!(matches!(r, Err(DcsError::Unreachable(_))), "{r:?}");
    assert!(t.elapsed() <= limit, "{:?}", t.elapsed());
    // and a watch sleeps out its timeout
    assert_eq!(dcs.watch(None, Duration::from_millis(300)).await, Ok(false));

    etcd.start_again().await.unwrap();
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < Duration::from_secs(20), "no recovery: {:?}", dcs.request_counts());
        if loop_read(&dcs).await.is_ok() && dcs.cache_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // rebuilt: reads are served by the cache again
    loop_read(&dcs).await.unwrap();
    let ranges = count(&dcs, "/kv/range");
    for _ in 0..5 {
        assert!(loop_read(&dcs).await.unwrap().has_member("node1"));
    }
    assert_eq!(count(&dcs, "/kv/range"), ranges, "{:?}", dcs.request_counts());
}

#[tokio::test]
async fn cache_keeps_working_across_compaction_and_its_task_ends_with_the_client() {
    let etcd = EtcdServer::start().await.unwrap();
    let a = cached_client(&etcd, "compact", "a").await;
    let b = client(&etcd, "compact", "b").await;
    for i in 0..10 {
        b.set_config_value(&format!(r#"{{"ttl":{}}}"#, 30 + i), None).await.unwrap();
    }
    let v = etcd.v3("kv/range", serde_json::json!({"key": "Lw=="})).await.unwrap();
    let rev = v["header"]["revision"].as_str().unwrap().to_string();
    etcd.v3("kv/compaction", serde_json::json!({"revision": rev, "physical": true})).await.unwrap();
    b.set_config_value(r#"{"ttl":99}"#, None).await.unwrap();
    let seen =
        contract::wait_cluster(&a, Duration::from_secs(5), |c| c.config.as_ref().is_some_and(|c| c.data["ttl"] == 99))
            .await;
    assert!(seen.is_some());
    assert!(a.cache_ready());
    let streams = || async {
        let text = etcd.http_client().get(format!("{}/metrics", etcd.client_url())).send().await.unwrap();
        let text = text.text().await.unwrap();
        text.lines()
            .find(|l| l.starts_with("etcd_debugging_mvcc_watcher_total "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(-1.0)
    };
    let before = streams().await;
    assert!(before >= 1.0, "{before}");
    drop(a);
    let start = Instant::now();
    while streams().await >= before {
        assert!(start.elapsed() < Duration::from_secs(10), "the dropped client's watch is still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// etcd's own count of started gRPC calls by method (the gateway turns every HTTP request into one).
async fn grpc_started(etcd: &EtcdServer) -> std::collections::BTreeMap<String, f64> {
    let resp = etcd.http_client().get(format!("{}/metrics", etcd.client_url())).send().await.unwrap();
    let text = resp.text().await.unwrap();
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("grpc_server_started_total{")) {
        let method = line.split("grpc_method=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("?");
        let n: f64 = line.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0.0);
        *out.entry(method.to_string()).or_insert(0.0) += n;
    }
    out
}

/// Three agents in idle HA loops (read, leader refresh on the leader, member touch, watch for loop_wait): etcd
/// calls per agent per loop, counted by etcd itself. Before the cache: a Range and a Watch per agent per loop, a
/// keep-alive or two and the leader's Txn (≈ 3.7 per agent per loop in BENCHMARKS.md); with the cache but the
/// Txn, 1.33.
#[tokio::test]
async fn idle_loops_cost_few_etcd_calls() {
    let etcd = EtcdServer::start().await.unwrap();
    let names = ["n1", "n2", "n3"];
    let mut agents = Vec::new();
    for n in names {
        agents.push(cached_client(&etcd, "idle", n).await);
    }
    agents[0].attempt_to_acquire_leader().await.unwrap();
    let loop_wait = Duration::from_millis(500);
    let run = |dcs: &'static Etcd3, leader: bool, loops: usize| async move {
        for _ in 0..loops {
            let c = dcs.get_cluster().await.unwrap();
            if leader {
                dcs.update_leader(&c, None, None).await.unwrap();
            }
            dcs.touch_member(&contract::member_data(dcs.name())).await.unwrap();
            let version = c.leader.as_ref().map(|l| l.version);
            dcs.watch(version, loop_wait).await.unwrap();
        }
    };
    let agents: &'static [Etcd3] = Box::leak(agents.into_boxed_slice());
    // warm-up: leases, the caches, endpoint discovery
    tokio::join!(run(&agents[0], true, 3), run(&agents[1], false, 3), run(&agents[2], false, 3));
    let before = grpc_started(&etcd).await;
    let client_before: Vec<_> = agents.iter().map(|a| a.request_counts()).collect();
    let loops = 10;
    tokio::join!(run(&agents[0], true, loops), run(&agents[1], false, loops), run(&agents[2], false, loops));
    let after = grpc_started(&etcd).await;
    let per_method: Vec<(String, f64)> = after
        .iter()
        .map(|(m, n)| (m.clone(), n - before.get(m).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d > 0.0)
        .collect();
    // the two /metrics reads are HTTP, not gRPC; nothing else talks to this etcd
    let total: f64 = per_method.iter().map(|(_, d)| d).sum();
    let per_agent_loop = total / (loops * names.len()) as f64;
    let by_agent: Vec<f64> = agents
        .iter()
        .zip(&client_before)
        .map(|(a, b)| {
            let sent: u64 = a.request_counts().iter().map(|(m, n)| n - b.get(m).copied().unwrap_or(0)).sum();
            sent as f64 / loops as f64
        })
        .collect();
    eprintln!(
        "etcd calls per agent per idle loop: {per_agent_loop:.2} ({per_method:?}); leader, replicas: {by_agent:?}"
    );
    assert!(per_agent_loop <= 1.1, "{per_agent_loop} calls per agent per loop: {per_method:?}");
    // the leader's key rides on the lease its read kept alive: no Txn while it stays ours
    assert!(by_agent.iter().all(|n| *n <= 1.1), "{by_agent:?}");
    let c = agents[0].get_cluster().await.unwrap();
    assert_eq!(c.leader_name(), Some("n1"), "the leader key is still held");
}

/// A leader in its loop (read, refresh) keeps its key past the ttl with keep-alives alone; when the key is deleted
/// behind its back (an operator, `etcdctl del`), the refresh after the next read takes it again by compare-and-put.
#[tokio::test]
async fn the_leader_key_rides_on_the_lease_and_a_deleted_key_is_taken_again() {
    let etcd = EtcdServer::start().await.unwrap();
    let a = cached_client(&etcd, "ride", "a").await;
    a.set_ttl(Duration::from_secs(3));
    a.attempt_to_acquire_leader().await.unwrap();
    let txns = count(&a, "/kv/txn");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let c = loop_read(&a).await.unwrap();
        assert_eq!(c.leader_name(), Some("a"), "kept past the 3 s ttl after {:?}", started.elapsed());
        a.update_leader(&c, None, None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(count(&a, "/kv/txn"), txns, "refreshed by keep-alives only: {:?}", a.request_counts());

    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.encode("/service/ride/leader");
    etcd.v3("kv/deleterange", serde_json::json!({ "key": key })).await.unwrap();
    assert!(contract::wait_cluster(&a, Duration::from_secs(5), |c| c.is_unlocked()).await.is_some());
    let c = a.get_cluster().await.unwrap();
    assert!(c.is_unlocked());
    a.update_leader(&c, None, None).await.unwrap();
    assert_eq!(count(&a, "/kv/txn"), txns + 1, "{:?}", a.request_counts());
    assert_eq!(loop_read(&a).await.unwrap().leader_name(), Some("a"), "taken again");
}
