//! Webhook delivery against real HTTP receivers on 127.0.0.1:0: signatures checked by an
//! independent Standard Webhooks implementation, retries on 5xx, timeouts and `Retry-After`,
//! `410 Gone`, dead letters and replay, and a claim left by a dead worker — on SQLite and (when
//! configured) PostgreSQL, with the engine's clock passed in (no sleeping for the schedule).

mod common;

use arrears::config::Config;
use arrears::dispatch::{Dispatcher, SigningSecret};
use arrears::policy::{Policy, PolicySettings};
use arrears::store::{self, NewDelivery};
use arrears::strategy::StrategySet;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// What the receiver answers next (then 200 once the script runs out).
#[derive(Clone, Debug)]
enum Answer {
    Status(u16),
    RetryAfter(u16, u32),
    Slow(u64),
    /// `307 Temporary Redirect` to this URL.
    Redirect(String),
}

#[derive(Default)]
struct Receiver {
    script: Mutex<VecDeque<Answer>>,
    /// `(webhook-id, body)` of every request whose signature verified.
    verified: Mutex<Vec<(String, String)>>,
    rejected: Mutex<u32>,
}

async fn hook(
    State(state): State<(Arc<Receiver>, Arc<standardwebhooks::Webhook>)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (receiver, verifier) = state;
    if verifier.verify(body.as_bytes(), &headers).is_err() {
        *receiver.rejected.lock().unwrap() += 1;
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    receiver.verified.lock().unwrap().push((id, body));
    let answer = receiver.script.lock().unwrap().pop_front();
    match answer {
        None => StatusCode::OK.into_response(),
        Some(Answer::Status(code)) => StatusCode::from_u16(code).unwrap().into_response(),
        Some(Answer::RetryAfter(code, seconds)) => {
            (StatusCode::from_u16(code).unwrap(), [("retry-after", seconds.to_string())]).into_response()
        }
        Some(Answer::Slow(millis)) => {
            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
            StatusCode::OK.into_response()
        }
        Some(Answer::Redirect(url)) => (StatusCode::TEMPORARY_REDIRECT, [("location", url)]).into_response(),
    }
}

/// A receiver on a fresh loopback port that verifies with `secret` (its own implementation).
async fn receiver(secret: &str) -> (Arc<Receiver>, String) {
    let state = Arc::new(Receiver::default());
    let verifier = Arc::new(standardwebhooks::Webhook::new(secret).unwrap());
    let app = axum::Router::new().route("/hooks", axum::routing::post(hook)).with_state((Arc::clone(&state), verifier));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, url)
}

fn dispatcher(url: &str, secrets: &[&str], timeout: &str) -> Dispatcher {
    let list = secrets.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    let config: Config =
        toml::from_str(&format!("[endpoints.robot]\nurl = \"{url}\"\nsecret = [{list}]\ntimeout = \"{timeout}\"\n"))
            .unwrap();
    Dispatcher::from_config(&config).unwrap()
}

/// The default policy the claim-time check falls back to (these messages are about no task, so
/// it never applies).
fn fallback() -> Policy {
    Policy::builtin("cn-gbt-45251", &PolicySettings::default()).unwrap()
}

