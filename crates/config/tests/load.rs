//! Where configuration comes from: files, directories, PATRONI_CONFIGURATION, PATRONI_* variables.

use patroni_config::{load, ConfigSource, EnvMap, LogLevel};

const MEMBER: &str = r"
scope: batman
name: node1
restapi: {listen: '0.0.0.0:8008', connect_address: '10.0.0.1:8008'}
etcd3: {hosts: '10.0.0.5:2379'}
postgresql:
  listen: 0.0.0.0:5432
  connect_address: 10.0.0.1:5432
  data_dir: /data
  parameters: {work_mem: 4MB, shared_buffers: 1GB}
  authentication:
    superuser: {username: postgres, password: secret}
    replication: {username: replicator, password: rep-pass}
";

fn env(pairs: &[(&str, &str)]) -> EnvMap {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn directory_files_merge_deeply_in_sorted_order() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("10-base.yml"), MEMBER).unwrap();
    std::fs::write(
        d.path().join("20-override.yaml"),
        "name: node2\npostgresql: {parameters: {work_mem: 8MB, shared_buffers: null}}\n",
    )
    .unwrap();
    std::fs::write(d.path().join("05-first.yml"), "name: node0\nlog: {level: DEBUG}\n").unwrap();
    std::fs::write(d.path().join("notes.txt"), "not: yaml: at: all").unwrap();
    let l = load(Some(d.path()), &EnvMap::new()).unwrap();
    assert_eq!(l.config.name.as_deref(), Some("node2"));
    let params = l.config.postgresql.parameters.as_ref().unwrap();
    assert_eq!(params["work_mem"], "8MB");
    // As in Patroni, a null in a later file removes the key.
    assert!(params.get("shared_buffers").is_none());
    assert_eq!(l.config.log.as_ref().unwrap().level, Some(LogLevel::Debug));
    match l.source {
        ConfigSource::Directory(_, files) => assert_eq!(files.len(), 3),
        other => panic!("{other:?}"),
    }
}

#[test]
fn environment_overrides_the_file() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("patroni.yml");
    std::fs::write(&f, MEMBER).unwrap();
    let l = load(
        Some(&f),
        &env(&[
            ("PATRONI_NAME", "from-env"),
            ("PATRONI_POSTGRESQL_DATA_DIR", "/env/data"),
            ("PATRONI_REPLICATION_PASSWORD", "env-pass"),
            ("PATRONI_ETCD3_HOSTS", "'10.0.0.6:2379','10.0.0.7:2379'"),
        ]),
    )
    .unwrap();
    assert_eq!(l.config.name.as_deref(), Some("from-env"));
    assert_eq!(l.config.postgresql.data_dir.as_deref(), Some("/env/data"));
    let rep = l.config.postgresql.authentication.as_ref().unwrap().replication.as_ref().unwrap();
    assert_eq!(rep.username.as_deref(), Some("replicator"));
    assert_eq!(rep.password.as_deref(), Some("env-pass"));
    assert_eq!(l.config.etcd3.as_ref().unwrap().hosts.as_ref().unwrap().len(), 2);
    assert_eq!(l.source, ConfigSource::File(f));
}

#[test]
fn patroni_configuration_variable_alone() {
    let l = load(
        None,
        &env(&[
            ("PATRONI_CONFIGURATION", MEMBER),
            // Patroni ignores every other variable when PATRONI_CONFIGURATION is set.
            ("PATRONI_NAME", "ignored"),
        ]),
    )
    .unwrap();
    assert_eq!(l.config.name.as_deref(), Some("node1"));
    assert_eq!(l.source, ConfigSource::ConfigurationVariable);
}

#[test]
fn environment_alone_is_a_configuration() {
    let l = load(
        None,
        &env(&[
            ("PATRONI_SCOPE", "batman"),
            ("PATRONI_NAME", "node1"),
            ("PATRONI_RESTAPI_LISTEN", "0.0.0.0:8008"),
            ("PATRONI_RESTAPI_CONNECT_ADDRESS", "10.0.0.1:8008"),
            ("PATRONI_ETCD3_HOST", "10.0.0.5:2379"),
            ("PATRONI_POSTGRESQL_LISTEN", "0.0.0.0:5432"),
            ("PATRONI_POSTGRESQL_CONNECT_ADDRESS", "10.0.0.1:5432"),
            ("PATRONI_POSTGRESQL_DATA_DIR", "/data"),
            ("PATRONI_SUPERUSER_USERNAME", "postgres"),
            ("PATRONI_SUPERUSER_PASSWORD", "secret"),
            ("PATRONI_REPLICATION_USERNAME", "replicator"),
            ("PATRONI_REPLICATION_PASSWORD", "rep"),
            ("PATRONI_LOG_LEVEL", "WARNING"),
            ("PATRONI_KUBERNETES_LABELS", "{a: b}"),
        ]),
    )
    .unwrap();
    assert_eq!(l.source, ConfigSource::Environment);
    assert_eq!(l.config.scope.as_deref(), Some("batman"));
    assert_eq!(l.config.namespace, "/service/");
    assert_eq!(l.config.cluster_prefix(), "/service/batman/");
    assert_eq!(l.config.log.as_ref().unwrap().level, Some(LogLevel::Warning));
    assert_eq!(l.config.dcs_kinds().len(), 2);
}

#[test]
fn effective_config_serializes_for_display() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("patroni.yml");
    std::fs::write(&f, MEMBER).unwrap();
    let l = load(Some(&f), &EnvMap::new()).unwrap();
    let v = l.config.to_value();
    assert_eq!(v["namespace"], "/service/");
    assert_eq!(v["postgresql"]["authentication"]["superuser"]["username"], "postgres");
    assert!(v["postgresql"].get("bin_dir").is_none());
}
