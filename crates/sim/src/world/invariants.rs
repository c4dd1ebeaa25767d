//! The invariants checked after every event (1) and at the end of the quiet period (3). Invariants 2 and 4 are
//! checked where promotions and demotions start and finish (postgres.rs, agent.rs).

use super::*;

impl World {
    pub(super) fn check_single_primary(&mut self) {
        let mut writable = (0..self.pgs.len()).filter(|&p| self.pgs[p].writable());
        if let (Some(a), Some(b)) = (writable.next(), writable.next()) {
            let detail = format!("{} and {} both accept writes", self.names[a], self.names[b]);
            self.violate(Invariant::SplitBrain, detail);
        }
    }

    /// Standby cluster: no member is ever writable while `standby_cluster` is configured.
    pub(super) fn check_standby_never_writable(&mut self) {
        if let Some(p) = (0..self.pgs.len()).find(|&p| self.pgs[p].writable()) {
            let detail = format!("{} accepts writes in a standby cluster", self.names[p]);
            self.violate(Invariant::StandbyWritable, detail);
        }
    }

    pub(super) fn check_convergence(&mut self) {
        if let Some(detail) = self.convergence_problem() {
            self.violate(Invariant::Convergence, detail);
        }
    }

    /// Once faults have stopped, the first instant the cluster is converged: how long recovery really took.
    pub(super) fn note_recovery(&mut self) {
        if self.now >= self.quiet_at && self.recovered_at.is_none() && self.convergence_problem().is_none() {
            self.recovered_at = Some(self.now);
        }
    }

    /// Why the cluster is not (yet) converged: one primary holding the key, every healthy member streaming.
    fn convergence_problem(&self) -> Option<String> {
        let writable: Vec<usize> = (0..self.pgs.len()).filter(|&p| self.pgs[p].writable()).collect();
        let primary = if self.opts.standby_cluster {
            // The standby leader takes the primary's place: it holds the key and everyone streams from it.
            let Some(leader) = self.dcs.leader_at(self.now) else {
                return Some("no standby leader holds the key".into());
            };
            if self.role(leader) != PgRole::StandbyLeader {
                return Some(format!("{} holds the key but is not the standby leader", self.names[leader]));
            }
            leader
        } else {
            let [primary] = writable[..] else {
                return Some(format!("{} writable primaries at the end", writable.len()));
            };
            if self.dcs.leader_at(self.now) != Some(primary) {
                return Some(format!("{} is primary without holding the leader key", self.names[primary]));
            }
            primary
        };
        for m in 0..self.pgs.len() {
            if m == primary || self.agents[m].fatal {
                continue;
            }
            let pg = &self.pgs[m];
            if pg.diverged && !self.opts.require_rewind {
                continue;
            }
            let expected = match &self.tags[m].replicatefrom {
                Some(up) => match self.index(up) {
                    Some(u) if u != m && self.pgs[u].proc == Proc::Running => u,
                    _ => primary,
                },
                None => primary,
            };
            let ok = pg.proc == Proc::Running && pg.upstream == Some(expected) && pg.streaming;
            if !ok {
                return Some(format!(
                    "{} is not streaming from {} (process {:?}, upstream {:?}, streaming {}, diverged {}, busy {:?})",
                    self.names[m],
                    self.names[expected],
                    pg.proc,
                    pg.upstream.map(|u| self.names[u].clone()),
                    pg.streaming,
                    pg.diverged,
                    pg.job.as_ref().map(|j| j.busy.clone()),
                ));
            }
        }
        self.slots_problem(primary)
    }
}
