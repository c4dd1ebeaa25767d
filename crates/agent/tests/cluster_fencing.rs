//! The guardian: a primary whose agent is SIGKILLed (and stays dead) or frozen (SIGSTOP) stops accepting writes
//! before a replica, promoted once the leader key expired, accepts its first; an agent restarted in time takes the
//! guardian over and PostgreSQL never stops. Three members on etcd, asynchronous replication, a writer next to
//! each member recording when its writes were sent and acknowledged.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use tokio_postgres::NoTls;

/// A write the member acknowledged: when it was sent and when the acknowledgement came back.
#[derive(Clone, Copy, Debug)]
struct Ack {
    sent: Instant,
    acked: Instant,
}

/// One writer per member, inserting as fast as a round trip allows (a short pause after a failure).
struct Writers {
    stop: Arc<AtomicBool>,
    acks: Vec<Arc<Mutex<Vec<Ack>>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    fn start(c: &Cluster) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let mut acks = Vec::new();
        let mut tasks = Vec::new();
        for i in 0..c.nodes.len() {
            let log = Arc::new(Mutex::new(Vec::new()));
            acks.push(log.clone());
            let stop = stop.clone();
            let conn = format!(
                "host=127.0.0.1 port={} user=postgres password={} dbname=postgres connect_timeout=2",
                c.pg_port(i),
                patroni_testkit::SUPERUSER_PASSWORD
            );
            tasks.push(tokio::spawn(async move {
                let mut client: Option<tokio_postgres::Client> = None;
                while !stop.load(Ordering::Relaxed) {
                    if client.as_ref().is_none_or(|c| c.is_closed()) {
                        let connect =
                            tokio::time::timeout(Duration::from_secs(2), tokio_postgres::connect(&conn, NoTls));
                        client = match connect.await {
                            Ok(Ok((cl, connection))) => {
                                tokio::spawn(async move {
                                    let _ = connection.await;
                                });
                                Some(cl)
                            }
                            _ => None,
                        };
                    }
                    let ok = match &client {
                        Some(cl) => {
                            let sent = Instant::now();
                            let q = cl.simple_query("INSERT INTO w VALUES (1)");
                            match tokio::time::timeout(Duration::from_secs(2), q).await {
                                Ok(Ok(_)) => {
                                    log.lock().unwrap().push(Ack { sent, acked: Instant::now() });
                                    true
                                }
                                _ => false,
                            }
                        }
                        None => false,
                    };
                    let pause = if ok { 10 } else { 50 };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            }));
        }
        Writers { stop, acks, tasks }
    }

    fn acks(&self, i: usize) -> Vec<Ack> {
        self.acks[i].lock().unwrap().clone()
    }

    /// The first write `i` acknowledged that was sent after `after`.
    fn first_after(&self, i: usize, after: Instant) -> Option<Ack> {
        self.acks(i).into_iter().find(|a| a.sent > after)
    }

