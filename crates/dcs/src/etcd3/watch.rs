//! Reading etcd's streamed `/watch` answer: JSON messages back to back, arriving in arbitrary chunks.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use tracing::{debug, warn};

use super::client::{b64, b64_bytes, int, prefix_end, unb64, RpcError};
use super::Etcd3;
use crate::keys;

/// One change the watch reported.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WatchEvent {
    pub key: String,
    /// `None` for a delete.
    pub value: Option<String>,
    /// The revision of the change (for a delete: the revision of the delete).
    pub mod_revision: i64,
    pub lease: i64,
}

/// What a message means for the waiting caller.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WatchMessage {
    /// The watch exists; the header revision is etcd's revision at creation (not a promise that the events up to
    /// it were sent: a watch starting in the past catches up after this).
    Created,
    Events(Vec<WatchEvent>),
    /// No events: a progress notification. etcd sends these only to a watch that has caught up, so every event
    /// up to this header revision has been delivered.
    Progress(i64),
    /// The watch ended on the server side (e.g. the start revision was compacted): the caller cannot know what
    /// changed and should look again.
    Canceled(String),
}

/// Accumulates bytes and yields complete messages.
#[derive(Default)]
pub(crate) struct MessageBuffer {
    buf: Vec<u8>,
}

impl MessageBuffer {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// All complete messages so far; an incomplete tail stays buffered.
    pub fn drain(&mut self) -> Result<Vec<WatchMessage>, RpcError> {
        let mut out = Vec::new();
        let mut consumed = 0;
        {
            let mut stream = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
            loop {
                match stream.next() {
                    None => {
                        consumed = stream.byte_offset();
                        break;
                    }
                    Some(Ok(v)) => {
                        consumed = stream.byte_offset();
                        out.push(interpret(&v)?);
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(e)) => return Err(RpcError::Protocol(format!("bad watch message: {e}"))),
                }
            }
        }
        self.buf.drain(..consumed);
        Ok(out)
    }
}

fn interpret(v: &Value) -> Result<WatchMessage, RpcError> {
    if let Some(err) = v.get("error") {
        let message = err.get("message").and_then(Value::as_str).map(String::from).unwrap_or_else(|| err.to_string());
        return Ok(WatchMessage::Canceled(message));
    }
    let Some(result) = v.get("result") else {
        return Err(RpcError::Protocol(format!("watch message without result: {v}")));
    };
    if result.get("canceled").and_then(Value::as_bool) == Some(true) {
        let reason = match int(result.get("compact_revision")) {
            0 => result.get("cancel_reason").and_then(Value::as_str).unwrap_or("canceled").to_string(),
            rev => format!("start revision compacted (now {rev})"),
        };
        return Ok(WatchMessage::Canceled(reason));
    }
    let mut events = Vec::new();
    for e in result.get("events").and_then(Value::as_array).into_iter().flatten() {
        let kv = e.get("kv");
        let key = unb64(kv.and_then(|kv| kv.get("key")))?;
        let deleted = e.get("type").and_then(Value::as_str) == Some("DELETE");
        let value = if deleted { None } else { Some(unb64(kv.and_then(|kv| kv.get("value")))?) };
        let mod_revision = int(kv.and_then(|kv| kv.get("mod_revision")));
        let lease = int(kv.and_then(|kv| kv.get("lease")));
        events.push(WatchEvent { key, value, mod_revision, lease });
    }
    if !events.is_empty() {
        return Ok(WatchMessage::Events(events));
    }
    if result.get("created").and_then(Value::as_bool) == Some(true) {
        return Ok(WatchMessage::Created);
    }
    Ok(WatchMessage::Progress(int(result.get("header").and_then(|h| h.get("revision")))))
}

