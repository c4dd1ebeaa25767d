//! The [`Dcs`] trait on [`ZooKeeper`]: each operation as the znode calls Python Patroni makes for it.

use async_trait::async_trait;

use super::*;
use crate::dcs::Dcs;
use crate::model::{Leader, MemberData};

#[async_trait]
impl Dcs for ZooKeeper {
    fn name(&self) -> &str {
        &self.name
    }

    fn ttl(&self) -> Duration {
        ZooKeeper::ttl(self)
    }

    /// The session timeout is fixed when a session opens: a new TTL closes the session (its ephemeral znodes go)
    /// and the next call opens one with the new timeout, as Patroni restarts kazoo.
    fn set_ttl(&self, ttl: Duration) {
        let ms = millis(ttl).max(1000);
        if self.ttl_ms.swap(ms, Ordering::Relaxed) != ms {
            info!("ZooKeeper session timeout set to {ms} ms; opening a new session");
            if let Ok(mut s) = self.session.try_lock() {
                s.take();
            }
            self.wake.notify_one();
        }
    }

    fn retry_timeout(&self) -> Duration {
        Duration::from_millis(self.retry_timeout_ms.load(Ordering::Relaxed))
    }

    fn set_retry_timeout(&self, retry_timeout: Duration) {
        self.retry_timeout_ms.store(millis(retry_timeout), Ordering::Relaxed);
    }

    async fn get_cluster(&self) -> DcsResult<Cluster> {
        let coordinator = self.is_coordinator();
        let dir = self.path.prefix().trim_end_matches('/').to_string();
        let scope_dir = self.path.scope_prefix().trim_end_matches('/').to_string();
        let nodes = self
            .run(self.deadline(), "get_cluster", |c| {
                let (dir, scope_dir) = (dir.clone(), scope_dir.clone());
                async move {
                    let mut out = Vec::new();
                    if coordinator {
                        let groups = match c.list_children(&scope_dir).await {
                            Ok(g) => g,
                            Err(zk::Error::NoNode) => vec![],
                            Err(e) => return Err(classify(e, &scope_dir)),
                        };
                        for g in groups.iter().filter(|g| g.parse::<u32>().is_ok()) {
                            Self::load_dir(&c, &format!("{scope_dir}/{g}"), &format!("{g}/"), &mut out).await?;
                        }
                    } else {
                        Self::load_dir(&c, &dir, "", &mut out).await?;
                    }
                    Ok(out)
                }
            })
            .await?;
        let cluster =
            if coordinator { Cluster::from_mpp_nodes(nodes, COORDINATOR_GROUP) } else { Cluster::from_nodes(nodes) };
        self.remember(&cluster);
        Ok(cluster)
    }

    async fn attempt_to_acquire_leader(&self) -> DcsResult<()> {
        self.acquire(self.deadline()).await
    }

    async fn take_leader(&self) -> DcsResult<()> {
        let path = self.znode(keys::LEADER);
        self.run(self.deadline(), "leader", |c| {
            let path = path.clone();
            async move {
                match self.create(&c, &path, self.name.as_bytes(), true).await {
                    Err(Failure::Fail(DcsError::CompareFailed { .. })) => {
                        match c.delete(&path, None).await {
                            Ok(()) | Err(zk::Error::NoNode) => {}
                            Err(e) => return Err(classify(e, &path)),
                        }
                        self.create(&c, &path, self.name.as_bytes(), true).await.map(drop)
                    }
                    r => r.map(drop),
                }
            }
        })
        .await
    }

    async fn update_leader(
        &self,
        _cluster: &Cluster,
        status: Option<&Status>,
        failsafe: Option<&Failsafe>,
    ) -> DcsResult<()> {
        let path = self.znode(keys::LEADER);
        // The ephemeral znode lives as long as the session, which the client keeps alive: the refresh is a check
        // that the znode is still ours and of this session (and so that ZooKeeper answers within retry_timeout).
        self.run(self.deadline(), "leader", |c| {
            let path = path.clone();
            async move {
                match c.get_data(&path).await {
                    Ok((data, _)) if data != self.name.as_bytes() => {
                        Err(Failure::Fail(DcsError::CompareFailed { key: path.clone() }))
                    }
                    Ok((_, stat)) if stat.ephemeral_owner == c.session_id().0 => Ok(()),
                    Ok((_, stat)) => {
                        warn!("Recreating the leader ZNode due to ownership mismatch");
                        match c.delete(&path, Some(stat.version)).await {
                            Ok(()) | Err(zk::Error::NoNode) => {}
                            Err(e) => return Err(classify(e, &path)),
                        }
                        self.create(&c, &path, self.name.as_bytes(), true).await.map(drop)
                    }
                    // Gone with an old session and nobody took it: take it again, as for etcd.
                    Err(zk::Error::NoNode) => self.create(&c, &path, self.name.as_bytes(), true).await.map(drop),
                    Err(e) => Err(classify(e, &path)),
                }
            }
        })
        .await?;
        if let Some(st) = status {
            if let Err(e) = self.write_status_inner(st).await {
                warn!("could not write the leader status: {e}");
            }
        }
        if let Some(f) = failsafe {
            if let Err(e) = self.write_failsafe_inner(f).await {
                warn!("could not write the failsafe topology: {e}");
            }
        }
        Ok(())
    }

