//! Everything Patroni's `etcd3` section accepts, plus the cluster identity the backend needs.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::error::DcsError;

/// Settings of the etcd v3 backend. Field names follow the `etcd3:` section of `patroni.yml`; the agent maps
/// the config crate's types onto this struct.
#[derive(Debug, Clone, PartialEq)]
pub struct Etcd3Settings {
    /// Cluster name (`scope`).
    pub scope: String,
    /// Key namespace, `/service/` by default.
    pub namespace: String,
    /// This node's member name.
    pub name: String,
    /// Citus group of this node (0 is the coordinator); `None` without Citus.
    pub citus_group: Option<u32>,
    /// TTL of the leader and member keys (the lease TTL).
    pub ttl: Duration,
    /// Upper bound of every call.
    pub retry_timeout: Duration,
    /// `host:port` of one endpoint.
    pub host: Option<String>,
    /// Several `host:port` endpoints; entries may themselves be comma separated.
    pub hosts: Vec<String>,
    /// Port for `host`/`hosts` entries that have none (Patroni's `port`, default 2379).
    pub port: Option<u16>,
    /// Treat `hosts` as proxies: no discovery of the etcd cluster members.
    pub use_proxies: bool,
    /// `http(s)://[user:pass@]host:port` of one endpoint.
    pub url: Option<String>,
    /// URL of a proxy in front of etcd; implies `use_proxies`.
    pub proxy: Option<String>,
    /// Domain to look up `_etcd-client-ssl._tcp`, `_etcd-client._tcp`, ... SRV records in.
    pub srv: Option<String>,
    pub srv_suffix: Option<String>,
    /// `http` (default) or `https`; taken from `url`/`proxy` when those are set.
    pub protocol: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// CA certificate (PEM) to verify the servers with; without it the system roots are used.
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM); may contain the key too.
    pub cert: Option<PathBuf>,
    /// Client key (PEM).
    pub key: Option<PathBuf>,
    /// Password of an encrypted client key.
    pub key_password: Option<String>,
    /// `patronictl` mode: never grants a lease and reads linearizably.
    pub ctl: bool,
}

impl Etcd3Settings {
    /// Patroni's defaults for the given cluster and member; endpoints still have to be set.
    pub fn new(scope: impl Into<String>, name: impl Into<String>) -> Self {
        Etcd3Settings {
            scope: scope.into(),
            namespace: "/service/".into(),
            name: name.into(),
            citus_group: None,
            ttl: Duration::from_secs(30),
            retry_timeout: Duration::from_secs(10),
            host: None,
            hosts: vec![],
            port: None,
            use_proxies: false,
            url: None,
            proxy: None,
            srv: None,
            srv_suffix: None,
            protocol: None,
            username: None,
            password: None,
            cacert: None,
            cert: None,
            key: None,
            key_password: None,
            ctl: false,
        }
    }

    /// Settings from an `etcd3` (or `etcd`) section of `patroni.yml`, for member `name` of the configuration's
    /// cluster. The agent and `patronictl` both start from here.
    pub fn from_config(config: &patroni_config::Config, e: &patroni_config::EtcdConfig, name: &str) -> Self {
        let mut s = Etcd3Settings::new(config.scope.clone().unwrap_or_default(), name);
        s.namespace = config.namespace.clone();
        s.citus_group = config.citus.as_ref().and_then(|c| c.group).and_then(|g| u32::try_from(g).ok());
        s.host = e.host.clone();
        s.hosts = e.hosts.as_ref().map(|h| h.0.clone()).unwrap_or_default();
        s.use_proxies = e.use_proxies.unwrap_or(false);
        s.url = e.url.clone();
        s.proxy = e.proxy.clone();
        s.srv = e.srv.clone();
        s.srv_suffix = e.srv_suffix.clone();
        s.protocol = e.protocol.clone();
        s.username = e.username.clone();
        s.password = e.password.clone();
        s.cacert = e.cacert.as_ref().map(PathBuf::from);
        s.cert = e.cert.as_ref().map(PathBuf::from);
        s.key = e.key.as_ref().map(PathBuf::from);
        s
    }

    /// Convenience for tests and tools: settings pointing at the given endpoints (`http://h:p` or `h:p`).
    pub fn with_hosts(mut self, hosts: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.hosts = hosts.into_iter().map(Into::into).collect();
        self
    }

    /// True when the configured endpoints are not to be replaced by the etcd cluster's member list.
    pub(crate) fn proxies_only(&self) -> bool {
        self.use_proxies || self.proxy.is_some()
    }