/// A message about no task: the transport tests need no task behind it.
fn message(n: usize, at: DateTime<Utc>) -> NewDelivery {
    NewDelivery {
        webhook_id: format!("msg_{n:04}"),
        task_id: None,
        endpoint: "robot".into(),
        event: "task.ready".into(),
        body: format!(r#"{{"type":"task.ready","timestamp":"{}","data":{{"task_id":"{n}"}}}}"#, at.to_rfc3339()),
        send_at: at,
    }
}

fn t0() -> DateTime<Utc> {
    "2026-11-22T06:00:00Z".parse().unwrap()
}

async fn state_of(db: &sea_orm::DatabaseConnection, state: &str) -> Vec<entity::deliveries::Model> {
    store::deliveries_in_state(db, state, 1000).await.unwrap()
}

#[tokio::test]
async fn every_message_arrives_signed_during_a_rotation_and_is_recorded() {
    let (old, new) = (SigningSecret::generate(), SigningSecret::generate());
    for db in common::all_dbs().await {
        // The receiver knows only the old secret, the engine signs with both: it verifies.
        let (receiver, url) = receiver(&old).await;
        let dispatcher = dispatcher(&url, &[&new, &old], "5s");
        let messages: Vec<NewDelivery> = (0..40).map(|n| message(n, t0())).collect();
        assert_eq!(store::enqueue_deliveries(&*db, &messages, t0()).await.unwrap(), 40);
        assert_eq!(store::enqueue_deliveries(&*db, &messages[..5], t0()).await.unwrap(), 0, "ids are unique");
        // A step claims at most two rounds of the endpoint's concurrency (16): two steps.
        let first = dispatcher.deliver_due(&db, &StrategySet::default(), &fallback(), t0()).await.unwrap();
        assert_eq!((first.claimed, first.delivered), (32, 32), "{}", db.backend);
        let second = dispatcher.deliver_due(&db, &StrategySet::default(), &fallback(), t0()).await.unwrap();
        assert_eq!((second.claimed, second.delivered), (8, 8), "{}", db.backend);
        assert_eq!(*receiver.rejected.lock().unwrap(), 0);
        let mut ids: Vec<String> = receiver.verified.lock().unwrap().iter().map(|(id, _)| id.clone()).collect();
        ids.sort();
        assert_eq!(ids, messages.iter().map(|m| m.webhook_id.clone()).collect::<Vec<_>>());
        let delivered = state_of(&db, "delivered").await;
        assert_eq!(delivered.len(), 40, "{}", db.backend);
        assert!(delivered.iter().all(|d| d.tries == 1 && d.last_status == Some(200) && d.delivered_at == Some(t0())));
        assert_eq!(
            dispatcher
                .deliver_due(&db, &StrategySet::default(), &fallback(), t0() + Duration::hours(1))
                .await
                .unwrap()
                .claimed,
            0
        );
    }
}

#[tokio::test]
async fn failures_are_retried_on_schedule_under_the_same_id() {
    let secret = SigningSecret::generate();
    for db in common::all_dbs().await {
        let (receiver, url) = receiver(&secret).await;
        receiver.script.lock().unwrap().extend([Answer::Status(503), Answer::Slow(1500), Answer::RetryAfter(429, 600)]);
        let dispatcher = dispatcher(&url, &[&secret], "300ms");
        store::enqueue_deliveries(&*db, &[message(1, t0())], t0()).await.unwrap();

        // 503: the next try is 5 s later (±10 %).
        let report = dispatcher.deliver_due(&db, &StrategySet::default(), &fallback(), t0()).await.unwrap();
        assert_eq!((report.delivered, report.retrying), (0, 1), "{}", db.backend);
        let pending = &state_of(&db, "pending").await[0];
        let wait = pending.next_attempt_at - t0();
        assert!(wait >= Duration::milliseconds(4500) && wait <= Duration::milliseconds(5500), "{wait}");
        assert_eq!((pending.tries, pending.last_status), (1, Some(503)));
        assert_eq!(
            dispatcher
                .deliver_due(&db, &StrategySet::default(), &fallback(), t0() + Duration::seconds(4))
                .await
                .unwrap()
                .claimed,
            0
        );

        // A receiver slower than the timeout: the second failure waits 5 minutes.
        let t1 = pending.next_attempt_at;
        assert_eq!(dispatcher.deliver_due(&db, &StrategySet::default(), &fallback(), t1).await.unwrap().retrying, 1);
        let pending = &state_of(&db, "pending").await[0];
        assert!(pending.last_error.as_deref().unwrap().contains("no answer within"), "{pending:?}");
        assert!(pending.next_attempt_at - t1 >= Duration::seconds(270));

        // 429 with Retry-After: 600 s, longer than the scheduled 30 minutes? No: 10 min < 30 min.
        let t2 = pending.next_attempt_at;
        assert_eq!(dispatcher.deliver_due(&db, &StrategySet::default(), &fallback(), t2).await.unwrap().retrying, 1);
        let pending = &state_of(&db, "pending").await[0];
        assert!(pending.next_attempt_at - t2 >= Duration::minutes(27), "the schedule wins when longer");

        let t3 = pending.next_attempt_at;
        assert_eq!(dispatcher.deliver_due(&db, &StrategySet::default(), &fallback(), t3).await.unwrap().delivered, 1);
        let ids: Vec<String> = receiver.verified.lock().unwrap().iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(ids, vec!["msg_0001"; 4], "{}: every try carries the same webhook-id", db.backend);
        assert_eq!(state_of(&db, "delivered").await[0].tries, 4);
    }
}

#[tokio::test]
async fn retry_after_longer_than_the_schedule_is_honoured() {
    let secret = SigningSecret::generate();
    for db in common::all_dbs().await {
        let (receiver, url) = receiver(&secret).await;
        receiver.script.lock().unwrap().push_back(Answer::RetryAfter(503, 120));
        let dispatcher = dispatcher(&url, &[&secret], "5s");
        store::enqueue_deliveries(&*db, &[message(1, t0())], t0()).await.unwrap();
        dispatcher.deliver_due(&db, &StrategySet::default(), &fallback(), t0()).await.unwrap();
        assert_eq!(state_of(&db, "pending").await[0].next_attempt_at, t0() + Duration::seconds(120), "{}", db.backend);
    }
}

#[tokio::test]
async fn the_last_failure_makes_a_dead_letter_which_can_be_replayed() {
    let secret = SigningSecret::generate();
    for db in common::all_dbs().await {
        let (receiver, url) = receiver(&secret).await;
        receiver.script.lock().unwrap().extend(vec![Answer::Status(500); 8]);
        let dispatcher = dispatcher(&url, &[&secret], "5s");
        store::enqueue_deliveries(&*db, &[message(7, t0())], t0()).await.unwrap();
        let mut now = t0();
        for _ in 0..8 {
            let report = dispatcher.deliver_due(&db, &StrategySet::default(), &fallback(), now).await.unwrap();
            assert_eq!(report.claimed, 1, "{}", db.backend);
            now += Duration::hours(12);
        }
        let dead = state_of(&db, "dead").await;
        assert_eq!(dead.len(), 1, "{}: dead after {} tries", db.backend, arrears::dispatch::MAX_TRIES);
        assert_eq!(dead[0].tries, 8);
        assert_eq!(
            dispatcher
                .deliver_due(&db, &StrategySet::default(), &fallback(), now + Duration::days(30))
                .await
                .unwrap()
                .claimed,
            0
        );

        assert_eq!(store::replay_dead_letters(&db, &[dead[0].id], now).await.unwrap(), 1);
        assert_eq!(
            dispatcher.deliver_due(&db, &StrategySet::default(), &fallback(), now).await.unwrap().delivered,
            1,
            "{}",
            db.backend
        );
        let ids: Vec<String> = receiver.verified.lock().unwrap().iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(ids.len(), 9);
        assert!(ids.iter().all(|id| id == "msg_0007"));
    }
}

#[tokio::test]
async fn gone_disables_the_endpoint_until_it_is_enabled_again() {
    let secret = SigningSecret::generate();
    for db in common::all_dbs().await {
        let (receiver, url) = receiver(&secret).await;
        receiver.script.lock().unwrap().push_back(Answer::Status(410));
        let dispatcher = dispatcher(&url, &[&secret], "5s");
        store::enqueue_deliveries(&*db, &[message(1, t0())], t0()).await.unwrap();
        assert_eq!(
            dispatcher.deliver_due(&db, &StrategySet::default(), &fallback(), t0()).await.unwrap().gone,
            1,
            "{}",
            db.backend
        );
        store::enqueue_deliveries(&*db, &[message(2, t0())], t0()).await.unwrap();
        assert_eq!(
            dispatcher
                .deliver_due(&db, &StrategySet::default(), &fallback(), t0() + Duration::hours(1))
                .await
                .unwrap()
                .claimed,
            0
        );
        assert_eq!(store::disabled_endpoints(&*db).await.unwrap()[0].0, "robot");
        assert_eq!(receiver.verified.lock().unwrap().len(), 1, "{}: nothing sent while disabled", db.backend);

        assert_eq!(store::enable_endpoint(&db, "robot", t0() + Duration::hours(2)).await.unwrap(), 1);
        let report =
            dispatcher.deliver_due(&db, &StrategySet::default(), &fallback(), t0() + Duration::hours(2)).await.unwrap();
        assert_eq!((report.claimed, report.delivered), (2, 2), "{}", db.backend);
    }
}

#[tokio::test]
async fn a_claim_left_by_a_dead_worker_is_sent_again_after_its_hold() {
    let secret = SigningSecret::generate();
    for db in common::all_dbs().await {
        let (receiver, url) = receiver(&secret).await;
        let dispatcher = dispatcher(&url, &[&secret], "5s");
        store::enqueue_deliveries(&*db, &[message(3, t0())], t0()).await.unwrap();
        // A worker claims and dies before sending.
        let claimed = store::claim_due_deliveries(&db, t0(), 10, t0() + dispatcher.hold).await.unwrap();
        assert_eq!(claimed.len(), 1);
        let held = t0() + dispatcher.hold - Duration::seconds(1);
        assert_eq!(
            dispatcher.deliver_due(&db, &StrategySet::default(), &fallback(), held).await.unwrap().claimed,
            0,
            "held"
        );
        let report =
            dispatcher.deliver_due(&db, &StrategySet::default(), &fallback(), t0() + dispatcher.hold).await.unwrap();
        assert_eq!(report.delivered, 1, "{}", db.backend);
        assert_eq!(receiver.verified.lock().unwrap()[0].0, "msg_0003");
    }
}

#[tokio::test]
async fn dead_letters_are_listed_and_replayed_over_the_api() {
    for db in common::all_dbs().await {
        let app = common::app::spawn_app(db).await;
        let now = app.clock.now();
        store::enqueue_deliveries(&*app.db, &[message(9, now)], now).await.unwrap();
        let claimed = store::claim_due_deliveries(&app.db, now, 10, now).await.unwrap();
        let dead = store::TryResult::Failed { status: Some(500), error: "HTTP 500".into(), retry_at: None };
        assert!(store::record_try(&*app.db, claimed[0].id, &claimed[0].claim_token, &dead, now).await.unwrap());

        let admin = Some(app.tokens.admin.as_str());
        let listed: serde_json::Value = app.get("/v1/deliveries", admin).await.json().await.unwrap();
        assert_eq!(listed[0]["webhook_id"], "msg_0009", "{}", app.backend());
        assert_eq!(listed[0]["state"], "dead");
        assert_eq!(listed[0]["last_error"], "HTTP 500");
        let forbidden = app.get("/v1/deliveries", Some(app.tokens.agent.as_str())).await;
        assert_eq!(forbidden.status(), reqwest::StatusCode::FORBIDDEN);
        let unknown = app.get("/v1/deliveries?state=lost", admin).await;
        assert_eq!(unknown.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);

        let replayed = app.post_json("/v1/deliveries/replay", admin, &serde_json::json!({})).await;
        let replayed: serde_json::Value = replayed.json().await.unwrap();
        assert_eq!(replayed["requeued"], 1, "{}", app.backend());
        let pending = store::deliveries_in_state(&*app.db, "pending", 10).await.unwrap();
        assert_eq!((pending[0].webhook_id.as_str(), pending[0].tries), ("msg_0009", 0));
    }
}

#[tokio::test]
async fn a_receiver_answering_307_to_another_receiver_gets_a_failed_try_and_the_other_gets_nothing() {
    let secret = SigningSecret::generate();
    for db in common::all_dbs().await {
        let (elsewhere, elsewhere_url) = receiver(&secret).await;
        let (receiver, url) = receiver(&secret).await;
        receiver.script.lock().unwrap().extend(vec![Answer::Redirect(elsewhere_url.clone()); 2]);
        let dispatcher = dispatcher(&url, &[&secret], "5s");
        store::enqueue_deliveries(&*db, &[message(4, t0())], t0()).await.unwrap();

        let report = dispatcher.deliver_due(&db, &StrategySet::default(), &fallback(), t0()).await.unwrap();
        assert_eq!((report.delivered, report.retrying), (0, 1), "{}: {report:?}", db.backend);
        assert_eq!(receiver.verified.lock().unwrap().len(), 1);
        assert!(elsewhere.verified.lock().unwrap().is_empty(), "{}: the signed body went nowhere else", db.backend);
        let pending = &state_of(&db, "pending").await[0];
        assert_eq!((pending.tries, pending.last_status), (1, Some(307)), "{}", db.backend);
        let error = pending.last_error.as_deref().unwrap();
        assert!(error.contains("redirects are not followed") && error.contains(&elsewhere_url), "{error}");
        let wait = pending.next_attempt_at - t0();
        assert!(wait >= Duration::milliseconds(4500) && wait <= Duration::milliseconds(5500), "on schedule: {wait}");
    }
}

#[tokio::test]
async fn a_stale_claim_cannot_record_its_result_and_a_delivered_message_stays_delivered() {
    let secret = SigningSecret::generate();
    for db in common::all_dbs().await {
        let (receiver, url) = receiver(&secret).await;
        let dispatcher = dispatcher(&url, &[&secret], "5s");
        store::enqueue_deliveries(&*db, &[message(5, t0())], t0()).await.unwrap();
        // Worker A claims and stalls past its hold; worker B (another instance) takes over.
        let stale = store::claim_due_deliveries(&db, t0(), 10, t0() + dispatcher.hold).await.unwrap().remove(0);
        let during = t0() + dispatcher.hold - Duration::seconds(1);
        assert!(store::claim_due_deliveries(&db, during, 10, during + dispatcher.hold).await.unwrap().is_empty());
        let later = t0() + dispatcher.hold;
        let report = dispatcher.deliver_due(&db, &StrategySet::default(), &fallback(), later).await.unwrap();
        assert_eq!((report.claimed, report.delivered), (1, 1), "{}", db.backend);
        assert_eq!(receiver.verified.lock().unwrap().len(), 1);

        // A's late results change nothing.
        let failed = store::TryResult::Failed {
            status: Some(503),
            error: "HTTP 503".into(),
            retry_at: Some(later + Duration::seconds(5)),
        };
        assert!(!store::record_try(&*db, stale.id, &stale.claim_token, &failed, later).await.unwrap());
        let gone = store::TryResult::Gone;
        assert!(!store::record_try(&*db, stale.id, &stale.claim_token, &gone, later).await.unwrap());
        assert_eq!(store::record_delivered(&*db, &stale.claim_token, &[stale.id], 200, later).await.unwrap(), 0);
        assert!(!store::void_claimed(&*db, stale.id, &stale.claim_token, "window_closed").await.unwrap());
        // Nor do later statements of any kind: a delivered row is final.
        assert_eq!(store::replay_dead_letters(&db, &[stale.id], later).await.unwrap(), 0);
        assert!(store::void_unsent(&*db, &["msg_0005"], "not_live", later).await.unwrap().is_empty());
        assert_eq!(store::enable_endpoint(&db, "robot", later).await.unwrap(), 0);
        let delivered = state_of(&db, "delivered").await;
        assert_eq!(delivered.len(), 1, "{}", db.backend);
        assert_eq!(
            (delivered[0].tries, delivered[0].last_status, delivered[0].claim_token.as_deref()),
            (1, Some(200), None),
            "{}",
            db.backend
        );
        let next = later + Duration::days(1);
        assert!(store::claim_due_deliveries(&db, next, 10, next + dispatcher.hold).await.unwrap().is_empty());
    }
}
