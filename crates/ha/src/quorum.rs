//! Quorum commit: the order in which the `sync` key and `synchronous_standby_names` move to a new state.
//!
//! Two "ANY n of set" statements describe quorum commit. PostgreSQL's `synchronous_standby_names = ANY numsync
//! (sync)` says which acknowledgements a commit waits for; the `sync` key (`quorum`, voters = `sync_standby`) says
//! how many voters besides itself a member racing for the leader key must compare its WAL position with. No
//! acknowledged commit is lost as long as every set of members able to acknowledge a commit overlaps every set able
//! to elect a new leader:
//!
//! ```text
//!     |voters ∪ sync ∪ {leader}| <= quorum + numsync + 1,   and voters ⊆ sync or sync ⊆ voters
//! ```
//!
//! Since the two are written one after the other (one to the DCS, one to PostgreSQL), every intermediate state must
//! keep that: a number is raised before the other one is lowered, a member joins the side that makes the overlap
//! larger first, and leaves it last. [`transitions`] computes such a path from any state (including one a crash left
//! half-way), as Patroni's quorum state resolver does, so a mixed Python/Rust cluster follows one protocol.

use std::collections::BTreeSet;

use crate::view::Name;

type Set = BTreeSet<Name>;

/// One step of the path: the new state of one of the two places.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Write the `sync` key: `leader`, `quorum` and the voters.
    Quorum { leader: Name, quorum: usize, voters: Set },
    /// Set `synchronous_standby_names` to `ANY num (names)`.
    Sync { num: usize, names: Set },
    /// Standbys were just added to `synchronous_standby_names` and none is confirmed yet: read PostgreSQL again
    /// before writing the key (soon, not a whole loop later).
    Restart,
}

/// What both places hold now and what is wanted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct QuorumInput {
    /// The `sync` key: leader, quorum, voters.
    pub leader: Name,
    pub quorum: usize,
    pub voters: Set,
    /// `synchronous_standby_names`: `ANY numsync (sync)`.
    pub numsync: usize,
    pub sync: Set,
    /// How many of `sync` are known to have caught up since they were listed.
    pub numsync_confirmed: usize,
    /// Streaming standbys eligible to be listed.
    pub active: Set,
    /// `synchronous_node_count`.
    pub sync_wanted: usize,
    /// Us: differs from `leader` right after a failover.
    pub leader_wanted: Name,
}

/// The state would break the overlap, or a step was asked that cannot be taken; nothing is changed then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QuorumError(pub String);

/// The path from `input` to the wanted state, consecutive steps of one kind merged (skipping an intermediate state
/// nobody observed is always safe), ending at the first [`Transition::Restart`]; and the broken states repaired on
/// the way, for the log.
pub(crate) fn transitions(input: &QuorumInput) -> Result<(Vec<Transition>, Vec<String>), QuorumError> {
    let mut r = Resolver::new(input);
    r.generate()?;
    let mut merged: Vec<Transition> = Vec::new();
    for (i, t) in r.out.iter().enumerate() {
        let next_same_kind = r.out.get(i + 1).is_some_and(|n| std::mem::discriminant(n) == std::mem::discriminant(t));
        if next_same_kind {
            continue;
        }
        merged.push(t.clone());
        if *t == Transition::Restart {
            break;
        }
    }
    Ok((merged, r.warnings))
}

struct Resolver {
    leader: Name,
    quorum: i64,
    voters: Set,
    numsync: i64,
    sync: Set,
    numsync_confirmed: i64,
    active: Set,
    sync_wanted: i64,
    leader_wanted: Name,
    out: Vec<Transition>,
    /// Broken states found and repaired on the way, for the log.
    warnings: Vec<String>,
}

fn len(s: &Set) -> i64 {
    s.len() as i64
}

fn union(a: &Set, b: &Set) -> Set {
    a.union(b).cloned().collect()
}

fn minus(a: &Set, b: &Set) -> Set {
    a.difference(b).cloned().collect()
}

fn inter(a: &Set, b: &Set) -> Set {
    a.intersection(b).cloned().collect()
}

fn one(name: &str) -> Set {
    std::iter::once(name.to_owned()).collect()
}

