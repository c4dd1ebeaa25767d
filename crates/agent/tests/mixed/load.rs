//! The client side of the migration test: a steady writer whose acknowledged writes must all survive, and a watch
//! that samples every member for a second primary.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

const PASSWORD: &str = patroni_testkit::SUPERUSER_PASSWORD;
/// Pause between two writes: a steady trickle, like an application's, that leaves the 2-core machine room.
const WRITE_EVERY: Duration = Duration::from_millis(50);
/// One write may wait this long: a commit waits for the synchronous standby, which may be the member being
/// replaced until the leader's next loop names another one.
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the watch samples every member.
const WATCH_EVERY: Duration = Duration::from_millis(150);

/// Connects as the superuser to one member (`ports` of one element) or, with `target_session_attrs=read-write`,
/// to whichever of them accepts writes, as a libpq application in front of a Patroni cluster would.
async fn connect(ports: &[u16], read_write: bool) -> Result<Client, String> {
    let hosts = vec!["127.0.0.1"; ports.len()].join(",");
    let ports = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
    let attrs = if read_write { " target_session_attrs=read-write" } else { "" };
    let conn =
        format!("host={hosts} port={ports} user=postgres password={PASSWORD} dbname=postgres connect_timeout=2{attrs}");
    let (client, connection) = tokio_postgres::connect(&conn, NoTls).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Runs `sql` on one member; the first column of every row, as text.
pub async fn query_column(port: u16, sql: &str) -> Result<Vec<Option<String>>, String> {
    let run = async {
        let client = connect(&[port], false).await?;
        let messages = client.simple_query(sql).await.map_err(|e| e.to_string())?;
        Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_string)),
                _ => None,
            })
            .collect())
    };
    tokio::time::timeout(Duration::from_secs(10), run).await.unwrap_or_else(|_| Err("query timed out".into()))
}

struct WriterState {
    stop: AtomicBool,
    /// Held by the writer around each write and by [`Writer::pause`]: a paused writer finishes the write it is in.
    gate: tokio::sync::Mutex<()>,
    acked: Mutex<Vec<i64>>,
    failed: AtomicU64,
    last_error: Mutex<String>,
}

/// Inserts one row after another (`mig(id)`, ids 1, 2, 3 …) into whichever member accepts writes, reconnecting
/// after every failure; remembers each id the server acknowledged.
pub struct Writer {
    state: Arc<WriterState>,
    task: JoinHandle<()>,
}

pub struct WriterReport {
    pub acked: Vec<i64>,
    pub failed: u64,
}

impl Writer {
    /// Creates the table on the current primary (one of `ports`), then starts writing.
    pub async fn start(ports: Vec<u16>) -> Writer {
        let client = connect(&ports, true).await.expect("a writable member for the writer's table");
        client.simple_query("CREATE TABLE IF NOT EXISTS mig(id bigint PRIMARY KEY)").await.expect("table mig");
        let state = Arc::new(WriterState {
            stop: AtomicBool::new(false),
            gate: tokio::sync::Mutex::new(()),
            acked: Mutex::new(Vec::new()),
            failed: AtomicU64::new(0),
            last_error: Mutex::new(String::new()),
        });
        let task = tokio::spawn(write_loop(ports, Arc::clone(&state), Some(client)));
        Writer { state, task }
    }

    /// Stops writing until the guard is dropped (while both patronictls read the cluster, so the positions they
    /// show hold still).
    pub async fn pause(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.state.gate.lock().await
    }

    pub fn acked_count(&self) -> usize {
        self.state.acked.lock().map(|a| a.len()).unwrap_or(0)
    }