impl Etcd3 {
    /// Reads the watch stream until a change that matters arrives. Never returns on errors: the caller's timeout
    /// ends the wait, and the next snapshot reports an unreachable etcd.
    pub(super) async fn wait_for_change(&self, timeout: Duration) -> bool {
        let prefix = self.read_prefix();
        let (start, mut known) = match self.observed.lock() {
            Ok(o) => (o.revision.map(|r| r + 1), o.values.clone()),
            Err(_) => (None, HashMap::new()),
        };
        let mut create = json!({"key": b64(&prefix), "range_end": b64_bytes(&prefix_end(&prefix))});
        if let Some(rev) = start {
            create["start_revision"] = json!(rev.to_string());
        }
        let mut resp =
            match self.transport.open_watch(&json!({"create_request": create}), timeout + Duration::from_secs(1)).await
            {
                Ok(r) => r,
                Err(e) => {
                    debug!("etcd watch failed: {e}");
                    return std::future::pending().await;
                }
            };
        let leader_key = self.path.key(keys::LEADER);
        let relevant = [
            leader_key.clone(),
            self.path.key(keys::CONFIG),
            self.path.key(keys::FAILOVER),
            self.path.key(keys::INITIALIZE),
        ];
        let status_keys = [self.path.key(keys::STATUS), self.path.key(keys::LEADER_OPTIME)];
        let mut buffer = MessageBuffer::default();
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => {
                    debug!("etcd closed the watch stream");
                    return std::future::pending().await;
                }
                Err(e) => {
                    debug!("etcd watch stream broke: {e}");
                    return std::future::pending().await;
                }
            };
            buffer.push(&chunk);
            let messages = match buffer.drain() {
                Ok(m) => m,
                Err(e) => {
                    warn!("unreadable etcd watch stream: {e:?}");
                    return std::future::pending().await;
                }
            };
            for m in messages {
                match m {
                    WatchMessage::Created | WatchMessage::Progress(_) => {}
                    WatchMessage::Canceled(why) => {
                        debug!("etcd watch canceled: {why}");
                        return true;
                    }
                    WatchMessage::Events(events) => {
                        for e in events {
                            let old = known.get(&e.key).map(|(v, _)| v.clone());
                            let changed = old != e.value;
                            let leader_is_me = known.get(&leader_key).is_some_and(|(v, _)| *v == self.name);
                            match &e.value {
                                Some(v) => known.insert(e.key.clone(), (v.clone(), 0)),
                                None => known.remove(&e.key),
                            };
                            if changed && (relevant.contains(&e.key) || status_keys.contains(&e.key) && !leader_is_me) {
                                debug!("{} changed", e.key);
                                return true;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::client::b64;
    use super::*;

    #[test]
    fn messages_split_across_chunks() {
        let created = r#"{"result":{"header":{"revision":"5"},"created":true}}"#;
        let put = format!(
            r#"{{"result":{{"header":{{"revision":"6"}},"events":[{{"kv":{{"key":"{}","value":"{}","mod_revision":"6"}}}}]}}}}"#,
            b64("/service/c/leader"),
            b64("node2")
        );
        let del = format!(
            r#"{{"result":{{"events":[{{"type":"DELETE","kv":{{"key":"{}","mod_revision":"7"}}}}]}}}}"#,
            b64("/service/c/leader")
        );
        let all = format!("{created}\n{put}\n{del}\n");
        let mut b = MessageBuffer::default();
        let mut got = vec![];
        for chunk in all.as_bytes().chunks(7) {
            b.push(chunk);
            got.extend(b.drain().unwrap());
        }
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], WatchMessage::Created);
        assert_eq!(
            got[1],
            WatchMessage::Events(vec![WatchEvent {
                key: "/service/c/leader".into(),
                value: Some("node2".into()),
                mod_revision: 6,
                lease: 0
            }])
        );
        assert_eq!(
            got[2],
            WatchMessage::Events(vec![WatchEvent {
                key: "/service/c/leader".into(),
                value: None,
                mod_revision: 7,
                lease: 0
            }])
        );
        let mut b = MessageBuffer::default();
        b.push(br#"{"result":{"header":{"revision":"12"}}}"#);
        assert_eq!(b.drain().unwrap(), vec![WatchMessage::Progress(12)]);
    }

    #[test]
    fn cancellation_and_errors() {
        let mut b = MessageBuffer::default();
        b.push(br#"{"result":{"canceled":true,"compact_revision":"9"}}"#);
        assert!(matches!(&b.drain().unwrap()[0], WatchMessage::Canceled(m) if m.contains("compacted")));
        b.push(br#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader"}}"#);
        assert!(matches!(&b.drain().unwrap()[0], WatchMessage::Canceled(m) if m.contains("no leader")));
        b.push(b"]garbage");
        assert!(b.drain().is_err());
    }
}
