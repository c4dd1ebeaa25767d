//! Refusing replayed peer requests (with `raft.password`).
//!
//! Sealing authenticates a request but an attacker who recorded one could send it again: a stale AppendEntries,
//! a vote, or a forwarded client write applied twice. Every sealed request therefore names a *session* the
//! receiver issued and a counter the sender increments; the receiver admits each counter of a session once.
//!
//! Why receiver-issued sessions rather than the alternatives:
//! - A timestamp window with a nonce cache would make peer traffic depend on synchronized clocks, and the
//!   embedded Raft is built not to (lease deadlines come from the leader's clock alone): a node whose clock is
//!   off would be cut off from its peers.
//! - A sender-chosen id (boot id) plus counter needs the receiver to remember every sender it ever saw, or a
//!   recording from a sender it forgot (or from before the receiver restarted) would be admitted again; clients
//!   such as `patronictl` are a new sender at every run.
//! - Mutual TLS would need certificates for every node, where Patroni's `raft` section has only a password.
//!
//! A session id is random and lives only in the memory of the node that issued it, so a recording made before
//! that node restarted names a session it never issued, and a session it forgot (the table is bounded) is
//! refused the same way; the sender then opens a new session (one extra round trip) and retries. The cost of
//! forgetting is a round trip, never an admitted replay, so the table can be small.

use std::collections::HashMap;
use std::sync::Mutex;

use ring::rand::{SecureRandom, SystemRandom};

pub const SESSION_LEN: usize = 16;
pub type SessionId = [u8; SESSION_LEN];
/// Named by the request that opens a session; never issued.
pub const NO_SESSION: SessionId = [0; SESSION_LEN];

/// Counters this far below the newest one seen are refused: requests of one sender to one receiver run
/// concurrently (replication, votes, forwarded calls) and may arrive out of order, but never this many apart.
const WINDOW: u64 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;
/// Sessions a node remembers; the least recently used is forgotten first. Members and clients need one each.
const MAX_SESSIONS: usize = 1024;

/// Why a sealed request was refused after it opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("unknown Raft session (issued before this node restarted, forgotten, or never issued)")]
    UnknownSession,
    #[error("replayed Raft request: counter {0} of this session was already used")]
    Replayed(u64),
    #[error("Raft request too old to tell from a replay: counter {counter}, newest of the session {newest}")]
    TooOld { counter: u64, newest: u64 },
}

/// The counters seen of one session: the newest, and a bitmap of the `WINDOW` before it (bit `c % WINDOW`).
#[derive(Debug, Default)]
struct Window {
    newest: u64,
    seen: [u64; WORDS],
}

impl Window {
    fn bit(c: u64) -> (usize, u64) {
        let i = c % WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    /// Admits `counter` once. Counters start at 1.
    fn admit(&mut self, counter: u64) -> Result<(), Refusal> {
        if counter > self.newest {
            if counter - self.newest >= WINDOW {
                self.seen = [0; WORDS];
            } else {
                // The slots of the counters we skip held counters a whole window older: free them.
                for c in self.newest + 1..counter {
                    let (w, b) = Self::bit(c);
                    self.seen[w] &= !b;
                }
            }
            self.newest = counter;
        } else if counter == 0 || self.newest - counter >= WINDOW {
            return Err(Refusal::TooOld { counter, newest: self.newest });
        } else if self.seen[Self::bit(counter).0] & Self::bit(counter).1 != 0 {
            return Err(Refusal::Replayed(counter));
        }
        let (w, b) = Self::bit(counter);
        self.seen[w] |= b;
        Ok(())
    }
}

struct Entry {
    window: Window,
    last_used: u64,
}

#[derive(Default)]
struct Table {
    sessions: HashMap<SessionId, Entry>,
    clock: u64,
}

/// The sessions a node issued.
pub struct Sessions {
    table: Mutex<Table>,
    rng: SystemRandom,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions { table: Mutex::new(Table::default()), rng: SystemRandom::new() }
    }
}

