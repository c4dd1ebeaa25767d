//! The DCS contract and Raft-specific behaviour against in-process clusters of embedded Raft nodes on loopback.

mod contract;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use patroni_dcs::raft::{Raft, RaftSettings};
use patroni_dcs::Dcs;
use patroni_testkit::{free_port, TestDir};

/// A test cluster: node `i` listens on `addrs[i]` and keeps its data in `dir/node<i>`.
struct TestCluster {
    scope: String,
    dir: TestDir,
    addrs: Vec<String>,
    names: Vec<String>,
    password: Option<String>,
    snapshot_logs: u64,
    nodes: Vec<Option<Raft>>,
}

impl TestCluster {
    async fn start(scope: &str, names: &[&str]) -> TestCluster {
        Self::start_with(scope, names, None).await
    }

    async fn start_with(scope: &str, names: &[&str], password: Option<&str>) -> TestCluster {
        Self::start_full(scope, names, password, 1000).await
    }

    async fn start_full(scope: &str, names: &[&str], password: Option<&str>, snapshot_logs: u64) -> TestCluster {
        let dir = TestDir::new().expect("test dir");
        let addrs: Vec<String> = names.iter().map(|_| format!("127.0.0.1:{}", free_port())).collect();
        let mut c = TestCluster {
            scope: scope.into(),
            dir,
            addrs,
            names: names.iter().map(|n| n.to_string()).collect(),
            password: password.map(String::from),
            snapshot_logs,
            nodes: Vec::new(),
        };
        for i in 0..names.len() {
            let node = c.new_node(i).await;
            c.nodes.push(Some(node));
        }
        for i in 0..names.len() {
            c.wait_ready(i).await;
        }
        c
    }

    fn settings(&self, i: usize) -> RaftSettings {
        let partners: Vec<String> = self.addrs.iter().filter(|a| **a != self.addrs[i]).cloned().collect();
        let mut s = RaftSettings::new(&self.scope, &self.names[i], &self.addrs[i])
            .with_partners(partners)
            .with_data_dir(self.dir.join(format!("node{i}")));
        s.ttl = Duration::from_secs(10);
        s.retry_timeout = Duration::from_secs(3);
        s.password = self.password.clone();
        s.snapshot_logs = self.snapshot_logs;
        s
    }

    async fn new_node(&self, i: usize) -> Raft {
        Raft::new(self.settings(i)).await.expect("raft node starts")
    }

    fn node(&self, i: usize) -> &Raft {
        self.nodes[i].as_ref().expect("node is running")
    }

    async fn wait_ready(&self, i: usize) {
        let ready = contract::wait_cluster(self.node(i), Duration::from_secs(30), |_| true).await;
        assert!(ready.is_some(), "node {i} never answered get_cluster");
    }

    fn raft_leader(&self) -> Option<usize> {
        (0..self.nodes.len()).find(|i| self.nodes[*i].as_ref().is_some_and(Raft::is_raft_leader))
    }