    async fn delete_leader(&self, leader: &Leader, last_lsn: Option<u64>) -> DcsResult<()> {
        let path = self.znode(keys::LEADER);
        if leader.name != self.name {
            return Err(DcsError::CompareFailed { key: path });
        }
        if let Some(lsn) = last_lsn {
            let st = self.last_status_with_lsn(lsn);
            if let Err(e) = self.write_status_inner(&st).await {
                warn!("could not write the last leader position: {e}");
            }
        }
        self.run(self.deadline(), "leader", |c| {
            let path = path.clone();
            async move {
                match c.get_data(&path).await {
                    Ok((data, stat)) if data == self.name.as_bytes() => {
                        c.delete(&path, Some(stat.version)).await.map_err(|e| classify(e, &path))
                    }
                    Ok(_) | Err(zk::Error::NoNode) => Err(Failure::Fail(DcsError::CompareFailed { key: path.clone() })),
                    Err(e) => Err(classify(e, &path)),
                }
            }
        })
        .await?;
        debug!("released the leader lock");
        Ok(())
    }

    async fn touch_member(&self, data: &MemberData) -> DcsResult<()> {
        let path = self.path.member(&self.name);
        let value = data.to_json();
        let observed = self.observed.lock().ok().and_then(|o| o.member.clone());
        let session = self
            .run(self.deadline(), "member", |c| {
                let (path, value, observed) = (path.clone(), value.clone(), observed.clone());
                async move {
                    let session = Self::session_of(&c);
                    match &observed {
                        Some((Some(owner), v)) if *owner == session && *v == value => return Ok(session),
                        Some((Some(owner), _)) if *owner != session => {
                            warn!("Recreating the member ZNode due to ownership mismatch");
                            match c.delete(&path, None).await {
                                Ok(()) | Err(zk::Error::NoNode) => {}
                                Err(e) => return Err(classify(e, &path)),
                            }
                        }
                        _ => {}
                    }
                    match self.create(&c, &path, value.as_bytes(), true).await {
                        Ok(_) => Ok(session),
                        Err(Failure::Fail(DcsError::CompareFailed { .. })) => {
                            c.set_data(&path, value.as_bytes(), None).await.map_err(|e| classify(e, &path))?;
                            Ok(session)
                        }
                        Err(e) => Err(e),
                    }
                }
            })
            .await?;
        if let Ok(mut o) = self.observed.lock() {
            o.member = Some((Some(session), value));
        }
        Ok(())
    }

    async fn initialize(&self, create_new: bool, sysid: &str) -> DcsResult<()> {
        let path = self.znode(keys::INITIALIZE);
        self.run(self.deadline(), "initialize", |c| {
            let path = path.clone();
            async move {
                if create_new {
                    self.create(&c, &path, sysid.as_bytes(), false).await.map(drop)
                } else {
                    c.set_data(&path, sysid.as_bytes(), None).await.map(drop).map_err(|e| classify(e, &path))
                }
            }
        })
        .await
    }

    async fn cancel_initialization(&self) -> DcsResult<()> {
        self.delete_maybe_cas(keys::INITIALIZE, None).await
    }

    async fn set_config_value(&self, value: &str, version: Option<Version>) -> DcsResult<()> {
        self.set_or_create(keys::CONFIG, value, version).await.map(drop)
    }

    async fn set_failover_value(&self, value: &str, version: Option<Version>) -> DcsResult<()> {
        self.set_or_create(keys::FAILOVER, value, version).await.map(drop)
    }

    async fn delete_failover(&self, version: Option<Version>) -> DcsResult<()> {
        self.delete_maybe_cas(keys::FAILOVER, version).await
    }

