//! The agent's watchdog: the device (Linux or Patroni's `testing` driver) and, when no device is active, the
//! guardian. The HA core decides when to arm and disarm ([`patroni_ha::watchdog`]); this carries it out, keeps it
//! alive after each successful leader-key refresh, and logs what Patroni logs.

pub mod device;

use std::path::PathBuf;

use patroni_config::{Config, WatchdogMode};
use patroni_ha::WatchdogState;
use tracing::{debug, error, info, warn};

use crate::guardian::{boottime_ms, GuardianHandle};
use device::{LinuxDevice, TestingDevice, WatchdogDevice};

/// The `watchdog` section as it matters here.
#[derive(Clone, Debug, PartialEq)]
struct WdConfig {
    mode: WatchdogMode,
    driver: String,
    device: String,
    guardian: bool,
}

impl WdConfig {
    fn from(config: &Config) -> WdConfig {
        let w = config.watchdog.clone().unwrap_or_default();
        WdConfig {
            mode: w.mode.unwrap_or_default(),
            driver: w.driver.clone().unwrap_or_else(|| "default".into()),
            device: w.device().to_owned(),
            guardian: w.guardian(),
        }
    }

    fn device(&self) -> Option<Box<dyn WatchdogDevice>> {
        match (self.mode, self.driver.as_str()) {
            (WatchdogMode::Off, _) => None,
            (_, "testing") => Some(Box::new(TestingDevice::new(&self.device))),
            (_, "default") if cfg!(target_os = "linux") => Some(Box::new(LinuxDevice::new(&self.device))),
            _ => None,
        }
    }
}

pub struct Watchdog {
    config: WdConfig,
    /// The device of the configuration (`None`: none on this platform, or mode off).
    device: Option<Box<dyn WatchdogDevice>>,
    active: bool,
    timeout: Option<i64>,
    /// The guardian's deadline after a refresh starts (ms, [`patroni_ha::watchdog::guardian_timeout_ms`]).
    guardian_timeout: u64,
    loop_wait: i64,
    /// Start of the last successful leader-key refresh (CLOCK_BOOTTIME ms): the guardian's deadline counts from it.
    last_renewal: Option<i64>,
    guardian: Option<GuardianHandle>,
}

impl Watchdog {
    /// `data_dir` and `pg_ctl` are what the guardian needs to stop PostgreSQL (no guardian without them).
    pub fn new(config: &Config, data_dir: Option<PathBuf>, pg_ctl: Option<PathBuf>) -> Watchdog {
        let config_wd = WdConfig::from(config);
        let guardian = match (data_dir, pg_ctl) {
            (Some(d), Some(p)) => Some(GuardianHandle::new(d, p)),
            _ => None,
        };
        Watchdog {
            device: config_wd.device(),
            config: config_wd,
            active: false,
            timeout: None,
            guardian_timeout: 0,
            loop_wait: 10,
            last_renewal: None,
            guardian,
        }
    }

    /// A `required` watchdog on a platform without one cannot be satisfied at all: Patroni refuses to start.
    pub fn unsupported_but_required(&self) -> bool {
        self.config.mode == WatchdogMode::Required && self.device.is_none()
    }

    /// A new local configuration. Turning the watchdog off applies at once; other changes when it is not active.
    pub fn reload(&mut self, config: &Config) {
        let new = WdConfig::from(config);
        if new == self.config {
            return;
        }
        if new.mode == WatchdogMode::Off && self.device_open() {
            self.close_device();
        }
        if !self.active || new.mode == WatchdogMode::Off {
            self.device = new.device();
        }
        if !new.guardian {
            if let Some(g) = &mut self.guardian {
                g.disarm();
            }
        }
        self.config = new;
    }

    fn device_open(&self) -> bool {
        self.device.as_ref().is_some_and(|d| d.is_open())
    }

    /// For the HA core.
    pub fn state(&self) -> WatchdogState {
        WatchdogState {
            active: self.active,
            timeout: self.timeout,
            usable: self.device.as_ref().is_some_and(|d| d.is_healthy()),
        }
    }

    /// `/patroni`'s `watchdog_failed`: a required watchdog that is not usable.
    pub fn failed(&self) -> bool {
        self.config.mode == WatchdogMode::Required && !self.state().usable
    }

