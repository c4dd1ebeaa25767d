//! Everything Patroni's `zookeeper` section accepts, plus the cluster identity the backend needs.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::error::DcsError;

/// Settings of the ZooKeeper backend. Field names follow the `zookeeper:` section of `patroni.yml`.
#[derive(Debug, Clone, PartialEq)]
pub struct ZooKeeperSettings {
    pub scope: String,
    /// Key namespace, `/service/` by default.
    pub namespace: String,
    pub name: String,
    /// Citus group of this node (0 is the coordinator).
    pub citus_group: Option<u32>,
    /// The session timeout asked of ZooKeeper: the leader and member znodes live as long as the session.
    pub ttl: Duration,
    /// Upper bound of every call.
    pub retry_timeout: Duration,
    /// `host:port` servers of the ensemble; entries may themselves be comma separated.
    pub hosts: Vec<String>,
    pub use_ssl: bool,
    /// With `use_ssl`: CA certificate file (PEM) trusted besides the system's CA bundle.
    pub cacert: Option<PathBuf>,
    /// With `use_ssl`: client certificate and key files (PEM), used only together, as kazoo does.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Password of an encrypted (PKCS#8) `key`.
    pub key_password: Option<String>,
    /// With `use_ssl`: check the server's certificate chain (default true).
    pub verify: bool,
    /// x509 principal → permissions (`READ`, `WRITE`, `CREATE`, `DELETE`, `ADMIN`, `ALL`) of created znodes.
    pub set_acls: Vec<(String, Vec<String>)>,
    /// Authentication scheme → credentials added to the session (`digest` → `user:password`).
    pub auth_data: Vec<(String, String)>,
    /// `patronictl` mode: no member of its own.
    pub ctl: bool,
}

impl ZooKeeperSettings {
    pub fn new(scope: impl Into<String>, name: impl Into<String>) -> Self {
        ZooKeeperSettings {
            scope: scope.into(),
            namespace: "/service/".into(),
            name: name.into(),
            citus_group: None,
            ttl: Duration::from_secs(30),
            retry_timeout: Duration::from_secs(10),
            hosts: vec![],
            use_ssl: false,
            cacert: None,
            cert: None,
            key: None,
            key_password: None,
            verify: true,
            set_acls: vec![],
            auth_data: vec![],
            ctl: false,
        }
    }

    pub fn with_hosts(mut self, hosts: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.hosts = hosts.into_iter().map(Into::into).collect();
        self
    }

    /// Settings from a `zookeeper` section, for member `name` of the configuration's cluster.
    pub fn from_config(config: &patroni_config::Config, z: &patroni_config::ZooKeeperConfig, name: &str) -> Self {
        let mut s = ZooKeeperSettings::new(config.scope.clone().unwrap_or_default(), name);
        s.namespace = config.namespace.clone();
        s.citus_group = config.citus.as_ref().and_then(|c| c.group).and_then(|g| u32::try_from(g).ok());
        s.hosts = z.hosts.as_ref().map(|h| h.0.clone()).unwrap_or_default();
        s.use_ssl = z.use_ssl.unwrap_or(false);
        s.cacert = z.cacert.as_ref().map(PathBuf::from);
        s.cert = z.cert.as_ref().map(PathBuf::from);
        s.key = z.key.as_ref().map(PathBuf::from);
        s.key_password = z.key_password.clone();
        s.verify = z.verify.unwrap_or(true);
        s.set_acls = z
            .set_acls
            .iter()
            .flatten()
            .map(|(principal, perms)| (principal.clone(), permission_words(perms)))
            .collect();
        s.auth_data = z.auth_data.iter().flatten().map(|(scheme, v)| (scheme.clone(), text(v))).collect();
        s
    }

    /// The connect string: servers joined by commas, as kazoo takes them.
    pub(crate) fn connect_string(&self) -> Result<String, DcsError> {
        let hosts: Vec<&str> =
            self.hosts.iter().flat_map(|h| h.split(',')).map(str::trim).filter(|h| !h.is_empty()).collect();
        if hosts.is_empty() {
            return Err(DcsError::Config("zookeeper.hosts is required".into()));
        }
        Ok(hosts.join(","))
    }
}

/// A permission list as Patroni reads it: a list of words, or one string of words.
fn permission_words(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(text).collect(),
        Value::String(s) => s.split([',', ' ']).filter(|w| !w.is_empty()).map(String::from).collect(),
        other => vec![text(other)],
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_string_from_lists_and_comma_strings() {
        let s = ZooKeeperSettings::new("b", "n").with_hosts(["a:2181,b:2181", " c:1 "]);
        assert_eq!(s.connect_string().unwrap(), "a:2181,b:2181,c:1");
        assert!(ZooKeeperSettings::new("b", "n").connect_string().is_err());
    }

    #[test]
    fn permissions_as_list_or_string() {
        assert_eq!(permission_words(&serde_json::json!(["read", "ALL"])), ["read", "ALL"]);
        assert_eq!(permission_words(&serde_json::json!("READ, WRITE")), ["READ", "WRITE"]);
    }
}
