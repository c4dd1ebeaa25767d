//! Whatever a client sends in a URL or a body, the pure parts answer instead of panicking.

mod common;

use patroni_api::config_patch::merge_patch;
use patroni_api::control::{validate_failover, validate_restart, FailoverAction};
use patroni_api::health::{health_check, liveness, readiness, Query};
use patroni_api::schedule::parse_timestamp;
use patroni_api::units::parse_lag;
use proptest::prelude::*;
use serde_json::{Map, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(
        prop_oneof![
            Just("leader".to_string()),
            Just("candidate".to_string()),
            Just("member".to_string()),
            Just("scheduled_at".to_string()),
            Just("schedule".to_string()),
            Just("role".to_string()),
            Just("timeout".to_string()),
            Just("postgres_version".to_string()),
            Just("restart_pending".to_string()),
            "[a-z_]{1,10}",
        ],
        json_value(),
        0..5,
    )
    .prop_map(|m| m.into_iter().collect())
}

proptest! {
    #[test]
    fn health_checks_take_any_url(path in "/[ -~]{0,40}", query in "[ -~]{0,60}") {
        for status in [common::primary(), common::replica(5000)] {
            let q = Query::parse(Some(&query));
            if let Ok(code) = health_check(&status, &path, &q) {
                prop_assert!(code == 200 || code == 503);
            }
            let _ = readiness(&status, &q);
            let _ = liveness(&status, std::time::SystemTime::now());
        }
    }

    #[test]
    fn units_and_timestamps_take_any_text(s in "\\PC{0,30}") {
        let _ = parse_lag(&s);
        let _ = parse_timestamp(&s);
    }

    #[test]
    fn control_bodies_take_any_json(body in object(), paused in any::<bool>()) {
        let view = common::cluster();
        let now = chrono::Utc::now();
        for action in [FailoverAction::Switchover, FailoverAction::Failover] {
            if let Err(e) = validate_failover(action, &body, Some(&view), paused, now) {
                prop_assert!([400, 412, 422, 503].contains(&e.status), "{}", e.status);
            }
        }
        if let Err(e) = validate_restart(&body, paused, now) {
            prop_assert!([400, 422, 500].contains(&e.status), "{}", e.status);
        }
    }

    #[test]
    fn patches_take_any_json(base in object(), patch in object()) {
        let mut merged = base.clone();
        merge_patch(&mut merged, &patch);
        // Idempotent: patching again changes nothing.
        let again = merged.clone();
        prop_assert!(!merge_patch(&mut merged, &patch) || merged == again);
        let _ = patroni_api::model::check_dynamic_config(&Value::Object(merged));
    }
}
