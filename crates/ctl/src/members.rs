//! The member table of `list`, `topology` and of every command that shows the cluster before acting, built
//! from the same `/cluster` document the REST API serves (Patroni's `cluster_as_json`).

use std::collections::HashMap;

use patroni_config::DynamicConfig;
use patroni_dcs::Cluster;
use serde_json::{Map, Value};

use crate::output::{Format, Table};

/// The effective dynamic configuration stored in the cluster (defaults when the key is absent or unreadable).
pub fn dynamic_config(cluster: &Cluster) -> DynamicConfig {
    match &cluster.config {
        Some(c) => DynamicConfig::from_value_lossy(&Value::Object(c.data.clone())).0,
        None => DynamicConfig::default(),
    }
}

/// Patroni's `cluster_as_json`: members sorted by name with role, state, host, lags…, plus `pause` and
/// `scheduled_switchover`.
pub fn cluster_json(cluster: &Cluster, name: &str) -> Map<String, Value> {
    let view = patroni_api::model::cluster_document(cluster, &dynamic_config(cluster));
    match view.to_json(name) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Python's `round()` (half to even) of bytes to MiB.
fn round_mb(bytes: u64) -> u64 {
    let x = bytes as f64 / 1024.0 / 1024.0;
    let r = x.round();
    if (x - x.trunc() - 0.5).abs() < f64::EPSILON && (r as u64) % 2 == 1 {
        r as u64 - 1
    } else {
        r as u64
    }
}

/// Python's `bool()`, as patronictl tests values; a missing key is false.
fn truthy(v: Option<&Value>) -> bool {
    v.is_some_and(patroni_pycompat::py_bool)
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => crate::output::py_str(other),
    }
}

/// Members in replication-tree order, with names indented (`+ pg2`, `  + pg3`) as `topology` shows them.
fn topology_sort(members: Vec<Map<String, Value>>) -> Vec<Map<String, Value>> {
    let role = |m: &Map<String, Value>| text(m.get("role"));
    let name = |m: &Map<String, Value>| text(m.get("name"));
    let leader = members.iter().find(|m| role(m).ends_with("leader")).map(name);
    let replicas: Vec<String> = members.iter().filter(|m| !role(m).ends_with("leader")).map(name).collect();
    let mut children: HashMap<Option<String>, Vec<Map<String, Value>>> = HashMap::new();
    let mut leader_member = None;
    for m in members {
        if role(&m).ends_with("leader") {
            if leader_member.is_none() {
                leader_member = Some(m);
            }
            continue;
        }
        let me = name(&m);
        let parent = m
            .get("tags")
            .and_then(|t| t.get("replicatefrom"))
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty() && *p != me && replicas.iter().any(|r| r == p))
            .map(str::to_owned)
            .or_else(|| leader.clone());
        children.entry(parent).or_default().push(m);
    }
    let mut out = Vec::new();
    fn walk(
        level: usize,
        key: Option<String>,
        member: Option<Map<String, Value>>,
        children: &mut HashMap<Option<String>, Vec<Map<String, Value>>>,
        out: &mut Vec<Map<String, Value>>,
    ) {
        let kids = children.remove(&key).unwrap_or_default();
        if let Some(mut m) = member {
            if level > 0 {
                let n = text(m.get("name"));
                m.insert("name".into(), Value::from(format!("{}+ {n}", " ".repeat((level - 1) * 2))));
            }
            if !text(m.get("name")).is_empty() {
                out.push(m);
            }
        }
        for k in kids {
            let n = text(k.get("name"));
            walk(level + 1, Some(n), Some(k), children, out);
        }
    }
    walk(0, leader, leader_member, &mut children, &mut out);
    out
}

