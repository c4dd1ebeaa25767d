//! [`PgNode`]'s side of the slot plan: reading the slots, running the plan's statements and copying logical slots
//! from the primary. The HA loop never waits for the instance lock: while a long action holds PostgreSQL, slots
//! wait for the next loop.

use patroni_ha::slots::{LocalSlot, SlotKind, SlotPlan};
use patroni_postgres::slots::SlotState;
use patroni_postgres::{Db, Lsn};
use tracing::{info, warn};

use crate::node::{NodeError, NodeResult, Upstream};
use crate::pg::PgNode;
use crate::slots::SlotObservation;

fn err(e: impl std::fmt::Display) -> NodeError {
    NodeError::new(e.to_string())
}

fn local_slot(s: SlotState) -> Option<LocalSlot> {
    let kind = match s.slot_type.as_str() {
        "physical" => SlotKind::Physical,
        "logical" => {
            SlotKind::Logical { database: s.database.unwrap_or_default(), plugin: s.plugin.unwrap_or_default() }
        }
        _ => return None,
    };
    Some(LocalSlot {
        name: s.name,
        kind,
        restart_lsn: s.restart_lsn.map(Lsn::as_u64),
        confirmed_flush_lsn: s.confirmed_flush_lsn.map(Lsn::as_u64),
        has_xmin: s.has_xmin,
        wal_lost: s.wal_lost,
    })
}

pub(crate) async fn observe(node: &PgNode) -> NodeResult<Option<SlotObservation>> {
    let Ok(pg) = node.pg.try_lock() else { return Ok(None) };
    if !pg.is_running() {
        return Ok(None);
    }
    let version = pg.version();
    let db = pg.db().await.map_err(err)?;
    let local = db.managed_slots(version.0).await.map_err(err)?.into_iter().filter_map(local_slot).collect();
    let replay_lsn = db.replay_lsn().await.map_err(err)?.map(Lsn::as_u64);
    Ok(Some(SlotObservation { local, major: version.major(), replay_lsn }))
}

pub(crate) async fn run_plan(node: &PgNode, plan: &SlotPlan) {
    let Ok(pg) = node.pg.try_lock() else { return };
    if !pg.is_running() {
        return;
    }
    let timeout = pg.settings().query_timeout;
    let db = match pg.db().await {
        Ok(db) => db,
        Err(e) => {
            warn!("failed to connect to PostgreSQL to manage replication slots: {e}");
            return;
        }
    };
    for name in &plan.drop {
        match db.drop_slot(name).await {
            Ok(true) => info!("Dropped replication slot '{name}'"),
            Ok(false) => warn!("Unable to drop replication slot '{name}', slot is active"),
            Err(e) => warn!("Failed to drop replication slot '{name}': {e}"),
        }
    }
    for name in &plan.create_physical {
        if let Err(e) = db.create_physical_slot(name).await {
            warn!("Failed to create physical replication slot '{name}': {e}");
        }
    }
    for a in plan.advance.iter().filter(|a| a.database.is_none()) {
        if let Err(e) = db.advance_slot(&a.name, Lsn(a.lsn)).await {
            warn!("Error while advancing replication slot {} to position '{}': {e}", a.name, Lsn(a.lsn));
        }
    }
    drop(db);
    // Logical slots live in a database: one connection per database, each bounded like the local one.
    let mut databases: Vec<&str> = plan.create_logical.iter().map(|(_, d, _)| d.as_str()).collect();
    databases.extend(plan.advance.iter().filter_map(|a| a.database.as_deref()));
    databases.sort_unstable();
    databases.dedup();
    for database in databases {
        let db = match Db::connect(&pg.local_params_on(database), timeout).await {
            Ok(db) => db,
            Err(e) => {
                warn!("Failed to connect to database {database} to manage logical replication slots: {e}");
                continue;
            }
        };
        for (name, _, plugin) in plan.create_logical.iter().filter(|(_, d, _)| d == database) {
            if let Err(e) = db.create_logical_slot(name, plugin).await {
                warn!("Failed to create logical replication slot '{name}' plugin='{plugin}': {e}");
            }
        }
        for a in plan.advance.iter().filter(|a| a.database.as_deref() == Some(database)) {
            if let Err(e) = db.advance_slot(&a.name, Lsn(a.lsn)).await {
                warn!("Failed to advance logical replication slot '{}': {e}", a.name);
            }
        }
    }
}

pub(crate) async fn copy_logical(
    node: &PgNode,
    from: &Upstream,
    names: &[String],
    wanted: &[(String, SlotKind)],
) -> NodeResult<()> {
    let leader = PgNode::upstream_params(from)?;
    let mut pg = node.pg.lock().await;
    let copies = match pg.read_leader_slot_copies(&leader, names).await {
        Ok(c) => c,
        Err(e) => {
            warn!("Failed to copy logical slots from the {} via postgresql connection: {e}", from.name);
            return Ok(());
        }
    };
    let copies: Vec<_> = copies
        .into_iter()
        .filter(|c| {
            let want = SlotKind::Logical { database: c.database.clone(), plugin: c.plugin.clone() };
            let ok = wanted.iter().any(|(n, k)| *n == c.name && *k == want);
            if !ok {
                warn!("Will not copy the logical slot \"{}\" due to the configuration mismatch", c.name);
            }
            ok
        })
        .collect();
    if copies.is_empty() || !pg.is_running() {
        return Ok(());
    }
    pg.install_logical_slots(&copies).await.map_err(err)?;
    let names: Vec<&str> = copies.iter().map(|c| c.name.as_str()).collect();
    info!("Copied logical slots {names:?} from {}", from.name);
    Ok(())
}
