//! Standby clusters (#18): a primary cluster and a standby cluster with its own scope on the same etcd. The
//! standby cluster's leader follows the remote primary as the standby leader, its other member cascades from it,
//! a switchover and a failover move the role inside it, and nothing there accepts writes until `standby_cluster`
//! is removed from its configuration, which promotes it on purpose. A standby cluster restored from a base backup
//! replays the primary cluster's WAL archive alone (`restore_command`, no host), and `patronictl promote-cluster`
//! / `demote-cluster` switch a standby cluster to a primary cluster and back.

mod common;

use common::{name, Cluster, Options, POLL, START_TIMEOUT, WAIT};
use nix::sys::signal::Signal;
use patroni_testkit::wait_until;
use serde_json::json;

const STANDBY_SCOPE: &str = "standby";
const STANDBY_LEADER_KEY: &str = "/service/standby/leader";

/// The standby cluster's members follow the remote `host:port` (the primary cluster's only member).
fn standby_options(c: &Cluster) -> Options {
    Options {
        scope: Some(STANDBY_SCOPE.into()),
        dcs_extra: vec![format!("standby_cluster: {{host: 127.0.0.1, port: {}}}", c.pg_port(0))],
        ..Options::default()
    }
}

/// Waits until `member` holds the standby cluster's key and answers `GET /standby-leader` 200 (and `/primary`
/// 503).
async fn wait_standby_leader(c: &Cluster, member: usize) {
    let ok = wait_until(START_TIMEOUT, POLL, || async {
        c.etcd.get(STANDBY_LEADER_KEY).await.ok().flatten().as_deref() == Some(name(member).as_str())
            && c.status(member, "/standby-leader").await == Some(200)
            && c.status(member, "/primary").await == Some(503)
    })
    .await;
    if ok.is_err() {
        c.dump_dcs().await;
        c.dump("no standby leader");
        panic!("{} did not become the standby leader", name(member));
    }
}

/// The standby cluster's key holder, once there is one.
async fn standby_leader(c: &Cluster) -> usize {
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    loop {
        if let Some(leader) = c.etcd.get(STANDBY_LEADER_KEY).await.ok().flatten() {
            if let Some(i) = (1..c.nodes.len()).find(|&i| name(i) == leader) {
                return i;
            }
        }
        if std::time::Instant::now() >= deadline {
            c.dump("no standby leader key");
            panic!("the standby cluster has no leader key");
        }
        tokio::time::sleep(POLL).await;
    }
}

fn assert_read_only(results: &[(usize, bool)]) {
    for (i, writable) in results {
        assert!(!writable, "{} accepts writes in a standby cluster", name(*i));
    }
}

