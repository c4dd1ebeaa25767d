//! The README's "start a cluster" command, run as written (with its test switch to stop once ready).

use std::process::Command;
use std::time::Duration;

#[test]
fn readme_demo_reaches_one_primary_and_two_streaming_replicas() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    assert!(readme.contains("bash scripts/demo.sh"), "the README no longer gives the demo command");
    let dir = patroni_testkit::TestDir::new().unwrap();
    // Ports reserved by the test kit, so the demo collides neither with other tests nor with a hand-run demo.
    let ports = || (0..3).map(|_| patroni_testkit::free_port().to_string()).collect::<Vec<_>>().join(" ");
    let mut child = Command::new("bash")
        .arg("scripts/demo.sh")
        .current_dir(&repo)
        .env("DEMO_EXIT_WHEN_READY", "1")
        .env("DEMO_READY_TIMEOUT", "300")
        .env("DEMO_DIR", dir.join("demo"))
        .env("DEMO_PG_PORTS", ports())
        .env("DEMO_API_PORTS", ports())
        .env("DEMO_RAFT_PORTS", ports())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo did not finish within 600 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert_eq!(stdout.matches("| Leader ").count(), 1, "{stdout}");
    assert_eq!(stdout.matches("| Replica | streaming").count(), 2, "{stdout}");
    assert!(stdout.contains("stopped; logs and data are in"), "{stdout}");
}
