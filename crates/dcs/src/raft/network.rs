//! Peer traffic over HTTP: openraft's RPCs (`/raft/append`, `/raft/vote`, `/raft/snapshot`) and the DCS calls a
//! node forwards to the Raft leader (`/dcs/write`, `/dcs/read`, `/dcs/join`). Bodies are JSON; answers are a JSON
//! `Result`, so a remote Raft error reaches openraft as the remote's own error.
//!
//! With `raft.password` every body, both ways, is sealed with AES-256-GCM under a key derived from the password
//! (PBKDF2-HMAC-SHA256). A request is `session (16 bytes) || counter (8 bytes, big endian) || nonce (12 bytes) ||
//! ciphertext || tag`, its additional data the path, session and counter; an answer is `nonce || ciphertext ||
//! tag` bound to the path and the request's session, counter and nonce, so an answer cannot be replayed for another
//! request nor a request reflected as an answer. The session is one the receiver issued (`/raft/session`) and each
//! counter of it is admitted once (`replay.rs` says why this design), so a recorded request cannot be replayed. A
//! request that does not open is refused with 401, a replay with 403, an unknown session with 409 (the sender then
//! opens a new session and retries once).

use std::collections::HashMap;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use std::sync::Arc;

use ring::rand::SecureRandom;
use ring::{aead, pbkdf2};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::replay::{SessionId, NO_SESSION, SESSION_LEN};
use super::TypeConfig;

/// Marks a sealed body, so that a peer without the password gets a clear refusal rather than garbage.
pub const SEALED_HEADER: &str = "x-patroni-raft-sealed";
/// Where a sender asks a receiver for a session (a request naming `NO_SESSION`).
pub const SESSION_PATH: &str = "/raft/session";
/// The status of a request on a session the receiver does not know: open a new one and retry.
pub const UNKNOWN_SESSION_STATUS: u16 = 409;
/// Session and counter before the sealed part of a request.
const REQUEST_HEADER_LEN: usize = SESSION_LEN + 8;

const NONCE_LEN: usize = aead::NONCE_LEN;
/// Work factor of the key derivation: paid once per process, makes guessing the password from traffic costly.
const PBKDF2_ROUNDS: u32 = 60_000;

type NodeId = u64;

/// Why a peer call failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{addr} is unreachable: {message}")]
    Unreachable { addr: String, message: String },
    #[error("{addr} answered HTTP {status}: {message}")]
    Status { addr: String, status: u16, message: String },
    #[error("{addr} answered something unreadable: {message}")]
    Decode { addr: String, message: String },
}

/// Errors of the DCS endpoints, as they travel between nodes.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum ApiError {
    /// This node is not the Raft leader; the leader's address when known.
    #[error("not the Raft leader (leader: {0:?})")]
    NotLeader(Option<String>),
    /// This node has never been part of a cluster.
    #[error("this Raft node is not initialized")]
    NotInitialized,
    #[error("{0}")]
    Unavailable(String),
}

/// The AEAD key derived from `raft.password`.
pub struct Sealer {
    key: aead::LessSafeKey,
    rng: ring::rand::SystemRandom,
}

impl Sealer {
    pub fn from_password(password: Option<&str>) -> Option<Sealer> {
        let password = password.filter(|p| !p.is_empty())?;
        let mut key = [0u8; 32];
        let rounds = std::num::NonZeroU32::new(PBKDF2_ROUNDS)?;
        // A fixed salt: every node must derive the same key from the password alone.
        pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, rounds, b"patroni-rs raft v1", password.as_bytes(), &mut key);
        let key = aead::UnboundKey::new(&aead::AES_256_GCM, &key).ok()?;
        Some(Sealer { key: aead::LessSafeKey::new(key), rng: ring::rand::SystemRandom::new() })
    }

    /// `nonce || ciphertext || tag`.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + aead::AES_256_GCM.tag_len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let mut body = out.split_off(NONCE_LEN);
        self.key
            .seal_in_place_append_tag(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::from(aad), &mut body)
            .ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    /// The plaintext, or `None` when the data was not sealed with this key and `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let nonce: [u8; NONCE_LEN] = sealed.get(..NONCE_LEN)?.try_into().ok()?;
        let mut body = sealed.get(NONCE_LEN..)?.to_vec();
        let plain =
            self.key.open_in_place(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::from(aad), &mut body).ok()?;
        Some(plain.to_vec())
    }
}

/// The additional data of a request: its path, session and counter, so neither can be changed in transit.
fn request_aad(path: &str, header: &[u8]) -> Vec<u8> {
    let mut aad = path.as_bytes().to_vec();
    aad.push(b'\n');
    aad.extend_from_slice(header);
    aad
}

/// `session || counter || nonce || ciphertext || tag`.
pub fn seal_request(sealer: &Sealer, path: &str, session: &SessionId, counter: u64, plain: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(REQUEST_HEADER_LEN);
    out.extend_from_slice(session);
    out.extend_from_slice(&counter.to_be_bytes());
    let sealed = sealer.seal(&request_aad(path, &out), plain)?;
    out.extend_from_slice(&sealed);
    Some(out)
}

