//! Synchronous replication, as the leader maintains it (`synchronous_mode: on` or `quorum`).
//!
//! The `sync` key names who may promote; PostgreSQL's `synchronous_standby_names` names whose acknowledgement a
//! commit waits for. In `on` mode a member is removed from the key before PostgreSQL stops waiting for it, and added
//! to the key only after `pg_stat_replication` shows PostgreSQL already waits for it and it caught up. In `quorum`
//! mode the two move in the order [`crate::quorum`] computes.

use std::collections::BTreeSet;

use crate::action::{Action, LogLevel};
use crate::quorum::{self, QuorumInput, Transition};
use crate::time::Time;
use crate::view::{ClusterView, LocalState, Lsn, Name, Settings, SyncMode, SyncStandbyNames};

/// What the leader remembers between steps about `synchronous_standby_names`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct SyncTracker {
    /// The value last seen, to notice when it changes.
    seen: Option<SyncStandbyNames>,
    /// Our WAL position when it last changed: a newly listed standby counts as synchronous once it got there.
    lsn_at_change: Lsn,
    /// Listed standbys known to have caught up since they were listed.
    ready: BTreeSet<Name>,
    /// Quorum mode: when we first maintained the state as leader (a fresh leader leaves the standbys a loop to
    /// reconnect before it drops them from the voters).
    first_run: Option<Time>,
}

impl SyncTracker {
    /// We are not the leader (any more): start afresh when we are again.
    pub(crate) fn reset(&mut self) {
        *self = SyncTracker::default();
    }
}

/// The log lines and actions of one round of synchronous replication upkeep.
#[derive(Debug, Default)]
pub(crate) struct SyncPlan {
    pub actions: Vec<Action>,
    pub log: Vec<(LogLevel, String)>,
    /// Look again soon: standbys were just listed and may be confirmed in a moment.
    pub soon: bool,
}

impl SyncPlan {
    fn info(&mut self, line: String) {
        self.log.push((LogLevel::Info, line));
    }

    fn warn(&mut self, line: String) {
        self.log.push((LogLevel::Warning, line));
    }
}

/// One eligible standby, as `pg_stat_replication` and its member key show it.
struct Candidate<'a> {
    name: &'a Name,
    lsn: Lsn,
    synchronous: bool,
    nofailover: bool,
    priority: i64,
}

/// The standbys to list (`active`, best first) and those already confirmed synchronous among them.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct SyncChoice {
    pub active: Vec<Name>,
    pub confirmed: Vec<Name>,
    /// Every eligible standby's position in the column `synchronous_commit` waits on.
    pub positions: Vec<(Name, Lsn)>,
}

