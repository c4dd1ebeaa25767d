//! Where patronictl gets its configuration (file, `PATRONICTL_CONFIG_FILE`, environment, `--dcs-url`) and
//! how it reaches the DCS and the members' REST APIs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use patroni_api::{ApiClient, ClientSettings};
use patroni_config::{Config, EnvMap};
use patroni_dcs::etcd::Etcd;
use patroni_dcs::etcd3::{Etcd3, Etcd3Settings};
use patroni_dcs::exhibitor::{Exhibitor, ExhibitorSettings};
use patroni_dcs::raft::{Raft, RaftSettings};
use patroni_dcs::zookeeper::{ZooKeeper, ZooKeeperSettings};
use patroni_dcs::Dcs;
use serde_json::{Map, Value};

/// How a failure ends the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// `Error: <message>` on stderr, exit 1 (click's `ClickException`).
    Error,
    /// End of input at a prompt: `Aborted!`, exit 1.
    Aborted,
    /// Bad command line: usage line(s), then `Error: <message>`, exit 2.
    Usage(String),
}

/// A problem patronictl reports, with how it ends the program.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CtlError(pub String, pub ErrorKind);

impl CtlError {
    pub fn new(msg: impl Into<String>) -> Self {
        CtlError(msg.into(), ErrorKind::Error)
    }

    pub fn aborted() -> Self {
        CtlError("Aborted!".into(), ErrorKind::Aborted)
    }

    /// `usage` is the `Usage: …` text of the command.
    pub fn usage(usage: impl Into<String>, msg: impl Into<String>) -> Self {
        CtlError(msg.into(), ErrorKind::Usage(usage.into()))
    }

    /// Prints the error as click does and returns the exit code.
    pub fn report(&self) -> i32 {
        match &self.1 {
            ErrorKind::Error => {
                eprintln!("Error: {}", self.0);
                1
            }
            ErrorKind::Aborted => {
                eprintln!("Aborted!");
                1
            }
            ErrorKind::Usage(u) => {
                eprintln!("{u}\n\nError: {}", self.0);
                2
            }
        }
    }
}

pub type CtlResult<T> = Result<T, CtlError>;

/// The DCS sections `--dcs-url` replaces, with their default ports.
const DCS_DEFAULTS: [(&str, u16); 6] =
    [("zookeeper", 2181), ("exhibitor", 8181), ("consul", 8500), ("etcd", 2379), ("etcd3", 2379), ("raft", 2222)];

/// `click.get_app_dir('patroni')` + `patronictl.yaml`: `$XDG_CONFIG_HOME/patroni` or `~/.config/patroni` on
/// Unix, `~/Library/Application Support/patroni` on macOS.
pub fn default_config_path(env: &EnvMap) -> PathBuf {
    let home = env.get("HOME").cloned().unwrap_or_else(|| "~".into());
    let dir = if cfg!(target_os = "macos") {
        Path::new(&home).join("Library/Application Support/patroni")
    } else {
        match env.get("XDG_CONFIG_HOME").filter(|s| !s.is_empty()) {
            Some(x) => Path::new(x).join("patroni"),
            None => Path::new(&home).join(".config/patroni"),
        }
    };
    dir.join("patronictl.yaml")
}

