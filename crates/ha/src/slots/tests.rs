use super::*;
use crate::view::MemberView;

fn member(name: &str, replicatefrom: Option<&str>, nostream: bool, lsn: Option<Lsn>) -> MemberView {
    MemberView {
        name: name.into(),
        role: PgRole::Replica,
        running: true,
        lsn,
        tags: Tags { replicatefrom: replicatefrom.map(String::from), nostream, ..Tags::default() },
        ..MemberView::default()
    }
}

fn cluster(leader: &str, members: Vec<MemberView>) -> ClusterView {
    ClusterView { leader: Some(leader.into()), members, ..ClusterView::default() }
}

fn physical(name: &str, restart: Option<Lsn>) -> LocalSlot {
    LocalSlot {
        name: name.into(),
        kind: SlotKind::Physical,
        restart_lsn: restart,
        confirmed_flush_lsn: None,
        has_xmin: false,
        wal_lost: false,
    }
}

fn logical(name: &str, db: &str, plugin: &str, flush: Lsn) -> LocalSlot {
    LocalSlot {
        name: name.into(),
        kind: SlotKind::Logical { database: db.into(), plugin: plugin.into() },
        restart_lsn: Some(flush),
        confirmed_flush_lsn: Some(flush),
        has_xmin: false,
        wal_lost: false,
    }
}

fn input<'a>(me: &'a str, tags: &'a Tags, role: PgRole, c: &'a ClusterView, local: &'a [LocalSlot]) -> SlotInput<'a> {
    SlotInput { me, tags, role, cluster: c, leader_slots: &[], retain_slots: &[], local, major: 15, replay_lsn: None }
}

fn perm(name: &str, kind: SlotKind) -> PermanentSlot {
    PermanentSlot { name: name.into(), kind }
}

fn test_decoding() -> SlotKind {
    SlotKind::Logical { database: "postgres".into(), plugin: "test_decoding".into() }
}

#[test]
fn slot_names_as_patroni_derives_them() {
    assert_eq!(slot_name("postgres-0"), "postgres_0");
    assert_eq!(slot_name("Node.A"), "node_a");
    assert_eq!(slot_name("a b"), "au0032b");
    assert_eq!(slot_name(&"x".repeat(80)).len(), 63);
    assert!(valid_slot_name("test_physical") && !valid_slot_name("Bad-Name") && !valid_slot_name(""));
}

#[test]
fn primary_keeps_a_slot_per_streaming_member_and_drops_unknown_ones() {
    let c = cluster(
        "pg0",
        vec![member("pg0", None, false, None), member("pg1", None, false, None), member("pg2", None, true, None)],
    );
    let tags = Tags::default();
    let local = [physical("pg1", Some(10)), physical("handmade", Some(10))];
    let p = plan(&input("pg0", &tags, PgRole::Primary, &c, &local), &SlotSettings::default());
    // nostream members get no slot; a slot nobody wants is dropped.
    assert_eq!(p.drop, vec!["handmade".to_string()]);
    assert!(p.create_physical.is_empty());
    assert!(p.log.iter().any(|(_, l)| l == "Trying to drop unknown replication slot 'handmade'"));
}

#[test]
fn ignore_slots_matches_any_subset_of_properties() {
    let c = cluster("pg0", vec![member("pg0", None, false, None)]);
    let tags = Tags::default();
    let local = [
        logical("unmanaged_0", "postgres", "test_decoding", 5),
        logical("unmanaged_1", "postgres", "test_decoding", 5),
        physical("unmanaged_2", Some(5)),
        logical("dummy", "postgres", "test_decoding", 5),
    ];
    let s = SlotSettings {
        ignore: vec![
            IgnoreRule {
                name: Some("unmanaged_0".into()),
                slot_type: Some("logical".into()),
                database: Some("postgres".into()),
                plugin: Some("test_decoding".into()),
            },
            IgnoreRule { name: Some("unmanaged_1".into()), database: Some("postgres".into()), ..IgnoreRule::default() },
            IgnoreRule { name: Some("unmanaged_2".into()), ..IgnoreRule::default() },
            IgnoreRule { name: Some("dummy".into()), plugin: Some("pgoutput".into()), ..IgnoreRule::default() },
        ],
        ..SlotSettings::default()
    };
    let p = plan(&input("pg0", &tags, PgRole::Primary, &c, &local), &s);
    assert_eq!(p.drop, vec!["dummy".to_string()]);
    // Paused: nothing is dropped.
    let p = plan(&input("pg0", &tags, PgRole::Primary, &c, &local), &SlotSettings { paused: true, ..s });
    assert!(p.drop.is_empty());
}