/// A request that authenticated: whether it may run is for the session table to say.
#[derive(Debug)]
pub struct OpenedRequest {
    pub session: SessionId,
    pub counter: u64,
    pub plain: Vec<u8>,
}

/// The request, or `None` when it was not sealed with this key for `path` (or its session or counter changed).
pub fn open_request(sealer: &Sealer, path: &str, body: &[u8]) -> Option<OpenedRequest> {
    let header = body.get(..REQUEST_HEADER_LEN)?;
    let plain = sealer.open(&request_aad(path, header), body.get(REQUEST_HEADER_LEN..)?)?;
    let session: SessionId = header.get(..SESSION_LEN)?.try_into().ok()?;
    let counter = u64::from_be_bytes(header.get(SESSION_LEN..)?.try_into().ok()?);
    Some(OpenedRequest { session, counter, plain })
}

/// The additional data of an answer: bound to the request's path, session, counter and nonce.
pub fn answer_aad(path: &str, sealed_request: &[u8]) -> Vec<u8> {
    let mut aad = path.as_bytes().to_vec();
    aad.push(b'\n');
    aad.extend_from_slice(sealed_request.get(..REQUEST_HEADER_LEN + NONCE_LEN).unwrap_or_default());
    aad
}

/// The session a sender holds with one receiver, and the last counter it used.
struct Held {
    id: SessionId,
    counter: u64,
}

/// The shared HTTP client of one node, with the key that seals its traffic.
pub struct Peers {
    http: reqwest::Client,
    sealer: Option<Arc<Sealer>>,
    /// By receiver address.
    sessions: std::sync::Mutex<HashMap<String, Held>>,
}

impl Peers {
    pub fn new(sealer: Option<Arc<Sealer>>) -> Result<Self, String> {
        // reqwest is built without a default TLS provider in this workspace; building a client needs one even
        // for plain HTTP.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot build the Raft HTTP client: {e}"))?;
        Ok(Peers { http, sealer, sessions: std::sync::Mutex::new(HashMap::new()) })
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        // The map holds no invariant a panic could break halfway.
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// POSTs `body` to `http://<addr><path>` and reads the JSON answer, within `timeout`.
    pub async fn post<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        let decode = |message: String| PeerError::Decode { addr: addr.to_string(), message };
        let plain = serde_json::to_vec(body).map_err(|e| decode(format!("cannot encode: {e}")))?;
        let now = tokio::time::Instant::now();
        let deadline = now.checked_add(timeout).unwrap_or(now + Duration::from_secs(86_400));
        let answer = match &self.sealer {
            None => self.exchange(addr, path, &plain, None, timeout).await?,
            Some(sealer) => self.exchange_in_session(sealer, addr, path, &plain, deadline).await?,
        };
        serde_json::from_slice(&answer).map_err(|e| decode(e.to_string()))
    }

    /// Sends a sealed request on our session with `addr`, opening one first when we hold none or the receiver no
    /// longer knows ours (it restarted). A request refused for its session never ran, so sending it again is safe.
    async fn exchange_in_session(
        &self,
        sealer: &Sealer,
        addr: &str,
        path: &str,
        plain: &[u8],
        deadline: tokio::time::Instant,
    ) -> Result<Vec<u8>, PeerError> {
        let left = || deadline.saturating_duration_since(tokio::time::Instant::now()).max(Duration::from_millis(10));
        let mut retried = false;
        loop {
            let held = {
                let mut sessions = self.sessions();
                sessions.get_mut(addr).map(|h| {
                    h.counter += 1;
                    (h.id, h.counter)
                })
            };
            let (id, counter) = match held {
                Some(h) => h,
                None => {
                    let id = self.open_session(sealer, addr, left()).await?;
                    let mut sessions = self.sessions();
                    // Concurrent calls may each open one; the last stays, the others are left to expire.
                    let h = sessions.entry(addr.to_string()).or_insert(Held { id, counter: 0 });
                    h.counter += 1;
                    (h.id, h.counter)
                }
            };
            match self.exchange(addr, path, plain, Some((sealer, &id, counter)), left()).await {
                Err(PeerError::Status { status: UNKNOWN_SESSION_STATUS, .. }) if !retried => {
                    retried = true;
                    let mut sessions = self.sessions();
                    if sessions.get(addr).is_some_and(|h| h.id == id) {
                        sessions.remove(addr);
                    }
                }
                other => return other,
            }
        }
    }

    async fn open_session(&self, sealer: &Sealer, addr: &str, timeout: Duration) -> Result<SessionId, PeerError> {
        let answer = self.exchange(addr, SESSION_PATH, b"{}", Some((sealer, &NO_SESSION, 0)), timeout).await?;
        answer.as_slice().try_into().map_err(|_| PeerError::Decode {
            addr: addr.to_string(),
            message: format!("a session id has {SESSION_LEN} bytes, not {}", answer.len()),
        })
    }

