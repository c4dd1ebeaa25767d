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

    pub(super) fn check_convergence(&mut self) {
        let writable: Vec<usize> = (0..self.pgs.len()).filter(|&p| self.pgs[p].writable()).collect();
        let [primary] = writable[..] else {
            let detail = format!("{} writable primaries at the end", writable.len());
            self.violate(Invariant::Convergence, detail);
            return;
        };
        if self.dcs.leader_at(self.now) != Some(primary) {
            let detail = format!("{} is primary without holding the leader key", self.names[primary]);
            self.violate(Invariant::Convergence, detail);
            return;
        }
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
                let detail = format!(
                    "{} is not streaming from {} (process {:?}, upstream {:?}, streaming {}, diverged {}, busy {:?})",
                    self.names[m],
                    self.names[expected],
                    pg.proc,
                    pg.upstream.map(|u| self.names[u].clone()),
                    pg.streaming,
                    pg.diverged,
                    pg.job.as_ref().map(|j| j.busy.clone()),
                );
                self.violate(Invariant::Convergence, detail);
                return;
            }
        }
    }
}
