//! Serves the REST API from a fake node whose "HA loop" republishes its snapshot every 100 ms,
//! for load tests (`bench/wrk.sh`) and for poking at answers with curl.
//!
//! `cargo run -p patroni-api --example fake_node -- 127.0.0.1:8008 replica`

use async_trait::async_trait;
use patroni_api::control::*;
use patroni_api::*;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

struct NoControl;

#[async_trait]
impl Control for NoControl {
    async fn wakeup(&self) {}
    async fn reload(&self) {}
    async fn restart(&self, _: RestartRequest) -> Result<(bool, String), ControlError> {
        Ok((false, "not a real node".into()))
    }
    async fn schedule_restart(&self, _: RestartRequest) -> bool {
        false
    }
    async fn delete_scheduled_restart(&self) -> bool {
        false
    }
    async fn reinitialize(&self, _: ReinitializeRequest) -> Result<(), String> {
        Err("not a real node".into())
    }
    async fn any_healthy_candidate(&self, _: &[String]) -> bool {
        false
    }
    async fn manual_failover(&self, _: &FailoverPlan) -> FailoverOutcome {
        FailoverOutcome::WriteFailed
    }
    async fn cancel_scheduled_switchover(&self) -> CancelSwitchover {
        CancelSwitchover::NotScheduled
    }
    async fn read_config(&self) -> Result<Option<VersionedConfig>, ControlError> {
        Ok(None)
    }
    async fn write_config(&self, _: &Value, _: Option<&str>) -> Result<bool, ControlError> {
        Ok(false)
    }
    async fn update_failsafe(&self, _: &Map<String, Value>) -> FailsafeReply {
        FailsafeReply::Refused("not a real node".into())
    }
}

fn snapshot(replica: bool, tick: u64) -> NodeStatus {
    let info = PatroniInfo {
        version: "4.1.5".into(),
        scope: "bench".into(),
        name: if replica { "node2" } else { "node1" }.into(),
    };
    let mut s = NodeStatus::starting(info, SystemTime::now() + Duration::from_secs(10));
    let pos = 100_000_000 + tick * 1000;
    s.state = PostgresState::Running;
    s.role = if replica { PostgresRole::Replica } else { PostgresRole::Primary };
    s.is_leader = !replica;
    s.postgres = Some(PostgresStatus {
        postmaster_start_time: chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00.123456+00:00").ok(),
        role: s.role,
        server_version: 150004,
        xlog: if replica {
            Xlog::Replica { received_location: pos, replayed_location: pos, replayed_timestamp: None, paused: false }
        } else {
            Xlog::Primary { location: pos }
        },
        timeline: Some(1),
        replication_state: replica.then(|| "streaming".to_owned()),
        latest_end_lsn: None,
        replication: vec![],
    });
    s.tags = json!({"clonefrom": true}).as_object().cloned().unwrap_or_default();
    s.database_system_identifier = Some("7268616322854375442".into());
    s.cluster = Some(Arc::new(ClusterDocument { leader: Some("node1".into()), last_lsn: pos, ..Default::default() }));
    s
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8008".into());
    let replica = args.next().as_deref() == Some("replica");
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(snapshot(replica, 0)));
    let server = ApiServer::bind(&ServerSettings::new(listen), rx, Arc::new(NoControl)).await?;
    eprintln!("serving on http://{}", server.local_addr()?);
    tokio::spawn(async move {
        let mut tick = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tick += 1;
            tx.send_replace(Arc::new(snapshot(replica, tick)));
        }
    });
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(())
}