impl Sessions {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding the lock leaves at worst a window that refuses too much: keep serving.
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fresh session, or `None` when the system has no randomness to give.
    pub fn open(&self) -> Option<SessionId> {
        let mut id = NO_SESSION;
        while id == NO_SESSION {
            self.rng.fill(&mut id).ok()?;
        }
        let mut t = self.table();
        if t.sessions.len() >= MAX_SESSIONS {
            let oldest = t.sessions.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| *k);
            if let Some(k) = oldest {
                t.sessions.remove(&k);
            }
        }
        t.clock += 1;
        let last_used = t.clock;
        t.sessions.insert(id, Entry { window: Window::default(), last_used });
        Some(id)
    }

    /// Admits counter `counter` of session `id` once; call only for requests that authenticated.
    pub fn admit(&self, id: &SessionId, counter: u64) -> Result<(), Refusal> {
        let mut t = self.table();
        t.clock += 1;
        let now = t.clock;
        let entry = t.sessions.get_mut(id).ok_or(Refusal::UnknownSession)?;
        entry.window.admit(counter)?;
        entry.last_used = now;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_counter_is_admitted_once_in_any_order_within_the_window() {
        let mut w = Window::default();
        assert_eq!(w.admit(0), Err(Refusal::TooOld { counter: 0, newest: 0 }));
        assert_eq!(w.admit(1), Ok(()));
        assert_eq!(w.admit(1), Err(Refusal::Replayed(1)));
        assert_eq!(w.admit(5), Ok(()));
        assert_eq!(w.admit(3), Ok(()), "late but new");
        assert_eq!(w.admit(3), Err(Refusal::Replayed(3)));
        assert_eq!(w.admit(2), Ok(()));
        assert_eq!(w.admit(5), Err(Refusal::Replayed(5)));
        // A jump within the window keeps what it still covers (5..=4 + WINDOW) and frees the slots it reuses.
        assert_eq!(w.admit(4 + WINDOW), Ok(()));
        assert_eq!(w.admit(5), Err(Refusal::Replayed(5)));
        assert_eq!(w.admit(4), Err(Refusal::TooOld { counter: 4, newest: 4 + WINDOW }));
        assert_eq!(w.admit(6), Ok(()), "never seen, still inside the window");
        assert_eq!(w.admit(5 + WINDOW), Ok(()));
        assert_eq!(w.admit(5), Err(Refusal::TooOld { counter: 5, newest: 5 + WINDOW }));
        assert_eq!(w.admit(6), Err(Refusal::Replayed(6)));
        assert_eq!(w.admit(7), Ok(()));
        // A jump beyond the window forgets everything before it.
        let far = 10 * WINDOW;
        assert_eq!(w.admit(far), Ok(()));
        assert_eq!(w.admit(far - 1), Ok(()));
        assert_eq!(w.admit(far - WINDOW), Err(Refusal::TooOld { counter: far - WINDOW, newest: far }));
        assert_eq!(w.admit(far), Err(Refusal::Replayed(far)));
    }

    #[test]
    fn only_issued_sessions_are_admitted_and_the_table_is_bounded() {
        let s = Sessions::default();
        assert_eq!(s.admit(&NO_SESSION, 1), Err(Refusal::UnknownSession));
        let a = s.open().unwrap();
        let b = s.open().unwrap();
        assert_ne!(a, b);
        assert_eq!(s.admit(&a, 1), Ok(()));
        assert_eq!(s.admit(&b, 1), Ok(()), "counters are per session");
        assert_eq!(s.admit(&a, 1), Err(Refusal::Replayed(1)));
        // Filling the table forgets the least recently used session; a forgotten one is refused, never reset.
        for _ in 0..MAX_SESSIONS - 2 {
            s.open().unwrap();
        }
        assert_eq!(s.admit(&a, 2), Ok(()));
        s.open().unwrap();
        assert_eq!(s.admit(&b, 2), Err(Refusal::UnknownSession));
        assert_eq!(s.admit(&a, 3), Ok(()));
        assert_eq!(s.admit(&a, 1), Err(Refusal::Replayed(1)));
    }
}