    /// Waits until `more` writes past the current count are acknowledged: the cluster takes writes again.
    pub async fn wait_progress(&self, more: usize, timeout: Duration, what: &str) {
        let target = self.acked_count() + more;
        let deadline = Instant::now() + timeout;
        while self.acked_count() < target {
            let last = self.state.last_error.lock().map(|e| e.clone()).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "{what}: no {more} acknowledged writes within {timeout:?} (last error: {last})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(self) -> WriterReport {
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
        let acked = self.state.acked.lock().map(|a| a.clone()).unwrap_or_default();
        WriterReport { acked, failed: self.state.failed.load(Ordering::SeqCst) }
    }
}

async fn write_loop(ports: Vec<u16>, state: Arc<WriterState>, mut client: Option<Client>) {
    let mut id: i64 = 0;
    while !state.stop.load(Ordering::SeqCst) {
        id += 1;
        let outcome = {
            let _gate = state.gate.lock().await;
            let write = async {
                if client.is_none() {
                    client = Some(connect(&ports, true).await?);
                }
                let c = client.as_ref().ok_or("no connection")?;
                c.simple_query(&format!("INSERT INTO mig(id) VALUES ({id})")).await.map_err(|e| e.to_string())?;
                Ok::<(), String>(())
            };
            match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                Ok(r) => r,
                Err(_) => Err("write timed out".to_string()),
            }
        };
        match outcome {
            Ok(()) => {
                if let Ok(mut acked) = state.acked.lock() {
                    acked.push(id);
                }
            }
            Err(e) => {
                // Unknown outcome: the row may or may not exist. Only acknowledged ids are promised.
                state.failed.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut last) = state.last_error.lock() {
                    *last = e;
                }
                client = None;
            }
        }
        tokio::time::sleep(WRITE_EVERY).await;
    }
}

/// Samples `pg_is_in_recovery()` on every member; two members answering `false` in one sample, and again when
/// asked at once a second time (so that a switchover completing between two members' answers is not taken for
/// one), is a violation.
pub struct PrimaryWatch {
    stop: Arc<AtomicBool>,
    samples: Arc<AtomicU64>,
    violations: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl PrimaryWatch {
    pub fn start(ports: Vec<u16>) -> PrimaryWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(AtomicU64::new(0));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(watch_loop(ports, Arc::clone(&stop), Arc::clone(&samples), Arc::clone(&violations)));
        PrimaryWatch { stop, samples, violations, task }
    }

    /// Stops sampling; (samples taken, violations seen).
    pub async fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
        let violations = self.violations.lock().map(|v| v.clone()).unwrap_or_default();
        (self.samples.load(Ordering::SeqCst), violations)
    }
}

async fn watch_loop(
    ports: Vec<u16>,
    stop: Arc<AtomicBool>,
    samples: Arc<AtomicU64>,
    violations: Arc<Mutex<Vec<String>>>,
) {
    let mut clients: Vec<Option<Client>> = ports.iter().map(|_| None).collect();
    while !stop.load(Ordering::SeqCst) {
        let primaries = sample(&ports, &mut clients, None).await;
        if primaries.len() > 1 {
            let again = sample(&ports, &mut clients, Some(&primaries)).await;
            if again.len() > 1 {
                if let Ok(mut v) = violations.lock() {
                    v.push(format!("PostgreSQL on ports {again:?} all out of recovery at once"));
                }
            }
        }
        samples.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

/// The ports (of `only`, or all) whose PostgreSQL answers that it is not in recovery.
async fn sample(ports: &[u16], clients: &mut [Option<Client>], only: Option<&BTreeSet<u16>>) -> BTreeSet<u16> {
    let mut primaries = BTreeSet::new();
    for (port, client) in ports.iter().zip(clients.iter_mut()) {
        if only.is_some_and(|o| !o.contains(port)) {
            continue;
        }
        let ask = async {
            if client.is_none() {
                *client = Some(connect(&[*port], false).await?);
            }
            let c = client.as_ref().ok_or("no connection")?;
            let rows = c.simple_query("SELECT pg_is_in_recovery()").await.map_err(|e| e.to_string())?;
            Ok::<bool, String>(rows.iter().any(|m| matches!(m, SimpleQueryMessage::Row(r) if r.get(0) == Some("f"))))
        };
        match tokio::time::timeout(Duration::from_secs(3), ask).await {
            Ok(Ok(true)) => {
                primaries.insert(*port);
            }
            Ok(Ok(false)) => {}
            _ => *client = None,
        }
    }
    primaries
}
