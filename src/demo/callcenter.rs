//! The demo's simulated call center on loopback: a robot dialler and an SMS/e-mail gateway that
//! receive the engine's real signed webhooks, verify them as any receiver should, and later
//! report each contact's outcome through the real HTTP API (`POST /v1/tasks/{id}/attempts` with
//! a dialler token), with probabilities by the borrower's local hour. Nothing here touches the
//! database or the engine directly.

use super::agents::Api;
use crate::dispatch::{Envelope, SigningSecret, TaskReadyV1, verify};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Timelike, Utc};
use rand::Rng;
use rand::rngs::SmallRng;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// What the simulated call center received and reported.
#[derive(Debug, Clone, Default)]
pub struct CenterTally {
    /// Webhooks received and verified, by event type.
    pub received: BTreeMap<String, u64>,
    /// Webhooks refused (bad signature): should stay 0.
    pub rejected: u64,
    /// Outcomes reported, by channel and outcome.
    pub outcomes: BTreeMap<(String, String), u64>,
    /// Reports the API refused: should stay 0 (409s for tasks cancelled meanwhile are counted
    /// apart, in `late`).
    pub refused: u64,
    /// Reports on tasks cancelled after they were sent (the engine said `task.cancelled`).
    pub late: u64,
}

#[derive(Default)]
struct Inbox {
    /// Each `task.ready` with the event's instant: the dialler calls as soon as it is told.
    ready: Vec<(DateTime<Utc>, TaskReadyV1)>,
    tally: CenterTally,
}

/// The running simulated call center.
#[derive(Clone)]
pub struct CallCenter {
    inbox: Arc<Mutex<Inbox>>,
    /// The URL the engine's endpoints point at.
    pub url: String,
    /// The secret its endpoints sign with.
    pub secret: String,
}

#[derive(Clone)]
struct ReceiverState {
    inbox: Arc<Mutex<Inbox>>,
    secret: Arc<SigningSecret>,
}

async fn receive(State(state): State<ReceiverState>, headers: HeaderMap, body: String) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let checked = verify(
        &state.secret,
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        body.as_bytes(),
        Utc::now().timestamp(),
        300,
    );
    let mut inbox = state.inbox.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if checked.is_err() {
        inbox.tally.rejected += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let kind = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|value| value["type"].as_str().map(str::to_string))
        .unwrap_or_default();
    *inbox.tally.received.entry(kind.clone()).or_default() += 1;
    if kind == crate::dispatch::TASK_READY
        && let Ok(envelope) = serde_json::from_str::<Envelope<TaskReadyV1>>(&body)
    {
        inbox.ready.push((envelope.timestamp, envelope.data));
    }
    StatusCode::NO_CONTENT
}

impl CallCenter {
    /// Starts the receivers on 127.0.0.1:0.
    pub async fn start() -> anyhow::Result<CallCenter> {
        let secret = SigningSecret::generate();
        let parsed = SigningSecret::parse(&secret).map_err(|message| anyhow::anyhow!(message))?;
        let inbox: Arc<Mutex<Inbox>> = Arc::default();
        let state = ReceiverState { inbox: Arc::clone(&inbox), secret: Arc::new(parsed) };
        let app = axum::Router::new().route("/hooks", axum::routing::post(receive)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hooks", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(CallCenter { inbox, url, secret })
    }

    /// The `[endpoints.*]` configuration pointing the robot, SMS and e-mail channels here.
    pub fn endpoints_toml(&self) -> String {
        ["robot", "sms", "email"]
            .iter()
            .map(|name| {
                format!("[endpoints.{name}]\nurl = \"{}\"\nsecret = \"{}\"\nconcurrency = 32\n", self.url, self.secret)
            })
            .collect()
    }

    /// Works every contact received so far — each one at the instant it was sent, inside its
    /// window and the contact hours — and reports its outcome at `now` through the API.
    pub async fn report_outcomes(
        &self,
        api: &Api,
        dialler_token: &str,
        now: DateTime<Utc>,
        rng: &mut SmallRng,
    ) -> anyhow::Result<()> {
        let ready = std::mem::take(&mut self.inbox.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).ready);
        for (sent_at, task) in ready {
            let called_at = sent_at.min(now);
            let local_hour = called_at.with_timezone(task.not_before.offset()).hour();
            let outcome = contact_outcome(rng, &task.channel, local_hour);
            let mut report = json!({"outcome": outcome, "at": called_at, "phone": task.to});
            match outcome {
                "promise" => {
                    let due_on = (called_at + chrono::Duration::days(rng.random_range(1..=4))).date_naive();
                    report["promise"] = json!({"amount": "100", "due_on": due_on});
                }
                "callback" => report["callback_at"] = json!(called_at + chrono::Duration::hours(3)),
                _ => {}
            }
            let status =
                api.post_status(&format!("/v1/tasks/{}/attempts", task.task_id), dialler_token, &report).await?;
            let mut inbox = self.inbox.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match status {
                200 => *inbox.tally.outcomes.entry((task.channel.clone(), outcome.to_string())).or_default() += 1,
                409 => inbox.tally.late += 1,
                _ => inbox.tally.refused += 1,
            }
        }
        Ok(())
    }

    /// What was received and reported so far.
    pub fn tally(&self) -> CenterTally {
        self.inbox.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).tally.clone()
    }
}

/// The outcome of one robot call or message.
fn contact_outcome(rng: &mut SmallRng, channel: &str, local_hour: u32) -> &'static str {
    let draw: f64 = rng.random();
    match channel {
        "sms" | "email" => {
            if draw < 0.95 {
                "delivered"
            } else {
                "undelivered"
            }
        }
        _ => {
            let answered = if (17..21).contains(&local_hour) { 0.38 } else { 0.28 };
            if draw < answered {
                let within: f64 = rng.random();
                match within {
                    d if d < 0.30 => "promise",
                    d if d < 0.45 => "callback",
                    d if d < 0.60 => "refused",
                    d if d < 0.65 => "third_party",
                    _ => "rpc",
                }
            } else {
                let within: f64 = rng.random();
                match within {
                    d if d < 0.60 => "no_answer",
                    d if d < 0.82 => "voicemail",
                    d if d < 0.93 => "busy",
                    d if d < 0.97 => "failed",
                    _ => "wrong_number",
                }
            }
        }
    }
}
