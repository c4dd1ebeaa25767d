//! `srv` / `srv_suffix`: finding etcd through DNS SRV records, as Patroni does.
//!
//! A DNS SRV lookup is one UDP question and answer; a few dozen lines here avoid a resolver dependency.
//! Services are tried in Patroni's order; client services give client URLs directly, server (peer) services give
//! peers whose `/members` answer lists the client URLs.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::net::UdpSocket;
use tracing::{debug, info};
use url::Url;

use super::settings::base_url;
use crate::error::DcsError;

const SERVICES: [(&str, &str, bool); 6] = [
    ("_etcd-client-ssl", "https", false),
    ("_etcd-client", "http", false),
    ("_etcd-ssl", "https", false),
    ("_etcd", "http", false),
    ("_etcd-server-ssl", "https", true),
    ("_etcd-server", "http", true),
];

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

pub(crate) async fn discover(domain: &str, suffix: Option<&str>, budget: Duration) -> Result<Vec<Url>, DcsError> {
    discover_with(&nameservers(), domain, suffix, budget).await
}

async fn discover_with(
    servers: &[SocketAddr],
    domain: &str,
    suffix: Option<&str>,
    budget: Duration,
) -> Result<Vec<Url>, DcsError> {
    let suffix = suffix.map(|s| format!("-{s}")).unwrap_or_default();
    let per_query = (budget / 6).max(Duration::from_millis(500));
    for (service, scheme, peers) in SERVICES {
        let name = format!("{service}{suffix}._tcp.{}", domain.trim_end_matches('.'));
        let mut records = match query_any(servers, &name, per_query).await {
            Ok(r) if !r.is_empty() => r,
            Ok(_) => continue,
            Err(e) => {
                debug!("SRV {name}: {e}");
                continue;
            }
        };
        records.sort_by_key(|r| (r.priority, std::cmp::Reverse(r.weight)));
        let hosts: Vec<Url> = records
            .iter()
            .filter_map(|r| {
                base_url(&format!("{}:{}", r.target.trim_end_matches('.'), r.port), Some(scheme), r.port).ok()
            })
            .collect();
        if !peers {
            info!("etcd endpoints from SRV {name}: {hosts:?}");
            return Ok(hosts);
        }
        if let Some(urls) = client_urls_from_peers(&hosts, per_query).await {
            info!("etcd endpoints from peers in SRV {name}: {urls:?}");
            return Ok(urls);
        }
    }
    Err(DcsError::Config(format!("no etcd SRV records found for domain {domain:?}")))
}

/// Asks etcd peers (`/members` on the peer port) for the cluster's client URLs.
async fn client_urls_from_peers(peers: &[Url], timeout: Duration) -> Option<Vec<Url>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Peer certificates are checked by etcd's peers, not by its clients; Patroni does not verify here either.
    let http = reqwest::Client::builder().tls_danger_accept_invalid_certs(true).timeout(timeout).build().ok()?;
    for peer in peers {
        let Ok(resp) = http.get(format!("{}members", peer.as_str())).send().await else {
            continue;
        };
        let Ok(v) = resp.json::<Value>().await else {
            continue;
        };
        let urls: Vec<Url> = v
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|m| m.get("clientURLs").and_then(Value::as_array).cloned().unwrap_or_default())
            .filter_map(|u| u.as_str().and_then(|u| base_url(u, None, 2379).ok()))
            .collect();
        if !urls.is_empty() {
            return Some(urls);
        }
    }
    None
}

fn nameservers() -> Vec<SocketAddr> {
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out: Vec<SocketAddr> = conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    if out.is_empty() {
        out.push(SocketAddr::from(([127, 0, 0, 1], 53)));
    }
    out
}

async fn query_any(servers: &[SocketAddr], name: &str, timeout: Duration) -> Result<Vec<SrvRecord>, String> {
    let mut last = String::from("no nameserver");
    for server in servers {
        match tokio::time::timeout(timeout, query(*server, name)).await {
            Ok(Ok(r)) => return Ok(r),
            Ok(Err(e)) => last = e,
            Err(_) => last = format!("{server}: timed out"),
        }
    }
    Err(last)
}

async fn query(server: SocketAddr, name: &str) -> Result<Vec<SrvRecord>, String> {
    let bind: SocketAddr =
        if server.is_ipv4() { SocketAddr::from(([0, 0, 0, 0], 0)) } else { SocketAddr::from(([0u16; 8], 0)) };
    let sock = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    let id = u16::try_from(std::process::id() & 0xffff).unwrap_or(0x5a5a);
    let msg = build_query(id, name)?;
    sock.send_to(&msg, server).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, from) = sock.recv_from(&mut buf).await.map_err(|e| e.to_string())?;
        if from != server || n < 2 || u16::from_be_bytes([buf[0], buf[1]]) != id {
            continue;
        }
        return parse_response(&buf[..n]);
    }
}

pub(crate) fn build_query(id: u16, name: &str) -> Result<Vec<u8>, String> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        let len = u8::try_from(label.len()).map_err(|_| format!("DNS label too long in {name}"))?;
        if len == 0 || len > 63 {
            return Err(format!("bad DNS name {name}"));
        }
        m.push(len);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&[0, 33, 0, 1]);
    Ok(m)
}

