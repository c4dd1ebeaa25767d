//! Asking other members' REST APIs: their state during a leader race, and their confirmation in failsafe mode.

use std::time::Duration;

use futures::future::join_all;
use patroni_api::MemberStatus;
use patroni_ha::{PeerReply, PeerStatus, Tags};
use serde_json::{json, Value};

use crate::core_view::role_from_str;
use crate::member::Addresses;

/// `GET /patroni` on each member in parallel, each bounded by `timeout`. A member without a known URL, or that
/// does not answer in time, is reported with no reply: it cannot be the healthiest.
pub async fn fetch(
    http: &reqwest::Client,
    members: Vec<(String, Option<String>)>,
    timeout: Duration,
) -> Vec<PeerStatus> {
    let calls = members.into_iter().map(|(name, url)| async move {
        let reply = match url {
            Some(url) => get_status(http, &name, &url, timeout).await,
            None => None,
        };
        PeerStatus { name, reply }
    });
    join_all(calls).await
}

/// Logs each answer and each failure in Patroni's words: a peer silently left out of a leader race (a TLS or
/// authentication problem between members, say) is otherwise invisible to the DBA.
async fn get_status(http: &reqwest::Client, name: &str, url: &str, timeout: Duration) -> Option<PeerReply> {
    let answer = async { http.get(url).timeout(timeout).send().await?.text().await };
    match answer.await {
        Ok(text) => {
            tracing::info!("Got response from {name} {url}: {text}");
            // Health endpoints answer 503 with the same body; any parseable status is an answer.
            let body: Value = serde_json::from_str(&text).ok()?;
            parse_status(&body)
        }
        Err(e) => {
            tracing::warn!("Request failed to {name}: GET {url} ({})", error_chain(&e));
            None
        }
    }
}

/// `e` and its causes: reqwest's own text alone ("error sending request") hides the TLS alert or refusal.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Reads the fields of a `/patroni` answer that the leader race compares, through the REST API's own type of that
/// document (the one `patronictl` reads too), so the agent and the tools cannot disagree about a peer's answer.
pub fn parse_status(body: &Value) -> Option<PeerReply> {
    let status: MemberStatus = serde_json::from_value(body.clone()).ok()?;
    let x = &status.xlog;
    let lsn = x.location.or_else(|| match (x.received_location, x.replayed_location) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    });
    let tags = &status.tags;
    // The same reading of tags as the member keys' (`Member::nofailover` and the others).
    let (nofailover, failover_priority) = patroni_dcs::model::tags::nofailover(tags);
    let (nosync, _) = patroni_dcs::model::tags::nosync(tags);
    Some(PeerReply {
        role: role_from_str(status.role.as_deref()),
        running: status.state.as_deref() == Some("running"),
        lsn,
        timeline: status.timeline.and_then(|t| u32::try_from(t).ok()),
        tags: Tags {
            nofailover,
            failover_priority,
            nosync,
            replicatefrom: tags.get("replicatefrom").and_then(Value::as_str).map(str::to_owned),
            clonefrom: patroni_dcs::model::tags::clonefrom(tags),
            nostream: patroni_dcs::model::tags::nostream(tags),
        },
    })
}

/// `POST /failsafe` to every member: the primary may stay primary only if all of them accept.
pub async fn failsafe_confirm(
    http: &reqwest::Client,
    name: &str,
    addresses: &Addresses,
    members: Vec<(String, Option<String>)>,
    timeout: Duration,
) -> bool {
    let body = json!({"name": name, "conn_url": addresses.conn_url, "api_url": addresses.api_url});
    let calls = members.into_iter().map(|(_, url)| {
        let body = body.clone();
        async move {
            let Some(url) = url else { return false };
            let url = failsafe_url(&url);
            match http.post(url).json(&body).timeout(timeout).send().await {
                Ok(r) => r.status().is_success(),
                Err(_) => false,
            }
        }
    });
    join_all(calls).await.into_iter().all(|ok| ok)
}

/// Members publish `.../patroni`; failsafe lives beside it.
fn failsafe_url(api_url: &str) -> String {
    match api_url.strip_suffix("/patroni") {
        Some(base) => format!("{base}/failsafe"),
        None => format!("{}/failsafe", api_url.trim_end_matches('/')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use patroni_ha::PgRole;

    #[test]
    fn reads_a_replica_status_as_patroni_writes_it() {
        let body = json!({
            "state": "running", "role": "replica", "server_version": 150018,
            "xlog": {"received_location": 67109120, "replayed_location": 67109000, "paused": false},
            "timeline": 2, "tags": {"nofailover": "true"},
            "patroni": {"version": "4.1.5", "scope": "batman", "name": "pg2"}
        });
        let r = parse_status(&body).unwrap();
        assert_eq!(r.role, PgRole::Replica);
        assert!(r.running);
        assert_eq!(r.lsn, Some(67109120));
        assert_eq!(r.timeline, Some(2));
        assert!(r.tags.nofailover);
        assert_eq!(r.tags.failover_priority, 0);
    }

    #[test]
    fn reads_a_primary_written_by_old_patroni() {
        let body = json!({"state": "running", "role": "master", "xlog": {"location": 100}});
        let r = parse_status(&body).unwrap();
        assert_eq!(r.role, PgRole::Primary);
        assert_eq!(r.lsn, Some(100));
    }

    /// Issue #15: `nofailover: "y"` was true in the member key but false in a peer's answer and in the REST
    /// status, so the core and a peer's reply disagreed about the same member. Patroni reads it with `bool()`.
    #[test]
    fn a_tag_reads_the_same_in_the_member_key_the_peer_reply_and_the_rest_status() {
        for (tags, nofailover) in [
            (json!({"nofailover": "y"}), true),
            (json!({"nofailover": "no"}), true),
            (json!({"nofailover": ""}), false),
            (json!({"nofailover": 0, "failover_priority": 2}), false),
            (json!({"failover_priority": 0}), true),
        ] {
            let key = json!({"role": "replica", "state": "running", "tags": tags}).to_string();
            let member = patroni_dcs::model::Member::from_value("pg2", 1, None, &key, "members/pg2", &mut Vec::new());
            let core = crate::core_view::member_view(&member).tags;
            let body = json!({"state": "running", "role": "replica", "tags": tags});
            let peer = parse_status(&body).map(|r| r.tags);
            let mut rest = patroni_api::NodeStatus::starting(
                patroni_api::PatroniInfo { version: "4.1.4".into(), scope: "demo".into(), name: "pg2".into() },
                std::time::SystemTime::now(),
            );
            rest.tags = tags.as_object().cloned().unwrap_or_default();
            assert_eq!(core.nofailover, nofailover, "core view of {tags}");
            assert_eq!(peer.as_ref().map(|t| t.nofailover), Some(nofailover), "peer reply {tags}");
            assert_eq!(rest.nofailover(), nofailover, "REST status {tags}");
            assert_eq!(member.nofailover(), nofailover, "member key {tags}");
            assert_eq!(peer.map(|t| t.failover_priority), Some(core.failover_priority), "{tags}");
        }
    }

    #[test]
    fn failsafe_url_sits_beside_the_status_url() {
        assert_eq!(failsafe_url("http://10.0.0.1:8008/patroni"), "http://10.0.0.1:8008/failsafe");
    }
}
