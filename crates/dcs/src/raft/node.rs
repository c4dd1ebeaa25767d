//! One embedded Raft node: openraft with our storage and network, the HTTP server for peers, joining or founding
//! the cluster, and the leader's duties (expiring leases by its clock).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Config, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::kv::{Command, Kv, Op, Outcome};
use super::log_store::LogStore;
use super::network::{
    answer_aad, open_request, ApiError, NetworkFactory, PeerError, Peers, Sealer, SEALED_HEADER, SESSION_PATH,
    UNKNOWN_SESSION_STATUS,
};
use super::replay::{Refusal, Sessions, NO_SESSION};
use super::state_machine::{Shared, StateMachine};
use super::TypeConfig;
use crate::error::{DcsError, DcsResult};

pub type OpenRaft = openraft::Raft<TypeConfig>;

/// How often the leader looks for expired leases; bounds how late a key can vanish after its TTL.
const EXPIRY_INTERVAL: Duration = Duration::from_millis(100);

/// A node's id: a stable hash of the address peers reach it on, so that the same `self_addr` is the same member
/// across restarts and every node derives the ids of its partners without asking them.
pub fn node_id(addr: &str) -> u64 {
    addr.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The leader's clock for lease deadlines: wall-clock milliseconds read once, then advanced by the monotonic
/// clock, so that an NTP step on the leader cannot expire every lease at once (or keep them forever).
pub fn now_ms() -> u64 {
    static ANCHOR: std::sync::OnceLock<(std::time::Instant, u64)> = std::sync::OnceLock::new();
    let (at, wall) = ANCHOR.get_or_init(|| {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        (std::time::Instant::now(), u64::try_from(wall).unwrap_or(u64::MAX))
    });
    wall.saturating_add(u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadRequest {
    pub prefix: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadAnswer {
    pub revision: i64,
    pub kvs: Vec<(String, Kv)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    pub id: u64,
    pub addr: String,
}

/// What a node needs to run.
pub struct NodeOptions<'a> {
    pub data_dir: &'a Path,
    pub self_addr: String,
    pub bind_addr: String,
    pub partner_addrs: Vec<String>,
    pub password: Option<String>,
    pub snapshot_logs: u64,
}

pub struct NodeCore {
    pub id: u64,
    pub addr: String,
    pub raft: OpenRaft,
    pub shared: Arc<Shared>,
    pub peers: Arc<Peers>,
    sealer: Option<Arc<Sealer>>,
    /// The sessions this node issued to senders (only used with a password).
    sessions: Sessions,
}

/// A running node and its background tasks.
pub struct Node {
    pub core: Arc<NodeCore>,
    tasks: Vec<JoinHandle<()>>,
    server: Option<JoinHandle<()>>,
    stop_server: Option<tokio::sync::oneshot::Sender<()>>,
    /// Held while the node runs: two nodes on one data directory would corrupt each other's log.
    dir_lock: Option<nix::fcntl::Flock<std::fs::File>>,
}

/// Takes the exclusive lock of `data_dir`, or says who cannot have it.
fn lock_data_dir(dir: &Path) -> DcsResult<nix::fcntl::Flock<std::fs::File>> {
    let cannot = |e: String| DcsError::Config(format!("cannot use raft.data_dir {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(|e| cannot(e.to_string()))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .map_err(|e| cannot(e.to_string()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| cannot(format!("it is in use by another Raft node ({e})")))
}

fn raft_config(snapshot_logs: u64) -> Result<Config, String> {
    Config {
        cluster_name: "patroni".into(),
        // Elections take a few seconds at most, well inside Patroni's ttl (30 s), and a node stalled for a
        // second by a busy machine (PostgreSQL next to it) does not depose a healthy leader.
        heartbeat_interval: 300,
        election_timeout_min: 1500,
        election_timeout_max: 3000,
        install_snapshot_timeout: 2000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_logs.max(10)),
        // A follower a little behind still catches up from the log rather than a whole snapshot.
        max_in_snapshot_log_to_keep: (snapshot_logs / 5).max(5),
        snapshot_max_chunk_size: 1024 * 1024,
        ..Config::default()
    }
    .validate()
    .map_err(|e| format!("invalid Raft timing: {e}"))
}

impl Node {
    pub async fn start(opts: NodeOptions<'_>) -> DcsResult<Node> {
        let config = Arc::new(raft_config(opts.snapshot_logs).map_err(DcsError::Config)?);
        let id = node_id(&opts.self_addr);
        let cannot_open =
            |e: std::io::Error| DcsError::Config(format!("cannot use raft.data_dir {}: {e}", opts.data_dir.display()));
        let dir_lock = lock_data_dir(opts.data_dir)?;
        let log_store = LogStore::open(opts.data_dir).map_err(cannot_open)?;
        let (sm, shared) = StateMachine::open(opts.data_dir).map_err(cannot_open)?;
        let sealer = Sealer::from_password(opts.password.as_deref()).map(Arc::new);
        let peers = Arc::new(Peers::new(sealer.clone()).map_err(DcsError::Config)?);
        // Bind before starting Raft so that a taken port is reported here, not as an endless election.
        let listener = TcpListener::bind(&opts.bind_addr)
            .await
            .map_err(|e| DcsError::Config(format!("cannot listen on raft address {}: {e}", opts.bind_addr)))?;
        let raft = openraft::Raft::new(id, config, NetworkFactory { peers: peers.clone() }, log_store, sm)
            .await
            .map_err(|e| DcsError::Config(format!("cannot start the Raft node: {e}")))?;
        let core = Arc::new(NodeCore {
            id,
            addr: opts.self_addr.clone(),
            raft,
            shared,
            peers,
            sealer,
            sessions: Sessions::default(),
        });
        info!("Raft node {} ({id:x}) listening on {}", opts.self_addr, opts.bind_addr);

        let app = Router::new()
            .route("/raft/append", post(handle))
            .route("/raft/vote", post(handle))
            .route("/raft/snapshot", post(handle))
            .route(SESSION_PATH, post(handle))
            .route("/dcs/write", post(handle))
            .route("/dcs/read", post(handle))
            .route("/dcs/join", post(handle))
            .route("/dcs/leave", post(handle))
            .layer(DefaultBodyLimit::max(16 * 1024 * 1024))
            .with_state(core.clone());
        let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
        // Graceful, so that stopping also closes the kept-alive connections of peers: a restarted node on the
        // same address must not have its peers talk to the stopped one through pooled connections.
        let server = tokio::spawn(async move {
            let stopping = async move {
                let _ = stopped.await;
            };
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopping).await {
                warn!("Raft HTTP server stopped: {e}");
            }
        });
        let bootstrap = tokio::spawn(bootstrap(core.clone(), opts.partner_addrs));
        let duties = tokio::spawn(leader_duties(core.clone()));
        Ok(Node {
            core,
            tasks: vec![bootstrap, duties],
            server: Some(server),
            stop_server: Some(stop_server),
            dir_lock: Some(dir_lock),
        })
    }

    /// Stops serving peers and stops the Raft node.
    pub async fn shutdown(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Err(e) = self.core.raft.shutdown().await {
            warn!("Raft node did not stop cleanly: {e}");
        }
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        if let Some(mut server) = self.server.take() {
            // Requests in flight end quickly now that Raft is stopped; do not wait for slow peers.
            if tokio::time::timeout(Duration::from_secs(2), &mut server).await.is_err() {
                server.abort();
            }
        }
        // Only now may another node use the directory: this one no longer writes to it.
        self.dir_lock = None;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for t in self.tasks.iter().chain(&self.server) {
            t.abort();
        }
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
            // Dropped without `shutdown`: stop the Raft core too, or it would keep voting as a ghost member.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let raft = self.core.raft.clone();
                rt.spawn(async move {
                    let _ = raft.shutdown().await;
                });
            }
        }
    }
}

/// Founds the cluster from `partner_addrs`, or joins an existing one, until this node is a member.
async fn bootstrap(core: Arc<NodeCore>, partners: Vec<String>) {
    let partners: Vec<String> = partners.into_iter().filter(|p| *p != core.addr).collect();
    loop {
        match core.raft.is_initialized().await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                warn!("Raft node stopped before joining: {e}");
                return;
            }
        }
        let mut reachable_fresh = 1; // ourselves
        let mut joined = false;
        let mut existing = false;
        for p in &partners {
            match join_via(&core, p).await {
                Ok(()) => {
                    joined = true;
                    break;
                }
                Err(JoinOutcome::Fresh) => reachable_fresh += 1,
                Err(JoinOutcome::Existing) => existing = true,
                Err(JoinOutcome::Unreachable) => {}
            }
        }
        if joined {
            info!("joined the Raft cluster");
            // Membership arrives by replication; `is_initialized` turns true then.
        } else if !existing && reachable_fresh * 2 > partners.len() + 1 {
            // A majority of the configured nodes is up and none of them belongs to a cluster: found it. Every
            // founding node proposes the same membership (all of `partner_addrs` + itself), so racing founders
            // agree. A lone node never founds a cluster its partners might already run.
            let members: BTreeMap<u64, BasicNode> = std::iter::once(core.addr.clone())
                .chain(partners.iter().cloned())
                .map(|a| (node_id(&a), BasicNode { addr: a }))
                .collect();
            match core.raft.initialize(members).await {
                Ok(()) => info!("founded the Raft cluster with {} members", partners.len() + 1),
                Err(e) => debug!("Raft initialize: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

enum JoinOutcome {
    Fresh,
    Existing,
    Unreachable,
}

async fn join_via(core: &NodeCore, partner: &str) -> Result<(), JoinOutcome> {
    let req = JoinRequest { id: core.id, addr: core.addr.clone() };
    let mut target = partner.to_string();
    for _ in 0..3 {
        let answer: Result<Result<(), ApiError>, PeerError> =
            core.peers.post(&target, "/dcs/join", &req, Duration::from_secs(5)).await;
        match answer {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(ApiError::NotInitialized)) => return Err(JoinOutcome::Fresh),
            Ok(Err(ApiError::NotLeader(Some(leader)))) => target = leader,
            Ok(Err(e)) => {
                debug!("join via {target}: {e}");
                return Err(JoinOutcome::Existing);
            }
            Err(e) => {
                debug!("join via {target}: {e}");
                return Err(JoinOutcome::Unreachable);
            }
        }
    }
    Err(JoinOutcome::Existing)
}

/// While this node leads: give every lease a full TTL on taking over (its clock may differ from the previous
/// leader's), then expire leases whose deadline passed on its clock. Both are log entries, so every node deletes
/// the same keys at the same point of the log.
async fn leader_duties(core: Arc<NodeCore>) {
    let mut renewed_term: Option<u64> = None;
    let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (leading, term) = {
            let m = core.raft.metrics();
            let m = m.borrow();
            (m.state == ServerState::Leader && m.current_leader == Some(core.id), m.current_term)
        };
        if !leading {
            renewed_term = None;
            continue;
        }
        let op = if renewed_term != Some(term) {
            Op::RenewAllLeases
        } else if core.shared.read(|s| s.any_lease_expired(now_ms())).unwrap_or(false) {
            Op::ExpireLeases
        } else {
            continue;
        };
        let renew = op == Op::RenewAllLeases;
        match tokio::time::timeout(Duration::from_secs(2), core.propose(vec![op])).await {
            Ok(Ok(_)) if renew => renewed_term = Some(term),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => debug!("lease maintenance: {e}"),
            Err(_) => debug!("lease maintenance timed out"),
        }
    }
}

impl NodeCore {
    fn leader_addr(&self) -> Option<(u64, String)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        let addr = m.membership_config.membership().get_node(&id)?.addr.clone();
        Some((id, addr))
    }

    /// Proposes a command on this node, which must be the leader; stamps it with our clock.
    pub async fn propose(&self, ops: Vec<Op>) -> Result<Outcome, ApiError> {
        let cmd = Command { now_ms: now_ms(), ops };
        match self.raft.client_write(cmd).await {
            Ok(r) => Ok(r.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ApiError::NotLeader(f.leader_node.map(|n| n.addr)))
            }
            Err(e) => Err(ApiError::Unavailable(e.to_string())),
        }
    }

    /// A linearizable read on this node, which must be the leader.
    pub async fn read_here(&self, prefix: &str) -> Result<ReadAnswer, ApiError> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => self.read_local(prefix).ok_or_else(|| ApiError::Unavailable("state lock poisoned".into())),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(ApiError::NotLeader(f.leader_node.map(|n| n.addr)))
            }
            Err(e) => Err(ApiError::Unavailable(e.to_string())),
        }
    }

    /// What this node has applied, not necessarily the latest.
    pub fn read_local(&self, prefix: &str) -> Option<ReadAnswer> {
        self.shared.read(|s| ReadAnswer {
            revision: s.revision,
            kvs: s.range(prefix).map(|(k, v)| (k.clone(), v.clone())).collect(),
        })
    }

    async fn join(&self, req: JoinRequest) -> Result<(), ApiError> {
        if !self.raft.is_initialized().await.map_err(|e| ApiError::Unavailable(e.to_string()))? {
            return Err(ApiError::NotInitialized);
        }
        let (voter, known) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let membership = m.membership_config.membership();
            (membership.voter_ids().any(|v| v == req.id), membership.get_node(&req.id).is_some())
        };
        if voter {
            return Ok(());
        }
        let map = |e: RaftError<u64, ClientWriteError<u64, BasicNode>>| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                ApiError::NotLeader(f.leader_node.map(|n| n.addr))
            }
            e => ApiError::Unavailable(e.to_string()),
        };
        if !known {
            info!("adding Raft node {} as a learner", req.addr);
            self.raft.add_learner(req.id, BasicNode { addr: req.addr.clone() }, true).await.map_err(map)?;
        }
        info!("making Raft node {} a voter", req.addr);
        self.raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([req.id])), false).await.map_err(map)?;
        Ok(())
    }

    /// Removes a member (by address) from the voters and the cluster, as `syncobj_admin -remove` does for
    /// Patroni: for a node that is gone for good, whose vote would otherwise count against the quorum forever.
    async fn leave(&self, req: JoinRequest) -> Result<(), ApiError> {
        let id = node_id(&req.addr);
        let present = {
            let m = self.raft.metrics();
            let m = m.borrow();
            m.membership_config.membership().get_node(&id).is_some()
        };
        if !present {
            return Ok(());
        }
        info!("removing Raft node {} from the cluster", req.addr);
        match self.raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ApiError::NotLeader(f.leader_node.map(|n| n.addr)))
            }
            Err(e) => Err(ApiError::Unavailable(e.to_string())),
        }
    }

    /// Asks the leader (wherever it is) to remove the member at `addr`, within `deadline`.
    pub async fn remove_member(&self, addr: &str, deadline: Instant) -> DcsResult<()> {
        let req = JoinRequest { id: node_id(addr), addr: addr.to_string() };
        let res = tokio::time::timeout_at(deadline, async {
            loop {
                let attempt = match self.leader_addr() {
                    Some((id, _)) if id == self.id => self.leave(req.clone()).await.map_err(|e| e.to_string()),
                    Some((_, leader)) => self.forward::<_, ()>(&leader, "/dcs/leave", &req, deadline).await,
                    None => Err("no Raft leader".to_string()),
                };
                match attempt {
                    Ok(()) => return Ok(()),
                    Err(e) => debug!("removing {addr}: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        flatten(res, "membership change")
    }

    /// Runs a write where the leader is, within `deadline`: here if we lead, else forwarded.
    pub async fn write(&self, ops: Vec<Op>, deadline: Instant) -> DcsResult<Outcome> {
        let res = tokio::time::timeout_at(deadline, async {
            let mut last = String::from("no Raft leader");
            loop {
                let attempt = match self.leader_addr() {
                    Some((id, _)) if id == self.id => self.propose(ops.clone()).await.map_err(|e| e.to_string()),
                    Some((_, addr)) => self.forward::<_, Outcome>(&addr, "/dcs/write", &ops, deadline).await,
                    None => Err(last.clone()),
                };
                match attempt {
                    Ok(o) => return Ok(o),
                    Err(e) => last = e,
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        flatten(res, "write")
    }

    /// A linearizable read of `prefix` within `deadline`, confirmed by the leader.
    pub async fn read(&self, prefix: &str, deadline: Instant) -> DcsResult<ReadAnswer> {
        let req = ReadRequest { prefix: prefix.to_string() };
        let res = tokio::time::timeout_at(deadline, async {
            let mut last = String::from("no Raft leader");
            loop {
                let attempt = match self.leader_addr() {
                    Some((id, _)) if id == self.id => self.read_here(prefix).await.map_err(|e| e.to_string()),
                    Some((_, addr)) => self.forward::<_, ReadAnswer>(&addr, "/dcs/read", &req, deadline).await,
                    None => Err(last.clone()),
                };
                match attempt {
                    Ok(a) => return Ok(a),
                    Err(e) => last = e,
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        flatten(res, "read")
    }

    async fn forward<Req: Serialize, Resp: for<'de> Deserialize<'de>>(
        &self,
        addr: &str,
        path: &str,
        req: &Req,
        deadline: Instant,
    ) -> Result<Resp, String> {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(10));
        match self.peers.post::<_, Result<Resp, ApiError>>(addr, path, req, left).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn flatten<T>(res: Result<Result<T, String>, tokio::time::error::Elapsed>, what: &str) -> DcsResult<T> {
    match res {
        Ok(r) => r.map_err(DcsError::Unreachable),
        Err(_) => Err(DcsError::Unreachable(format!("Raft {what} did not complete within retry_timeout"))),
    }
}

fn json_answer<T: Serialize>(v: &T) -> Result<Vec<u8>, Box<Response>> {
    serde_json::to_vec(v).map_err(|e| Box::new((StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()))
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body)
        .map_err(|e| Box::new((StatusCode::BAD_REQUEST, format!("bad request body: {e}")).into_response()))
}

/// One handler for every path: open the sealed body, refuse a replay, dispatch, seal the answer.
async fn handle(State(core): State<Arc<NodeCore>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path();
    let plain = match &core.sealer {
        None if headers.contains_key(SEALED_HEADER) => {
            warn!("refused a sealed Raft request to {path}: this node has no raft.password");
            return (StatusCode::UNAUTHORIZED, "this node has no raft.password").into_response();
        }
        None => body.to_vec(),
        Some(sealer) => {
            let Some(req) = open_request(sealer, path, &body) else {
                warn!("refused a Raft request to {path} not sealed with our raft.password");
                return (StatusCode::UNAUTHORIZED, "not sealed with this cluster's raft.password").into_response();
            };
            if path == SESSION_PATH {
                // Opening a session needs no counter: a replayed request for one only gets a session the replayer
                // cannot seal anything for.
                return match core.sessions.open().filter(|_| req.session == NO_SESSION) {
                    Some(id) => sealed_answer(sealer, path, &body, id.to_vec()),
                    None => (StatusCode::BAD_REQUEST, "cannot open a Raft session").into_response(),
                };
            }
            if let Err(refusal) = core.sessions.admit(&req.session, req.counter) {
                let status = match refusal {
                    // Expected once per sender after this node restarts; the sender opens a new session.
                    Refusal::UnknownSession => {
                        debug!("refused a Raft request to {path}: {refusal}");
                        StatusCode::from_u16(UNKNOWN_SESSION_STATUS).unwrap_or(StatusCode::CONFLICT)
                    }
                    Refusal::Replayed(_) | Refusal::TooOld { .. } => {
                        warn!("refused a Raft request to {path}: {refusal}");
                        StatusCode::FORBIDDEN
                    }
                };
                return (status, refusal.to_string()).into_response();
            }
            req.plain
        }
    };
    let answer = match dispatch(&core, path, &plain).await {
        Ok(a) => a,
        Err(e) => return *e,
    };
    match &core.sealer {
        None => ([(axum::http::header::CONTENT_TYPE, "application/json")], answer).into_response(),
        Some(sealer) => sealed_answer(sealer, path, &body, answer),
    }
}

/// `answer` sealed for the request `request` (so it cannot stand for the answer to any other request).
fn sealed_answer(sealer: &Sealer, path: &str, request: &[u8], answer: Vec<u8>) -> Response {
    match sealer.seal(&answer_aad(path, request), &answer) {
        Some(a) => ([(axum::http::header::CONTENT_TYPE, "application/json")], a).into_response(),
        None => (StatusCode::INTERNAL_SERVER_ERROR, "cannot seal the answer").into_response(),
    }
}

async fn dispatch(core: &NodeCore, path: &str, body: &[u8]) -> Result<Vec<u8>, Box<Response>> {
    match path {
        "/raft/append" => json_answer(&core.raft.append_entries(parse(body)?).await),
        "/raft/vote" => json_answer(&core.raft.vote(parse(body)?).await),
        "/raft/snapshot" => json_answer(&core.raft.install_snapshot(parse(body)?).await),
        "/dcs/write" => json_answer(&core.propose(parse(body)?).await),
        "/dcs/read" => json_answer(&core.read_here(&parse::<ReadRequest>(body)?.prefix).await),
        "/dcs/join" => json_answer(&core.join(parse(body)?).await),
        "/dcs/leave" => json_answer(&core.leave(parse(body)?).await),
        _ => Err(Box::new(StatusCode::NOT_FOUND.into_response())),
    }
}

/// A client of a Raft cluster that is not a member (no `self_addr`, as Patroni allows, and `patronictl`): every
/// call goes to a partner, which answers or names the leader.
pub struct Remote {
    peers: Arc<Peers>,
    partners: Vec<String>,
    leader_hint: std::sync::Mutex<Option<String>>,
}

impl Remote {
    pub fn new(partners: Vec<String>, password: Option<&str>) -> DcsResult<Remote> {
        if partners.is_empty() {
            return Err(DcsError::Config("raft needs self_addr or partner_addrs".into()));
        }
        let sealer = Sealer::from_password(password).map(Arc::new);
        let peers = Arc::new(Peers::new(sealer).map_err(DcsError::Config)?);
        Ok(Remote { peers, partners, leader_hint: std::sync::Mutex::new(None) })
    }

    async fn call<Req: Serialize, Resp: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        req: &Req,
        deadline: Instant,
    ) -> DcsResult<Resp> {
        let mut last = String::from("no partner answered");
        let res = tokio::time::timeout_at(deadline, async {
            loop {
                let hint = self.leader_hint.lock().ok().and_then(|h| h.clone());
                let mut targets: Vec<String> = hint.into_iter().collect();
                targets.extend(self.partners.iter().cloned());
                let mut i = 0;
                while i < targets.len() {
                    let addr = targets[i].clone();
                    i += 1;
                    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(10));
                    match self.peers.post::<_, Result<Resp, ApiError>>(&addr, path, req, left).await {
                        Ok(Ok(r)) => {
                            if let Ok(mut h) = self.leader_hint.lock() {
                                *h = Some(addr);
                            }
                            return r;
                        }
                        Ok(Err(ApiError::NotLeader(Some(leader)))) if !targets[i..].contains(&leader) => {
                            targets.insert(i, leader);
                        }
                        Ok(Err(e)) => last = e.to_string(),
                        Err(e) => last = e.to_string(),
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        res.map_err(|_| DcsError::Unreachable(format!("Raft cluster did not answer within retry_timeout: {last}")))
    }

    pub async fn write(&self, ops: Vec<Op>, deadline: Instant) -> DcsResult<Outcome> {
        self.call("/dcs/write", &ops, deadline).await
    }

    pub async fn read(&self, prefix: &str, deadline: Instant) -> DcsResult<ReadAnswer> {
        self.call("/dcs/read", &ReadRequest { prefix: prefix.to_string() }, deadline).await
    }
}
