//! Golden data produced with PyYAML (the YAML library Python Patroni uses): our reader resolves plain
//! scalars exactly as `yaml.safe_load` does, and our writer produces exactly what
//! `yaml.safe_dump(value, default_flow_style=False, allow_unicode=True)` prints.

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
