//! Rejoining after the history may have forked: whether a member must compare its WAL history with the primary's
//! before it streams, and what to do when they diverged (Patroni's `Rewind` states and `_handle_rewind_or_reinitialize`).
//!
//! A member that was a primary (demoted, or found stopped or crashed without the key) may hold WAL the new primary
//! never had; streaming would then fail for good. Before it follows anyone it asks for a [`Action::CheckDivergence`]
//! (the runtime compares timelines and positions, PostgreSQL running or not), and on a divergence asks for a
//! `pg_rewind` when `use_pg_rewind` is on and `pg_control` allows it, else for a fresh clone when
//! `remove_data_directory_on_diverged_timelines` is on. With neither setting nothing is checked, as in Patroni.
//!
//! Beyond Patroni: while the check cannot be made (the new primary still promoting or unreachable) the member runs
//! read-only following nobody instead of streaming unchecked, and checks again next loop.

use crate::action::{Action, Divergence, LogLevel, Outcome, Plan};
use crate::core::{Ha, Observation};
use crate::view::{Name, Settings};

/// Where the member stands with its history (Patroni's `REWIND_STATUS`, without the checkpoint bookkeeping).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum RewindState {
    /// Nothing to check.
    #[default]
    Initial,
    /// The history must be compared with the primary's before streaming from it.
    Check,
    /// It diverged; `rewind_possible` as `pg_control` said at the check.
    Need { rewind_possible: bool },
    /// Checked: the primary's history continues ours.
    NotNeeded,
    /// A `Rewind` we asked for runs.
    Rewinding,
    /// The last `pg_rewind` failed (Patroni does not check or rewind again by itself after that).
    Failed,
}

/// What [`Ha::rejoin`] decided.
pub(crate) enum Rejoin {
    /// Check, rewind or reinitialize now.
    Act(Plan),
    /// The check could not be made this loop: do not stream from the primary yet.
    Unchecked,
    /// Go on following as usual (with a line saying why a divergence is left alone, the first time).
    Follow(Option<(LogLevel, String)>),
}

impl RewindState {
    /// Whether anything is ever checked: only when something can be done about a divergence.
    pub(crate) fn allowed(s: &Settings) -> bool {
        s.use_pg_rewind || s.remove_data_directory_on_diverged_timelines
    }

    /// Patroni's `trigger_check_diverged_lsn`: a known divergence stays known until it is dealt with.
    pub(crate) fn trigger(&mut self, s: &Settings) {
        if Self::allowed(s) && !matches!(self, RewindState::Need { .. }) {
            *self = RewindState::Check;
        }
    }

    /// A rewind ran (or runs): the start that follows it is not checked again.
    pub(crate) fn executed(self) -> bool {
        matches!(self, RewindState::Rewinding | RewindState::Failed)
    }
}

/// Whose history to compare with: a member of this cluster (the leader), or `None` for the remote primary of a
/// standby cluster.
fn source_name(source: &Option<Name>) -> &str {
    source.as_deref().unwrap_or("the remote primary")
}

impl Ha {
    /// `_handle_rewind_or_reinitialize` against `source` (the leader, or `None`: the remote primary).
    pub(crate) fn rejoin(&mut self, s: &Settings, obs: &Observation, source: Option<Name>) -> Rejoin {
        if source.as_deref() == Some(s.name.as_str()) {
            return Rejoin::Follow(None);
        }
        let mut unchecked = false;
        let mut found_diverged = false;
        for o in &obs.outcomes {
            if let Outcome::Divergence { against, result } = o {
                if *against != source || self.rewind != RewindState::Check {
                    continue;
                }
                match *result {
                    Divergence::NotDiverged => self.rewind = RewindState::NotNeeded,
                    Divergence::Diverged { rewind_possible } => {
                        self.rewind = RewindState::Need { rewind_possible };
                        found_diverged = true;
                    }
                    // A remote primary that cannot be asked (a standby cluster restoring from an archive only) is
                    // not asked again every loop: the next start or demotion triggers another check.
                    Divergence::Unknown if source.is_none() => {
                        self.rewind = RewindState::Initial;
                        return Rejoin::Unchecked;
                    }
                    Divergence::Unknown => unchecked = true,
                }
            }
        }
        match self.rewind {
            RewindState::Check => {
                // Patroni also waits for the leader's member key to say `primary`; the check itself asks the
                // leader's PostgreSQL whether it is still in recovery, which is what matters, and works while the
                // leader's agent is slow to publish (or frozen) — the member key alone held a demoted primary back
                // until that key expired.
                if unchecked {
                    return Rejoin::Unchecked;
                }
                Rejoin::Act(
                    Plan::status(format!("checking whether our history diverged from {}", source_name(&source)))
                        .with(Action::CheckDivergence { against: source })
                        .again(),
                )
            }
            RewindState::Need { rewind_possible } => {
                if s.use_pg_rewind && rewind_possible {
                    let plan = Plan::status(format!("running pg_rewind from {}", source_name(&source)))
                        .with(Action::Rewind { from: source });
                    self.rewind = RewindState::Rewinding;
                    return Rejoin::Act(plan);
                }
                if s.remove_data_directory_on_diverged_timelines && source.is_some() {
                    self.rewind = RewindState::Initial;
                    return Rejoin::Act(
                        Plan::status("reinitializing due to diverged timelines")
                            .with(Action::Reinitialize { from: source }),
                    );
                }
                // Nothing we may do: streaming will fail and say why; the operator decides (Patroni does the same).
                let why = if !s.use_pg_rewind {
                    "use_pg_rewind is off"
                } else {
                    "neither wal_log_hints nor data checksums are enabled, pg_rewind cannot run"
                };
                Rejoin::Follow(
                    found_diverged.then(|| {
                        (LogLevel::Warning, format!("timelines diverged and pg_rewind cannot be used: {why}"))
                    }),
                )
            }
            _ => Rejoin::Follow(None),
        }
    }
}
