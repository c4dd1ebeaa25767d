//! AgentProcess with a stand-in agent (a shell script serving its dir over HTTP), until `patroni` runs for real.

use std::time::Duration;

use nix::sys::signal::Signal;
use patroni_testkit::{is_root, pid_alive, AgentProcess, PgServer, TestDir};

/// Prints who it runs as and its config, then serves its directory on the port named in the config; exits 0 on
/// SIGTERM like a graceful agent.
const FAKE_AGENT: &str = r#"#!/bin/sh
echo "uid=$(id -u)"
echo "args=$*"
for config; do :; done
cat "$config"
port=$(sed -n 's/^  listen: 127.0.0.1://p' "$config" | head -n 1)
python3 -m http.server --bind 127.0.0.1 "$port" &
child=$!
trap 'kill $child; echo "graceful stop"; exit 0' TERM
wait $child
"#;

fn fake_agent(dir: &TestDir) -> std::path::PathBuf {
    dir.write_file("fake-patroni", FAKE_AGENT, 0o755).unwrap()
}

#[tokio::test]
async fn starts_with_a_templated_config_as_the_unprivileged_user() {
    let bin_dir = TestDir::new().unwrap();
    let mut agent = AgentProcess::builder(fake_agent(&bin_dir))
        .name("node7")
        .arg("--flag")
        .config(|ctx| {
            format!(
                "name: {}\nrestapi:\n  listen: 127.0.0.1:{}\npostgresql:\n  listen: 127.0.0.1:{}\n  data_dir: {}\n",
                ctx.name,
                ctx.api_port,
                ctx.pg_port,
                ctx.data_dir().display()
            )
        })
        .start()
        .unwrap();
    agent.wait_for_api("/", Duration::from_secs(20)).await.unwrap();
    let (status, body) = agent.get("/patroni.log").await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("name: node7"), "{body}");
    assert!(body.contains("--flag"), "{body}");
    if is_root() {
        assert!(!body.contains("uid=0"), "agent ran as root: {body}");
    }
    let (status, _) = agent.get("/no-such-file").await.unwrap();
    assert_eq!(status, 404);

    agent.kill(Signal::SIGTERM).unwrap();
    let status = agent.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert!(status.success(), "{status}");
    agent.wait_for_log("graceful stop", Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn sigkill_restart_and_drop() {
    let bin_dir = TestDir::new().unwrap();
    let mut agent = AgentProcess::builder(fake_agent(&bin_dir))
        .config(|ctx| format!("restapi:\n  listen: 127.0.0.1:{}\n", ctx.api_port))
        .start()
        .unwrap();
    agent.wait_for_api("/", Duration::from_secs(20)).await.unwrap();
    agent.kill(Signal::SIGKILL).unwrap();
    let status = agent.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert!(!status.success());

    // The killed script's own child (the HTTP server) still answers, as PostgreSQL would after an agent crash.
    assert_eq!(agent.get("/").await.unwrap().0, 200);
    let orphan_port = agent.context().api_port;

    agent.restart().unwrap();
    let pid = agent.pid().unwrap();
    agent.wait_for_log("uid=", Duration::from_secs(10)).await.unwrap();
    drop(agent);
    assert!(!pid_alive(pid));
    // Drop cleaned up the first run's leftovers too.
    let refused = std::net::TcpStream::connect(("127.0.0.1", orphan_port));
    assert!(refused.is_err(), "something still listens on {orphan_port}");
}

#[tokio::test]
async fn a_failing_agent_is_reported_with_its_log() {
    let bin_dir = TestDir::new().unwrap();
    let bin = bin_dir.write_file("broken", "#!/bin/sh\necho 'FATAL: bad config' >&2\nexit 1\n", 0o755).unwrap();
    let mut agent = AgentProcess::builder(bin).config(|_| "{}".into()).start().unwrap();
    let err = agent.wait_for_api("/health", Duration::from_secs(10)).await.unwrap_err().to_string();
    assert!(err.contains("FATAL: bad config"), "{err}");
    assert_eq!(agent.wait_exit(Duration::from_secs(5)).await.unwrap().code(), Some(1));
}

#[tokio::test]
async fn drop_stops_a_postgres_left_under_its_dir() {
    // A PostgreSQL started in the agent's dir by someone else (as an agent would) is stopped by the agent's drop.
    let bin_dir = TestDir::new().unwrap();
    let agent = AgentProcess::builder(fake_agent(&bin_dir))
        .config(|ctx| format!("restapi:\n  listen: 127.0.0.1:{}\n", ctx.api_port))
        .start()
        .unwrap();
    let pg = PgServer::builder().init().await.unwrap();
    let data = agent.dir().join("data");
    let copy = std::process::Command::new("cp").arg("-a").arg(pg.data_dir()).arg(&data).status().unwrap();
    assert!(copy.success());
    let pg_ctl = pg.bin_dir().join("pg_ctl");
    let mut cmd = std::process::Command::new("runuser");
    if is_root() {
        cmd.args(["-u", "postgres", "--"]);
    } else {
        cmd = std::process::Command::new("env");
    }
    let started = cmd
        .arg(&pg_ctl)
        .args(["start", "-w", "-t", "30", "-l"])
        .arg(agent.dir().join("pg.log"))
        .arg("-D")
        .arg(&data)
        .args(["-o", &format!("-p {} -k {}", patroni_testkit::free_port(), agent.dir().display())])
        .status()
        .unwrap();
    assert!(started.success());
    let pid: u32 =
        std::fs::read_to_string(data.join("postmaster.pid")).unwrap().lines().next().unwrap().parse().unwrap();
    assert!(pid_alive(pid));
    drop(agent);
    assert!(!pid_alive(pid), "postmaster {pid} survived the agent's drop");
}
