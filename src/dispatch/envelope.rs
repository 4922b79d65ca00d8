//! The webhook bodies: Standard Webhooks' `{type, timestamp, data}` envelope around version 1 of
//! our event data. Fields are only ever added (receivers must ignore unknown ones); a change
//! that breaks receivers would be a new version with new event type names.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

/// `task.ready`: a robot call, SMS or e-mail to make now (or a human task that became ready).
pub const TASK_READY: &str = "task.ready";
/// `task.cancelled`: a task sent earlier must not be attempted any more.
pub const TASK_CANCELLED: &str = "task.cancelled";

/// The envelope of every webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<D> {
    /// The event type (`task.ready`, `task.cancelled`).
    #[serde(rename = "type")]
    pub kind: String,
    /// When the event happened (the engine's clock).
    pub timestamp: DateTime<Utc>,
    /// The event's data.
    pub data: D,
}

/// `task.ready`, version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReadyV1 {
    /// The task; the id to post attempts for.
    pub task_id: String,
    /// The account.
    pub account_id: String,
    /// The borrower.
    pub borrower_id: String,
    /// `robot`, `sms`, `email` or `human`.
    pub channel: String,
    /// The phone number or e-mail address to contact.
    pub to: Option<String>,
    /// The borrower's name.
    pub name: String,
    /// Stage, strategy, rule and experiment arm that produced the task.
    pub stage: String,
    /// Strategy name.
    pub strategy: String,
    /// Rule name.
    pub rule: String,
    /// Experiment arm.
    pub arm: Option<String>,
    /// Human queue (human tasks).
    pub queue: Option<String>,
    /// Attempt number within the day.
    pub attempt: i32,
    /// The contact window, at the borrower's offset.
    pub not_before: DateTime<FixedOffset>,
    /// End of the window.
    pub not_after: DateTime<FixedOffset>,
    /// The rendered message (SMS, e-mail) or robot script.
    pub message: Option<String>,
    /// Where to post the attempt's outcome.
    pub callback_url: String,
}

/// `task.cancelled`, version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskCancelledV1 {
    /// The task sent earlier.
    pub task_id: String,
    /// Its account.
    pub account_id: String,
    /// Why (`paid_in_full`, `promise`, `flag:dispute`, ...).
    pub reason: String,
}
