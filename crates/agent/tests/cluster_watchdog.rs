//! Patroni's `testing` watchdog driver on a live cluster (issue #19): the device is a named pipe this test reads, so
//! every byte the agent sends its watchdog is seen — the timeout (`Ctimeout=N`), each keepalive (`1`) and the
//! magic close (`V`). The leader arms it with `ttl - safety_margin`, pings it every loop, closes it when paused and
//! when it stops being the leader, and opens it again on resume.

mod common;

use std::ffi::CString;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{name, Cluster, Options, POLL, START_TIMEOUT, WAIT};
use patroni_testkit::{wait_until, TestDir};
use reqwest::Method;

/// Everything written to the pipe so far, read by a thread that keeps the read end open (the agent opens the write
/// end without blocking, which fails while nobody reads).
struct Pipe {
    seen: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
}

impl Pipe {
    fn create(path: &Path) -> Pipe {
        let c = CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a plain libc call on a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0, "mkfifo {}", path.display());
        // The agent runs as the unprivileged user: the pipe must be writable whatever the umask made of it.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o666)).expect("chmod");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .expect("open the pipe for reading");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (out, quit) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while !quit.load(Ordering::Relaxed) {
                match file.read(&mut buf) {
                    Ok(n) if n > 0 => out.lock().expect("lock").extend_from_slice(&buf[..n]),
                    // No writer (0) or nothing written yet (EAGAIN): look again shortly.
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Pipe { seen, stop }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().expect("lock")).into_owned()
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Keepalives are the `1`s outside the `Ctimeout=N` lines.
fn keepalives(text: &str) -> usize {
    text.split('\n')
        .map(|part| part.rsplit_once("Ctimeout=").map_or(part, |(before, _)| before))
        .map(|p| p.matches('1').count())
        .sum()
}

async fn patch_config(c: &Cluster, i: usize, body: serde_json::Value) {
    let (code, text) = c.node(i).request(Method::PATCH, "/config", Some(&body)).await.expect("PATCH /config");
    assert_eq!(code, 200, "PATCH /config {body}: {text}");
}

async fn switchover(c: &Cluster, from: usize, to: usize) {
    let body = serde_json::json!({"leader": name(from), "candidate": name(to)});
    let (code, text) = c.node(from).request(Method::POST, "/switchover", Some(&body)).await.expect("switchover");
    assert_eq!(code, 200, "switchover: {text}");
    assert_eq!(c.wait_primary(START_TIMEOUT, &[from]).await, to);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testing_driver_is_armed_pinged_closed_in_pause_and_on_demotion() {
    let dir = TestDir::with_prefix("patroni-watchdog-").expect("dir");
    patroni_testkit::give_to_unprivileged(dir.path()).expect("dir owner");
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).expect("chmod");
    let fifo = dir.path().join("watchdog");
    let pipe = Pipe::create(&fifo);
    let section = format!("{{mode: required, driver: testing, device: {}, safety_margin: 5}}", fifo.display());
    let c = Cluster::start(Options { members: 2, watchdog: vec![Some(section)], ..Options::default() }).await;
    let first = c.wait_primary(WAIT, &[]).await;
    let (p, other) = (0, 1);
    c.wait_streaming(&[1 - first], first, START_TIMEOUT).await;
    if first != p {
        // pg1 (no watchdog) won the bootstrap race: hand the role to pg0, whose watchdog is the one we read.
        switchover(&c, other, p).await;
        c.wait_streaming(&[other], p, START_TIMEOUT).await;
    }

    // Armed with ttl (20) - safety_margin (5), then pinged loop after loop.
    let armed =
        wait_until(WAIT, POLL, || async { pipe.text().contains("Ctimeout=15\n") && keepalives(&pipe.text()) >= 3 })
            .await;
    if armed.is_err() {
        c.dump("watchdog not armed");
        panic!("the watchdog pipe saw {:?}", pipe.text());
    }

    // Paused: closed with the magic character, and no more keepalives.
    patch_config(&c, p, serde_json::json!({"pause": true})).await;
    let closed = wait_until(WAIT, POLL, || async { pipe.text().ends_with('V') }).await;
    if closed.is_err() {
        c.dump("watchdog not closed in pause");
        panic!("the watchdog pipe saw {:?} after pause", pipe.text());
    }
    let at_pause = keepalives(&pipe.text());
    tokio::time::sleep(Duration::from_secs(3 * common::LOOP_WAIT)).await;
    assert_eq!(keepalives(&pipe.text()), at_pause, "no keepalive while paused: {:?}", pipe.text());

    // Resumed: opened and pinged again.
    patch_config(&c, p, serde_json::json!({"pause": null})).await;
    let again = wait_until(WAIT, POLL, || async { keepalives(&pipe.text()) >= at_pause + 2 }).await;
    if again.is_err() {
        c.dump("watchdog not pinged after resume");
        panic!("the watchdog pipe saw {:?} after resume", pipe.text());
    }

    // Demoted by a switchover: closed again, and it stays closed while a replica.
    switchover(&c, p, other).await;
    let closed = wait_until(WAIT, POLL, || async { pipe.text().ends_with('V') }).await;
    if closed.is_err() {
        c.dump("watchdog not closed on demotion");
        panic!("the watchdog pipe saw {:?} after the switchover", pipe.text());
    }
    let at_demotion = keepalives(&pipe.text());
    tokio::time::sleep(Duration::from_secs(3 * common::LOOP_WAIT)).await;
    assert_eq!(keepalives(&pipe.text()), at_demotion, "no keepalive as a replica: {:?}", pipe.text());
}
