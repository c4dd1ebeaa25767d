//! `patroni --generate-sample-config`: a commented starting configuration, with values taken from the
//! `PATRONI_*` environment where set, local defaults (hostname, its address) otherwise, and `#FIXME` for
//! what only the user can know.

use crate::env::{environment_tree, EnvMap};
use crate::params::CONTROLLED_PARAMETERS;
use crate::tree::deep_merge;
use crate::yaml_out::to_yaml;
use serde_json::{json, Map, Value};

/// The marker Patroni writes for values the user must fill in.
pub const FIXME: &str = "#FIXME";

/// Facts about the local machine the sample is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleContext {
    /// The machine's hostname (member name unless `PATRONI_NAME` is set).
    pub hostname: String,
    /// The address the hostname resolves to (listen and connect addresses).
    pub ip: String,
    /// The PostgreSQL found on the machine still has `wal_keep_segments` (before 13) rather than
    /// `wal_keep_size`; the caller asks the `postgres` crate, which knows what differs by version.
    pub wal_keep_segments: bool,
}

impl SampleContext {
    /// Looks up the hostname and its address; what depends on the PostgreSQL version is left for the caller.
    pub fn detect() -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        let ip = resolve(&hostname).unwrap_or_else(|| "127.0.0.1".to_owned());
        Self { hostname, ip, wal_keep_segments: false }
    }
}

fn resolve(host: &str) -> Option<String> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<std::net::SocketAddr> = (host, 0).to_socket_addrs().ok()?.collect();
    addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).map(|a| a.ip().to_string())
}

/// The sample configuration as a value tree (environment applied).
pub fn sample_tree(ctx: &SampleContext, env: &EnvMap) -> Value {
    let mut params = Map::new();
    for p in CONTROLLED_PARAMETERS {
        let skip = match p.name {
            "wal_keep_segments" => !ctx.wal_keep_segments,
            "wal_keep_size" => ctx.wal_keep_segments,
            _ => false,
        };
        if let (false, Some(d)) = (skip, p.default_value()) {
            params.insert(p.name.to_owned(), d);
        }
    }
    params.insert("wal_level".to_owned(), json!("replica"));

    // Every supported major (12+) has scram-sha-256 and a rewind role with the grants pg_rewind needs.
    let method = "scram-sha-256";
    let auth = json!({
        "replication": {"username": "replicator", "password": FIXME},
        "rewind": {"username": "rewind_user", "password": FIXME},
        "superuser": {"username": "postgres", "password": FIXME},
    });
    let mut pg = json!({
        "authentication": auth,
        "bin_dir": "",
        "connect_address": format!("{}:5432", ctx.ip),
        "data_dir": FIXME,
        "listen": format!("{}:5432", ctx.ip),
        "pg_hba": [
            format!("host all all all {method}"),
            format!("host replication replicator all {method}"),
        ],
    });
    pg["parameters"] = json!({"password_encryption": "scram-sha-256"});

    let mut tree = json!({
        "scope": FIXME,
        "name": ctx.hostname,
        "log": {
            "format": "%(asctime)s %(levelname)s: %(message)s",
            "level": "INFO",
            "max_queue_size": 1000,
            "traceback_level": "ERROR",
            "type": "plain",
        },
        "restapi": {
            "connect_address": format!("{}:8008", ctx.ip),
            "listen": format!("{}:8008", ctx.ip),
        },
        "bootstrap": {
            "dcs": {
                "loop_wait": 10,
                "retry_timeout": 10,
                "ttl": 30,
                "postgresql": {
                    "parameters": params,
                    "use_pg_rewind": true,
                    "use_slots": true,
                },
            },
        },
        "postgresql": pg,
        "tags": {
            "clonefrom": true,
            "failover_priority": 1,
            "noloadbalance": false,
            "nostream": false,
            // Patroni's sample also sets `nosync: false`, which its own validator then rejects
            // together with `sync_priority`.
            "sync_priority": 1,
        },
    });
    let env_tree = environment_tree(env);
    let has_dcs = ["consul", "etcd", "etcd3", "exhibitor", "kubernetes", "raft", "zookeeper"]
        .iter()
        .any(|d| env_tree.get(*d).is_some());
    if !has_dcs {
        // Patroni's sample has no DCS section and so does not validate; name the usual one so it does.
        tree["etcd3"] = json!({"hosts": ["127.0.0.1:2379"]});
    }
    deep_merge(&mut tree, env_tree);
    tree
}

const HEAD_SECTIONS: &[&str] = &[
    "scope",
    "namespace",
    "name",
    "log",
    "restapi",
    "ctl",
    "citus",
    "consul",
    "etcd",
    "etcd3",
    "exhibitor",
    "kubernetes",
    "raft",
    "zookeeper",
];
const TAIL_SECTIONS: &[&str] = &["postgresql", "watchdog", "tags"];

/// One `key: value` block, stripped of its final newline, every line after the first prefixed.
fn block(key: &str, value: &Value, prefix: &str) -> String {
    let mut one = Map::new();
    one.insert(key.to_owned(), value.clone());
    let text = to_yaml(&Value::Object(one), true);
    format!("{prefix}{}", text.trim().replace('\n', &format!("\n{prefix}")))
}

