//! Issue #22: the Debian package `scripts/package.sh` builds, installed and run as systemd would run it.
//!
//! `dpkg -i` installs it into a private root (`--root`, with maintainer scripts run chrootless), so the test
//! never touches the machine's own /usr or dpkg database; then:
//! - the binaries, units, sample configuration, completions and man pages are where Debian looks for them, and
//!   installing over Debian's `patroni` package removes it (`Conflicts:` + `Replaces:`);
//! - the unit is Patroni's recommended one (`Type=notify`, `KillMode=process`, `Restart=on-failure`, …) and
//!   `systemd-analyze verify` accepts it (where systemd-analyze exists);
//! - the unit's `ExecStart` command line, run as its `User=` with a `NOTIFY_SOCKET` as systemd passes it, sends
//!   READY=1, bootstraps a one-member cluster on a real etcd that the packaged `patronictl` lists, and stops with
//!   PostgreSQL on SIGTERM to the agent alone (`KillMode=process`) well within `TimeoutStopSec`.
//!
//! Needs a release build: runs when `PATRONI_DEB` names the .deb (`bash scripts/package.sh` prints the command),
//! skipped with a message otherwise, so the default test run does not pay for a musl LTO build.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use patroni_testkit::{pg_bin_dir, AgentProcess, EtcdServer, TestDir};

const UNIT: &str = "lib/systemd/system/patroni.service";

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// An empty dpkg database under `root`, optionally with a package already installed (its status stanza).
fn dpkg_root(root: &Path, installed: Option<&str>) {
    let admin = root.join("var/lib/dpkg");
    for d in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(admin.join(d)).expect("dpkg admin dir");
    }
    std::fs::write(admin.join("status"), installed.unwrap_or("")).expect("status");
    std::fs::write(admin.join("available"), "").expect("available");
}

fn dpkg(root: &Path, args: &[&str]) -> (bool, String) {
    let root_arg = format!("--root={}", root.display());
    run(Command::new("dpkg").args([root_arg.as_str(), "--force-script-chrootless", "--log=/dev/null"]).args(args))
}

