//! `run_unprivileged` re-runs a test as the unprivileged user when root.

use patroni_testkit::{is_root, run_unprivileged, unprivileged_user, TestDir};

#[test]
fn runs_as_unprivileged_user() {
    let was_root = is_root();
    if !run_unprivileged("runs_as_unprivileged_user") {
        assert!(was_root);
        return;
    }
    assert_ne!(nix::unistd::geteuid().as_raw(), 0, "the guard must not let root through");
    // The re-run can create servers' dirs and files on its own.
    let dir = TestDir::new().unwrap();
    let path = dir.write_file("hello", "from the unprivileged user", 0o600).unwrap();
    assert_eq!(std::fs::read_to_string(path).unwrap(), "from the unprivileged user");
    // Inside the re-run nobody is root, so nothing is chowned.
    assert_eq!(unprivileged_user(), None);
}

mod nested {
    #[tokio::test]
    async fn module_paths_work_and_async_tests_too() {
        if !patroni_testkit::run_unprivileged("nested::module_paths_work_and_async_tests_too") {
            return;
        }
        assert!(!patroni_testkit::is_root());
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

#[test]
#[should_panic(expected = "run_unprivileged(\"no_such_test\")")]
fn a_wrong_name_is_caught() {
    if !is_root() {
        // Not root: the guard proceeds without checking; make the expectation hold anyway.
        panic!("run_unprivileged(\"no_such_test\") is not checked when not root");
    }
    run_unprivileged("no_such_test");
}
