//! When the watchdog (and its software sibling, the guardian) must be armed.
//!
//! Both enforce the same promise: a primary whose agent stops renewing the leader key is stopped before the key can
//! expire and a replica can legally promote. The kernel watchdog resets the machine `timeout` seconds after the last
//! keepalive; the guardian (a separate process of the agent's binary) stops PostgreSQL at the same instant. The
//! runtime keeps either alive right after each successful leader-key refresh (and each failsafe confirmation, which
//! stands in for one while the DCS is away); this module only decides when they must be armed, with which timeout,
//! and when they must be disarmed.
//!
//! Patroni's rules: armed before promoting and every loop the leader runs as primary (re-armed when the timeout
//! changes with `ttl`); disarmed on pause, demotion, losing or releasing the key, and a read-only restart after a
//! crash — but, beyond Patroni, never while PostgreSQL runs as primary without being told to step down. In
//! `required` mode a failed activation refuses leadership: a replica gives the key back instead of promoting, a
//! running primary demotes.

use crate::action::{Action, DemoteMode, Outcome, Plan};
use crate::core::Observation;
use crate::view::{PgRole, Settings};

/// `watchdog.mode`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum WatchdogMode {
    /// No watchdog device is used.
    #[default]
    Off,
    /// A watchdog device is used when one can be activated.
    Automatic,
    /// Leadership requires an activated watchdog device.
    Required,
}

/// The watchdog as the runtime last left it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchdogState {
    /// Activated and not disarmed since (Patroni's `active`): the device (or, without one, the guardian) is kept
    /// alive after each refresh. Also true when `automatic` mode found no device: retrying every loop would only
    /// repeat the same failure.
    pub active: bool,
    /// The timeout (seconds) the last activation asked for.
    pub timeout: Option<i64>,
    /// The device exists and can be opened for writing (Patroni's `is_healthy`): a `required` watchdog that is not
    /// keeps this member out of leader races.
    pub usable: bool,
}

/// Seconds between the last keepalive and the watchdog firing: `ttl - safety_margin`, or `ttl / 2` when the margin
/// is -1.
pub fn timeout(s: &Settings) -> i64 {
    let ttl = i64::try_from(s.ttl.0 / 1000).unwrap_or(i64::MAX);
    if s.watchdog_safety_margin == -1 {
        ttl / 2
    } else {
        ttl - s.watchdog_safety_margin
    }
}

/// Milliseconds between the start of the last successful refresh and the guardian stopping PostgreSQL.
///
/// Like the device, `safety_margin` before the key can expire; unlike a device (whose timeout Patroni's users set
/// and see), never so early that a healthy leader is fenced: a refresh may come `loop_wait` after the previous one
/// and take up to `retry_timeout`, so the margin is capped at `ttl - loop_wait - retry_timeout` (at least
/// `retry_timeout` when `loop_wait + 2 * retry_timeout <= ttl` holds, as the agent enforces).
pub fn guardian_timeout_ms(s: &Settings) -> u64 {
    let ttl = s.ttl.0;
    let margin = if s.watchdog_safety_margin == -1 {
        ttl / 2
    } else {
        u64::try_from(s.watchdog_safety_margin).unwrap_or(0).saturating_mul(1000)
    };
    let cap = ttl.saturating_sub(s.loop_wait.0).saturating_sub(s.retry_timeout.0);
    ttl - margin.min(cap).min(ttl)
}

impl Settings {
    /// Whether anything must be armed while leading: a watchdog device, or the guardian.
    fn fencing_wanted(&self) -> bool {
        self.watchdog_mode != WatchdogMode::Off || self.guardian
    }

    /// A `required` watchdog that cannot work: the device is missing or unwritable, or the timeout would leave less
    /// than `loop_wait` between keepalives (Patroni's negative timing slack).
    pub(crate) fn watchdog_unusable(&self, usable: bool) -> bool {
        let slack = timeout(self) - i64::try_from(self.loop_wait.0 / 1000).unwrap_or(i64::MAX);
        self.watchdog_mode == WatchdogMode::Required && (!usable || slack < 0)
    }
}

/// A `required` watchdog failed to activate on the previous plan, which therefore stopped before promoting (or
/// before going on as primary): give the leadership up. `None` when nothing failed or the key is not ours.
pub(crate) fn activation_failed(s: &Settings, obs: &Observation) -> Option<Plan> {
    let failed = obs.outcomes.contains(&Outcome::WatchdogArmed { ok: false });
    let ours = obs.cluster.as_ref().is_some_and(|c| c.leader.as_deref() == Some(s.name.as_str()));
    if !failed || !ours || s.pause || s.watchdog_mode != WatchdogMode::Required {
        return None;
    }
    let local = &obs.local;
    Some(if local.process.is_running() && local.role == PgRole::Primary {
        Plan::status("Demoting self because watchdog could not be activated")
            .with(Action::Demote { mode: DemoteMode::Immediate, follow: None })
    } else {
        Plan::status("Not promoting self because watchdog could not be activated")
            .with(Action::ReleaseLeader { lsn: local.lsn })
    })
}

/// Adds arming or disarming to a plan the decision table made. `held_lock`: whether we hold the key after it.
pub(crate) fn arm_or_disarm(s: &Settings, obs: &Observation, held_lock: bool, mut plan: Plan) -> Plan {
    let wd = &obs.local.watchdog;
    let has = |pred: fn(&Action) -> bool| plan.actions.iter().any(pred);
    let steps_down = has(|a| {
        matches!(
            a,
            Action::Demote { .. } | Action::ReleaseLeader { .. } | Action::StartReplica { .. } | Action::MarkDemoted
        )
    });
    let primary = obs.local.process.is_running() && obs.local.role == PgRole::Primary;
    // Beyond Patroni, a running primary without the key (a failsafe leader whose key expired while every member
    // confirmed it, now taking it back) stays armed, not kept alive, until it has the key again or steps down: its
    // agent may die in between, and the members that confirmed it promote once their hold ends (simulator,
    // `--failsafe`, 5 members, seed 3020: disarmed there, the agent killed, two primaries).
    if !s.fencing_wanted() || s.pause || steps_down || !(held_lock || primary) {
        if wd.active {
            // First: a later action of the plan may fail and end it, and a stale watchdog would reset the machine.
            plan.actions.insert(0, Action::DisarmWatchdog);
        }
        return plan;
    }
    if !held_lock {
        return plan;
    }
    let promotes = has(|a| matches!(a, Action::Promote));
    let refreshes = has(|a| matches!(a, Action::UpdateLeader { .. }));
    if !(promotes || primary && refreshes) {
        return plan;
    }
    let timeout = timeout(s);
    if wd.active && wd.timeout == Some(timeout) {
        return plan;
    }
    // Right after the refresh (the timer starts from a renewed key), and in any case before the promotion.
    let at = match plan.actions.iter().position(|a| matches!(a, Action::UpdateLeader { .. })) {
        Some(i) => i + 1,
        None => plan.actions.iter().position(|a| matches!(a, Action::Promote)).unwrap_or(plan.actions.len()),
    };
    plan.actions.insert(at, Action::ArmWatchdog { timeout });
    plan
}
