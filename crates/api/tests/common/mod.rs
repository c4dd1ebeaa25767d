//! Test harness: a real server on a free loopback port, fed a fake snapshot, with a
//! [`RecordingControl`] standing in for the agent.
#![allow(dead_code)]

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset};
use patroni_api::cluster::{ClusterDocument, ClusterMember};
use patroni_api::control::*;
use patroni_api::*;
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};

pub fn ts(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

pub fn info() -> PatroniInfo {
    PatroniInfo { version: "3.1.0".into(), scope: "demo".into(), name: "patroni1".into() }
}

fn member(name: &str, port: u16) -> ClusterMember {
    ClusterMember {
        name: name.into(),
        api_url: Some(format!("http://127.0.0.1:{port}/patroni")),
        host: Some("127.0.0.1".into()),
        port: Some(5432),
        state: Some("running".into()),
        replication_state: (name != "patroni1").then(|| "streaming".to_string()),
        timeline: Some(1),
        lsn: (name != "patroni1").then_some(67_395_000),
        ..Default::default()
    }
}

pub fn cluster() -> ClusterDocument {
    ClusterDocument {
        leader: Some("patroni1".into()),
        members: vec![member("patroni1", 8008), member("patroni2", 8009), member("patroni3", 8010)],
        last_lsn: 67_395_656,
        history: vec![json!([1, 25623960, "no recovery target specified", "2019-09-23T16:57:57+02:00"])],
        config: Some(json!({"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "maximum_lag_on_failover": 1048576,
            "postgresql": {"use_slots": true, "use_pg_rewind": true, "parameters": {"max_connections": "100"}}})),
        config_version: Some("7".into()),
        ..Default::default()
    }
}

fn replication_rows() -> Vec<ReplicationRow> {
    ["patroni2", "patroni3"]
        .iter()
        .zip(["10.89.0.6", "10.89.0.2"])
        .map(|(n, a)| ReplicationRow {
            usename: Some("replicator".into()),
            application_name: Some((*n).into()),
            client_addr: Some(a.into()),
            state: Some("streaming".into()),
            sync_state: Some("async".into()),
            sync_priority: Some(0),
        })
        .collect()
}

/// The documentation's "healthy cluster" primary.
pub fn primary() -> NodeStatus {
    let mut s = NodeStatus::starting(info(), SystemTime::now() + Duration::from_secs(10));
    s.state = PostgresState::Running;
    s.role = PostgresRole::Primary;
    s.is_leader = true;
    s.postgres = Some(PostgresStatus {
        postmaster_start_time: Some(ts("2023-08-18T11:03:37.966359+00:00")),
        role: PostgresRole::Primary,
        server_version: 150004,
        xlog: Xlog::Primary { location: 67_395_656 },
        timeline: Some(1),
        replication_state: None,
        latest_end_lsn: None,
        replication: replication_rows(),
    });
    s.dcs_last_seen = 1_692_356_718;
    s.tags = json!({"clonefrom": true}).as_object().cloned().unwrap();
    s.database_system_identifier = Some("7268616322854375442".into());
    s.cluster = Some(Arc::new(cluster()));
    s
}

/// A streaming replica of [`primary`], `lag` bytes behind.
pub fn replica(lag: u64) -> NodeStatus {
    let mut s = primary();
    s.patroni.name = "patroni2".into();
    s.role = PostgresRole::Replica;
    s.is_leader = false;
    let pos = 67_395_656 - lag;
    s.postgres = Some(PostgresStatus {
        postmaster_start_time: Some(ts("2023-08-18T11:09:08.615242+00:00")),
        role: PostgresRole::Replica,
        server_version: 150004,
        xlog: Xlog::Replica { received_location: pos, replayed_location: pos, replayed_timestamp: None, paused: false },
        timeline: Some(1),
        replication_state: Some("streaming".into()),
        latest_end_lsn: None,
        replication: vec![],
    });
    s
}

#[derive(Default)]
pub struct ControlState {
    pub calls: Vec<String>,
    pub config: Option<(Value, u64)>,
    pub restart_scheduled: bool,
    pub switchover_scheduled: bool,
    pub healthy_candidates: bool,
    pub outcome: Option<FailoverOutcome>,
    pub reinit_error: Option<String>,
    /// Bump the version behind the caller's back once, to provoke a CAS conflict.
    pub race_next_write: bool,
    /// `restart` never returns (a stuck action).
    pub hang_restart: bool,
    /// What `fresh_xlog` answers (None: the snapshot's).
    pub fresh_xlog: Option<Xlog>,
    /// `fresh_xlog` never returns (PostgreSQL hangs).
    pub hang_fresh_xlog: bool,
}

/// Records every call; behaves like a small, consistent agent.
#[derive(Clone)]
pub struct RecordingControl(pub Arc<Mutex<ControlState>>);

impl RecordingControl {
    pub fn new() -> Self {
        let st =
            ControlState { config: cluster().config.map(|c| (c, 7)), healthy_candidates: true, ..Default::default() };
        Self(Arc::new(Mutex::new(st)))
    }

    pub fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().calls.clone()
    }

    fn record(&self, call: String) {
        self.0.lock().unwrap().calls.push(call);
    }
}

