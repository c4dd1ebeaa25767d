//! Clusters on the embedded Raft DCS: the agents themselves are the consensus, nothing else runs.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use patroni_testkit::{free_port, pg_bin_dir, AgentProcess, UnprivilegedCommand};

const WAIT: Duration = Duration::from_secs(120);

struct Member {
    name: String,
    raft_port: u16,
}

fn config(m: &Member, partners: &[String], ctx: &patroni_testkit::AgentContext) -> String {
    let bin = pg_bin_dir().expect("PostgreSQL binaries").display().to_string();
    format!(
        r#"scope: raftdemo
name: {name}
{restapi}raft:
  data_dir: {dir}/raft
  self_addr: 127.0.0.1:{raft}
  partner_addrs: [{partners}]
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 2
    retry_timeout: 5
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_log_hints: "on"
  initdb:
  - data-checksums
{postgresql}"#,
        name = m.name,
        restapi = ctx.restapi_yaml(),
        dir = ctx.dir.display(),
        raft = m.raft_port,
        partners = partners.join(", "),
        postgresql = ctx.postgresql_yaml(&bin, &ctx.data_dir()),
    )
}

fn spawn(m: &Member, partners: Vec<String>) -> AgentProcess {
    let member = Member { name: m.name.clone(), raft_port: m.raft_port };
    AgentProcess::builder(env!("CARGO_BIN_EXE_patroni"))
        .name(m.name.clone())
        .config(move |ctx| config(&member, &partners, ctx))
        .start()
        .expect("agent starts")
}

fn partners_of(members: &[Member], i: usize, extra: &[u16]) -> Vec<String> {
    members
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, m)| m.raft_port)
        .chain(extra.iter().copied())
        .map(|p| format!("127.0.0.1:{p}"))
        .collect()
}

async fn primaries(nodes: &[Option<AgentProcess>]) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if let Some(n) = n {
            if n.get("/primary").await.ok().map(|(c, _)| c) == Some(200) {
                out.push(i);
            }
        }
    }
    out
}

async fn wait_primary(nodes: &[Option<AgentProcess>], exclude: Option<usize>) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let p: Vec<usize> = primaries(nodes).await.into_iter().filter(|i| Some(*i) != exclude).collect();
        if p.len() == 1 {
            return p[0];
        }
        if Instant::now() > deadline {
            for n in nodes.iter().flatten() {
                eprintln!(
                    "---- {}\n{}",
                    n.context().name,
                    n.log().lines().rev().take(30).collect::<Vec<_>>().join("\n")
                );
            }
            panic!("no single primary within {WAIT:?}: {p:?}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Every member other than `primary` answers `GET /replica` with 200: it streams and could take over.
async fn wait_replicas(nodes: &[Option<AgentProcess>], primary: usize) {
    let deadline = Instant::now() + WAIT;
    for (i, n) in nodes.iter().enumerate() {
        let Some(n) = n else { continue };
        if i == primary {
            continue;
        }
        while n.get("/replica").await.ok().map(|(c, _)| c) != Some(200) {
            assert!(Instant::now() < deadline, "{} never became a streaming replica:\n{}", n.context().name, n.log());
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// Runs `query` on the member, retrying for a bounded time: right after a promotion the first connections may
/// still meet the end of recovery.
async fn sql(node: &AgentProcess, query: &str) -> Result<(), String> {
    let port = node.context().pg_port;
    let conn = format!("host=127.0.0.1 port={port} user=postgres password=secret dbname=postgres connect_timeout=3");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = async {
            let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            client.batch_execute(query).await
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                let detail = e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| e.to_string());
                return Err(format!("{query}: {detail}\n{}", node.log()));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

async fn wait_row(node: &AgentProcess, value: i32) {
    let deadline = Instant::now() + WAIT;
    let port = node.context().pg_port;
    let conn = format!("host=127.0.0.1 port={port} user=postgres password=secret dbname=postgres connect_timeout=3");
    loop {
        if let Ok((client, connection)) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await {
            tokio::spawn(connection);
            if let Ok(rows) = client.query("select count(*) from t where x = $1", &[&value]).await {
                if rows.first().map(|r| r.get::<_, i64>(0)) == Some(1) {
                    return;
                }
            }
        }
        assert!(Instant::now() < deadline, "row {value} never reached {}:\n{}", node.context().name, node.log());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// SIGKILL of the agent leaves PostgreSQL running (as with Patroni); the test then stops PostgreSQL too, the
/// "node death" of the issue.
fn node_death(node: &mut AgentProcess) {
    node.kill(Signal::SIGKILL).expect("kill agent");
    let data = node.context().data_dir();
    let bin = pg_bin_dir().expect("PostgreSQL binaries").join("pg_ctl");
    let _ = std::process::Command::new(bin).args(["stop", "-m", "immediate", "-D"]).arg(&data).unprivileged().status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_cluster_fails_over_and_the_killed_member_catches_up() {
    let members: Vec<Member> = (0..3).map(|i| Member { name: format!("pg{i}"), raft_port: free_port() }).collect();
    let mut nodes: Vec<Option<AgentProcess>> =
        (0..3).map(|i| Some(spawn(&members[i], partners_of(&members, i, &[])))).collect();
    let primary = wait_primary(&nodes, None).await;
    wait_replicas(&nodes, primary).await;
    sql(nodes[primary].as_ref().unwrap(), "create table t (x int); insert into t values (1)").await.unwrap();

    let Some(node) = nodes[primary].as_mut() else { unreachable!() };
    node_death(node);
    let new_primary = wait_primary(&nodes, Some(primary)).await;
    assert_ne!(new_primary, primary);
    sql(nodes[new_primary].as_ref().unwrap(), "insert into t values (2)").await.unwrap();

    // The killed member comes back: it catches up on the Raft log and rejoins as a replica of the new primary.
    nodes[primary].as_mut().unwrap().restart().expect("agent restarts");
    wait_row(nodes[primary].as_ref().unwrap(), 2).await;
    assert_eq!(primaries(&nodes).await, vec![new_primary]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_data_nodes_and_a_witness_survive_losing_the_primary() {
    let members: Vec<Member> = (0..2).map(|i| Member { name: format!("pg{i}"), raft_port: free_port() }).collect();
    let witness_port = free_port();
    // The witness votes but runs no PostgreSQL: an in-process Raft node, as `patroni_raft_controller` runs one.
    let witness_dir = patroni_testkit::TestDir::new().unwrap();
    let mut ws = patroni_dcs::raft::RaftSettings::new("raftdemo", "witness", format!("127.0.0.1:{witness_port}"));
    ws.data_dir = witness_dir.join("raft");
    ws.partner_addrs = members.iter().map(|m| format!("127.0.0.1:{}", m.raft_port)).collect();
    let _witness = patroni_dcs::raft::Raft::new(ws).await.expect("witness starts");

    let mut nodes: Vec<Option<AgentProcess>> =
        (0..2).map(|i| Some(spawn(&members[i], partners_of(&members, i, &[witness_port])))).collect();
    let primary = wait_primary(&nodes, None).await;
    wait_replicas(&nodes, primary).await;
    let other = 1 - primary;
    let Some(node) = nodes[primary].as_mut() else { unreachable!() };
    node_death(node);
    let new_primary = wait_primary(&nodes, Some(primary)).await;
    assert_eq!(new_primary, other);
    sql(nodes[new_primary].as_ref().unwrap(), "create table w (x int)").await.unwrap();
}
