//! Round trips per key kind, with values exactly as Python Patroni 4.1.5 wrote them to etcd (captured by driving
//! its `Etcd3` class; see `tests/fixtures/python-patroni-4.1.5-range.json`).

use super::*;
use chrono::DateTime;

const PY_CONFIG: &str = r#"{"ttl":30,"loop_wait":10,"retry_timeout":10,"maximum_lag_on_failover":1048576,"postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":100}}}"#;
const PY_FAILOVER: &str = r#"{"leader":"node1","member":"node2","scheduled_at":"2026-11-22T01:30:00+02:00"}"#;
const PY_FAILSAFE: &str = r#"{"node1":"http://127.0.0.1:8008/patroni","node2":"http://127.0.0.1:8009/patroni"}"#;
const PY_HISTORY: &str = r#"[[1,25165984,"no recovery target specified","2026-11-21T23:40:01.123456+00:00","node1"]]"#;
const PY_MEMBER: &str = r#"{"conn_url":"postgres://127.0.0.1:5432/postgres","api_url":"http://127.0.0.1:8008/patroni","state":"running","role":"primary","version":"4.1.5","tags":{"nofailover":false},"xlog_location":50331968,"timeline":2}"#;
const PY_STATUS: &str = r#"{"optime":50331968,"slots":{"permanent_slot":50331800}}"#;
const PY_SYNC: &str = r#"{"leader":"node1","quorum":1,"sync_standby":"node2,node3"}"#;
const LEASE: &str = "4111120157477666565";

fn node(key: &str, value: &str, version: Version, session: Option<&str>) -> RawNode {
    RawNode { key: key.into(), value: value.into(), version, session: session.map(String::from) }
}

fn python_cluster_nodes() -> Vec<RawNode> {
    vec![
        node("config", PY_CONFIG, 3, None),
        node("failover", PY_FAILOVER, 8, None),
        node("failsafe", PY_FAILSAFE, 7, None),
        node("history", PY_HISTORY, 10, None),
        node("initialize", "7300000000000000001", 2, None),
        node("leader", "node1", 4, Some(LEASE)),
        node("members/node1", PY_MEMBER, 5, Some(LEASE)),
        node("status", PY_STATUS, 6, None),
        node("sync", PY_SYNC, 9, None),
    ]
}

#[test]
fn python_written_cluster_parses_completely() {
    let c = Cluster::from_nodes(python_cluster_nodes());
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    assert_eq!(c.initialize.as_deref(), Some("7300000000000000001"));
    let cfg = c.config.as_ref().unwrap();
    assert_eq!(cfg.version, 3);
    assert_eq!(cfg.data["loop_wait"], 10);
    let leader = c.leader.as_ref().unwrap();
    assert_eq!((leader.name.as_str(), leader.version), ("node1", 4));
    assert_eq!(leader.session.as_deref(), Some(LEASE));
    assert_eq!(leader.member.data.role.as_deref(), Some("primary"));
    assert_eq!(leader.timeline(), Some(2));
    assert_eq!(leader.checkpoint_after_promote(), Some(true));
    assert_eq!(c.leader_optime(), 50331968);
    assert_eq!(c.slots().get("permanent_slot"), Some(&50331800));
    let f = c.failover.as_ref().unwrap();
    assert_eq!(f.leader.as_deref(), Some("node1"));
    assert_eq!(f.candidate.as_deref(), Some("node2"));
    assert_eq!(f.scheduled_at.unwrap().to_rfc3339(), "2026-11-22T01:30:00+02:00");
    assert_eq!(c.sync.leader.as_deref(), Some("node1"));
    assert_eq!(c.sync.sync_standby, vec!["node2", "node3"]);
    assert_eq!(c.sync.quorum, 1);
    assert_eq!(c.sync.version, Some(9));
    assert!(c.sync.matches("NODE3", false));
    assert!(!c.sync.matches("node1", false));
    assert!(c.sync.matches("node1", true));
    let h = c.history.as_ref().unwrap();
    assert_eq!(h.lines[0].timeline, 1);
    assert_eq!(h.lines[0].lsn, 25165984);
    assert_eq!(h.lines[0].new_leader.as_deref(), Some("node1"));
    assert_eq!(c.timeline(), 2);
    assert_eq!(c.failsafe.as_ref().unwrap()["node2"], "http://127.0.0.1:8009/patroni");
    assert!(!c.is_unlocked());
    assert!(c.has_member("node1"));
    assert!(!c.has_member("node2"));
    assert!(c.get_member("node1").is_some());
    assert_eq!(c.min_patroni_version(), Some(vec![4, 1, 5]));
}

