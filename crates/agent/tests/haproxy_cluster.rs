//! Issue #6, "Done when": a real HAProxy (the Debian package), configured as Patroni's documentation does —
//! `option httpchk OPTIONS /primary` and `OPTIONS /replica` health checks against each member's REST API — in
//! front of a real 3-member cluster (etcd, three `patroni` agents, three PostgreSQL servers) routes writes to the
//! primary and reads to the replicas, before and after a switchover.
//!
//! What it proves:
//! - before: connections through the primary frontend reach the leader's PostgreSQL and writes succeed there;
//!   connections through the replicas frontend reach only the two replicas (in recovery), and a write there fails;
//! - across a switchover, with a client writing through the primary frontend all the time: every acknowledged
//!   write landed on the member holding the leader key around it, none reached the old primary once the new one
//!   took writes, and every acknowledged write is on the new primary afterwards (nothing acknowledged is lost);
//! - after: writes go to the new primary, and the old primary shows up behind the replicas frontend once it
//!   streams again.
//!
//! Skipped, with a message, when `haproxy` is not installed; CI (scripts/test.sh) installs the Debian package.

mod common;

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{name, Cluster, Options, LEADER_KEY, POLL, START_TIMEOUT, WAIT};
use patroni_testkit::{free_port, TestDir, UnprivilegedCommand};
use reqwest::Method;
use serde_json::json;
use tokio_postgres::{NoTls, SimpleQueryMessage};

/// How long HAProxy may take to follow a role change: a few 300 ms check intervals, plus the agents' own loops
/// (a demoted primary must restart as a replica before `/replica` answers 200).
const ROUTE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections sampled through the replicas frontend; roundrobin over two servers reaches both with this many.
const READ_SAMPLES: usize = 6;
/// Writes in a row that must reach the expected primary before routing counts as settled.
const SETTLED_WRITES: usize = 5;
/// Pause between the background writer's writes during the switchover.
const WRITE_EVERY: Duration = Duration::from_millis(100);
/// Upper bound on one client connection plus statement through HAProxy.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLSTATE read_only_sql_transaction: what a write on a hot standby fails with.
const READ_ONLY: &str = "25006";

/// The Debian package installs /usr/sbin/haproxy; the others cover source builds.
fn haproxy_binary() -> Option<PathBuf> {
    ["/usr/sbin/haproxy", "/usr/bin/haproxy", "/usr/local/sbin/haproxy"].iter().map(PathBuf::from).find(|p| p.exists())
}

/// A running HAProxy (foreground, `-db`) with its config and log in a temp dir; killed and reaped on drop, and
/// killed by the kernel if the test's thread dies, so it never outlives the test.
struct HaProxy {
    child: Child,
    log: PathBuf,
    primary_port: u16,
    replicas_port: u16,
    _dir: TestDir,
}

impl HaProxy {
    /// Patroni's documented HAProxy setup, on free loopback ports, with checks every 300 ms so a role change is
    /// followed within about a second.
    fn config(c: &Cluster, primary_port: u16, replicas_port: u16) -> String {
        let servers: String = (0..c.nodes.len())
            .map(|i| {
                format!(
                    "    server {} 127.0.0.1:{} maxconn 100 check port {}\n",
                    name(i),
                    c.pg_port(i),
                    c.node(i).context().api_port
                )
            })
            .collect();
        let checks = "    http-check expect status 200\n    \
                      default-server inter 300ms fall 2 rise 1 on-marked-down shutdown-sessions\n";
        format!(
            "global\n    maxconn 200\n\
             defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    \
             timeout check 1s\n\
             listen primary\n    bind 127.0.0.1:{primary_port}\n    option httpchk OPTIONS /primary\n{checks}{servers}\
             listen replicas\n    bind 127.0.0.1:{replicas_port}\n    balance roundrobin\n    \
             option httpchk OPTIONS /replica\n{checks}{servers}"
        )
    }

