//! The demo's simulated call center agents: they lease human tasks through the real HTTP API,
//! place the calls the lease allows, report each attempt's outcome with probabilities that
//! depend on the borrower's local hour and the account's days past due, and complete the task.
//! A simulated servicing system pays most promises on their day. Only HTTP: nothing here
//! touches the database or the engine directly.

use chrono::{DateTime, Duration, FixedOffset, Timelike, Utc};
use rand::Rng;
use rand::rngs::SmallRng;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What the agents did, by outcome.
#[derive(Debug, Clone, Default)]
pub struct AgentTally {
    /// Tasks leased.
    pub leases: u64,
    /// Attempts reported, by outcome code.
    pub outcomes: BTreeMap<String, u64>,
    /// Requests the API refused (4xx/5xx other than 204); should stay 0.
    pub refused: u64,
}

/// One agent, by its bearer token (the token names the agent).
#[derive(Debug, Clone)]
pub struct Agent {
    /// Its token.
    pub token: String,
}

/// A client of the running API.
#[derive(Debug, Clone)]
pub struct Api {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The HTTP client.
    pub client: reqwest::Client,
}

impl Api {
    /// POSTs a JSON body and returns only the status.
    pub async fn post_status(&self, path: &str, token: &str, body: &Value) -> Result<u16, reqwest::Error> {
        Ok(self.post(path, token, Some(body)).await?.0)
    }

    async fn post(&self, path: &str, token: &str, body: Option<&Value>) -> Result<(u16, Value), reqwest::Error> {
        let mut request = self.client.post(format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = if status == 204 { Value::Null } else { response.json().await.unwrap_or(Value::Null) };
        Ok((status, body))
    }
}

/// The outcome of one simulated call.
fn call_outcome(rng: &mut SmallRng, local_hour: u32, dpd: i64) -> &'static str {
    let mut answer: f64 = 0.42;
    if (17..21).contains(&local_hour) {
        answer += 0.15;
    } else if local_hour < 10 {
        answer -= 0.1;
    }
    if dpd > 60 {
        answer -= 0.15;
    }
    if rng.random_bool(answer.clamp(0.05, 0.95)) {
        let draw: f64 = rng.random();
        match draw {
            d if d < 0.05 => "third_party",
            d if d < 0.40 => "promise",
            d if d < 0.58 => "refused",
            d if d < 0.66 => "callback",
            d if d < 0.68 => "dispute",
            d if d < 0.70 => "do_not_call",
            d if d < 0.74 => "paid_claimed",
            _ => "rpc",
        }
    } else {
        let draw: f64 = rng.random();
        match draw {
            d if d < 0.60 => "no_answer",
            d if d < 0.85 => "voicemail",
            d if d < 0.96 => "busy",
            _ => "wrong_number",
        }
    }
}

/// Each agent takes up to `per_agent` tasks from the queues (in turn) at `now`: leases one,
/// calls up to `calls_allowed` times (stopping at a conversation), reports every call and
/// completes the task.
pub async fn work_step(
    api: &Api,
    agents: &[Agent],
    queues: &[String],
    per_agent: usize,
    now: DateTime<Utc>,
    rng: &mut SmallRng,
    tally: &mut AgentTally,
) -> anyhow::Result<()> {
    let mut empty: Vec<bool> = vec![false; queues.len()];
    for round in 0..per_agent {
        for (index, agent) in agents.iter().enumerate() {
            let Some(queue) =
                (0..queues.len()).map(|offset| (index + round + offset) % queues.len()).find(|queue| !empty[*queue])
            else {
                return Ok(());
            };
            let (status, lease) = api.post(&format!("/v1/queues/{}/lease", queues[queue]), &agent.token, None).await?;
            match status {
                204 => {
                    empty[queue] = true;
                    continue;
                }
                200 => tally.leases += 1,
                _ => {
                    tally.refused += 1;
                    continue;
                }
            }
            work_lease(api, agent, &lease, now, rng, tally).await?;
        }
    }
    Ok(())
}

async fn work_lease(
    api: &Api,
    agent: &Agent,
    lease: &Value,
    now: DateTime<Utc>,
    rng: &mut SmallRng,
    tally: &mut AgentTally,
) -> anyhow::Result<()> {
    let task = &lease["task"];
    let id = task["id"].as_i64().unwrap_or_default();
    let calls = task["calls_allowed"].as_u64().unwrap_or(1).max(1);
    let dpd = task["dpd"].as_i64().unwrap_or(0);
    let offset = task["not_before"]
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|at| *at.offset())
        .unwrap_or_else(|| FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!("UTC is a valid offset")));
    let local = now.with_timezone(&offset);
    let phone = lease["account"]["phones"][0].as_str().map(str::to_string);
    let amount_due = lease["account"]["amount_due"].as_str().unwrap_or("100").to_string();
    // An agent calls a minute apart, and only while the lease holds (never past its end: the
    // task's window or the contact hours).
    let until = lease["lease_expires_at"]
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map_or(now + Duration::minutes(1), |at| at.with_timezone(&chrono::Utc));
    for call in 0..calls {
        let at = now + Duration::minutes(i64::try_from(call).unwrap_or(0));
        if at >= until {
            break;
        }
        let outcome = call_outcome(rng, local.hour(), dpd);
        let mut report = json!({"outcome": outcome, "at": at, "phone": phone});
        match outcome {
            "promise" => {
                let due_on = (local + Duration::days(rng.random_range(1..=5))).date_naive();
                report["promise"] = json!({"amount": amount_due, "due_on": due_on});
            }
            "callback" => report["callback_at"] = json!(now + Duration::hours(2)),
            _ => {}
        }
        let (status, _) = api.post(&format!("/v1/tasks/{id}/attempts"), &agent.token, Some(&report)).await?;
        if status == 200 {
            *tally.outcomes.entry(outcome.to_string()).or_default() += 1;
        } else {
            tally.refused += 1;
        }
        let conversation = !matches!(outcome, "no_answer" | "voicemail" | "busy" | "wrong_number" | "third_party");
        if conversation {
            break;
        }
    }
    let (status, _) = api.post(&format!("/v1/tasks/{id}/complete"), &agent.token, None).await?;
    if status != 200 && status != 409 {
        // 409: an outcome (a promise, a dispute) already closed the task.
        tally.refused += 1;
    }
    Ok(())
}

/// The simulated servicing system: pays each open promise due by `today` with probability
/// `keep` (all of it, once), through `POST /v1/payments`. Returns the payments posted.
pub async fn pay_promises(
    api: &Api,
    ingest_token: &str,
    due: &[(i64, String, String)],
    now: DateTime<Utc>,
    keep: f64,
    rng: &mut SmallRng,
) -> anyhow::Result<u64> {
    let mut payments = Vec::new();
    for (promise_id, account_id, amount) in due {
        if rng.random_bool(keep) {
            payments.push(json!({
                "account_id": account_id,
                "amount": amount,
                "paid_at": now,
                "reference": format!("demo-promise-{promise_id}"),
            }));
        }
    }
    if payments.is_empty() {
        return Ok(0);
    }
    let count = payments.len() as u64;
    let (status, body) = api.post("/v1/payments", ingest_token, Some(&Value::Array(payments))).await?;
    if status != 200 {
        anyhow::bail!("the payments were refused ({status}): {body}");
    }
    Ok(count)
}
