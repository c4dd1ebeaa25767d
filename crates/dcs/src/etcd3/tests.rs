use super::*;

#[test]
fn failed_txn_has_no_succeeded_field() {
    assert!(!succeeded(&json!({"header": {"revision": "7"}})));
    assert!(succeeded(&json!({"succeeded": true})));
    assert_eq!(header_revision(&json!({"header": {"revision": "7"}})), 7);
}

#[test]
fn python_range_answer_reads() {
    let raw = include_str!("../../tests/fixtures/python-patroni-4.1.5-range.json");
    let v: Value = serde_json::from_str(raw).unwrap();
    let kvs = read_kvs(&v).unwrap();
    let leader = kvs.iter().find(|(k, ..)| k == "/service/pyclus/leader").unwrap();
    assert_eq!(leader.1, "node1");
    assert_eq!(leader.2, 4111120157477666565);
    assert_eq!(leader.3, 4);
    let prefix = "/service/pyclus/";
    let c = Cluster::from_nodes(kvs.iter().map(|(k, val, l, r)| RawNode {
        key: k.strip_prefix(prefix).unwrap().to_string(),
        value: val.clone(),
        version: *r,
        session: (*l != 0).then(|| l.to_string()),
    }));
    assert!(c.problems.is_empty());
    assert_eq!(c.leader.unwrap().session.as_deref(), Some("4111120157477666565"));
    assert_eq!(c.members.len(), 1);
}