    async fn start(binary: &Path, c: &Cluster) -> HaProxy {
        let dir = TestDir::with_prefix("haproxy-").expect("temp dir for haproxy");
        let (primary_port, replicas_port) = (free_port(), free_port());
        let cfg = dir
            .write_file("haproxy.cfg", Self::config(c, primary_port, replicas_port), 0o644)
            .expect("write haproxy.cfg");
        // A config HAProxy rejects should fail with HAProxy's own words, not as a routing timeout.
        let check = Command::new(binary).arg("-c").arg("-f").arg(&cfg).output().expect("run haproxy -c");
        assert!(
            check.status.success(),
            "haproxy -c rejects the config:\n{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = dir.join("haproxy.log");
        let out = File::create(&log).expect("create haproxy.log");
        let err = out.try_clone().expect("clone haproxy.log handle");
        let child = Command::new(binary)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .die_with_parent()
            .spawn()
            .expect("start haproxy");
        let mut ha = HaProxy { child, log, primary_port, replicas_port, _dir: dir };
        ha.wait_listening().await;
        ha
    }

    /// Bounded wait until both frontends accept TCP connections (HAProxy has parsed the config and bound).
    async fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("haproxy exited at startup with {status}:\n{}", self.log_text());
            }
            let primary = tokio::net::TcpStream::connect(("127.0.0.1", self.primary_port)).await;
            let replicas = tokio::net::TcpStream::connect(("127.0.0.1", self.replicas_port)).await;
            if primary.is_ok() && replicas.is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "haproxy does not listen within 10 s:\n{}", self.log_text());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no haproxy log: {e})"))
    }

    fn dump(&self) {
        let log = self.log_text();
        let lines: Vec<&str> = log.lines().collect();
        eprintln!("==== haproxy log (tail) ====\n{}", lines[lines.len().saturating_sub(80)..].join("\n"));
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `sql` (simple protocol) as the superuser through whatever listens on `port`; rows as text. Errors from
/// PostgreSQL carry their SQLSTATE first (`25006: cannot execute INSERT in a read-only transaction`).
async fn query(port: u16, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let connstr = format!("host=127.0.0.1 port={port} user=postgres password=secret dbname=postgres connect_timeout=3");
    let describe = |e: tokio_postgres::Error| match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    };
    let run = async {
        let (client, connection) = tokio_postgres::connect(&connstr, NoTls).await.map_err(describe)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let messages = client.simple_query(sql).await.map_err(describe)?;
        Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some((0..row.len()).map(|i| row.get(i).map(str::to_string)).collect()),
                _ => None,
            })
            .collect())
    };
    tokio::time::timeout(CLIENT_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| Err(format!("timed out after {CLIENT_TIMEOUT:?}")))
}

/// The PostgreSQL a new connection through `port` reaches: its listen port and whether it is in recovery.
async fn reach(port: u16) -> Result<(u16, bool), String> {
    let rows = query(port, "SELECT inet_server_port(), pg_is_in_recovery()").await?;
    match rows.as_slice() {
        [row] => {
            let server = row[0].as_deref().and_then(|p| p.parse().ok()).ok_or_else(|| format!("bad row {row:?}"))?;
            Ok((server, row[1].as_deref() == Some("t")))
        }
        _ => Err(format!("unexpected rows {rows:?}")),
    }
}

/// Inserts `value` through `port`; on success, the port of the PostgreSQL that committed it.
async fn write(port: u16, value: &str) -> Result<u16, String> {
    let sql = format!("INSERT INTO haproxy_writes VALUES ('{value}', inet_server_port()) RETURNING port");
    let rows = query(port, &sql).await?;
    rows.first()
        .and_then(|row| row[0].as_deref())
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("bad RETURNING rows {rows:?}"))
}