async fn read_only(c: &Cluster, members: &[usize]) -> Vec<(usize, bool)> {
    let mut out = Vec::new();
    for &i in members {
        out.push((i, c.writable(i).await));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_cluster_follows_moves_its_leader_inside_and_is_promoted_on_purpose() {
    let mut c = Cluster::start(Options { members: 1, ..Options::default() }).await;
    let o = standby_options(&c);
    for i in 1..3 {
        let agent = c.spawn(i, &o);
        c.nodes.push(agent);
    }
    // Bootstrap: the winner of the initialize race clones the remote primary; the other clones from it.
    let first = standby_leader(&c).await;
    let other = if first == 1 { 2 } else { 1 };
    wait_standby_leader(&c, first).await;
    c.wait_streaming(&[other], first, START_TIMEOUT).await;
    c.insert(0, "a").await;
    c.wait_row(first, "a", WAIT).await;
    c.wait_row(other, "a", WAIT).await;
    assert_read_only(&read_only(&c, &[first, other]).await);
    let (_, member) = c.node(first).get("/patroni").await.expect("GET /patroni");
    assert!(
        member.contains("\"role\": \"standby_leader\"") || member.contains("\"role\":\"standby_leader\""),
        "{member}"
    );

    // Switchover inside the standby cluster: the role moves, the former standby leader follows the new one.
    let body = json!({"leader": name(first), "candidate": name(other)});
    let (code, text) =
        c.node(first).request(reqwest::Method::POST, "/switchover", Some(&body)).await.expect("POST /switchover");
    assert_eq!(code, 200, "switchover: {text}");
    wait_standby_leader(&c, other).await;
    c.wait_streaming(&[first], other, START_TIMEOUT).await;
    c.insert(0, "b").await;
    c.wait_row(other, "b", WAIT).await;
    c.wait_row(first, "b", WAIT).await;
    assert_read_only(&read_only(&c, &[first, other]).await);

    // Failover: the standby leader dies with its agent; the survivor takes the role and follows the remote.
    c.nodes[other].kill(Signal::SIGKILL).expect("kill agent");
    c.pg_stop_immediate(other);
    wait_standby_leader(&c, first).await;
    c.insert(0, "c").await;
    c.wait_row(first, "c", WAIT).await;
    assert_read_only(&read_only(&c, &[first]).await);

    // Promotion on purpose: removing standby_cluster makes the standby leader a primary that accepts writes.
    let patch = json!({"standby_cluster": null});
    let (code, text) =
        c.node(first).request(reqwest::Method::PATCH, "/config", Some(&patch)).await.expect("PATCH /config");
    assert_eq!(code, 200, "PATCH /config: {text}");
    let ok =
        wait_until(WAIT, POLL, || async { c.status(first, "/primary").await == Some(200) && c.writable(first).await })
            .await;
    if ok.is_err() {
        c.dump("not promoted");
        panic!("{} was not promoted after standby_cluster was removed", name(first));
    }
    c.insert(first, "written-while-promoted").await;

    // Demotion: standby_cluster added back turns this primary into the standby leader of the remote primary again,
    // rewound onto its history (the write made while promoted is gone).
    let (code, text) = c
        .node(first)
        .request(
            reqwest::Method::PATCH,
            "/config",
            Some(&json!({"standby_cluster": {"host": "127.0.0.1", "port": c.pg_port(0)}})),
        )
        .await
        .expect("PATCH /config");
    assert_eq!(code, 200, "PATCH /config: {text}");
    wait_standby_leader(&c, first).await;
    c.insert(0, "d").await;
    c.wait_row(first, "d", WAIT).await;
    let rows = c.sql(first, "SELECT count(*) FROM t WHERE v = 'written-while-promoted'").await.expect("count");
    assert_eq!(rows[0][0].as_deref(), Some("0"), "the demoted cluster kept a write the remote never had");
    assert_read_only(&read_only(&c, &[first]).await);

    // Restarted while the DCS is down, the standby leader stays in recovery: standby_cluster comes from
    // patroni.dynamic.json.
    c.nodes[first].kill(Signal::SIGKILL).expect("kill agent");
    c.etcd.stop().await.expect("etcd stops");
    c.nodes[first].restart().expect("agent restarts");
    c.nodes[first].wait_for_log("DCS is not accessible", WAIT).await.expect("agent runs without the DCS");
    let rows = c.sql(first, "SELECT pg_is_in_recovery()").await.expect("in recovery?");
    assert_eq!(rows[0][0].as_deref(), Some("t"), "{} left recovery without the DCS", name(first));
    assert_read_only(&read_only(&c, &[first]).await);
    c.etcd.start_again().await.expect("etcd starts again");
}

/// Prints the standby cluster's keys (the kit's `dump_dcs` shows the primary cluster's).
async fn dump_standby_dcs(c: &Cluster) {
    c.dump_dcs().await;
    if let Ok(keys) = c.etcd.get_prefix(&format!("/service/{STANDBY_SCOPE}/")).await {
        eprintln!("==== DCS ({STANDBY_SCOPE}) ====");
        for (k, v) in keys {
            eprintln!("{k} = {v}");
        }
    }
}

/// The first column of the first row `sql` returns on member `i`.
async fn scalar(c: &Cluster, i: usize, sql: &str) -> Option<String> {
    c.sql(i, sql).await.ok().and_then(|rows| rows.into_iter().next()).and_then(|row| row.into_iter().next()).flatten()
}

/// Turns WAL archiving on in the primary cluster the way an operator would: the parameters through PATCH /config
/// (archive_mode only takes effect on restart, hence POST /restart once the agent has written it).
async fn enable_archiving(c: &Cluster, primary: usize, archive: &std::path::Path) {
    let command = format!("test ! -f {dir}/%f && cp %p {dir}/%f", dir = archive.display());
    let patch = json!({"postgresql": {"parameters": {"archive_mode": "on", "archive_command": command}}});
    let (code, text) =
        c.node(primary).request(reqwest::Method::PATCH, "/config", Some(&patch)).await.expect("PATCH /config");
    assert_eq!(code, 200, "PATCH /config: {text}");
    let pending = "SELECT pending_restart FROM pg_settings WHERE name = 'archive_mode'";
    if wait_until(WAIT, POLL, || async { scalar(c, primary, pending).await.as_deref() == Some("t") }).await.is_err() {
        c.dump("archive_mode not pending");
        panic!("archive_mode never became pending on {}", name(primary));
    }
    let (code, text) =
        c.node(primary).request(reqwest::Method::POST, "/restart", Some(&json!({}))).await.expect("POST /restart");
    assert_eq!(code, 200, "POST /restart: {text}");
    let ok = wait_until(WAIT, POLL, || async {
        scalar(c, primary, "SHOW archive_mode").await.as_deref() == Some("on")
            && scalar(c, primary, "SHOW archive_command").await.as_deref() == Some(command.as_str())
            && c.writable(primary).await
    })
    .await;
    if ok.is_err() {
        c.dump("archiving not on");
        panic!("{} does not archive after the restart", name(primary));
    }
}

/// A base backup of member `i` taken with pg_basebackup into `target`, as the unprivileged user (the standby
/// leader's restore copies it as that user).
async fn base_backup(c: &Cluster, i: usize, target: &std::path::Path) {
    let bin = patroni_testkit::pg_bin_dir().expect("PostgreSQL binaries");
    let mut cmd = tokio::process::Command::new(bin.join("pg_basebackup"));
    cmd.args(["-h", "127.0.0.1", "-U", "replicator", "-X", "stream", "-c", "fast", "-p"])
        .arg(c.pg_port(i).to_string())
        .arg("-D")
        .arg(target)
        .env("PGPASSWORD", "rep-pass")
        .kill_on_drop(true);
    patroni_testkit::UnprivilegedCommand::unprivileged(&mut cmd);
    let out = tokio::time::timeout(START_TIMEOUT, cmd.output()).await.expect("pg_basebackup in time").expect("runs");
    assert!(out.status.success(), "pg_basebackup: {}", String::from_utf8_lossy(&out.stderr));
}

/// A standby cluster that never connects to the remote primary: its leader is built by a custom replica method
/// (`no_leader`) restoring a base backup taken beforehand, then replays only what the primary cluster archives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_command_only_standby_cluster_catches_up_from_the_archive() {
    let mut c = Cluster::start(Options { members: 1, ..Options::default() }).await;
    let dir = patroni_testkit::TestDir::with_prefix("standby-archive-").expect("dir");
    let archive = dir.create_dir("archive", 0o755).expect("archive dir");
    enable_archiving(&c, 0, &archive).await;
    c.insert(0, "before-backup").await;
    let backup = dir.join("base");
    base_backup(&c, 0, &backup).await;

    // Patroni passes --datadir=...; the restore copies the backup there, as a wal-g/pgBackRest restore would.
    let script = dir
        .write_file(
            "restore-backup.sh",
            format!(
                "#!/bin/sh\nset -e\nfor a in \"$@\"; do case \"$a\" in --datadir=*) d=\"${{a#--datadir=}}\";; esac; \
                 done\nmkdir -p \"$d\"\ncp -a {backup}/. \"$d\"/\nchmod 700 \"$d\"\n",
                backup = backup.display()
            ),
            0o755,
        )
        .expect("restore script");
    let restore_command = format!("cp {}/%f %p", archive.display());
    let o = Options {
        members: 1,
        scope: Some(STANDBY_SCOPE.into()),
        dcs_extra: vec![format!(
            "standby_cluster: {{restore_command: '{restore_command}', create_replica_methods: [restore_backup]}}"
        )],
        // Only named by standby_cluster: Patroni reads a method's section under postgresql whatever lists it.
        postgresql_extra: vec![format!("restore_backup: {{command: {}, no_leader: true}}", script.display())],
        ..Options::default()
    };
    let agent = c.spawn(1, &o);
    c.nodes.push(agent);
    // An agent whose bootstrap fails exits: say so at once rather than at the timeout.
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    while c.etcd.get(STANDBY_LEADER_KEY).await.ok().flatten().as_deref() != Some(name(1).as_str()) {
        if !c.nodes[1].is_running() || std::time::Instant::now() >= deadline {
            dump_standby_dcs(&c).await;
            c.dump("standby cluster not bootstrapped");
            panic!("{} did not bootstrap the standby cluster from the backup", name(1));
        }
        tokio::time::sleep(POLL).await;
    }
    wait_standby_leader(&c, 1).await;
    c.wait_row(1, "before-backup", WAIT).await;

    // Archive only: no WAL receiver and no primary_conninfo, restore_command as configured.
    assert_eq!(scalar(&c, 1, "SELECT count(*) FROM pg_stat_wal_receiver").await.as_deref(), Some("0"));
    assert_eq!(scalar(&c, 1, "SHOW primary_conninfo").await.as_deref(), Some(""));
    assert_eq!(scalar(&c, 1, "SHOW restore_command").await.as_deref(), Some(restore_command.as_str()));

    // Rows reach the standby leader once the segment holding them is archived (pg_switch_wal closes it).
    for row in ["archived-1", "archived-2"] {
        c.insert(0, row).await;
        c.sql(0, "SELECT pg_switch_wal()").await.expect("pg_switch_wal");
        c.wait_row(1, row, WAIT).await;
        assert_eq!(c.status(1, "/standby-leader").await, Some(200));
        assert_read_only(&read_only(&c, &[1]).await);
    }
    assert_eq!(scalar(&c, 1, "SELECT count(*) FROM pg_stat_wal_receiver").await.as_deref(), Some("0"));
}

/// Our patronictl, built next to `patroni` (another package's binary has no `CARGO_BIN_EXE_` variable here).
fn patronictl() -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_BIN_EXE_patroni")).with_file_name("patronictl");
    assert!(path.is_file(), "no patronictl at {}: build it with `cargo build -p patroni-ctl`", path.display());
    path
}

