//! The HA loop's every-loop status line, and the deduplication Patroni does for it (see the module
//! documentation of `logging`).

use super::levels::INFO_NO;
use super::settings::Settings;
use super::HEARTBEAT_TARGET;

/// Logs the HA loop's status line (`no action. I am (pg1), the leader with the lock`) at INFO; see the module
/// documentation for how it is deduplicated.
pub fn heartbeat(status: &str) {
    tracing::info!(target: HEARTBEAT_TARGET, patroni_heartbeat = true, "{status}");
}

/// Logs the line that precedes the heartbeat (`Lock owner: pg1; I am pg2`) at INFO: shown at DEBUG, or when the
/// loop's next line is not a heartbeat; hidden at INFO when a heartbeat follows, as Patroni does.
pub fn heartbeat_detail(line: &str) {
    tracing::info!(target: HEARTBEAT_TARGET, patroni_heartbeat_detail = true, "{line}");
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Normal,
    Heartbeat,
    Detail,
}

/// What has been seen of the heartbeat since the last INFO-or-higher record.
#[derive(Default)]
pub(super) struct Dedup {
    held_detail: Option<String>,
    last_heartbeat: Option<String>,
}

impl Dedup {
    /// The lines to write for a record of `kind` formatted as `line`: none (dropped or held back), the line, or
    /// a held-back detail line and then the line.
    pub(super) fn admit(
        &mut self,
        settings: &Settings,
        kind: Kind,
        levelno: u8,
        line: String,
        message: &str,
    ) -> Option<(Option<String>, String)> {
        let quiet = settings.root >= INFO_NO;
        let mut held = None;
        match kind {
            Kind::Detail if quiet => {
                self.held_detail = Some(line);
                return None;
            }
            Kind::Heartbeat if quiet => {
                self.held_detail = None;
                if settings.dedup && self.last_heartbeat.as_deref() == Some(message) {
                    return None;
                }
                self.last_heartbeat = Some(message.to_owned());
            }
            Kind::Normal if quiet && levelno >= INFO_NO => {
                held = self.held_detail.take();
                self.last_heartbeat = None;
            }
            _ => {}
        }
        Some((held, line))
    }
}