#[test]
fn permanent_slots_on_primary_and_replicas() {
    let c = cluster(
        "pg0",
        vec![member("pg0", None, false, None), member("pg1", None, false, None), member("pg2", None, false, None)],
    );
    let s = SlotSettings {
        permanent: vec![perm("test_physical", SlotKind::Physical), perm("test_logical", test_decoding())],
        ..SlotSettings::default()
    };
    let tags = Tags::default();
    let p = plan(&input("pg0", &tags, PgRole::Primary, &c, &[]), &s);
    assert_eq!(p.create_physical, vec!["pg1".to_string(), "pg2".into(), "test_physical".into()]);
    assert_eq!(
        p.create_logical,
        vec![("test_logical".to_string(), "postgres".to_string(), "test_decoding".to_string())]
    );

    // A replica keeps slots for the other members and the permanent ones; the logical slot is copied once the
    // leader publishes its position, then advanced (never past what the replica replayed).
    let leader_slots =
        vec![("test_logical".to_string(), 100), ("test_physical".to_string(), 90), ("pg0".to_string(), 120)];
    let mut i = input("pg1", &tags, PgRole::Replica, &c, &[]);
    i.leader_slots = &leader_slots;
    let p = plan(&i, &s);
    assert_eq!(p.create_physical, vec!["pg0".to_string(), "pg2".into(), "test_physical".into()]);
    assert_eq!(p.copy, vec!["test_logical".to_string()]);
    assert!(p.create_logical.is_empty());

    let local = [
        logical("test_logical", "postgres", "test_decoding", 50),
        physical("test_physical", Some(40)),
        physical("pg0", Some(40)),
    ];
    let mut i = input("pg1", &tags, PgRole::Replica, &c, &local);
    i.leader_slots = &leader_slots;
    i.replay_lsn = Some(95);
    let p = plan(&i, &s);
    assert!(p.copy.is_empty());
    assert_eq!(
        p.advance,
        vec![
            Advance { name: "pg0".into(), database: None, lsn: 120 },
            Advance { name: "test_physical".into(), database: None, lsn: 90 },
            Advance { name: "test_logical".into(), database: Some("postgres".into()), lsn: 95 },
        ]
    );
}

#[test]
fn nostream_and_its_cascade_get_no_logical_slots() {
    let c = cluster(
        "pg0",
        vec![
            member("pg0", None, false, None),
            member("pg1", None, true, None),
            member("pg2", Some("pg1"), false, None),
        ],
    );
    let s = SlotSettings { permanent: vec![perm("test_logical", test_decoding())], ..SlotSettings::default() };
    let leader_slots = vec![("test_logical".to_string(), 100)];
    let t1 = Tags { nostream: true, ..Tags::default() };
    let mut i = input("pg1", &t1, PgRole::Replica, &c, &[]);
    i.leader_slots = &leader_slots;
    assert!(plan(&i, &s).copy.is_empty());
    let t2 = Tags { replicatefrom: Some("pg1".into()), ..Tags::default() };
    let mut i = input("pg2", &t2, PgRole::Replica, &c, &[]);
    i.leader_slots = &leader_slots;
    assert!(plan(&i, &s).copy.is_empty());
    // pg1 keeps a slot for pg2, which streams from it; the primary keeps none for the nostream pg1.
    let p = plan(&input("pg1", &t1, PgRole::Replica, &c, &[]), &s);
    assert!(p.create_physical.contains(&"pg2".to_string()));
    let p = plan(&input("pg0", &Tags::default(), PgRole::Primary, &c, &[]), &s);
    assert!(!p.create_physical.contains(&"pg1".to_string()));
    assert!(needs_hot_standby_feedback(&c, "pg0", &Tags::default(), &s, 15));
    assert!(!needs_hot_standby_feedback(&c, "pg1", &t1, &s, 15));
}

