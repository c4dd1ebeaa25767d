//! YAML as patronictl prints it (`yaml.safe_dump`, sorted keys): block style for documents and `-f yaml`,
//! flow style for member tags in `tsv` and `topology` cells.

use serde_json::Value;

/// `yaml.safe_dump(data, default_flow_style=False)`: the block document, without the final newline
/// `click.echo` adds.
pub fn block(v: &Value) -> String {
    let s = patroni_config::to_yaml(v, true);
    s.strip_suffix('\n').map(str::to_owned).unwrap_or(s)
}

/// One scalar as PyYAML writes it inside a flow collection.
fn flow_scalar(v: &Value) -> String {
    let s = patroni_config::to_yaml(v, true);
    let s = s.strip_suffix("\n...\n").or_else(|| s.strip_suffix('\n')).unwrap_or(&s);
    s.to_owned()
}

/// `yaml.safe_dump(data, default_flow_style=True).strip()`: `{nofailover: true, replicatefrom: pg1}`.
pub fn flow(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<_> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}: {}", flow_scalar(&Value::from(k.as_str())), flow(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(flow).collect::<Vec<_>>().join(", ")),
        scalar => flow_scalar(scalar),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flow_style_like_pyyaml() {
        assert_eq!(
            flow(&json!({"replicatefrom": "pg1", "nofailover": true})),
            "{nofailover: true, replicatefrom: pg1}"
        );
        assert_eq!(flow(&json!({"a": [1, "yes"], "b": null})), "{a: [1, 'yes'], b: null}");
    }

    #[test]
    fn block_style_sorted() {
        assert_eq!(block(&json!({"ttl": 30, "loop_wait": 10})), "loop_wait: 10\nttl: 30");
        assert_eq!(block(&json!({"nofailover": true})), "nofailover: true");
    }
}
