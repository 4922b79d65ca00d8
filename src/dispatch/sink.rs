//! In-process endpoints: a receiver living in the same process (the simulator's robot dialler
//! and SMS gateway) that gets each message exactly as an HTTP receiver would — the
//! `webhook-id`, the Standard Webhooks timestamp and signature, the body — and answers
//! delivered or failed with a status. Only the transport differs from HTTP: the claim, the
//! claim-time check and the recording of the result are the worker's, unchanged. Owns the
//! trait and the mapping of an answer to a try's result; must not touch the store.

use super::{SigningSecret, next_try, signature_header};
use crate::store::TryResult;
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

/// One signed message, as a receiver gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedMessage<'a> {
    /// `webhook-id`: the idempotency key (a retry reuses it).
    pub webhook_id: &'a str,
    /// `webhook-timestamp`, in Unix seconds. An in-process receiver shares the engine's clock,
    /// so this is the engine's `now` (an HTTP receiver gets the wall clock).
    pub timestamp: i64,
    /// `webhook-signature`: one `v1,<base64>` per secret, space-separated.
    pub signature: String,
    /// The JSON body (the envelope).
    pub body: &'a str,
}

/// What an in-process receiver answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkAnswer {
    /// Taken (as a 2xx).
    Delivered,
    /// Refused with an HTTP-like status: `410` disables the endpoint, anything else is a failed
    /// try retried on the usual schedule (stretched by `retry_after`).
    Failed {
        /// The status (`503`, `410`, ...).
        status: u16,
        /// As a `Retry-After` header.
        retry_after: Option<Duration>,
    },
}

/// A receiver in the same process.
pub trait Sink: Send + Sync {
    /// Receives one message. Called from the delivery worker: it must not block for long.
    fn receive(&self, message: &SignedMessage<'_>) -> SinkAnswer;
}

/// An in-process endpoint: its secret and its receiver.
#[derive(Clone)]
pub(super) struct SinkTarget {
    pub secrets: Vec<SigningSecret>,
    pub sink: Arc<dyn Sink>,
}

impl std::fmt::Debug for SinkTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkTarget").field("secrets", &self.secrets.len()).finish_non_exhaustive()
    }
}

impl SinkTarget {
    /// Signs the message, hands it to the receiver, and says what the try came to.
    pub fn send(&self, webhook_id: &str, body: &str, tries: u32, now: DateTime<Utc>, jitter: f64) -> TryResult {
        let timestamp = now.timestamp();
        let signature = signature_header(&self.secrets, webhook_id, timestamp, body.as_bytes());
        let message = SignedMessage { webhook_id, timestamp, signature, body };
        match self.sink.receive(&message) {
            SinkAnswer::Delivered => TryResult::Delivered { status: 200 },
            SinkAnswer::Failed { status, retry_after } => answered(status, retry_after, tries, now, jitter),
        }
    }
}

/// The result of a try that got a non-2xx, non-3xx status: `410 Gone`, or a failure retried
/// on the schedule (`tries` counts this one).
pub(super) fn answered(
    status: u16,
    retry_after: Option<Duration>,
    tries: u32,
    now: DateTime<Utc>,
    jitter: f64,
) -> TryResult {
    if status == 410 {
        return TryResult::Gone;
    }
    TryResult::Failed {
        status: Some(status),
        error: format!("HTTP {status}"),
        retry_at: next_try(tries, now, retry_after, jitter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::verify;
    use std::sync::Mutex;

    struct Recorder {
        secret: SigningSecret,
        answer: SinkAnswer,
        seen: Mutex<Vec<(String, bool)>>,
    }

    impl Sink for Recorder {
        fn receive(&self, message: &SignedMessage<'_>) -> SinkAnswer {
            let checked = verify(
                &self.secret,
                Some(message.webhook_id),
                Some(&message.timestamp.to_string()),
                Some(&message.signature),
                message.body.as_bytes(),
                message.timestamp,
                0,
            );
            self.seen.lock().unwrap().push((message.webhook_id.to_string(), checked.is_ok()));
            self.answer
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-22T06:00:00Z".parse().unwrap()
    }

    fn target(answer: SinkAnswer) -> (SinkTarget, Arc<Recorder>) {
        let text = SigningSecret::generate();
        let secret = SigningSecret::parse(&text).unwrap();
        let recorder = Arc::new(Recorder { secret: secret.clone(), answer, seen: Mutex::default() });
        (SinkTarget { secrets: vec![secret], sink: recorder.clone() }, recorder)
    }

    #[test]
    fn the_receiver_gets_a_verifiable_signature_and_its_answer_decides_the_try() {
        let (delivered, recorder) = target(SinkAnswer::Delivered);
        assert_eq!(delivered.send("task_1_ready", "{}", 1, now(), 0.0), TryResult::Delivered { status: 200 });
        assert_eq!(*recorder.seen.lock().unwrap(), [("task_1_ready".to_string(), true)]);

        let (busy, _) = target(SinkAnswer::Failed { status: 503, retry_after: None });
        assert_eq!(
            busy.send("task_2_ready", "{}", 1, now(), 0.0),
            TryResult::Failed {
                status: Some(503),
                error: "HTTP 503".into(),
                retry_at: Some(now() + Duration::seconds(5))
            }
        );
        let (later, _) = target(SinkAnswer::Failed { status: 429, retry_after: Some(Duration::minutes(2)) });
        let TryResult::Failed { retry_at, .. } = later.send("task_3_ready", "{}", 1, now(), 0.0) else { panic!() };
        assert_eq!(retry_at, Some(now() + Duration::minutes(2)), "Retry-After stretches the wait");
        let (gone, _) = target(SinkAnswer::Failed { status: 410, retry_after: None });
        assert_eq!(gone.send("task_4_ready", "{}", 1, now(), 0.0), TryResult::Gone);
        let (dead, _) = target(SinkAnswer::Failed { status: 500, retry_after: None });
        let TryResult::Failed { retry_at, .. } =
            dead.send("task_5_ready", "{}", crate::dispatch::MAX_TRIES, now(), 0.0)
        else {
            panic!()
        };
        assert_eq!(retry_at, None, "the last try makes a dead letter");
    }
}