fn proper_subset(a: &Set, b: &Set) -> bool {
    a.len() < b.len() && a.is_subset(b)
}

fn err(msg: String) -> Result<(), QuorumError> {
    Err(QuorumError(msg))
}

fn names(s: &Set) -> String {
    s.iter().cloned().collect::<Vec<_>>().join(", ")
}

impl Resolver {
    fn new(i: &QuorumInput) -> Resolver {
        Resolver {
            leader: i.leader.clone(),
            quorum: i.quorum as i64,
            voters: i.voters.clone(),
            // PostgreSQL cannot wait for more standbys than are listed.
            numsync: (i.numsync as i64).min(len(&i.sync)),
            sync: i.sync.clone(),
            numsync_confirmed: i.numsync_confirmed as i64,
            active: i.active.clone(),
            sync_wanted: i.sync_wanted as i64,
            leader_wanted: i.leader_wanted.clone(),
            out: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn check_invariants(&self) -> Result<(), QuorumError> {
        let voters = union(&self.voters, &one(&self.leader));
        let sync = union(&self.sync, &one(&self.leader_wanted));
        let nodes = len(&union(&voters, &sync));
        // The leader counts on both sides, hence `+ 1`.
        if !self.voters.is_empty() && nodes > self.quorum + self.numsync + 1 {
            return err(format!(
                "Quorum and sync not guaranteed to overlap: nodes {nodes} >= quorum {} + sync {} + 1",
                self.quorum, self.numsync
            ));
        }
        // Half-way through a change one set may be larger than the other, never different on both sides.
        if !(voters.is_subset(&sync) || sync.is_subset(&voters)) {
            return err(format!(
                "Mismatched sets: voter only={{{}}} sync only={{{}}}",
                names(&minus(&voters, &sync)),
                names(&minus(&sync, &voters))
            ));
        }
        Ok(())
    }

    /// A new `sync` key. `adjust` raises the quorum by the listed standbys not confirmed yet, so that a race still
    /// finds one that has every acknowledged commit.
    fn quorum_update(
        &mut self,
        mut quorum: i64,
        mut voters: Set,
        leader: Option<&str>,
        adjust: bool,
    ) -> Result<(), QuorumError> {
        if quorum < 0 {
            return err(format!("Quorum {quorum} < 0 of ({})", names(&voters)));
        }
        if quorum > 0 && quorum >= len(&voters) {
            return err(format!("Quorum {quorum} >= N of ({})", names(&voters)));
        }
        let old_leader = self.leader.clone();
        if let Some(l) = leader {
            self.leader = l.to_owned();
        } else if self.numsync_confirmed == 0 && self.voters.is_empty() {
            // Nobody is known to have caught up: the key names no voter yet.
            quorum = 0;
            voters = Set::new();
        } else if adjust {
            quorum += (self.numsync - self.numsync_confirmed).max(0);
        }
        if self.leader == old_leader && quorum == self.quorum && voters == self.voters {
            if !self.voters.is_empty() {
                return Ok(());
            }
            self.out.push(Transition::Restart);
        }
        self.quorum = quorum;
        self.voters = voters;
        self.check_invariants()?;
        self.out.push(Transition::Quorum {
            leader: self.leader.clone(),
            quorum: self.quorum as usize,
            voters: self.voters.clone(),
        });
        Ok(())
    }

    fn sync_update(&mut self, numsync: i64, sync: Set) -> Result<(), QuorumError> {
        if numsync < 0 {
            return err(format!("Sync {numsync} < 0 of ({})", names(&sync)));
        }
        if numsync > len(&sync) {
            return err(format!("Sync {numsync} > N of ({})", names(&sync)));
        }
        self.numsync = numsync;
        self.sync = sync;
        self.check_invariants()?;
        self.out.push(Transition::Sync { num: self.numsync as usize, names: self.sync.clone() });
        Ok(())
    }

    fn generate(&mut self) -> Result<(), QuorumError> {
        match self.takeover() {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(QuorumError(e)) => {
                self.warnings.push(e);
                let sync = self.sync.clone();
                self.quorum_update(len(&sync) - self.numsync, sync, None, true)?;
            }
        }
        if self.leader != self.leader_wanted {
            return err(format!("the sync key names {} as leader, not {}", self.leader, self.leader_wanted));
        }
        // After a restart or failover nothing is confirmed yet; the quorum tells how many listed standbys have
        // every acknowledged commit.
        let listed_active = len(&inter(&self.sync, &self.active));
        if self.numsync_confirmed == 0 && listed_active > 0 {
            self.numsync_confirmed = listed_active.min(len(&self.voters) - self.quorum);
        }
        self.non_steady()?;
        self.remove_gone()?;
        self.add_new()?;
        self.replication_factor()
    }

    /// Right after a failover the key still names the former leader: it becomes a voter and we the leader.
    /// `Ok(false)`: stop here (the standbys have not reconnected yet; give them a loop before dropping them).
    fn takeover(&mut self) -> Result<bool, QuorumError> {
        if self.leader_wanted == self.leader {
            self.check_invariants()?;
            return Ok(true);
        }
        let voters = union(&minus(&self.voters, &one(&self.leader_wanted)), &one(&self.leader));
        if self.sync.is_empty() {
            self.sync_update(len(&voters) - self.quorum, voters.clone())?;
        }
        let wanted = self.leader_wanted.clone();
        self.quorum_update(self.quorum, voters, Some(&wanted), true)?;
        Ok(!inter(&self.sync, &self.active).is_empty())
    }

    /// A previous path was interrupted: make voters and sync equal again.
    fn non_steady(&mut self) -> Result<(), QuorumError> {
        if proper_subset(&self.sync, &self.voters) {
            // Half-way through changing the voters: drop dead ones not listed, list live ones.
            let remove = minus(&self.voters, &union(&self.sync, &self.active));
            if !remove.is_empty() {
                let adjust = minus(&self.sync, &self.active).is_empty();
                let voters = minus(&self.voters, &remove);
                self.quorum_update(len(&self.voters) - len(&remove) - self.numsync, voters, None, adjust)?;
            }
            let add = minus(&inter(&self.voters, &self.active), &self.sync);
            if !add.is_empty() {
                let sync = union(&self.sync, &add);
                self.sync_update(self.numsync, sync)?;
            }
        } else if proper_subset(&self.voters, &self.sync) {
            // Half-way through changing the replication factor.
            let dead = minus(&self.sync, &self.active);
            let kept = minus(&self.sync, &dead);
            // Removing dead ones first is fine only while sync and voters keep a member in common.
            if !dead.is_empty()
                && !kept.is_empty()
                && (self.voters.is_empty() || !inter(&kept, &self.voters).is_empty())
            {
                let num = self.numsync.min(len(&self.sync) - len(&dead));
                self.sync_update(num, kept)?;
            }
            let add = inter(&minus(&self.sync, &self.voters), &self.active);
            if !add.is_empty() {
                let voters = union(&self.voters, &add);
                self.quorum_update(len(&voters) - self.numsync, voters, None, true)?;
            }
            let unvoted = minus(&self.sync, &self.voters);
            if !unvoted.is_empty() {
                let num = self.numsync.min(len(&self.sync) - len(&unvoted));
                let sync = minus(&self.sync, &unvoted);
                self.sync_update(num, sync)?;
            }
        }
        if self.voters != self.sync {
            return err(format!("voters ({}) and sync ({}) still differ", names(&self.voters), names(&self.sync)));
        }
        let nodes = len(&union(&self.voters, &self.sync));
        if self.quorum + self.numsync.min(self.numsync_confirmed) - nodes > 0 {
            // More overlap than needed: a change of the replication factor was interrupted.
            if self.numsync > self.sync_wanted {
                let num = self.sync_wanted.max(len(&self.voters) - self.quorum);
                let sync = self.sync.clone();
                self.sync_update(num, sync)?;
            } else {
                let voters = self.voters.clone();
                self.quorum_update(len(&self.sync) - self.numsync, voters, None, true)?;
            }
        } else if self.numsync == self.sync_wanted
            && self.quorum + self.numsync - nodes > 0
            && self.numsync > self.numsync_confirmed
        {
            let voters = self.voters.clone();
            self.quorum_update(len(&self.sync) - self.numsync, voters, None, true)?;
        }
        Ok(())
    }

    /// Standbys that stopped streaming leave both places.
    fn remove_gone(&mut self) -> Result<(), QuorumError> {
        let mut gone = minus(&self.sync, &self.active);
        if gone.is_empty() {
            return Ok(());
        }
        if gone == self.sync {
            // All of them: the key first (nobody may count on them), then PostgreSQL.
            self.quorum_update(0, Set::new(), None, false)?;
            return self.sync_update(0, Set::new());
        }
        if self.quorum > 0 {
            // The quorum can shrink: drop that many from PostgreSQL first (the overlap only grows), then the key.
            let remove: Set = gone.iter().rev().take(self.quorum as usize).cloned().collect();
            let sync = minus(&self.sync, &remove);
            let wanted = if self.sync_wanted > self.numsync { self.sync_wanted } else { self.numsync };
            let num = wanted.min(len(&sync));
            self.sync_update(num, sync)?;
            let voters = minus(&self.voters, &remove);
            gone = inter(&gone, &self.sync);
            let adjust = gone.is_empty();
            self.quorum_update(len(&voters) - self.numsync, voters, None, adjust)?;
        }
        if !gone.is_empty() {
            if self.quorum != 0 {
                return err(format!("quorum {} while removing {}", self.quorum, names(&gone)));
            }
            let num = self.numsync - len(&gone);
            let sync = minus(&self.sync, &gone);
            let voters = minus(&self.voters, &gone);
            let decrease = num - self.sync_wanted.min(len(&sync));
            let quorum = if decrease != 0 { decrease.min(len(&voters) - 1) } else { 0 };
            self.quorum_update(quorum, voters, None, false)?;
            self.sync_update(num, sync)?;
        }
        Ok(())
    }

    /// Newly streaming standbys join both places.
    fn add_new(&mut self) -> Result<(), QuorumError> {
        let mut add = minus(&self.active, &self.sync);
        if add.is_empty() {
            return Ok(());
        }
        let wanted = self.sync_wanted.min(len(&union(&self.sync, &add)));
        let mut increase = wanted - self.numsync;
        if increase > 0 {
            // Up to the replication factor first. With nobody listed (only the leader) all may join at once.
            let first: Set = if self.sync.is_empty() {
                add.clone()
            } else {
                let f: Set = add.iter().take(increase as usize).cloned().collect();
                increase = len(&f);
                f
            };
            let sync = union(&self.sync, &first);
            self.sync_update(self.numsync + increase, sync)?;
            let voters = union(&self.voters, &first);
            self.quorum_update(len(&voters) - wanted, voters, None, true)?;
            add = minus(&add, &self.sync);
        }
        if !add.is_empty() {
            // The rest: voters first (a larger quorum), then PostgreSQL.
            let voters = union(&self.voters, &add);
            let adjust = wanted > self.numsync_confirmed;
            self.quorum_update(len(&voters) - wanted, voters, None, adjust)?;
            let sync = union(&self.sync, &add);
            self.sync_update(wanted, sync)?;
        }
        Ok(())
    }

    /// `synchronous_node_count` changed: raising it lists more first; lowering it raises the quorum first.
    fn replication_factor(&mut self) -> Result<(), QuorumError> {
        let increase = self.sync_wanted.min(len(&self.sync)) - self.numsync;
        if increase > 0 {
            let sync = self.sync.clone();
            self.sync_update(self.numsync + increase, sync)?;
            let voters = self.voters.clone();
            self.quorum_update(len(&voters) - self.numsync, voters, None, true)?;
        } else if increase < 0 {
            if self.quorum - increase < len(&self.voters) {
                let voters = self.voters.clone();
                let adjust = self.sync_wanted > self.numsync_confirmed;
                self.quorum_update(len(&voters) - self.numsync - increase, voters, None, adjust)?;
            }
            let sync = self.sync.clone();
            self.sync_update(self.numsync + increase, sync)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "quorum_tests.rs"]
mod tests;
