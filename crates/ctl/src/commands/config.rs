//! `show-config` and `edit-config`: the dynamic configuration as PyYAML prints it, changed by `--set`, `--pg`,
//! `--apply`, `--replace` or `$EDITOR`, shown as a unified diff and written with compare-and-set.

use std::io::{IsTerminal, Read};

use serde_json::{Map, Value};

use super::get_cluster;
use crate::context::{Ctl, CtlError, CtlResult};
use crate::prompt;

/// `format_config_for_editing(data)`: block style, sorted keys, width 200.
pub(crate) fn format_config(data: &Value) -> String {
    crate::yaml::format_config_for_editing(data, false)
}

pub async fn show_config(ctl: &Ctl, name: Option<String>, group: Option<u32>) -> CtlResult<()> {
    let name = ctl.cluster_name(name)?;
    let cluster = get_cluster(&*ctl.dcs(&name, group).await?).await?;
    if let Some(c) = &cluster.config {
        println!("{}", format_config(&Value::Object(c.data.clone())));
    }
    Ok(())
}

fn load_yaml(text: &str, source: &str) -> CtlResult<Value> {
    patroni_config::parse_yaml(text, source).map_err(|e| CtlError::new(format!("{source}: {e:?}")))
}

/// Applies `a.b.c=value` pairs (values read as YAML, `null` removes); names under `postgresql.parameters`
/// keep their dots (`-p pg_stat_statements.max=1000`).
pub(crate) fn apply_kvpairs(data: &mut Map<String, Value>, pairs: &[String]) -> CtlResult<()> {
    fn set(config: &mut Map<String, Value>, path: &[&str], value: &Value, prefix: &[&str]) {
        let joined;
        let path: Vec<&str> = if prefix == ["postgresql", "parameters"] {
            joined = path.join(".");
            vec![joined.as_str()]
        } else {
            path.to_vec()
        };
        let key = path[0];
        if path.len() == 1 {
            if value.is_null() {
                config.remove(key);
            } else {
                config.insert(key.to_string(), value.clone());
            }
            return;
        }
        if !config.get(key).is_some_and(Value::is_object) {
            config.insert(key.to_string(), Value::Object(Map::new()));
        }
        let mut next_prefix = prefix.to_vec();
        next_prefix.push(key);
        if let Some(Value::Object(inner)) = config.get_mut(key) {
            set(inner, &path[1..], value, &next_prefix);
            if inner.is_empty() {
                config.remove(key);
            }
        }
    }
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=').filter(|_| !pair.is_empty()) else {
            return Err(CtlError::new(format!("Invalid parameter setting {pair}")));
        };
        let value = load_yaml(value, "<value>")?;
        let key = key.trim();
        let path: Vec<&str> = key.split('.').collect();
        set(data, &path, &value, &[]);
    }
    Ok(())
}

fn read_source(filename: &str) -> CtlResult<String> {
    if filename == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| CtlError::new(format!("stdin: {e}")))?;
        Ok(s)
    } else {
        std::fs::read_to_string(filename).map_err(|e| CtlError::new(format!("{filename}: {e}")))
    }
}

/// Patroni's `apply_yaml_file`: the file's settings patched onto `data`.
fn apply_yaml_file(data: &Map<String, Value>, filename: &str) -> CtlResult<Map<String, Value>> {
    let new = load_yaml(&read_source(filename)?, filename)?;
    let mut changed = Value::Object(data.clone());
    match new {
        Value::Object(_) => {
            patroni_config::deep_merge(&mut changed, new);
        }
        Value::Null => {}
        _ => return Err(CtlError::new(format!("{filename}: the configuration must be a YAML mapping"))),
    }
    match changed {
        Value::Object(m) => Ok(m),
        _ => Ok(Map::new()),
    }
}

/// The editor patronictl runs: `$EDITOR`, else `editor`, else `vi`.
fn editor_command() -> CtlResult<Vec<String>> {
    if let Some(e) = std::env::var("EDITOR").ok().filter(|e| !e.trim().is_empty()) {
        // Patroni runs $EDITOR as one program path; accept "code --wait" style values as well.
        if std::path::Path::new(&e).exists() || !e.contains(char::is_whitespace) {
            return Ok(vec![e]);
        }
        return Ok(e.split_whitespace().map(str::to_owned).collect());
    }
    for candidate in ["editor", "vi"] {
        if let Some(p) = find_in_path(candidate) {
            return Ok(vec![p]);
        }
    }
    Err(CtlError::new("EDITOR environment variable is not set. editor or vi are not available"))
}

