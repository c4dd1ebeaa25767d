//! Temporary directories the unprivileged user can use, removed on drop.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, IoContext, Result};
use crate::user::unprivileged_user;

/// Set to keep every [`TestDir`] after the test (for post-mortems); their paths are printed on drop.
pub const KEEP_DIRS_ENV: &str = "PATRONI_TESTKIT_KEEP_DIRS";

/// A temporary directory (mode 755) under the system temp dir, owned by the unprivileged user when the tests run
/// as root so servers running as that user can create files in it. Removed, with everything in it, on drop.
#[derive(Debug)]
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TestDir {
    pub fn new() -> Result<Self> {
        Self::with_prefix("patroni-test-")
    }

    pub fn with_prefix(prefix: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .context(|| format!("creating a temp dir in {}", std::env::temp_dir().display()))?;
        let path = dir.path().to_path_buf();
        set_mode(&path, 0o755)?;
        if let Some((uid, gid)) = unprivileged_user() {
            chown(&path, uid, gid)?;
            ensure_reachable(&path, uid, gid)?;
        }
        Ok(TestDir { dir: Some(dir), path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.path.join(relative)
    }

    /// Creates `relative` (and its parents) with `mode`, owned by the unprivileged user when root.
    pub fn create_dir(&self, relative: impl AsRef<Path>, mode: u32) -> Result<PathBuf> {
        let path = self.path.join(relative);
        std::fs::create_dir_all(&path).context(|| format!("creating {}", path.display()))?;
        set_mode(&path, mode)?;
        give_to_unprivileged(&path)?;
        Ok(path)
    }

    /// Writes `relative` with `mode`, owned by the unprivileged user when root (PostgreSQL insists on owning its
    /// key files, and configs must be readable by agents running as that user).
    pub fn write_file(&self, relative: impl AsRef<Path>, contents: impl AsRef<[u8]>, mode: u32) -> Result<PathBuf> {
        let path = self.path.join(relative);
        write_file(&path, contents.as_ref(), mode)?;
        Ok(path)
    }

    /// Keeps the directory on disk after drop and returns its path.
    pub fn keep(mut self) -> PathBuf {
        if let Some(dir) = self.dir.take() {
            // Ownership of the directory moves to the caller; it must not be removed.
            let _ = dir.keep();
        }
        self.path.clone()
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        // Code under test starts PostgreSQL in test dirs (pg_ctl detaches it): a failed test must not leave a
        // postmaster running on a deleted data directory.
        for data_dir in postmaster_dirs(&self.path) {
            crate::pg::kill_postmaster(&data_dir, Duration::from_secs(5));
        }
        if std::env::var_os(KEEP_DIRS_ENV).is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("patroni-testkit: keeping {}", dir.keep().display());
            }
        }
        // Otherwise tempfile's own Drop removes the tree.
    }
}

/// Directories at most two levels below `root` (and `root` itself) holding a `postmaster.pid`.
fn postmaster_dirs(root: &Path) -> Vec<PathBuf> {
    let children = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
            .unwrap_or_default()
    };
    let mut candidates = vec![root.to_path_buf()];
    for child in children(root) {
        candidates.extend(children(&child));
        candidates.push(child);
    }
    candidates.retain(|dir| dir.join("postmaster.pid").exists());
    candidates
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .context(|| format!("chmod {mode:o} {}", path.display()))
}

pub(crate) fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).context(|| format!("chown {uid}:{gid} {}", path.display()))
}

/// Hands `path` to the unprivileged user when running as root; a no-op otherwise.
pub fn give_to_unprivileged(path: &Path) -> Result<()> {
    match unprivileged_user() {
        Some((uid, gid)) => chown(path, uid, gid),
        None => Ok(()),
    }
}

/// Writes a file with `mode`, owned by the unprivileged user when running as root.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    std::fs::write(path, contents).context(|| format!("writing {}", path.display()))?;
    set_mode(path, mode)?;
    give_to_unprivileged(path)
}

/// Checks that `uid`/`gid` can traverse every directory on the way to `path` (by mode bits; ACLs are ignored).
/// CI clones under /root (mode 700), so this is where "permission denied" from a server is explained up front.
pub fn ensure_reachable(path: &Path, uid: u32, gid: u32) -> Result<()> {
    let parent_dirs = path.parent().map(Path::ancestors).into_iter().flatten();
    let mut dirs: Vec<&Path> = parent_dirs.collect();
    dirs.reverse();
    for dir in dirs {
        if dir.as_os_str().is_empty() {
            continue;
        }
        let meta = std::fs::metadata(dir).context(|| format!("stat {}", dir.display()))?;
        let mode = meta.mode();
        let can_enter = if meta.uid() == uid {
            mode & 0o100 != 0
        } else if meta.gid() == gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !can_enter {
            return Err(Error::NotReachable {
                path: path.to_path_buf(),
                uid,
                reason: format!(
                    "{} is mode {:o}, owner {}:{} (copy what the user needs into a TestDir, or set TMPDIR to a \
                     directory it can traverse)",
                    dir.display(),
                    mode & 0o7777,
                    meta.uid(),
                    meta.gid()
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_on_drop() {
        let dir = TestDir::new().unwrap();
        let path = dir.path().to_path_buf();
        dir.write_file("a", "x", 0o644).unwrap();
        assert!(path.join("a").exists());
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn owned_by_unprivileged_user_when_root() {
        let dir = TestDir::new().unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o755);
        if let Some((uid, gid)) = unprivileged_user() {
            assert_eq!((meta.uid(), meta.gid()), (uid, gid));
        }
    }

    #[test]
    fn unreachable_parent_is_named() {
        let dir = TestDir::new().unwrap();
        let locked = dir.create_dir("locked", 0o700).unwrap();
        let inner = locked.join("inner");
        // uid/gid that own nothing here, so only the "other" bits count.
        let err = ensure_reachable(&inner, 54_321, 54_321).unwrap_err().to_string();
        assert!(err.contains("locked"), "{err}");
        assert!(err.contains("700"), "{err}");
    }
}
