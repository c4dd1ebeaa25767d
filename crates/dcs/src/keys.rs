//! The key layout, exactly as Patroni stores it. Only this crate knows key names.

/// `initialize`: the system identifier of the cluster (`""` while bootstrapping).
pub const INITIALIZE: &str = "initialize";
pub const CONFIG: &str = "config";
pub const LEADER: &str = "leader";
pub const FAILOVER: &str = "failover";
pub const HISTORY: &str = "history";
/// Prefix of member keys: `members/<name>`.
pub const MEMBERS: &str = "members/";
/// Legacy (Patroni < 2.1) leader WAL position, a plain integer.
pub const LEADER_OPTIME: &str = "optime/leader";
pub const STATUS: &str = "status";
pub const SYNC: &str = "sync";
pub const FAILSAFE: &str = "failsafe";

/// Where one cluster (or one Citus group) lives: `/<namespace>/<scope>/` or `/<namespace>/<scope>/<group>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPath {
    /// `/<namespace>/<scope>` with duplicate slashes collapsed, no trailing slash.
    base: String,
    group: Option<u32>,
}

impl ClusterPath {
    /// `namespace` defaults to `/service/` in Patroni; leading/trailing/duplicate slashes do not matter.
    pub fn new(namespace: &str, scope: &str, group: Option<u32>) -> Self {
        let joined = format!("/{namespace}/{scope}");
        let mut base = String::with_capacity(joined.len());
        for c in joined.chars() {
            if c == '/' && base.ends_with('/') {
                continue;
            }
            base.push(c);
        }
        while base.len() > 1 && base.ends_with('/') {
            base.pop();
        }
        ClusterPath { base, group }
    }

    pub fn group(&self) -> Option<u32> {
        self.group
    }

    /// `/<namespace>/<scope>/` — the prefix of every group of a Citus cluster.
    pub fn scope_prefix(&self) -> String {
        format!("{}/", self.base)
    }

    /// The prefix of this cluster's keys, ending in `/`.
    pub fn prefix(&self) -> String {
        match self.group {
            Some(g) => format!("{}/{}/", self.base, g),
            None => format!("{}/", self.base),
        }
    }

    /// Absolute key for a relative name such as [`LEADER`].
    pub fn key(&self, relative: &str) -> String {
        format!("{}{}", self.prefix(), relative.trim_start_matches('/'))
    }

    pub fn member(&self, name: &str) -> String {
        self.key(&format!("{MEMBERS}{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_patroni_layout() {
        let p = ClusterPath::new("/service/", "batman", None);
        assert_eq!(p.key(LEADER), "/service/batman/leader");
        assert_eq!(p.member("node1"), "/service/batman/members/node1");
        assert_eq!(p.key(LEADER_OPTIME), "/service/batman/optime/leader");
        assert_eq!(p.prefix(), "/service/batman/");
        let p = ClusterPath::new("service", "batman", Some(1));
        assert_eq!(p.key(STATUS), "/service/batman/1/status");
        assert_eq!(p.scope_prefix(), "/service/batman/");
        let p = ClusterPath::new("//ns//", "s", None);
        assert_eq!(p.key(CONFIG), "/ns/s/config");
        let p = ClusterPath::new("/", "s", None);
        assert_eq!(p.key(CONFIG), "/s/config");
    }
}