pub(crate) fn parse_response(m: &[u8]) -> Result<Vec<SrvRecord>, String> {
    let short = || "truncated DNS answer".to_string();
    let u16_at = |i: usize| -> Result<u16, String> {
        Ok(u16::from_be_bytes([*m.get(i).ok_or_else(short)?, *m.get(i + 1).ok_or_else(short)?]))
    };
    let rcode = u16_at(2)? & 0x000f;
    if rcode == 3 {
        return Ok(vec![]);
    }
    if rcode != 0 {
        return Err(format!("DNS error code {rcode}"));
    }
    let questions = u16_at(4)?;
    let answers = u16_at(6)?;
    let mut pos = 12;
    for _ in 0..questions {
        pos = read_name(m, pos)?.1 + 4;
    }
    let mut out = Vec::new();
    for _ in 0..answers {
        pos = read_name(m, pos)?.1;
        let rtype = u16_at(pos)?;
        let rdlen = usize::from(u16_at(pos + 8)?);
        let rdata = pos + 10;
        if rtype == 33 {
            out.push(SrvRecord {
                priority: u16_at(rdata)?,
                weight: u16_at(rdata + 2)?,
                port: u16_at(rdata + 4)?,
                target: read_name(m, rdata + 6)?.0,
            });
        }
        pos = rdata + rdlen;
    }
    Ok(out)
}

/// Reads a possibly compressed name; returns it and the position after it in the original place.
fn read_name(m: &[u8], start: usize) -> Result<(String, usize), String> {
    let mut labels = Vec::new();
    let mut pos = start;
    let mut end = None;
    for _ in 0..128 {
        let len = *m.get(pos).ok_or("truncated DNS name")?;
        if len & 0xc0 == 0xc0 {
            let lo = *m.get(pos + 1).ok_or("truncated DNS pointer")?;
            end.get_or_insert(pos + 2);
            pos = (usize::from(len & 0x3f) << 8) | usize::from(lo);
            continue;
        }
        if len == 0 {
            return Ok((labels.join("."), end.unwrap_or(pos + 1)));
        }
        let from = pos + 1;
        let to = from + usize::from(len);
        let label = m.get(from..to).ok_or("truncated DNS label")?;
        labels.push(String::from_utf8_lossy(label).into_owned());
        pos = to;
    }
    Err("DNS name pointer loop".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srv_answer_with_compression() {
        let q = build_query(7, "_etcd-client._tcp.example.org").unwrap();
        let mut m = q.clone();
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = 1; // one answer
                  // name: pointer to the question name at offset 12
        m.extend_from_slice(&[0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 60]);
        let mut rdata = vec![0, 10, 0, 5, 0x09, 0x4b];
        rdata.extend_from_slice(&[5]);
        rdata.extend_from_slice(b"etcd1");
        rdata.extend_from_slice(&[0xc0, 12 + 18]); // "example.org" inside the question name
        m.extend_from_slice(&u16::try_from(rdata.len()).unwrap().to_be_bytes());
        m.extend_from_slice(&rdata);
        let r = parse_response(&m).unwrap();
        assert_eq!(r, vec![SrvRecord { priority: 10, weight: 5, port: 2379, target: "etcd1.example.org".into() }]);
    }

    /// A one-zone DNS server: answers `_etcd-client._tcp.<zone>` with two records, NXDOMAIN for the rest.
    async fn fake_dns(zone: &'static str) -> SocketAddr {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let q = &buf[..n];
                let (name, _) = read_name(q, 12).unwrap();
                let mut m = q.to_vec();
                m[2] = 0x81;
                if name != format!("_etcd-client._tcp.{zone}") {
                    m[3] = 0x83;
                } else {
                    m[3] = 0x80;
                    m[7] = 2;
                    for (prio, port, target) in [(20u16, 2380u16, "b.example"), (10, 2379, "127.0.0.1")] {
                        m.extend_from_slice(&[0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 60]);
                        let mut rdata = Vec::new();
                        rdata.extend_from_slice(&prio.to_be_bytes());
                        rdata.extend_from_slice(&[0, 1]);
                        rdata.extend_from_slice(&port.to_be_bytes());
                        for label in target.split('.') {
                            rdata.push(u8::try_from(label.len()).unwrap());
                            rdata.extend_from_slice(label.as_bytes());
                        }
                        rdata.push(0);
                        m.extend_from_slice(&u16::try_from(rdata.len()).unwrap().to_be_bytes());
                        m.extend_from_slice(&rdata);
                    }
                }
                let _ = sock.send_to(&m, from).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn discovery_tries_services_in_order_and_sorts_by_priority() {
        let dns = fake_dns("example.org").await;
        let urls = discover_with(&[dns], "example.org", None, Duration::from_secs(3)).await.unwrap();
        let urls: Vec<&str> = urls.iter().map(Url::as_str).collect();
        assert_eq!(urls, ["http://127.0.0.1:2379/", "http://b.example:2380/"]);
        // a suffix changes the names queried: nothing matches here
        let e = discover_with(&[dns], "example.org", Some("foo"), Duration::from_secs(3)).await;
        assert!(matches!(e, Err(DcsError::Config(m)) if m.contains("example.org")));
    }

    #[test]
    fn nxdomain_is_empty_and_garbage_is_an_error() {
        let mut m = build_query(1, "a.b").unwrap();
        m[3] = 0x83;
        assert_eq!(parse_response(&m).unwrap(), vec![]);
        assert!(parse_response(&[0, 1]).is_err());
    }
}