/// A list as Patroni logs it (Python's `repr` of a list of names).
fn pylist<'a>(names: impl IntoIterator<Item = &'a Name>) -> String {
    let quoted: Vec<String> = names.into_iter().map(|n| format!("'{n}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Commits never wait for fewer standbys than this: one in strict mode (`*` when none is available), else none.
fn min_sync(s: &Settings) -> usize {
    usize::from(s.sync_strict)
}

/// Whether a member that `replicatefrom`s another eligible member should cascade rather than stream from us (its
/// upstream, or the first of the chain, already streams from us). Bounded, since tags may form a cycle.
fn cascades(s: &Settings, cluster: &ClusterView, local: &LocalState, name: &str) -> bool {
    let eligible = |n: &str| cluster.member(n).filter(|m| m.running && !m.tags.nosync && m.name != s.name);
    let mut current = name;
    for _ in 0..cluster.members.len() {
        let Some(up) = eligible(current).and_then(|m| m.tags.replicatefrom.as_deref()) else {
            return current != name && local.replication.iter().any(|r| r.name == current);
        };
        if eligible(up).is_none() {
            return current != name && local.replication.iter().any(|r| r.name == current);
        }
        current = up;
    }
    false
}

impl SyncTracker {
    /// Which standbys should be synchronous, and which are confirmed to be: Patroni's choice. Eligible are members
    /// that run, are not `nosync`, report a position in the column `synchronous_commit` waits on and do not
    /// cascade. Higher `sync_priority` first, then those already synchronous (no churn when an asynchronous one is
    /// momentarily ahead), then the furthest ahead; `maximum_lag_on_syncnode` drops those lagging behind the best
    /// (or behind us when there is one); `nofailover` members come last.
    pub(crate) fn choose(&mut self, s: &Settings, cluster: &ClusterView, local: &LocalState) -> SyncChoice {
        let ssn = &local.sync_standby_names;
        if self.seen.as_ref() != Some(ssn) {
            if self.seen.as_ref().is_some_and(|seen| seen.any != ssn.any) {
                // Between `ANY` and a priority list (a live change of mode) what a standby acknowledged before says
                // nothing of what the new list promises: each must catch up with the change again.
                self.ready.clear();
            }
            self.ready.retain(|n| ssn.names.contains(n));
            self.lsn_at_change = local.lsn.unwrap_or(0);
            self.seen = Some(ssn.clone());
        }
        let mut list: Vec<Candidate> = Vec::new();
        for r in &local.replication {
            let Some(m) = cluster.member(&r.name) else { continue };
            if m.name == s.name || !m.running || m.tags.nosync || list.iter().any(|c| *c.name == r.name) {
                continue;
            }
            let Some(lsn) = r.acknowledged(s.sync_commit) else { continue };
            if cascades(s, cluster, local, &m.name) {
                continue;
            }
            list.push(Candidate {
                name: &m.name,
                lsn,
                synchronous: r.synchronous,
                nofailover: m.tags.nofailover,
                priority: m.tags.sync_priority,
            });
        }
        list.sort_by(|a, b| {
            (b.priority, b.synchronous, b.lsn).cmp(&(a.priority, a.synchronous, a.lsn)).then_with(|| a.name.cmp(b.name))
        });
        let max_lsn = match list.len() {
            0 | 1 => local.lsn.unwrap_or(0),
            _ => list.iter().map(|c| c.lsn).max().unwrap_or(0),
        };

        let quorum_mode = s.sync_mode == SyncMode::Quorum;
        for c in &list {
            if self.ready.contains(c.name) || !ssn.names.contains(c.name) {
                continue;
            }
            // In quorum mode the key lists standbys once one of them caught up, so it cannot vouch for them; nor can a
            // key a quorum-mode leader wrote (`quorum` > 0) when the mode changed to `on`.
            let ready = if quorum_mode || cluster.sync.quorum > 0 {
                c.synchronous && c.lsn >= self.lsn_at_change
            } else {
                cluster.sync.is_sync_standby(c.name) || (c.synchronous && c.lsn >= self.lsn_at_change)
            };
            if ready {
                self.ready.insert(c.name.clone());
            }
        }

        let mut choice =
            SyncChoice { positions: list.iter().map(|c| (c.name.clone(), c.lsn)).collect(), ..SyncChoice::default() };
        let count = s.sync_node_count.max(1);
        // Stable: `nofailover` members after the others, each group in the order above.
        list.sort_by_key(|c| c.nofailover);
        for c in &list {
            if s.maximum_lag_on_syncnode.is_some_and(|max| max_lsn.saturating_sub(c.lsn) > max) {
                continue;
            }
            let ready = self.ready.contains(c.name);
            if quorum_mode {
                // A `nofailover` voter cannot promote, so it adds no availability: listed only to reach the count.
                if !c.nofailover || choice.active.len() < count {
                    if ready {
                        choice.confirmed.push(c.name.clone());
                    }
                    choice.active.push(c.name.clone());
                }
            } else {
                choice.active.push(c.name.clone());
                if c.synchronous && ready {
                    choice.confirmed.push(c.name.clone());
                }
                if choice.active.len() >= count {
                    break;
                }
            }
        }
        choice
    }

    /// The leader's upkeep of the `sync` key and `synchronous_standby_names`, each loop.
    pub(crate) fn leader_round(
        &mut self,
        s: &Settings,
        cluster: &ClusterView,
        local: &LocalState,
        now: Time,
    ) -> SyncPlan {
        let mut plan = match s.sync_mode {
            SyncMode::Off => return disable(cluster),
            SyncMode::On => self.multisync(s, cluster, local),
            SyncMode::Quorum => {
                // A fresh leader listed the former voters before promoting; it leaves them a loop to reconnect.
                let due = self.first_run.is_none_or(|t| now - t > s.loop_wait);
                self.first_run.get_or_insert(now);
                if due {
                    self.quorum(s, cluster, local)
                } else {
                    SyncPlan::default()
                }
            }
        };
        if s.sync_strict {
            strict_floor(&mut plan, local);
        }
        plan
    }

    fn multisync(&mut self, s: &Settings, cluster: &ClusterView, local: &LocalState) -> SyncPlan {
        let mut plan = SyncPlan::default();
        let me = &s.name;
        let choice = self.choose(s, cluster, local);
        let picked: BTreeSet<Name> = choice.active.iter().cloned().collect();
        let confirmed: BTreeSet<Name> = choice.confirmed.iter().cloned().collect();
        let mut voters: BTreeSet<Name> = cluster.sync.standbys.iter().cloned().collect();
        let write = |standbys: &BTreeSet<Name>| Action::SetSyncState {
            leader: me.clone(),
            standbys: standbys.iter().cloned().collect(),
            quorum: 0,
        };

        if cluster.sync.is_empty() {
            // Written before any standby is chosen, or synchronous mode would never start without candidates.
            plan.info("Enabled synchronous replication".into());
            voters.clear();
            plan.actions.push(write(&voters));
        } else if cluster.sync.leader.as_deref() != Some(me.as_str()) {
            plan.warn(format!(
                "Inconsistent state of /sync key detected, leader = {} doesn't match {me}, updating synchronous \
                 replication key",
                cluster.sync.leader.as_deref().unwrap_or("")
            ));
            voters.clear();
            plan.actions.push(write(&voters));
        }
        if picked == voters && voters != confirmed {
            plan.warn(format!(
                "Inconsistent state between synchronous_standby_names = {} and /sync = {} key detected, updating \
                 synchronous replication key...",
                pylist(&confirmed),
                pylist(&voters)
            ));
            voters = confirmed.clone();
            plan.actions.push(write(&voters));
        }
        let ssn = &local.sync_standby_names;
        let listed: BTreeSet<Name> = if ssn.star { BTreeSet::new() } else { ssn.names.iter().cloned().collect() };
        if picked == voters && voters == listed && ssn.num == picked.len() {
            return plan;
        }
        // Whoever PostgreSQL may stop waiting for leaves the key first.
        let common: BTreeSet<Name> = voters.intersection(&confirmed).cloned().collect();
        if common != voters {
            plan.info(format!(
                "Updating synchronous privilege temporarily from {} to {}",
                pylist(&voters),
                pylist(&common)
            ));
            plan.actions.push(write(&common));
        }
        let names: Vec<Name> = if picked.is_empty() && s.sync_strict {
            plan.warn("No standbys available!".into());
            vec!["*".into()]
        } else {
            picked.iter().cloned().collect()
        };
        plan.info(format!("Assigning synchronous standby status to {}", pylist(&names)));
        plan.actions.push(Action::SetSyncStandbys { names, num: None, any: false });
        if !picked.is_empty() && confirmed != picked {
            // PostgreSQL will report the new ones as synchronous in a moment: look again then.
            plan.soon = true;
        }
        if !confirmed.is_empty() && confirmed != common {
            plan.info(format!("Synchronous standby status assigned to {}", pylist(&confirmed)));
            plan.actions.push(write(&confirmed));
        }
        plan
    }

    fn quorum(&mut self, s: &Settings, cluster: &ClusterView, local: &LocalState) -> SyncPlan {
        let mut plan = SyncPlan::default();
        let me = &s.name;
        let (leader, quorum, voters) = if cluster.sync.is_empty() {
            plan.info("Enabled synchronous replication".into());
            plan.actions.push(Action::SetSyncState { leader: me.clone(), standbys: Vec::new(), quorum: 0 });
            (me.clone(), 0, BTreeSet::new())
        } else {
            let leader = cluster.sync.leader.clone().unwrap_or_default();
            (leader, cluster.sync.quorum, cluster.sync.standbys.iter().cloned().collect())
        };
        let choice = self.choose(s, cluster, local);
        let ssn = &local.sync_standby_names;
        let input = QuorumInput {
            leader,
            quorum,
            voters,
            numsync: ssn.num,
            sync: if ssn.star { BTreeSet::new() } else { ssn.names.iter().cloned().collect() },
            numsync_confirmed: choice.confirmed.len(),
            active: choice.active.iter().cloned().collect(),
            sync_wanted: s.sync_node_count.max(1),
            leader_wanted: me.clone(),
        };
        let transitions = match quorum::transitions(&input) {
            Ok((transitions, warnings)) => {
                for w in warnings {
                    plan.warn(w);
                }
                transitions
            }
            Err(e) => {
                plan.warn(format!("quorum state not updated: {}", e.0));
                return plan;
            }
        };
        // Where the voters that stay must be before the key may forget one: every commit acknowledged so far. A
        // commit acknowledged only by the voter that goes is safe once the ones that stay have it too; until then the
        // key keeps it (Patroni drops it at once, and a lagging voter left alone with quorum 0 could promote without
        // that commit: simulator, quorum mode).
        let mut acknowledged_up_to = self.lsn_at_change;
        let mut current_voters = input.voters.clone();
        let mut current_quorum = input.quorum;
        for t in transitions {
            match t {
                Transition::Quorum { leader, quorum, voters } => {
                    let drops_one = current_voters.iter().any(|v| !voters.contains(v) && *v != leader);
                    let behind: Vec<&Name> = voters
                        .iter()
                        .filter(|v| **v != *me)
                        .filter(|v| !choice.positions.iter().any(|(n, lsn)| n == *v && *lsn >= acknowledged_up_to))
                        .collect();
                    if drops_one && !behind.is_empty() {
                        plan.info(format!(
                            "Not yet removing {} from the synchronous voters: {} not caught up",
                            pylist(current_voters.difference(&voters)),
                            pylist(behind)
                        ));
                        plan.soon = true;
                        break;
                    }
                    // A lower quorum asks fewer votes of a member that promotes, as if more voters held each commit;
                    // those acknowledged before PostgreSQL waited for more standbys are on as few as before, until
                    // the voters caught up with them (simulator, 4 members: `synchronous_node_count` raised live).
                    if quorum < current_quorum && !behind.is_empty() {
                        plan.info(format!(
                            "Not yet lowering the quorum from {current_quorum} to {quorum}: {} not caught up",
                            pylist(behind)
                        ));
                        plan.soon = true;
                        break;
                    }
                    current_voters = voters.clone();
                    current_quorum = quorum;
                    let list = voters.iter().cloned().collect::<Vec<_>>();
                    plan.info(format!(
                        "Setting leader to {leader}, quorum to {quorum} of {} ({})",
                        list.len(),
                        list.join(", ")
                    ));
                    plan.actions.push(Action::SetSyncState { leader, standbys: list, quorum });
                }
                Transition::Sync { num, names } => {
                    let list = names.iter().cloned().collect::<Vec<_>>();
                    plan.info(format!(
                        "Setting synchronous replication to {num} of {} ({})",
                        list.len(),
                        list.join(", ")
                    ));
                    let mut num = num;
                    let min = min_sync(s);
                    if num < min {
                        plan.warn(format!(
                            "Replication factor {} requested, but {num} synchronous standbys available. Commits will \
                             be delayed.",
                            min + 1
                        ));
                        num = min;
                    }
                    plan.actions.push(Action::SetSyncStandbys { names: list, num: Some(num), any: true });
                    // From now on commits wait for the new list; what was acknowledged before is up to here.
                    acknowledged_up_to = acknowledged_up_to.max(local.lsn.unwrap_or(0));
                }
                Transition::Restart => plan.soon = true,
            }
        }
        plan
    }
}

/// Strict mode: a primary never runs with nothing to wait for. Where the upkeep leaves `synchronous_standby_names`
/// unset, PostgreSQL waits for any standby (`*`), as Patroni's configuration does for a strict primary.
fn strict_floor(plan: &mut SyncPlan, local: &LocalState) {
    let star = || Action::SetSyncStandbys { names: vec!["*".into()], num: None, any: false };
    let mut set_here = false;
    for a in plan.actions.iter_mut() {
        if let Action::SetSyncStandbys { names, num, .. } = a {
            set_here = true;
            if names.is_empty() && num.unwrap_or(0) == 0 {
                *a = star();
            }
        }
    }
    let ssn = &local.sync_standby_names;
    if !set_here && !ssn.star && ssn.names.is_empty() {
        plan.actions.push(star());
    }
}

/// Synchronous mode is off: the key goes, then PostgreSQL stops waiting (the configured value applies again).
fn disable(cluster: &ClusterView) -> SyncPlan {
    let mut plan = SyncPlan::default();
    if !cluster.sync.is_empty() {
        plan.info("Disabled synchronous replication".into());
        plan.actions.push(Action::DeleteSyncState);
        plan.actions.push(Action::SetSyncStandbys { names: Vec::new(), num: None, any: false });
    }
    plan
}

/// Right before promoting: what commits on the new primary will wait for from the first moment.
///
/// In quorum mode with a `sync` key, keep waiting for the former voters (the former leader among them) as many as
/// the quorum guarantees, so no commit is acknowledged by fewer; the key names us as leader with those voters and
/// the same quorum, and is brought up to date once we run as the primary. Otherwise the key names us alone first (a compare-and-set: if someone else wrote it, we may have lost
/// the key and must not promote) and commits wait for any standby in strict mode.
pub(crate) fn before_promote(s: &Settings, cluster: &ClusterView) -> Vec<Action> {
    let me = &s.name;
    match s.sync_mode {
        SyncMode::Off => disable(cluster).actions,
        SyncMode::Quorum if !cluster.sync.is_empty() => {
            let mut sync: Vec<Name> = cluster.sync.members();
            let mut num = sync.len() as i64 - cluster.sync.quorum as i64 - 1;
            if sync.contains(me) {
                sync.retain(|n| n != me);
            } else {
                // We won the race from outside the voters with enough votes.
                num += 1;
            }
            sync.sort();
            // Beyond Patroni, the key names us at once, with the former leader among the voters and the same
            // quorum (the resolver's first step after a promotion, taken before it): a compare-and-set that stops
            // the promotion if someone else wrote the key, and should we die before our first round as primary, the
            // former leader coming back finds itself a voter needing votes, not the leader that wrote the key and
            // needs none (simulator, quorum mode: it promoted without commits acknowledged on our timeline).
            vec![
                Action::SetSyncState { leader: me.clone(), standbys: sync.clone(), quorum: cluster.sync.quorum },
                Action::SetSyncStandbys { names: sync, num: Some(num.max(0) as usize), any: true },
            ]
        }
        mode => vec![
            Action::SetSyncState { leader: me.clone(), standbys: Vec::new(), quorum: 0 },
            Action::SetSyncStandbys {
                names: Vec::new(),
                num: Some(min_sync(s)).filter(|n| *n > 0),
                any: mode == SyncMode::Quorum,
            },
        ],
    }
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