/// Parses `DCS://HOST:PORT/NAMESPACE` into the configuration section it stands for (and the namespace).
/// Missing parts default like patronictl: scheme by port (else `etcd`), host `localhost`, the scheme's port.
pub fn parse_dcs_url(dcs: &str) -> CtlResult<(String, Value, Option<String>)> {
    let text = if dcs.contains("//") { dcs.to_string() } else { format!("//{dcs}") };
    let (scheme, rest) = match text.split_once("//") {
        Some((s, r)) => (s.trim_end_matches(':').to_string(), r.to_string()),
        None => (String::new(), text.clone()),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.clone(), String::new()),
    };
    let authority = authority.rsplit('@').next().unwrap_or("").to_string();
    let (host, port) = if let Some(stripped) = authority.strip_prefix('[') {
        match stripped.split_once(']') {
            Some((h, p)) => (h.to_string(), p.strip_prefix(':').map(str::to_string)),
            None => return Err(CtlError::new(format!("Invalid IPv6 URL: {dcs}"))),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.to_string())),
            None => (authority.clone(), None),
        }
    };
    let port: Option<u16> = match port.filter(|p| !p.is_empty()) {
        Some(p) => {
            Some(p.parse().map_err(|_| CtlError::new(format!("Port could not be cast to integer value as '{p}'")))?)
        }
        None => None,
    };
    let scheme = if scheme.is_empty() {
        DCS_DEFAULTS.iter().find(|(_, p)| Some(*p) == port).map_or("etcd", |(s, _)| s).to_string()
    } else if DCS_DEFAULTS.iter().any(|(s, _)| *s == scheme) {
        scheme
    } else {
        return Err(CtlError::new(format!("Unknown dcs scheme: {scheme}")));
    };
    let default_port = DCS_DEFAULTS.iter().find(|(s, _)| *s == scheme).map_or(2379, |(_, p)| *p);
    let host = if host.is_empty() { "localhost".to_string() } else { host.to_lowercase() };
    let hp = format!("{host}:{}", port.unwrap_or(default_port));
    let mut section = Map::new();
    match scheme.as_str() {
        "zookeeper" => {
            section.insert("hosts".into(), Value::Array(vec![Value::from(hp)]));
        }
        "raft" => {
            section.insert("partner_addrs".into(), Value::Array(vec![Value::from(hp)]));
        }
        "exhibitor" => {
            section.insert("hosts".into(), Value::Array(vec![Value::from(host)]));
            section.insert("port".into(), Value::from(port.unwrap_or(default_port)));
        }
        _ => {
            section.insert("host".into(), Value::from(hp));
        }
    }
    let namespace = (!path.is_empty() && path.trim() != "/").then(|| path.trim().to_string());
    Ok((scheme, Value::Object(section), namespace))
}

/// Loads the configuration as patronictl does: the file when it exists (an explicitly given one must), else
/// the environment alone; `--dcs-url` replaces every DCS section. Not validated as an agent configuration:
/// patronictl only needs the DCS, `ctl` and `restapi` sections.
pub fn load_config(path: &Path, explicit: bool, dcs_url: Option<&str>, env: &EnvMap) -> CtlResult<Config> {
    let readable = std::fs::File::open(path).is_ok();
    if !readable && explicit {
        return Err(CtlError::new(format!(
            "Provided config file {} not existing or no read rights. Check the -c/--config-file parameter",
            path.display()
        )));
    }
    let (mut tree, _) = patroni_config::load_tree(readable.then_some(path), env)
        .map_err(|e| CtlError::new(format!("Failed to load configuration from {}: {e}", path.display())))?;
    if !tree.is_object() {
        tree = Value::Object(Map::new());
    }
    if let Some(url) = dcs_url {
        let (scheme, section, namespace) = parse_dcs_url(url)?;
        if let Value::Object(m) = &mut tree {
            for (d, _) in DCS_DEFAULTS {
                m.remove(d);
            }
            m.insert(scheme, section);
            if let Some(ns) = namespace {
                m.insert("namespace".into(), Value::from(ns));
            }
        }
    }
    let (cfg, cx) = patroni_config::convert::convert::<Config>(&tree, "");
    cfg.ok_or_else(|| {
        let problems: Vec<String> = cx.errors.iter().map(|d| format!("{}: {}", d.path, d.message)).collect();
        CtlError::new(format!("Invalid configuration: {}", problems.join("; ")))
    })
}

/// The etcd settings (from the `etcd3` section, else from `etcd`) patronictl uses for cluster `scope`: no lease,
/// linearizable (quorum) reads.
pub fn etcd3_settings(config: &Config, scope: &str, group: Option<u32>) -> CtlResult<Etcd3Settings> {
    etcd_settings(config, scope, group).map(|(s, _)| s)
}