    /// Waits until member `i` acknowledged a write sent after `after`.
    async fn wait_ack_after(&self, c: &Cluster, i: usize, after: Instant) -> Ack {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(a) = self.first_after(i, after) {
                return a;
            }
            if Instant::now() > deadline {
                c.dump("no write acknowledged");
                panic!("{} acknowledged no write within {WAIT:?}", name(i));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
    }
}

async fn cluster(ttl: u64) -> (Cluster, usize) {
    let c = Cluster::start(Options { ttl, loop_wait: 2, ..Options::default() }).await;
    let p = c.wait_primary(WAIT, &[]).await;
    c.sql(p, "CREATE TABLE w(v int)").await.expect("create table w");
    for r in (0..3).filter(|r| *r != p) {
        let ok =
            patroni_testkit::wait_until(WAIT, POLL, || async { c.sql(r, "SELECT 1 FROM w LIMIT 1").await.is_ok() });
        ok.await.expect("table w replicated");
    }
    (c, p)
}

/// The agent of the primary `p` is SIGKILLed (or frozen with `signal` SIGSTOP) and not brought back: the orphaned
/// PostgreSQL's last acknowledged write comes before the first write the new primary was even sent.
async fn orphan_fenced_before_new_primary_writes(c: &mut Cluster, p: usize, signal: Signal) -> usize {
    let mut writers = Writers::start(c);
    let before = Instant::now();
    writers.wait_ack_after(c, p, before).await;
    let killed = Instant::now();
    c.nodes[p].kill(signal).unwrap();
    let others: Vec<usize> = (0..3).filter(|r| *r != p && c.nodes[*r].is_running()).collect();
    let bound = Duration::from_secs(c.options().ttl + 3 * c.options().loop_wait + 30);
    let np = c.wait_primary_among(bound, &others).await;
    let first_new = writers.wait_ack_after(c, np, killed).await;
    writers.stop().await;
    let acks = writers.acks(p);
    let last_old = acks.last().expect("the old primary acknowledged writes").acked;
    let orphan_ran = last_old.duration_since(killed);
    eprintln!(
        "{signal}: orphan {} took writes for {orphan_ran:?} after the agent was stopped; {} took its first {:?} after",
        name(p),
        name(np),
        first_new.sent.duration_since(killed)
    );
    if last_old >= first_new.sent {
        c.dump("two writable primaries");
        panic!(
            "the orphan {} acknowledged a write {:?} after the kill, the new primary {} was sent its first {:?} after",
            name(p),
            orphan_ran,
            name(np),
            first_new.sent.duration_since(killed)
        );
    }
    // The fence is no hair trigger: the orphan kept running while the key could still be ours.
    assert!(
        orphan_ran > Duration::from_secs(c.options().ttl / 2),
        "the orphan stopped taking writes {orphan_ran:?} after the kill, long before the leader key could expire"
    );
    let log = c.nodes[p].log();
    assert!(log.contains("guardian: leader key not renewed in time"), "no fencing decision logged:\n{log}");
    np
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl20_agent_restarted_in_time_keeps_postgres_then_killed_for_good_is_fenced() {
    let (mut c, p) = cluster(20).await;
    let pid = c.postmaster_pid(p).expect("postmaster.pid");
    let mut writers = Writers::start(&c);
    writers.wait_ack_after(&c, p, Instant::now()).await;

    // Killed, and back after a quarter of the ttl: the new agent adopts the guardian, nothing is stopped.
    let killed = Instant::now();
    c.nodes[p].kill(Signal::SIGKILL).unwrap();
    c.nodes[p].wait_exit(WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_secs(20 / 4).saturating_sub(killed.elapsed())).await;
    c.nodes[p].restart().unwrap();
    // Past the deadline the old agent's last renewal set (and past the key's expiry had nobody renewed it).
    let past = killed + Duration::from_secs(20 + 3);
    tokio::time::sleep(past.saturating_duration_since(Instant::now())).await;
    let later = writers.wait_ack_after(&c, p, past).await;
    writers.stop().await;
    assert_eq!(c.postmaster_pid(p), Some(pid), "PostgreSQL of {} was restarted or stopped", name(p));
    assert!(later.sent > past);
    assert_eq!(c.leader().await.as_deref(), Some(name(p).as_str()));
    let log = c.nodes[p].log();
    assert!(
        log.contains("guardian: adopted by a new agent"),
        "the restarted agent did not take the guardian over:\n{log}"
    );
    assert!(!log.contains("guardian: leader key not renewed in time"), "fenced although renewed in time:\n{log}");

    // Killed for good.
    c.nodes[p].wait_for_api("/primary", WAIT).await.unwrap();
    orphan_fenced_before_new_primary_writes(&mut c, p, Signal::SIGKILL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl30_killed_agent_is_fenced_and_a_frozen_agent_too() {
    let (mut c, p) = cluster(30).await;
    let np = orphan_fenced_before_new_primary_writes(&mut c, p, Signal::SIGKILL).await;
    // Now the new primary's agent freezes (SIGSTOP) past the expiry: the guardian does not need it to run.
    let r = orphan_fenced_before_new_primary_writes(&mut c, np, Signal::SIGSTOP).await;
    c.nodes[np].kill(Signal::SIGCONT).unwrap();
    assert_ne!(r, p);
}
