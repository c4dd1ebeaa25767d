//! Decisions the REST API and the agent's shutdown ask of the core outside a loop step: a `POST /reinitialize`, a
//! failsafe heartbeat (`POST /failsafe`), and what a graceful shutdown (SIGTERM) does.

use crate::action::Action;
use crate::core::Ha;
use crate::view::{Busy, ClusterView, PgRole, Settings};

/// What a graceful shutdown does (Patroni's `Ha.shutdown`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shutdown {
    /// Stop PostgreSQL (fast, after a checkpoint). Paused, it is left running, and the key with it.
    pub stop_postgres: bool,
    /// Once PostgreSQL is down, delete the leader key with the last checkpoint's position so a replica takes over
    /// at once instead of waiting for the key to expire.
    pub release_key: bool,
    /// Logged when nothing is done.
    pub log: Option<&'static str>,
}

impl Ha {
    /// `POST /reinitialize`: the action to run, or why not, in Patroni's words and order (`Ha.reinitialize`).
    /// `busy`: the long action in progress, which `force` interrupts.
    pub fn reinitialize_request(
        &self,
        s: &Settings,
        cluster: Option<&ClusterView>,
        busy: Option<&Busy>,
        force: bool,
    ) -> Result<Action, String> {
        let Some(leader) = cluster.and_then(|c| c.leader.as_ref()) else {
            return Err("Cluster has no leader, can not reinitialize".into());
        };
        if *leader == s.name {
            return Err("I am the leader, can not reinitialize".into());
        }
        if let (Some(busy), false) = (busy, force) {
            return Err(format!("{} already in progress", busy.action_text()));
        }
        Ok(Action::Reinitialize { from: Some(leader.clone()) })
    }

    /// SIGTERM.
    pub fn shutdown(&self, s: &Settings) -> Shutdown {
        if s.pause {
            return Shutdown {
                stop_postgres: false,
                release_key: false,
                log: Some("Leader key is not deleted and Postgresql is not stopped due paused state"),
            };
        }
        Shutdown { stop_postgres: true, release_key: self.holds_lock(), log: None }
    }
}

/// `POST /failsafe` from a leader cut off from the DCS: whether this member confirms it. A running primary never
/// does (Patroni: "Running as a leader"): confirming would let two primaries run.
pub fn failsafe_confirmation(role: PgRole, running: bool) -> Result<(), &'static str> {
    if running && role == PgRole::Primary {
        return Err("Running as a leader");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(leader: Option<&str>) -> ClusterView {
        ClusterView { leader: leader.map(Into::into), ..ClusterView::default() }
    }

    #[test]
    fn reinitialize_is_refused_as_patroni_refuses_it() {
        let ha = Ha::new();
        let s = Settings { name: "pg2".into(), ..Settings::default() };
        let no = |c: Option<&ClusterView>, b: Option<&Busy>, force| ha.reinitialize_request(&s, c, b, force);
        assert_eq!(no(None, None, false).unwrap_err(), "Cluster has no leader, can not reinitialize");
        assert_eq!(no(Some(&cluster(None)), None, false).unwrap_err(), "Cluster has no leader, can not reinitialize");
        assert_eq!(no(Some(&cluster(Some("pg2"))), None, false).unwrap_err(), "I am the leader, can not reinitialize");
        let busy = Some(&Busy::Restarting);
        assert_eq!(no(Some(&cluster(Some("pg1"))), busy, false).unwrap_err(), "restart already in progress");
        let go = Action::Reinitialize { from: Some("pg1".into()) };
        assert_eq!(no(Some(&cluster(Some("pg1"))), busy, true), Ok(go.clone()));
        assert_eq!(no(Some(&cluster(Some("pg1"))), None, false), Ok(go));
    }

    #[test]
    fn shutdown_stops_and_releases_unless_paused() {
        let mut ha = Ha::new();
        let s = Settings { name: "pg1".into(), ..Settings::default() };
        assert_eq!(ha.shutdown(&s), Shutdown { stop_postgres: true, release_key: false, log: None });
        ha.held_lock = true;
        assert!(ha.shutdown(&s).release_key);
        let paused = Settings { pause: true, ..s };
        let plan = ha.shutdown(&paused);
        assert!(!plan.stop_postgres && !plan.release_key && plan.log.is_some());
    }

    #[test]
    fn a_running_primary_does_not_confirm_a_failsafe_leader() {
        assert_eq!(failsafe_confirmation(PgRole::Primary, true), Err("Running as a leader"));
        assert_eq!(failsafe_confirmation(PgRole::Primary, false), Ok(()));
        assert_eq!(failsafe_confirmation(PgRole::Replica, true), Ok(()));
    }
}
