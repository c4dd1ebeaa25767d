//! The HA loop's every-loop status line, and the deduplication Patroni does for it (see the module
//! documentation of `logging`).

use super::levels::INFO_NO;
use super::settings::LogSettings;
use super::HEARTBEAT_TARGET;

/// Logs the HA loop's status line (`no action. I am (pg1), the leader with the lock`) at INFO; see the module
/// documentation for how it is deduplicated.
pub fn heartbeat(status: &str) {
    tracing::info!(target: HEARTBEAT_TARGET, patroni_heartbeat = true, "{status}");
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Normal,
    Heartbeat,
}

/// The heartbeat last written, until an INFO-or-higher record comes in between.
#[derive(Default)]
pub(super) struct Dedup {
    last_heartbeat: Option<String>,
}

impl Dedup {
    /// Whether a record of `kind` whose message is `message` is written.
    pub(super) fn admit(&mut self, settings: &LogSettings, kind: Kind, levelno: u8, message: &str) -> bool {
        let quiet = settings.root >= INFO_NO;
        match kind {
            Kind::Heartbeat if quiet => {
                if settings.dedup && self.last_heartbeat.as_deref() == Some(message) {
                    return false;
                }
                self.last_heartbeat = Some(message.to_owned());
            }
            Kind::Normal if quiet && levelno >= INFO_NO => self.last_heartbeat = None,
            _ => {}
        }
        true
    }
}
