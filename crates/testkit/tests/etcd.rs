//! Real etcd servers: start, the v3 JSON gateway, stop/start again, TLS, auth, isolation, cleanup.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use patroni_testkit::{pid_alive, EtcdServer};
use serde_json::{json, Value};

#[tokio::test]
async fn put_and_get_through_the_v3_json_gateway() {
    let etcd = EtcdServer::start().await.unwrap();
    assert!(etcd.client_url().starts_with("http://127.0.0.1:"));
    assert_eq!(etcd.endpoint(), format!("127.0.0.1:{}", etcd.client_port()));

    // Raw gateway calls, as a DCS client makes them.
    let http = etcd.http_client();
    let url = etcd.client_url();
    let put = http
        .post(format!("{url}/v3/kv/put"))
        .json(&json!({"key": B64.encode("/service/t/leader"), "value": B64.encode("node1")}))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let range: Value = http
        .post(format!("{url}/v3/kv/range"))
        .json(&json!({"key": B64.encode("/service/t/leader")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let value = range["kvs"][0]["value"].as_str().unwrap();
    assert_eq!(B64.decode(value).unwrap(), b"node1");

    // The helpers agree.
    assert_eq!(etcd.get("/service/t/leader").await.unwrap().as_deref(), Some("node1"));
    etcd.put("/service/t/members/a", "1").await.unwrap();
    etcd.put("/service/t/members/b", "2").await.unwrap();
    etcd.put("/service/u/members/c", "3").await.unwrap();
    let members = etcd.get_prefix("/service/t/members/").await.unwrap();
    assert_eq!(
        members,
        vec![
            ("/service/t/members/a".to_string(), "1".to_string()),
            ("/service/t/members/b".to_string(), "2".to_string())
        ]
    );
    assert!(etcd.delete("/service/t/leader").await.unwrap());
    assert!(!etcd.delete("/service/t/leader").await.unwrap());
    assert_eq!(etcd.get("/service/t/leader").await.unwrap(), None);
}

#[tokio::test]
async fn stop_and_start_again_keeps_data_and_ports() {
    let mut etcd = EtcdServer::start().await.unwrap();
    etcd.put("/k", "kept").await.unwrap();
    let url = etcd.client_url();
    let first_pid = etcd.pid().unwrap();

    etcd.stop().await.unwrap();
    assert!(!pid_alive(first_pid));
    assert!(etcd.get("/k").await.is_err(), "a stopped etcd must not answer");

    etcd.start_again().await.unwrap();
    assert_eq!(etcd.client_url(), url);
    assert_eq!(etcd.get("/k").await.unwrap().as_deref(), Some("kept"));

    // A crash (SIGKILL) is survivable too.
    etcd.kill();
    etcd.start_again().await.unwrap();
    assert_eq!(etcd.get("/k").await.unwrap().as_deref(), Some("kept"));
}

#[tokio::test]
async fn parallel_servers_are_isolated() {
    let (a, b) = tokio::join!(EtcdServer::start(), EtcdServer::start());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.client_port(), b.client_port());
    assert_ne!(a.peer_port(), b.peer_port());
    assert_ne!(a.data_dir(), b.data_dir());
    a.put("/only-in-a", "x").await.unwrap();
    assert_eq!(b.get("/only-in-a").await.unwrap(), None);
}

#[tokio::test]
async fn drop_kills_the_process_and_removes_the_dir() {
    let etcd = EtcdServer::start().await.unwrap();
    let pid = etcd.pid().unwrap();
    let dir = etcd.data_dir();
    assert!(pid_alive(pid) && dir.exists());
    drop(etcd);
    assert!(!pid_alive(pid), "etcd pid {pid} survived drop");
    assert!(!dir.exists());
}

#[tokio::test]
async fn v2_api_when_enabled() {
    let etcd = EtcdServer::builder().enable_v2().start().await.unwrap();
    let http = etcd.http_client();
    let url = format!("{}/v2/keys/service/t/leader", etcd.client_url());
    let put = http.put(&url).form(&[("value", "node1")]).send().await.unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let got: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["node"]["value"], "node1");
}

#[tokio::test]
async fn tls_with_client_certificates() {
    let etcd = EtcdServer::builder().client_cert_auth().start().await.unwrap();
    assert!(etcd.client_url().starts_with("https://127.0.0.1:"));
    etcd.put("/secure", "yes").await.unwrap();
    assert_eq!(etcd.get("/secure").await.unwrap().as_deref(), Some("yes"));

    let certs = etcd.certs().unwrap();
    for path in [&certs.ca_cert, &certs.server_cert, &certs.server_key, &certs.client_cert, &certs.client_key] {
        assert!(path.exists(), "{}", path.display());
    }

    // Trusting the CA but presenting no certificate is refused.
    patroni_testkit::install_crypto_provider();
    let anonymous = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(certs.ca_pem().as_bytes()).unwrap()])
        .build()
        .unwrap();
    let refused = anonymous
        .post(format!("{}/v3/kv/range", etcd.client_url()))
        .json(&json!({"key": B64.encode("/secure")}))
        .send()
        .await;
    assert!(refused.is_err() || !refused.unwrap().status().is_success());
}

