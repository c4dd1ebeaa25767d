//! The completions and man pages the Debian package installs (`examples/patronictl_assets.rs`), and click's
//! completion variable answered by the binary itself.

#[path = "../examples/patronictl_assets.rs"]
#[allow(dead_code)]
mod assets;

use std::process::Command;

#[test]
fn completions_and_man_pages_cover_every_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = assets::write_assets(dir.path()).expect("assets written");
    let names: Vec<String> =
        files.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
    for expected in ["patronictl.bash", "_patronictl", "patronictl.fish", "patronictl.1", "patronictl-list.1"] {
        assert!(names.iter().any(|n| n == expected), "{expected} not among {names:?}");
    }
    let page = std::fs::read_to_string(dir.path().join("man/patronictl.1")).expect("patronictl.1");
    assert!(page.starts_with(".ie"), "roff expected: {}", &page[..page.len().min(200)]);
    for command in ["switchover", "failover", "edit\\-config", "list"] {
        assert!(page.contains(command), "patronictl.1 does not name {command}");
    }
    let switchover = std::fs::read_to_string(dir.path().join("man/patronictl-switchover.1")).expect("switchover page");
    assert!(switchover.contains("candidate"), "{switchover}");
}

#[test]
fn click_completion_variable_prints_a_script() {
    let out = Command::new(env!("CARGO_BIN_EXE_patronictl"))
        .env("_PATRONICTL_COMPLETE", "bash_source")
        .output()
        .expect("patronictl runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("complete ") && text.contains("switchover"), "{text}");

    let bad = Command::new(env!("CARGO_BIN_EXE_patronictl"))
        .env("_PATRONICTL_COMPLETE", "bash_complete")
        .output()
        .expect("patronictl runs");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bash_source"));
}
