//! Every YAML example of the reference documentation (fixtures/) loads and validates.

use patroni_config::{load, DynamicConfig, EnvMap, Loaded};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

/// Loads the given files as one configuration directory (merged in order).
fn load_layers(layers: &[&Path]) -> Loaded {
    let dir = tempfile::tempdir().unwrap();
    for (i, l) in layers.iter().enumerate() {
        std::fs::copy(l, dir.path().join(format!("{i:02}.yml"))).unwrap();
    }
    match load(Some(dir.path()), &EnvMap::new()) {
        Ok(l) => l,
        Err(e) => panic!("{layers:?} did not validate:\n{e}"),
    }
}

fn no_unknown_keys(l: &Loaded, what: &Path) {
    let unknown: Vec<String> =
        l.warnings.iter().filter(|w| w.message.starts_with("unknown key")).map(|w| w.to_string()).collect();
    assert!(unknown.is_empty(), "{what:?}: {unknown:?}");
}

#[test]
fn base_with_every_dcs_validates() {
    let base = fixtures().join("base.yml");
    for dcs in yaml_files("dcs") {
        let l = load_layers(&[&base, &dcs]);
        no_unknown_keys(&l, &dcs);
        assert_eq!(l.config.dcs_kinds().len(), 1, "{dcs:?}");
    }
}

#[test]
fn every_documentation_snippet_validates() {
    let base = fixtures().join("base.yml");
    let etcd3 = fixtures().join("dcs/etcd3.yml");
    for snippet in yaml_files("snippets") {
        let l = load_layers(&[&base, &etcd3, &snippet]);
        no_unknown_keys(&l, &snippet);
    }
}

#[test]
fn snippet_contents_are_typed() {
    let base = fixtures().join("base.yml");
    let etcd3 = fixtures().join("dcs/etcd3.yml");
    let l = load_layers(&[&base, &etcd3, &fixtures().join("snippets/replica-method-wal-e.yml")]);
    let pg = &l.config.postgresql;
    assert_eq!(pg.replica_methods(), vec!["wal_e", "basebackup"]);
    assert_eq!(pg.replica_method("wal_e").unwrap()["command"], "patroni_wale_restore");
    assert_eq!(pg.basebackup.as_ref().unwrap().to_args(), vec!["--max-rate=100M"]);

    let l = load_layers(&[&base, &etcd3, &fixtures().join("snippets/basebackup-list.yml")]);
    assert_eq!(
        l.config.postgresql.basebackup.as_ref().unwrap().to_args(),
        vec!["--verbose", "--max-rate=100M", "--waldir=/pg-wal-mount/external-waldir"]
    );

    let l = load_layers(&[&base, &etcd3, &fixtures().join("snippets/custom-bootstrap.yml")]);
    let b = l.config.bootstrap.as_ref().unwrap();
    assert_eq!(b.method_config().unwrap()["keep_existing_recovery_conf"], false);
    let initdb: Vec<String> = b.initdb.iter().flatten().map(|o| o.to_arg()).collect();
    assert_eq!(initdb, vec!["--encoding=UTF8", "--data-checksums"]);

    let l = load_layers(&[&base, &etcd3, &fixtures().join("snippets/log-json.yml")]);
    assert_eq!(l.config.log.as_ref().unwrap().mode, Some(0o640));

    let l = load_layers(&[&base, &etcd3, &fixtures().join("snippets/standby-cluster.yml")]);
    assert!(l.config.bootstrap_dcs().is_standby_cluster());

    let l = load_layers(&[&base, &fixtures().join("dcs/etcd3-comma-hosts.yml")]);
    assert_eq!(
        l.config.etcd3.as_ref().unwrap().hosts.as_deref().unwrap(),
        &["127.0.0.1:2379".to_owned(), "127.0.0.2:2379".to_owned()][..]
    );

    let l = load_layers(&[&base, &etcd3, &fixtures().join("snippets/citus.yml")]);
    assert_eq!(l.config.bootstrap_dcs().synchronous_mode(), patroni_config::SynchronousMode::Quorum);
    let l = load_layers(&[&base, &etcd3]);
    assert_eq!(l.config.bootstrap_dcs().synchronous_mode(), patroni_config::SynchronousMode::Off);

    let l = load_layers(&[&base, &etcd3, &fixtures().join("snippets/tags-custom.yml")]);
    assert_eq!(l.config.tags.extra["key4"], "RandomString");
    assert_eq!(l.config.tags.replicatefrom.as_deref(), Some("postgresql1"));
}

#[test]
fn documented_dynamic_configurations_parse_and_round_trip() {
    for f in yaml_files("dynamic") {
        let text = std::fs::read_to_string(&f).unwrap();
        let tree = patroni_config::parse_yaml(&text, &f.display().to_string()).unwrap();
        let d = DynamicConfig::from_value(&tree).unwrap();
        assert_eq!(d.to_value(), tree, "{f:?}");
        let again = DynamicConfig::from_json(&d.to_json()).unwrap();
        assert_eq!(again, d);
    }
}
