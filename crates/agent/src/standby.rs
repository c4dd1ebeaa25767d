//! The executor's side of a standby cluster: the actions that make or keep this member the standby leader,
//! following the remote primary named in the `standby_cluster` section of the dynamic configuration.

use patroni_dcs::{Cluster, Status};
use patroni_ha::{Action, Busy, LocalState, PgRole, Plan};
use tracing::warn;

use crate::executor::Failure;
use crate::node::{Node, RemotePrimary};
use crate::runtime::Runtime;

impl<N: Node> Runtime<N> {
    pub(crate) async fn execute_standby(&mut self, action: &Action, cluster: Option<&Cluster>) -> Result<(), Failure> {
        let Some(remote) = RemotePrimary::from_config(&self.dynamic) else {
            return Err(Failure::Failed(format!("not running {action:?}: this is not a standby cluster")));
        };
        let node = self.node.clone();
        match action {
            Action::BootstrapStandby => {
                self.spawn_long(Busy::Bootstrapping, async move { node.bootstrap_standby(&remote).await })
            }
            Action::StartStandbyLeader => {
                self.spawn_long(Busy::Starting, async move { node.follow_remote(&remote).await })
            }
            Action::FollowRemote => node.follow_remote(&remote).await.map_err(|e| Failure::Failed(e.0))?,
            Action::DemoteCluster => {
                let dcs = self.dcs.clone();
                let cluster = cluster.cloned();
                self.spawn_long(Busy::Demoting, async move {
                    let lsn = node.demote_cluster(&remote).await?;
                    // The standby leader keeps the key; the shutdown checkpoint is the position it publishes.
                    if let (Some(c), Some(lsn)) = (&cluster, lsn) {
                        let status = Status { last_lsn: lsn, ..Status::default() };
                        if let Err(e) = dcs.update_leader(c, Some(&status), None).await {
                            warn!("failed to update the leader key after demoting the cluster: {e}");
                        }
                    }
                    Ok(())
                });
            }
            _ => {}
        }
        Ok(())
    }
}

/// Whether `plan` made this member the standby leader inline (a `FollowRemote` of a member that was not yet one).
pub(crate) fn role_changed_inline(plan: &Plan, local: &LocalState) -> bool {
    local.role != PgRole::StandbyLeader && plan.actions.contains(&Action::FollowRemote)
}