    /// Activates with `timeout` seconds (or changes the timeout of the active watchdog). `false` only when a
    /// `required` watchdog cannot be activated safely.
    pub fn arm(&mut self, timeout: i64, guardian_timeout_ms: u64, loop_wait: i64, ttl: i64) -> bool {
        self.loop_wait = loop_wait;
        self.guardian_timeout = guardian_timeout_ms;
        let slack = timeout - loop_wait;
        if self.active && self.device_open() {
            if let Some(d) = &mut self.device {
                match d.set_timeout(timeout).and_then(|()| d.get_timeout()) {
                    Ok(t) => info!("{} updated with {t} second timeout, timing slack {slack} seconds", d.describe()),
                    Err(e) => error!("Error while sending keepalive: {e}"),
                }
            }
            self.timeout = Some(timeout);
            self.renew_guardian();
            return true;
        }
        let required = self.config.mode == WatchdogMode::Required;
        let mut actual: Option<i64> = None;
        if self.device.is_some() && slack < 0 {
            warn!("Watchdog not supported because leader TTL {ttl} is less than 2x loop_wait {loop_wait}");
        } else if let Some(d) = &mut self.device {
            let opened = d.open().and_then(|()| {
                if d.can_set_timeout() {
                    d.set_timeout(timeout)?;
                }
                d.get_timeout()
            });
            match opened {
                Ok(t) if t < loop_wait => {
                    error!("loop_wait of {loop_wait} seconds is too long for watchdog {t} second timeout");
                    if d.can_be_disabled() {
                        info!("Disabling watchdog due to unsafe timeout.");
                        let _ = d.close();
                    } else {
                        actual = Some(t);
                    }
                }
                Ok(t) => actual = Some(t),
                Err(e) => {
                    let line = format!("Could not activate {}: {e}", d.describe());
                    if required {
                        warn!("{line}");
                    } else {
                        debug!("{line}");
                    }
                    let _ = d.close();
                }
            }
            if d.is_open() && !d.can_be_disabled() {
                warn!(
                    "Watchdog implementation can't be disabled. Watchdog will trigger after Patroni loses leader key."
                );
            }
        }
        let running = self.device_open();
        if !running || actual.is_some_and(|t| t > timeout) {
            if required {
                match actual.filter(|_| running) {
                    None => error!("Configuration requires watchdog, but watchdog could not be configured."),
                    Some(t) => error!(
                        "Configuration requires watchdog, but a safe watchdog timeout {timeout} could not be configured. Watchdog timeout is {t}."
                    ),
                }
                self.close_device();
                return false;
            }
            if let Some(t) = actual.filter(|_| running) {
                warn!("Watchdog timeout {t} seconds does not ensure safe termination within {timeout} seconds");
            }
        }
        if running {
            if let Some(d) = &mut self.device {
                info!(
                    "{} activated with {} second timeout, timing slack {slack} seconds",
                    d.describe(),
                    actual.unwrap_or(timeout)
                );
            }
        }
        self.active = true;
        self.timeout = Some(timeout);
        if !running && self.config.guardian {
            let start = self.last_renewal.unwrap_or_else(boottime_ms);
            let deadline = start + i64::try_from(self.guardian_timeout).unwrap_or(i64::MAX);
            if let Some(g) = &mut self.guardian {
                g.renew(deadline);
            }
        }
        true
    }

    /// A new deadline for an armed guardian, from the last renewal.
    fn renew_guardian(&mut self) {
        let Some(start) = self.last_renewal else { return };
        let deadline = start + i64::try_from(self.guardian_timeout).unwrap_or(i64::MAX);
        if let Some(g) = self.guardian.as_mut().filter(|g| g.is_armed()) {
            g.renew(deadline);
        }
    }

    /// The leader key was just renewed (or a failsafe confirmation stands in for it); `started` is when the
    /// request went out (CLOCK_BOOTTIME ms).
    pub fn renewed(&mut self, started: i64, guardian_timeout_ms: u64) {
        self.last_renewal = Some(started);
        self.guardian_timeout = guardian_timeout_ms;
        if !self.active {
            return;
        }
        if let Some(d) = self.device.as_mut().filter(|d| d.is_open()) {
            if let Err(e) = d.keepalive() {
                error!("Error while sending keepalive: {e}");
            }
        }
        self.renew_guardian();
    }

    fn close_device(&mut self) {
        if let Some(d) = self.device.as_mut().filter(|d| d.is_open()) {
            if !d.can_be_disabled() {
                let _ = d.keepalive();
                let t = d.get_timeout().unwrap_or(0);
                warn!("Watchdog implementation can't be disabled. System will reboot after {t} seconds when watchdog times out.");
            }
            if let Err(e) = d.close() {
                error!("Error while disabling watchdog: {e}");
            }
        }
    }

    /// Not the leading primary any more: close the device with the magic character, disarm the guardian.
    pub fn disarm(&mut self) {
        self.close_device();
        if let Some(g) = &mut self.guardian {
            g.disarm();
        }
        self.active = false;
        self.timeout = None;
    }
}
