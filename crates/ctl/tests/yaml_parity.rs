//! Our YAML against Python patronictl's own `format_config_for_editing` (`yaml.safe_dump(data,
//! default_flow_style=..., encoding=None, allow_unicode=True, width=200)`), which every YAML patronictl prints goes
//! through: `show-config`, the `edit-config` text and diff, `list`/`topology`/`history -f yaml`, and member tags in
//! `pretty` (block) and `tsv`/`topology` (flow) tables. Values a DBA's configuration really holds are the tricky
//! ones: long `pg_hba` lines and comments, date-like and time-like strings, YAML 1.1 booleans, numbers kept as
//! strings, multi-line scripts, unicode, keys that need quoting.
//!
//! Runs when `PYTHON_PATRONICTL` points at Python Patroni 4.1.5's `patronictl` (its venv's `python` is used to
//! import `patroni.ctl`); skipped with a message otherwise.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use patroni_ctl::yaml::format_config_for_editing;
use serde_json::{json, Value};

/// The Python beside `PYTHON_PATRONICTL` (a venv's `bin/`), or `PATRONI_PYTHON`.
fn python() -> Option<PathBuf> {
    let beside_ctl = std::env::var_os("PYTHON_PATRONICTL")
        .map(PathBuf::from)
        .and_then(|ctl| ctl.parent().map(|d| d.join("python")))
        .filter(|p| p.is_file());
    beside_ctl.or_else(|| std::env::var_os("PATRONI_PYTHON").map(PathBuf::from).filter(|p| p.is_file()))
}

/// Python's `format_config_for_editing(value, flow)` for each value, in one interpreter run.
fn python_dumps(python: &PathBuf, values: &[Value], flow: bool) -> Vec<String> {
    let script = "import json, sys\n\
                  from patroni.ctl import format_config_for_editing\n\
                  values = json.load(sys.stdin)\n\
                  flow = sys.argv[1] == 'flow'\n\
                  json.dump([format_config_for_editing(v, flow) for v in values], sys.stdout)\n";
    let mut child = Command::new(python)
        .args(["-c", script, if flow { "flow" } else { "block" }])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    let input = serde_json::to_vec(values).expect("values as JSON");
    child.stdin.take().expect("stdin").write_all(&input).expect("write values");
    let out = child.wait_with_output().expect("python output");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("python answers a JSON list of strings")
}

