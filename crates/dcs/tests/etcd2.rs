//! The DCS contract and etcd-v2-specific behaviour against a real etcd from the test kit, started with the v2 API
//! (`--enable-v2=true`).

mod contract;

use std::time::{Duration, Instant};

use patroni_dcs::etcd::{Etcd, EtcdSettings};
use patroni_dcs::Dcs;
use patroni_testkit::{free_port, EtcdServer};
use serde_json::Value;

async fn etcd() -> EtcdServer {
    EtcdServer::builder().enable_v2().start().await.expect("etcd with the v2 API")
}

fn settings(etcd: &EtcdServer, scope: &str, name: &str) -> EtcdSettings {
    let mut s = EtcdSettings::new(scope, name).with_hosts([etcd.endpoint()]);
    s.ttl = Duration::from_secs(10);
    s.retry_timeout = Duration::from_secs(2);
    if etcd.certs().is_some() {
        s.protocol = Some("https".into());
    }
    s
}

async fn client(etcd: &EtcdServer, scope: &str, name: &str) -> Etcd {
    Etcd::new(settings(etcd, scope, name)).await.expect("client")
}

async fn with_ttl(etcd: &EtcdServer, scope: &str, name: &str, ttl: u64) -> Etcd {
    let mut s = settings(etcd, scope, name);
    s.ttl = Duration::from_secs(ttl);
    Etcd::new(s).await.expect("client")
}

/// One key as etcd's v2 API shows it (value and TTL), read past our client.
async fn raw(etcd: &EtcdServer, key: &str) -> Option<Value> {
    let url = format!("{}/v2/keys{key}", etcd.client_url());
    let v: Value = etcd.http_client().get(url).send().await.ok()?.json().await.ok()?;
    v.get("node").cloned()
}

#[tokio::test]
async fn leader_race_ttl_and_foreign_keys() {
    let etcd = etcd().await;
    let race = |name: &'static str| {
        let mut s = settings(&etcd, "race", name);
        s.retry_timeout = Duration::from_secs(10);
        Etcd::new(s)
    };
    let a = race("a").await.unwrap();
    let b = race("b").await.unwrap();
    contract::leader_race(&a, &b, 30).await;
    contract::foreign_leader_is_untouchable(&a, &b).await;

    let owner = with_ttl(&etcd, "expire", "owner", 2).await;
    let observer = client(&etcd, "expire", "observer").await;
    contract::keys_expire_with_ttl(&owner, &observer).await;
    let owner = with_ttl(&etcd, "refresh", "owner", 2).await;
    let observer = client(&etcd, "refresh", "observer").await;
    contract::refreshing_keeps_keys(&owner, &observer).await;
}

