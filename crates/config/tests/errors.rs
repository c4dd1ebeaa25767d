// Bad inputs: each error names the key path (or file position) and what was expected, all at once.

use patroni_config::{load, load_str, load_str_in_mode, ConfigError, EnvMap, Mode};

const GOOD: &str = r"
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
    superuser:
      username: postgres
      password: secret
    replication:
      username: replicator
      password: rep-pass
";

fn env(pairs: &[(&str, &str)]) -> EnvMap {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// GOOD with `patch` deep-merged on top.
fn with(patch: &str) -> String {
    let mut base = patroni_config::parse_yaml(GOOD, "good").unwrap();
    let p = patroni_config::parse_yaml(patch, "patch").unwrap();
    patroni_config::deep_merge(&mut base, p);
    serde_json::to_string(&base).unwrap()
}

fn errors_of(yaml: &str, env: &EnvMap) -> String {
    match load_str(yaml, env) {
        Ok(l) => panic!("expected errors, got a valid config with warnings {:?}", l.warnings),
        Err(e) => e.to_string(),
    }
}

fn err(patch: &str) -> String {
    errors_of(&with(patch), &EnvMap::new())
}

/// Errors as `--validate-config` reports them (what Patroni's validator rejects but Patroni runs with).
fn err_strict(patch: &str) -> String {
    match load_str_in_mode(&with(patch), &EnvMap::new(), Mode::Validate) {
        Ok(l) => panic!("expected errors, got a valid config with warnings {:?}", l.warnings),
        Err(e) => e.to_string(),
    }
}

/// Warnings when loading GOOD + `patch` to run, without the ones GOOD itself has.
fn warns(patch: &str) -> Vec<String> {
    warnings(&with(patch))
}

fn warnings(yaml: &str) -> Vec<String> {
    load_str(yaml, &EnvMap::new()).unwrap().warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn good_config_is_valid_without_warnings() {
    assert_eq!(warnings(GOOD), Vec::<String>::new());
}

#[test]
fn wrong_type_names_the_key_path() {
    assert_eq!(
        err("postgresql: {authentication: {replication: {username: 5}}}"),
        "postgresql.authentication.replication.username: expected a string"
    );
}

#[test]
fn several_errors_are_reported_at_once() {
    assert_eq!(
        err("scope: [a]\nname: {x: 1}\nlog: {level: LOUD, type: xml, mode: 1000}"),
        "scope: expected a string\nname: expected a string\n\
         log.level: expected a log level, one of: DEBUG, INFO, WARNING, ERROR, CRITICAL\n\
         log.type: expected one of: plain, json\n\
         log.mode: 1000 is not a file mode (0..0777)"
    );
}

#[test]
fn listen_needs_host_and_port() {
    assert_eq!(err("restapi: {listen: nope}"), "restapi.listen: expected host:port, got \"nope\"");
    assert_eq!(
        err("restapi: {connect_address: 'host:99999'}"),
        "restapi.connect_address: expected host:port, got \"host:99999\""
    );
    assert_eq!(err("postgresql: {listen: ''}"), "postgresql.listen: expected host[,host...]:port, got \"\"");
}

#[test]
fn host_list_of_wrong_type() {
    assert_eq!(err("etcd3: {hosts: 5}"), "etcd3.hosts: expected a list of strings or a comma-separated string");
}

#[test]
fn dynamic_minimums() {
    assert_eq!(
        err_strict("bootstrap: {dcs: {ttl: 10, loop_wait: 0}}"),
        "bootstrap.dcs.ttl: 10 is smaller than the minimum 20\nbootstrap.dcs.loop_wait: 0 is smaller than the minimum 1"
    );
    // Patroni runs with such values, raising them to the minimum: so do we, with a warning.
    assert_eq!(
        warns("bootstrap: {dcs: {ttl: 10, loop_wait: 0}}"),
        vec![
            "bootstrap.dcs.ttl: 10 is smaller than the minimum 20",
            "bootstrap.dcs.loop_wait: 0 is smaller than the minimum 1"
        ]
    );
}

#[test]
fn synchronous_mode_values() {
    assert_eq!(
        err("bootstrap: {dcs: {synchronous_mode: maybe}}"),
        "bootstrap.dcs.synchronous_mode: expected a boolean or \"quorum\""
    );
}

#[test]
fn controlled_parameters_in_dynamic_config() {
    // Patroni ignores such values at run time (its default is used): warnings, even when validating.
    assert_eq!(
        warns("bootstrap: {dcs: {postgresql: {parameters: {max_connections: 10, port: 5433}}}}"),
        vec![
            "bootstrap.dcs.postgresql.parameters.max_connections: invalid value 10: Patroni's default 100 is used instead",
            "bootstrap.dcs.postgresql.parameters.port: is set by Patroni from postgresql.listen or scope and cannot be configured",
        ]
    );
}

#[test]
fn contradictory_tags() {
    assert_eq!(
        err_strict("tags: {nofailover: true, failover_priority: 2}"),
        "tags: nofailover and failover_priority are mutually exclusive: set only one"
    );
    assert_eq!(
        warns("tags: {nosync: true, sync_priority: 2}"),
        vec!["tags: nosync and sync_priority are mutually exclusive: set only one"]
    );
}

#[test]
fn watchdog_mode() {
    assert_eq!(err("watchdog: {mode: sometimes}"), "watchdog.mode: expected one of: off, automatic, required");
}

#[test]
fn bad_duration_unit() {
    assert_eq!(
        err("postgresql: {pg_ctl_timeout: 10parsecs}"),
        "postgresql.pg_ctl_timeout: expected a duration such as 10, \"10s\", \"5min\" or \"1h\" \
         (unknown unit \"parsecs\" (expected one of us, ms, s, min, h, d))"
    );
}

#[test]
fn restapi_enums_and_ranges() {
    assert_eq!(
        err("restapi: {verify_client: maybe, request_queue_size: -1}"),
        "restapi.verify_client: expected one of: none, optional, required\n\
         restapi.request_queue_size: -1 is out of range (0..=4294967295)"
    );
}

#[test]
fn replica_and_bootstrap_methods_need_sections() {
    // Patroni skips such a replica method and falls back to initdb for such a bootstrap method.
    assert_eq!(
        warns("postgresql: {create_replica_methods: [wal_g]}"),
        vec!["postgresql.wal_g: replica method listed in create_replica_methods has no section: it will be skipped"]
    );
    assert_eq!(
        warns("bootstrap: {method: custom}"),
        vec!["bootstrap.custom: bootstrap method has no section: initdb will be used"]
    );
    assert_eq!(
        warns("bootstrap: {method: custom, custom: {keep_existing_recovery_conf: true}}"),
        vec!["bootstrap.custom.command: is missing: initdb will be used"]
    );
}

#[test]
fn citus_section() {
    assert_eq!(err("citus: {group: -1}"), "citus.database: is required\ncitus.group: -1 is smaller than the minimum 0");
}

#[test]
fn lists_must_be_lists() {
    assert_eq!(err("postgresql: {pg_hba: 'host all all all md5'}"), "postgresql.pg_hba: expected a list");
    assert_eq!(
        err("bootstrap: {initdb: [{a: 1, b: 2}, 5]}"),
        "bootstrap.initdb[0]: expected a string or a mapping with exactly one key\n\
         bootstrap.initdb[1]: expected a string or a mapping with exactly one key"
    );
}

#[test]
fn slots_and_standby_cluster() {
    assert_eq!(
        err("bootstrap: {dcs: {slots: {s1: {type: logical}}, standby_cluster: {primary_slot_name: x}}}"),
        "bootstrap.dcs.standby_cluster: one of host, port or restore_command is required"
    );
    assert_eq!(
        warns("bootstrap: {dcs: {slots: {s1: {type: logical}, s2: {type: other}}}}"),
        vec![
            "bootstrap.dcs.slots.s1: a logical slot needs database and plugin: it is ignored",
            "bootstrap.dcs.slots.s2.type: expected physical or logical, got \"other\": the slot is ignored",
        ]
    );
}

#[test]
fn dcs_specific_checks() {
    assert_eq!(
        err("kubernetes: {pod_ip: not-an-ip, labels: {a: b}}"),
        "kubernetes.pod_ip: \"not-an-ip\" is not an IP address"
    );
    assert_eq!(err("consul: {port: 8500}"), "consul: one of host or url is required");
}

#[test]
fn empty_configuration_lists_everything_missing() {
    let strict = match load_str_in_mode("", &EnvMap::new(), Mode::Validate) {
        Ok(_) => panic!("an empty configuration validated"),
        Err(e) => e.to_string(),
    };
    assert_eq!(
        strict,
        "name: is required\nscope: is required\nrestapi.listen: is required\n\
         restapi.connect_address: is required\n\
         no DCS configured: one of consul, etcd, etcd3, exhibitor, kubernetes, raft, zookeeper is required\n\
         postgresql.listen: is required\npostgresql.connect_address: is required\n\
         postgresql.data_dir: is required\npostgresql.authentication: is required"
    );
    // To run, Patroni does without the connect addresses (it publishes the listen addresses).
    assert_eq!(
        errors_of("", &EnvMap::new()),
        "name: is required\nscope: is required\nrestapi.listen: is required\n\
         no DCS configured: one of consul, etcd, etcd3, exhibitor, kubernetes, raft, zookeeper is required\n\
         postgresql.listen: is required\npostgresql.data_dir: is required\npostgresql.authentication: is required"
    );
}

#[test]
fn environment_values_are_validated_too() {
    assert_eq!(
        errors_of(GOOD, &env(&[("PATRONI_RESTAPI_REQUEST_QUEUE_SIZE", "lots")])),
        "restapi.request_queue_size: expected an integer"
    );
}

#[test]
fn malformed_yaml_reports_file_line_and_column() {
    assert_eq!(
        errors_of("scope: x\n  name: y\n", &EnvMap::new()),
        "<string>:2:7: mapping values are not allowed in this context"
    );
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("p.yml");
    std::fs::write(&p, "a: 1\nb: [1,\n").unwrap();
    let e = load(Some(&p), &EnvMap::new()).unwrap_err();
    assert!(matches!(e, ConfigError::Yaml(ref y) if y.line == 2 && y.column == 4));
    assert_eq!(e.to_string(), format!("{}:2:4: unclosed bracket '['", p.display()));
}

#[test]
fn file_problems() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("missing.yml");
    assert_eq!(
        load(Some(&missing), &EnvMap::new()).unwrap_err().to_string(),
        format!("{}: No such file or directory (os error 2)", missing.display())
    );
    let list = d.path().join("q.yml");
    std::fs::write(&list, "- 1\n").unwrap();
    assert_eq!(
        load(Some(&list), &EnvMap::new()).unwrap_err().to_string(),
        format!("{}: the configuration must be a YAML mapping", list.display())
    );
}

#[test]
fn unknown_keys_and_adjustments_are_warnings() {
    assert_eq!(
        warnings(&with(
            "foo: 1\npostgresql: {bar: 2, parameters: {max_connections: 5}}\n\
             restapi: {connect_address: '127.0.0.1:8008'}\nbootstrap: {dcs: {ttl: 30, loop_wait: 15}}\ntags: {mytag: 1}"
        )),
        vec![
            "postgresql.bar: unknown key (kept, not used)",
            "foo: unknown key (kept, not used)",
            "restapi.connect_address: should not be \"127.0.0.1\", \"0.0.0.0\", \"*\", \"::1\" or \"localhost\": \
             other members must be able to reach it",
            "postgresql.parameters.max_connections: is controlled by Patroni: set it in the dynamic configuration \
             (bootstrap.dcs or edit-config); this value is ignored",
            "bootstrap.dcs: Violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl=30 and \
             retry_timeout=10. Adjusting loop_wait from 15 to 10",
        ]
    );
}

#[test]
fn diagnostics_say_where_the_value_was_written() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("10-base.yml"), GOOD).unwrap();
    std::fs::write(
        d.path().join("20-extra.yml"),
        "postgresql:\n  authentication:\n    replication:\n      username: 5\n",
    )
    .unwrap();
    let e = load(Some(d.path()), &env(&[("PATRONI_RESTAPI_REQUEST_QUEUE_SIZE", "lots")])).unwrap_err();
    let ConfigError::Invalid { errors, .. } = e else { panic!("{e}") };
    let located: Vec<String> = errors.iter().map(|e| e.located()).collect();
    assert_eq!(
        located,
        vec![
            "restapi.request_queue_size: expected an integer \
             (environment variable PATRONI_RESTAPI_REQUEST_QUEUE_SIZE)"
                .to_owned(),
            format!(
                "postgresql.authentication.replication.username: expected a string ({}:4:17)",
                d.path().join("20-extra.yml").display()
            ),
        ]
    );
    // A missing key points at the section it belongs in.
    let e = load_str("scope: s\nname: n\npostgresql:\n  listen: ':5432'\n", &EnvMap::new()).unwrap_err();
    let ConfigError::Invalid { errors, .. } = e else { panic!("{e}") };
    let data_dir = errors.iter().find(|e| e.path == "postgresql.data_dir").unwrap();
    assert_eq!(data_dir.located(), "postgresql.data_dir: is required (<string>:4:3)");
}