fn tricky_values() -> Vec<Value> {
    let words = |n: usize| ["word"; 100][..n].join(" ");
    let long_hba = format!("hostssl all all 10.0.0.0/8 scram-sha-256 # {}", ["temporary rule"; 20].join(", "));
    let strings = [
        // Long text with spaces past 80 and past 200 columns, and a long word that cannot fold.
        words(20),
        words(45),
        words(90),
        "x".repeat(250),
        format!("{} {}", "y".repeat(210), "z".repeat(10)),
        long_hba.clone(),
        format!("a  b {}  c", words(50)),
        // Date- and time-like text: whole timestamps are quoted, prefixes of one are not.
        "2024-01-01".into(),
        "2024-01-01 12:00".into(),
        "2024-01-01 12:00:00".into(),
        "2024-01-01T12:00:00+00:00".into(),
        "2024-1-1".into(),
        "2024-01-01 maintenance window".into(),
        "2030-01-01T10:00:00+00:00 if version < 16.0".into(),
        "1:30".into(),
        "12:30:45".into(),
        "190:20:30".into(),
        "1:60".into(),
        // YAML 1.1 booleans and nulls, numbers as strings.
        "yes".into(),
        "no".into(),
        "on".into(),
        "off".into(),
        "Y".into(),
        "n".into(),
        "true".into(),
        "NULL".into(),
        "~".into(),
        "".into(),
        "0640".into(),
        "0o640".into(),
        "0x1F".into(),
        "1_000".into(),
        "1e3".into(),
        "1.0e3".into(),
        "1.5".into(),
        ".5".into(),
        "-.inf".into(),
        "10".into(),
        "+10".into(),
        "8GB".into(),
        "128MB".into(),
        // Multi-line scripts and text with edge spaces.
        "#!/bin/sh\nexec pgbackrest --stanza=main archive-push %p\n".into(),
        "line one\nline two".into(),
        "trailing space \nnext".into(),
        " leading".into(),
        "trailing ".into(),
        "tab\there".into(),
        // Unicode, syntax characters.
        "héllo wörld ✓".into(),
        "日本語のテキスト".into(),
        "emoji 😀 here".into(),
        "a: b".into(),
        "a:b".into(),
        "- item".into(),
        "[not a list]".into(),
        "{not: a map}".into(),
        "x #comment".into(),
        "x#y".into(),
        "it's".into(),
        "say \"hi\"".into(),
        "back\\slash".into(),
        "@at".into(),
        "%percent".into(),
        "*star".into(),
        "&anchor".into(),
        "!tag".into(),
        "|pipe".into(),
        ">fold".into(),
        "?q".into(),
        "? q".into(),
        "---".into(),
        "...".into(),
        "=".into(),
        "<<".into(),
        "host=10.0.0.1 port=5432 user=replicator sslmode=prefer".into(),
        "postgres://user:pass@host:5432/db?sslmode=require".into(),
        "\u{feff}bom".into(),
        "nbsp\u{a0}here".into(),
    ];
    let mut values: Vec<Value> = strings.iter().map(|s| json!({ "key": s })).collect();
    // Each string also as a list item, a key, and in a long flow line that must wrap.
    values.push(Value::Array(strings.iter().map(|s| Value::from(s.as_str())).collect()));
    values.push(Value::Object(strings.iter().enumerate().map(|(i, s)| (s.clone(), Value::from(i))).collect()));
    values.push(json!({ "pg_hba": [long_hba, "local all all trust", "host replication replicator 127.0.0.1/32 md5"] }));
    values.push(json!({
        "loop_wait": 10, "ttl": 30, "retry_timeout": 10, "maximum_lag_on_failover": 1048576,
        "postgresql": {
            "use_pg_rewind": true, "use_slots": true,
            "parameters": {
                "archive_command": "pgbackrest --stanza=main archive-push %p", "archive_mode": "on",
                "max_connections": 100, "wal_level": "replica", "hot_standby": "on", "shared_buffers": "128MB",
                "log_line_prefix": "%m [%p] %q%u@%d ", "search_path": "\"$user\", public",
                "checkpoint_completion_target": 0.9, "random_page_cost": 1.1, "work_mem": "4MB",
                "recovery_target_time": "2024-01-01 12:00:00+00", "timezone": "UTC",
            },
            "recovery_conf": { "restore_command": "cp /archive/%f %p" },
        },
        "slots": { "logical_slot": { "type": "logical", "database": "app", "plugin": "pgoutput" } },
        "ignore_slots": [{ "name": "ext_slot" }],
        "standby_cluster": null,
        "tags": { "nofailover": false, "clonefrom": true, "note": "moved 2024-01-01 12:00" },
        "empty_map": {}, "empty_list": [], "nested": [[1, [2, []]], {"a": {"b": {"c": [{}]}}}],
        "floats": [0.1, 1e16, 1.5e-7, -0.0, 123456.789], "ints": [0, -1, 9007199254740993i64],
        "very long key that goes on and on and on well past the one hundred and twenty eight character limit of simple keys in pyyaml": 1,
        "key with: colon": "v", "key#hash": "v", "-dash": "v", "yes": "no", "1": "one", "null": null,
    }));
    // `list -f yaml` rows and flow tags as the tables print them.
    values.push(json!([
        { "Cluster": "demo", "Member": "pg1", "Host": "127.0.0.1:5432", "Role": "Leader", "State": "running",
          "TL": 1, "Lag in MB": 0, "Pending restart": "*", "Scheduled restart": "2024-01-01T12:00:00+00:00",
          "Tags": { "nofailover": true, "replicatefrom": "pg2" } },
        { "Cluster": "demo", "Member": "pg2", "Host": "127.0.0.1:5433", "Role": "Replica", "State": "streaming",
          "TL": 1, "Receive LSN": "0/3000060", "Receive Lag": 0, "Replay LSN": "0/3000060", "Replay Lag": 0 },
    ]));
    values.push(json!([[1, "0/3000060", "no recovery target specified", "2024-01-01T12:00:00.123456+00:00", "pg1"]]));
    values.push(json!({ "nofailover": true, "replicatefrom": "pg1", "note": words(60), "when": "2024-01-01 12:00" }));
    values.push(Value::from("just a scalar document"));
    values.push(Value::from(words(70)));
    values.push(Value::from(42));
    values.push(Value::Null);
    values
}

#[test]
fn yaml_matches_python_patronictl() {
    let Some(python) = python() else {
        eprintln!("SKIPPED: PYTHON_PATRONICTL (or PATRONI_PYTHON) not set: YAML comparison with Python skipped");
        return;
    };
    let values = tricky_values();
    let mut mismatches = Vec::new();
    for flow in [false, true] {
        for (value, theirs) in values.iter().zip(python_dumps(&python, &values, flow)) {
            let ours = format_config_for_editing(value, flow);
            if ours != theirs {
                mismatches.push(format!("flow={flow} {value}\n--- ours\n{ours}--- python\n{theirs}"));
            }
        }
    }
    assert!(mismatches.is_empty(), "{} dumps differ from Python:\n{}", mismatches.len(), mismatches.join("\n"));
}
