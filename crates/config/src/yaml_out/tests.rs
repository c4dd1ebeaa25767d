use super::*;
use serde_json::json;

#[test]
fn matches_pyyaml_safe_dump() {
    let v = json!({
        "a": "on", "aa": "Y", "ab": "=", "ac": "1:30", "ad": ".5", "ae": "x: ", "af": "a,b", "ag": "*",
        "ah": "!x", "ai": "x'y", "b": "", "c": "#x", "d": "%(a)s: b",
        "e": format!("{} yy zz {} end", "x".repeat(70), "w".repeat(20)),
        "f": [{"k": 1, "j": "2"}, "s"], "g": {}, "h": [], "i": null, "j": 1.4, "k": "1_000",
        "l": "2002-12-14", "m": "a\nb", "n": " lead", "p": "127.0.0.1:8008", "q": "a: b",
        "r": "- x", "s": "x #y", "t": "0777", "u": "1e3", "v": "null", "w": "~",
        "x": {"n": {"m": [1, [2, 3]]}}, "y": "host all all 0.0.0.0/0 md5", "z": "é"
    });
    let expected = "a: 'on'\naa: Y\nab: '='\nac: '1:30'\nad: '.5'\nae: 'x: '\naf: a,b\nag: '*'\nah: '!x'\n\
ai: x'y\nb: ''\nc: '#x'\nd: '%(a)s: b'\n\
e: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx yy zz wwwwwwwwwwwwwwwwwwww\n  end\n\
f:\n- j: '2'\n  k: 1\n- s\ng: {}\nh: []\ni: null\nj: 1.4\nk: '1_000'\nl: '2002-12-14'\nm: 'a\n\n  b'\n\
n: ' lead'\np: 127.0.0.1:8008\nq: 'a: b'\nr: '- x'\ns: 'x #y'\nt: '0777'\nu: 1e3\nv: 'null'\nw: '~'\n\
x:\n  n:\n    m:\n    - 1\n    - - 2\n      - 3\ny: host all all 0.0.0.0/0 md5\nz: é\n";
    assert_eq!(to_yaml(&v, true), expected);
}

#[test]
fn width_200_keeps_long_lines() {
    let long = format!("{} yy zz {} end", "x".repeat(70), "w".repeat(20));
    assert_eq!(to_yaml_width(&json!({ "e": long }), true, 200), format!("e: {long}\n"));
    // Widths PyYAML rejects fall back to 80.
    assert_eq!(to_yaml_width(&json!({ "e": long }), true, 4), to_yaml(&json!({ "e": long }), true));
}

#[test]
fn only_whole_timestamps_are_quoted() {
    for s in ["2024-01-01", "2024-01-01T10:00:00+00:00", "2024-1-1 1:00:00", "2026-11-22 03:00:00+00:00"] {
        assert!(is_timestamp(s), "{s}");
    }
    for s in [
        "2024-1-1",
        "2024-01-01 12:00:00.123+00:00 extra",
        "2030-01-01T10:00:00+00:00 if version < 16.0",
        "2024-01-01x",
        "2024-01-01 ",
        "2024-01-01T10:00:00+",
    ] {
        assert!(!is_timestamp(s), "{s}");
    }
}

#[test]
fn floats_as_python_repr() {
    let cases = [
        (1e16, "1.0e+16"),
        (1e-5, "1.0e-05"),
        (1.5e-7, "1.5e-07"),
        (0.0001, "0.0001"),
        (123456.789, "123456.789"),
        (-0.0, "-0.0"),
        (1e15, "1000000000000000.0"),
        (2.5e300, "2.5e+300"),
    ];
    for (f, want) in cases {
        assert_eq!(number(&Number::from_f64(f).unwrap()), want);
    }
    // JSON text in, the same digits out: needs serde_json's `float_roundtrip` (without it the last digit of
    // some values changes on parsing, and we would print another number than Python Patroni).
    for text in ["-924583.9619869951", "4.885594958490382e-21"] {
        let v: Value = serde_json::from_str(text).unwrap();
        let back: f64 = number(v.as_number().unwrap()).parse().unwrap();
        assert_eq!(back, text.parse::<f64>().unwrap(), "{text}");
    }
}