#[async_trait]
impl Control for RecordingControl {
    async fn wakeup(&self) {
        self.record("wakeup".into());
    }
    async fn fresh_xlog(&self) -> Option<Xlog> {
        self.record("fresh_xlog".into());
        let (hang, xlog) = {
            let st = self.0.lock().unwrap();
            (st.hang_fresh_xlog, st.fresh_xlog.clone())
        };
        if hang {
            std::future::pending::<()>().await;
        }
        xlog
    }
    async fn reload(&self) {
        self.record("reload".into());
    }
    async fn restart(&self, req: RestartRequest) -> Result<(bool, String), ControlError> {
        self.record(format!("restart role={:?} version={:?}", req.role, req.postgres_version));
        let hang = self.0.lock().unwrap().hang_restart;
        if hang {
            std::future::pending::<()>().await;
        }
        Ok((true, "restarted successfully".into()))
    }
    async fn schedule_restart(&self, _req: RestartRequest) -> bool {
        self.record("schedule_restart".into());
        let mut st = self.0.lock().unwrap();
        if st.restart_scheduled {
            return false;
        }
        st.restart_scheduled = true;
        true
    }
    async fn delete_scheduled_restart(&self) -> bool {
        self.record("delete_scheduled_restart".into());
        std::mem::take(&mut self.0.lock().unwrap().restart_scheduled)
    }
    async fn reinitialize(&self, req: ReinitializeRequest) -> Result<(), String> {
        self.record(format!("reinitialize force={} from_leader={}", req.force, req.from_leader));
        match self.0.lock().unwrap().reinit_error.clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
    async fn any_healthy_candidate(&self, members: &[String]) -> bool {
        self.record(format!("check {}", members.join(",")));
        self.0.lock().unwrap().healthy_candidates
    }
    async fn manual_failover(&self, plan: &FailoverPlan) -> FailoverOutcome {
        self.record(format!(
            "manual_failover {} leader={:?} candidate={:?} scheduled={}",
            plan.action.as_str(),
            plan.leader,
            plan.candidate,
            plan.scheduled_at.is_some()
        ));
        let mut st = self.0.lock().unwrap();
        if plan.scheduled_at.is_some() {
            st.switchover_scheduled = true;
            return FailoverOutcome::Scheduled;
        }
        st.outcome.clone().unwrap_or(FailoverOutcome::Completed {
            new_leader: plan.candidate.clone().unwrap_or_else(|| "patroni2".into()),
        })
    }
    async fn cancel_scheduled_switchover(&self) -> CancelSwitchover {
        self.record("cancel_scheduled_switchover".into());
        if std::mem::take(&mut self.0.lock().unwrap().switchover_scheduled) {
            CancelSwitchover::Deleted
        } else {
            CancelSwitchover::NotScheduled
        }
    }
    async fn read_config(&self) -> Result<Option<VersionedConfig>, ControlError> {
        let st = self.0.lock().unwrap();
        Ok(st.config.as_ref().map(|(data, v)| VersionedConfig { data: data.clone(), version: v.to_string() }))
    }
    async fn write_config(&self, data: &Value, version: Option<&str>) -> Result<bool, ControlError> {
        self.record(format!("write_config version={version:?}"));
        let mut st = self.0.lock().unwrap();
        if std::mem::take(&mut st.race_next_write) {
            if let Some((_, v)) = st.config.as_mut() {
                *v += 1;
            }
        }
        let current = st.config.as_ref().map(|(_, v)| v.to_string());
        if version.is_some() && version.map(str::to_owned) != current {
            return Ok(false);
        }
        let next = st.config.as_ref().map_or(1, |(_, v)| v + 1);
        st.config = Some((data.clone(), next));
        Ok(true)
    }
    async fn update_failsafe(&self, body: &Map<String, Value>) -> FailsafeReply {
        self.record(format!("failsafe {}", Value::Object(body.clone())));
        FailsafeReply::Accepted { lsn: Some(67_395_656) }
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub status: watch::Sender<Arc<NodeStatus>>,
    pub control: RecordingControl,
    pub handle: ServerHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(status: NodeStatus) -> Self {
        Self::start_with(status, ServerSettings::new("127.0.0.1:0")).await
    }

    pub async fn start_with(status: NodeStatus, settings: ServerSettings) -> Self {
        let (tx, rx) = watch::channel(Arc::new(status));
        let control = RecordingControl::new();
        let server = ApiServer::bind(&settings, rx, Arc::new(control.clone())).await.expect("bind");
        let addr = server.local_addr().unwrap();
        let handle = server.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Self { addr, status: tx, control, handle, stop: Some(stop), task: Some(task) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn api_url(&self) -> String {
        self.url("/patroni")
    }

    pub fn publish(&self, status: NodeStatus) {
        self.status.send_replace(Arc::new(status));
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

/// Sends raw bytes and reads until the server closes or `timeout`; returns what came back.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

pub fn status_line(resp: &str) -> &str {
    resp.lines().next().unwrap_or("")
}

pub fn body_of(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}
