//! Peer traffic over HTTP: openraft's RPCs (`/raft/append`, `/raft/vote`, `/raft/snapshot`) and the DCS calls a
//! node forwards to the Raft leader (`/dcs/write`, `/dcs/read`, `/dcs/join`). Bodies are JSON; answers are a JSON
//! `Result`, so a remote Raft error reaches openraft as the remote's own error.
//!
//! With `raft.password` every request carries `X-Patroni-Raft-Auth`: hex HMAC-SHA256 keyed with the password over
//! the path and the body; a request without a valid one is refused with 401. This authenticates peers and protects
//! integrity; it does not encrypt (the data is what any member can read from the DCS anyway).

use std::time::Duration;

use bytes::Bytes;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use ring::hmac;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::TypeConfig;

pub const AUTH_HEADER: &str = "x-patroni-raft-auth";

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

/// The shared HTTP client of one node, with the key that signs its requests.
pub struct Peers {
    http: reqwest::Client,
    key: Option<hmac::Key>,
}

pub fn auth_key(password: Option<&str>) -> Option<hmac::Key> {
    password.filter(|p| !p.is_empty()).map(|p| hmac::Key::new(hmac::HMAC_SHA256, p.as_bytes()))
}

fn signed_message(path: &str, body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(path.len() + 1 + body.len());
    msg.extend_from_slice(path.as_bytes());
    msg.push(b'\n');
    msg.extend_from_slice(body);
    msg
}

pub fn sign(key: &hmac::Key, path: &str, body: &[u8]) -> String {
    let tag = hmac::sign(key, &signed_message(path, body));
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time check of a request's signature.
pub fn verify(key: &hmac::Key, path: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header else { return false };
    if hex.len() % 2 != 0 {
        return false;
    }
    let tag: Option<Vec<u8>> =
        (0..hex.len()).step_by(2).map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect();
    tag.is_some_and(|tag| hmac::verify(key, &signed_message(path, body), &tag).is_ok())
}

impl Peers {
    pub fn new(password: Option<&str>) -> Result<Self, String> {
        // reqwest is built without a default TLS provider in this workspace; building a client needs one even
        // for plain HTTP.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot build the Raft HTTP client: {e}"))?;
        Ok(Peers { http, key: auth_key(password) })
    }

    /// POSTs `body` to `http://<addr><path>` and reads the JSON answer, within `timeout`.
    pub async fn post<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| PeerError::Decode { addr: addr.to_string(), message: format!("cannot encode: {e}") })?;
        let mut req = self
            .http
            .post(format!("http://{addr}{path}"))
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(key) = &self.key {
            req = req.header(AUTH_HEADER, sign(key, path, &bytes));
        }
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
        serde_json::from_slice(&body).map_err(|e| PeerError::Decode { addr: addr.to_string(), message: e.to_string() })
    }
}

/// Creates one connection object per peer for openraft.
pub struct NetworkFactory {
    pub peers: std::sync::Arc<Peers>,
}

pub struct PeerConn {
    peers: std::sync::Arc<Peers>,
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

/// The body of a request after its signature was checked.
pub fn authenticated(key: Option<&hmac::Key>, path: &str, headers: &axum::http::HeaderMap, body: &Bytes) -> bool {
    match key {
        None => true,
        Some(k) => verify(k, path, body, headers.get(AUTH_HEADER).and_then(|v| v.to_str().ok())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trip_and_rejection() {
        let key = auth_key(Some("secret")).unwrap();
        let sig = sign(&key, "/raft/vote", b"{}");
        assert!(verify(&key, "/raft/vote", b"{}", Some(&sig)));
        assert!(!verify(&key, "/raft/append", b"{}", Some(&sig)));
        assert!(!verify(&key, "/raft/vote", b"{ }", Some(&sig)));
        assert!(!verify(&auth_key(Some("other")).unwrap(), "/raft/vote", b"{}", Some(&sig)));
        assert!(!verify(&key, "/raft/vote", b"{}", None));
        assert!(!verify(&key, "/raft/vote", b"{}", Some("zz")));
        assert!(auth_key(Some("")).is_none());
    }
}
