//! Free loopback ports that no other test in this process, or in another test process, is handed at the same time.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{IoContext, Result};

/// Ports handed out by this process. A port goes back to the kernel as soon as our probe listener closes, so without
/// this two servers started by one test binary could be given the same port before either binds it.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Per-port lock files held for the life of the process. nextest runs each test in its own process, so the set above
/// is not enough; the kernel releases an flock when the process dies, so a crashed test never leaks a reservation.
static HELD_LOCKS: Mutex<Vec<Flock<File>>> = Mutex::new(Vec::new());

const ATTEMPTS: usize = 200;

/// A free TCP port on 127.0.0.1, never handed out twice by one process nor concurrently to two processes that use
/// this kit.
///
/// Another program can still take the port between this call and the moment the server binds it; servers started
/// by the kit report that as a startup failure with their log.
///
/// # Panics
/// When no port can be found (the loopback interface is unusable); use [`try_free_port`] to get the error instead.
pub fn free_port() -> u16 {
    match try_free_port() {
        Ok(port) => port,
        Err(e) => panic!("no free loopback port: {e}"),
    }
}

/// Like [`free_port`], returning the error.
pub fn try_free_port() -> Result<u16> {
    for _ in 0..ATTEMPTS {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context(|| "binding a probe socket on 127.0.0.1:0".to_string())?;
        let port = listener.local_addr().context(|| "reading the probe socket address".to_string())?.port();
        drop(listener);
        {
            let mut handed = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
            if !handed.insert(port) {
                continue;
            }
        }
        match reserve_across_processes(port) {
            Ok(true) => return Ok(port),
            Ok(false) => continue,
            // Reservation is a courtesy to parallel test processes; a read-only /tmp must not stop the tests.
            Err(_) => return Ok(port),
        }
    }
    Err(crate::Error::Protocol {
        what: "the kernel".to_string(),
        detail: format!("{ATTEMPTS} probe ports were all already taken by this or another test process"),
    })
}

fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("patroni-testkit-ports")
}

/// Ok(false) when another live process holds the port.
fn reserve_across_processes(port: u16) -> Result<bool> {
    let dir = lock_dir();
    if !dir.exists() {
        std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
        // Shared by root and the unprivileged user a test re-runs as; sticky like /tmp.
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777));
    }
    let path = dir.join(format!("{port}.lock"));
    let file = match OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path) {
        Ok(f) => f,
        // A lock file created by root is read-only for the unprivileged user; flock works on a read-only fd.
        Err(_) => File::open(&path).context(|| format!("opening {}", path.display()))?,
    };
    let _ = file.set_permissions(std::fs::Permissions::from_mode(0o666));
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            HELD_LOCKS.lock().unwrap_or_else(PoisonError::into_inner).push(lock);
            Ok(true)
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(false),
        Err((_, errno)) => Err(crate::Error::Os { what: format!("locking {}", path.display()), source: errno }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_never_repeated_within_a_process() {
        let mut seen = BTreeSet::new();
        for _ in 0..50 {
            let port = free_port();
            assert_ne!(port, 0);
            assert!(seen.insert(port), "port {port} handed out twice");
        }
    }

    #[test]
    fn a_port_is_bindable_when_handed_out() {
        let port = free_port();
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }
}
