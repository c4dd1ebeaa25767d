//! Tabular output as patronictl prints it: prettytable's boxes (with the cluster title injected into the top
//! border), tab separated values, and JSON / YAML lists of objects.

use serde_json::{Map, Value};

/// How a table is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pretty,
    Tsv,
    Json,
    Yaml,
    /// `pretty` with the member names indented as a replication tree (`topology`).
    Topology,
}

impl Format {
    /// Parses the `-f/--format` values patronictl accepts (`yml` is an alias of `yaml`).
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "pretty" => Format::Pretty,
            "tsv" => Format::Tsv,
            "json" => Format::Json,
            "yaml" | "yml" => Format::Yaml,
            "topology" => Format::Topology,
            _ => return None,
        })
    }
}

/// Column alignment in boxed tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table to print: column names, rows of JSON values, per-column alignment and the optional title of the top
/// border.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// Columns aligned right (by name); all others are left aligned.
    pub right: Vec<String>,
    /// Text injected into the top border (`" Cluster: batman (123) "`); empty for none.
    pub title: String,
}

/// Python's `str()` of a JSON-ish value, as `tsv` output and table cells show it.
pub use patroni_pycompat::py_str;

/// Renders `table` in `fmt`. Returns the text with a trailing newline (what `click.echo` prints).
pub fn render(table: &Table, fmt: Format, delimiter: &str) -> String {
    match fmt {
        Format::Json | Format::Yaml => {
            let elements: Vec<Value> = table
                .rows
                .iter()
                .map(|r| {
                    let mut o = Map::new();
                    for (k, v) in table.columns.iter().zip(r) {
                        // With a title (member lists) empty cells are left out, as patronictl does.
                        if table.title.is_empty() || !py_str(v).is_empty() {
                            o.insert(k.clone(), v.clone());
                        }
                    }
                    Value::Object(o)
                })
                .collect();
            let list = Value::Array(elements);
            if fmt == Format::Json {
                format!("{}\n", patroni_pycompat::json_dumps(&list))
            } else {
                // safe_dump ends with a newline and click.echo adds another.
                let mut s = crate::yaml::format_config_for_editing(&list, false);
                s.push('\n');
                s
            }
        }
        Format::Tsv => {
            let mut out = String::new();
            if !table.columns.is_empty() {
                out.push_str(&table.columns.join(delimiter));
                out.push('\n');
            }
            for r in &table.rows {
                out.push_str(&r.iter().map(py_str).collect::<Vec<_>>().join(delimiter));
                out.push('\n');
            }
            out
        }
        Format::Pretty | Format::Topology => {
            let mut s = pretty(table);
            s.push('\n');
            s
        }
    }
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// prettytable with `align = 'l'`, frame rules (every row ruled when a cell spans lines), and the title
/// written over the start of the top border.
pub fn pretty(table: &Table) -> String {
    if table.columns.is_empty() && !table.rows.is_empty() {
        // prettytable names unnamed columns `Field 1`, `Field 2`, …
        let n = table.rows.iter().map(Vec::len).max().unwrap_or(0);
        let named = Table { columns: (1..=n).map(|i| format!("Field {i}")).collect(), ..table.clone() };
        return pretty(&named);
    }
    let cells: Vec<Vec<String>> = table.rows.iter().map(|r| r.iter().map(py_str).collect()).collect();
    let ncol = table.columns.len();
    let mut widths: Vec<usize> = table.columns.iter().map(|c| width(c)).collect();
    for r in &cells {
        for (i, c) in r.iter().enumerate().take(ncol) {
            for line in c.split('\n') {
                widths[i] = widths[i].max(width(line));
            }
        }
    }
    let aligns: Vec<Align> =
        table.columns.iter().map(|c| if table.right.contains(c) { Align::Right } else { Align::Left }).collect();
    let rule: String = {
        let mut s = String::from("+");
        for w in &widths {
            s.push_str(&"-".repeat(w + 2));
            s.push('+');
        }
        s
    };
    let top = if table.title.is_empty() {
        rule.clone()
    } else {
        // patronictl: header = title[:len(line) - 2]; line[0] + header + line[1 + len(header):]
        let line: Vec<char> = rule.chars().collect();
        let title: String = table.title.chars().take(line.len().saturating_sub(2)).collect();
        let n = width(&title);
        let mut s = String::new();
        s.push(line[0]);
        s.push_str(&title);
        s.extend(line[1 + n..].iter());
        s
    };
    let row_lines = |vals: &[String]| -> Vec<String> {
        let height = vals.iter().map(|v| v.split('\n').count()).max().unwrap_or(1);
        (0..height)
            .map(|h| {
                let mut s = String::from("|");
                for (i, w) in widths.iter().enumerate() {
                    let text = vals.get(i).and_then(|v| v.split('\n').nth(h)).unwrap_or("");
                    let pad = w.saturating_sub(width(text));
                    match aligns[i] {
                        Align::Left => s.push_str(&format!(" {text}{} |", " ".repeat(pad))),
                        Align::Right => s.push_str(&format!(" {}{text} |", " ".repeat(pad))),
                    }
                }
                s
            })
            .collect()
    };
    let rule_all = cells.iter().any(|r| r.iter().any(|c| c.contains('\n')));
    let mut out = vec![top, row_lines(&table.columns).join("\n"), rule.clone()];
    for (i, r) in cells.iter().enumerate() {
        out.extend(row_lines(r));
        if rule_all && i + 1 < cells.len() {
            out.push(rule.clone());
        }
    }
    out.push(rule);
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn history_table() -> Table {
        Table {
            columns: ["TL", "LSN", "Reason", "Timestamp", "New Leader"].map(String::from).to_vec(),
            rows: vec![
                vec![
                    json!(1),
                    json!(24392648),
                    json!("no recovery target specified"),
                    json!("2023-09-11T22:11:27.125527+00:00"),
                    json!("postgresql0"),
                ],
                vec![
                    json!(2),
                    json!(50331864),
                    json!("no recovery target specified"),
                    json!("2023-09-12T11:34:03.148097+00:00"),
                    json!("postgresql0"),
                ],
            ],
            right: vec!["TL".into(), "LSN".into()],
            title: String::new(),
        }
    }

    #[test]
    fn history_pretty_matches_the_documentation() {
        let expected = "\
+----+----------+------------------------------+----------------------------------+-------------+
| TL |      LSN | Reason                       | Timestamp                        | New Leader  |
+----+----------+------------------------------+----------------------------------+-------------+
|  1 | 24392648 | no recovery target specified | 2023-09-11T22:11:27.125527+00:00 | postgresql0 |
|  2 | 50331864 | no recovery target specified | 2023-09-12T11:34:03.148097+00:00 | postgresql0 |
+----+----------+------------------------------+----------------------------------+-------------+
";
        assert_eq!(render(&history_table(), Format::Pretty, "\t"), expected);
    }

    #[test]
    fn history_yaml_and_json_match_patronictl() {
        let yaml = render(&history_table(), Format::Yaml, "\t");
        assert_eq!(
            yaml,
            "- LSN: 24392648\n  New Leader: postgresql0\n  Reason: no recovery target specified\n  TL: 1\n  \
             Timestamp: '2023-09-11T22:11:27.125527+00:00'\n- LSN: 50331864\n  New Leader: postgresql0\n  \
             Reason: no recovery target specified\n  TL: 2\n  Timestamp: '2023-09-12T11:34:03.148097+00:00'\n\n"
        );
        let json = render(&history_table(), Format::Json, "\t");
        assert!(json.starts_with(
            "[{\"TL\": 1, \"LSN\": 24392648, \"Reason\": \"no recovery target specified\", \"Timestamp\": "
        ));
    }

    #[test]
    fn empty_table_prints_header_and_two_rules() {
        let t = Table { columns: vec!["TL".into(), "LSN".into()], ..Table::default() };
        assert_eq!(pretty(&t), "+----+-----+\n| TL | LSN |\n+----+-----+\n+----+-----+");
    }

    #[test]
    fn multi_line_cells_rule_every_row() {
        let t = Table {
            columns: vec!["TL".into(), "LSN".into(), "Reason".into()],
            rows: vec![vec![json!(1), json!("a\nbbbbbbb"), json!("")], vec![json!(22), json!("c"), json!("x")]],
            right: vec!["TL".into()],
            title: String::new(),
        };
        let expected = "\
+----+---------+--------+
| TL | LSN     | Reason |
+----+---------+--------+
|  1 | a       |        |
|    | bbbbbbb |        |
+----+---------+--------+
| 22 | c       | x      |
+----+---------+--------+";
        assert_eq!(pretty(&t), expected);
    }

    #[test]
    fn title_is_cut_to_the_border() {
        let t = Table {
            columns: vec!["A".into()],
            rows: vec![vec![json!("x")]],
            right: vec![],
            title: " Cluster: batman (1234) ".into(),
        };
        // patronictl: title[:len(line) - 2] written over the border
        assert_eq!(pretty(&t).lines().next(), Some("+ Cl+"));
        let t = Table { columns: vec!["Member".into(), "Host".into()], title: " C: b ".into(), ..t };
        assert_eq!(pretty(&t).lines().next(), Some("+ C: b --+------+"));
    }

    #[test]
    fn python_str_of_values() {
        assert_eq!(py_str(&json!(null)), "None");
        assert_eq!(py_str(&json!(true)), "True");
        assert_eq!(py_str(&json!({"a": [1, "b"]})), "{'a': [1, 'b']}");
    }
}
