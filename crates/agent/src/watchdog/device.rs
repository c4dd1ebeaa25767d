//! Watchdog devices: the Linux kernel interface (`/dev/watchdog`, driven by ioctls) and Patroni's `testing` driver
//! (a named pipe that receives the same protocol as plain writes: `Ctimeout=N\n` for a timeout, `1` for a
//! keepalive, `V` for the magic close), so watchdog behaviour can be tested without a kernel device.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// A watchdog operation that failed, worded as Patroni words it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DeviceError(pub String);

/// A watchdog device. Once opened it must be kept alive, or it fires when its timeout passes.
pub trait WatchdogDevice: Send {
    fn open(&mut self) -> Result<(), DeviceError>;
    /// Closes with the magic character, so that closing does not fire the watchdog.
    fn close(&mut self) -> Result<(), DeviceError>;
    fn keepalive(&mut self) -> Result<(), DeviceError>;
    fn set_timeout(&mut self, secs: i64) -> Result<(), DeviceError>;
    fn get_timeout(&mut self) -> Result<i64, DeviceError>;
    /// Whether the timeout can be set (`WDIOF_SETTIMEOUT`).
    fn can_set_timeout(&mut self) -> bool;
    /// Whether closing disarms it (`WDIOF_MAGICCLOSE`); some devices run on forever once opened.
    fn can_be_disabled(&mut self) -> bool;
    fn is_open(&self) -> bool;
    /// The device exists and can be opened for writing.
    fn is_healthy(&self) -> bool;
    /// The line Patroni logs for it: the identity the driver reports, its firmware and path.
    fn describe(&mut self) -> String;
}

const DEFAULT_DEVICE: &str = "/dev/watchdog";
const WDIOF_SETTIMEOUT: u32 = 0x0080;
const WDIOF_MAGICCLOSE: u32 = 0x0100;

/// `struct watchdog_info` of `linux/watchdog.h`.
#[repr(C)]
#[derive(Default)]
pub struct WatchdogInfo {
    options: u32,
    firmware_version: u32,
    identity: [u8; 32],
}

nix::ioctl_read!(wdioc_getsupport, b'W', 0, WatchdogInfo);
nix::ioctl_read!(wdioc_keepalive, b'W', 5, libc::c_int);
nix::ioctl_readwrite!(wdioc_settimeout, b'W', 6, libc::c_int);
nix::ioctl_read!(wdioc_gettimeout, b'W', 7, libc::c_int);

/// What `WDIOC_GETSUPPORT` says about a device.
#[derive(Clone, Debug)]
struct Support {
    options: u32,
    version: u32,
    identity: String,
}

/// A Linux watchdog device (`watchdog.device`, default `/dev/watchdog`).
pub struct LinuxDevice {
    path: String,
    file: Option<File>,
    support: Option<Support>,
}

impl LinuxDevice {
    pub fn new(path: &str) -> LinuxDevice {
        LinuxDevice { path: path.to_owned(), file: None, support: None }
    }

    fn fd(&self) -> Result<i32, DeviceError> {
        self.file.as_ref().map(AsRawFd::as_raw_fd).ok_or_else(|| DeviceError("Watchdog device is closed".into()))
    }

    fn support(&mut self) -> Result<Support, DeviceError> {
        if let Some(s) = &self.support {
            return Ok(s.clone());
        }
        let fd = self.fd()?;
        let mut info = WatchdogInfo::default();
        // SAFETY: `fd` is an open descriptor owned by `self.file`; `info` is a valid `watchdog_info` to fill in.
        unsafe { wdioc_getsupport(fd, &mut info) }
            .map_err(|e| DeviceError(format!("Could not get information about watchdog device: {e}")))?;
        let end = info.identity.iter().position(|b| *b == 0).unwrap_or(info.identity.len());
        let support = Support {
            options: info.options,
            version: info.firmware_version,
            identity: String::from_utf8_lossy(&info.identity[..end]).into_owned(),
        };
        self.support = Some(support.clone());
        Ok(support)
    }
}

impl WatchdogDevice for LinuxDevice {
    fn open(&mut self) -> Result<(), DeviceError> {
        let file = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(|e| DeviceError(format!("Can't open watchdog device: {e}")))?;
        self.file = Some(file);
        Ok(())
    }

    fn close(&mut self) -> Result<(), DeviceError> {
        if let Some(mut f) = self.file.take() {
            f.write_all(b"V").map_err(|e| DeviceError(format!("Error while closing {}: {e}", self.path)))?;
        }
        Ok(())
    }

    fn keepalive(&mut self) -> Result<(), DeviceError> {
        let fd = self.fd()?;
        let mut dummy: libc::c_int = 0;
        // SAFETY: `fd` is open; WDIOC_KEEPALIVE reads (ignores) one int.
        unsafe { wdioc_keepalive(fd, &mut dummy) }
            .map(|_| ())
            .map_err(|e| DeviceError(format!("Could not send watchdog keepalive: {e}")))
    }

