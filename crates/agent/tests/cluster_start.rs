//! A one-member cluster's start-up duties, as Patroni does them: the dynamic configuration cached in
//! `<data_dir>/patroni.dynamic.json` (written as Python writes it, rewritten when `PATCH /config` changes the
//! DCS `config` key), and a second agent started under a name that a running member already uses refusing to
//! start (CRITICAL line, exit status 1) while the first one keeps running.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, Options, POLL, WAIT};
use reqwest::Method;
use serde_json::{json, Value};

const CONFIG_KEY: &str = "/service/demo/config";

/// The cache file's text, once it exists.
fn cache_text(c: &Cluster) -> Option<String> {
    std::fs::read_to_string(c.data_dir(0).join("patroni.dynamic.json")).ok()
}

/// Waits until the cache holds exactly the DCS `config` value, laid out as Python's `json.dumps`; returns it.
async fn wait_cache_matches_dcs(c: &Cluster, what: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let dcs = c.etcd.get(CONFIG_KEY).await.ok().flatten().and_then(|s| serde_json::from_str::<Value>(&s).ok());
        if let (Some(dcs), Some(text)) = (dcs, cache_text(c)) {
            if text == patroni_pycompat::json_dumps(&dcs) {
                return dcs;
            }
        }
        if Instant::now() >= deadline {
            c.dump_dcs().await;
            c.dump(what);
            panic!("{what}: patroni.dynamic.json is {:?}", cache_text(c));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_config_cache_and_duplicate_name() {
    let o = Options { members: 1, ..Options::default() };
    let c = Cluster::start(o.clone()).await;

    let first = wait_cache_matches_dcs(&c, "cache after bootstrap").await;
    assert_eq!(first["ttl"], json!(common::TTL), "{first}");

    let (code, body) = c
        .node(0)
        .request(Method::PATCH, "/config", Some(&json!({"maximum_lag_on_failover": 1234567})))
        .await
        .expect("PATCH /config answers");
    assert_eq!(code, 200, "{body}");
    let deadline = Instant::now() + WAIT;
    while !cache_text(&c).is_some_and(|t| t.contains("\"maximum_lag_on_failover\": 1234567")) {
        assert!(Instant::now() < deadline, "cache not rewritten after PATCH /config: {:?}", cache_text(&c));
        tokio::time::sleep(POLL).await;
    }
    wait_cache_matches_dcs(&c, "cache after PATCH /config").await;

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
