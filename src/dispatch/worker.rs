//! The delivery worker: claims due deliveries, has the claim-time check (`outbox`) void or
//! postpone those about tasks that are no longer sendable, POSTs the rest to their endpoint with
//! Standard Webhooks headers (in parallel, at most `concurrency` in flight per endpoint), and
//! records the result under the claim's token — delivered, retry later (schedule with jitter,
//! `Retry-After`), dead letter, or `410 Gone` (the endpoint is disabled). Bodies are rendered
//! before they are enqueued; redirects are never followed (a 3xx is a failed try), so a signed
//! body with personal data only ever goes to the configured URL. An endpoint may instead be an
//! in-process receiver (`Dispatcher::with_sink`): only the transport differs.

use super::outbox::screen_claimed;
use super::sink::{Sink, SinkTarget, answered};
use super::{EndpointError, SigningSecret, next_try, parse_retry_after, signature_header};
use crate::config::Config;
use crate::policy::Policy;
use crate::store::{self, ClaimedDelivery, StoreError, TryResult};
use crate::strategy::StrategySet;
use chrono::{DateTime, Duration, Utc};
use sea_orm::DatabaseConnection;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// One endpoint, ready to send to.
#[derive(Debug)]
pub struct EndpointTarget {
    /// Its name (`robot`, `sms`, ...).
    pub name: String,
    /// Where to POST.
    pub url: reqwest::Url,
    /// Secrets that sign every message.
    pub secrets: Vec<SigningSecret>,
    /// Request timeout.
    pub timeout: std::time::Duration,
    /// Requests in flight at most.
    permits: Arc<Semaphore>,
}

impl EndpointTarget {
    /// An endpoint from its configuration; errors name the key.
    pub fn from_config(name: &str, config: &crate::config::Endpoint) -> Result<EndpointTarget, EndpointError> {
        let error = |field: &'static str, message: String| EndpointError { endpoint: name.to_string(), field, message };
        let url = reqwest::Url::parse(&config.url).map_err(|e| error("url", format!("`{}`: {e}", config.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(error("url", format!("`{}` is not an http(s) URL", config.url)));
        }
        let secrets = config
            .secret
            .all()
            .into_iter()
            .map(SigningSecret::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| error("secret", message))?;
        if secrets.is_empty() {
            return Err(error("secret", "at least one secret is needed".into()));
        }
        let timeout = humantime::parse_duration(&config.timeout)
            .map_err(|e| error("timeout", format!("`{}`: {e}", config.timeout)))?;
        if config.concurrency == 0 {
            return Err(error("concurrency", "must be at least 1".into()));
        }
        Ok(EndpointTarget {
            name: name.to_string(),
            url,
            secrets,
            timeout,
            permits: Arc::new(Semaphore::new(config.concurrency)),
        })
    }
}

/// Deliveries a step claims at least once an in-process endpoint is set.
pub const SINK_BATCH: u64 = 256;

/// What one [`Dispatcher::deliver_due`] step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Deliveries claimed.
    pub claimed: u64,
    /// Delivered (2xx).
    pub delivered: u64,
    /// Failed, to be tried again.
    pub retrying: u64,
    /// Failed for the last time: dead letters.
    pub dead: u64,
    /// Answered `410 Gone`.
    pub gone: u64,
    /// Voided at claim time: about a task no longer sendable (or a `task.cancelled` whose
    /// `task.ready` was never delivered); never sent.
    pub voided: u64,
    /// Given back at claim time without a try: outside the contact hours now, or a
    /// `task.cancelled` whose `task.ready` is being sent.
    pub waiting: u64,
    /// Results not recorded because the claim was lost meanwhile (its hold passed and another
    /// worker took the message over).
    pub stale: u64,
}

/// Delivers the outbox.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    client: reqwest::Client,
    endpoints: Arc<BTreeMap<String, Arc<EndpointTarget>>>,
    /// In-process endpoints by name; one of them takes the place of an HTTP endpoint of the
    /// same name.
    sinks: Arc<BTreeMap<String, SinkTarget>>,
    /// Deliveries claimed per step.
    pub batch: u64,
    /// How long a claim holds a delivery (after which a dead worker's claim is due again).
    pub hold: Duration,
}

