//! The `patroni` command line: validation, sample generation, version, and the runtime placeholder.

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

const VALID: &str = r"
scope: batman
name: node1
restapi:
  listen: 0.0.0.0:8008
  connect_address: 10.0.0.1:8008
etcd3:
  hosts: 10.0.0.5:2379
postgresql:
  listen: 0.0.0.0:5432
  connect_address: 10.0.0.1:5432
  data_dir: /var/lib/postgresql/data
  authentication:
    superuser: {username: postgres, password: secret}
    replication: {username: replicator, password: rep-pass}
";

/// The binary with an empty environment, so the developer's PATRONI_* variables cannot leak in.
fn patroni() -> Command {
    let mut c = Command::cargo_bin("patroni").unwrap();
    c.env_clear();
    c
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn version_prints_name_and_version() {
    patroni().arg("--version").assert().success().stdout(format!("patroni {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn help_lists_the_modes() {
    patroni().arg("--help").assert().success().stdout(
        contains("--validate-config")
            .and(contains("--generate-sample-config"))
            .and(contains("--generate-config"))
            .and(contains("--dsn")),
    );
}

#[test]
fn validate_config_accepts_a_valid_file() {
    let d = tempfile::tempdir().unwrap();
    let f = write(&d, "patroni.yml", VALID);
    patroni().arg("--validate-config").arg(&f).assert().success().stdout("").stderr("");
}

#[test]
fn validate_config_reports_every_error_and_fails() {
    let d = tempfile::tempdir().unwrap();
    let f = write(
        &d,
        "patroni.yml",
        &format!("{VALID}\nbogus: 1\nrestapi: {{listen: nope, connect_address: '10.0.0.1:8008'}}\nwatchdog: {{mode: sometimes}}\n"),
    );
    patroni().arg("--validate-config").arg(&f).assert().code(1).stderr(format!(
        "WARNING: bogus: unknown key (kept, not used) ({f}:17:8)\n\
         watchdog.mode: expected one of: off, automatic, required ({f}:19:18)\n\
         restapi.listen: expected host:port, got \"nope\" ({f}:18:19)\n",
        f = f.display()
    ));
}

#[test]
fn validate_config_reports_yaml_position() {
    let d = tempfile::tempdir().unwrap();
    let f = write(&d, "bad.yml", "scope: x\nname: [unclosed\n");
    patroni()
        .arg("--validate-config")
        .arg(&f)
        .assert()
        .code(1)
        .stderr(format!("{}:2:7: unclosed bracket '['\n", f.display()));
}

#[test]
fn validate_config_print_shows_the_merged_configuration() {
    let d = tempfile::tempdir().unwrap();
    let f = write(&d, "patroni.yml", VALID);
    patroni()
        .args(["--validate-config", "--print"])
        .arg(&f)
        .env("PATRONI_NAME", "from-env")
        .assert()
        .success()
        .stdout(contains("name: from-env\n").and(contains("scope: batman\n")));
}

#[test]
fn validate_config_reads_the_environment_without_a_file() {
    patroni().arg("--validate-config").env("PATRONI_CONFIGURATION", VALID).assert().success();
    patroni()
        .arg("--validate-config")
        .envs([
            ("PATRONI_SCOPE", "batman"),
            ("PATRONI_NAME", "node1"),
            ("PATRONI_RESTAPI_LISTEN", "0.0.0.0:8008"),
            ("PATRONI_RESTAPI_CONNECT_ADDRESS", "10.0.0.1:8008"),
            ("PATRONI_ETCD3_HOSTS", "'10.0.0.5:2379'"),
            ("PATRONI_POSTGRESQL_LISTEN", "0.0.0.0:5432"),
            ("PATRONI_POSTGRESQL_CONNECT_ADDRESS", "10.0.0.1:5432"),
            ("PATRONI_POSTGRESQL_DATA_DIR", "/data"),
            ("PATRONI_SUPERUSER_USERNAME", "postgres"),
            ("PATRONI_REPLICATION_USERNAME", "replicator"),
        ])
        .assert()
        .success()
        .stderr("");
    patroni().arg("--validate-config").assert().code(1).stderr(contains("name: is required\nscope: is required\n"));
}

#[test]
fn missing_file_falls_back_to_the_environment_and_says_so() {
    patroni()
        .args(["--validate-config", "/nonexistent/patroni.yml"])
        .env("PATRONI_CONFIGURATION", VALID)
        .assert()
        .success()
        .stderr(
            "WARNING: configuration file /nonexistent/patroni.yml does not exist, reading the configuration \
             from the environment\n",
        );
}

#[test]
fn sample_config_validates_and_round_trips() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("sample.yml");
    patroni().arg("--generate-sample-config").arg(&f).env("PATRONI_SCOPE", "batman").assert().success().stdout("");
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(text.starts_with("scope: batman\nname: "), "{text}");
    assert!(text.contains("data_dir: '#FIXME'"));
    let printed = patroni().args(["--validate-config", "--print"]).arg(&f).output().unwrap();
    assert!(printed.status.success());
    let parse = |t: &str| patroni_config::parse_yaml(t, "t").unwrap();
    assert_eq!(parse(&String::from_utf8(printed.stdout).unwrap()), parse(&text));

    // Without a file the sample goes to stdout, identical.
    let out = patroni().arg("--generate-sample-config").env("PATRONI_SCOPE", "batman").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), text);
}

#[test]
fn generate_config_is_not_supported_yet() {
    patroni().arg("--generate-config").assert().code(2).stderr(contains("--generate-config is not yet supported"));
    patroni().args(["--generate-config", "--dsn", "host=/tmp"]).assert().code(2);
}

#[test]
fn modes_are_mutually_exclusive_and_options_need_their_mode() {
    patroni()
        .args(["--validate-config", "--generate-sample-config"])
        .assert()
        .code(2)
        .stderr(contains("cannot be used with"));
    patroni().args(["--dsn", "x"]).assert().code(2);
    patroni().args(["--print"]).assert().code(2);
}

#[test]
fn running_with_an_invalid_configuration_reports_and_exits() {
    // Only invalid configurations here: a valid one would start the agent and reach for its DCS.
    let d = tempfile::tempdir().unwrap();
    let bad = write(&d, "bad.yml", "scope: 5\n");
    patroni()
        .arg(&bad)
        .assert()
        .code(1)
        .stderr(contains(format!("scope: expected a string ({}:1:8)\n", bad.display())));
    patroni().assert().code(1).stderr(contains("name: is required\nscope: is required\n"));
}