    async fn wait_raft_leader(&self) -> usize {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(i) = self.raft_leader() {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no Raft leader elected");
    }

    async fn kill(&mut self, i: usize) {
        if let Some(n) = self.nodes[i].take() {
            n.shutdown().await;
        }
    }

    async fn restart(&mut self, i: usize) {
        self.kill(i).await;
        self.nodes[i] = Some(self.new_node(i).await);
    }
}

#[tokio::test]
async fn contract_suite_on_three_nodes() {
    let c = TestCluster::start("contract", &["a", "b", "c"]).await;
    let (a, b) = (c.node(0), c.node(1));
    contract::leader_race(a, b, 20).await;
    contract::foreign_leader_is_untouchable(a, b).await;
    contract::config_cas(a, b).await;
    contract::initialize_sync_failover(a, b).await;
    contract::every_key_round_trips(a).await;
    contract::watch_wakes_on_leader_change(b, a).await;
    contract::watch_times_out(c.node(2), a).await;
    contract::wakeup_ends_watch(c.node(2)).await;
    a.delete_cluster().await.unwrap();

    // TTL: a short one, taken at the next write.
    a.set_ttl(Duration::from_secs(2));
    contract::refreshing_keeps_keys(a, b).await;
    contract::keys_expire_with_ttl(a, b).await;
}

#[tokio::test]
async fn keys_expire_by_the_raft_leader_clock_on_every_node() {
    let c = TestCluster::start("expire", &["a", "b", "c"]).await;
    // The key owner is not the Raft leader, so the expiry is the leader's decision, replicated.
    let leader = c.wait_raft_leader().await;
    let owner = (leader + 1) % 3;
    let observer = (leader + 2) % 3;
    c.node(owner).set_ttl(Duration::from_secs(2));
    contract::keys_expire_with_ttl(c.node(owner), c.node(observer)).await;
    // Every node applied the same deletion.
    for i in 0..3 {
        let keys = c.node(i).local_keys();
        assert!(!keys.iter().any(|(k, _)| k.ends_with("/leader")), "node {i}: {keys:?}");
    }
}

#[tokio::test]
async fn without_a_quorum_every_call_is_unreachable_within_retry_timeout_then_recovers() {
    let mut c = TestCluster::start("quorum", &["a", "b", "c"]).await;
    let a = c.node(0);
    a.touch_member(&contract::member_data("a")).await.unwrap();
    a.attempt_to_acquire_leader().await.unwrap();
    let cluster = a.get_cluster().await.unwrap();
    a.set_retry_timeout(Duration::from_secs(1));
    c.kill(1).await;
    c.kill(2).await;
    contract::every_call_unreachable(c.node(0), &cluster).await;
    c.restart(1).await;
    let back = contract::wait_cluster(c.node(0), Duration::from_secs(30), |_| true).await;
    assert!(back.is_some(), "calls did not recover with a quorum back");
    c.node(0).touch_member(&contract::member_data("a")).await.unwrap();
}

#[tokio::test]
async fn losing_the_raft_leader_elects_another_and_a_restarted_node_catches_up() {
    let mut c = TestCluster::start("failover", &["a", "b", "c"]).await;
    let old = c.wait_raft_leader().await;
    let survivor = (old + 1) % 3;
    c.node(survivor).set_config_value(r#"{"ttl":30}"#, None).await.unwrap();
    c.kill(old).await;
    let took = contract::wait_cluster(c.node(survivor), Duration::from_secs(30), |_| true).await;
    assert!(took.is_some(), "no new Raft leader answered");
    let new = c.wait_raft_leader().await;
    assert_ne!(new, old);
    // Writes keep working on the survivors; the killed node misses them.
    for n in 0..20 {
        c.node(survivor).set_history_value(&format!("[[{n},0,\"x\"]]")).await.unwrap();
    }
    c.node(survivor).initialize(true, "7300000000000000042").await.unwrap();
    c.restart(old).await;
    let start = Instant::now();
    loop {
        let keys = c.node(old).local_keys();
        if keys.iter().any(|(k, v)| k.ends_with("/initialize") && v == "7300000000000000042") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "restarted node did not catch up: {keys:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(c.node(old).get_cluster().await.unwrap().initialize.as_deref(), Some("7300000000000000042"));
}

#[tokio::test]
async fn a_node_far_behind_catches_up_from_a_snapshot_and_restarts_from_its_own() {
    let mut c = TestCluster::start_full("snapshot", &["a", "b", "c"], None, 20).await;
    let leader = c.wait_raft_leader().await;
    let lagging = (leader + 1) % 3;
    let writer = (leader + 2) % 3;
    c.kill(lagging).await;
    for n in 0..120 {
        c.node(writer).set_history_value(&format!("[[{n},0,\"x\"]]")).await.unwrap();
    }
    c.node(writer).initialize(true, "7300000000000000099").await.unwrap();
    // The others compacted their logs: the restarted node can only catch up from a snapshot.
    let snap = c.dir.join(format!("node{writer}/snapshot.json"));
    assert!(snap.exists(), "no snapshot written");
    c.restart(lagging).await;
    let start = Instant::now();
    while !c.node(lagging).local_keys().iter().any(|(k, v)| k.ends_with("/initialize") && v == "7300000000000000099") {
        assert!(start.elapsed() < Duration::from_secs(30), "lagging node did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every node restarts from its own snapshot + log with the same data.
    let before = c.node(writer).local_keys();
    c.restart(writer).await;
    let start = Instant::now();
    while c.node(writer).local_keys() != before {
        assert!(start.elapsed() < Duration::from_secs(10), "restarted node lost data");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.wait_ready(writer).await;
    assert_eq!(c.node(writer).get_cluster().await.unwrap().initialize.as_deref(), Some("7300000000000000099"));
}

#[tokio::test]
async fn two_data_nodes_and_a_witness_survive_the_loss_of_either_data_node() {
    // The witness ("" name) is what patroni_raft_controller runs: it votes and holds no keys of its own.
    let mut c = TestCluster::start("witness", &["db1", "db2", ""]).await;
    for lost in [0usize, 1] {
        let other = 1 - lost;
        c.kill(lost).await;
        let ok = contract::wait_cluster(c.node(other), Duration::from_secs(30), |_| true).await;
        assert!(ok.is_some(), "db{} lost the DCS with db{} down", other + 1, lost + 1);
        let dcs = c.node(other);
        dcs.touch_member(&contract::member_data(dcs.name())).await.unwrap();
        let _ = dcs.attempt_to_acquire_leader().await;
        let cl = dcs.get_cluster().await.unwrap();
        dcs.update_leader(&cl, None, None).await.unwrap();
        assert_eq!(dcs.get_cluster().await.unwrap().leader_name(), Some(dcs.name()));
        let leader = dcs.get_cluster().await.unwrap().leader.unwrap();
        dcs.delete_leader(&leader, None).await.unwrap();
        c.restart(lost).await;
        c.wait_ready(lost).await;
    }
}

#[tokio::test]
async fn a_new_node_joins_a_running_cluster_as_a_voter() {
    let c = TestCluster::start("join", &["a", "b", "c"]).await;
    let addr = format!("127.0.0.1:{}", free_port());
    let s =
        RaftSettings::new("join", "d", &addr).with_partners([c.addrs[1].clone()]).with_data_dir(c.dir.join("node-d"));
    let d = Raft::new(s).await.unwrap();
    let start = Instant::now();
    while !d.voters().contains(&addr) {
        assert!(start.elapsed() < Duration::from_secs(30), "d never became a voter: {:?}", d.voters());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(d.voters().len(), 4);
    d.touch_member(&contract::member_data("d")).await.unwrap();
    assert!(c.node(0).get_cluster().await.unwrap().has_member("d"));
    // ...and leaves for good when removed.
    d.shutdown().await;
    c.node(2).remove_member(&addr).await.unwrap();
    let start = Instant::now();
    while c.node(0).voters().contains(&addr) {
        assert!(start.elapsed() < Duration::from_secs(30), "d is still a voter: {:?}", c.node(0).voters());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.node(1).set_config_value("{}", None).await.unwrap();
}

#[tokio::test]
async fn peers_authenticate_with_the_password() {
    let c = TestCluster::start_with("auth", &["a", "b", "c"], Some("s3cret")).await;
    c.node(0).touch_member(&contract::member_data("a")).await.unwrap();
    assert!(c.node(2).get_cluster().await.unwrap().has_member("a"));
    // A node with the wrong password is refused: it never joins.
    let addr = format!("127.0.0.1:{}", free_port());
    let mut s = RaftSettings::new("auth", "intruder", &addr)
        .with_partners([c.addrs[0].clone()])
        .with_data_dir(c.dir.join("intruder"));
    s.password = Some("wrong".into());
    s.retry_timeout = Duration::from_secs(1);
    let intruder = Raft::new(s).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!c.node(0).voters().contains(&addr));
    assert!(intruder.get_cluster().await.unwrap_err().is_unreachable());
    // Nor does a client without the password get anything.
    let mut s = RaftSettings::new("auth", "ctl", "").with_partners(c.addrs.clone());
    s.retry_timeout = Duration::from_secs(1);
    let client = Raft::new(s).await.unwrap();
    assert!(client.get_cluster().await.unwrap_err().is_unreachable());
}

/// A request as it crossed the wire, and the status the node answered it with.
#[derive(Clone, Debug)]
struct Recorded {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    status: u16,
}

/// A loopback HTTP proxy in front of one Raft node that keeps a copy of every request it forwards: what an
/// attacker on the network could record.
struct Recorder {
    addr: String,
    seen: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn start(target: String) -> Recorder {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let http = reqwest::Client::new();
        let log = seen.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: bytes::Bytes| {
                let (http, log, target) = (http.clone(), log.clone(), target.clone());
                async move {
                    let mut rec = Recorded {
                        path: uri.path().to_string(),
                        headers: headers
                            .iter()
                            .filter(|(k, _)| k.as_str().starts_with("x-patroni") || *k == "content-type")
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                            .collect(),
                        body: body.to_vec(),
                        status: 0,
                    };
                    let (status, answer) = match send(&http, &target, &rec).await {
                        Ok(r) => r,
                        Err(e) => (502, e.to_string().into_bytes()),
                    };
                    rec.status = status;
                    log.lock().unwrap().push(rec);
                    (axum::http::StatusCode::from_u16(status).unwrap(), answer)
                }
            },
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Recorder { addr, seen, task }
    }

    /// The first request to `path` the node accepted, waiting for one to pass.
    async fn accepted(&self, path: &str) -> Recorded {
        let start = Instant::now();
        loop {
            let found = self.seen.lock().unwrap().iter().find(|r| r.path == path && r.status == 200).cloned();
            if let Some(r) = found {
                return r;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "no accepted {path} went through the proxy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends a recorded request to `addr` byte for byte: the status and body of the answer.
async fn send(http: &reqwest::Client, addr: &str, rec: &Recorded) -> reqwest::Result<(u16, Vec<u8>)> {
    let mut req = http.post(format!("http://{addr}{}", rec.path)).timeout(Duration::from_secs(5));
    for (k, v) in &rec.headers {
        req = req.header(k, v);
    }
    let resp = req.body(rec.body.clone()).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.bytes().await?.to_vec()))
}

#[tokio::test]
async fn recorded_peer_requests_are_refused_when_replayed() {
    // Node c is reached through a recording proxy (its self_addr), so everything its peers send it is recorded.
    let dir = TestDir::new().unwrap();
    let real: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let proxy_c = Recorder::start(real[2].clone()).await;
    let addrs = [real[0].clone(), real[1].clone(), proxy_c.addr.clone()];
    let settings = |i: usize| {
        let partners: Vec<String> = addrs.iter().filter(|a| **a != addrs[i]).cloned().collect();
        let mut s = RaftSettings::new("replay", ["a", "b", "c"][i], &addrs[i])
            .with_partners(partners)
            .with_data_dir(dir.join(format!("node{i}")));
        s.bind_addr = Some(real[i].clone());
        s.password = Some("pw".into());
        s.retry_timeout = Duration::from_secs(3);
        s
    };
    // a and b found the cluster and elect one of them, so that c receives AppendEntries.
    let a = Raft::new(settings(0)).await.unwrap();
    let b = Raft::new(settings(1)).await.unwrap();
    for n in [&a, &b] {
        assert!(contract::wait_cluster(n, Duration::from_secs(30), |_| true).await.is_some());
    }
    let node_c = Raft::new(settings(2)).await.unwrap();
    assert!(contract::wait_cluster(&node_c, Duration::from_secs(30), |_| true).await.is_some());
    let http = reqwest::Client::new();

    // An AppendEntries the leader sent c, accepted once, is refused when delivered again.
    let append = proxy_c.accepted("/raft/append").await;
    let (status, body) = send(&http, &real[2], &append).await.unwrap();
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("replayed"), "{}", String::from_utf8_lossy(&body));

    // A client write recorded on its way to the Raft leader cannot be applied twice.
    let leader = if a.is_raft_leader() { &real[0] } else { &real[1] };
    let proxy_leader = Recorder::start(leader.clone()).await;
    let mut s = RaftSettings::new("replay", "ctl", "").with_partners([proxy_leader.addr.clone()]);
    s.password = Some("pw".into());
    s.retry_timeout = Duration::from_secs(3);
    let client = Raft::new(s).await.unwrap();
    client.set_config_value(r#"{"ttl":30}"#, None).await.unwrap();
    let write = proxy_leader.accepted("/dcs/write").await;
    a.set_config_value(r#"{"ttl":40}"#, None).await.unwrap();
    let (status, body) = send(&http, leader, &write).await.unwrap();
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert_eq!(a.get_cluster().await.unwrap().config.unwrap().data["ttl"], 40, "the replayed write was applied");

    // Moving the counter past the window breaks the seal: refused as unauthenticated.
    let mut tampered = write.clone();
    tampered.body[23] ^= 0x40;
    let (status, _) = send(&http, leader, &tampered).await.unwrap();
    assert_eq!(status, 401);
    assert_eq!(a.get_cluster().await.unwrap().config.unwrap().data["ttl"], 40);

    // After c restarts, what was recorded names a session c never issued; its peers open new ones.
    node_c.shutdown().await;
    drop(node_c);
    let node_c = Raft::new(settings(2)).await.unwrap();
    let (status, body) = send(&http, &real[2], &append).await.unwrap();
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("unknown Raft session"));
    b.set_config_value(r#"{"ttl":50}"#, None).await.unwrap();
    let caught_up = contract::wait_cluster(&node_c, Duration::from_secs(30), |c| {
        c.config.as_ref().is_some_and(|c| c.data["ttl"] == 50)
    })
    .await;
    assert!(caught_up.is_some(), "the restarted node did not catch up");
}

#[tokio::test]
async fn a_client_without_self_addr_works_through_the_members() {
    // Patroni without raft.self_addr (and patronictl) does not vote; it talks to partner_addrs.
    let c = TestCluster::start_with("client", &["a", "b", "c"], Some("pw")).await;
    let mut s = RaftSettings::new("client", "ctl", "").with_partners(c.addrs.clone());
    s.password = Some("pw".into());
    s.retry_timeout = Duration::from_secs(3);
    let client = Raft::new(s).await.unwrap();
    assert_eq!(client.node_id(), None);
    contract::leader_race(&client, c.node(0), 5).await;
    contract::config_cas(&client, c.node(1)).await;
    contract::watch_wakes_on_leader_change(&client, c.node(2)).await;
    // The Raft leader's loss does not matter to it.
    let mut c = c;
    let leader = c.wait_raft_leader().await;
    c.kill(leader).await;
    assert!(contract::wait_cluster(&client, Duration::from_secs(30), |_| true).await.is_some());
    client.touch_member(&contract::member_data("ctl")).await.unwrap();
}

#[tokio::test]
async fn bad_settings_are_reported() {
    let dir = TestDir::new().unwrap();
    let s = RaftSettings::new("s", "n", "no-port").with_data_dir(dir.join("x"));
    assert!(matches!(Raft::new(s).await, Err(patroni_dcs::DcsError::Config(_))));
    // Neither a member nor anyone to ask.
    let s = RaftSettings::new("s", "n", "").with_data_dir(dir.join("x"));
    assert!(matches!(Raft::new(s).await, Err(patroni_dcs::DcsError::Config(_))));
    // A port already taken is reported at once.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let s = RaftSettings::new("s", "n", addr).with_data_dir(dir.join("y"));
    assert!(matches!(Raft::new(s).await, Err(patroni_dcs::DcsError::Config(_))));
    // One data directory, one node.
    let first = RaftSettings::new("s", "n", format!("127.0.0.1:{}", free_port())).with_data_dir(dir.join("z"));
    let _running = Raft::new(first).await.unwrap();
    let second = RaftSettings::new("s", "m", format!("127.0.0.1:{}", free_port())).with_data_dir(dir.join("z"));
    match Raft::new(second).await {
        Err(patroni_dcs::DcsError::Config(m)) => assert!(m.contains("in use"), "{m}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("two nodes on one data directory"),
    }
}