    /// Credentials from the settings, or from the `url`/`proxy` user info.
    pub(crate) fn credentials(&self) -> Option<(String, String)> {
        if let (Some(u), Some(p)) = (&self.username, &self.password) {
            return Some((u.clone(), p.clone()));
        }
        let url = self.proxy.as_ref().or(self.url.as_ref())?;
        let parsed = Url::parse(url).ok()?;
        let user = parsed.username();
        let pass = parsed.password()?;
        (!user.is_empty()).then(|| (decode(user), decode(pass)))
    }

    /// Base URLs (`scheme://host:port`) from `proxy`, `url`, `hosts` or `host`, in Patroni's order of precedence.
    /// `srv` is resolved separately because it needs DNS.
    pub(crate) fn static_endpoints(&self) -> Result<Vec<Url>, DcsError> {
        if let Some(u) = self.proxy.as_ref().or(self.url.as_ref()) {
            return Ok(vec![base_url(u, None, 2379)?]);
        }
        let protocol = self.protocol.as_deref().unwrap_or("http");
        if !matches!(protocol, "http" | "https") {
            return Err(DcsError::Config(format!("etcd3 protocol must be http or https, not {protocol:?}")));
        }
        let port = self.port.unwrap_or(2379);
        let mut out = Vec::new();
        let entries: Vec<&str> = if !self.hosts.is_empty() {
            self.hosts.iter().flat_map(|h| h.split(',')).collect()
        } else {
            self.host.iter().map(String::as_str).collect()
        };
        for h in entries.into_iter().map(str::trim).filter(|h| !h.is_empty()) {
            let u = base_url(h, Some(protocol), port)?;
            if !out.contains(&u) {
                out.push(u);
            }
        }
        if out.is_empty() && self.srv.is_none() {
            return Err(DcsError::Config("etcd3 needs one of host, hosts, url, proxy or srv".into()));
        }
        Ok(out)
    }
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

/// `host:port`, `[v6]:port`, `host` or a full URL to `scheme://host:port` without path or credentials.
pub(crate) fn base_url(s: &str, protocol: Option<&str>, default_port: u16) -> Result<Url, DcsError> {
    let text = if s.contains("://") { s.to_string() } else { format!("{}://{}", protocol.unwrap_or("http"), s) };
    let mut u = Url::parse(&text).map_err(|e| DcsError::Config(format!("bad etcd endpoint {s:?}: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(DcsError::Config(format!("bad etcd endpoint {s:?}: scheme must be http or https")));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(DcsError::Config(format!("bad etcd endpoint {s:?}: no host")));
    }
    if u.port().is_none() {
        let _ = u.set_port(Some(default_port));
    }
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_path("");
    u.set_query(None);
    u.set_fragment(None);
    Ok(u)
}

/// Turns a `Url` into the base string requests are built from (no trailing slash).
pub(crate) fn base_str(u: &Url) -> String {
    u.as_str().trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> Etcd3Settings {
        Etcd3Settings::new("batman", "node1")
    }

    #[test]
    fn endpoints_from_each_option() {
        let mut c = s();
        c.host = Some("10.0.0.1".into());
        assert_eq!(base_str(&c.static_endpoints().unwrap()[0]), "http://10.0.0.1:2379");
        c.hosts = vec!["a:1,b:2".into(), " c ".into(), "[::1]:5".into()];
        c.protocol = Some("https".into());
        let e: Vec<String> = c.static_endpoints().unwrap().iter().map(base_str).collect();
        assert_eq!(e, ["https://a:1", "https://b:2", "https://c:2379", "https://[::1]:5"]);
        c.url = Some("https://user:p%40ss@etcd.example:2400/some/path".into());
        let e: Vec<String> = c.static_endpoints().unwrap().iter().map(base_str).collect();
        assert_eq!(e, ["https://etcd.example:2400"]);
        assert_eq!(c.credentials(), Some(("user".into(), "p@ss".into())));
        c.proxy = Some("http://proxy:8080".into());
        assert!(c.proxies_only());
        assert_eq!(base_str(&c.static_endpoints().unwrap()[0]), "http://proxy:8080");
    }

    #[test]
    fn bad_settings_are_named() {
        let c = s();
        assert!(matches!(c.static_endpoints(), Err(DcsError::Config(m)) if m.contains("host")));
        let mut c = s();
        c.host = Some("a:1".into());
        c.protocol = Some("ftp".into());
        assert!(matches!(c.static_endpoints(), Err(DcsError::Config(m)) if m.contains("ftp")));
        let mut c = s();
        c.url = Some("ftp://x".into());
        assert!(c.static_endpoints().is_err());
    }
}