fn find_in_path(program: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file()).map(|p| p.display().to_string())
}

fn invoke_editor(before: &str, name: &str) -> CtlResult<(String, Value)> {
    let cmd = editor_command()?;
    let safe = name.replace('/', "_");
    let file = tempfile::Builder::new()
        .prefix(&format!("{safe}-config-"))
        .suffix(".yaml")
        .tempfile()
        .map_err(|e| CtlError::new(format!("cannot create a temporary file: {e}")))?;
    std::fs::write(file.path(), before).map_err(|e| CtlError::new(format!("{}: {e}", file.path().display())))?;
    let status = std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .arg(file.path())
        .status()
        .map_err(|e| CtlError::new(format!("cannot run editor {}: {e}", cmd[0])))?;
    if !status.success() {
        return Err(CtlError::new(format!("Editor exited with return code {}", status.code().unwrap_or(-1))));
    }
    let after = std::fs::read_to_string(file.path()).map_err(|e| CtlError::new(e.to_string()))?;
    let parsed = load_yaml(&after, &file.path().display().to_string())?;
    Ok((after, parsed))
}

/// `difflib.unified_diff` of the two texts, line by line, as patronictl prints it off a terminal.
pub(crate) fn unified_diff(before: &str, after: &str) -> Vec<String> {
    let listify = |s: &str| -> String {
        let mut t: String = s.trim_end_matches('\n').to_string();
        t.push('\n');
        t
    };
    let (a, b) = (listify(before), listify(after));
    let diff = similar::TextDiff::configure().algorithm(similar::Algorithm::Myers).diff_lines(&a, &b);
    let text = diff.unified_diff().context_radius(3).header("", "").to_string();
    text.lines().map(str::to_owned).collect()
}

/// The diff, coloured as ydiff colours it, for a terminal.
fn colored(lines: &[String]) -> String {
    let mut out = String::new();
    for l in lines {
        let color = if l.starts_with("---") || l.starts_with("+++") {
            "\x1b[33m"
        } else if l.starts_with("@@") {
            "\x1b[34m"
        } else if l.starts_with('-') {
            "\x1b[31m"
        } else if l.starts_with('+') {
            "\x1b[32m"
        } else {
            "\x1b[0m"
        };
        out.push_str(&format!("{color}{l}\x1b[0m\n"));
    }
    out
}

