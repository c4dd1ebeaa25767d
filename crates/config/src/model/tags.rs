//! The `tags` section: member properties published in the DCS.
//!
//! Patroni publishes the section as the user wrote it (order, spelling and type of every value: a
//! `failover_priority: '1'` stays the string `'1'`), minus the predefined boolean tags that are off, so the typed
//! fields below are only for reading; what goes out is [`Tags::to_value`], built from the section as written.

use patroni_pycompat::{py_bool, py_str};
use serde_json::{Map, Value};

use crate::convert::{Cx, FromTree, SkipSerializing};

/// The predefined tags that mean "off" when false, and so are left out of what a member publishes.
const BOOLEAN_TAGS: [&str; 5] = ["clonefrom", "nofailover", "noloadbalance", "nosync", "nostream"];

/// `tags`. User-defined tags are kept in [`extra`](Self::extra) and never warned about.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tags {
    /// Never become leader.
    pub nofailover: Option<bool>,
    /// Failover preference; 0 or negative means never become leader.
    pub failover_priority: Option<i64>,
    /// Preferred source for new replicas.
    pub clonefrom: Option<bool>,
    /// Excluded from `GET /replica` load balancing.
    pub noloadbalance: Option<bool>,
    /// Member to stream from (cascading replication).
    pub replicatefrom: Option<String>,
    /// Never a synchronous standby.
    pub nosync: Option<bool>,
    /// Preference as a synchronous standby.
    pub sync_priority: Option<i64>,
    /// Do not stream; replay from the archive only.
    pub nostream: Option<bool>,
    /// Keys this schema does not know (user tags), kept verbatim.
    pub extra: Map<String, Value>,
    /// The whole section as written, in document order.
    given: Map<String, Value>,
}

