//! Golden data produced with PyYAML (the YAML library Python Patroni uses): our reader resolves plain
//! scalars exactly as `yaml.safe_load` does, and our writer produces exactly what
//! `yaml.safe_dump(value, default_flow_style=..., allow_unicode=True, width=...)` prints (patronictl uses
//! width 200, Patroni the default 80).

use patroni_config::DumpOptions;
use serde_json::Value;
use std::path::Path;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pyyaml").join(name)).unwrap()
}

#[test]
fn scalars_resolve_like_safe_load() {
    let ours = patroni_config::parse_yaml(&fixture("scalars.yml"), "scalars.yml").unwrap();
    let python: Value = serde_json::from_str(&fixture("scalars.json")).unwrap();
    let text = fixture("scalars.yml");
    let lines: Vec<&str> = text.lines().collect();
    let mut mismatches = Vec::new();
    for (i, (k, expected)) in python.as_object().unwrap().iter().enumerate() {
        let got = &ours[k];
        let same = match (expected, got) {
            // Markers for values JSON cannot hold (dates, infinities, integers beyond 64 bits): we keep text.
            (Value::String(m), Value::String(_)) if m == "DATE" || m == "SPECIAL" || m == "BIG" => true,
            (a, b) if a.is_number() && b.is_number() => a.as_f64() == b.as_f64(),
            (a, b) => a == b,
        };
        if !same {
            mismatches.push(format!("{} => python {expected}, ours {got}", lines[i]));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    assert_eq!(python.as_object().unwrap().len(), 420);
}

#[test]
fn dumps_are_byte_identical_to_safe_dump() {
    let cases: Vec<Value> = serde_json::from_str(&fixture("safe_dump.json")).unwrap();
    assert_eq!(cases.len(), 200);
    for c in &cases {
        let expected = c["y"].as_str().unwrap();
        assert_eq!(patroni_config::to_yaml(&c["v"], true), expected, "value {}", c["v"]);
        // And what we write reads back as the same value.
        let back = patroni_config::parse_yaml(expected, "dump").unwrap();
        assert_eq!(back, c["v"], "{expected}");
    }
}

#[test]
fn dumps_at_every_width_and_style_are_byte_identical_to_safe_dump() {
    // `gen_safe_dump_width.py`: patronictl's width 200 next to the default 80 (and odd widths), block and flow
    // style, on long folded strings and lists, date- and time-like strings, `list -f yaml` rows, quoting
    // triggers and unicode.
    let cases: Vec<Value> = serde_json::from_str(&fixture("safe_dump_width.json")).unwrap();
    assert_eq!(cases.len(), 971);
    let mut dumps = 0;
    let mut mismatches = Vec::new();
    for c in &cases {
        let v = &c["v"];
        for d in c["d"].as_array().unwrap() {
            let options = DumpOptions {
                width: d[0].as_u64().unwrap() as usize,
                default_flow_style: d[1].as_bool().unwrap(),
                sort_keys: d[2].as_bool().unwrap(),
            };
            let expected = d[3].as_str().unwrap();
            let ours = patroni_config::to_yaml_with(v, options);
            if ours != expected {
                mismatches.push(format!("{options:?} value {v}\n--- ours\n{ours}--- python\n{expected}"));
            }
            // What PyYAML reads back as the same value, so must we; except U+2028/U+2029, line breaks to
            // YAML 1.1 (PyYAML) but ordinary characters to the YAML 1.2 parser under our reader.
            let yaml_1_1_breaks = v.to_string().contains(['\u{2028}', '\u{2029}']);
            if c["rt"].as_bool().unwrap() && !yaml_1_1_breaks {
                let back = patroni_config::parse_yaml(expected, "dump");
                if back.as_ref().ok() != Some(v) {
                    mismatches.push(format!("reading back {expected:?}: {back:?}"));
                }
            }
            dumps += 1;
        }
    }
    assert!(mismatches.is_empty(), "{} of {dumps} differ:\n{}", mismatches.len(), mismatches.join("\n"));
    assert_eq!(dumps, 2671);
}

#[test]
fn documents_in_every_style_load_like_safe_load() {
    // Random documents PyYAML wrote in flow, block, canonical (explicit tags), narrow and literal/folded
    // styles, with what `yaml.safe_load` read back from each.
    let cases: Vec<Value> = serde_json::from_str(&fixture("documents.json")).unwrap();
    assert_eq!(cases.len(), 300);
    for c in &cases {
        let text = c["y"].as_str().unwrap();
        assert_eq!(patroni_config::parse_yaml(text, "doc").unwrap(), c["v"], "{text}");
    }
}