#[test]
fn every_key_kind_round_trips_byte_for_byte() {
    let c = Cluster::from_nodes(python_cluster_nodes());
    let mut written: Vec<(String, String)> = c.to_nodes().into_iter().map(|n| (n.key, n.value)).collect();
    written.sort();
    let mut original: Vec<(String, String)> = python_cluster_nodes().into_iter().map(|n| (n.key, n.value)).collect();
    original.sort();
    assert_eq!(written, original);
    // and parsing what we wrote gives the same model
    let again = Cluster::from_nodes(c.to_nodes());
    assert_eq!(again.members, c.members);
    assert_eq!(
        again.failover.as_ref().map(|f| (&f.leader, &f.candidate, f.scheduled_at)),
        c.failover.as_ref().map(|f| (&f.leader, &f.candidate, f.scheduled_at))
    );
    assert_eq!(again.status, c.status);
    assert_eq!(again.sync.to_json(), c.sync.to_json());
    assert_eq!(again.history.as_ref().map(|h| &h.lines), c.history.as_ref().map(|h| &h.lines));
}

#[test]
fn writers_produce_python_layout() {
    let t = parse_timestamp("2026-11-22T01:30:00+02:00").unwrap();
    assert_eq!(Failover::value_json(Some("node1"), Some("node2"), Some(&t)), PY_FAILOVER);
    assert_eq!(Failover::value_json(None, Some("node2"), None), r#"{"member":"node2"}"#);
    assert_eq!(SyncState::value_json(Some("node1"), &["node3".to_string(), "node2".to_string()], 1), PY_SYNC);
    assert_eq!(SyncState::value_json(Some("node1"), &[], 0), r#"{"leader":"node1","quorum":0,"sync_standby":null}"#);
    let st = Status {
        last_lsn: 50331968,
        slots: Some([("permanent_slot".to_string(), 50331800)].into_iter().collect()),
        retain_slots: vec![],
    };
    assert_eq!(st.to_json(), PY_STATUS);
    let st = Status { last_lsn: 1, slots: None, retain_slots: vec!["node2".into()] };
    assert_eq!(st.to_json(), r#"{"optime":1,"retain_slots":["node2"]}"#);
}

#[test]
fn one_bad_key_does_not_hide_the_rest() {
    let mut nodes = python_cluster_nodes();
    for n in &mut nodes {
        match n.key.as_str() {
            "config" => n.value = "{not json".into(),
            "history" => n.value = r#"[[1,25165984,"ok"],"junk",[2,"0/3000000","x",null,"n2"]]"#.into(),
            "sync" => n.value = r#"{"leader":"node1","quorum":"many","sync_standby":"node2"}"#.into(),
            "status" => n.value = r#"{"optime":"zzz","slots":{"a":1,"b":"x"}}"#.into(),
            "failsafe" => n.value = "[1,2]".into(),
            "failover" => n.value = r#"{"leader":"node1","scheduled_at":"next tuesday"}"#.into(),
            _ => {}
        }
    }
    nodes.push(node("members/broken", "\u{0}\u{1}garbage", 11, None));
    let c = Cluster::from_nodes(nodes);
    let keys: Vec<&str> = c.problems.iter().map(|p| p.key.as_str()).collect();
    for k in ["config", "history", "sync", "status", "failsafe", "failover", "members/broken"] {
        assert!(keys.contains(&k), "no problem reported for {k}: {:?}", c.problems);
    }
    // what could be read still is
    assert_eq!(c.config.as_ref().map(|c| c.version), Some(3));
    assert_eq!(c.history.as_ref().unwrap().lines.len(), 2);
    assert_eq!(c.history.as_ref().unwrap().lines[1].lsn, 0x3000000);
    assert_eq!(c.sync.sync_standby, vec!["node2"]);
    assert_eq!(c.status.slots.as_ref().unwrap().get("a"), Some(&1));
    assert!(c.failsafe.is_none());
    let f = c.failover.as_ref().unwrap();
    assert_eq!(f.invalid_scheduled_at.as_deref(), Some("next tuesday"));
    assert!(f.scheduled_at.is_none());
    assert_eq!(c.members.len(), 2);
    assert_eq!(c.leader_name(), Some("node1"));
}

#[test]
fn legacy_and_odd_values() {
    // optime/leader is read when status is absent
    let c = Cluster::from_nodes(vec![node("optime/leader", "12345", 1, None)]);
    assert_eq!(c.leader_optime(), 12345);
    // status wins over the legacy key
    let c = Cluster::from_nodes(vec![
        node("optime/leader", "12345", 1, None),
        node("status", r#"{"optime":999}"#, 2, None),
    ]);
    assert_eq!(c.leader_optime(), 999);
    // slots stored as a JSON string by old writers
    let c = Cluster::from_nodes(vec![node(
        "status",
        r#"{"optime":5,"slots":"{\"s\":7}","retain_slots":"[\"m\"]"}"#,
        1,
        None,
    )]);
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    assert_eq!(c.slots().get("s"), Some(&7));
    assert_eq!(c.status.retain_slots, vec!["m"]);
    // legacy failover text and empty failover
    let c = Cluster::from_nodes(vec![node("failover", "node1:node2", 1, None)]);
    let f = c.failover.unwrap();
    assert_eq!((f.leader.as_deref(), f.candidate.as_deref()), (Some("node1"), Some("node2")));
    let c = Cluster::from_nodes(vec![node("failover", "{}", 1, None)]);
    assert!(c.failover.is_none());
    // leader without a member key gets a placeholder member
    let c = Cluster::from_nodes(vec![node("leader", "ghost", 3, Some("1"))]);
    assert_eq!(c.leader.as_ref().unwrap().member, Member::placeholder("ghost"));
    assert!(c.get_member_or_leader("ghost").is_some());
    assert!(c.get_member("ghost").is_none());
    // nested keys under members/ and unrelated keys are ignored
    let c = Cluster::from_nodes(vec![node("members/a/b", "{}", 1, None), node("zzz", "x", 1, None)]);
    assert!(c.members.is_empty());
    assert!(c.is_empty());
    // sync without a leader is empty
    let c = Cluster::from_nodes(vec![node("sync", r#"{"leader":null,"sync_standby":"a","quorum":2}"#, 4, None)]);
    assert!(c.sync.is_empty());
    assert_eq!(c.sync.quorum, 0);
    assert_eq!(c.sync.version, Some(4));
}

#[test]
fn timestamps_python_and_human_forms() {
    for (s, rfc) in [
        ("2026-11-22T01:30:00+02:00", "2026-11-22T01:30:00+02:00"),
        ("2026-11-22T01:30:00.5Z", "2026-11-22T01:30:00.500+00:00"),
        ("2026-11-22 01:30:00+0200", "2026-11-22T01:30:00+02:00"),
        ("2026-11-22T01:30", "2026-11-22T01:30:00+00:00"),
        ("2016-01-14T10:09:57.1394Z", "2016-01-14T10:09:57.139400+00:00"),
    ] {
        let t = parse_timestamp(s).unwrap_or_else(|| panic!("{s}"));
        assert_eq!(t, DateTime::parse_from_rfc3339(rfc).unwrap(), "{s}");
    }
    assert!(parse_timestamp("yesterday").is_none());
    let t = parse_timestamp("2026-11-22T01:30:00.123456+02:00").unwrap();
    assert_eq!(patroni_pycompat::isoformat(&t), "2026-11-22T01:30:00.123456+02:00");
}

#[test]
fn lsn_forms() {
    assert_eq!(parse_lsn_str("0/3000060"), Some(0x3000060));
    assert_eq!(parse_lsn_str("1/0"), Some(1 << 32));
    assert_eq!(parse_lsn_str("50331968"), Some(50331968));
    assert_eq!(parse_lsn_str("x/y"), None);
    assert_eq!(format_lsn(0x1_0300_0060), "1/3000060");
    assert_eq!(parse_lsn(&serde_json::json!(5.0)), Some(5));
    assert_eq!(parse_lsn(&serde_json::json!(-1)), None);
}

#[test]
fn citus_coordinator_view_splits_groups() {
    let nodes = vec![
        node("0/leader", "coord1", 1, None),
        node("0/members/coord1", PY_MEMBER, 1, None),
        node("1/leader", "w1", 2, None),
        node("1/members/w1", PY_MEMBER, 2, None),
        node("2/initialize", "1", 3, None),
        node("notagroup/leader", "x", 3, None),
    ];
    let c = Cluster::from_mpp_nodes(nodes, 0);
    assert_eq!(c.leader_name(), Some("coord1"));
    assert_eq!(c.workers.len(), 2);
    assert_eq!(c.workers[&1].leader_name(), Some("w1"));
    assert_eq!(c.workers[&2].initialize.as_deref(), Some("1"));
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    const KEYS: [&str; 11] = [
        "initialize",
        "config",
        "leader",
        "status",
        "optime/leader",
        "members/a",
        "failover",
        "sync",
        "history",
        "failsafe",
        "1/leader",
    ];

    /// Values that look like what might be stored: JSON fragments of the right and wrong shapes, and noise.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[\\[\\]{}\":,0-9a-z/ .+-]{0,40}",
            Just(PY_MEMBER.to_string()),
            Just(PY_HISTORY.to_string()),
            (any::<i64>(), any::<String>()).prop_map(|(n, s)| format!(
                r#"{{"optime":{n},"slots":{{"x":"{s:?}"}},"leader":{n},"sync_standby":[{n}],"scheduled_at":"{s:?}","timeline":{n}}}"#
            )),
            (any::<u32>(), any::<String>()).prop_map(|(n, s)| format!(r#"[[{n},"{s:?}",{n}],[{n}],"{s:?}"]"#)),
        ]
    }

    proptest! {
        #[test]
        fn any_stored_values_parse_without_panicking(
            values in proptest::collection::vec((0..KEYS.len(), value()), 0..12)
        ) {
            let nodes: Vec<RawNode> = values
                .into_iter()
                .map(|(k, v)| node(KEYS[k], &v, 1, None))
                .collect();
            let c = Cluster::from_nodes(nodes.clone());
            // whatever was read can be written back and read again
            let again = Cluster::from_nodes(c.to_nodes());
            prop_assert_eq!(again.members.len(), c.members.len());
            prop_assert_eq!(again.leader_name(), c.leader_name());
            let _ = Cluster::from_mpp_nodes(nodes, 0);
        }
    }
}
