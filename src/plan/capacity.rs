//! Human queues within their day's capacity: which accounts a capacity-limited queue admits,
//! chosen by the task's declared value (its `priority`) from the candidates a first planning
//! pass found. Pure: the candidates and the room come in; the planner asks [`Admission::admits`]
//! and falls through to the next rule when the answer is no. It never counts tasks itself.

use crate::domain::QueueName;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeMap;

/// An account a first pass would give to a capacity-limited queue, with its task's value.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The queue.
    pub queue: QueueName,
    /// The task's priority (larger first).
    pub value: f64,
    /// The account.
    pub account_id: String,
}

/// The accounts each capacity-limited queue takes today.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Admission {
    admitted: FxHashMap<QueueName, FxHashSet<String>>,
    /// Per queue: the room it had, the candidates and how many were admitted.
    pub queues: BTreeMap<QueueName, QueueAdmission>,
}

/// What one queue's admission came to.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueueAdmission {
    /// Tasks the queue could still take today.
    pub room: u64,
    /// Accounts that asked for it.
    pub candidates: u64,
    /// Accounts it took.
    pub admitted: u64,
    /// The value of the last account it took (`None` when it took none).
    pub cutoff: Option<f64>,
}

impl Admission {
    /// Whether the queue takes the account: always for a queue without a capacity.
    pub fn admits(&self, queue: QueueName, account_id: &str) -> bool {
        if !self.queues.contains_key(&queue) {
            return true;
        }
        self.admitted.get(&queue).is_some_and(|accounts| accounts.contains(account_id))
    }
}

/// One queue's admission as stored with a sharded plan run.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredQueue {
    room: u64,
    candidates: u64,
    admitted: u64,
    cutoff: Option<f64>,
    /// The accounts it took, in id order.
    accounts: Vec<String>,
}

impl Admission {
    /// The admission as JSON, stored with a sharded plan run so that every planner of the run
    /// admits the same accounts (a second first pass would see the run's saved tasks).
    pub fn to_stored(&self) -> String {
        let queues: BTreeMap<String, StoredQueue> = self
            .queues
            .iter()
            .map(|(queue, summary)| {
                let mut accounts: Vec<String> =
                    self.admitted.get(queue).map(|set| set.iter().cloned().collect()).unwrap_or_default();
                accounts.sort_unstable();
                let stored = StoredQueue {
                    room: summary.room,
                    candidates: summary.candidates,
                    admitted: summary.admitted,
                    cutoff: summary.cutoff,
                    accounts,
                };
                (queue.to_string(), stored)
            })
            .collect();
        serde_json::to_string(&queues).unwrap_or_else(|_| "{}".into())
    }

    /// Reads an admission written by [`Admission::to_stored`].
    pub fn from_stored(text: &str) -> Result<Admission, String> {
        let queues: BTreeMap<String, StoredQueue> =
            serde_json::from_str(text).map_err(|error| format!("the stored admission: {error}"))?;
        let mut admission = Admission::default();
        for (name, stored) in queues {
            let queue = QueueName::intern(&name);
            let summary = QueueAdmission {
                room: stored.room,
                candidates: stored.candidates,
                admitted: stored.admitted,
                cutoff: stored.cutoff,
            };
            admission.queues.insert(queue, summary);
            admission.admitted.insert(queue, stored.accounts.into_iter().collect());
        }
        Ok(admission)
    }
}

/// Admits, for each queue with room, the candidates of highest value up to its room (ties by
/// account id, so the same book gives the same admission). Queues in `room` that no candidate
/// asks for are still listed: they limit whatever falls through to them later.
pub fn admit(mut candidates: Vec<Candidate>, room: &BTreeMap<QueueName, u64>) -> Admission {
    candidates.sort_by(|a, b| {
        a.queue.cmp(&b.queue).then(b.value.total_cmp(&a.value)).then_with(|| a.account_id.cmp(&b.account_id))
    });
    let mut admission = Admission::default();
    for (queue, room) in room {
        admission.queues.insert(*queue, QueueAdmission { room: *room, ..QueueAdmission::default() });
        admission.admitted.insert(*queue, FxHashSet::default());
    }
    for candidate in candidates {
        let Some(summary) = admission.queues.get_mut(&candidate.queue) else { continue };
        summary.candidates += 1;
        if summary.admitted < summary.room {
            summary.admitted += 1;
            summary.cutoff = Some(candidate.value);
            admission.admitted.entry(candidate.queue).or_default().insert(candidate.account_id);
        }
    }
    admission
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(queue: &str, value: f64, account: &str) -> Candidate {
        Candidate { queue: QueueName::intern(queue), value, account_id: account.into() }
    }

    #[test]
    fn the_most_valuable_accounts_fill_the_room_and_ties_go_by_account() {
        let early = QueueName::intern("cap-early");
        let late = QueueName::intern("cap-late");
        let open = QueueName::intern("cap-open");
        let room = BTreeMap::from([(early, 2), (late, 0)]);
        let admission = admit(
            vec![
                candidate("cap-early", 10.0, "A3"),
                candidate("cap-early", 50.0, "A1"),
                candidate("cap-early", 10.0, "A2"),
                candidate("cap-early", 5.0, "A4"),
                candidate("cap-late", 99.0, "A5"),
                candidate("cap-open", 1.0, "A6"),
            ],
            &room,
        );
        assert!(admission.admits(early, "A1"));
        assert!(admission.admits(early, "A2"), "of two equal values the smaller account id wins");
        assert!(!admission.admits(early, "A3"));
        assert!(!admission.admits(early, "A4"));
        assert!(!admission.admits(late, "A5"), "a queue without room takes nobody");
        assert!(admission.admits(open, "A6") && admission.admits(open, "anyone"), "a queue without capacity is open");
        assert_eq!(
            admission.queues[&early],
            QueueAdmission { room: 2, candidates: 4, admitted: 2, cutoff: Some(10.0) }
        );
        assert_eq!(admission.queues[&late], QueueAdmission { room: 0, candidates: 1, admitted: 0, cutoff: None });
        assert!(!admission.admits(late, "never-asked"), "a limited queue does not take an account it never ranked");
        let stored = Admission::from_stored(&admission.to_stored()).unwrap();
        assert_eq!(stored, admission, "a sharded run's planners admit what its first pass admitted");
    }
}