/// As [`etcd3_settings`], and whether the section is `etcd` (the v2 API).
fn etcd_settings(config: &Config, scope: &str, group: Option<u32>) -> CtlResult<(Etcd3Settings, bool)> {
    let (e, v2) = match (config.etcd3.as_ref(), config.etcd.as_ref()) {
        (Some(e), _) => (e, false),
        (None, Some(e)) => (e, true),
        (None, None) => {
            let others: Vec<&str> = config.dcs_kinds().iter().map(|k| k.as_str()).collect();
            if others.is_empty() {
                return Err(CtlError::new(
                    "Can not find suitable configuration of distributed configuration store\n\
                     Available implementations: etcd, etcd3, exhibitor, raft, zookeeper",
                ));
            }
            return Err(CtlError::new(format!(
                "The {} DCS is not supported by this patronictl yet; use etcd3, etcd, zookeeper, exhibitor or raft",
                others.join(", ")
            )));
        }
    };
    let name = config.name.clone().unwrap_or_else(|| scope.to_string());
    let mut s = Etcd3Settings::from_config(config, e, &name);
    s.scope = scope.to_string();
    if group.is_some() {
        s.citus_group = group;
    }
    s.ctl = true;
    s.retry_timeout = Duration::from_secs(10);
    Ok((s, v2))
}

/// Everything a command needs: the configuration, DCS access and a REST client.
pub struct Ctl {
    pub config: Config,
    pub insecure: bool,
}

impl Ctl {
    /// Connects the DCS of cluster `scope`.
    pub async fn dcs(&self, scope: &str, group: Option<u32>) -> CtlResult<Box<dyn Dcs>> {
        if let Some(r) = &self.config.raft {
            // A client of the Raft cluster: patronictl never votes. Like Patroni, our own self_addr is a partner.
            let mut s = RaftSettings::from_config(&self.config, r, "");
            if let Some(own) = r.self_addr.clone().filter(|a| !a.is_empty() && !s.partner_addrs.contains(a)) {
                s.partner_addrs.push(own);
            }
            s.scope = scope.to_string();
            if group.is_some() {
                s.citus_group = group;
            }
            let raft = Raft::new(s.into_client()).await.map_err(|e| CtlError::new(e.to_string()))?;
            return Ok(Box::new(raft));
        }
        if let Some(x) = &self.config.exhibitor {
            let name = self.config.name.clone().unwrap_or_default();
            let mut s = ExhibitorSettings::from_config(&self.config, x, &name);
            s.zookeeper.scope = scope.to_string();
            if group.is_some() {
                s.zookeeper.citus_group = group;
            }
            s.zookeeper.ctl = true;
            let dcs = Exhibitor::new(s).await.map_err(|e| CtlError::new(e.to_string()))?;
            return Ok(Box::new(dcs));
        }
        if let Some(z) = &self.config.zookeeper {
            let name = self.config.name.clone().unwrap_or_default();
            let mut s = ZooKeeperSettings::from_config(&self.config, z, &name);
            s.scope = scope.to_string();
            if group.is_some() {
                s.citus_group = group;
            }
            s.ctl = true;
            let zk = ZooKeeper::new(s).await.map_err(|e| CtlError::new(e.to_string()))?;
            return Ok(Box::new(zk));
        }
        let (settings, v2) = etcd_settings(&self.config, scope, group)?;
        if v2 {
            let etcd = Etcd::new(settings).await.map_err(|e| CtlError::new(e.to_string()))?;
            return Ok(Box::new(etcd));
        }
        let etcd = Etcd3::new(settings).await.map_err(|e| CtlError::new(e.to_string()))?;
        Ok(Box::new(etcd))
    }

    /// The REST client, with `ctl` settings (falling back to `restapi`) and `-k`.
    pub fn api(&self) -> CtlResult<ApiClient> {
        let mut s = ClientSettings::from_config(self.config.ctl.as_ref(), Some(&self.config.restapi));
        s.insecure = s.insecure || self.insecure;
        ApiClient::new(&s).map_err(|e| CtlError::new(e.to_string()))
    }

