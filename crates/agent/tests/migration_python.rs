//! Issue #22: a 3-member cluster migrates from Python Patroni 4.1.5 to patroni-rs member by member, and back,
//! under a steady write load, on etcd v3 — the promise of MIGRATING.md, shown on a cluster that keeps serving.
//!
//! Forward (Python → Rust): a replica is switched (SIGTERM to Python's agent, ours started with the same
//! `patroni.yml`); a switchover from the Python leader to that Rust member; the second replica switched; a
//! switchover from the Rust leader back to a Python member; the Python leader's node dies (agent SIGKILLed,
//! PostgreSQL stopped immediately) and a Rust member takes over; ours then starts on the dead primary's data
//! directory and rejoins it.
//! Reverse (Rust → Python): both Rust replicas switched to Python; the Rust leader's node dies and a Python member
//! takes over; Python then starts on our dead primary's data directory and rejoins it.
//!
//! Checked throughout: every acknowledged write is on every member at the end (synchronous mode, so a failover
//! must not lose one), no sample ever saw two members out of recovery, and after every step both `patronictl`s
//! print the same `list` and `topology` of the mixed cluster (plus `history` after the failovers).
//!
//! Runs when `PYTHON_PATRONI` and `PYTHON_PATRONICTL` are set (scripts/test.sh installs Python Patroni and sets
//! them) and our `patronictl` is built beside `patroni` (`cargo build --bins`); skipped with a message otherwise.

mod mixed;

use std::collections::BTreeSet;
use std::time::Duration;

use mixed::load::{query_column, PrimaryWatch, Writer};
use mixed::{name, Binaries, Impl, MixedCluster, WAIT};

/// Acknowledged writes that must follow a step before the next one: the cluster takes writes again.
const PROGRESS: usize = 20;

/// Both patronictls agree on the cluster; the writer holds still meanwhile so positions settle.
async fn compare(c: &MixedCluster, w: &Writer, what: &str, history: bool) {
    let _paused = w.pause().await;
    c.same_output(&["list"], what).await;
    c.same_output(&["topology"], what).await;
    if history {
        c.same_output(&["history"], what).await;
    }
}

/// Waits for a healthy cluster with writes flowing, then compares both tools' views; returns the leader.
async fn settle(c: &MixedCluster, w: &Writer, what: &str, history: bool) -> usize {
    let leader = c.wait_healthy(what).await;
    w.wait_progress(PROGRESS, WAIT, what).await;
    compare(c, w, what, history).await;
    c.step(&format!("{what}: healthy, leader {}, both patronictls agree", name(leader)));
    leader
}

fn others(leader: usize) -> [usize; 2] {
    let o: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    [o[0], o[1]]
}

/// `patronictl switchover` to `candidate`, run with the other implementation's patronictl than the leader's
/// (the leader's REST API answers it), and the wait for the candidate to lead a healthy cluster.
async fn switchover(c: &MixedCluster, w: &Writer, leader: usize, candidate: usize) -> usize {
    let tool = match c.members[leader].runs {
        Impl::Python => Impl::Rust,
        Impl::Rust => Impl::Python,
    };
    c.step(&format!("switchover {} -> {} with {tool:?}'s patronictl", name(leader), name(candidate)));
    let (code, out, err) =
        c.ctl(tool, &["switchover", "--leader", &name(leader), "--candidate", &name(candidate), "--force"]);
    assert_eq!(code, 0, "switchover: {out}{err}");
    assert!(out.contains(&format!("Successfully switched over to \"{}\"", name(candidate))), "switchover: {out}{err}");
    let now = c.wait_leader_among(&[candidate], "switchover").await;
    settle(c, w, &format!("after the switchover to {}", name(candidate)), true).await;
    now
}

