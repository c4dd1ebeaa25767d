//! Running as the unprivileged user when the tests run as root.
//!
//! PostgreSQL refuses to run as root and CI runs as root, so the kit starts PostgreSQL and agents as `postgres`
//! (override with [`USER_ENV`]), and a test that exercises library code which itself spawns PostgreSQL re-runs
//! itself as that user with [`run_unprivileged`].

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::dir::TestDir;
use crate::error::{IoContext, Result};

/// The user to run as when root; `postgres` by default.
pub const USER_ENV: &str = "PATRONI_TESTKIT_USER";
/// Set in the environment of a test re-run by [`run_unprivileged`].
pub const RERUN_ENV: &str = "PATRONI_TESTKIT_UNPRIVILEGED";
/// Seconds a re-run test may take before it is killed (default 600).
pub const RERUN_TIMEOUT_ENV: &str = "PATRONI_TESTKIT_UNPRIVILEGED_TIMEOUT";

#[derive(Debug, Clone)]
struct Account {
    uid: u32,
    gid: u32,
    name: String,
    home: PathBuf,
}

fn account() -> Option<&'static Account> {
    static ACCOUNT: OnceLock<Option<Account>> = OnceLock::new();
    ACCOUNT
        .get_or_init(|| {
            if !nix::unistd::geteuid().is_root() {
                return None;
            }
            let name = std::env::var(USER_ENV).unwrap_or_else(|_| "postgres".to_string());
            let user = nix::unistd::User::from_name(&name).ok().flatten()?;
            Some(Account { uid: user.uid.as_raw(), gid: user.gid.as_raw(), name, home: user.dir })
        })
        .as_ref()
}

/// True when the effective user is root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `(uid, gid)` of the user servers run as, when running as root and that user exists; None when not root (servers
/// then simply run as the current user) or when the user is missing.
pub fn unprivileged_user() -> Option<(u32, u32)> {
    account().map(|a| (a.uid, a.gid))
}

/// Runs a [`Command`](std::process::Command) or [`tokio::process::Command`] as the unprivileged user when root
/// (with its `HOME`, `USER` and `LOGNAME`), and in every case kills the child when the thread that spawned it dies,
/// so a test killed by a timeout leaves no server behind.
///
/// The parent-death signal is tied to the spawning *thread*: spawn long-lived servers from the test's own thread
/// or a runtime worker, never from a short-lived thread such as `spawn_blocking`.
pub trait UnprivilegedCommand {
    fn unprivileged(&mut self) -> &mut Self;
    /// Only the kill-with-parent part: for processes that should keep the current user (etcd).
    fn die_with_parent(&mut self) -> &mut Self;
}

impl UnprivilegedCommand for std::process::Command {
    fn unprivileged(&mut self) -> &mut Self {
        if let Some(a) = account() {
            self.uid(a.uid).gid(a.gid).env("HOME", &a.home).env("USER", &a.name).env("LOGNAME", &a.name);
        }
        self.die_with_parent()
    }

    fn die_with_parent(&mut self) -> &mut Self {
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent. std runs pre_exec closures after
        // setuid/setgid, which matters: changing credentials clears the parent-death signal.
        unsafe {
            self.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        }
    }
}

impl UnprivilegedCommand for tokio::process::Command {
    fn unprivileged(&mut self) -> &mut Self {
        if let Some(a) = account() {
            self.uid(a.uid).gid(a.gid).env("HOME", &a.home).env("USER", &a.name).env("LOGNAME", &a.name);
        }
        self.die_with_parent()
    }

    fn die_with_parent(&mut self) -> &mut Self {
        // SAFETY: as for std::process::Command above.
        unsafe {
            self.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        }
    }
}

/// Copies (or hard-links, when that keeps it executable) `executable` into `dir` with mode 755 so the unprivileged
/// user can run it even when the build tree is under a directory it cannot enter (CI clones under /root).
pub fn stage_executable(executable: &Path, dir: &TestDir) -> Result<PathBuf> {
    stage_executable_in(executable, dir.path())
}

/// [`stage_executable`] into any directory the unprivileged user can reach (e.g. a subdirectory of a [`TestDir`],
/// when two executables of the same name must live side by side).
pub fn stage_executable_in(executable: &Path, dir: &Path) -> Result<PathBuf> {
    let name = executable.file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("executable"));
    let target = dir.join(&name);
    let mode = std::fs::metadata(executable).context(|| format!("stat {}", executable.display()))?.permissions().mode();
    // A hard link is instant for a 100 MB test binary, but shares the mode, so only when others may execute it.
    let linked = mode & 0o005 == 0o005 && std::fs::hard_link(executable, &target).is_ok();
    if !linked {
        std::fs::copy(executable, &target)
            .context(|| format!("copying {} to {}", executable.display(), target.display()))?;
        crate::dir::set_mode(&target, 0o755)?;
    }
    Ok(target)
}

