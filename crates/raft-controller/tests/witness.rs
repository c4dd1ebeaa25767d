//! Two in-process database nodes plus the `patroni_raft_controller` process as the witness: the DCS survives the
//! loss of a database node, and SIGTERM stops the witness cleanly.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use patroni_dcs::raft::{Raft, RaftSettings};
use patroni_dcs::Dcs;
use patroni_testkit::{free_port, TestDir};

struct Witness(Child);

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_ready(dcs: &Raft) {
    let start = Instant::now();
    while dcs.get_cluster().await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "{} never reached the DCS", dcs.name());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_database_nodes_and_the_controller_survive_losing_a_database_node() {
    let dir = TestDir::new().unwrap();
    let addrs: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let config = format!(
        "scope: demo\nraft:\n  self_addr: {}\n  partner_addrs: ['{}', '{}']\n  data_dir: {}\n  password: pw\n",
        addrs[2],
        addrs[0],
        addrs[1],
        dir.join("witness").display()
    );
    let config_path = dir.write_file("witness.yml", config, 0o600).unwrap();
    let log = std::fs::File::create(dir.join("witness.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_patroni_raft_controller"))
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut witness = Witness(child);

    let settings = |i: usize| {
        let partners: Vec<String> = addrs.iter().filter(|a| **a != addrs[i]).cloned().collect();
        let mut s = RaftSettings::new("demo", format!("db{}", i + 1), &addrs[i])
            .with_partners(partners)
            .with_data_dir(dir.join(format!("db{i}")));
        s.password = Some("pw".into());
        s.retry_timeout = Duration::from_secs(3);
        s
    };
    let db1 = Raft::new(settings(0)).await.unwrap();
    let db2 = Raft::new(settings(1)).await.unwrap();
    wait_ready(&db1).await;
    wait_ready(&db2).await;
    assert_eq!(db1.voters().len(), 3, "{:?}", db1.voters());

    db1.touch_member(&Default::default()).await.unwrap();
    db1.attempt_to_acquire_leader().await.unwrap();
    db1.shutdown().await;
    // db2 and the witness are a majority: db2 keeps reading and writing.
    wait_ready(&db2).await;
    let c = db2.get_cluster().await.unwrap();
    assert_eq!(c.leader_name(), Some("db1"));
    db2.set_config_value(r#"{"ttl":30}"#, None).await.unwrap();

    // SIGTERM ends the witness cleanly.
    let pid = witness.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = witness.0.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "witness did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}: {}", std::fs::read_to_string(dir.join("witness.log")).unwrap_or_default());
}

fn spawn_controller(dir: &TestDir, i: usize, addrs: &[String]) -> Witness {
    let partners: Vec<String> = addrs.iter().filter(|a| **a != addrs[i]).map(|a| format!("'{a}'")).collect();
    let config = format!(
        "scope: procs\nraft:\n  self_addr: {}\n  partner_addrs: [{}]\n  data_dir: {}\n",
        addrs[i],
        partners.join(", "),
        dir.join(format!("c{i}")).display()
    );
    let path = dir.write_file(format!("c{i}.yml"), config, 0o600).unwrap();
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("c{i}.log"))).unwrap();
    Witness(
        Command::new(env!("CARGO_BIN_EXE_patroni_raft_controller"))
            .arg(path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

#[tokio::test]
async fn three_controller_processes_survive_sigkill_of_each_in_turn() {
    let dir = TestDir::new().unwrap();
    let addrs: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let mut procs: Vec<Witness> = (0..3).map(|i| spawn_controller(&dir, i, &addrs)).collect();
    // A client (no self_addr) writes through whichever members are up.
    let mut s = RaftSettings::new("procs", "client", "").with_partners(addrs.clone());
    s.retry_timeout = Duration::from_secs(5);
    let client = Raft::new(s).await.unwrap();
    wait_ready(&client).await;
    for (round, proc) in procs.iter_mut().enumerate() {
        // SIGKILL: no goodbye to the peers, as when a machine dies; one of the three rounds kills the Raft leader.
        proc.0.kill().unwrap();
        proc.0.wait().unwrap();
        let start = Instant::now();
        while client.set_config_value(&format!(r#"{{"round":{round}}}"#), None).await.is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "round {round}: no quorum after a SIGKILL");
        }
        *proc = spawn_controller(&dir, round, &addrs);
        // Wait until the restarted process is back in the quorum before killing the next one.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let c = client.get_cluster().await.unwrap();
        assert_eq!(c.config.unwrap().data["round"], round);
    }
}
