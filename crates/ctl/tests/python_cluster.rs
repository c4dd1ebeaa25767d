//! Our `patronictl` against a cluster run by **Python** Patroni: the same tables as Python's `patronictl`, and
//! actions (switchover) accepted by Python's REST API.
//!
//! Runs when `PYTHON_PATRONI` (Python Patroni's `patroni`, executable by the `postgres` user when the tests run
//! as root) and `PYTHON_PATRONICTL` are set, e.g. after
//! `python3 -m venv /opt/pyp && /opt/pyp/bin/pip install 'patroni[etcd3]' psycopg2-binary && chmod -R a+rX /opt/pyp`
//! with a system Python. Skipped (with a message) otherwise.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use patroni_testkit::{pg_bin_dir, AgentProcess, EtcdServer, TestDir};
use serde_json::Value;

const START_TIMEOUT: Duration = Duration::from_secs(180);

fn member_config(etcd: &str, bin: &str, name: &str, ctx: &patroni_testkit::AgentContext) -> String {
    format!(
        "scope: pydemo\nname: {name}\n{restapi}etcd3:\n  hosts: {etcd}\n\
         bootstrap:\n  dcs:\n    ttl: 20\n    loop_wait: 2\n    retry_timeout: 5\n{postgresql}",
        restapi = ctx.restapi_yaml(),
        postgresql = ctx.postgresql_yaml(bin, &ctx.data_dir()),
    )
}

fn run(program: &str, config: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(program).arg("-c").arg(config).args(args).output().expect("patronictl runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_patronictl_reads_and_drives_a_python_patroni_cluster() {
    let (Some(agent), Some(py_ctl)) = (std::env::var_os("PYTHON_PATRONI"), std::env::var("PYTHON_PATRONICTL").ok())
    else {
        eprintln!("SKIPPED: set PYTHON_PATRONI and PYTHON_PATRONICTL to run against a Python Patroni cluster");
        return;
    };
    let ours = env!("CARGO_BIN_EXE_patronictl");
    let etcd = EtcdServer::start().await.expect("etcd starts");
    let bin = pg_bin_dir().expect("PostgreSQL binaries").display().to_string();
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let (endpoint, bin, name) = (etcd.endpoint(), bin.clone(), format!("py{i}"));
        nodes.push(
            AgentProcess::builder(PathBuf::from(&agent))
                .name(name.clone())
                .config(move |ctx| member_config(&endpoint, &bin, &name, ctx))
                .start()
                .expect("python agent starts"),
        );
    }
    let dir = TestDir::with_prefix("patronictl-py-").expect("temp dir");
    let config = dir
        .write_file("patronictl.yaml", format!("scope: pydemo\netcd3:\n  hosts: {}\n", etcd.endpoint()), 0o644)
        .expect("config")
        .display()
        .to_string();

    let members = || -> Vec<Value> {
        serde_json::from_str::<Value>(&run(ours, &config, &["list", "-f", "json"]).1)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    };
    let healthy = |m: &[Value]| {
        m.len() == 3
            && m.iter().filter(|x| x["Role"] == "Leader").count() == 1
            && m.iter().filter(|x| x["State"] == "streaming").count() == 2
    };
    let deadline = Instant::now() + START_TIMEOUT;
    while !healthy(&members()) {
        if Instant::now() > deadline {
            for n in &nodes {
                eprintln!("--- {}\n{}", n.context().name, n.log());
            }
            panic!("python cluster not healthy: {:?}", members());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The cluster is live: a WAL position can move between the two tools' reads (a new primary's checkpoint, say).
    // Python's output counts only when ours is the same before and after it, i.e. nothing moved meanwhile.
    let compare = |args: &[&str]| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (a, b, again) = (run(ours, &config, args), run(&py_ctl, &config, args), run(ours, &config, args));
            if a == again || Instant::now() > deadline {
                assert_eq!(a, b, "patronictl {args:?}: ours (left) vs Python (right)");
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    for args in [
        &["list"][..],
        &["list", "-e"],
        &["list", "-f", "json"],
        &["list", "-f", "tsv"],
        &["topology"],
        &["history"],
        &["show-config"],
        &["dsn", "-r", "replica"],
    ] {
        compare(args);
    }

    // Python's REST API accepts our switchover; both tools then show the same table and history.
    let m = members();
    let leader =
        m.iter().find(|x| x["Role"] == "Leader").and_then(|x| x["Member"].as_str()).unwrap_or_default().to_string();
    let candidate =
        m.iter().filter_map(|x| x["Member"].as_str()).find(|n| *n != leader).unwrap_or_default().to_string();
    let (code, out) = run(ours, &config, &["switchover", "--candidate", &candidate, "--force"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("Successfully switched over to \"{candidate}\"")), "{out}");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let m = members();
        if healthy(&m) && m.iter().any(|x| x["Member"] == candidate.as_str() && x["Role"] == "Leader") {
            break;
        }
        assert!(Instant::now() < deadline, "switchover to {candidate} not completed: {m:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Python's new leader writes the history key once its promotion is done, possibly a loop after the key moved:
    // compare once it is there, or the two tools could read it on either side of that write.
    let deadline = Instant::now() + START_TIMEOUT;
    while !run(ours, &config, &["history"]).1.contains(&candidate) {
        assert!(Instant::now() < deadline, "history never recorded the switchover to {candidate}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    compare(&["history"]);
    compare(&["history", "-f", "yaml"]);
    compare(&["list"]);
}