/// Bounded wait until `SETTLED_WRITES` writes in a row through the primary frontend commit on `member`.
async fn wait_writes_to(c: &Cluster, ha: &HaProxy, member: usize, label: &str) {
    let want = c.pg_port(member);
    let deadline = Instant::now() + ROUTE_TIMEOUT;
    let (mut in_a_row, mut n, mut last) = (0, 0, String::new());
    while in_a_row < SETTLED_WRITES {
        n += 1;
        match write(ha.primary_port, &format!("{label}-{n}")).await {
            Ok(port) if port == want => in_a_row += 1,
            other => {
                in_a_row = 0;
                last = format!("{other:?}");
            }
        }
        if Instant::now() >= deadline {
            c.dump("primary frontend does not route to the primary");
            panic!(
                "writes through haproxy do not settle on {} (port {want}) within {ROUTE_TIMEOUT:?}; last: {last}",
                name(member)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Connections through the replicas frontend: the set of ports reached, or why one of them was not acceptable.
async fn sample_reads(ha: &HaProxy) -> Result<BTreeSet<u16>, String> {
    let mut ports = BTreeSet::new();
    for _ in 0..READ_SAMPLES {
        let (port, in_recovery) = reach(ha.replicas_port).await?;
        if !in_recovery {
            return Err(format!("port {port} is not in recovery"));
        }
        ports.insert(port);
    }
    Ok(ports)
}

/// Bounded wait until the replicas frontend reaches exactly `members`, all in recovery; then one more sample
/// must agree (a settled frontend gives no stray answer).
async fn wait_reads_from(c: &Cluster, ha: &HaProxy, members: &[usize]) {
    let want: BTreeSet<u16> = members.iter().map(|&m| c.pg_port(m)).collect();
    let deadline = Instant::now() + ROUTE_TIMEOUT;
    loop {
        let got = sample_reads(ha).await;
        if got.as_ref() == Ok(&want) {
            break;
        }
        if Instant::now() >= deadline {
            c.dump("replicas frontend does not route to the replicas");
            panic!("reads through haproxy reach {got:?}, want ports {want:?} within {ROUTE_TIMEOUT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(sample_reads(ha).await, Ok(want), "a settled replicas frontend reaches only the replicas");
}

/// A write through the replicas frontend reaches a hot standby and fails as read-only.
async fn assert_reads_are_read_only(ha: &HaProxy, label: &str) {
    let got = write(ha.replicas_port, label).await;
    assert!(
        matches!(&got, Err(e) if e.starts_with(READ_ONLY)),
        "a write through the replicas frontend must fail read-only, got {got:?}"
    );
}

/// The leader key holder, retried so that one slow etcd answer does not read as "no leader".
async fn leader(c: &Cluster) -> Option<String> {
    for _ in 0..3 {
        if let Ok(value) = c.etcd.get(LEADER_KEY).await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// One write of the background writer: what it wrote, where it committed (or why not), and the leader key read
/// just before and just after.
#[derive(Debug)]
struct Attempt {
    value: String,
    result: Result<u16, String>,
    leader_before: Option<String>,
    leader_after: Option<String>,
    at: Instant,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_routes_writes_to_the_primary_before_and_after_a_switchover() {
    let Some(binary) = haproxy_binary() else {
        eprintln!("SKIPPED: haproxy is not installed (apt-get install haproxy); this test needs a real HAProxy");
        return;
    };
    let t0 = Instant::now();
    let c = Cluster::start(Options::default()).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let replicas: Vec<usize> = (0..3).filter(|i| *i != p).collect();
    c.sql(p, "CREATE TABLE haproxy_writes(v text PRIMARY KEY, port int)").await.expect("create the writes table");
    let ha = HaProxy::start(&binary, &c).await;
    eprintln!(
        "cluster up in {:?}, primary {}; haproxy on {} / {}",
        t0.elapsed(),
        name(p),
        ha.primary_port,
        ha.replicas_port
    );

    // Before: HAProxy marks servers UP until their first failed checks, so wait for it to settle, then demand it.
    wait_writes_to(&c, &ha, p, "before").await;
    wait_reads_from(&c, &ha, &replicas).await;
    assert_reads_are_read_only(&ha, "before-on-a-replica").await;
    eprintln!("routing before the switchover settled at {:?}", t0.elapsed());

    // Switchover to a named replica while a client keeps writing through the primary frontend.
    let (x, other) = (replicas[0], replicas[1]);
    let (old_port, new_port) = (c.pg_port(p), c.pg_port(x));
    let attempts: Mutex<Vec<Attempt>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let successes_on =
        |port: u16| attempts.lock().expect("attempts lock").iter().filter(|a| a.result.as_ref() == Ok(&port)).count();
    let writer = async {
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let value = format!("during-{n}");
            let leader_before = leader(&c).await;
            let result = write(ha.primary_port, &value).await;
            let leader_after = leader(&c).await;
            let at = Instant::now();
            attempts.lock().expect("attempts lock").push(Attempt { value, result, leader_before, leader_after, at });
            tokio::time::sleep(WRITE_EVERY).await;
        }
    };
    let switchover = async {
        // The writer must have committed on the old primary first, so the test sees both sides of the change.
        let deadline = Instant::now() + ROUTE_TIMEOUT;
        while successes_on(old_port) == 0 {
            assert!(Instant::now() < deadline, "the writer never committed on the old primary");
            tokio::time::sleep(WRITE_EVERY).await;
        }
        let asked = Instant::now();
        let body = json!({"leader": name(p), "candidate": name(x)});
        let (code, text) = c.node(p).request(Method::POST, "/switchover", Some(&body)).await.expect("POST /switchover");
        if code != 200 {
            c.dump("switchover refused");
        }
        assert_eq!(code, 200, "switchover answered {code}: {text}");
        eprintln!("POST /switchover answered after {:?}: {}", asked.elapsed(), text.trim());
        assert_eq!(c.wait_primary(WAIT, &[p]).await, x, "the named candidate is the primary");
        wait_writes_to(&c, &ha, x, "after").await;
        // And the writer itself has committed on the new primary a few times.
        let deadline = Instant::now() + ROUTE_TIMEOUT;
        while successes_on(new_port) < 3 {
            assert!(Instant::now() < deadline, "the writer never committed on the new primary");
            tokio::time::sleep(WRITE_EVERY).await;
        }
        stop.store(true, Ordering::SeqCst);
        asked
    };
    let ((), asked) = tokio::join!(writer, switchover);
    let attempts = attempts.into_inner().expect("attempts lock");

    // Every acknowledged write landed on a primary that held the leader key around it: HAProxy never let a write
    // through to a member that was not (or no longer) the leader, and it landed on one of the two primaries.
    let port_of =
        |leader: &Option<String>| (0..3).find(|&i| leader.as_deref() == Some(name(i).as_str())).map(|i| c.pg_port(i));
    let mut first_on_new = None;
    for (i, a) in attempts.iter().enumerate() {
        let Ok(port) = a.result else { continue };
        assert!(port == old_port || port == new_port, "write {a:?} landed on neither primary");
        assert!(
            Some(port) == port_of(&a.leader_before) || Some(port) == port_of(&a.leader_after),
            "write {a:?} landed on port {port}, which did not hold the leader key around it"
        );
        if port == new_port && first_on_new.is_none() {
            first_on_new = Some(i);
        }
        if let Some(first) = first_on_new {
            assert_ne!(port, old_port, "write {a:?} reached the old primary after write #{first} reached the new one");
        }
    }
    // Not asserted, but worth seeing in the output: how long no write was accepted, relative to the POST.
    let signed = |t: Instant| {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        if t >= asked {
            ms(t - asked)
        } else {
            -ms(asked - t)
        }
    };
    let last_old = attempts.iter().filter(|a| a.result.as_ref() == Ok(&old_port)).map(|a| a.at).next_back();
    let first_new = attempts.iter().find(|a| a.result.as_ref() == Ok(&new_port)).map(|a| a.at);
    let count = |port: u16| attempts.iter().filter(|a| a.result.as_ref() == Ok(&port)).count();
    eprintln!(
        "writer: {} attempts, {} committed on {}, {} on {}, {} failed; last on the old primary at {:?} ms, \
         first on the new one at {:?} ms (relative to the POST)",
        attempts.len(),
        count(old_port),
        name(p),
        count(new_port),
        name(x),
        attempts.iter().filter(|a| a.result.is_err()).count(),
        last_old.map(signed),
        first_new.map(signed),
    );
    for a in attempts.iter().filter(|a| a.result.is_err()) {
        eprintln!("  failed at {} ms: {:?}", signed(a.at), a.result);
    }

    // After: the old primary streams from the new one and HAProxy sends reads to it; writes still go to x.
    c.wait_streaming(&[p, other], x, START_TIMEOUT).await;
    wait_reads_from(&c, &ha, &[p, other]).await;
    assert_reads_are_read_only(&ha, "after-on-a-replica").await;
    for i in 0..SETTLED_WRITES {
        assert_eq!(write(ha.primary_port, &format!("final-{i}")).await, Ok(new_port), "writes go to {}", name(x));
    }

    // Nothing acknowledged was lost: every write that committed (on either primary) is on the new primary.
    let rows = c.sql(x, "SELECT v FROM haproxy_writes").await.expect("read the writes on the new primary");
    let stored: BTreeSet<String> = rows.into_iter().filter_map(|r| r.into_iter().next().flatten()).collect();
    let lost: Vec<&str> =
        attempts.iter().filter(|a| a.result.is_ok() && !stored.contains(&a.value)).map(|a| a.value.as_str()).collect();
    assert!(lost.is_empty(), "acknowledged writes missing on the new primary: {lost:?}");
    eprintln!("done in {:?}", t0.elapsed());
}
