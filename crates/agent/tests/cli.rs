//! The `patroni` command line: validation, sample generation, version, and the runtime placeholder.

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

/// A directory with stand-ins for the PostgreSQL programs `--validate-config` looks for; `postgres
/// --version` answers 15.4. Real servers are not needed to check that the programs exist.
fn stub_bin_dir() -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| stub_bin_dir_answering("patroni-cli-stub-bin", "15.4")).clone()
}

/// Stand-ins for every PostgreSQL program in `name` under the test target dir, `postgres --version` answering
/// `version`.
fn stub_bin_dir_answering(name: &str, version: &str) -> std::path::PathBuf {
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for prog in ["pg_ctl", "initdb", "pg_controldata", "pg_basebackup", "postgres", "pg_isready", "pg_rewind"] {
            let script = if prog == "postgres" {
                format!("#!/bin/sh\necho 'postgres (PostgreSQL) {version}'\n")
            } else {
                "#!/bin/sh\nexit 0\n".to_owned()
            };
            // Written aside and renamed, so a test binary running at the same time never sees half a file.
            let tmp = dir.join(format!(".{prog}.{}", std::process::id()));
            std::fs::write(&tmp, script).unwrap();
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::rename(&tmp, dir.join(prog)).unwrap();
        }
        dir
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A valid configuration (18 lines) whose binaries exist, whose data directory does not yet, and whose
/// listen ports are free.
fn valid() -> String {
    format!(
        r"
scope: batman
name: node1
restapi:
  listen: 127.0.0.1:{api}
  connect_address: 10.0.0.1:8008
etcd3:
  hosts: 10.0.0.5:2379
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 10.0.0.1:5432
  data_dir: {bin}/../no-such-data-dir
  bin_dir: {bin}
  authentication:
    superuser: {{username: postgres, password: secret}}
    replication: {{username: replicator, password: rep-pass}}
",
        api = free_port(),
        pg = free_port(),
        bin = stub_bin_dir().display()
    )
}

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
    let f = write(&d, "patroni.yml", &valid());
    patroni().arg("--validate-config").arg(&f).assert().success().stdout("").stderr("");
}