#[tokio::test]
async fn auth_enabled_requires_a_token() {
    let etcd = EtcdServer::builder().auth("rootpw").start().await.unwrap();
    etcd.put("/service/a/x", "1").await.unwrap();

    // Without a token the gateway refuses.
    let anonymous = etcd
        .http_client()
        .post(format!("{}/v3/kv/range", etcd.client_url()))
        .json(&json!({"key": B64.encode("/service/a/x")}))
        .send()
        .await
        .unwrap();
    assert!(!anonymous.status().is_success());

    // A user limited to a prefix reads it, not beyond.
    etcd.add_user("patroni", "pw", "/service/a/").await.unwrap();
    let token = etcd.authenticate("patroni", "pw").await.unwrap();
    let range = |key: &'static str| {
        etcd.http_client()
            .post(format!("{}/v3/kv/range", etcd.client_url()))
            .header("Authorization", token.clone())
            .json(&json!({"key": B64.encode(key)}))
            .send()
    };
    assert!(range("/service/a/x").await.unwrap().status().is_success());
    assert!(!range("/other").await.unwrap().status().is_success());
    assert!(etcd.authenticate("patroni", "wrong").await.is_err());
}

#[tokio::test]
async fn startup_failure_quotes_the_log() {
    let err = EtcdServer::builder().arg("--no-such-flag").start().await.unwrap_err().to_string();
    assert!(err.contains("exited during startup"), "{err}");
    assert!(err.contains("no-such-flag"), "{err}");
}

#[tokio::test]
async fn pause_makes_requests_time_out_and_resume_recovers() {
    let mut etcd = EtcdServer::start().await.unwrap();
    etcd.put("/p", "1").await.unwrap();
    etcd.pause().unwrap();
    let url = format!("{}/v3/kv/range", etcd.client_url());
    let body = json!({"key": B64.encode("/p")});
    let paused = etcd.http_client().post(&url).timeout(std::time::Duration::from_millis(300)).json(&body).send().await;
    assert!(paused.unwrap_err().is_timeout());
    etcd.resume().unwrap();
    assert_eq!(etcd.get("/p").await.unwrap().as_deref(), Some("1"));
}

#[tokio::test]
async fn a_three_member_cluster_survives_one_member_down() {
    let mut cluster = patroni_testkit::EtcdCluster::start(3).await.unwrap();
    let endpoints = cluster.endpoints();
    assert_eq!(endpoints.len(), 3);
    assert_eq!(endpoints.iter().collect::<std::collections::BTreeSet<_>>().len(), 3);

    let members: Value = cluster.members()[0].v3("cluster/member/list", json!({})).await.unwrap();
    assert_eq!(members["members"].as_array().unwrap().len(), 3);

    cluster.put("/c", "before").await.unwrap();
    cluster.member(0).unwrap().stop().await.unwrap();
    // The remaining quorum still serves writes; the helper skips the stopped member.
    cluster.put("/c", "during").await.unwrap();
    assert_eq!(cluster.members()[2].get("/c").await.unwrap().as_deref(), Some("during"));

    cluster.member(0).unwrap().start_again().await.unwrap();
    assert_eq!(cluster.members()[0].get("/c").await.unwrap().as_deref(), Some("during"));
}
