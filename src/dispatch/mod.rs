//! Dispatch: the outbox worker that delivers webhooks — claim, check, sign, POST (or hand to an
//! in-process receiver, `sink`), retry, dead-letter — the claim-time check that voids messages
//! about tasks no longer sendable, and the `task.cancelled` messages owed when announced tasks
//! are closed. Signing, the retry schedule and the envelope are pure; the worker and the outbox
//! do the I/O.

mod envelope;
mod outbox;
mod retry;
mod sign;
mod sink;
mod worker;

pub use envelope::{Envelope, TASK_CANCELLED, TASK_READY, TaskCancelledV1, TaskReadyV1};
pub use outbox::{RECHECK_AFTER, close_tasks, enqueue_cancellations, task_webhook_id};
pub use retry::{MAX_RETRY_AFTER, MAX_TRIES, RETRY_DELAYS, next_try, parse_retry_after};
pub use sign::{SECRET_PREFIX, SigningSecret, VerifyError, signature_header, verify};
pub use sink::{SignedMessage, Sink, SinkAnswer};
pub use worker::{DeliveryReport, Dispatcher, EndpointTarget, SINK_BATCH};

/// Why a configured endpoint cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("endpoints.{endpoint}.{field}: {message}")]
pub struct EndpointError {
    /// The endpoint's name.
    pub endpoint: String,
    /// The key.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}
