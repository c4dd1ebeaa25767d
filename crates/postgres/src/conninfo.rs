//! libpq connection parameters: the `key=value` strings PostgreSQL tools take, `.pgpass` lines, and the
//! tokio-postgres configuration for our own connections.

use std::collections::BTreeMap;
use std::time::Duration;

/// libpq keywords in the order Patroni writes them; anything else is not passed on.
const KEYWORDS: &[&str] = &[
    "dbname",
    "user",
    "passfile",
    "password",
    "host",
    "port",
    "sslmode",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "application_name",
    "krbsrvname",
    "gssencmode",
    "channel_binding",
    "target_session_attrs",
    "sslnegotiation",
];

/// A set of libpq connection parameters (`host`, `port`, `user`, `password`, `dbname`, `sslmode`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnParams(pub BTreeMap<String, String>);

/// A role from `postgresql.authentication` (superuser, replication, rewind).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Credentials {
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `sslmode`, `sslcert`, … as libpq keywords.
    #[serde(flatten)]
    pub options: BTreeMap<String, String>,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: Option<&str>) -> Self {
        Credentials { username: username.into(), password: password.map(str::to_string), options: BTreeMap::new() }
    }
}

impl ConnParams {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.0.insert(key.to_string(), value.into());
        self
    }

    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.0.insert(key.to_string(), value.into());
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    /// Keeps only the keywords `keep` accepts.
    pub fn retain_keywords(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.0.retain(|k, _| keep(k));
    }

    /// Host/port plus a role's user, password and SSL options.
    pub fn for_role(host: &str, port: u16, dbname: &str, creds: &Credentials) -> Self {
        let mut p = ConnParams::new();
        for (k, v) in &creds.options {
            p.set(k, v.clone());
        }
        if !host.is_empty() {
            p.set("host", host);
        }
        p.set("port", port.to_string());
        p.set("user", creds.username.clone());
        if let Some(pw) = &creds.password {
            p.set("password", pw.clone());
        }
        p.set("dbname", dbname);
        p
    }

    /// Parses a `postgres://user:pw@host:port/db?x=y` URL (the DCS `conn_url`) or a `key=value` string.
    pub fn parse(dsn: &str) -> Option<Self> {
        let dsn = dsn.trim();
        if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
            parse_url(dsn)
        } else {
            parse_kv(dsn)
        }
    }

    /// `key=value` form with spaces, quotes and backslashes escaped by backslash, as libpq reads it.
    pub fn to_dsn(&self) -> String {
        let has_passfile = self.0.contains_key("passfile");
        KEYWORDS
            .iter()
            .filter(|k| !(has_passfile && **k == "password"))
            .filter_map(|k| self.0.get(*k).map(|v| format!("{k}={}", escape_dsn(v))))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `.pgpass` lines for these parameters, or `None` without a password. A socket directory as host gets a
    /// `localhost` line too, because libpq matches socket connections against `localhost`.
    pub fn pgpass_lines(&self) -> Option<String> {
        let password = self.get("password")?;
        let esc = |v: &str| v.replace('\\', "\\\\").replace(':', "\\:");
        let mut hosts: Vec<String> =
            self.get("host").unwrap_or("*").split(',').map(str::trim).filter(|h| !h.is_empty()).map(esc).collect();
        if hosts.is_empty() {
            hosts.push("*".into());
        }
        if hosts.iter().any(|h| h.starts_with('/')) && !hosts.iter().any(|h| h == "localhost") {
            hosts.push("localhost".into());
        }
        let or_star = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(esc).unwrap_or_else(|| "*".into());
        let port = or_star(self.get("port"));
        let user = or_star(self.get("user"));
        let password = esc(password);
        Some(hosts.iter().map(|h| format!("{h}:{port}:*:{user}:{password}\n")).collect())
    }

    /// tokio-postgres configuration. A host starting with `/` is a unix socket directory. TLS is not negotiated
    /// by our client; `sslmode=require` servers need the agent's TLS support (not here).
    pub fn to_config(&self, connect_timeout: Duration) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        let host = self.get("host").filter(|h| !h.is_empty()).unwrap_or("/var/run/postgresql");
        for h in host.split(',') {
            c.host(h.trim());
        }
        if let Some(port) = self.get("port").and_then(|p| p.parse::<u16>().ok()) {
            c.port(port);
        }
        if let Some(u) = self.get("user") {
            c.user(u);
        }
        if let Some(pw) = self.get("password") {
            c.password(pw);
        }
        c.dbname(self.get("dbname").unwrap_or("postgres"));
        c.application_name(self.get("application_name").unwrap_or("Patroni"));
        c.connect_timeout(connect_timeout);
        if let Some(opts) = self.get("options") {
            c.options(opts);
        }
        c
    }
}