/// Makes the calling test run as the unprivileged user.
///
/// When the process runs as root, copies the current test executable into a temp dir the user can reach, runs
/// exactly `test_name` in it as that user (`--exact <test_name> --nocapture --test-threads=1`, with [`RERUN_ENV`]
/// set), forwards its output, panics if it failed or matched no test, and returns `false`: the caller returns at
/// once. When not root (including inside the re-run), returns `true` and the caller proceeds.
///
/// `test_name` is the name libtest prints (`cargo test -- --list`): the function path inside the test binary,
/// without the crate name.
/// - integration test `tests/pg.rs`, `#[tokio::test] async fn starts()` at top level: `"starts"`;
///   in `mod replica { ... }` there: `"replica::starts"`;
/// - unit test in `src/process.rs`, `mod tests { fn spawns() }`: `"process::tests::spawns"`.
///
/// The re-run's working directory is the temp dir (the package dir may be unreachable for the user), so a test
/// that reads fixtures must locate them by absolute path, and they must be readable by the user.
///
/// ```no_run
/// #[tokio::test]
/// async fn promote_works() {
///     if !patroni_testkit::run_unprivileged("promote_works") {
///         return;
///     }
///     assert!(!patroni_testkit::is_root());
///     // ... library code that runs initdb/pg_ctl directly ...
/// }
/// ```
///
/// # Panics
/// When root and the user does not exist, when the re-run cannot be started, fails, runs no test, or exceeds
/// [`RERUN_TIMEOUT_ENV`] seconds (default 600): this is a test helper and a panic is the test failing.
pub fn run_unprivileged(test_name: &str) -> bool {
    if !is_root() {
        return true;
    }
    if std::env::var_os(RERUN_ENV).is_some() {
        panic!("run_unprivileged: re-run of {test_name} still has euid 0; refusing to recurse");
    }
    if let Some(thread) = std::thread::current().name() {
        // libtest names each test's thread after the test: catch a wrong name before a confusing "0 tests".
        if thread != "main" && !thread.starts_with("tokio-") && thread != test_name {
            panic!("run_unprivileged(\"{test_name}\") is called from test `{thread}`: pass \"{thread}\"");
        }
    }
    let Some(account) = account() else {
        let user = std::env::var(USER_ENV).unwrap_or_else(|_| "postgres".to_string());
        panic!("running as root but user `{user}` does not exist (set {USER_ENV} to another unprivileged user)");
    };
    match rerun(test_name, account) {
        Ok(()) => false,
        Err(message) => panic!("{message}"),
    }
}

fn rerun(test_name: &str, account: &Account) -> std::result::Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("run_unprivileged: locating the test binary: {e}"))?;
    let dir = TestDir::with_prefix("patroni-rerun-").map_err(|e| format!("run_unprivileged: {e}"))?;
    let staged = stage_executable(&exe, &dir).map_err(|e| format!("run_unprivileged: {e}"))?;
    let timeout = std::env::var(RERUN_TIMEOUT_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(600));

    let mut cmd = std::process::Command::new(&staged);
    // --include-ignored: an #[ignore]d test run on purpose must run in the re-run too; --exact keeps it to one.
    cmd.args(["--exact", test_name, "--include-ignored", "--nocapture", "--test-threads=1"])
        .env(RERUN_ENV, "1")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .unprivileged();
    let mut child =
        cmd.spawn().map_err(|e| format!("run_unprivileged: starting {} as {}: {e}", staged.display(), account.name))?;

    // Forwarded through print!/eprint! so libtest captures it like the test's own output.
    let user = account.name.clone();
    let stdout = child.stdout.take().map(|out| {
        std::thread::spawn(move || {
            let mut seen = String::new();
            for line in BufReader::new(out).lines().map_while(std::result::Result::ok) {
                println!("[as {user}] {line}");
                seen.push_str(&line);
                seen.push('\n');
            }
            seen
        })
    });
    let stderr = child.stderr.take().map(|mut err| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            eprint!("{}", String::from_utf8_lossy(&buf));
        })
    });

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("run_unprivileged: {test_name} did not finish within {timeout:?}; killed"));
            }
            Err(e) => return Err(format!("run_unprivileged: waiting for {test_name}: {e}")),
        }
    };
    let seen = stdout.and_then(|t| t.join().ok()).unwrap_or_default();
    if let Some(t) = stderr {
        let _ = t.join();
    }
    if !status.success() {
        return Err(format!("{test_name} failed as user {} ({status})", account.name));
    }
    if !seen.contains("test result: ok. 1 passed") {
        return Err(format!(
            "run_unprivileged(\"{test_name}\") ran no test as {}: the name must be the one `cargo test -- --list` \
             prints (e.g. `module::tests::name` for unit tests)",
            account.name
        ));
    }
    Ok(())
}
