//! `patronictl` against a live 3-member cluster (one etcd, three `patroni` agents with their PostgreSQL): the
//! output of every read command and the effect of the actions (a switchover really switches, pause shows the
//! maintenance footer, edit-config changes the DCS…).
//!
//! Needs the agent binary: `cargo build -p patroni-agent --bin patroni` (looked up as `<target>/debug/patroni`).
//! Without it the test says so and passes. With `PYTHON_PATRONICTL` pointing at Python Patroni's `patronictl`
//! (`pip install 'patroni[etcd3]' psycopg2-binary`), its output is compared byte for byte with ours.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use patroni_testkit::{pg_bin_dir, AgentProcess, EtcdServer, TestDir};
use serde_json::Value;

const START_TIMEOUT: Duration = Duration::from_secs(180);

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

fn agent_binary() -> Option<PathBuf> {
    let p = target_dir().join("debug/patroni");
    p.is_file().then_some(p)
}

fn member_config(etcd: &str, bin: &str, name: &str, ctx: &patroni_testkit::AgentContext) -> String {
    format!(
        "scope: demo\nname: {name}\n{restapi}etcd3:\n  hosts: {etcd}\n\
         bootstrap:\n  dcs:\n    ttl: 20\n    loop_wait: 2\n    retry_timeout: 5\n{postgresql}",
        restapi = ctx.restapi_yaml() + "  authentication: {username: admin, password: s3cret}\n",
        postgresql = ctx.postgresql_yaml(bin, &ctx.data_dir()),
    )
}

/// One environment variable for a run of patronictl.
type Env<'a> = (&'a str, &'a str);

/// The REST APIs require these for unsafe requests; patronictl gets them from the environment alone, as a DBA
/// would pass them (`PATRONI_RESTAPI_USERNAME` / `PATRONI_RESTAPI_PASSWORD`), not from its configuration file.
const RESTAPI_ENV: [Env; 2] = [("PATRONI_RESTAPI_USERNAME", "admin"), ("PATRONI_RESTAPI_PASSWORD", "s3cret")];