impl Dispatcher {
    /// A dispatcher for the configured endpoints.
    pub fn from_config(config: &Config) -> Result<Dispatcher, EndpointError> {
        let mut endpoints = BTreeMap::new();
        for (name, endpoint) in &config.endpoints {
            endpoints.insert(name.clone(), Arc::new(EndpointTarget::from_config(name, endpoint)?));
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("arrears/", env!("CARGO_PKG_VERSION")))
            // A redirect would re-send the signed body, with personal data, wherever the
            // `Location` points: a 3xx is a failed try instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| EndpointError { endpoint: "*".into(), field: "client", message: e.to_string() })?;
        // A claim must outlast the sends of its batch: at most two rounds of each endpoint's
        // concurrency, each bounded by the timeout. Then a dead worker's claims are sent again
        // soon after (under the same webhook-id), and a live one's are never sent twice.
        let concurrency: usize = endpoints.values().map(|endpoint| endpoint.permits.available_permits()).sum();
        let longest = endpoints.values().map(|endpoint| endpoint.timeout).max().unwrap_or_default();
        let hold = Duration::from_std(longest * 2).unwrap_or(Duration::minutes(2)) + Duration::seconds(1);
        let batch = (concurrency as u64 * 2).clamp(1, 256);
        Ok(Dispatcher { client, endpoints: Arc::new(endpoints), sinks: Arc::default(), batch, hold })
    }

    /// Delivers the messages of endpoint `name` to `sink`, in this process, signed with
    /// `secret` exactly as an HTTP receiver would get them (the timestamp is the engine's
    /// `now`); the sink's answer is recorded as a response's would be. Everything else — the
    /// claim, the claim-time check, voiding, retries, dead letters — is unchanged. Takes the
    /// place of an HTTP endpoint of the same name. A step claims at least
    /// [`SINK_BATCH`] messages once a sink is set (a sink answers at once).
    pub fn with_sink(mut self, name: impl Into<String>, secret: SigningSecret, sink: Arc<dyn Sink>) -> Dispatcher {
        Arc::make_mut(&mut self.sinks).insert(name.into(), SinkTarget { secrets: vec![secret], sink });
        self.batch = self.batch.max(SINK_BATCH);
        self
    }

    /// Whether an endpoint of that name is configured (over HTTP or in-process).
    pub fn has_endpoint(&self, name: &str) -> bool {
        self.endpoints.contains_key(name) || self.sinks.contains_key(name)
    }

