//! Output of `list`, `topology`, `history` and `show-config` for a cluster stored in the DCS, compared byte for
//! byte with what Python patronictl 4.1.5 printed for the same keys (fixtures in `tests/fixtures/snap`,
//! produced with `patronictl -d etcd3://… list batman …` after writing `dcs.json` under `/service/batman/`).
//!
//! The cluster exercises every column and footer: a sync standby with tags, cascading (`replicatefrom`), a
//! pending restart with reasons (one too long for a box), an old member reporting only `xlog_location`, a
//! scheduled restart with a version condition, maintenance mode and a scheduled switchover.

use patroni_ctl::members::{history_table, render_members};
use patroni_ctl::output::{render, Format};
use patroni_dcs::{Cluster, RawNode};
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/snap/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn cluster() -> Cluster {
    let keys: serde_json::Map<String, Value> = serde_json::from_str(&fixture("dcs.json")).expect("dcs.json");
    Cluster::from_nodes(keys.into_iter().enumerate().map(|(i, (key, v))| RawNode {
        key,
        value: v.as_str().unwrap_or_default().to_string(),
        version: i as i64 + 1,
        session: None,
    }))
}

fn check(actual: String, fixture_name: &str) {
    let expected = fixture(fixture_name);
    assert!(
        actual == expected,
        "{fixture_name} differs from Python patronictl:\n--- ours\n{actual}\n--- python\n{expected}"
    );
}

#[test]
fn list_pretty() {
    check(render_members(&cluster(), "batman", false, Format::Pretty), "list.pretty");
}

#[test]
fn list_extended_pretty() {
    check(render_members(&cluster(), "batman", true, Format::Pretty), "list-e.pretty");
}

#[test]
fn list_json_field_names_and_values() {
    check(render_members(&cluster(), "batman", false, Format::Json), "list.json");
}

#[test]
fn list_tsv() {
    check(render_members(&cluster(), "batman", false, Format::Tsv), "list.tsv");
    check(render_members(&cluster(), "batman", true, Format::Tsv), "list-e.tsv");
}

#[test]
fn list_yaml() {
    check(render_members(&cluster(), "batman", false, Format::Yaml), "list.yaml");
}

#[test]
fn topology_tree() {
    check(render_members(&cluster(), "batman", false, Format::Topology), "topology.pretty");
}

#[test]
fn history_formats() {
    let c = cluster();
    check(render(&history_table(&c), Format::Pretty, "\t"), "history.pretty");
    check(render(&history_table(&c), Format::Json, "\t"), "history.json");
    check(render(&history_table(&c), Format::Tsv, "\t"), "history.tsv");
    // history.yaml is history.json put through patronictl's own dump (`format_config_for_editing`) by PyYAML.
    check(render(&history_table(&c), Format::Yaml, "\t"), "history.yaml");
}

#[test]
fn show_config() {
    let c = cluster();
    let data = Value::Object(c.config.map(|c| c.data).unwrap_or_default());
    check(format!("{}\n", patroni_ctl::yaml::format_config_for_editing(&data, false)), "show-config.yaml");
}

#[test]
fn documentation_example_without_lag_columns_is_gone_in_4_x() {
    // The documentation still shows `Lag in MB`; Patroni 4.x prints Receive/Replay LSN and lag columns.
    let out = render_members(&cluster(), "batman", false, Format::Pretty);
    assert!(out.lines().nth(1).is_some_and(|l| l.contains("| Receive LSN | Lag | Replay LSN | Lag |")));
}