fn escape_dsn(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        if matches!(ch, '\'' | '\\' | ' ') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn parse_kv(dsn: &str) -> Option<ConnParams> {
    let mut out = ConnParams::new();
    let mut chars = dsn.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || key.is_empty() {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next()? {
                    '\'' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    value.push(chars.next()?);
                } else {
                    value.push(c);
                }
            }
        }
        out.set(&key, value);
    }
    Some(out)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_url(url: &str) -> Option<ConnParams> {
    let rest = url.split_once("://")?.1;
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, db) = match rest.split_once('/') {
        Some((a, d)) => (a, Some(d)),
        None => (rest, None),
    };
    let mut out = ConnParams::new();
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hp)) => {
            match userinfo.split_once(':') {
                Some((u, p)) => {
                    out.set("user", percent_decode(u));
                    out.set("password", percent_decode(p));
                }
                None => out.set("user", percent_decode(userinfo)),
            }
            hp
        }
        None => authority,
    };
    let (host, port) = if let Some(stripped) = hostport.strip_prefix('[') {
        let (h, rest) = stripped.split_once(']')?;
        (h.to_string(), rest.strip_prefix(':').map(str::to_string))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.to_string())),
            None => (hostport.to_string(), None),
        }
    };
    if !host.is_empty() {
        out.set("host", percent_decode(&host));
    }
    if let Some(p) = port.filter(|p| !p.is_empty()) {
        out.set("port", p);
    }
    if let Some(db) = db.filter(|d| !d.is_empty()) {
        out.set("dbname", percent_decode(db));
    }
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.set(&percent_decode(k), percent_decode(v));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_is_ordered_and_escaped() {
        let p = ConnParams::new()
            .with("host", "10.0.0.1")
            .with("port", "5432")
            .with("user", "rep user")
            .with("password", "it's")
            .with("application_name", "node1")
            .with("dbname", "postgres")
            .with("bogus", "x");
        assert_eq!(
            p.to_dsn(),
            r"dbname=postgres user=rep\ user password=it\'s host=10.0.0.1 port=5432 application_name=node1"
        );
        let with_passfile = p.with("passfile", "/tmp/pgpass");
        assert!(!with_passfile.to_dsn().contains("password"));
        assert!(with_passfile.to_dsn().contains("passfile=/tmp/pgpass"));
    }

    #[test]
    fn dsn_round_trip() {
        let p = ConnParams::parse(r"host=/tmp port=5432 user='a b' password=x\ y dbname=postgres").unwrap();
        assert_eq!(p.get("user"), Some("a b"));
        assert_eq!(p.get("password"), Some("x y"));
        assert_eq!(ConnParams::parse(&p.to_dsn()).unwrap(), p);
        assert!(ConnParams::parse("host").is_none());
    }

    #[test]
    fn urls() {
        let p = ConnParams::parse("postgres://rep:s%40cret@10.0.0.2:5433/postgres?sslmode=require").unwrap();
        assert_eq!(p.get("user"), Some("rep"));
        assert_eq!(p.get("password"), Some("s@cret"));
        assert_eq!(p.get("host"), Some("10.0.0.2"));
        assert_eq!(p.get("port"), Some("5433"));
        assert_eq!(p.get("dbname"), Some("postgres"));
        assert_eq!(p.get("sslmode"), Some("require"));
        let v6 = ConnParams::parse("postgres://[::1]:5432/postgres").unwrap();
        assert_eq!(v6.get("host"), Some("::1"));
    }

    #[test]
    fn pgpass() {
        let p = ConnParams::new()
            .with("host", "/var/run/postgresql")
            .with("port", "5432")
            .with("user", "postgres")
            .with("password", "a:b\\c");
        assert_eq!(
            p.pgpass_lines().unwrap(),
            "/var/run/postgresql:5432:*:postgres:a\\:b\\\\c\nlocalhost:5432:*:postgres:a\\:b\\\\c\n"
        );
        assert!(ConnParams::new().with("user", "x").pgpass_lines().is_none());
        let star = ConnParams::new().with("user", "u").with("password", "p");
        assert_eq!(star.pgpass_lines().unwrap(), "*:*:*:u:p\n");
    }
}
