//! The loop protocol: after a plan's actions ran, whether the runtime steps the core again at once or sleeps.
//!
//! One cycle may take several rounds: a leader race fetches the peers, takes the key and promotes, each round
//! deciding on what the previous one did (`Plan::again`). A failed leader refresh (or watchdog activation) is
//! decided on at once too, once per cycle: waiting a loop could let the key expire under a running primary. The
//! agent's runtime and the simulator both follow this, so they cannot drift apart.

use crate::action::{Outcome, Plan};

/// Most rounds one cycle takes (a race: fetch peers, take the key, promote, with room for a bootstrap).
pub const MAX_ROUNDS: usize = 6;

/// What the runtime does once a round's actions ran.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// The cycle is over: sleep until `loop_wait` (or the plan's `wake_at`, or an event).
    Sleep,
    /// Step again at once. `reread`: with a fresh DCS read; without, on the view the failed refresh was made from
    /// (and no view at all when the DCS did not answer it), so the decision does not wait for another round trip.
    Again { reread: bool },
}

/// The rounds of one cycle so far.
#[derive(Clone, Debug, Default)]
pub struct Rounds {
    round: usize,
    refresh_reported: bool,
}

impl Rounds {
    pub fn new() -> Rounds {
        Rounds::default()
    }

    /// After the actions of `plan` ran with these `outcomes` (they go into the next observation).
    pub fn after(&mut self, plan: &Plan, outcomes: &[Outcome]) -> Next {
        self.round += 1;
        let refresh_failed = !self.refresh_reported
            && outcomes
                .iter()
                .any(|o| matches!(o, Outcome::LeaderRefresh { ok: false } | Outcome::WatchdogArmed { ok: false }));
        if self.round >= MAX_ROUNDS || (!plan.again && !refresh_failed) {
            *self = Rounds::default();
            return Next::Sleep;
        }
        if refresh_failed {
            self.refresh_reported = true;
            return Next::Again { reread: false };
        }
        Next::Again { reread: true }
    }

    /// Rounds stepped in this cycle so far (0 before the first plan ran).
    pub fn round(&self) -> usize {
        self.round
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(again: bool) -> Plan {
        Plan { again, ..Plan::default() }
    }

    #[test]
    fn again_is_followed_up_to_the_round_limit() {
        let mut r = Rounds::new();
        for _ in 1..MAX_ROUNDS {
            assert_eq!(r.after(&plan(true), &[]), Next::Again { reread: true });
        }
        assert_eq!(r.after(&plan(true), &[]), Next::Sleep);
        // A new cycle starts over.
        assert_eq!(r.after(&plan(true), &[]), Next::Again { reread: true });
        assert_eq!(r.after(&plan(false), &[]), Next::Sleep);
    }

    #[test]
    fn a_failed_refresh_is_decided_on_at_once_once_per_cycle() {
        let mut r = Rounds::new();
        let failed = [Outcome::LeaderRefresh { ok: false }];
        assert_eq!(r.after(&plan(false), &failed), Next::Again { reread: false });
        assert_eq!(r.after(&plan(false), &failed), Next::Sleep);
        assert_eq!(r.after(&plan(false), &[Outcome::WatchdogArmed { ok: false }]), Next::Again { reread: false });
    }
}
