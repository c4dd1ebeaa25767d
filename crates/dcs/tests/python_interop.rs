//! Python Patroni and patroni-rs read each other's keys, live, against one etcd.
//!
//! Needs a Python with Patroni installed (`pip install 'patroni[etcd3]' psycopg2-binary`): the interpreter in
//! `$PATRONI_PYTHON`, else `python3` if it can import patroni. Without one the test says so and passes: the
//! fixture tests cover the Python-written format offline.

mod contract;

use std::process::Command;
use std::time::Duration;

use patroni_dcs::etcd3::{Etcd3, Etcd3Settings};
use patroni_dcs::model::parse_timestamp;
use patroni_dcs::{Dcs, HistoryLine, MemberData, Status, TimelineHistory};
use patroni_testkit::EtcdServer;
use serde_json::Value;

fn python() -> Option<String> {
    let candidates: Vec<String> =
        std::env::var("PATRONI_PYTHON").ok().into_iter().chain(["python3".to_string()]).collect();
    candidates
        .into_iter()
        .find(|py| Command::new(py).args(["-c", "import patroni.dcs.etcd3"]).output().is_ok_and(|o| o.status.success()))
}

const READ_SCRIPT: &str = r#"
import json, sys
from patroni.dcs.etcd3 import Etcd3
from patroni.postgresql.mpp import get_mpp
cfg = {'name': 'pyreader', 'scope': sys.argv[2], 'namespace': '/service/', 'ttl': 30, 'retry_timeout': 10,
       'loop_wait': 10, 'host': sys.argv[1], 'patronictl': True}
c = Etcd3(cfg, get_mpp({})).get_cluster()
print(json.dumps({
    'initialize': c.initialize,
    'config': c.config and c.config.data,
    'leader': c.leader and c.leader.name,
    'leader_timeline': c.leader and c.leader.timeline,
    'members': {m.name: m.data for m in c.members},
    'optime': c.status.last_lsn, 'slots': c.status.slots, 'retain_slots': c.status.retain_slots,
    'failover': c.failover and [c.failover.leader, c.failover.candidate,
                                c.failover.scheduled_at and c.failover.scheduled_at.isoformat()],
    'sync': [c.sync.leader, c.sync.voters, c.sync.quorum],
    'history': c.history and c.history.lines,
    'failsafe': c.failsafe,
}))
"#;

const WRITE_SCRIPT: &str = r#"
import datetime, json, sys
from patroni.dcs.etcd3 import Etcd3
from patroni.postgresql.mpp import get_mpp
cfg = {'name': 'pynode', 'scope': sys.argv[2], 'namespace': '/service/', 'ttl': 30, 'retry_timeout': 10,
       'loop_wait': 10, 'host': sys.argv[1]}
d = Etcd3(cfg, get_mpp({}))
assert d.initialize(True, '7300000000000000009')
d.set_config_value(json.dumps({'ttl': 30, 'synchronous_mode': True}, separators=(',', ':')))
assert d.attempt_to_acquire_leader()
d.touch_member({'conn_url': 'postgres://127.0.0.1:5432/postgres', 'api_url': 'http://127.0.0.1:8008/patroni',
                'state': 'running', 'role': 'primary', 'version': '4.1.5', 'xlog_location': 1234, 'timeline': 3,
                'tags': {'nosync': True}})
c = d.get_cluster()
d.update_leader(c, 1234, {'perm': 1200}, {'pynode': 'http://127.0.0.1:8008/patroni'})
tz = datetime.timezone(datetime.timedelta(hours=-5))
d.manual_failover('pynode', 'other', datetime.datetime(2030, 1, 2, 3, 4, 5, 600000, tzinfo=tz))
d.write_sync_state('pynode', ['b', 'a'], 1)
d.set_history_value(json.dumps([[2, 999, 'no recovery target specified', '2030-01-01T00:00:00+00:00', 'pynode']]))
"#;

const CONTEND_SCRIPT: &str = r#"
import json, sys
from patroni.dcs.etcd3 import Etcd3
from patroni.postgresql.mpp import get_mpp
cfg = {'name': 'pynode', 'scope': sys.argv[2], 'namespace': '/service/', 'ttl': 30, 'retry_timeout': 10,
       'loop_wait': 10, 'host': sys.argv[1]}
d = Etcd3(cfg, get_mpp({}))
c = d.get_cluster()
print(json.dumps({'leader': c.leader and c.leader.name, 'acquire': bool(d.attempt_to_acquire_leader()),
                  'update': bool(d.update_leader(c, None)), 'delete': bool(d._delete_leader(c.leader))}))
"#;