struct Live {
    _nodes: Vec<AgentProcess>,
    _etcd: EtcdServer,
    dir: TestDir,
    pg_ports: Vec<u16>,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Live {
    fn config_path(&self) -> String {
        self.dir.join("patronictl.yaml").display().to_string()
    }

    fn run_with(&self, program: &str, args: &[&str], stdin: &str) -> Out {
        self.run_env(program, args, stdin, &RESTAPI_ENV)
    }

    fn run_env(&self, program: &str, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Out {
        let mut child = Command::new(program)
            .envs(env.iter().copied())
            .arg("-c")
            .arg(self.config_path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        if let Some(mut input) = child.stdin.take() {
            use std::io::Write;
            let _ = input.write_all(stdin.as_bytes());
        }
        let out = child.wait_with_output().expect("patronictl output");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ctl(&self, args: &[&str]) -> Out {
        self.run_with(env!("CARGO_BIN_EXE_patronictl"), args, "")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert_eq!(o.code, 0, "patronictl {args:?} failed: {}{}", o.stdout, o.stderr);
        o.stdout
    }

    fn members(&self) -> Vec<Value> {
        serde_json::from_str::<Value>(&self.ok(&["list", "-f", "json"]))
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    fn leader(&self) -> Option<String> {
        self.members().iter().find(|m| m["Role"] == "Leader").and_then(|m| m["Member"].as_str().map(str::to_owned))
    }

    /// Waits until `check` holds on `list -f json`.
    async fn wait_members(&self, what: &str, timeout: Duration, check: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.members();
            if check(&m) {
                return;
            }
            if Instant::now() > deadline {
                panic!("{what} not reached within {timeout:?}; list -f json: {m:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn healthy(m: &[Value]) -> bool {
    m.len() == 3
        && m.iter().filter(|x| x["Role"] == "Leader" && x["State"] == "running").count() == 1
        && m.iter().filter(|x| x["Role"] == "Replica" && x["State"] == "streaming").count() == 2
}

async fn start() -> Option<Live> {
    let Some(binary) = agent_binary() else {
        eprintln!(
            "SKIPPED: no agent binary at {}; build it with `cargo build -p patroni-agent --bin patroni`",
            target_dir().join("debug/patroni").display()
        );
        return None;
    };
    let etcd = EtcdServer::start().await.expect("etcd starts");
    let bin = pg_bin_dir().expect("PostgreSQL binaries").display().to_string();
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let (endpoint, bin, name) = (etcd.endpoint(), bin.clone(), format!("pg{i}"));
        let agent = AgentProcess::builder(&binary)
            .name(name.clone())
            .config(move |ctx| member_config(&endpoint, &bin, &name, ctx))
            .start()
            .expect("agent starts");
        nodes.push(agent);
    }
    let pg_ports = nodes.iter().map(|n| n.context().pg_port).collect();
    let dir = TestDir::with_prefix("patronictl-").expect("temp dir");
    dir.write_file("patronictl.yaml", format!("scope: demo\netcd3:\n  hosts: {}\n", etcd.endpoint()), 0o644)
        .expect("patronictl.yaml");
    let live = Live { _nodes: nodes, _etcd: etcd, dir, pg_ports };
    live.wait_members("3 members, one leader, two streaming replicas", START_TIMEOUT, healthy).await;
    Some(live)
}

fn python_patronictl() -> Option<String> {
    std::env::var("PYTHON_PATRONICTL").ok().filter(|p| std::path::Path::new(p).is_file())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patronictl_against_a_live_cluster() {
    let Some(live) = start().await else { return };

    // list: Patroni's box with the cluster title and its system identifier.
    let list = live.ok(&["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 7, "{list}");
    assert!(lines[0].starts_with("+ Cluster: demo ("), "{list}");
    let header: Vec<&str> = lines[1].split('|').map(str::trim).filter(|s| !s.is_empty()).collect();
    assert_eq!(header, ["Member", "Host", "Role", "State", "TL", "Receive LSN", "Lag", "Replay LSN", "Lag"]);
    assert_eq!(lines.iter().filter(|l| l.contains("| Leader ")).count(), 1, "{list}");
    assert_eq!(lines.iter().filter(|l| l.contains("| Replica ") && l.contains("| streaming ")).count(), 2);

    // -f json: Python's field names, empty cells left out.
    let members = live.members();
    for m in &members {
        for k in m.as_object().into_iter().flat_map(|o| o.keys()) {
            assert!(
                [
                    "Cluster",
                    "Member",
                    "Host",
                    "Role",
                    "State",
                    "TL",
                    "Receive LSN",
                    "Receive Lag",
                    "Replay LSN",
                    "Replay Lag"
                ]
                .contains(&k.as_str()),
                "unexpected field {k} in {m}"
            );
        }
        assert_eq!(m["Cluster"], "demo");
    }
    let leader = live.leader().expect("a leader");
    let leader_idx: usize = leader[2..].parse::<usize>().expect("pgN") - 1;

    // topology: the leader first, replicas indented under it.
    let topo = live.ok(&["topology"]);
    assert!(topo.lines().nth(3).is_some_and(|l| l.starts_with(&format!("| {leader} "))), "{topo}");
    assert_eq!(topo.lines().filter(|l| l.starts_with("| + pg")).count(), 2, "{topo}");

    // dsn, show-config, version.
    assert_eq!(live.ok(&["dsn", "-r", "primary"]), format!("host=127.0.0.1 port={}\n", live.pg_ports[leader_idx]));
    let cfg = live.ok(&["show-config"]);
    assert!(cfg.contains("loop_wait: 2\n") && cfg.contains("ttl: 20\n"), "{cfg}");
    let version = live.ok(&["version", "demo"]);
    assert!(version.starts_with("patronictl version 4.1.5\n\n"), "{version}");
    assert_eq!(version.lines().filter(|l| l.contains(": Patroni 4.1.5 PostgreSQL 15.")).count(), 3, "{version}");

    // Python patronictl reads our cluster exactly as ours does.
    if let Some(py) = python_patronictl() {
        for args in
            [&["list"][..], &["list", "-f", "json"], &["list", "-e", "-f", "tsv"], &["topology"], &["show-config"]]
        {
            let ours = live.ctl(args).stdout;
            let theirs = live.run_with(&py, args, "").stdout;
            assert_eq!(ours, theirs, "patronictl {args:?}: ours vs Python");
        }
    } else {
        eprintln!("PYTHON_PATRONICTL not set: byte-for-byte comparison with Python patronictl skipped");
    }

    // query: the members' PostgreSQL runs without TLS (ssl=off), which must not matter; connection failures
    // carry libpq's words, as psycopg2 reports them.
    let replica_name =
        members.iter().filter_map(|m| m["Member"].as_str()).find(|n| *n != leader).expect("a replica").to_string();
    let sql = "SELECT 1 AS a, 'x y' AS b, NULL AS c, 1.5::float8 AS f, true AS t, 'on'::text AS s";
    let password = [("PGPASSWORD", patroni_testkit::SUPERUSER_PASSWORD)];
    let wrong = [("PGPASSWORD", "wrong")];
    let queries: [(&[Env], Vec<&str>); 10] = [
        (&password, vec!["query", "-U", "postgres", "-c", sql]),
        (&password, vec!["query", "-U", "postgres", "-c", sql, "--format", "json"]),
        (&password, vec!["query", "-U", "postgres", "-c", sql, "--format", "yaml"]),
        (&password, vec!["query", "-U", "postgres", "-c", sql, "--format", "pretty"]),
        (&password, vec!["query", "-U", "postgres", "-c", "SELECT pg_is_in_recovery()", "-m", &replica_name]),
        (&password, vec!["query", "-U", "postgres", "-c", "SELECT 1", "-r", "standby-leader"]),
        (&password, vec!["query", "-U", "postgres", "-c", "SELECT 1", "--dbname", "nosuchdb"]),
        (&password, vec!["query", "-U", "postgres", "-c", "SELECT nosuchcolumn"]),
        (&wrong, vec!["query", "-U", "postgres", "-c", "SELECT 1"]),
        (&[], vec!["query", "-U", "postgres", "-c", "SELECT 1"]),
    ];
    // Error rows start with the local time to the second, which may tick between the two runs.
    let untimed = |o: Out| -> (i32, String) {
        let lines = o.stdout.lines().map(|l| match l.get(..19) {
            Some(t) if t.as_bytes().get(4) == Some(&b'-') && l.as_bytes().get(19) == Some(&b'\t') => &l[19..],
            _ => l,
        });
        (o.code, lines.collect::<Vec<_>>().join("\n"))
    };
    for (env, args) in &queries {
        let ours = untimed(live.run_env(env!("CARGO_BIN_EXE_patronictl"), args, "", env));
        assert_eq!(ours.0, 0, "patronictl {args:?}: {ours:?}");
        if let Some(py) = python_patronictl() {
            assert_eq!(ours, untimed(live.run_env(&py, args, "", env)), "patronictl {args:?}: ours vs Python");
        }
    }
    let tsv = untimed(live.run_env(env!("CARGO_BIN_EXE_patronictl"), &queries[0].1, "", &password)).1;
    assert_eq!(tsv, "a\tb\tc\tf\tt\ts\n1\tx y\tNone\t1.5\tTrue\ton");
    let refused = untimed(live.run_env(env!("CARGO_BIN_EXE_patronictl"), &queries[8].1, "", &wrong)).1;
    assert_eq!(
        refused,
        format!(
            "\tERROR, SQLSTATE: connection to server at \"127.0.0.1\", port {} failed: FATAL:  password \
             authentication failed for user \"postgres\" ",
            live.pg_ports[leader_idx]
        )
    );

    // pause / resume with --wait, and the maintenance footer.
    let out = live.ok(&["pause", "--wait"]);
    assert_eq!(
        out,
        "'pause' request sent, waiting until it is recognized by all nodes\nSuccess: cluster management is paused\n"
    );
    assert!(live.ok(&["list"]).ends_with("+\n Maintenance mode: on\n"));
    let again = live.ctl(&["pause"]);
    assert_eq!((again.code, again.stderr.as_str()), (1, "Error: Cluster is already paused\n"));
    assert_eq!(live.ok(&["resume", "--wait"]).lines().last(), Some("Success: cluster management is resumed"));
    assert!(!live.ok(&["list"]).contains("Maintenance mode"));

    // edit-config: diff, write, no-op.
    let out = live.ok(&["edit-config", "-s", "ttl=21", "--force"]);
    assert_eq!(
        out,
        "--- \n+++ \n@@ -1,3 +1,3 @@\n loop_wait: 2\n retry_timeout: 5\n-ttl: 20\n+ttl: 21\nConfiguration changed\n"
    );
    assert!(live.ok(&["show-config"]).contains("ttl: 21\n"));
    assert_eq!(live.ok(&["edit-config", "-s", "ttl=21", "--force"]), "Not changed\n");

    // Impossible requests exit 1 with Patroni's message; an unanswered prompt aborts.
    let bad = live.ctl(&["switchover", "--candidate", "nosuch", "--force"]);
    assert_eq!(bad.code, 1);
    assert_eq!(bad.stderr, "Error: Member nosuch does not exist in cluster demo or is tagged as nofailover\n");
    let replica =
        members.iter().filter_map(|m| m["Member"].as_str()).find(|n| *n != leader).expect("a replica").to_string();
    let asked = live.run_with(env!("CARGO_BIN_EXE_patronictl"), &["switchover"], &format!("\n{replica}\n\nn\n"));
    assert_eq!(asked.code, 1);
    assert!(asked.stdout.ends_with(&format!(
        "Are you sure you want to switchover cluster demo, demoting current leader {leader}? [y/N]: "
    )));
    assert_eq!(asked.stderr, "Error: Aborting switchover\n");

    // A scheduled switchover shows in the footer and is flushed.
    let out = live.ok(&["switchover", "--candidate", &replica, "--scheduled", "2099-01-01T10:00+00:00", "--force"]);
    assert!(out.contains(" Switchover scheduled\n"), "{out}");
    assert!(out.ends_with(&format!(
        " Switchover scheduled at: 2099-01-01T10:00:00+00:00\n                    from: {leader}\n                      to: {replica}\n"
    )));
    assert_eq!(live.ok(&["flush", "demo", "switchover", "--force"]), "Success: scheduled switchover deleted\n");
    assert_eq!(live.ok(&["flush", "demo", "switchover", "--force"]), "No pending scheduled switchover\n");

    // Without the credentials the REST API refuses (401) and patronictl says so for each member, then exits 0, as
    // Python's does: a refusal is a `Failed: …` line, not an exit status (the topology table above those lines may
    // differ by a WAL record between the two runs, so only they count).
    let failures = |o: &Out| -> (i32, Vec<String>) {
        let refusal = |l: &&str| l.starts_with("Failed: ") || l.starts_with("Switchover failed, details: ");
        (o.code, o.stdout.lines().filter(refusal).map(str::to_owned).collect())
    };
    let refused = failures(&live.run_env(env!("CARGO_BIN_EXE_patronictl"), &["reload", "demo", "--force"], "", &[]));
    let expected: Vec<String> = (1..=3)
        .map(|i| format!("Failed: reload for member pg{i}, status code=401, (no auth header received)"))
        .collect();
    assert_eq!(refused, (0, expected));
    let refusals: [&[&str]; 4] = [
        &["reload", "demo", "--force"],
        &["restart", "demo", &replica, "--force"],
        &["switchover", "--candidate", &replica, "--force"],
        &["pause"],
    ];
    for args in refusals {
        let ours = failures(&live.run_env(env!("CARGO_BIN_EXE_patronictl"), args, "", &[]));
        assert_eq!(ours.0, 0, "patronictl {args:?} after a refusal: {ours:?}");
        assert_eq!(ours.1.len(), if args[0] == "reload" { 3 } else { 1 }, "patronictl {args:?}: {ours:?}");
        if let Some(py) = python_patronictl() {
            let python = failures(&live.run_env(&py, args, "", &[]));
            assert_eq!(ours, python, "patronictl {args:?} without credentials: ours vs Python");
        }
    }
    assert_eq!(live.leader().as_deref(), Some(leader.as_str()), "a refused switchover switched nothing");

    // reload and restart through the REST API.
    let out = live.ok(&["reload", "demo", "--force"]);
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("Reload request received for member") || l.starts_with("No changes"))
            .count(),
        3
    );
    let out = live.ok(&["restart", "demo", &replica, "--force"]);
    assert!(out.ends_with(&format!("Success: restart on member {replica}\n")), "{out}");
    // The member key may still say `streaming` from before the restart: wait for the REST API to say so too.
    let node = &live._nodes[replica[2..].parse::<usize>().expect("pgN") - 1];
    patroni_testkit::wait_until(START_TIMEOUT, Duration::from_millis(300), || async {
        node.get("/replica").await.is_ok_and(|(code, _)| code == 200)
    })
    .await
    .expect("the restarted replica is healthy again");
    live.wait_members("healthy after restart", START_TIMEOUT, healthy).await;

    // A switchover really switches, and the history records it.
    let out = live.ok(&["switchover", "--candidate", &replica, "--force"]);
    assert!(out.starts_with("Current cluster topology\n"), "{out}");
    assert!(out.contains(&format!(" Successfully switched over to \"{replica}\"\n")), "{out}");
    live.wait_members("the candidate leads", START_TIMEOUT, |m| {
        healthy(m) && m.iter().any(|x| x["Member"] == replica.as_str() && x["Role"] == "Leader")
    })
    .await;
    // The new leader writes the history key once its promotion is done, which can be a loop after the key moved.
    let last_switch = || {
        let history: Value = serde_json::from_str(&live.ok(&["history", "-f", "json"])).expect("history json");
        history.as_array().and_then(|h| h.last()).cloned().unwrap_or_default()
    };
    let recorded = patroni_testkit::wait_until(START_TIMEOUT, Duration::from_millis(300), || async {
        last_switch()["New Leader"] == replica.as_str()
    });
    assert!(recorded.await.is_ok(), "history never recorded the switchover: {}", last_switch());
    let last = last_switch();
    assert_eq!(last["TL"], 1);
    assert_eq!(last["New Leader"], replica.as_str());
    if let Some(py) = python_patronictl() {
        assert_eq!(live.ctl(&["history"]).stdout, live.run_with(&py, &["history"], "").stdout);
    }

    // An unreachable DCS is a clear error.
    let out = live.run_with(env!("CARGO_BIN_EXE_patronictl"), &["-d", "etcd3://127.0.0.1:1", "list"], "");
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("Error: DCS is not reachable"), "{}", out.stderr);
}