fn section(lines: &mut Vec<String>, root: &Map<String, Value>, name: &str) {
    if let Some(v) = root.get(name) {
        if v.is_object() {
            lines.push(String::new());
        }
        lines.push(block(name, v, ""));
    }
}

/// Lays a configuration out the way Patroni's generator does: known sections in a fixed order, a blank line
/// before each mapping, the bootstrap comments, `loop_wait`/`retry_timeout`/`ttl` first in `bootstrap.dcs`,
/// keys sorted inside sections, no final newline. Sections Patroni's generator would drop (other
/// `bootstrap` keys, unknown top-level keys) are kept, after their neighbours.
pub fn render_config(tree: &Value) -> String {
    let Some(root) = tree.as_object() else {
        return to_yaml(tree, true);
    };
    let mut lines: Vec<String> = Vec::new();
    for name in HEAD_SECTIONS {
        section(&mut lines, root, name);
    }
    if let Some(b) = root.get("bootstrap") {
        lines.push("\n# The bootstrap configuration. Works only when the cluster is not yet initialized.".to_owned());
        lines.push(
            "# If the cluster is already initialized, all changes in the `bootstrap` section are ignored!".to_owned(),
        );
        lines.push("bootstrap:".to_owned());
        let empty = Map::new();
        let b = b.as_object().unwrap_or(&empty);
        if let Some(dcs) = b.get("dcs") {
            lines.extend(
                [
                    "  # This section will be written into <dcs>:/<namespace>/<scope>/config after initializing",
                    "  # new cluster and all other cluster members will use it as a `global configuration`.",
                    "  # WARNING! If you want to change any of the parameters that were set up",
                    "  # via `bootstrap.dcs` section, please use `patronictl edit-config`!",
                    "  dcs:",
                ]
                .map(str::to_owned),
            );
            let dcs = dcs.as_object().unwrap_or(&empty);
            let first = ["loop_wait", "retry_timeout", "ttl"];
            for name in first {
                if let Some(v) = dcs.get(name) {
                    lines.push(block(name, v, "    "));
                }
            }
            for (name, v) in dcs.iter().filter(|(k, _)| !first.contains(&k.as_str())) {
                lines.push(block(name, v, "    "));
            }
        }
        let mut rest: Vec<(&String, &Value)> = b.iter().filter(|(k, _)| k.as_str() != "dcs").collect();
        rest.sort_by(|a, b| a.0.cmp(b.0));
        for (name, v) in rest {
            lines.push(block(name, v, "  "));
        }
    }
    for name in TAIL_SECTIONS {
        section(&mut lines, root, name);
    }
    let mut others: Vec<&String> = root
        .keys()
        .filter(|k| !HEAD_SECTIONS.contains(&k.as_str()) && !TAIL_SECTIONS.contains(&k.as_str()) && *k != "bootstrap")
        .collect();
    others.sort();
    for name in others {
        section(&mut lines, root, name);
    }
    lines.join("\n")
}

/// The text of `patroni --generate-sample-config`.
pub fn generate_sample(ctx: &SampleContext, env: &EnvMap) -> String {
    render_config(&sample_tree(ctx, env))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> SampleContext {
        SampleContext { hostname: "db1".to_owned(), ip: "10.1.2.3".to_owned(), wal_keep_segments: false }
    }

    #[test]
    fn sample_validates_and_round_trips() {
        let text = generate_sample(&ctx(), &EnvMap::new());
        let loaded = crate::load_str(&text, &EnvMap::new()).unwrap();
        assert_eq!(loaded.config.name.as_deref(), Some("db1"));
        assert_eq!(loaded.config.scope.as_deref(), Some(FIXME));
        assert_eq!(loaded.tree, sample_tree(&ctx(), &EnvMap::new()));
        assert!(text.starts_with("scope: '#FIXME'\nname: db1\n\nlog:\n"));
        assert!(text.contains("\n\n# The bootstrap configuration."));
        assert!(text.contains("  dcs:\n    loop_wait: 10\n    retry_timeout: 10\n    ttl: 30\n    postgresql:\n"));
        assert!(text.ends_with("  sync_priority: 1"));
    }

    #[test]
    fn environment_fills_the_sample() {
        let env: EnvMap = [("PATRONI_SCOPE", "batman"), ("PATRONI_CONSUL_HOST", "10.0.0.9:8500")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let tree = sample_tree(&ctx(), &env);
        assert_eq!(tree["scope"], "batman");
        assert!(tree.get("etcd3").is_none());
        assert_eq!(tree["consul"]["host"], "10.0.0.9:8500");
    }

    #[test]
    fn postgres_12_gets_wal_keep_segments() {
        let params =
            |c: &SampleContext| sample_tree(c, &EnvMap::new())["bootstrap"]["dcs"]["postgresql"]["parameters"].clone();
        let mut c = ctx();
        assert_eq!(params(&c)["wal_keep_size"], "128MB");
        assert!(params(&c).get("wal_keep_segments").is_none());
        c.wal_keep_segments = true;
        assert_eq!(params(&c)["wal_keep_segments"], 8);
        assert!(params(&c).get("wal_keep_size").is_none());
        assert!(sample_tree(&c, &EnvMap::new())["postgresql"]["authentication"].get("rewind").is_some());
    }
}