#[tokio::test]
async fn python_patroni_cannot_take_or_drop_a_patroni_rs_leader_key() {
    let Some(py) = python() else {
        eprintln!("no Python with patroni (set PATRONI_PYTHON): live interop check skipped");
        return;
    };
    let etcd = EtcdServer::start().await.unwrap();
    let ours = Etcd3::new(Etcd3Settings::new("mix", "rsnode").with_hosts([etcd.endpoint()])).await.unwrap();
    ours.attempt_to_acquire_leader().await.unwrap();
    let before = ours.get_cluster().await.unwrap().leader.unwrap();
    let out = Command::new(&py).args(["-c", CONTEND_SCRIPT, &etcd.endpoint(), "mix"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen, serde_json::json!({"leader": "rsnode", "acquire": false, "update": false, "delete": false}));
    let after = ours.get_cluster().await.unwrap().leader.unwrap();
    assert_eq!((after.name, after.version), (before.name, before.version));
}

#[tokio::test]
async fn python_patroni_and_patroni_rs_read_each_other() {
    let Some(py) = python() else {
        eprintln!("no Python with patroni (set PATRONI_PYTHON): live interop check skipped");
        return;
    };
    let etcd = EtcdServer::start().await.unwrap();

    // patroni-rs writes, Python Patroni reads
    let mut s = Etcd3Settings::new("rs", "rsnode").with_hosts([etcd.endpoint()]);
    s.retry_timeout = Duration::from_secs(5);
    let ours = Etcd3::new(s).await.unwrap();
    let data =
        MemberData { tags: serde_json::from_str(r#"{"nofailover":true}"#).unwrap(), ..contract::member_data("rsnode") };
    ours.touch_member(&data).await.unwrap();
    ours.initialize(true, "7300000000000000001").await.unwrap();
    ours.set_config_value(r#"{"ttl":30,"loop_wait":10}"#, None).await.unwrap();
    ours.attempt_to_acquire_leader().await.unwrap();
    let status = Status {
        last_lsn: 5000,
        slots: Some([("perm".to_string(), 4000u64)].into_iter().collect()),
        retain_slots: vec!["gone".into()],
    };
    let failsafe = [("rsnode".to_string(), "http://127.0.0.1:8008/rsnode".to_string())].into_iter().collect();
    let c = ours.get_cluster().await.unwrap();
    ours.update_leader(&c, Some(&status), Some(&failsafe)).await.unwrap();
    let when = parse_timestamp("2030-01-02T03:04:05.600000-05:00").unwrap();
    ours.manual_failover(Some("rsnode"), Some("other"), Some(&when), None).await.unwrap();
    ours.write_sync_state(Some("rsnode"), &["b".into(), "a".into()], 1, None).await.unwrap();
    let history = TimelineHistory {
        version: 0,
        lines: vec![HistoryLine {
            timeline: 1,
            lsn: 999,
            reason: "no recovery target specified".into(),
            timestamp: Some("2030-01-01T00:00:00+00:00".into()),
            new_leader: Some("rsnode".into()),
        }],
    };
    ours.set_history_value(&history.to_json()).await.unwrap();

    let out = Command::new(&py).args(["-c", READ_SCRIPT, &etcd.endpoint(), "rs"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["initialize"], "7300000000000000001");
    assert_eq!(seen["config"]["loop_wait"], 10);
    assert_eq!(seen["leader"], "rsnode");
    assert_eq!(seen["leader_timeline"], 1);
    assert_eq!(seen["members"]["rsnode"], Value::Object(data.to_map()));
    assert_eq!(seen["optime"], 5000);
    assert_eq!(seen["slots"]["perm"], 4000);
    assert_eq!(seen["retain_slots"], serde_json::json!(["gone"]));
    assert_eq!(seen["failover"], serde_json::json!(["rsnode", "other", "2030-01-02T03:04:05.600000-05:00"]));
    assert_eq!(seen["sync"], serde_json::json!(["rsnode", ["a", "b"], 1]));
    assert_eq!(
        seen["history"],
        serde_json::json!([[1, 999, "no recovery target specified", "2030-01-01T00:00:00+00:00", "rsnode"]])
    );
    assert_eq!(seen["failsafe"]["rsnode"], "http://127.0.0.1:8008/rsnode");

    // Python Patroni writes, patroni-rs reads
    let out = Command::new(&py).args(["-c", WRITE_SCRIPT, &etcd.endpoint(), "py"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reader = Etcd3::new(Etcd3Settings::new("py", "rsreader").with_hosts([etcd.endpoint()])).await.unwrap();
    let c = reader.get_cluster().await.unwrap();
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    assert_eq!(c.initialize.as_deref(), Some("7300000000000000009"));
    assert_eq!(c.config.as_ref().unwrap().data["synchronous_mode"], true);
    let leader = c.leader.as_ref().unwrap();
    assert_eq!(leader.name, "pynode");
    assert!(leader.session.is_some());
    assert_eq!(leader.timeline(), Some(3));
    assert!(leader.member.nosync());
    assert_eq!(c.status.last_lsn, 1234);
    assert_eq!(c.slots().get("perm"), Some(&1200));
    let f = c.failover.as_ref().unwrap();
    assert_eq!(f.scheduled_at, parse_timestamp("2030-01-02T03:04:05.600000-05:00"));
    assert_eq!(c.sync.sync_standby, vec!["a", "b"]);
    assert_eq!(c.history.as_ref().unwrap().lines[0].timeline, 2);
    assert_eq!(c.failsafe.as_ref().unwrap()["pynode"], "http://127.0.0.1:8008/patroni");
    // and the Python leader's key is not ours to take
    assert!(reader.attempt_to_acquire_leader().await.unwrap_err().is_compare_failed());
}