#[test]
fn nofailover_members_keep_only_cascading_slots() {
    let c = cluster(
        "pg0",
        vec![
            member("pg0", None, false, None),
            member("pg1", None, false, None),
            member("pg2", None, false, None),
            member("pg3", Some("pg2"), false, None),
        ],
    );
    let s = SlotSettings { permanent: vec![perm("test_physical", SlotKind::Physical)], ..SlotSettings::default() };
    let t = Tags { nofailover: true, ..Tags::default() };
    let p = plan(&input("pg2", &t, PgRole::Replica, &c, &[]), &s);
    assert_eq!(p.create_physical, vec!["pg3".to_string()]);
}

#[test]
fn retained_slots_expire_after_member_slots_ttl() {
    let s = SlotSettings {
        member_slots_ttl: 60,
        permanent: vec![perm("pg3", SlotKind::Physical)],
        ..SlotSettings::default()
    };
    let c = cluster(
        "pg0",
        vec![member("pg0", None, false, None), member("pg1", None, false, None), member("pg3", None, false, None)],
    );
    let mut r = RetainedSlots::default();
    let published = vec![("pg1".to_string(), 1), ("pg3".to_string(), 1), ("pg0".to_string(), 2)];
    let (retain, _) = r.update(Time(0), "pg0", &c, &published, &s);
    // Permanent slots are not member slots to retain.
    assert_eq!(retain, vec!["pg0".to_string(), "pg1".into()]);
    let gone = cluster("pg0", vec![member("pg0", None, false, None)]);
    let published = vec![("pg1".to_string(), 1), ("pg0".to_string(), 2)];
    let (retain, log) = r.update(Time(59_000), "pg0", &gone, &published, &s);
    assert_eq!(retain, vec!["pg0".to_string(), "pg1".into()]);
    assert!(log.is_empty());
    let (retain, log) = r.update(Time(60_000), "pg0", &gone, &published, &s);
    assert_eq!(retain, vec!["pg0".to_string()]);
    assert_eq!(log[0].1, "Replication slot 'pg1' for absent cluster member is expired after 60 sec.");

    // The retained slot stays wanted (not dropped) until then.
    let tags = Tags::default();
    let local = [physical("pg1", Some(5))];
    let retained = vec!["pg1".to_string()];
    let mut i = input("pg0", &tags, PgRole::Primary, &gone, &local);
    i.retain_slots = &retained;
    assert!(plan(&i, &s).drop.is_empty());
    i.retain_slots = &[];
    assert_eq!(plan(&i, &s).drop, vec!["pg1".to_string()]);
}

#[test]
fn leader_publishes_wanted_slots_and_itself() {
    let c = cluster("pg0", vec![member("pg0", None, false, None), member("pg1", None, false, None)]);
    let s = SlotSettings { permanent: vec![perm("test_logical", test_decoding())], ..SlotSettings::default() };
    let tags = Tags::default();
    let local = [
        physical("pg1", Some(10)),
        logical("test_logical", "postgres", "test_decoding", 7),
        physical("other", Some(3)),
    ];
    let i = input("pg0", &tags, PgRole::Primary, &c, &local);
    assert_eq!(
        published_slots(&i, &s, 99),
        vec![("pg1".to_string(), 10), ("test_logical".into(), 7), ("pg0".into(), 99)]
    );
    let s0 = SlotSettings { member_slots_ttl: 0, ..s };
    assert_eq!(published_slots(&i, &s0, 99), vec![("test_logical".to_string(), 7)]);
}

#[test]
fn physical_slot_with_stale_xmin_is_recreated_and_lost_slots_dropped() {
    let c = cluster("pg1", vec![member("pg0", None, false, None), member("pg1", None, false, None)]);
    let tags = Tags::default();
    let mut stale = physical("pg1", Some(5));
    stale.has_xmin = true;
    let local = [stale];
    // On replica pg0, pg1's slot (the leader's) is not expected to be active.
    let p = plan(&input("pg0", &tags, PgRole::Replica, &c, &local), &SlotSettings::default());
    assert_eq!(p.drop, vec!["pg1".to_string()]);
    assert_eq!(p.create_physical, vec!["pg1".to_string()]);
    let mut lost = physical("pg1", Some(5));
    lost.wal_lost = true;
    let local = [lost];
    let p = plan(&input("pg0", &tags, PgRole::Replica, &c, &local), &SlotSettings::default());
    assert_eq!(p.drop, vec!["pg1".to_string()]);
    assert_eq!(p.create_physical, vec!["pg1".to_string()]);
}