#[tokio::test]
async fn compare_and_set_and_every_key_as_patroni_stores_it() {
    let etcd = etcd().await;
    let a = client(&etcd, "cas", "a").await;
    let b = client(&etcd, "cas", "b").await;
    contract::config_cas(&a, &b).await;
    contract::initialize_sync_failover(&a, &b).await;

    let n = client(&etcd, "layout", "node1").await;
    n.touch_member(&contract::member_data("node1")).await.unwrap();
    n.attempt_to_acquire_leader().await.unwrap();
    n.write_sync_state(Some("node1"), &["node3".into(), "node2".into()], 1, None).await.unwrap();
    let leader = raw(&etcd, "/service/layout/leader").await.unwrap();
    assert_eq!(leader["value"], "node1");
    assert_eq!(leader["ttl"], 10, "{leader}");
    let sync = raw(&etcd, "/service/layout/sync").await.unwrap();
    assert_eq!(sync["value"], r#"{"leader":"node1","quorum":1,"sync_standby":"node2,node3"}"#);
    assert!(sync.get("ttl").is_none(), "{sync}");
    let member = raw(&etcd, "/service/layout/members/node1").await.unwrap();
    assert!(member["value"].as_str().unwrap().starts_with(r#"{"conn_url":"postgres://127.0.0.1:5432/postgres"#));
    assert_eq!(member["ttl"], 10);
    n.delete_cluster().await.unwrap();
    assert!(raw(&etcd, "/service/layout").await.is_none());
    contract::every_key_round_trips(&n).await;
}

#[tokio::test]
async fn watch_wakes_on_a_leader_change_times_out_otherwise_and_wakes_up() {
    let etcd = etcd().await;
    let watcher = client(&etcd, "watch", "watcher").await;
    let changer = client(&etcd, "watch", "changer").await;
    contract::watch_wakes_on_leader_change(&watcher, &changer).await;
    let watcher = client(&etcd, "quiet", "watcher").await;
    let other = client(&etcd, "quiet", "other").await;
    contract::watch_times_out(&watcher, &other).await;
    contract::wakeup_ends_watch(&watcher).await;

    // An expiring leader key wakes the watcher too (Patroni's replicas race at once).
    let owner = with_ttl(&etcd, "expiry", "owner", 2).await;
    let watcher = client(&etcd, "expiry", "watcher").await;
    owner.attempt_to_acquire_leader().await.unwrap();
    let c = watcher.get_cluster().await.unwrap();
    let started = Instant::now();
    assert_eq!(watcher.watch(c.leader.map(|l| l.version), Duration::from_secs(20)).await, Ok(true));
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(watcher.get_cluster().await.unwrap().is_unlocked());
}

#[tokio::test]
async fn stopped_or_hung_etcd_makes_every_call_unreachable_then_recovers() {
    let mut etcd = etcd().await;
    let mut s = settings(&etcd, "down", "node1");
    s.retry_timeout = Duration::from_secs(1);
    s.ttl = Duration::from_secs(30);
    let dcs = Etcd::new(s).await.unwrap();
    dcs.touch_member(&contract::member_data("node1")).await.unwrap();
    dcs.attempt_to_acquire_leader().await.unwrap();
    let cluster = dcs.get_cluster().await.unwrap();

    etcd.stop().await.unwrap();
    contract::every_call_unreachable(&dcs, &cluster).await;
    etcd.start_again().await.unwrap();
    assert!(contract::wait_cluster(&dcs, Duration::from_secs(15), |_| true).await.is_some(), "no recovery");
    dcs.attempt_to_acquire_leader().await.ok();
    let c = dcs.get_cluster().await.unwrap();
    dcs.update_leader(&c, None, None).await.unwrap();
    assert_eq!(dcs.get_cluster().await.unwrap().leader_name(), Some("node1"));

    // SIGSTOP: connections are accepted by the kernel but never answered.
    let cluster = dcs.get_cluster().await.unwrap();
    etcd.pause().unwrap();
    let result = tokio::time::timeout(Duration::from_secs(40), contract::every_call_unreachable(&dcs, &cluster)).await;
    etcd.resume().unwrap();
    assert!(result.is_ok(), "calls blocked");
    assert!(contract::wait_cluster(&dcs, Duration::from_secs(15), |_| true).await.is_some());
}

#[tokio::test]
async fn endpoints_a_dead_one_is_skipped_and_url_proxy_work() {
    let etcd = etcd().await;
    let dead = format!("127.0.0.1:{}", free_port());
    for hosts in [vec![dead.clone(), etcd.endpoint()], vec![format!("{dead},{}", etcd.endpoint())]] {
        let mut s = settings(&etcd, "twohosts", "node1");
        s.hosts = hosts.clone();
        let dcs = Etcd::new(s).await.unwrap();
        let start = Instant::now();
        dcs.touch_member(&contract::member_data("node1")).await.unwrap();
        dcs.attempt_to_acquire_leader().await.unwrap();
        let c = dcs.get_cluster().await.unwrap();
        assert_eq!(c.leader_name(), Some("node1"), "{hosts:?}");
        dcs.delete_leader(c.leader.as_ref().unwrap(), None).await.unwrap();
        assert!(start.elapsed() < dcs.retry_timeout(), "{hosts:?}");
    }
    for (url, proxy) in [(Some(etcd.client_url()), None), (None, Some(etcd.client_url()))] {
        let mut s = EtcdSettings::new("urls", "node1");
        s.url = url;
        s.proxy = proxy;
        let dcs = Etcd::new(s).await.unwrap();
        dcs.touch_member(&contract::member_data("node1")).await.unwrap();
        assert!(dcs.get_cluster().await.unwrap().has_member("node1"));
    }
    // patronictl mode reads with quorum
    let mut s = settings(&etcd, "urls", "");
    s.ctl = true;
    let ctl = Etcd::new(s).await.unwrap();
    assert!(ctl.get_cluster().await.unwrap().has_member("node1"));
}

#[tokio::test]
async fn etcd_v2_over_tls_with_client_certificates() {
    let etcd = EtcdServer::builder().enable_v2().tls().start().await.unwrap();
    let certs = etcd.certs().unwrap();
    let mut s = settings(&etcd, "tls", "a");
    s.cacert = Some(certs.ca_cert.clone());
    s.cert = Some(certs.client_cert.clone());
    s.key = Some(certs.client_key.clone());
    let a = Etcd::new(s.clone()).await.unwrap();
    s.name = "b".into();
    let b = Etcd::new(s).await.unwrap();
    contract::leader_race(&a, &b, 3).await;
    contract::watch_wakes_on_leader_change(&a, &b).await;
}
