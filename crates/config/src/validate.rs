//! Checks that need more than one value's type: required keys, ranges, address formats, mutually exclusive
//! settings. Problems are added to the conversion context, so every problem of a file is reported at once.
//!
//! Checks that depend on the machine (ports in use, binaries present, DCS reachable) are not made here.

use crate::convert::Cx;
use crate::dynamic::{DynamicConfig, MIN_LOOP_WAIT, MIN_RETRY_TIMEOUT, MIN_TTL};
use crate::model::{split_listen, Config, UserAuth};
use crate::params::controlled;

const LOOPBACK: &[&str] = &["127.0.0.1", "0.0.0.0", "*", "::1", "localhost"];

/// Splits `host:port`, accepting `[v6]:port`; `None` when there is no numeric port.
pub fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.trim().rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    Some((host, port))
}

fn host_port(cx: &mut Cx, path: &str, v: &str, allow_empty_host: bool) {
    match split_host_port(v) {
        Some((h, p)) if p > 0 && (allow_empty_host || !h.is_empty()) => {}
        _ => cx.error_at(path, format!("expected host:port, got {v:?}")),
    }
}

fn connect_address(cx: &mut Cx, path: &str, v: &str) {
    host_port(cx, path, v, false);
    if let Some((h, _)) = split_host_port(v) {
        if LOOPBACK.contains(&h) {
            cx.warn_at(
                path,
                "should not be \"127.0.0.1\", \"0.0.0.0\", \"*\", \"::1\" or \"localhost\": other members must be able to reach it",
            );
        }
    }
}

fn min_i64(cx: &mut Cx, path: &str, v: Option<i64>, min: i64) {
    if let Some(v) = v {
        if v < min {
            cx.error_at(path, format!("{v} is smaller than the minimum {min}"));
        }
    }
}

/// Like [`min_i64`] for values Patroni raises to the minimum at run time.
fn min_i64_tolerated(cx: &mut Cx, path: &str, v: Option<i64>, min: i64) {
    if let Some(v) = v {
        if v < min {
            cx.tolerated_at(path, format!("{v} is smaller than the minimum {min}"));
        }
    }
}

fn user(cx: &mut Cx, path: &str, u: Option<&UserAuth>, required: bool) {
    match u {
        Some(u) if u.username.is_none() => cx.require_at(&format!("{path}.username"), "is required"),
        None if required => cx.require_at(path, "is required"),
        _ => {}
    }
}