    /// One step at `now`: claims due deliveries, checks those about tasks (a `task.ready` goes
    /// out only while its task is sendable under `strategies` — or `fallback` when its strategy
    /// is no longer loaded —, a `task.cancelled` only after its `task.ready` was delivered),
    /// sends the rest in parallel and records each result under the claim's token.
    pub async fn deliver_due(
        &self,
        db: &DatabaseConnection,
        strategies: &StrategySet,
        fallback: &Policy,
        now: DateTime<Utc>,
    ) -> Result<DeliveryReport, StoreError> {
        let claimed = store::claim_due_deliveries(db, now, self.batch, now + self.hold).await?;
        let mut report = DeliveryReport { claimed: claimed.len() as u64, ..DeliveryReport::default() };
        if claimed.is_empty() {
            return Ok(report);
        }
        let screened = screen_claimed(db, claimed, strategies, fallback, now).await?;
        report.voided = screened.voided;
        report.waiting = screened.waiting;
        let mut sends = tokio::task::JoinSet::new();
        let mut answered_in_process = Vec::new();
        for delivery in screened.send {
            if let Some(sink) = self.sinks.get(&delivery.endpoint) {
                let tries = u32::try_from(delivery.tries + 1).unwrap_or(u32::MAX);
                let result = sink.send(&delivery.webhook_id, &delivery.body, tries, now, jitter());
                answered_in_process.push((delivery, result));
                continue;
            }
            let endpoint = self.endpoints.get(&delivery.endpoint).cloned();
            let client = self.client.clone();
            sends.spawn(async move {
                let result = match endpoint {
                    Some(endpoint) => send(&client, &endpoint, &delivery, now).await,
                    None => TryResult::Failed {
                        status: None,
                        error: format!("no endpoint `{}` is configured", delivery.endpoint),
                        retry_at: next_try(u32::try_from(delivery.tries + 1).unwrap_or(u32::MAX), now, None, jitter()),
                    },
                };
                (delivery, result)
            });
        }
        let mut delivered: BTreeMap<(u16, String), Vec<i64>> = BTreeMap::new();
        let mut in_process = answered_in_process.into_iter();
        loop {
            let (delivery, result) = match in_process.next() {
                Some(answered) => answered,
                None => match sends.join_next().await {
                    Some(Ok(sent)) => sent,
                    Some(Err(_)) => continue, // A panicked send leaves its claim to expire: it is sent again.
                    None => break,
                },
            };
            match &result {
                TryResult::Delivered { .. } => report.delivered += 1,
                TryResult::Failed { retry_at: Some(_), error, .. } => {
                    report.retrying += 1;
                    tracing::info!(webhook_id = delivery.webhook_id, error, "delivery failed; will retry");
                }
                TryResult::Failed { retry_at: None, error, .. } => {
                    report.dead += 1;
                    tracing::warn!(webhook_id = delivery.webhook_id, error, "delivery failed for the last time");
                }
                TryResult::Gone => {
                    report.gone += 1;
                    tracing::warn!(endpoint = delivery.endpoint, "endpoint answered 410 Gone; disabled");
                    store::disable_endpoint(db, &delivery.endpoint, "answered 410 Gone", now).await?;
                }
            }
            match result {
                TryResult::Delivered { status } => {
                    delivered.entry((status, delivery.claim_token)).or_default().push(delivery.id);
                }
                other => {
                    if !store::record_try(db, delivery.id, &delivery.claim_token, &other, now).await? {
                        report.stale += 1;
                        tracing::warn!(
                            webhook_id = delivery.webhook_id,
                            "the claim was lost before its result was recorded (another worker took it over)"
                        );
                    }
                }
            }
        }
        // The common case in one statement per status: a batch costs two statements, not one
        // per message.
        for ((status, token), ids) in delivered {
            let recorded = store::record_delivered(db, &token, &ids, status, now).await?;
            let lost = ids.len() as u64 - recorded.min(ids.len() as u64);
            if lost > 0 {
                report.stale += lost;
                tracing::warn!(lost, "deliveries sent after their claim was lost; another worker owns them now");
            }
        }
        Ok(report)
    }
}

fn jitter() -> f64 {
    rand::random::<f64>() * 2.0 - 1.0
}

/// One POST and what it came to. `webhook-timestamp` is the wall clock at sending (receivers
/// check it against theirs); the body's `timestamp` is the event's time on the engine's clock.
async fn send(
    client: &reqwest::Client,
    endpoint: &EndpointTarget,
    delivery: &ClaimedDelivery,
    now: DateTime<Utc>,
) -> TryResult {
    let tries = u32::try_from(delivery.tries + 1).unwrap_or(u32::MAX);
    let Ok(_permit) = endpoint.permits.acquire().await else {
        return TryResult::Failed { status: None, error: "shutting down".into(), retry_at: Some(now) };
    };
    let timestamp = Utc::now().timestamp();
    let signature = signature_header(&endpoint.secrets, &delivery.webhook_id, timestamp, delivery.body.as_bytes());
    let response = client
        .post(endpoint.url.clone())
        .timeout(endpoint.timeout)
        .header("content-type", "application/json")
        .header("webhook-id", &delivery.webhook_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(delivery.body.clone())
        .send()
        .await;
    match response {
        Ok(response) if response.status().is_success() => TryResult::Delivered { status: response.status().as_u16() },
        Ok(response) if response.status().is_redirection() => {
            let status = response.status().as_u16();
            let location = response.headers().get(reqwest::header::LOCATION).and_then(|value| value.to_str().ok());
            TryResult::Failed {
                status: Some(status),
                error: format!(
                    "HTTP {status} redirect to {}: redirects are not followed; configure the final URL",
                    location.unwrap_or("(no Location)")
                ),
                retry_at: next_try(tries, now, None, jitter()),
            }
        }
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, now));
            answered(status, retry_after, tries, now, jitter())
        }
        Err(error) => {
            let error = if error.is_timeout() {
                format!("no answer within {:?}", endpoint.timeout)
            } else {
                format!("cannot reach the endpoint: {error}")
            };
            TryResult::Failed { status: None, error, retry_at: next_try(tries, now, None, jitter()) }
        }
    }
}
