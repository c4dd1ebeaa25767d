use super::*;

fn set(text: &str) -> Set {
    text.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn parse_input(text: &str) -> QuorumInput {
    let f: Vec<&str> = text.split('|').collect();
    let num = |i: usize| f[i].parse::<usize>().unwrap_or_else(|_| panic!("field {i} of {text}"));
    QuorumInput {
        leader: f[0].into(),
        quorum: num(1),
        voters: set(f[2]),
        numsync: num(3),
        sync: set(f[4]),
        numsync_confirmed: num(5),
        active: set(f[6]),
        sync_wanted: num(7),
        leader_wanted: f[8].into(),
    }
}

fn show(result: &Result<(Vec<Transition>, Vec<String>), QuorumError>) -> String {
    let Ok((ts, _)) = result else { return "ERR".into() };
    if ts.is_empty() {
        return "-".into();
    }
    let join = |s: &Set| s.iter().cloned().collect::<Vec<_>>().join(",");
    ts.iter()
        .map(|t| match t {
            Transition::Quorum { leader, quorum, voters } => format!("q:{leader}:{quorum}:{}", join(voters)),
            Transition::Sync { num, names } => format!("s:{num}:{}", join(names)),
            Transition::Restart => "r".into(),
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Every state of the golden table (computed by Python Patroni's resolver, `scripts/quorum-golden.py`) gives the
/// same path here: a mixed cluster follows one protocol.
#[test]
fn same_transitions_as_patroni() {
    let table = include_str!("../tests/data/quorum_golden.txt");
    let mut failures = Vec::new();
    let mut count = 0;
    for line in table.lines().filter(|l| !l.trim().is_empty()) {
        let (input, expected) = line.split_once(" => ").unwrap_or_else(|| panic!("bad golden line {line}"));
        let got = show(&transitions(&parse_input(input)));
        if got != expected {
            failures.push(format!("{input}: expected {expected}, got {got}"));
        }
        count += 1;
    }
    assert!(count > 1000, "golden table too small: {count}");
    assert!(failures.is_empty(), "{} of {count} differ:\n{}", failures.len(), failures.join("\n"));
}

/// Whatever path is taken, every intermediate state keeps the overlap: any `quorum + 1` of voters ∪ leader meet
/// any `numsync` of the listed standby acknowledgements (plus the leader's own).
#[test]
fn every_step_keeps_commit_and_election_sets_overlapping() {
    let table = include_str!("../tests/data/quorum_golden.txt");
    for line in table.lines().filter(|l| !l.trim().is_empty()) {
        let (input, _) = line.split_once(" => ").unwrap_or_default();
        let mut state = parse_input(input);
        let Ok((ts, _)) = transitions(&state) else { continue };
        for t in ts {
            match t {
                Transition::Quorum { leader, quorum, voters } => {
                    state.leader = leader;
                    state.quorum = quorum;
                    state.voters = voters;
                }
                Transition::Sync { num, names } => {
                    state.numsync = num;
                    state.sync = names;
                }
                Transition::Restart => break,
            }
            if state.voters.is_empty() || state.leader != state.leader_wanted {
                continue;
            }
            let mut nodes = union(&state.voters, &state.sync);
            nodes.insert(state.leader.clone());
            assert!(
                nodes.len() <= state.quorum + state.numsync.min(state.sync.len()) + 1,
                "{input}: overlap broken at {state:?}"
            );
        }
    }
}

#[test]
fn first_standby_is_listed_before_the_key_names_it() {
    let input = QuorumInput {
        leader: "a".into(),
        active: set("b"),
        sync_wanted: 1,
        leader_wanted: "a".into(),
        ..QuorumInput::default()
    };
    let (ts, _) = transitions(&input).unwrap();
    assert_eq!(ts, vec![Transition::Sync { num: 1, names: set("b") }, Transition::Restart]);
    let confirmed = QuorumInput { numsync: 1, sync: set("b"), numsync_confirmed: 1, ..input };
    let (ts, _) = transitions(&confirmed).unwrap();
    assert_eq!(ts, vec![Transition::Quorum { leader: "a".into(), quorum: 0, voters: set("b") }]);
}

#[test]
fn lowering_the_replication_factor_raises_the_quorum_first() {
    let input = QuorumInput {
        leader: "a".into(),
        voters: set("b,c"),
        numsync: 2,
        sync: set("b,c"),
        numsync_confirmed: 2,
        active: set("b,c"),
        sync_wanted: 1,
        leader_wanted: "a".into(),
        ..QuorumInput::default()
    };
    let (ts, _) = transitions(&input).unwrap();
    assert_eq!(
        ts,
        vec![
            Transition::Quorum { leader: "a".into(), quorum: 1, voters: set("b,c") },
            Transition::Sync { num: 1, names: set("b,c") },
        ]
    );
}

#[test]
fn after_failover_the_former_leader_becomes_a_voter() {
    let input = QuorumInput {
        leader: "a".into(),
        quorum: 1,
        voters: set("b,c"),
        numsync: 1,
        sync: set("a,c"),
        numsync_confirmed: 0,
        active: set("c"),
        sync_wanted: 1,
        leader_wanted: "b".into(),
    };
    let (ts, _) = transitions(&input).unwrap();
    assert_eq!(ts[0], Transition::Quorum { leader: "b".into(), quorum: 1, voters: set("a,c") });
}