/// `pending_restart_reason` as `param: old->new` lines; long ones hidden in boxed tables.
fn restart_reason(reason: Option<&Value>, hide_long: bool) -> String {
    let Some(Value::Object(r)) = reason else { return String::new() };
    r.iter()
        .map(|(k, v)| {
            let full = format!("{k}: {}->{}", text(v.get("old_value")), text(v.get("new_value")));
            if hide_long && full.chars().count() > 50 {
                format!("{k}: [hidden - too long]")
            } else {
                full
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The member table and the footer lines (maintenance mode, scheduled switchover) of one cluster.
pub fn member_table(cluster: &Cluster, name: &str, extended: bool, fmt: Format) -> (Table, Vec<String>) {
    let cj = cluster_json(cluster, name);
    let members: Vec<Map<String, Value>> = cj
        .get("members")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|m| m.as_object().cloned()).collect())
        .unwrap_or_default();
    let initialize = match cluster.initialize.as_deref() {
        None => "uninitialized",
        Some("") => "initializing",
        Some(s) => s,
    };
    let mut columns: Vec<String> =
        ["Cluster", "Member", "Host", "Role", "State", "TL", "Receive LSN", "Receive Lag", "Replay LSN", "Replay Lag"]
            .map(String::from)
            .to_vec();
    let with_host: Vec<&Map<String, Value>> = members.iter().filter(|m| m.contains_key("host")).collect();
    for c in ["Pending restart", "Pending restart reason", "Scheduled restart", "Tags"] {
        let key = c.to_lowercase().replace(' ', "_");
        if extended || with_host.iter().any(|m| truthy(m.get(&key))) {
            columns.push(c.into());
        }
    }
    let append_port = with_host.iter().any(|m| m.get("port").and_then(Value::as_u64).is_some_and(|p| p != 5432)) || {
        let mut hosts: Vec<String> = with_host.iter().map(|m| text(m.get("host"))).collect();
        hosts.sort();
        hosts.dedup();
        hosts.len() < with_host.len()
    };
    let boxed = matches!(fmt, Format::Pretty | Format::Topology);
    let ordered = if fmt == Format::Topology { topology_sort(members) } else { members };
    let mut rows = Vec::new();
    for m in ordered {
        let mut receive_lag = m.get("receive_lag").cloned();
        let mut replay_lag = m.get("replay_lag").cloned();
        let mut receive_lsn = m.get("receive_lsn").cloned();
        let mut replay_lsn = m.get("replay_lsn").cloned();
        let unknown = Some(Value::from("unknown"));
        let lsn = m.get("lsn").cloned();
        // Members older than Patroni 4 report only `lsn`.
        if receive_lsn == unknown && replay_lsn == unknown && truthy(lsn.as_ref()) && lsn != unknown {
            if text(m.get("state")) == "streaming" {
                receive_lag = m.get("lag").cloned();
                receive_lsn = lsn;
            } else {
                replay_lag = m.get("lag").cloned();
                replay_lsn = lsn;
            }
        }
        let receive_lag = lag_cell(receive_lag.as_ref());
        let replay_lag = lag_cell(replay_lag.as_ref());
        let mut host = text(m.get("host"));
        if append_port && !host.is_empty() {
            if let Some(p) = m.get("port").and_then(Value::as_u64) {
                host = format!("{host}:{p}");
            }
        }
        let role = text(m.get("role"))
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next().map(|f| f.to_uppercase().collect::<String>() + &c.as_str().to_lowercase()).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(" ");
        let scheduled = match m.get("scheduled_restart") {
            Some(Value::Object(s)) => {
                let mut v = text(s.get("schedule"));
                if let Some(pv) = s.get("postgres_version") {
                    v.push_str(&format!(" if version < {}", text(Some(pv))));
                }
                Value::from(v)
            }
            Some(other) => other.clone(),
            None => Value::from(""),
        };
        let tags = match m.get("tags") {
            Some(t) if truthy(Some(t)) && fmt == Format::Pretty => Value::from(crate::yaml::block(t)),
            Some(t) if truthy(Some(t)) && matches!(fmt, Format::Tsv | Format::Topology) => {
                Value::from(crate::yaml::flow(t))
            }
            Some(t) => t.clone(),
            None => Value::from(""),
        };
        let mut row = Vec::new();
        for c in &columns {
            row.push(match c.as_str() {
                "Cluster" => Value::from(name),
                "Member" => m.get("name").cloned().unwrap_or(Value::from("")),
                "Host" => Value::from(host.clone()),
                "Role" => Value::from(role.clone()),
                "State" => m.get("state").cloned().unwrap_or(Value::from("")),
                "TL" => m.get("timeline").cloned().unwrap_or(Value::from("")),
                "Receive LSN" => receive_lsn.clone().unwrap_or(Value::from("")),
                "Receive Lag" => receive_lag.clone(),
                "Replay LSN" => replay_lsn.clone().unwrap_or(Value::from("")),
                "Replay Lag" => replay_lag.clone(),
                "Pending restart" => Value::from(if truthy(m.get("pending_restart")) { "*" } else { "" }),
                "Pending restart reason" => Value::from(restart_reason(m.get("pending_restart_reason"), boxed)),
                "Scheduled restart" => scheduled.clone(),
                "Tags" => tags.clone(),
                _ => Value::from(""),
            });
        }
        rows.push(row);
    }
    let title = format!(" Cluster: {name} ({initialize}) ");
    if fmt != Format::Tsv && !matches!(fmt, Format::Json | Format::Yaml) {
        columns.remove(0);
        for r in &mut rows {
            r.remove(0);
        }
    }
    if boxed {
        for c in &mut columns {
            if c == "Receive Lag" || c == "Replay Lag" {
                *c = "Lag".into();
            }
        }
    }
    let table = Table {
        columns,
        rows,
        right: ["Group", "Receive LSN", "Replay LSN", "Lag", "TL"].map(String::from).to_vec(),
        title,
    };
    (table, service_info(&cj))
}

/// A lag in bytes as whole MiB; `unknown` and absent lags print empty.
fn lag_cell(v: Option<&Value>) -> Value {
    match v {
        Some(Value::Number(n)) => n.as_u64().map_or(Value::from(""), |b| Value::from(round_mb(b))),
        Some(Value::String(s)) if s == "unknown" => Value::from(""),
        Some(v) => v.clone(),
        None => Value::from(""),
    }
}

/// Footer lines under the table: maintenance mode and a scheduled switchover.
pub fn service_info(cj: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    if truthy(cj.get("pause")) {
        out.push("Maintenance mode: on".to_string());
    }
    if let Some(Value::Object(s)) = cj.get("scheduled_switchover") {
        let mut info = format!("Switchover scheduled at: {}", text(s.get("at")));
        for n in ["from", "to"] {
            if let Some(v) = s.get(n) {
                info.push_str(&format!("\n{n:>24}: {}", text(Some(v))));
            }
        }
        out.push(info);
    }
    out
}

/// The whole output of one cluster: table, then footers in boxed formats.
pub fn render_members(cluster: &Cluster, name: &str, extended: bool, fmt: Format) -> String {
    let (table, info) = member_table(cluster, name, extended, fmt);
    let mut out = crate::output::render(&table, fmt, "\t");
    if matches!(fmt, Format::Pretty | Format::Topology) && !info.is_empty() {
        out.push(' ');
        out.push_str(&info.join("\n "));
        out.push('\n');
    }
    out
}

/// The `history` table: TL, LSN, Reason, Timestamp, New Leader (short entries padded with empty cells).
pub fn history_table(cluster: &Cluster) -> Table {
    let text = |v: &Option<String>| v.clone().map_or(Value::from(""), Value::from);
    let rows = cluster
        .history
        .as_ref()
        .map(|h| {
            h.lines
                .iter()
                .map(|l| {
                    vec![
                        Value::from(l.timeline),
                        Value::from(l.lsn),
                        Value::from(l.reason.clone()),
                        text(&l.timestamp),
                        text(&l.new_leader),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    Table {
        columns: ["TL", "LSN", "Reason", "Timestamp", "New Leader"].map(String::from).to_vec(),
        rows,
        right: vec!["TL".into(), "LSN".into()],
        title: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use patroni_dcs::RawNode;
    use serde_json::json;

    fn node(key: &str, value: Value) -> RawNode {
        RawNode { key: key.into(), value: value.to_string(), version: 1, session: None }
    }

    #[test]
    fn lag_rounds_half_to_even_like_python() {
        assert_eq!(round_mb(0), 0);
        assert_eq!(round_mb(1024 * 1024 / 2), 0);
        assert_eq!(round_mb(3 * 1024 * 1024 / 2), 2);
        assert_eq!(round_mb(10 * 1024 * 1024 + 1), 10);
    }

    #[test]
    fn topology_without_leader_and_with_cascades() {
        let m = |port: u16, extra: Value| {
            let mut v = json!({"conn_url": format!("postgres://10.0.0.1:{port}/postgres"), "state": "running",
                               "role": "replica", "replication_state": "streaming", "timeline": 1});
            if let (Value::Object(o), Value::Object(e)) = (&mut v, extra) {
                o.extend(e);
            }
            v
        };
        let c = Cluster::from_nodes(vec![
            RawNode { key: "initialize".into(), value: "42".into(), version: 1, session: None },
            node("members/a", m(5432, json!({}))),
            node("members/b", m(5433, json!({"tags": {"replicatefrom": "a"}}))),
            node("members/c", m(5434, json!({"tags": {"replicatefrom": "b"}}))),
        ]);
        let (t, info) = member_table(&c, "x", false, Format::Topology);
        let names: Vec<String> = t.rows.iter().map(|r| crate::output::py_str(&r[0])).collect();
        assert_eq!(names, ["+ a", "  + b", "    + c"]);
        assert!(info.is_empty());
        // Same host, different ports: host:port is shown.
        assert_eq!(crate::output::py_str(&t.rows[0][1]), "10.0.0.1:5432");
        assert_eq!(t.title, " Cluster: x (42) ");
    }

    #[test]
    fn uninitialized_and_initializing_titles() {
        let (t, _) = member_table(&Cluster::default(), "x", false, Format::Pretty);
        assert_eq!(t.title, " Cluster: x (uninitialized) ");
        let c = Cluster::from_nodes(vec![RawNode {
            key: "initialize".into(),
            value: String::new(),
            version: 1,
            session: None,
        }]);
        assert_eq!(member_table(&c, "x", false, Format::Pretty).0.title, " Cluster: x (initializing) ");
    }
}