/// `Key=value` settings of the unit's `[Service]` section.
fn service_settings(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .skip_while(|l| l.trim() != "[Service]")
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debian_package_installs_and_runs_as_its_unit() {
    let Some(deb) = std::env::var_os("PATRONI_DEB").map(PathBuf::from) else {
        eprintln!("SKIPPED: set PATRONI_DEB to the .deb built by scripts/package.sh");
        return;
    };
    let deb = std::fs::canonicalize(&deb).unwrap_or_else(|e| panic!("{}: {e}", deb.display()));
    let deb_arg = deb.display().to_string();
    let dir = TestDir::with_prefix("patroni-deb-").expect("temp dir");

    // Installed over Debian's patroni (a stand-in entry in the database): dpkg removes it in favour of ours.
    let root = dir.join("root");
    dpkg_root(
        &root,
        Some(
            "Package: patroni\nStatus: install ok installed\nPriority: optional\nSection: database\n\
             Maintainer: Debian PostgreSQL Maintainers\nArchitecture: all\nVersion: 3.0.2-1\n\
             Description: stand-in for Debian's patroni\n\n",
        ),
    );
    let (ok, out) = dpkg(&root, &["-i", &deb_arg]);
    assert!(ok, "dpkg -i: {out}");
    let (_, status) = dpkg(&root, &["-s", "patroni-rs"]);
    assert!(status.contains("Status: install ok installed"), "{status}");
    assert!(status.contains("Conflicts: patroni") && status.contains("Replaces: patroni"), "{status}");
    let (_, old) = dpkg(&root, &["-s", "patroni"]);
    assert!(!old.contains("Status: install ok installed"), "Debian's patroni still installed: {old}");

    // Files where Debian looks for them.
    for (path, mode) in [
        ("usr/bin/patroni", 0o755),
        ("usr/bin/patronictl", 0o755),
        ("usr/bin/patroni_raft_controller", 0o755),
        (UNIT, 0o644),
        ("lib/systemd/system/patroni@.service", 0o644),
        ("etc/patroni/config.yml.sample", 0o644),
        ("usr/share/bash-completion/completions/patronictl", 0o644),
        ("usr/share/zsh/vendor-completions/_patronictl", 0o644),
        ("usr/share/fish/vendor_completions.d/patronictl.fish", 0o644),
        ("usr/share/man/man1/patronictl.1.gz", 0o644),
        ("usr/share/man/man1/patronictl-switchover.1.gz", 0o644),
        ("usr/share/doc/patroni-rs/MIGRATING.md", 0o644),
    ] {
        let meta = std::fs::metadata(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(meta.permissions().mode() & 0o777, mode, "mode of {path}");
    }
    let (_, conffiles) = dpkg(&root, &["--status", "patroni-rs"]);
    assert!(conffiles.contains("/etc/patroni/config.yml.sample"), "{conffiles}");
    for b in ["patroni", "patronictl", "patroni_raft_controller"] {
        let (_, elf) = run(Command::new("readelf").arg("-l").arg(root.join("usr/bin").join(b)));
        assert!(!elf.contains("program interpreter"), "{b} is not static:\n{elf}");
    }
    let (ok, page) = run(Command::new("gzip").arg("-dc").arg(root.join("usr/share/man/man1/patronictl.1.gz")));
    assert!(ok && page.contains(".TH patronictl"), "{}", &page[..page.len().min(300)]);
    let (ok, complete) = run(Command::new("bash").arg("-c").arg(format!(
        "source {}; complete -p patronictl",
        root.join("usr/share/bash-completion/completions/patronictl").display()
    )));
    assert!(ok && complete.contains("patronictl"), "{complete}");

    // The unit is Patroni's recommended one.
    let unit = std::fs::read_to_string(root.join(UNIT)).expect("unit");
    let settings = service_settings(&unit);
    let get = |k: &str| settings.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    assert_eq!(get("Type"), Some("notify"));
    assert_eq!(get("KillMode"), Some("process"));
    assert_eq!(get("Restart"), Some("on-failure"));
    assert_eq!(get("User"), Some("postgres"));
    let stop_timeout: u64 = get("TimeoutStopSec").and_then(|v| v.parse().ok()).expect("TimeoutStopSec in seconds");
    let exec_start = get("ExecStart").expect("ExecStart").to_string();
    let argv: Vec<&str> = exec_start.split_whitespace().collect();
    assert_eq!(argv, ["/usr/bin/patroni", "/etc/patroni/config.yml"]);
    assert!(unit.contains("ConditionPathExists=/etc/patroni/config.yml"), "{unit}");

    // systemd's own check, on a copy whose paths point into the private root (it checks that ExecStart's program
    // exists and is executable). `--man=no`: the unit's Documentation= page is in the package (checked above),
    // not in this machine's man path.
    if Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success()) {
        let units = dir.create_dir("units", 0o755).expect("units dir");
        let program = root.join("usr/bin/patroni").display().to_string();
        let copy = unit.replace("/usr/bin/patroni ", &format!("{program} "));
        for name in ["patroni.service", "patroni@.service"] {
            let text = if name == "patroni.service" {
                copy.clone()
            } else {
                std::fs::read_to_string(root.join("lib/systemd/system").join(name))
                    .expect("template unit")
                    .replace("/usr/bin/patroni ", &format!("{program} "))
            };
            std::fs::write(units.join(name), text).expect("unit copy");
        }
        let (ok, out) =
            run(Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(units.join("patroni.service")));
        assert!(ok, "systemd-analyze verify patroni.service:\n{out}");
        let (ok, out) = run(Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(units.join("patroni@15-main.service")));
        assert!(ok, "systemd-analyze verify patroni@15-main.service:\n{out}");
    } else {
        eprintln!("systemd-analyze not installed: unit not verified by systemd");
    }

    // ExecStart as systemd runs it: as User=postgres, with NOTIFY_SOCKET.
    let etcd = EtcdServer::start().await.expect("etcd starts");
    let notify_dir = dir.create_dir("notify", 0o755).expect("notify dir");
    let socket_path = notify_dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o777)).expect("socket mode");
    socket.set_read_timeout(Some(Duration::from_millis(200))).expect("socket timeout");
    let (endpoint, bin) = (etcd.endpoint(), pg_bin_dir().expect("PostgreSQL binaries").display().to_string());
    let mut agent = AgentProcess::builder(root.join(argv[0].trim_start_matches('/')))
        .name("deb1")
        .env("NOTIFY_SOCKET", socket_path.display().to_string())
        .config(move |ctx| {
            format!(
                "scope: deb\nname: deb1\n{}etcd3:\n  hosts: {endpoint}\n{}",
                ctx.restapi_yaml(),
                ctx.postgresql_yaml(&bin, &ctx.data_dir())
            )
        })
        .start()
        .expect("the unit's ExecStart runs");

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 256];
    let ready = loop {
        if let Ok(n) = socket.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.lines().any(|l| l == "READY=1") {
                break true;
            }
        }
        if Instant::now() > deadline || !agent.is_running() {
            break false;
        }
    };
    assert!(ready, "no READY=1 from the agent:\n{}", agent.log());
    agent.wait_for_api("/liveness", Duration::from_secs(30)).await.expect("REST API");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !matches!(agent.get("/primary").await, Ok((200, _))) {
        assert!(Instant::now() < deadline, "one-member cluster never got a primary:\n{}", agent.log());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let ctl_config = dir
        .write_file("patronictl.yml", format!("scope: deb\netcd3:\n  hosts: {}\n", etcd.endpoint()), 0o644)
        .expect("patronictl config");
    let (ok, list) = run(Command::new(root.join("usr/bin/patronictl")).arg("-c").arg(&ctl_config).arg("list"));
    assert!(ok && list.contains("| deb1 ") && list.contains("| Leader "), "{list}");

    // systemctl stop with KillMode=process: SIGTERM to the agent alone; it stops PostgreSQL itself.
    let data_dir = agent.context().data_dir();
    agent.kill(Signal::SIGTERM).expect("SIGTERM");
    let status = agent.wait_exit(Duration::from_secs(stop_timeout)).await.expect("agent stops within TimeoutStopSec");
    assert!(status.success(), "agent exit status {status}:\n{}", agent.log());
    assert!(!data_dir.join("postmaster.pid").exists(), "PostgreSQL still running after the agent stopped");
}
