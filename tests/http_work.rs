//! The work-queue endpoints over HTTP, on SQLite and (when configured) PostgreSQL: leasing in
//! priority order, 204 when empty, the lease's agent only, attempts by role, many agents at
//! once with nothing handed out twice, and explain.

mod common;

use common::all_dbs;
use common::app::{TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;

/// A VIP account of the shipped `consumer-cash` strategy: a human task in queue `senior` at the
/// test clock's start (09:00 in Shanghai), priority = balance.
fn vip(id: &str, borrower: &str, balance: u32) -> Value {
    json!({
        "account_id": id, "borrower_id": borrower, "name": "Ada Lovelace",
        "phones": [format!("+86138{:08}", balance)], "email": null, "timezones": ["Asia/Shanghai"],
        "product": "cash", "currency": "CNY", "amount_due": "300", "balance": balance.to_string(),
        "due_date": "2026-11-17", "tags": ["vip"], "flags": [], "consent_robot": true,
        "scores": {}, "attrs": {}
    })
}

async fn book(app: &TestApp, accounts: Vec<Value>) {
    let response = app.post_json("/v1/accounts", Some(&app.tokens.ingest), &Value::Array(accounts)).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    let strategies = app.state.strategies.current();
    arrears::ops::plan_and_persist(&app.db, &strategies, app.clock.now(), false).await.unwrap();
}

async fn agent_token(app: &TestApp, agent: &str) -> String {
    arrears::ops::tokens::create_token(
        &app.db.db,
        arrears::ops::tokens::Role::Agent,
        Some(agent),
        None,
        app.clock.now(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn agents_lease_in_priority_order_and_only_the_holder_acts_on_a_lease() {
    for db in all_dbs().await {
        let app = spawn_app(db).await;
        let backend = app.backend();
        book(&app, vec![vip("A-small", "B-1", 30_000), vip("A-big", "B-2", 90_000)]).await;
        let ann = app.tokens.agent.clone();
        let bob = agent_token(&app, "bob").await;

        let first = app.post_json("/v1/queues/senior/lease", Some(&ann), &json!({})).await;
        assert_eq!(first.status(), StatusCode::OK, "{backend}");
        let first: Value = first.json().await.unwrap();
        assert_eq!(first["task"]["account_id"], "A-big", "{backend}: the largest balance first");
        assert_eq!(first["task"]["calls_allowed"], 2);
        assert_eq!(first["account"]["phones"][0], "+8613800090000");
        assert_eq!(first["lease_expires_at"], "2026-11-22T01:15:00Z", "{backend}: 15 minutes by default");
        let task = first["task"]["id"].as_i64().unwrap();

        let second: Value =
            app.post_json("/v1/queues/senior/lease", Some(&bob), &json!({})).await.json().await.unwrap();
        assert_eq!(second["task"]["account_id"], "A-small");
        let empty = app.post_json("/v1/queues/senior/lease", Some(&bob), &json!({})).await;
        assert_eq!(empty.status(), StatusCode::NO_CONTENT, "{backend}");

        // Bob cannot act on Ann's lease; the dialler cannot report on a human task.
        let stolen = app.post_json(&format!("/v1/tasks/{task}/complete"), Some(&bob), &json!({})).await;
        assert_eq!(stolen.status(), StatusCode::FORBIDDEN, "{backend}");
        let dialler = app
            .post_json(&format!("/v1/tasks/{task}/attempts"), Some(&app.tokens.dialler), &json!({"outcome": "rpc"}))
            .await;
        assert_eq!(dialler.status(), StatusCode::FORBIDDEN, "{backend}");
        let not_agent = app.post_json("/v1/queues/senior/lease", Some(&app.tokens.dialler), &json!({})).await;
        assert_eq!(not_agent.status(), StatusCode::FORBIDDEN);

        // Ann heartbeats, records a promise, completes; a second completion conflicts.
        app.clock.advance(chrono::Duration::minutes(10));
        let renewed: Value =
            app.post_json(&format!("/v1/tasks/{task}/heartbeat"), Some(&ann), &json!({})).await.json().await.unwrap();
        assert_eq!(renewed["lease_expires_at"], "2026-11-22T01:25:00Z", "{backend}");
        let bad =
            app.post_json(&format!("/v1/tasks/{task}/attempts"), Some(&ann), &json!({"outcome": "promise"})).await;
        assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY, "{backend}: a promise needs its terms");
        let promised = app
            .post_json(
                &format!("/v1/tasks/{task}/attempts"),
                Some(&ann),
                &json!({"outcome": "promise", "promise": {"amount": "300", "due_on": "2026-11-25"}, "phone": "+8613800090000"}),
            )
            .await;
        assert_eq!(promised.status(), StatusCode::OK, "{backend}: {}", promised.text().await.unwrap());
        let done = app.post_json(&format!("/v1/tasks/{task}/complete"), Some(&ann), &json!({})).await;
        assert_eq!(done.status(), StatusCode::OK, "{backend}");
        let again = app.post_json(&format!("/v1/tasks/{task}/complete"), Some(&ann), &json!({})).await;
        assert_eq!(again.status(), StatusCode::CONFLICT, "{backend}");
        let missing = app.post_json("/v1/tasks/999999/heartbeat", Some(&ann), &json!({})).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);

        // Explain shows the promise keeping the account out of tomorrow's plan.
        let explained = app.get("/v1/accounts/A-big/explain?as_of=2026-11-23T01:00:00Z", Some(&app.tokens.admin)).await;
        assert_eq!(explained.status(), StatusCode::OK, "{backend}");
        let explained: Value = explained.json().await.unwrap();
        assert_eq!(explained["explanation"]["decision"]["reason"], "promise_open", "{backend}");
        assert_eq!(explained["tasks"][0]["state"], "done");
        let unknown = app.get("/v1/accounts/nope/explain", Some(&app.tokens.admin)).await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        let bad_instant = app.get("/v1/accounts/A-big/explain?as_of=tomorrow", Some(&app.tokens.admin)).await;
        assert_eq!(bad_instant.status(), StatusCode::BAD_REQUEST);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_agents_leasing_at_once_never_get_the_same_task() {
    for db in all_dbs().await {
        let app = spawn_app(db).await;
        let backend = app.backend();
        let accounts: Vec<Value> =
            (0..60).map(|n| vip(&format!("A-{n:03}"), &format!("B-{n:03}"), 20_000 + n)).collect();
        book(&app, accounts).await;
        let mut tokens = Vec::new();
        for n in 0..16 {
            tokens.push(agent_token(&app, &format!("agent-{n}")).await);
        }
        let mut agents = tokio::task::JoinSet::new();
        for token in tokens {
            let (client, base) = (app.client.clone(), app.base.clone());
            agents.spawn(async move {
                let mut leased = Vec::new();
                let mut empty = 0;
                while empty < 3 {
                    let response =
                        client.post(format!("{base}/v1/queues/senior/lease")).bearer_auth(&token).send().await.unwrap();
                    if response.status() == StatusCode::NO_CONTENT {
                        empty += 1;
                        continue;
                    }
                    assert_eq!(response.status(), StatusCode::OK);
                    let lease: Value = response.json().await.unwrap();
                    let id = lease["task"]["id"].as_i64().unwrap();
                    leased.push(id);
                    let done =
                        client.post(format!("{base}/v1/tasks/{id}/complete")).bearer_auth(&token).send().await.unwrap();
                    assert_eq!(done.status(), StatusCode::OK);
                }
                leased
            });
        }
        let mut all = Vec::new();
        while let Some(leased) = agents.join_next().await {
            all.extend(leased.unwrap());
        }
        let unique: HashSet<i64> = all.iter().copied().collect();
        assert_eq!(unique.len(), all.len(), "{backend}: a task was handed out twice");
        assert_eq!(all.len(), 60, "{backend}: every task was handed out once");
    }
}