    fn set_timeout(&mut self, secs: i64) -> Result<(), DeviceError> {
        if !(1..0xFFFF).contains(&secs) {
            return Err(DeviceError(format!("Invalid timeout {secs}. Supported values are between 1 and 65535")));
        }
        let fd = self.fd()?;
        let mut t = libc::c_int::try_from(secs).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fd` is open; WDIOC_SETTIMEOUT reads and writes back one int.
        unsafe { wdioc_settimeout(fd, &mut t) }
            .map(|_| ())
            .map_err(|e| DeviceError(format!("Could not set timeout on watchdog device: {e}")))
    }

    fn get_timeout(&mut self) -> Result<i64, DeviceError> {
        let fd = self.fd()?;
        let mut t: libc::c_int = 0;
        // SAFETY: `fd` is open; WDIOC_GETTIMEOUT writes one int.
        unsafe { wdioc_gettimeout(fd, &mut t) }
            .map_err(|e| DeviceError(format!("Could not get timeout on watchdog device: {e}")))?;
        Ok(i64::from(t))
    }

    fn can_set_timeout(&mut self) -> bool {
        self.support().is_ok_and(|s| s.options & WDIOF_SETTIMEOUT != 0)
    }

    fn can_be_disabled(&mut self) -> bool {
        self.support().is_ok_and(|s| s.options & WDIOF_MAGICCLOSE != 0)
    }

    fn is_open(&self) -> bool {
        self.file.is_some()
    }

    fn is_healthy(&self) -> bool {
        nix::unistd::access(self.path.as_str(), nix::unistd::AccessFlags::W_OK).is_ok()
    }

    fn describe(&mut self) -> String {
        let at = if self.path == DEFAULT_DEVICE { String::new() } else { format!(" at {}", self.path) };
        if self.file.is_some() {
            if let Ok(s) = self.support() {
                let ver = if s.version != 0 { format!(" (firmware {})", s.version) } else { String::new() };
                return format!("{}{ver}{at}", s.identity);
            }
        }
        format!("Linux watchdog device{at}")
    }
}

/// Patroni's `testing` driver: a named pipe read by a test harness, which sees the timeout as `Ctimeout=N\n`.
pub struct TestingDevice {
    path: String,
    file: Option<File>,
    timeout: i64,
}

impl TestingDevice {
    pub fn new(path: &str) -> TestingDevice {
        TestingDevice { path: path.to_owned(), file: None, timeout: 60 }
    }

    fn write(&mut self, bytes: &[u8], what: &str) -> Result<(), DeviceError> {
        let f = self.file.as_mut().ok_or_else(|| DeviceError("Watchdog device is closed".into()))?;
        f.write_all(bytes).map_err(|e| DeviceError(format!("Could not {what}: {e}")))
    }
}

impl WatchdogDevice for TestingDevice {
    fn open(&mut self) -> Result<(), DeviceError> {
        // Non-blocking: a pipe nobody reads makes the open fail at once instead of hanging the loop.
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path)
            .map_err(|e| DeviceError(format!("Can't open watchdog device: {e}")))?;
        let fd = file.as_raw_fd();
        let flags = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETFL)
            .map_err(|e| DeviceError(format!("Can't open watchdog device: {e}")))?;
        let blocking = nix::fcntl::OFlag::from_bits_truncate(flags) & !nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(blocking))
            .map_err(|e| DeviceError(format!("Can't open watchdog device: {e}")))?;
        let _ = fd;
        self.file = Some(file);
        Ok(())
    }

    fn close(&mut self) -> Result<(), DeviceError> {
        if self.file.is_some() {
            let r = self.write(b"V", "close the watchdog device");
            self.file = None;
            r?;
        }
        Ok(())
    }

    fn keepalive(&mut self) -> Result<(), DeviceError> {
        self.write(b"1", "send watchdog keepalive")
    }

    fn set_timeout(&mut self, secs: i64) -> Result<(), DeviceError> {
        self.write(format!("Ctimeout={secs}\n").as_bytes(), "set timeout on watchdog device")?;
        self.timeout = secs;
        Ok(())
    }

    fn get_timeout(&mut self) -> Result<i64, DeviceError> {
        Ok(self.timeout)
    }

    fn can_set_timeout(&mut self) -> bool {
        true
    }

    fn can_be_disabled(&mut self) -> bool {
        true
    }

    fn is_open(&self) -> bool {
        self.file.is_some()
    }

    fn is_healthy(&self) -> bool {
        nix::unistd::access(self.path.as_str(), nix::unistd::AccessFlags::W_OK).is_ok()
    }

    fn describe(&mut self) -> String {
        let at = if self.path == DEFAULT_DEVICE { String::new() } else { format!(" at {}", self.path) };
        format!("Watchdog test harness{at}")
    }
}