/// Runs patronictl with member `i`'s configuration; (exit code, stdout, stderr). Bounded: demote-cluster and
/// promote-cluster watch the cluster until the role changed.
async fn ctl(c: &Cluster, i: usize, args: &[&str]) -> (i32, String, String) {
    let config = c.node(i).config_path().expect("member config");
    let run = tokio::process::Command::new(patronictl()).arg("-c").arg(config).args(args).kill_on_drop(true).output();
    let out = match tokio::time::timeout(START_TIMEOUT, run).await {
        Ok(out) => out.expect("patronictl runs"),
        Err(_) => {
            dump_standby_dcs(c).await;
            c.dump("patronictl hangs");
            panic!("patronictl {args:?} did not finish within {START_TIMEOUT:?}");
        }
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// What follows the `YYYY-MM-DD HH:MM:SS ` of a watch line of Python's change_cluster_role.
fn after_timestamp(line: &str) -> Option<&str> {
    let (stamp, rest) = line.split_at_checked(20)?;
    let stamp_ok = stamp.chars().enumerate().all(|(k, ch)| match k {
        4 | 7 => ch == '-',
        10 | 19 => ch == ' ',
        13 | 16 => ch == ':',
        _ => ch.is_ascii_digit(),
    });
    stamp_ok.then_some(rest)
}

/// The Role column of `member` in the last table patronictl printed.
fn role_in_last_table(out: &str, member: &str) -> Option<String> {
    out.lines().rev().find_map(|l| {
        let cells: Vec<&str> = l.split('|').map(str::trim).collect();
        (cells.len() > 3 && cells[1] == member).then(|| cells[3].to_string())
    })
}

/// Asserts what Python's patronictl prints for a successful change of cluster role: the topology, watch lines
/// (`<time> cluster is unlocked: False, leader role: …, leader state: …`), `<time> cluster is successfully
/// <action>`, the topology again with `leader` in `role`.
fn assert_role_changed(c: &Cluster, (code, out, err): &(i32, String, String), action: &str, leader: usize, role: &str) {
    let success = format!("cluster is successfully {action}");
    let watched: Vec<&str> = out.lines().filter_map(after_timestamp).collect();
    let ok = *code == 0
        && out.lines().next() == Some("Current cluster topology")
        && out.lines().skip(1).all(|l| l.starts_with(['+', '|']) || after_timestamp(l).is_some())
        && watched.last() == Some(&success.as_str())
        && watched[..watched.len() - 1].iter().all(|l| {
            l.starts_with("cluster is unlocked: ") && l.contains(", leader role: ") && l.contains(", leader state: ")
        })
        && role_in_last_table(out, &name(leader)).as_deref() == Some(role);
    if !ok {
        c.dump(&format!("patronictl {action}"));
        panic!("patronictl {action}: exit {code}\n{out}{err}");
    }
}

/// `patronictl promote-cluster` makes a standby cluster (a leader and a cascading replica) a primary cluster that
/// accepts writes, and `patronictl demote-cluster --host --port` makes it follow the remote primary again, rewound
/// onto the remote's history; both print what Python's patronictl prints and refuse a cluster already in the role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patronictl_promote_cluster_and_demote_cluster() {
    let mut c = Cluster::start(Options { members: 1, ..Options::default() }).await;
    let o = standby_options(&c);
    for i in 1..3 {
        let agent = c.spawn(i, &o);
        c.nodes.push(agent);
    }
    let leader = standby_leader(&c).await;
    let other = if leader == 1 { 2 } else { 1 };
    wait_standby_leader(&c, leader).await;
    c.wait_streaming(&[other], leader, START_TIMEOUT).await;
    c.insert(0, "a").await;
    c.wait_row(leader, "a", WAIT).await;
    let remote_port = c.pg_port(0).to_string();
    let demote = ["demote-cluster", STANDBY_SCOPE, "--force", "--host", "127.0.0.1", "--port", remote_port.as_str()];

    let refused = ctl(&c, other, &demote).await;
    assert_eq!(refused, (1, String::new(), "Error: Cluster is already in the required state\n".into()));
    let refused = ctl(&c, other, &["demote-cluster", STANDBY_SCOPE, "--force"]).await;
    assert_eq!(
        refused,
        (1, String::new(), "Error: At least --host, --port or --restore-command should be specified\n".into())
    );

    let promoted = ctl(&c, other, &["promote-cluster", STANDBY_SCOPE, "--force"]).await;
    assert_role_changed(&c, &promoted, "promoted", leader, "Leader");
    assert_eq!(c.status(leader, "/primary").await, Some(200));
    assert_eq!(c.status(leader, "/standby-leader").await, Some(503));
    assert!(c.writable(leader).await, "{} refuses writes after promote-cluster", name(leader));
    c.wait_streaming(&[other], leader, START_TIMEOUT).await;
    c.insert(leader, "written-while-promoted").await;
    c.wait_row(other, "written-while-promoted", WAIT).await;
    let refused = ctl(&c, other, &["promote-cluster", STANDBY_SCOPE, "--force"]).await;
    assert_eq!(refused, (1, String::new(), "Error: Cluster is already in the required state\n".into()));

    let demoted = ctl(&c, other, &demote).await;
    assert_role_changed(&c, &demoted, "demoted", leader, "Standby Leader");
    wait_standby_leader(&c, leader).await;
    // A row from the remote primary arrives once the standby leader was rewound onto the remote's history.
    c.insert(0, "b").await;
    c.wait_row(leader, "b", WAIT).await;
    let promoted_rows = "SELECT count(*) FROM t WHERE v = 'written-while-promoted'";
    assert_eq!(scalar(&c, leader, promoted_rows).await.as_deref(), Some("0"), "the remote never had that write");

    // The cascading replica replayed the promoted timeline its leader was rewound off. As in Patroni, which checks
    // for a rewind only against a primary, it stays there until reinitialized from the standby leader.
    let (code, out, err) = ctl(&c, other, &["reinit", STANDBY_SCOPE, &name(other), "--force", "--wait"]).await;
    let done = [
        format!("Success: reinitialize for member {}", name(other)),
        format!("Waiting for reinitialize to complete on: {}", name(other)),
        format!("Reinitialize is completed on: {}", name(other)),
    ];
    assert!(code == 0 && done.iter().all(|l| out.lines().any(|o| o == l)), "reinit: exit {code}\n{out}{err}");
    c.wait_streaming(&[other], leader, START_TIMEOUT).await;
    c.wait_row(other, "b", WAIT).await;
    assert_eq!(scalar(&c, other, promoted_rows).await.as_deref(), Some("0"), "the remote never had that write");
    assert_eq!(c.status(leader, "/standby-leader").await, Some(200));
    assert_eq!(c.status(leader, "/primary").await, Some(503));
    assert_read_only(&read_only(&c, &[leader, other]).await);
}
