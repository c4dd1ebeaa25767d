//! WAL identity across timelines: which histories contain which others.
//!
//! Raw LSNs cannot tell whether two members hold the same WAL: after a failover the old primary may have written
//! past the point where the new one branched off. Every promotion therefore starts a new *fork* (what PostgreSQL
//! calls a timeline, but unique even when two members wrongly pick the same timeline number), remembering where it
//! branched from. A position is a fork plus an LSN on it.

/// Index of a fork in [`Lineage`].
pub type ForkId = usize;

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub fork: ForkId,
    pub lsn: u64,
}

#[derive(Clone, Debug)]
struct Fork {
    timeline: u32,
    /// The fork this one branched from and the LSN of the switch: WAL below it is shared.
    parent: Option<(ForkId, u64)>,
}

/// How a replica's WAL relates to its upstream's.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Relation {
    /// The upstream has everything we have: streaming can continue.
    Behind,
    /// We have WAL the upstream has not (yet) got, on the same history: wait for it.
    Ahead,
    /// Histories differ: only a rewind or a fresh clone can make us a replica again.
    Diverged,
}

#[derive(Clone, Debug, Default)]
pub struct Lineage {
    forks: Vec<Fork>,
}

impl Lineage {
    /// A new cluster's first timeline (bootstrap).
    pub fn root(&mut self) -> ForkId {
        self.forks.push(Fork { timeline: 1, parent: None });
        self.forks.len() - 1
    }

    /// A promotion at `from`: the new fork shares WAL up to `from.lsn`.
    pub fn branch(&mut self, from: Pos) -> ForkId {
        let timeline = self.timeline(from.fork) + 1;
        self.forks.push(Fork { timeline, parent: Some((from.fork, from.lsn)) });
        self.forks.len() - 1
    }

    pub fn timeline(&self, fork: ForkId) -> u32 {
        self.forks.get(fork).map_or(0, |f| f.timeline)
    }

    /// Whether the WAL up to `inner` is a prefix of the WAL up to `outer`.
    pub fn contains(&self, outer: Pos, inner: Pos) -> bool {
        let (mut fork, mut lsn) = (outer.fork, outer.lsn);
        loop {
            if fork == inner.fork {
                return inner.lsn <= lsn;
            }
            match self.forks.get(fork).and_then(|f| f.parent) {
                Some((parent, switch)) => {
                    fork = parent;
                    lsn = lsn.min(switch);
                }
                None => return false,
            }
        }
    }

    pub fn relation(&self, ours: Pos, upstream: Pos) -> Relation {
        if self.contains(upstream, ours) {
            Relation::Behind
        } else if self.contains(ours, upstream) {
            Relation::Ahead
        } else {
            Relation::Diverged
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_branch_shares_wal_only_up_to_its_switch_point() {
        let mut l = Lineage::default();
        let root = l.root();
        let tl2 = l.branch(Pos { fork: root, lsn: 100 });
        assert_eq!(l.timeline(tl2), 2);
        assert!(l.contains(Pos { fork: tl2, lsn: 500 }, Pos { fork: root, lsn: 100 }));
        assert!(!l.contains(Pos { fork: tl2, lsn: 500 }, Pos { fork: root, lsn: 101 }));
        assert_eq!(l.relation(Pos { fork: root, lsn: 150 }, Pos { fork: tl2, lsn: 500 }), Relation::Diverged);
        assert_eq!(l.relation(Pos { fork: root, lsn: 90 }, Pos { fork: tl2, lsn: 500 }), Relation::Behind);
        assert_eq!(l.relation(Pos { fork: tl2, lsn: 600 }, Pos { fork: tl2, lsn: 500 }), Relation::Ahead);
        let other = l.root();
        assert_eq!(l.relation(Pos { fork: other, lsn: 1 }, Pos { fork: root, lsn: 500 }), Relation::Diverged);
    }
}
