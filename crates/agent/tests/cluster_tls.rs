//! A real 3-member cluster with TLS everywhere and one `openssl req -x509` certificate (CA:TRUE) as CA, server
//! and client certificate of everything, as Patroni's own acceptance suite and many deployments set it up: etcd
//! over https with client certificates, the REST APIs over https with `verify_client: required`, the agents
//! calling each other with it (`ctl` section), PostgreSQL with `ssl: on`, replication over TLS only and
//! `sslmode: verify-ca`; `patronictl` with the same certificate.
//!
//! Needs `patronictl` built next to `patroni` (`cargo build -p patroni-ctl --bin patronictl`; a workspace build or
//! `scripts/test.sh` does it): another package's binary has no `CARGO_BIN_EXE_` variable here.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{name, Cluster, Options, SCOPE, START_TIMEOUT, WAIT};
use nix::sys::signal::Signal;
use serde_json::Value;

fn patronictl() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_patroni")).with_file_name("patronictl");
    assert!(
        path.is_file(),
        "no patronictl at {}: build it with `cargo build -p patroni-ctl --bin patronictl`",
        path.display()
    );
    path
}

/// Runs patronictl with `config`; (exit code, stdout, stderr).
fn ctl(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(patronictl())
        .arg("-c")
        .arg(config)
        .args(args)
        .env_remove("PATRONI_RESTAPI_USERNAME")
        .env_remove("PATRONI_RESTAPI_PASSWORD")
        .output()
        .expect("patronictl runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// patronictl's `list -f json` members.
fn members(c: &Cluster, config: &Path) -> Vec<Value> {
    let (code, out, err) = ctl(config, &["list", "-f", "json"]);
    if code != 0 {
        c.dump("patronictl list failed");
    }
    assert_eq!(code, 0, "patronictl list: {out}{err}");
    serde_json::from_str::<Value>(&out).ok().and_then(|v| v.as_array().cloned()).unwrap_or_default()
}

/// Number of walsenders on member `i` whose connection uses TLS, and of all its walsenders.
async fn tls_walsenders(c: &Cluster, i: usize) -> (String, String) {
    let sql = "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_replication r \
               JOIN pg_stat_ssl s ON s.pid = r.pid";
    match c.sql(i, sql).await.as_deref() {
        Ok([row]) => (row[0].clone().unwrap_or_default(), row[1].clone().unwrap_or_default()),
        other => panic!("pg_stat_replication on {}: {other:?}", name(i)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_everywhere_with_one_openssl_self_signed_certificate() {
    let mut c = Cluster::start(Options { tls: true, ..Options::default() }).await;
    let certs = c.certs().expect("TLS certificates").clone();
    let p = c.wait_primary(WAIT, &[]).await;
    let replicas: Vec<usize> = (0..3).filter(|r| *r != p).collect();

    // Members advertise https REST APIs; replicas stream over TLS (plain replication is rejected by pg_hba).
    let members_json = c.etcd.get_prefix("/service/demo/members/").await.expect("members");
    assert_eq!(members_json.len(), 3);
    for (key, value) in &members_json {
        assert!(value.contains("\"api_url\":\"https://127.0.0.1:"), "{key} = {value}");
    }
    c.insert(p, "over-tls").await;
    for r in &replicas {
        c.wait_row(*r, "over-tls", WAIT).await;
    }
    assert_eq!(tls_walsenders(&c, p).await, ("2".to_string(), "2".to_string()), "both replicas stream over TLS");

    // Without a client certificate, or with another self-signed one, the REST API refuses the TLS handshake.
    let no_identity = reqwest::Client::builder().no_proxy().danger_accept_invalid_certs(true).build().expect("client");
    let url = format!("{}/patroni", c.node(p).api_url());
    let refused = no_identity.get(&url).send().await;
    assert!(refused.is_err(), "a request without a client certificate was answered: {refused:?}");
    eprintln!("without a client certificate: {:?}", refused.map(|_| ()));
    let other_dir = patroni_testkit::TestDir::with_prefix("other-cert-").expect("dir");
    let other = patroni_testkit::TestCerts::openssl_self_signed(other_dir.path(), "root").expect("other cert");
    let stranger = reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .identity(reqwest::Identity::from_pem(other.client_identity_pem().as_bytes()).expect("identity"))
        .build()
        .expect("client");
    let refused = stranger.get(&url).send().await;
    assert!(refused.is_err(), "a request with an untrusted client certificate was answered: {refused:?}");
    // With the certificate (the kit's client) it answers.
    assert_eq!(c.status(p, "/patroni").await, Some(200));

    // patronictl reads etcd and calls the REST APIs with the same certificate.
    let dir = patroni_testkit::TestDir::with_prefix("patronictl-tls-").expect("dir");
    let (cert, key) = (certs.client_cert.display(), certs.client_key.display());
    let config = dir
        .write_file(
            "patronictl.yaml",
            format!(
                "scope: {SCOPE}\netcd3:\n  hosts: {etcd}\n  protocol: https\n  cacert: {cert}\n  cert: {cert}\n  \
                 key: {key}\nctl:\n  certfile: {cert}\n  keyfile: {key}\n  cacert: {cert}\n",
                etcd = c.etcd.endpoint()
            ),
            0o600,
        )
        .expect("patronictl.yaml");
    let listed = members(&c, &config);
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(listed.iter().filter(|m| m["Role"] == "Leader").count(), 1, "{listed:?}");
    assert!(listed.iter().any(|m| m["Role"] == "Leader" && m["Member"] == name(p).as_str()), "{listed:?}");

    // patronictl query talks to PostgreSQL as psycopg2 does: TLS when the server offers it (sslmode prefer).
    let sql = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let out = Command::new(patronictl())
        .arg("-c")
        .arg(&config)
        .args(["query", SCOPE, "-m", &name(p), "-U", "postgres", "-d", "postgres", "--format", "tsv", "-c", sql])
        .env("PGPASSWORD", patroni_testkit::SUPERUSER_PASSWORD)
        .output()
        .expect("patronictl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success() && text.lines().nth(1) == Some("True"), "query over TLS: {text}");

    // Switchover to a named candidate through patronictl: it posts to the leader over mutual TLS, and the leader
    // asks the candidate (GET /patroni) the same way.
    let x = replicas[0];
    let (code, out, err) =
        ctl(&config, &["switchover", SCOPE, "--leader", &name(p), "--candidate", &name(x), "--force"]);
    if code != 0 {
        c.dump("patronictl switchover failed");
    }
    assert_eq!(code, 0, "patronictl switchover: {out}{err}");
    assert!(out.contains(&format!("Successfully switched over to \"{}\"", name(x))), "{out}{err}");
    let asked = format!("Got response from {} https://", name(x));
    assert!(c.node(p).log().contains(&asked), "{} did not log {asked:?}", name(p));
    assert_eq!(c.wait_primary(WAIT, &[p]).await, x, "the named candidate is the primary");
    c.insert(x, "after-switchover").await;
    let others: Vec<usize> = (0..3).filter(|r| *r != x).collect();
    c.wait_streaming(&others, x, START_TIMEOUT).await;
    for r in &others {
        c.wait_row(*r, "after-switchover", WAIT).await;
    }
    assert_eq!(tls_walsenders(&c, x).await, ("2".to_string(), "2".to_string()));

    // The primary's node dies (agent SIGKILL, PostgreSQL stopped in immediate mode): the replicas race for the
    // key, asking each other's REST APIs over mutual TLS, and one takes over.
    let logged_before: Vec<usize> = (0..3).map(|i| c.node(i).log().len()).collect();
    c.nodes[x].kill(Signal::SIGKILL).expect("SIGKILL");
    c.nodes[x].wait_exit(WAIT).await.expect("agent exits");
    c.pg_stop_immediate(x);
    let np = c.wait_primary_among(START_TIMEOUT, &others).await;
    c.insert(np, "after-failover").await;
    let survivor: Vec<usize> = others.iter().copied().filter(|r| *r != np).collect();
    c.wait_streaming(&survivor, np, START_TIMEOUT).await;
    for r in &survivor {
        c.wait_row(*r, "after-failover", WAIT).await;
    }
    // The winner's race asked the other replica over https and got its answer (a peer that does not answer is
    // left out of the race silently, so only the log shows the call worked).
    let race = c.node(np).log().get(logged_before[np]..).unwrap_or_default().to_string();
    for &s in &survivor {
        assert!(race.contains(&format!("Got response from {} https://", name(s))), "{}'s race:\n{race}", name(np));
        assert!(!race.contains(&format!("Request failed to {}:", name(s))), "{}'s race:\n{race}", name(np));
    }

    // The old primary's node comes back and rejoins as a replica (rewind and replication as clients over TLS).
    c.nodes[x].restart().expect("agent restarts");
    c.wait_streaming(&[x], np, START_TIMEOUT).await;
    c.wait_row(x, "after-failover", WAIT).await;
    let listed = members(&c, &config);
    assert!(listed.iter().any(|m| m["Role"] == "Leader" && m["Member"] == name(np).as_str()), "{listed:?}");
}
