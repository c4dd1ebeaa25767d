//! Who may call unsafe endpoints: `restapi.allowlist` (with cluster members), client
//! certificates and basic authentication, checked in that order as Patroni does.

use base64::Engine;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network (`10.0.0.0/8`, `::1/128`); a bare address is a single-host network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Text that is not an address or network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid network {0:?}")]
pub struct IpNetError(pub String);

impl IpNet {
    /// The network of a single address.
    pub fn host(addr: IpAddr) -> Self {
        let addr = canonical(addr);
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix }
    }

    /// Whether `ip` lies in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IpNetError(s.to_owned());
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = canonical(a.trim().parse::<IpAddr>().map_err(|_| err())?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(err)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Clients of a dual-stack listener show up as `::ffff:a.b.c.d`; compare them as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Resolves allowlist entries: networks and addresses directly, host names through DNS.
pub async fn resolve_allowlist(entries: &[String]) -> Vec<IpNet> {
    let mut out = Vec::new();
    for e in entries {
        let e = e.trim();
        if let Ok(net) = e.parse::<IpNet>() {
            out.push(net);
            continue;
        }
        if e.contains('/') {
            tracing::error!("Invalid value \"{e}\" in the allowlist");
            continue;
        }
        out.extend(resolve_host(e).await);
    }
    out
}

/// Every address `host` resolves to, as single-host networks; logs and yields none on failure.
pub async fn resolve_host(host: &str) -> Vec<IpNet> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return vec![IpNet::host(ip)];
    }
    match tokio::net::lookup_host((host, 0)).await {
        Ok(addrs) => addrs.map(|a| IpNet::host(a.ip())).collect(),
        Err(e) => {
            tracing::error!("Failed to resolve {host}: {e}");
            Vec::new()
        }
    }
}

/// Host part of an `api_url` such as `https://[::1]:8008/patroni`.
pub fn api_url_host(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    u.host_str().map(str::to_owned)
}

/// Expected basic-auth credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"<hidden>").finish()
    }
}

/// Compares without an early exit so timing does not reveal how much of a secret matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// Checks an `Authorization` header against `expected`: `Err(text)` with Patroni's 401 text.
pub fn check_basic_auth(expected: Option<&Credentials>, header: Option<&str>) -> Result<(), &'static str> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let Some(header) = header else {
        return Err("no auth header received");
    };
    let Some(token) = header.strip_prefix("Basic ") else {
        return Err("not authenticated");
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(token.trim()) else {
        return Err("not authenticated");
    };
    let want = format!("{}:{}", expected.username, expected.password);
    if constant_time_eq(&decoded, want.as_bytes()) {
        Ok(())
    } else {
        Err("not authenticated")
    }
}

/// The `Authorization` header value for `credentials`.
pub fn basic_auth_header(username: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}")))
}

/// Whether `ip` is in any of `nets`.
pub fn allowed(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let n: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        let h: IpNet = "127.0.0.1".parse().unwrap();
        assert!(h.contains("127.0.0.1".parse().unwrap()));
        assert!(!h.contains("127.0.0.2".parse().unwrap()));
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0/8", "::/129"] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn allowlist_resolution() {
        let nets =
            resolve_allowlist(&["127.0.0.1".into(), "192.168.0.0/16".into(), "bad/99".into(), "localhost".into()])
                .await;
        assert!(allowed(&nets, "192.168.4.4".parse().unwrap()));
        assert!(allowed(&nets, "127.0.0.1".parse().unwrap()));
        assert!(!allowed(&nets, "10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn basic_auth() {
        let c = Credentials { username: "admin".into(), password: "s3cr:et".into() };
        assert_eq!(check_basic_auth(None, None), Ok(()));
        assert_eq!(check_basic_auth(Some(&c), None), Err("no auth header received"));
        assert_eq!(check_basic_auth(Some(&c), Some("Bearer x")), Err("not authenticated"));
        assert_eq!(check_basic_auth(Some(&c), Some("Basic !!!")), Err("not authenticated"));
        assert_eq!(check_basic_auth(Some(&c), Some(&basic_auth_header("admin", "wrong"))), Err("not authenticated"));
        assert_eq!(check_basic_auth(Some(&c), Some(&basic_auth_header("admin", "s3cr:et"))), Ok(()));
        assert!(!format!("{c:?}").contains("s3cr"));
    }

    #[test]
    fn url_hosts() {
        assert_eq!(api_url_host("http://10.0.0.1:8008/patroni").as_deref(), Some("10.0.0.1"));
        assert_eq!(api_url_host("https://[::1]:8008/patroni").as_deref(), Some("[::1]"));
        assert_eq!(api_url_host("garbage"), None);
    }
}