#[test]
fn style_decisions() {
    use ScalarStyle::{DoubleQuoted as D, Plain as P, SingleQuoted as S};
    // (text, style in block context, style in flow context), as PyYAML chooses.
    let table = [
        ("a:b", P, S),
        ("a: b", S, S),
        ("a:", S, S),
        ("a,b", P, S),
        ("x]", P, S),
        ("[x", S, S),
        ("x#y", P, P),
        ("x #y", S, S),
        ("-x", P, P),
        ("- x", S, S),
        ("?x", P, S),
        ("...", S, S),
        (" x", S, S),
        ("a\nb", S, S),
        ("a \nb", D, D),
        ("a\n b", D, D),
        ("tab\t", D, D),
        ("\u{feff}", D, D),
        ("😀", P, P),
    ];
    for (text, block, flow) in table {
        assert_eq!((choose_style(text, true, false), choose_style(text, true, true)), (block, flow), "{text:?}");
    }
    assert_eq!(choose_style("on", false, false), S);
}

#[test]
fn layouts_as_pyyaml() {
    assert_eq!(to_yaml(&json!("abc"), true), "abc\n...\n");
    // Keys that cannot be simple; a sequence under a simple key is not indented, under `: ` it is.
    let v = json!({"k".repeat(123): 1, "a\nb": [1, 2], "c": [{"d": 1}]});
    let k = "k".repeat(123);
    assert_eq!(to_yaml(&v, true), format!("? 'a\n\n  b'\n: - 1\n  - 2\nc:\n- d: 1\n? {k}\n: 1\n"));
    let flow = DumpOptions { sort_keys: true, width: 20, default_flow_style: true };
    let v = json!({"k".repeat(123): 1, "a\nb": [1]});
    assert_eq!(to_yaml_with(&v, flow), format!("{{? 'a\n\n    b' : [1], ? {k}\n  : 1}}\n"));
    // Double quotes fold with an escaped line break, and escape the space that starts the next line.
    let v = json!({"q": format!("tab\there and  there {} \u{2028}x", "w".repeat(10))});
    assert_eq!(to_yaml_width(&v, true, 20), "q: \"tab\\there and  there\\\n  \\ wwwwwwwwww \\Lx\"\n");
    assert_eq!(to_yaml_width(&json!({"q": "it's a\nb c  d e"}), true, 8), "q: 'it''s\n  a\n\n  b c  d e'\n");
}

#[test]
fn flow_style() {
    let opts = DumpOptions { default_flow_style: true, width: 200, sort_keys: true };
    assert_eq!(to_yaml_with(&json!({"b": [1, {"c": "x y"}], "a": {}}), opts), "{a: {}, b: [1, {c: x y}]}\n");
}

fn arb_value() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1.0e6f64..1.0e6).prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[ -~]{0,12}".prop_map(Value::String),
        "[a-z0-9:#'\\-. ,\n]{0,100}".prop_map(Value::String),
        prop::sample::select(vec!["on", "y", "0640", "1:30", "1e3", "~", "-", "- a", "a: b", "", " x", "<<"])
            .prop_map(|s| Value::String(s.to_owned())),
    ];
    scalar.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(("[a-z_<~ :#-]{1,8}", inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    #[test]
    fn any_value_reads_back(v in arb_value(), width in proptest::sample::select(vec![20usize, 80, 200]),
                            flow in proptest::bool::ANY) {
        let opts = DumpOptions { sort_keys: false, width, default_flow_style: flow };
        let text = to_yaml_with(&v, opts);
        let back = crate::tree::parse_yaml(&text, "t").unwrap();
        proptest::prop_assert_eq!(back, v, "{}", text);
    }
}

#[test]
fn output_reads_back() {
    let v = json!({"s": "a: b", "n": 5, "l": ["x", {"y": "on"}], "q": "it's", "m": "a\nb"});
    let back = crate::tree::parse_yaml(&to_yaml(&v, false), "t").unwrap();
    assert_eq!(back, v);
}