/// Adds errors and warnings about `config` to `cx`.
pub fn validate(config: &Config, cx: &mut Cx) {
    silence_expected_extras(config, cx);

    if config.name.is_none() {
        cx.require_at("name", "is required");
    }
    if config.scope.is_none() {
        cx.require_at("scope", "is required");
    }

    let r = &config.restapi;
    match &r.listen {
        Some(l) => host_port(cx, "restapi.listen", l, true),
        None => cx.require_at("restapi.listen", "is required"),
    }
    match &r.connect_address {
        Some(a) => connect_address(cx, "restapi.connect_address", a),
        // Patroni falls back to the listen address; its validator requires the key.
        None if cx.strict => cx.require_at("restapi.connect_address", "is required"),
        None => cx.warn_at("restapi.connect_address", "is not set: restapi.listen is published instead"),
    }
    if let Some(a) = &r.authentication {
        if a.username.is_none() {
            cx.require_at("restapi.authentication.username", "is required");
        }
        if a.password.is_none() {
            cx.require_at("restapi.authentication.password", "is required");
        }
    }
    if let Some(q) = r.request_queue_size {
        if q > 4096 {
            cx.error_at("restapi.request_queue_size", format!("{q} is larger than the maximum 4096"));
        }
    }
    if let Some(t) = &r.server_tokens {
        if !["minimal", "productonly", "original"].contains(&t.to_ascii_lowercase().as_str()) {
            cx.error_at("restapi.server_tokens", "expected one of: minimal, productonly, original");
        }
    }

    validate_dcs(config, cx);
    validate_postgresql(config, cx);

    if let Some(c) = &config.citus {
        if c.database.is_none() {
            cx.require_at("citus.database", "is required");
        }
        match c.group {
            None => cx.require_at("citus.group", "is required"),
            Some(g) => min_i64(cx, "citus.group", Some(g), 0),
        }
    }

    if let Some(log) = &config.log {
        if let Some(m) = log.mode {
            if m > 0o777 {
                cx.error_at("log.mode", format!("{m} is not a file mode (0..0777)"));
            }
        }
        if let Some(f) = &log.format {
            let ok = match f {
                serde_json::Value::String(_) => true,
                serde_json::Value::Array(items) => items
                    .iter()
                    .all(|i| i.is_string() || i.as_object().is_some_and(|o| o.values().all(|v| v.is_string()))),
                _ => false,
            };
            if !ok {
                cx.error_at("log.format", "expected a string or a list of field names");
            }
        }
    }

    if let Some(w) = &config.watchdog {
        min_i64(cx, "watchdog.safety_margin", w.safety_margin, -1);
    }

    let t = &config.tags;
    if t.nofailover.is_some() && t.failover_priority.is_some() {
        cx.tolerated_at("tags", "nofailover and failover_priority are mutually exclusive: set only one");
    }
    if t.nosync.is_some() && t.sync_priority.is_some() {
        cx.tolerated_at("tags", "nosync and sync_priority are mutually exclusive: set only one");
    }
    min_i64(cx, "tags.failover_priority", t.failover_priority, 0);
    min_i64(cx, "tags.sync_priority", t.sync_priority, 0);

    if let Some(dcs) = config.bootstrap.as_ref().and_then(|b| b.dcs.as_ref()) {
        validate_dynamic(dcs, "bootstrap.dcs", cx);
    }
}

/// Unknown keys that are in fact user data: user tags, custom replica/bootstrap method sections.
fn silence_expected_extras(config: &Config, cx: &mut Cx) {
    let methods: Vec<String> = config
        .postgresql
        .replica_methods()
        .iter()
        .map(|m| format!("postgresql.{m}"))
        .chain(config.bootstrap.as_ref().and_then(|b| b.method.as_ref()).map(|m| format!("bootstrap.{m}")))
        .collect();
    let method_shaped: Vec<String> =
        config.postgresql.method_sections().map(|(k, _)| format!("postgresql.{k}")).collect();
    cx.warnings.retain(|w| {
        !(w.path.starts_with("tags.")
            || methods.iter().any(|m| &w.path == m)
            || method_shaped.iter().any(|m| &w.path == m)
            || (w.path.starts_with("bootstrap.dcs.") && is_nested_dynamic_extra(&w.path)))
    });
}

/// The dynamic configuration accepts keys we do not model (they are copied to the DCS); only top-level
/// unknown keys of `bootstrap.dcs` are worth a warning.
fn is_nested_dynamic_extra(path: &str) -> bool {
    path.trim_start_matches("bootstrap.dcs.").contains('.')
}