    /// Cluster name from the argument or the `scope` of the configuration.
    pub fn cluster_name(&self, arg: Option<String>) -> CtlResult<String> {
        arg.or_else(|| self.config.scope.clone()).ok_or_else(|| {
            CtlError::new("Missing argument 'CLUSTER_NAME': no cluster name given and no scope configured")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dcs_urls_like_patronictl() {
        assert_eq!(parse_dcs_url("").unwrap(), ("etcd".into(), json!({"host": "localhost:2379"}), None));
        assert_eq!(parse_dcs_url("etcd://:2399").unwrap().1, json!({"host": "localhost:2399"}));
        assert_eq!(parse_dcs_url("etcd://test").unwrap().1, json!({"host": "test:2379"}));
        assert_eq!(
            parse_dcs_url("etcd3://random.com:2399").unwrap(),
            ("etcd3".into(), json!({"host": "random.com:2399"}), None)
        );
        assert_eq!(
            parse_dcs_url("etcd3://random.com:2399/customnamespace").unwrap().2,
            Some("/customnamespace".to_string())
        );
        assert_eq!(parse_dcs_url("localhost:8500").unwrap().0, "consul");
        assert_eq!(parse_dcs_url("zookeeper://h").unwrap().1, json!({"hosts": ["h:2181"]}));
        assert!(parse_dcs_url("foo://h").unwrap_err().0.contains("Unknown dcs scheme: foo"));
    }

    #[test]
    fn default_path_follows_xdg() {
        let mut env = EnvMap::new();
        env.insert("HOME".into(), "/home/u".into());
        if !cfg!(target_os = "macos") {
            assert_eq!(default_config_path(&env), PathBuf::from("/home/u/.config/patroni/patronictl.yaml"));
            env.insert("XDG_CONFIG_HOME".into(), "/x".into());
            assert_eq!(default_config_path(&env), PathBuf::from("/x/patroni/patronictl.yaml"));
        }
    }

    #[test]
    fn config_from_environment_alone_and_dcs_override() {
        let mut env = EnvMap::new();
        env.insert("PATRONI_SCOPE".into(), "demo".into());
        env.insert("PATRONI_ETCD3_HOSTS".into(), "'10.0.0.1:2379'".into());
        let c = load_config(Path::new("/nonexistent/patronictl.yaml"), false, None, &env).unwrap();
        assert_eq!(c.scope.as_deref(), Some("demo"));
        assert!(c.etcd3.is_some());
        let c = load_config(Path::new("/nonexistent"), false, Some("etcd3://h:1/ns"), &env).unwrap();
        assert_eq!(c.etcd3.as_ref().and_then(|e| e.host.clone()).as_deref(), Some("h:1"));
        assert!(c.etcd3.as_ref().is_some_and(|e| e.hosts.is_none()));
        assert_eq!(c.namespace, "/ns");
        env.insert("PATRONI_CTL_INSECURE".into(), "true".into());
        env.insert("PATRONI_CTL_USERNAME".into(), "admin".into());
        env.insert("PATRONI_CTL_PASSWORD".into(), "pw".into());
        env.insert("PATRONI_RESTAPI_CAFILE".into(), "/etc/ca.pem".into());
        let c = load_config(Path::new("/nonexistent"), false, None, &env).unwrap();
        let ctl = Ctl { config: c, insecure: false };
        let s = ClientSettings::from_config(ctl.config.ctl.as_ref(), Some(&ctl.config.restapi));
        assert!(s.insecure);
        assert_eq!(s.credentials.map(|c| (c.username, c.password)), Some(("admin".into(), "pw".into())));
        assert_eq!(s.cacert, Some(PathBuf::from("/etc/ca.pem")));
        // Verifying (not insecure), an unreadable CA is named; insecure, it is not read at all.
        env.remove("PATRONI_CTL_INSECURE");
        let c = load_config(Path::new("/nonexistent"), false, None, &env).unwrap();
        let ctl = Ctl { config: c, insecure: false };
        assert!(ctl.api().err().is_some_and(|e| e.0.contains("/etc/ca.pem")), "an unreadable CA is named");
        let err = load_config(Path::new("/nonexistent/x.yml"), true, None, &env).unwrap_err();
        assert!(err.0.contains("not existing or no read rights"));
    }
}
