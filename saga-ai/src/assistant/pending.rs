//! Actions waiting for the user's "yes": one per conversation, in a bounded map, each expiring.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Conversation ids are kept up to this many characters (longer ones are cut, so two ids that
/// share their first 128 characters share a conversation).
pub const MAX_CONVERSATION_ID_CHARS: usize = 128;

/// An action the assistant described and will run once confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum PendingAction {
    /// Hand a dead letter back for delivery.
    ReplayDeadLetter {
        /// The dead letter.
        id: Uuid,
        /// What it is, as told to the user.
        summary: String,
    },
    /// Drop a dead letter.
    DiscardDeadLetter {
        /// The dead letter.
        id: Uuid,
        /// What it is, as told to the user.
        summary: String,
    },
}

impl PendingAction {
    /// The verb for answers: "replay" or "discard".
    pub fn verb(&self) -> &'static str {
        match self {
            PendingAction::ReplayDeadLetter { .. } => "replay",
            PendingAction::DiscardDeadLetter { .. } => "discard",
        }
    }

    /// The dead letter acted on.
    pub fn id(&self) -> Uuid {
        match self {
            PendingAction::ReplayDeadLetter { id, .. }
            | PendingAction::DiscardDeadLetter { id, .. } => *id,
        }
    }
}

/// What taking a conversation's pending action found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Taken {
    /// An action still in time.
    Ready(PendingAction),
    /// An action that waited too long (now dropped).
    Expired(PendingAction),
    /// Nothing pending.
    Nothing,
}

struct Entry {
    action: PendingAction,
    at: DateTime<Utc>,
}

/// Pending actions by conversation, at most `capacity`, each valid for `ttl`.
pub(crate) struct PendingActions {
    map: Mutex<HashMap<String, Entry>>,
    capacity: usize,
    ttl: Duration,
}

fn key(conversation: &str) -> String {
    conversation
        .chars()
        .take(MAX_CONVERSATION_ID_CHARS)
        .collect()
}

impl PendingActions {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic elsewhere while holding the lock leaves the map consistent (every change is
        // one insert or remove), so a poisoned lock is used as is.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `action` for `conversation` at `now`, replacing (and returning) any earlier one.
    /// When full, expired actions go first, then the oldest.
    pub(crate) fn put(
        &self,
        conversation: &str,
        action: PendingAction,
        now: DateTime<Utc>,
    ) -> Option<PendingAction> {
        let key = key(conversation);
        let mut map = self.lock();
        if !map.contains_key(&key) && map.len() >= self.capacity {
            map.retain(|_, e| now - e.at <= self.ttl);
            if map.len() >= self.capacity {
                let oldest = map
                    .iter()
                    .min_by_key(|(k, e)| (e.at, (*k).clone()))
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    map.remove(&oldest);
                }
            }
        }
        map.insert(key, Entry { action, at: now }).map(|e| e.action)
    }

    /// Removes and returns `conversation`'s pending action, saying whether it expired.
    pub(crate) fn take(&self, conversation: &str, now: DateTime<Utc>) -> Taken {
        match self.lock().remove(&key(conversation)) {
            Some(e) if now - e.at > self.ttl => Taken::Expired(e.action),
            Some(e) => Taken::Ready(e.action),
            None => Taken::Nothing,
        }
    }

    /// How many conversations have an action stored (expired ones included until dropped).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(n: u128) -> PendingAction {
        PendingAction::ReplayDeadLetter {
            id: Uuid::from_u128(n),
            summary: String::new(),
        }
    }

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + Duration::seconds(secs)
    }

    #[test]
    fn bounded_oldest_first_and_expiring() {
        let p = PendingActions::new(2, Duration::seconds(60));
        p.put("a", replay(1), t(0));
        p.put("b", replay(2), t(10));
        p.put("c", replay(3), t(20)); // evicts a, the oldest
        assert_eq!(p.len(), 2);
        assert_eq!(p.take("a", t(21)), Taken::Nothing);
        assert_eq!(p.take("b", t(71)), Taken::Expired(replay(2)));
        assert_eq!(p.take("c", t(80)), Taken::Ready(replay(3)));
        assert_eq!(p.take("c", t(80)), Taken::Nothing);
    }

    #[test]
    fn a_new_action_replaces_the_conversations_earlier_one() {
        let p = PendingActions::new(4, Duration::seconds(60));
        assert_eq!(p.put("a", replay(1), t(0)), None);
        assert_eq!(p.put("a", replay(2), t(1)), Some(replay(1)));
        let long = "x".repeat(1000);
        p.put(&long, replay(3), t(2));
        assert_eq!(p.take(&"x".repeat(200), t(3)), Taken::Ready(replay(3)));
    }
}