fn validate_dcs(config: &Config, cx: &mut Cx) {
    let kinds = config.dcs_kinds();
    if kinds.is_empty() {
        cx.error("no DCS configured: one of consul, etcd, etcd3, exhibitor, kubernetes, raft, zookeeper is required");
    } else if kinds.len() > 1 {
        let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        cx.warn(format!("several DCS sections ({}): {} is used", names.join(", "), names[0]));
    }
    for (name, e) in [("etcd", &config.etcd), ("etcd3", &config.etcd3)] {
        let Some(e) = e else { continue };
        if e.host.is_none() && e.hosts.is_none() && e.srv.is_none() && e.url.is_none() && e.proxy.is_none() {
            cx.require_at(name, "one of host, hosts, srv, url or proxy is required");
        }
        if let Some(h) = &e.host {
            host_port(cx, &format!("{name}.host"), h, false);
        }
        for (i, h) in e.hosts.iter().flat_map(|h| h.iter()).enumerate() {
            host_port(cx, &format!("{name}.hosts[{i}]"), h, false);
        }
        if let Some(p) = &e.protocol {
            if p != "http" && p != "https" {
                cx.error_at(&format!("{name}.protocol"), "expected one of: http, https");
            }
        }
    }
    if let Some(c) = &config.consul {
        if c.host.is_none() && c.url.is_none() {
            cx.require_at("consul", "one of host or url is required");
        }
        if let Some(cons) = &c.consistency {
            if !["default", "consistent", "stale"].contains(&cons.as_str()) {
                cx.error_at("consul.consistency", "expected one of: default, consistent, stale");
            }
        }
    }
    if let Some(z) = &config.zookeeper {
        match &z.hosts {
            None => cx.require_at("zookeeper.hosts", "is required"),
            Some(h) => {
                for (i, h) in h.iter().enumerate() {
                    host_port(cx, &format!("zookeeper.hosts[{i}]"), h, false);
                }
            }
        }
    }
    if let Some(x) = &config.exhibitor {
        if x.hosts.is_none() {
            cx.require_at("exhibitor.hosts", "is required");
        }
        if x.port.is_none() {
            cx.require_at("exhibitor.port", "is required");
        }
    }
    if let Some(r) = &config.raft {
        if let Some(a) = &r.self_addr {
            host_port(cx, "raft.self_addr", a, false);
        }
        if let Some(a) = &r.bind_addr {
            host_port(cx, "raft.bind_addr", a, true);
        }
        for (i, a) in r.partner_addrs.iter().flat_map(|p| p.iter()).enumerate() {
            host_port(cx, &format!("raft.partner_addrs[{i}]"), a, false);
        }
    }
    if let Some(k) = &config.kubernetes {
        if let Some(ip) = &k.pod_ip {
            if ip.parse::<std::net::IpAddr>().is_err() {
                cx.error_at("kubernetes.pod_ip", format!("{ip:?} is not an IP address"));
            }
        }
        if k.use_endpoints == Some(true) && k.pod_ip.is_none() {
            cx.warn_at("kubernetes.pod_ip", "should be set when use_endpoints is true");
        }
    }
}