    async fn set_sync_state_value(&self, value: &str, version: Option<Version>) -> DcsResult<Version> {
        self.set_or_create(keys::SYNC, value, version).await
    }

    /// Patroni empties the `sync` znode (`{}`) rather than deleting it.
    async fn delete_sync_state(&self, version: Option<Version>) -> DcsResult<()> {
        self.set_or_create(keys::SYNC, "{}", version).await.map(drop)
    }

    async fn set_history_value(&self, value: &str) -> DcsResult<()> {
        self.set_or_create(keys::HISTORY, value, None).await.map(drop)
    }

    async fn write_status(&self, status: &Status) -> DcsResult<()> {
        self.write_status_inner(status).await
    }

    async fn write_failsafe(&self, failsafe: &Failsafe) -> DcsResult<()> {
        self.write_failsafe_inner(failsafe).await
    }

    async fn delete_cluster(&self) -> DcsResult<()> {
        let dir = self.path.prefix().trim_end_matches('/').to_string();
        self.run(self.deadline(), "delete_cluster", |c| {
            let dir = dir.clone();
            async move {
                // Depth first: a znode with children cannot be deleted.
                let mut order = Vec::new();
                let mut stack = vec![dir.clone()];
                while let Some(p) = stack.pop() {
                    match c.list_children(&p).await {
                        Ok(children) => stack.extend(children.iter().map(|ch| format!("{p}/{ch}"))),
                        Err(zk::Error::NoNode) => continue,
                        Err(e) => return Err(classify(e, &p)),
                    }
                    order.push(p);
                }
                for p in order.iter().rev() {
                    match c.delete(p, None).await {
                        Ok(()) | Err(zk::Error::NoNode) => {}
                        Err(e) => return Err(classify(e, p)),
                    }
                }
                Ok(())
            }
        })
        .await?;
        if let Ok(mut o) = self.observed.lock() {
            *o = Observed::default();
        }
        Ok(())
    }

    /// Watches the leader and config znodes (as Patroni does) and the session state: wakes when either znode
    /// changes, the session is lost, or [`Dcs::wakeup`] is called. A leader znode that already differs from the
    /// snapshot's (`leader_version`, the zxid of its last change) wakes at once.
    async fn watch(&self, leader_version: Option<Version>, timeout: Duration) -> DcsResult<bool> {
        let notified = self.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let end = Instant::now() + timeout;
        let watches = async {
            let c = self.current().await?;
            let leader = self.znode(keys::LEADER);
            let config = self.znode(keys::CONFIG);
            let (stat, leader_watch) = c.check_and_watch_stat(&leader).await.ok()?;
            let (_, config_watch) = c.check_and_watch_stat(&config).await.ok()?;
            Some((c, stat.map(|s| s.mzxid), leader_watch, config_watch))
        };
        let set_up = tokio::select! {
            _ = &mut notified => return Ok(true),
            r = tokio::time::timeout(timeout, watches) => r.ok().flatten(),
        };
        let Some((c, current, leader_watch, config_watch)) = set_up else {
            tokio::select! {
                _ = &mut notified => return Ok(true),
                _ = tokio::time::sleep_until(end) => return Ok(false),
            }
        };
        if current != leader_version {
            return Ok(true);
        }
        // A lost connection is not a change: the session may come back with the next server, and a DCS that cannot
        // be reached is for the next read to report. A session that ended wakes the loop (its znodes are gone).
        let mut state = c.state_watcher();
        let leader_change = leader_watch.changed();
        let config_change = config_watch.changed();
        tokio::pin!(leader_change, config_change);
        let (mut leader_done, mut config_done) = (false, false);
        loop {
            tokio::select! {
                _ = &mut notified => return Ok(true),
                e = &mut leader_change, if !leader_done => {
                    if e.event_type != zk::EventType::Session || e.session_state.is_terminated() {
                        return Ok(true);
                    }
                    leader_done = true;
                }
                e = &mut config_change, if !config_done => {
                    if e.event_type != zk::EventType::Session || e.session_state.is_terminated() {
                        return Ok(true);
                    }
                    config_done = true;
                }
                s = state.changed() => {
                    if s.is_terminated() {
                        return Ok(true);
                    }
                }
                _ = tokio::time::sleep_until(end) => return Ok(false),
            }
        }
    }

    fn wakeup(&self) {
        self.wake.notify_one();
    }

    async fn write_leader_optime(&self, last_lsn: u64) -> DcsResult<()> {
        let st = self.last_status_with_lsn(last_lsn);
        self.write_status_inner(&st).await
    }
}