impl Tags {
    /// The YAML keys this section knows.
    pub const KEYS: &'static [&'static str] = &[
        "nofailover",
        "failover_priority",
        "clonefrom",
        "noloadbalance",
        "replicatefrom",
        "nosync",
        "sync_priority",
        "nostream",
    ];

    /// Whether this member may take part in the leader race, by Patroni's rule: an explicit `nofailover`
    /// decides (even against `failover_priority`, which only draws a warning); without it a `failover_priority`
    /// of 0 or less forbids it.
    pub fn can_failover(&self) -> bool {
        !self.effective_nofailover()
    }

    /// `nofailover` as Patroni derives it (`Tags.nofailover`).
    pub fn effective_nofailover(&self) -> bool {
        derived_flag(self.nofailover, self.failover_priority)
    }

    /// Failover priority as Patroni computes it: 0 under `nofailover: true`, else the priority given, else 1.
    pub fn effective_failover_priority(&self) -> i64 {
        derived_priority(self.nofailover, self.failover_priority)
    }

    /// `nosync` as Patroni derives it: an explicit `nosync` decides, else a `sync_priority` of 0 or less.
    pub fn effective_nosync(&self) -> bool {
        derived_flag(self.nosync, self.sync_priority)
    }

    /// Synchronous standby priority as Patroni computes it: 0 under `nosync: true`, else the priority, else 1.
    pub fn effective_sync_priority(&self) -> i64 {
        derived_priority(self.nosync, self.sync_priority)
    }

    /// The tags a member publishes (member key, `GET /patroni`), as Patroni filters them: the section as
    /// written, without `clonefrom`, `nofailover`, `noloadbalance`, `nosync` and `nostream` when they are off,
    /// except that `nofailover` stays beside an explicit `failover_priority` and `nosync` beside `sync_priority`
    /// (readers need both to see the conflict and honour the boolean).
    pub fn to_value(&self) -> Value {
        let published = self
            .given
            .iter()
            .filter(|(k, v)| {
                !BOOLEAN_TAGS.contains(&k.as_str())
                    || py_bool(v)
                    || (k.as_str() == "nofailover" && self.given.contains_key("failover_priority"))
                    || (k.as_str() == "nosync" && self.given.contains_key("sync_priority"))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Value::Object(published)
    }

    /// The warnings Patroni logs at start and on reload when a boolean tag and its priority say different
    /// things (the boolean wins), in its words: `Conflicting configuration between nofailover: True and
    /// failover_priority: 1. Defaulting to nofailover: True`.
    pub fn conflicts(&self) -> Vec<String> {
        [("nofailover", "failover_priority", self.failover_priority), ("nosync", "sync_priority", self.sync_priority)]
            .into_iter()
            .filter_map(|(flag, priority_name, priority)| {
                let given = self.given.get(flag)?;
                let priority = priority?;
                let on = py_bool(given);
                if (on && priority > 0) || (!on && priority <= 0) {
                    let shown = py_str(given);
                    Some(format!(
                        "Conflicting configuration between {flag}: {shown} and {priority_name}: {priority}. \
                         Defaulting to {flag}: {shown}"
                    ))
                } else {
                    None
                }
            })
            .collect()
    }
}

/// Patroni's `_bool_tag`: the boolean when given, else whether the priority is given and not positive.
fn derived_flag(flag: Option<bool>, priority: Option<i64>) -> bool {
    match flag {
        Some(b) => b,
        None => priority.is_some_and(|p| p <= 0),
    }
}

/// Patroni's `_priority_tag`: 0 when the boolean is on, else the priority given, else 1.
fn derived_priority(flag: Option<bool>, priority: Option<i64>) -> i64 {
    if flag == Some(true) {
        0
    } else {
        priority.unwrap_or(1)
    }
}

impl FromTree for Tags {
    fn from_tree(v: &Value, cx: &mut Cx) -> Option<Self> {
        let map = cx.map(v)?;
        let mut out = Tags::default();
        for (k, val) in map.iter() {
            out.given.insert(k.clone(), val.clone());
            match k.as_str() {
                "nofailover" => out.nofailover = cx.field(k, val).or(out.nofailover),
                "failover_priority" => out.failover_priority = cx.field(k, val).or(out.failover_priority),
                "clonefrom" => out.clonefrom = cx.field(k, val).or(out.clonefrom),
                "noloadbalance" => out.noloadbalance = cx.field(k, val).or(out.noloadbalance),
                "replicatefrom" => out.replicatefrom = cx.field(k, val).or(out.replicatefrom.take()),
                "nosync" => out.nosync = cx.field(k, val).or(out.nosync),
                "sync_priority" => out.sync_priority = cx.field(k, val).or(out.sync_priority),
                "nostream" => out.nostream = cx.field(k, val).or(out.nostream),
                _ => {
                    cx.unknown(k);
                    out.extra.insert(k.clone(), val.clone());
                }
            }
        }
        Some(out)
    }
}

impl SkipSerializing for Tags {
    fn skip(&self) -> bool {
        false
    }
}

/// The effective configuration shows the section as written.
impl serde::Serialize for Tags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.given.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tags(v: Value) -> Tags {
        let mut cx = Cx::new("tags");
        let t = Tags::from_tree(&v, &mut cx);
        assert!(cx.errors.is_empty(), "{:?}", cx.errors);
        t.unwrap_or_default()
    }

    /// Each case is what Patroni 4.1 publishes (`Tags._filter_tags`) for the section given.
    #[test]
    fn published_tags_follow_patroni_filter() {
        let cases = [
            (json!({}), json!({})),
            (
                json!({"nofailover": false, "clonefrom": false, "noloadbalance": false, "nosync": false, "nostream": false}),
                json!({}),
            ),
            (json!({"nofailover": true, "noloadbalance": true}), json!({"nofailover": true, "noloadbalance": true})),
            // nofailover stays beside failover_priority, true or false, and the priority keeps the type given.
            (
                json!({"nofailover": false, "failover_priority": 1}),
                json!({"nofailover": false, "failover_priority": 1}),
            ),
            (
                json!({"failover_priority": "1", "nofailover": true}),
                json!({"failover_priority": "1", "nofailover": true}),
            ),
            (json!({"nosync": false, "sync_priority": 0}), json!({"nosync": false, "sync_priority": 0})),
            (json!({"nosync": false, "failover_priority": 2}), json!({"failover_priority": 2})),
            // User tags and replicatefrom are kept as given, in document order.
            (
                json!({"zone": "a", "clonefrom": false, "replicatefrom": "pg1", "weight": 0, "nostream": true}),
                json!({"zone": "a", "replicatefrom": "pg1", "weight": 0, "nostream": true}),
            ),
        ];
        for (given, want) in cases {
            let got = tags(given.clone()).to_value();
            assert_eq!(got, want, "tags {given}");
            let order: Vec<&String> = got.as_object().map(|m| m.keys().collect()).unwrap_or_default();
            let want_order: Vec<&String> = want.as_object().map(|m| m.keys().collect()).unwrap_or_default();
            assert_eq!(order, want_order, "order for {given}");
        }
    }

    #[test]
    fn explicit_boolean_wins_over_priority() {
        // (tags, can fail over, failover priority) as Patroni's Tags.nofailover / failover_priority compute them.
        let cases = [
            (json!({}), true, 1),
            (json!({"nofailover": true}), false, 0),
            (json!({"nofailover": false}), true, 1),
            (json!({"failover_priority": 0}), false, 0),
            (json!({"failover_priority": 3}), true, 3),
            (json!({"nofailover": true, "failover_priority": 1}), false, 0),
            (json!({"nofailover": false, "failover_priority": 0}), true, 0),
            (json!({"failover_priority": "2"}), true, 2),
        ];
        for (given, can, priority) in cases {
            let t = tags(given.clone());
            assert_eq!(t.can_failover(), can, "can_failover for {given}");
            assert_eq!(t.effective_failover_priority(), priority, "priority for {given}");
        }
        let t = tags(json!({"nosync": false, "sync_priority": 0}));
        assert!(!t.effective_nosync());
        assert_eq!(t.effective_sync_priority(), 0);
        let t = tags(json!({"sync_priority": 0}));
        assert!(t.effective_nosync());
        let t = tags(json!({"nosync": true, "sync_priority": 2}));
        assert!(t.effective_nosync());
        assert_eq!(t.effective_sync_priority(), 0);
    }

    #[test]
    fn conflicting_tags_are_reported_in_patroni_words() {
        let cases = [
            (
                json!({"nofailover": true, "failover_priority": 1}),
                vec!["Conflicting configuration between nofailover: True and failover_priority: 1. Defaulting to nofailover: True"],
            ),
            (
                json!({"failover_priority": "0", "nofailover": false}),
                vec!["Conflicting configuration between nofailover: False and failover_priority: 0. Defaulting to nofailover: False"],
            ),
            (
                json!({"nosync": true, "sync_priority": 2}),
                vec!["Conflicting configuration between nosync: True and sync_priority: 2. Defaulting to nosync: True"],
            ),
            (
                json!({"nosync": false, "sync_priority": 0}),
                vec!["Conflicting configuration between nosync: False and sync_priority: 0. Defaulting to nosync: False"],
            ),
            (json!({"nofailover": false, "failover_priority": 1}), vec![]),
            (json!({"nofailover": true, "failover_priority": 0}), vec![]),
            (json!({"failover_priority": 0}), vec![]),
            (json!({"nofailover": true}), vec![]),
        ];
        for (given, want) in cases {
            assert_eq!(tags(given.clone()).conflicts(), want, "tags {given}");
        }
    }
}