#[test]
fn validate_config_reports_every_error_and_fails() {
    let d = tempfile::tempdir().unwrap();
    let f = write(
        &d,
        "patroni.yml",
        &format!("{}\nbogus: 1\nrestapi: {{listen: nope, connect_address: '10.0.0.1:8008'}}\nwatchdog: {{mode: sometimes}}\n", valid()),
    );
    patroni().arg("--validate-config").arg(&f).assert().code(1).stderr(format!(
        "WARNING: bogus: unknown key (kept, not used) ({f}:18:8)\n\
         watchdog.mode: expected one of: off, automatic, required ({f}:20:18)\n\
         restapi.listen: expected host:port, got \"nope\" ({f}:19:19)\n",
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
    let f = write(&d, "patroni.yml", &valid());
    patroni()
        .args(["--validate-config", "-i", "--print"])
        .arg(&f)
        .env("PATRONI_NAME", "from-env")
        .assert()
        .success()
        .stdout(contains("name: from-env\n").and(contains("scope: batman\n")));
}

#[test]
fn validate_config_reads_the_environment_without_a_file() {
    patroni().args(["--validate-config", "-i"]).env("PATRONI_CONFIGURATION", valid()).assert().success();
    patroni()
        .args(["--validate-config", "-i"])
        .envs([
            ("PATRONI_SCOPE", "batman"),
            ("PATRONI_NAME", "node1"),
            ("PATRONI_RESTAPI_LISTEN", &format!("127.0.0.1:{}", free_port())),
            ("PATRONI_RESTAPI_CONNECT_ADDRESS", "10.0.0.1:8008"),
            ("PATRONI_ETCD3_HOSTS", "'10.0.0.5:2379'"),
            ("PATRONI_POSTGRESQL_LISTEN", &format!("127.0.0.1:{}", free_port())),
            ("PATRONI_POSTGRESQL_CONNECT_ADDRESS", "10.0.0.1:5432"),
            ("PATRONI_POSTGRESQL_DATA_DIR", "/nonexistent/patroni-cli-test-data"),
            ("PATRONI_POSTGRESQL_BIN_DIR", &stub_bin_dir().display().to_string()),
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
        .args(["--validate-config", "-i", "/nonexistent/patroni.yml"])
        .env("PATRONI_CONFIGURATION", valid())
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
    let printed = patroni()
        .args(["--validate-config", "--print", "--ignore-listen-port"])
        .arg(&f)
        .env("PATH", stub_bin_dir())
        .output()
        .unwrap();
    assert!(printed.status.success());
    let parse = |t: &str| patroni_config::parse_yaml(t, "t").unwrap();
    assert_eq!(parse(&String::from_utf8(printed.stdout).unwrap()), parse(&text));

    // Without a file the sample goes to stdout, identical.
    let out = patroni().arg("--generate-sample-config").env("PATRONI_SCOPE", "batman").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), text);
}

#[test]
fn validate_config_checks_binaries_data_directory_and_ports() {
    let d = tempfile::tempdir().unwrap();
    let bin = stub_bin_dir();
    let text = valid();

    // Binaries missing from bin_dir.
    let empty_bin = d.path().join("bin");
    std::fs::create_dir(&empty_bin).unwrap();
    let f = write(
        &d,
        "nobin.yml",
        &text.replace(&format!("bin_dir: {}", bin.display()), &format!("bin_dir: {}", empty_bin.display())),
    );
    patroni().args(["--validate-config", "-i"]).arg(&f).assert().code(1).stderr(
        contains(format!(
            "postgresql.bin_dir: does not contain 'pg_ctl' in '{}' ({}:13:",
            empty_bin.display(),
            f.display()
        ))
        .and(contains("does not contain 'pg_isready'")),
    );

    // A non-empty directory that is not a data directory, then one of another major version.
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("junk"), "x").unwrap();
    let with_data = text.replace(&format!("{}/../no-such-data-dir", bin.display()), &data.display().to_string());
    let f = write(&d, "data.yml", &with_data);
    patroni()
        .args(["--validate-config", "-i"])
        .arg(&f)
        .assert()
        .code(1)
        .stderr(format!("postgresql.data_dir: doesn't look like a valid data directory ({}:12:13)\n", f.display()));
    std::fs::write(data.join("PG_VERSION"), "14\n").unwrap();
    std::fs::create_dir(data.join("pg_wal")).unwrap();
    patroni().args(["--validate-config", "-i"]).arg(&f).assert().code(1).stderr(contains(
        "postgresql.data_dir: data_dir directory postgresql version (14) doesn't match with 'postgres --version' output (15)",
    ));
    std::fs::write(data.join("PG_VERSION"), "15\n").unwrap();
    patroni().args(["--validate-config", "-i"]).arg(&f).assert().success();

    // A listen port already taken, unless told to ignore it.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let taken = text.replacen("listen: 127.0.0.1:", &format!("listen: 127.0.0.1:{port}\n  x_old_listen: "), 1);
    let f = write(&d, "port.yml", &taken);
    patroni()
        .arg("--validate-config")
        .arg(&f)
        .assert()
        .code(1)
        .stderr(contains(format!("restapi.listen: Port {port} is already in use.")));
    patroni().args(["--validate-config", "-i"]).arg(&f).assert().success();
}

#[test]
fn validate_config_is_as_strict_as_patronis_validator() {
    // Patroni runs with ttl 10 (raising it to 20) but its validator rejects it; so does ours.
    let d = tempfile::tempdir().unwrap();
    let f = write(&d, "patroni.yml", &format!("{}bootstrap:\n  dcs:\n    ttl: 10\n", valid()));
    patroni()
        .arg("--validate-config")
        .arg(&f)
        .assert()
        .code(1)
        .stderr(format!("bootstrap.dcs.ttl: 10 is smaller than the minimum 20 ({}:19:10)\n", f.display()));
}

#[test]
fn generate_config_fails_clearly_without_a_server() {
    let d = tempfile::tempdir().unwrap();
    let dsn = format!("host={} port=1 user=postgres connect_timeout=2", d.path().display());
    patroni().args(["--generate-config", "--dsn", &dsn]).assert().code(1).stderr(contains("patroni: "));
}

#[tokio::test(flavor = "multi_thread")]
async fn generate_config_describes_a_running_server() {
    let pg = patroni_testkit::PgServer::start().await.unwrap();
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("generated.yml");
    let dsn = pg.connstr();
    let result = tokio::task::spawn_blocking(move || {
        patroni().args(["--generate-config", "--dsn", &dsn]).arg(&out).assert().success();
        std::fs::read_to_string(&out).unwrap()
    })
    .await
    .unwrap();
    let data_dir = pg.data_dir().display().to_string();
    assert!(result.contains(&format!("data_dir: {data_dir}")), "{result}");
    // The wal_keep parameter of the server's major, with the server's value.
    let (has, lacks) = match pg.query_value("SHOW server_version_num").await.unwrap().unwrap().parse::<u32>() {
        Ok(v) if v < 130000 => ("wal_keep_segments", "wal_keep_size"),
        _ => ("wal_keep_size", "wal_keep_segments"),
    };
    assert!(result.contains(&format!(" {has}: ")) && !result.contains(lacks), "{result}");
    let loaded = patroni_config::load_str(&result, &Default::default()).unwrap();
    assert_eq!(loaded.config.postgresql.data_dir.as_deref(), Some(data_dir.as_str()));
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

#[test]
fn postgres_older_than_12_is_refused_by_validate_config_and_at_start() {
    let old = stub_bin_dir_answering("patroni-cli-stub-bin-11", "11.22");
    let d = tempfile::tempdir().unwrap();
    let text =
        valid().replace(&format!("bin_dir: {}", stub_bin_dir().display()), &format!("bin_dir: {}", old.display()));
    let f = write(&d, "pg11.yml", &text);
    let message = "PostgreSQL 11.22 is not supported: patroni-rs runs PostgreSQL 12 and newer";
    patroni()
        .args(["--validate-config", "-i"])
        .arg(&f)
        .assert()
        .code(1)
        .stderr(contains(format!("postgresql.bin_dir: {message} ({}:", f.display())));
    // Refused before anything else (the DCS in this configuration does not exist), with the reason logged.
    patroni().arg(&f).timeout(std::time::Duration::from_secs(60)).assert().code(1).stderr(contains(message));
    // The sample still comes out, with a warning, for the version the server will be upgraded to.
    patroni()
        .arg("--generate-sample-config")
        .env("PATRONI_POSTGRESQL_BIN_DIR", &old)
        .assert()
        .success()
        .stderr(contains(format!("patroni: warning: {message}")));
}

/// `patroni --validate-config` and `--generate-sample-config` on the PostgreSQL binaries under test
/// (`PG_BIN_DIR`: CI runs this on every supported major). Server-only builds lack pg_basebackup and friends,
/// which the validator names; nothing else may be reported.
#[test]
fn validate_and_sample_config_on_the_binaries_under_test() {
    let bin = patroni_testkit::pg_bin_dir().unwrap();
    let out = std::process::Command::new(bin.join("postgres")).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout).split_whitespace().nth(2).unwrap().to_owned();
    let major: u32 = version.split('.').next().unwrap().parse().unwrap();
    let d = tempfile::tempdir().unwrap();
    let text =
        valid().replace(&format!("bin_dir: {}", stub_bin_dir().display()), &format!("bin_dir: {}", bin.display()));
    let f = write(&d, "real.yml", &text);
    let missing: Vec<&str> = ["pg_ctl", "initdb", "pg_controldata", "pg_basebackup", "postgres", "pg_isready"]
        .into_iter()
        .filter(|p| !bin.join(p).exists())
        .collect();
    let run = patroni().args(["--validate-config", "-i"]).arg(&f).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.success(), missing.is_empty(), "{stderr}");
    let reported: Vec<&str> = stderr.lines().collect();
    assert_eq!(reported.len(), missing.len(), "{stderr}");
    for (line, prog) in reported.iter().zip(&missing) {
        assert!(line.starts_with(&format!("postgresql.bin_dir: does not contain '{prog}'")), "{stderr}");
    }

    let run = patroni().arg("--generate-sample-config").env("PATRONI_POSTGRESQL_BIN_DIR", &bin).output().unwrap();
    let sample = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success() && run.stderr.is_empty(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(sample.contains("wal_keep_segments: 8"), major < 13, "{version}: {sample}");
    assert_eq!(sample.contains("wal_keep_size: 128MB"), major >= 13, "{version}: {sample}");
}