/// Node death of the leader; one of `heirs` (the other implementation's members) must take over; then the dead
/// member starts again as `rejoin_as` on its old data directory.
async fn leader_dies(c: &mut MixedCluster, w: &Writer, leader: usize, rejoin_as: Impl) -> usize {
    let heirs = others(leader);
    c.step(&format!("node death of leader {} ({:?})", name(leader), c.members[leader].runs));
    c.kill(leader);
    let new = c.wait_leader_among(&heirs, "failover").await;
    c.step(&format!("{} ({:?}) took over", name(new), c.members[new].runs));
    w.wait_progress(PROGRESS, WAIT, "writes on the new leader").await;
    c.start_as(leader, rejoin_as);
    settle(c, w, &format!("{} rejoined as {rejoin_as:?}", name(leader)), true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_to_rust_and_back_member_by_member_under_load() {
    let Some(bins) = Binaries::find() else { return };
    let mut c = MixedCluster::start(bins, &[Impl::Python; 3]).await;
    let writer = Writer::start(c.pg_ports()).await;
    let watch = PrimaryWatch::start(c.pg_ports());
    let leader = settle(&c, &writer, "3 Python members", false).await;

    // Forward: Python → Rust.
    let [a, b] = others(leader);
    c.step(&format!("switching replica {} to patroni-rs", name(a)));
    c.replace(a, Impl::Rust).await;
    settle(&c, &writer, &format!("{} runs patroni-rs", name(a)), false).await;
    let leader = switchover(&c, &writer, leader, a).await;
    assert_eq!(c.members[leader].runs, Impl::Rust);
    // Python's old leader and b are the Python replicas now; b is switched next.
    c.step(&format!("switching replica {} to patroni-rs", name(b)));
    c.replace(b, Impl::Rust).await;
    settle(&c, &writer, &format!("{} runs patroni-rs", name(b)), false).await;
    let python = (0..3).find(|i| c.members[*i].runs == Impl::Python).expect("one Python member left");
    let leader = switchover(&c, &writer, leader, python).await;
    assert_eq!(c.members[leader].runs, Impl::Python);
    let leader = leader_dies(&mut c, &writer, leader, Impl::Rust).await;
    assert!(c.members.iter().all(|m| m.runs == Impl::Rust));
    assert_eq!(c.members[leader].runs, Impl::Rust);

    // Reverse: Rust → Python.
    for r in others(leader) {
        c.step(&format!("switching replica {} back to Python Patroni", name(r)));
        c.replace(r, Impl::Python).await;
        settle(&c, &writer, &format!("{} runs Python Patroni", name(r)), false).await;
    }
    let leader = leader_dies(&mut c, &writer, leader, Impl::Python).await;
    assert!(c.members.iter().all(|m| m.runs == Impl::Python));
    assert_eq!(c.members[leader].runs, Impl::Python);

    // Nothing acknowledged is missing anywhere, and nothing is on one member but not on another.
    let report = writer.stop().await;
    let (samples, violations) = watch.stop().await;
    c.step(&format!(
        "{} writes acknowledged, {} failed or unknown; {samples} samples of every member's recovery state",
        report.acked.len(),
        report.failed
    ));
    assert!(violations.is_empty(), "two primaries at once: {violations:?}");
    let acked: BTreeSet<i64> = report.acked.iter().copied().collect();
    let on_leader = rows(c.pg_ports()[leader]).await;
    let lost: Vec<&i64> = acked.difference(&on_leader).collect();
    assert!(lost.is_empty(), "{} acknowledged writes lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(10)]);
    for i in others(leader) {
        let port = c.pg_ports()[i];
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let there = rows(port).await;
            if there == on_leader {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{} never caught up with the leader's rows", name(i));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Every id in `mig` on the member listening on `port`.
async fn rows(port: u16) -> BTreeSet<i64> {
    let ids = query_column(port, "SELECT id FROM mig").await.unwrap_or_else(|e| panic!("reading mig on {port}: {e}"));
    ids.into_iter().flatten().filter_map(|s| s.parse().ok()).collect()
}