fn validate_postgresql(config: &Config, cx: &mut Cx) {
    let pg = &config.postgresql;
    match &pg.listen {
        Some(l) => {
            if split_listen(l).is_none() {
                cx.error_at("postgresql.listen", format!("expected host[,host...]:port, got {l:?}"));
            }
        }
        None => cx.require_at("postgresql.listen", "is required"),
    }
    match &pg.connect_address {
        Some(a) => connect_address(cx, "postgresql.connect_address", a),
        None if cx.strict => cx.require_at("postgresql.connect_address", "is required"),
        None => cx.warn_at("postgresql.connect_address", "is not set: the local listen address is published instead"),
    }
    if let Some(a) = &pg.proxy_address {
        connect_address(cx, "postgresql.proxy_address", a);
    }
    match &pg.data_dir {
        Some(d) if d.is_empty() => cx.error_at("postgresql.data_dir", "must not be empty"),
        Some(_) => {}
        None => cx.require_at("postgresql.data_dir", "is required"),
    }
    match &pg.authentication {
        Some(a) => {
            user(cx, "postgresql.authentication.superuser", a.superuser.as_ref(), true);
            user(cx, "postgresql.authentication.replication", a.replication.as_ref(), true);
            user(cx, "postgresql.authentication.rewind", a.rewind.as_ref(), false);
        }
        None => cx.require_at("postgresql.authentication", "is required"),
    }
    for m in pg.replica_methods().iter() {
        if m != "basebackup" && pg.replica_method(m).is_none() {
            cx.warn_at(
                &format!("postgresql.{m}"),
                "replica method listed in create_replica_methods has no section: it will be skipped",
            );
        } else if let Some(section) = pg.replica_method(m) {
            if !section.contains_key("command") {
                cx.warn_at(&format!("postgresql.{m}.command"), "is missing: the replica method will be skipped");
            }
        }
    }
    for (name, _) in pg.parameters.iter().flatten() {
        if controlled(name).is_some() {
            cx.warn_at(
                &format!("postgresql.parameters.{name}"),
                "is controlled by Patroni: set it in the dynamic configuration (bootstrap.dcs or edit-config); this value is ignored",
            );
        }
    }
    if let Some(b) = &config.bootstrap {
        if let Some(m) = &b.method {
            if m != "initdb" {
                // Patroni falls back to initdb when the method's section or command is missing.
                match b.method_config() {
                    None => {
                        cx.warn_at(&format!("bootstrap.{m}"), "bootstrap method has no section: initdb will be used")
                    }
                    Some(s) if !s.contains_key("command") => {
                        cx.warn_at(&format!("bootstrap.{m}.command"), "is missing: initdb will be used")
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Range checks on a dynamic configuration (Patroni's own minimums).
pub fn validate_dynamic(d: &DynamicConfig, prefix: &str, cx: &mut Cx) {
    let at = |k: &str| format!("{prefix}.{k}");
    min_i64_tolerated(cx, &at("ttl"), d.ttl, MIN_TTL);
    min_i64_tolerated(cx, &at("loop_wait"), d.loop_wait, MIN_LOOP_WAIT);
    min_i64_tolerated(cx, &at("retry_timeout"), d.retry_timeout, MIN_RETRY_TIMEOUT);
    min_i64_tolerated(cx, &at("maximum_lag_on_syncnode"), d.maximum_lag_on_syncnode, -1);
    min_i64_tolerated(cx, &at("primary_start_timeout"), d.primary_start_timeout, 0);
    min_i64_tolerated(cx, &at("primary_stop_timeout"), d.primary_stop_timeout, 0);
    min_i64_tolerated(cx, &at("synchronous_node_count"), d.synchronous_node_count, 1);
    min_i64_tolerated(cx, &at("max_timelines_history"), d.max_timelines_history, 0);
    let t = d.raw_timeouts();
    if t.ttl >= MIN_TTL && t.loop_wait >= MIN_LOOP_WAIT && t.retry_timeout >= MIN_RETRY_TIMEOUT {
        for w in t.adjusted().1 {
            cx.warn_at(prefix, w);
        }
    }
    if let Some(params) = d.postgresql.as_ref().and_then(|p| p.parameters.as_ref()) {
        for (name, v) in params {
            if let Some(p) = controlled(name) {
                if p.check(v).is_none() {
                    let why = match (p.rule, p.default) {
                        (crate::params::ParamRule::Derived, _) => {
                            "is set by Patroni from postgresql.listen or scope and cannot be configured".to_owned()
                        }
                        (_, Some(def)) => format!("invalid value {v}: Patroni's default {def} is used instead"),
                        (_, None) => format!("invalid value {v}"),
                    };
                    cx.warn_at(&format!("{prefix}.postgresql.parameters.{name}"), why);
                }
            }
        }
    }
    if let Some(sc) = &d.standby_cluster {
        if sc.host.is_none() && sc.port.is_none() && sc.restore_command.is_none() {
            cx.error_at(&at("standby_cluster"), "one of host, port or restore_command is required");
        }
    }
    for (name, slot) in d.slots.iter().flatten() {
        match slot.r#type.as_deref() {
            Some("logical") => {
                if slot.database.is_none() || slot.plugin.is_none() {
                    cx.warn_at(
                        &format!("{prefix}.slots.{name}"),
                        "a logical slot needs database and plugin: it is ignored",
                    );
                }
            }
            Some("physical") | None => {}
            Some(other) => cx.warn_at(
                &format!("{prefix}.slots.{name}.type"),
                format!("expected physical or logical, got {other:?}: the slot is ignored"),
            ),
        }
    }
}
