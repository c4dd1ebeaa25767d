//! A real HAProxy in front of three fake members, configured as Patroni's documentation does
//! (`option httpchk OPTIONS /primary`, `/replica`), routes to the right servers before and
//! after a switchover. Skipped when `haproxy` is not installed (Debian package `haproxy`).

mod common;

use common::*;
use patroni_api::*;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn haproxy_binary() -> Option<String> {
    ["/usr/sbin/haproxy", "/usr/bin/haproxy", "/usr/local/sbin/haproxy"]
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| (*p).to_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
}

/// Stands in for PostgreSQL: says its name to whoever connects.
async fn name_server(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.write_all(name.as_bytes()).await;
            let _ = s.shutdown().await;
        }
    });
    addr
}

async fn who(port: u16) -> Option<String> {
    let mut s =
        tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(("127.0.0.1", port))).await.ok()?.ok()?;
    let mut buf = String::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut buf)).await.ok()?.ok()?;
    (!buf.is_empty()).then_some(buf)
}

async fn names_behind(port: u16, tries: usize) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for _ in 0..tries {
        if let Some(n) = who(port).await {
            out.insert(n);
        }
    }
    out
}

/// Polls until the set of names served on `port` is `want` (bounded).
async fn wait_for(port: u16, want: &[&str]) -> BTreeSet<String> {
    let want: BTreeSet<String> = want.iter().map(|s| (*s).to_owned()).collect();
    let mut got = BTreeSet::new();
    for _ in 0..50 {
        got = names_behind(port, 6).await;
        if got == want {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    got
}

fn role(primary_role: bool, name: &str) -> NodeStatus {
    let mut s = if primary_role { primary() } else { replica(0) };
    s.patroni.name = name.into();
    s
}

#[tokio::test]
async fn haproxy_routes_writes_to_the_primary_before_and_after_a_switchover() {
    let Some(haproxy) = haproxy_binary() else {
        eprintln!("haproxy not installed: test skipped");
        return;
    };
    let names = ["node1", "node2", "node3"];
    let mut apis = Vec::new();
    let mut pgs = Vec::new();
    for (i, n) in names.iter().enumerate() {
        apis.push(TestServer::start(role(i == 0, n)).await);
        pgs.push(name_server(n).await);
    }
    let (primary_port, replica_port) = (free_port(), free_port());
    let servers = |backend: &str| {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                format!(
                    "  server {n}-{backend} 127.0.0.1:{} maxconn 100 check port {}\n",
                    pgs[i].port(),
                    apis[i].addr.port()
                )
            })
            .collect::<String>()
    };
    let config = format!(
        "global\n  maxconn 100\n\
         defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n  timeout check 1s\n\
         listen primary\n  bind 127.0.0.1:{primary_port}\n  option httpchk OPTIONS /primary\n  http-check expect status 200\n\
           default-server inter 200ms fall 2 rise 1 on-marked-down shutdown-sessions\n{}\
         listen replicas\n  bind 127.0.0.1:{replica_port}\n  balance roundrobin\n  option httpchk OPTIONS /replica\n  http-check expect status 200\n\
           default-server inter 200ms fall 2 rise 1 on-marked-down shutdown-sessions\n{}",
        servers("p"),
        servers("r")
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("haproxy.cfg");
    std::fs::write(&cfg_path, config).unwrap();
    let mut child = tokio::process::Command::new(haproxy)
        .arg("-db")
        .arg("-f")
        .arg(&cfg_path)
        .kill_on_drop(true)
        .spawn()
        .expect("start haproxy");

    let got = wait_for(primary_port, &["node1"]).await;
    assert_eq!(got, BTreeSet::from(["node1".to_string()]), "writes before the switchover");
    let got = wait_for(replica_port, &["node2", "node3"]).await;
    assert_eq!(got.len(), 2, "reads before the switchover: {got:?}");

    // Switchover: node1 steps down, node2 takes over.
    apis[0].publish(role(false, "node1"));
    apis[1].publish(role(true, "node2"));
    let got = wait_for(primary_port, &["node2"]).await;
    assert_eq!(got, BTreeSet::from(["node2".to_string()]), "writes after the switchover");
    let got = wait_for(replica_port, &["node1", "node3"]).await;
    assert_eq!(got, BTreeSet::from(["node1".to_string(), "node3".to_string()]), "reads after the switchover");

    let _ = child.kill().await;
    for a in apis {
        a.stop().await;
    }
}
