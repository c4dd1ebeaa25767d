//! Reloading `patroni.yml` on a running member of a real 3-member cluster: SIGHUP and `POST /reload` re-read the
//! file and apply the local `postgresql.parameters` (a reload-only one at once, a restart-only one as
//! `pending_restart` until `POST /restart`), leaving the other members alone; an invalid file is refused with an
//! error in the log, and the member keeps running with the configuration it had.
//!
//! Each test also changes the member's `tags` in the file: the agent re-reads tags every loop, so the tag showing in
//! `/patroni` proves the file was re-read, whatever else the reload did or did not apply.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{name, Cluster, Options, LOOP_WAIT, POLL, WAIT};
use nix::sys::signal::Signal;
use reqwest::Method;
use serde_json::{json, Value};

/// How long a reload may take to show: the request is handled by the HA loop, woken at once.
const RELOAD_WAIT: Duration = Duration::from_secs(20);

/// `SHOW <parameter>` on member `i`.
async fn show(c: &Cluster, i: usize, parameter: &str) -> Option<String> {
    c.sql(i, &format!("SHOW {parameter}")).await.ok()?.first()?.first()?.clone()
}

/// The `/patroni` document of member `i`.
async fn status(c: &Cluster, i: usize) -> Option<Value> {
    match c.node(i).get("/patroni").await {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// Rewrites `patroni.yml` in place (same file: owner and mode stay): `lines` are added to the local
/// `postgresql.parameters` section (right after the `unix_socket_directories` entry common/mod.rs writes) and the
/// `tags` line becomes `tags: {reload_mark: "<mark>"}`.
fn edit_config(path: &Path, lines: &[&str], mark: &str) {
    let text = std::fs::read_to_string(path).expect("patroni.yml readable");
    let mut out = String::new();
    let (mut added, mut tagged) = (false, false);
    for line in text.lines() {
        if line.starts_with("tags:") {
            out.push_str(&format!("tags: {{reload_mark: \"{mark}\"}}\n"));
            tagged = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line.starts_with("    unix_socket_directories:") {
            for l in lines {
                out.push_str(&format!("    {l}\n"));
            }
            added = true;
        }
    }
    assert!(added && tagged, "no parameters.unix_socket_directories or tags line in {}:\n{text}", path.display());
    std::fs::write(path, out).expect("patroni.yml writable");
}

/// Waits until member `i`'s `/patroni` shows the tag `reload_mark: mark` (the file was re-read).
async fn wait_mark(c: &Cluster, i: usize, mark: &str) {
    let shown = patroni_testkit::wait_until(RELOAD_WAIT, POLL, || async {
        status(c, i).await.is_some_and(|s| s["tags"]["reload_mark"] == mark)
    })
    .await;
    if shown.is_err() {
        c.dump("tags not reloaded");
        panic!("{}'s /patroni never showed tags.reload_mark = {mark:?}: {:?}", name(i), status(c, i).await);
    }
}

/// Waits until `SHOW parameter` on member `i` is `want`; panics with the logs otherwise.
async fn wait_setting(c: &Cluster, i: usize, parameter: &str, want: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let now = show(c, i, parameter).await;
        if now.as_deref() == Some(want) {
            return;
        }
        if Instant::now() >= deadline {
            let conf = std::fs::read_to_string(c.data_dir(i).join("postgresql.conf")).unwrap_or_default();
            let conf: Vec<&str> = conf.lines().filter(|l| l.contains(parameter)).collect();
            c.dump(&format!("{parameter} not applied"));
            panic!(
                "{parameter} on {} is {now:?}, not {want:?}, {timeout:?} after the reload; postgresql.conf lines \
                 naming it: {conf:?}",
                name(i)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until member `i`'s `/patroni` shows `pending_restart: true` naming `parameter` in
/// `pending_restart_reason`; panics with what PostgreSQL, `/patroni` and the member key say otherwise.
async fn wait_pending_restart(c: &Cluster, i: usize, parameter: &str) {
    let pending = patroni_testkit::wait_until(RELOAD_WAIT, POLL, || async {
        status(c, i).await.is_some_and(|s| s["pending_restart"] == true)
    })
    .await;
    let shown = status(c, i).await;
    if pending.is_err() {
        let pg = c.sql(i, "SELECT name, setting FROM pg_settings WHERE pending_restart").await;
        let member_key = c.etcd.get(&format!("/service/demo/members/{}", name(i))).await;
        c.dump("pending_restart not shown");
        panic!(
            "/patroni of {} never showed pending_restart: true within {RELOAD_WAIT:?}\n/patroni: {shown:?}\n\
             pg_settings pending_restart: {pg:?}\nmember key: {member_key:?}",
            name(i)
        );
    }
    let shown = shown.unwrap_or_default();
    assert!(shown["pending_restart_reason"].get(parameter).is_some(), "the reason names {parameter}: {shown}");
}

/// SIGHUP after adding `work_mem: 7MB` to one replica's local `postgresql.parameters`: that member's PostgreSQL
/// shows 7MB within seconds, the other members keep the default 4MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_local_parameter_on_that_member_only() {
    let mut c = Cluster::start(Options::default()).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let m = (0..3).find(|i| *i != p).unwrap();
    let path = c.node(m).config_path().expect("patroni.yml").to_path_buf();
    for i in 0..3 {
        assert_eq!(show(&c, i, "work_mem").await.as_deref(), Some("4MB"), "default work_mem on {}", name(i));
    }

    edit_config(&path, &["work_mem: 7MB"], "1");
    c.nodes[m].kill(Signal::SIGHUP).unwrap();
    let hup = Instant::now();
    wait_mark(&c, m, "1").await;
    wait_setting(&c, m, "work_mem", "7MB", RELOAD_WAIT).await;
    eprintln!("work_mem 7MB on {} {:?} after SIGHUP", name(m), hup.elapsed());
    assert!(c.nodes[m].is_running(), "SIGHUP does not stop the agent");
    for o in (0..3).filter(|i| *i != m) {
        assert_eq!(show(&c, o, "work_mem").await.as_deref(), Some("4MB"), "{} is not reconfigured", name(o));
    }
}

/// `shared_buffers` (restart-only) added to one replica's local `postgresql.parameters`, then `POST /reload`:
/// `/patroni` shows `pending_restart: true` naming it until `POST /restart`, after which the new value is live and
/// the flag gone. `max_connections: 120` written locally at the same time takes no effect: Patroni takes it from
/// the dynamic configuration only (the documented "PostgreSQL parameters controlled by Patroni").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_reload_makes_a_local_restart_only_parameter_pending_until_restart() {
    let c = Cluster::start(Options::default()).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let m = (0..3).find(|i| *i != p).unwrap();
    let path = c.node(m).config_path().expect("patroni.yml").to_path_buf();
    let before = show(&c, m, "shared_buffers").await;
    assert_eq!(before.as_deref(), Some("128MB"));

    edit_config(&path, &["shared_buffers: 64MB", "max_connections: 120"], "1");
    let (code, text) = c.node(m).request(Method::POST, "/reload", None).await.unwrap();
    assert_eq!((code, text.trim()), (202, "reload scheduled"));
    wait_mark(&c, m, "1").await;
    wait_pending_restart(&c, m, "shared_buffers").await;
    assert_eq!(show(&c, m, "shared_buffers").await, before, "not applied before the restart");
    for o in (0..3).filter(|i| *i != m) {
        assert!(status(&c, o).await.is_some_and(|s| s.get("pending_restart").is_none()), "{} not pending", name(o));
    }

    let (code, text) = c.node(m).request(Method::POST, "/restart", Some(&json!({}))).await.unwrap();
    assert_eq!(code, 200, "POST /restart answered {code}: {text}");
    wait_setting(&c, m, "shared_buffers", "64MB", WAIT).await;
    assert_eq!(
        show(&c, m, "max_connections").await.as_deref(),
        Some("100"),
        "max_connections comes from the dynamic configuration only, a local value is ignored"
    );
    let cleared = patroni_testkit::wait_until(RELOAD_WAIT, POLL, || async {
        status(&c, m).await.is_some_and(|s| s.get("pending_restart").is_none())
    })
    .await;
    assert!(cleared.is_ok(), "pending_restart cleared by the restart: {:?}", status(&c, m).await);
    c.wait_streaming(&[m], p, WAIT).await;
}

/// Member `i`'s key in the DCS, as JSON.
async fn member_key(c: &Cluster, i: usize) -> Option<Value> {
    let text = c.etcd.get(&format!("/service/demo/members/{}", name(i))).await.ok().flatten()?;
    serde_json::from_str(&text).ok()
}

/// The documented way to change a restart-only parameter (`PATCH /config`, then `POST /restart`), as a control for
/// the local-file test above: the member key and `/patroni` say `pending_restart: true` (with the reason) while
/// PostgreSQL still runs with 100; `POST /restart` on one replica applies 120 there and clears its flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_config_restart_only_parameter_waits_for_post_restart() {
    let c = Cluster::start(Options::default()).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let m = (0..3).find(|i| *i != p).unwrap();
    let patch = json!({"postgresql": {"parameters": {"max_connections": 120}}});
    let (code, text) = c.node(p).request(Method::PATCH, "/config", Some(&patch)).await.unwrap();
    assert_eq!(code, 200, "PATCH /config answered {code}: {text}");
    let pending = patroni_testkit::wait_until(RELOAD_WAIT, POLL, || async {
        member_key(&c, m).await.is_some_and(|k| k["pending_restart"] == true)
    })
    .await;
    assert!(pending.is_ok(), "member key of {} never said pending_restart: {:?}", name(m), member_key(&c, m).await);
    assert_eq!(show(&c, m, "max_connections").await.as_deref(), Some("100"), "not applied before the restart");
    // `/patroni` says so too, naming the parameter as Patroni 4 does:
    // `{"max_connections": {"old_value": "100", "new_value": "120"}}`.
    wait_pending_restart(&c, m, "max_connections").await;
    let reason = status(&c, m).await.unwrap()["pending_restart_reason"]["max_connections"].clone();
    assert_eq!(reason, json!({"old_value": "100", "new_value": "120"}));

    let (code, text) = c.node(m).request(Method::POST, "/restart", Some(&json!({}))).await.unwrap();
    assert_eq!(code, 200, "POST /restart answered {code}: {text}");
    wait_setting(&c, m, "max_connections", "120", WAIT).await;
    let cleared = patroni_testkit::wait_until(RELOAD_WAIT, POLL, || async {
        member_key(&c, m).await.is_some_and(|k| k.get("pending_restart").is_none())
    })
    .await;
    assert!(cleared.is_ok(), "pending_restart cleared by the restart: {:?}", member_key(&c, m).await);
    c.wait_streaming(&[m], p, WAIT).await;
}

/// An invalid `patroni.yml` (broken YAML) + SIGHUP: the agent logs an error naming the file and the position, keeps
/// running as a healthy replica and keeps the configuration it had (the tag of an earlier reload stays); fixed
/// again, the next SIGHUP applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_is_refused_and_the_old_configuration_kept() {
    let mut c = Cluster::start(Options::default()).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let m = (0..3).find(|i| *i != p).unwrap();
    let path = c.node(m).config_path().expect("patroni.yml").to_path_buf();
    edit_config(&path, &[], "1");
    c.nodes[m].kill(Signal::SIGHUP).unwrap();
    wait_mark(&c, m, "1").await;
    let good = std::fs::read_to_string(&path).unwrap();

    // An unclosed flow mapping, on the line that also carries a new tag value.
    let broken = good.replacen("tags: {reload_mark: \"1\"}", "tags: {reload_mark: \"2\"", 1);
    assert_ne!(broken, good);
    let lines_before = c.node(m).log().lines().count();
    std::fs::write(&path, &broken).unwrap();
    c.nodes[m].kill(Signal::SIGHUP).unwrap();
    let logged = patroni_testkit::wait_until(RELOAD_WAIT, POLL, || async {
        c.node(m).log().lines().skip(lines_before).any(|l| l.contains("configuration not reloaded"))
    })
    .await;
    let new_lines: Vec<String> = c.node(m).log().lines().skip(lines_before).map(str::to_owned).collect();
    if logged.is_err() {
        c.dump("no reload error");
        panic!("no 'configuration not reloaded' error after SIGHUP; new log lines:\n{}", new_lines.join("\n"));
    }
    let error = new_lines.iter().find(|l| l.contains("configuration not reloaded")).unwrap();
    eprintln!("logged: {error}");
    assert!(error.contains("ERROR"), "logged at error level: {error}");
    assert!(error.contains(&path.display().to_string()), "the error names the file: {error}");

    // Two more loops: still running, still a healthy replica, still the old configuration.
    tokio::time::sleep(Duration::from_secs(2 * LOOP_WAIT + 1)).await;
    assert!(c.nodes[m].is_running(), "the agent keeps running");
    assert_eq!(c.status(m, "/replica").await, Some(200), "still a healthy replica");
    let tags = status(&c, m).await.map(|s| s["tags"].clone());
    assert_eq!(tags, Some(json!({"reload_mark": "1"})), "the old configuration (tags) is kept");
    let later: Vec<String> = c.node(m).log().lines().skip(lines_before).map(str::to_owned).collect();
    assert!(!later.iter().any(|l| l.contains("Reloaded configuration")), "nothing reloaded: {later:?}");

    // Fixed: the next SIGHUP applies.
    std::fs::write(&path, good.replacen("reload_mark: \"1\"", "reload_mark: \"3\"", 1)).unwrap();
    c.nodes[m].kill(Signal::SIGHUP).unwrap();
    wait_mark(&c, m, "3").await;
    c.insert(p, "still-replicating").await;
    c.wait_row(m, "still-replicating", WAIT).await;
}