/// Shows the diff: plain lines off a terminal; on a terminal coloured through `$PAGER`, `less` or `more`, as
/// patronictl does with ydiff.
fn show_diff(before: &str, after: &str) -> CtlResult<()> {
    let lines = unified_diff(before, after);
    if !std::io::stdout().is_terminal() {
        for l in lines {
            println!("{l}");
        }
        return Ok(());
    }
    let pager = [std::env::var("PAGER").ok(), Some("less".into()), Some("more".into())]
        .into_iter()
        .flatten()
        .filter(|p| !p.trim().is_empty())
        .find(|p| find_in_path(p).is_some() || std::path::Path::new(p).is_file())
        .ok_or_else(|| {
            CtlError::new(
                "No pager could be found. Either set PAGER environment variable with your pager or install \
                 either \"less\" or \"more\" in the host.",
            )
        })?;
    let mut cmd = std::process::Command::new(&pager);
    if std::path::Path::new(&pager).file_name().and_then(|n| n.to_str()) == Some("less")
        && std::env::var("LESS").map_or(true, |v| v.is_empty())
    {
        cmd.args(["-FRSX", "--shift", "1"]);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| CtlError::new(format!("cannot run pager {pager}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(colored(&lines).as_bytes());
    }
    let _ = child.wait();
    Ok(())
}

pub struct EditArgs {
    pub cluster_name: Option<String>,
    pub group: Option<u32>,
    pub quiet: bool,
    pub kvpairs: Vec<String>,
    pub pgkvpairs: Vec<String>,
    pub apply: Option<String>,
    pub replace: Option<String>,
    pub force: bool,
}

pub async fn edit_config(ctl: &Ctl, a: EditArgs) -> CtlResult<()> {
    let name = ctl.cluster_name(a.cluster_name)?;
    let dcs = ctl.dcs(&name, a.group).await?;
    let cluster = get_cluster(&*dcs).await?;
    let Some(config) = &cluster.config else {
        return Err(CtlError::new(format!("The config key does not exist in the cluster {name}")));
    };
    let original = Value::Object(config.data.clone());
    let before = format_config(&original);
    let mut changed: Option<Map<String, Value>> = None;
    if let Some(f) = &a.replace {
        changed = Some(apply_yaml_file(&Map::new(), f)?);
    }
    if let Some(f) = &a.apply {
        let base = changed.clone().unwrap_or_else(|| config.data.clone());
        changed = Some(apply_yaml_file(&base, f)?);
    }
    if !a.kvpairs.is_empty() || !a.pgkvpairs.is_empty() {
        let mut pairs = a.kvpairs.clone();
        pairs.extend(a.pgkvpairs.iter().map(|p| format!("postgresql.parameters.{}", p.trim_start())));
        let mut base = changed.clone().unwrap_or_else(|| config.data.clone());
        apply_kvpairs(&mut base, &pairs)?;
        changed = Some(base);
    }
    let (after, changed) = match changed {
        Some(m) => {
            let v = Value::Object(m);
            (format_config(&v), v)
        }
        None => invoke_editor(&before, &name)?,
    };
    if changed == original {
        if !a.quiet {
            println!("Not changed");
        }
        return Ok(());
    }
    if !changed.is_object() {
        return Err(CtlError::new("The edited configuration is not a YAML mapping; nothing changed"));
    }
    if !a.quiet {
        show_diff(&before, &after)?;
    }
    if (a.apply.as_deref() == Some("-") || a.replace.as_deref() == Some("-")) && !a.force {
        println!("Use --force option to apply changes");
        return Ok(());
    }
    if a.force || prompt::confirm("Apply these changes?")? {
        let json = serde_json::to_string(&changed).map_err(|e| CtlError::new(e.to_string()))?;
        match dcs.set_config_value(&json, Some(config.version)).await {
            Ok(()) => println!("Configuration changed"),
            Err(e) if e.is_compare_failed() => {
                return Err(CtlError::new("Config modification aborted due to concurrent changes"))
            }
            Err(e) => return Err(CtlError::new(e.to_string())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc_config() -> Value {
        json!({"loop_wait": 10, "maximum_lag_on_failover": 1048576, "postgresql": {"pg_hba": [
            "host replication replicator 127.0.0.1/32 md5", "host all all 0.0.0.0/0 md5"], "use_pg_rewind": true},
            "retry_timeout": 10, "ttl": 30})
    }

    fn edit(pairs: &[&str]) -> (String, String) {
        let before = doc_config();
        let mut m = before.as_object().cloned().unwrap_or_default();
        apply_kvpairs(&mut m, &pairs.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        (format_config(&before), format_config(&Value::Object(m)))
    }

    #[test]
    fn pg_parameter_diff_matches_the_documentation() {
        let (b, a) = edit(&["postgresql.parameters.max_connections=150"]);
        assert_eq!(
            unified_diff(&b, &a).join("\n"),
            "--- \n+++ \n@@ -1,6 +1,8 @@\n loop_wait: 10\n maximum_lag_on_failover: 1048576\n postgresql:\n\
             +  parameters:\n+    max_connections: 150\n   pg_hba:\n   - host replication replicator 127.0.0.1/32 md5\n\
             \x20  - host all all 0.0.0.0/0 md5"
        );
    }

    #[test]
    fn two_settings_diff_matches_the_documentation() {
        let (b, a) = edit(&["loop_wait=15", "ttl=45"]);
        assert_eq!(
            unified_diff(&b, &a).join("\n"),
            "--- \n+++ \n@@ -1,4 +1,4 @@\n-loop_wait: 10\n+loop_wait: 15\n maximum_lag_on_failover: 1048576\n postgresql:\n   pg_hba:\n\
             @@ -6,4 +6,4 @@\n   - host all all 0.0.0.0/0 md5\n   use_pg_rewind: true\n retry_timeout: 10\n-ttl: 30\n+ttl: 45"
        );
    }

    #[test]
    fn null_removes_and_dots_stay_in_parameter_names() {
        let (_, a) = edit(&["maximum_lag_on_failover=null", "postgresql.parameters.pg_stat_statements.max=1000"]);
        assert!(!a.contains("maximum_lag_on_failover"));
        assert!(a.contains("    pg_stat_statements.max: 1000\n"));
        let mut m = Map::new();
        assert!(apply_kvpairs(&mut m, &["novalue".to_string()])
            .unwrap_err()
            .0
            .contains("Invalid parameter setting novalue"));
    }
}
