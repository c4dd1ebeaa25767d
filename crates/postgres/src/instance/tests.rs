use super::*;
use crate::conninfo::Credentials;

#[test]
fn postgres_can_move_between_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Postgres>();
}

#[test]
fn slot_names() {
    assert_eq!(slot_name_from_member_name("Node-1.example"), "node_1_example");
}

#[test]
fn connection_addresses() {
    let mut s = PgSettings::new("n1", "demo", "/data", "0.0.0.0:5433");
    s.superuser = Credentials::new("postgres", Some("pw"));
    let pg = Postgres::with_version(s.clone(), PgVersion(150000));
    let p = pg.local_conn_params();
    assert_eq!(p.get("host"), Some("127.0.0.1"));
    assert_eq!(p.get("port"), Some("5433"));
    assert_eq!(p.get("user"), Some("postgres"));
    assert_eq!(pg.connection_url(), "postgres://127.0.0.1:5433/postgres");

    s.use_unix_socket = true;
    s.parameters.insert("unix_socket_directories".into(), "relative, /tmp/sock".into());
    s.connect_address = Some("10.0.0.1:5433".into());
    let pg = Postgres::with_version(s, PgVersion(150000));
    assert_eq!(pg.local_conn_params().get("host"), Some("/tmp/sock"));
    assert_eq!(pg.connection_url(), "postgres://10.0.0.1:5433/postgres");
}