    /// One HTTP exchange: the request sealed for `session` and `counter` when we have a key, the answer opened.
    async fn exchange(
        &self,
        addr: &str,
        path: &str,
        plain: &[u8],
        sealed_as: Option<(&Sealer, &SessionId, u64)>,
        timeout: Duration,
    ) -> Result<Vec<u8>, PeerError> {
        let decode = |message: String| PeerError::Decode { addr: addr.to_string(), message };
        let mut req = self
            .http
            .post(format!("http://{addr}{path}"))
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        let bytes = match sealed_as {
            Some((sealer, session, counter)) => {
                req = req.header(SEALED_HEADER, "1");
                seal_request(sealer, path, session, counter, plain)
                    .ok_or_else(|| decode("cannot seal the request".into()))?
            }
            None => plain.to_vec(),
        };
        let aad = answer_aad(path, &bytes);
        let unreachable = |e: reqwest::Error| PeerError::Unreachable { addr: addr.to_string(), message: e.to_string() };
        let resp = req.body(bytes).send().await.map_err(unreachable)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(PeerError::Status {
                addr: addr.to_string(),
                status: status.as_u16(),
                message: String::from_utf8_lossy(&body).chars().take(200).collect(),
            });
        }
        match sealed_as {
            Some((sealer, ..)) => {
                sealer.open(&aad, &body).ok_or_else(|| decode("the answer is not sealed with our raft.password".into()))
            }
            None => Ok(body.to_vec()),
        }
    }
}

/// Creates one connection object per peer for openraft.
pub struct NetworkFactory {
    pub peers: Arc<Peers>,
}

pub struct PeerConn {
    peers: Arc<Peers>,
    target: NodeId,
    addr: String,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerConn;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerConn {
        PeerConn { peers: self.peers.clone(), target, addr: node.addr.clone() }
    }
}

impl PeerConn {
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let answer: Result<Resp, RaftError<NodeId, E>> =
            self.peers.post(&self.addr, path, req, option.hard_ttl()).await.map_err(|e| match e {
                PeerError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                _ => RPCError::Network(NetworkError::new(&e)),
            })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call("/raft/append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call("/raft/snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call("/raft/vote", &rpc, &option).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_round_trip_and_rejection() {
        let a = Sealer::from_password(Some("secret")).unwrap();
        let b = Sealer::from_password(Some("secret")).unwrap();
        let sealed = a.seal(b"/raft/vote", b"{}").unwrap();
        assert!(!sealed.windows(2).any(|w| w == b"{}"), "not encrypted");
        assert_eq!(b.open(b"/raft/vote", &sealed).unwrap(), b"{}");
        assert!(b.open(b"/raft/append", &sealed).is_none(), "path is authenticated");
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(b.open(b"/raft/vote", &flipped).is_none());
        assert!(Sealer::from_password(Some("other")).unwrap().open(b"/raft/vote", &sealed).is_none());
        assert!(b.open(b"/raft/vote", b"short").is_none());
        assert_ne!(a.seal(b"x", b"same").unwrap(), a.seal(b"x", b"same").unwrap(), "fresh nonce each time");
        assert!(Sealer::from_password(Some("")).is_none());
        assert!(Sealer::from_password(None).is_none());
    }

    #[test]
    fn a_request_binds_its_path_session_and_counter() {
        let a = Sealer::from_password(Some("secret")).unwrap();
        let session = [7u8; SESSION_LEN];
        let sealed = seal_request(&a, "/dcs/write", &session, 42, b"[]").unwrap();
        let opened = open_request(&a, "/dcs/write", &sealed).unwrap();
        assert_eq!((opened.session, opened.counter, opened.plain.as_slice()), (session, 42, &b"[]"[..]));
        assert!(open_request(&a, "/raft/append", &sealed).is_none(), "path is authenticated");
        // Changing the counter (to slip a replay past the window) or the session breaks the seal.
        let mut bumped = sealed.clone();
        bumped[REQUEST_HEADER_LEN - 1] ^= 1;
        assert!(open_request(&a, "/dcs/write", &bumped).is_none());
        let mut moved = sealed.clone();
        moved[0] ^= 1;
        assert!(open_request(&a, "/dcs/write", &moved).is_none());
        assert!(open_request(&a, "/dcs/write", &sealed[..REQUEST_HEADER_LEN]).is_none());
        // The answer is bound to this very request.
        let other = seal_request(&a, "/dcs/write", &session, 43, b"[]").unwrap();
        let answer = a.seal(&answer_aad("/dcs/write", &sealed), b"ok").unwrap();
        assert!(a.open(&answer_aad("/dcs/write", &sealed), &answer).is_some());
        assert!(a.open(&answer_aad("/dcs/write", &other), &answer).is_none());
    }
}
