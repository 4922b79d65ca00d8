//! The simulated lender's risk desk: once a day its monitoring sends the day's risk events
//! (`World::risk_events`) through the same path as `POST /v1/events`, and every working hour
//! each team closes the open cases of its queue that it has had time for, with the disposition
//! the world says (`World::work_case`), through the same path as `POST /v1/cases/{id}/close`.
//! Counts what happened for the report. No decision of the engine's is made here.

use crate::domain::CaseState;
use crate::ops::events::{self, EventIn};
use crate::sim::World;
use crate::strategy::StrategySet;
use chrono::{DateTime, Duration, Timelike, Utc};
use chrono_tz::Tz;
use sea_orm::DatabaseConnection;
use serde::Serialize;
use std::collections::BTreeMap;

/// The UTC hour the monitoring sends the day's events.
pub const RISK_HOUR_UTC: u32 = 7;

/// The teams' working hours, in the portfolio zone: `[start, end)`.
pub const TEAM_HOURS: (u32, u32) = (9, 18);

/// Cases one team closes in an hour at most (the rest wait, and may miss their SLA).
pub const CASES_PER_TEAM_HOUR: usize = 3;

/// What the risk desk saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RiskTally {
    /// Events sent, by type.
    pub events: BTreeMap<String, u64>,
    /// Reactions that acted (one per reaction and account).
    pub reactions: u64,
    /// Cases opened.
    pub cases_opened: u64,
    /// Cases closed, and of them within their SLA.
    pub cases_closed: u64,
    /// Closed within the SLA.
    pub sla_met: u64,
    /// Closed cases by disposition.
    pub dispositions: BTreeMap<String, u64>,
}

/// Sends the day's events at [`RISK_HOUR_UTC`].
pub(super) async fn raise_events(
    db: &DatabaseConnection,
    strategies: &StrategySet,
    world: &World,
    now: DateTime<Utc>,
    tally: &mut RiskTally,
) -> anyhow::Result<()> {
    if now.hour() != RISK_HOUR_UTC {
        return Ok(());
    }
    let raised = world.risk_events(now.date_naive());
    if raised.is_empty() {
        return Ok(());
    }
    let items: Vec<EventIn> = raised
        .iter()
        .map(|event| EventIn {
            id: event.id.clone(),
            kind: event.kind.code().to_string(),
            account_id: Some(event.account_id.clone()),
            borrower_id: None,
            at: (now - Duration::minutes(30)).to_rfc3339(),
            fields: event.fields.clone(),
        })
        .collect();
    let mut checked = Vec::with_capacity(items.len());
    for item in &items {
        match events::check_event(item, now) {
            Ok(event) => checked.push(event),
            Err(problems) => anyhow::bail!("a simulated event is invalid: {problems:?}"),
        }
    }
    let labels: Vec<String> = checked.iter().map(|event| event.id.clone()).collect();
    let report = events::apply_events(db, strategies, &checked, &labels, now, "monitoring")
        .await
        .map_err(|error| anyhow::anyhow!("the simulated events were refused: {error}"))?;
    for event in &raised {
        *tally.events.entry(event.kind.code().to_string()).or_insert(0) += 1;
    }
    tally.reactions += report.reactions.len() as u64;
    tally.cases_opened += report.reactions.iter().filter(|fired| fired.case_id.is_some()).count() as u64;
    Ok(())
}

/// In the teams' working hours, closes the open cases each team has had time for: oldest
/// deadline first, each once its handling time since it opened has passed, at most
/// [`CASES_PER_TEAM_HOUR`] a team an hour.
pub(super) async fn work_cases(
    db: &DatabaseConnection,
    world: &World,
    zone: Tz,
    now: DateTime<Utc>,
    tally: &mut RiskTally,
) -> anyhow::Result<()> {
    let local = now.with_timezone(&zone).hour();
    if local < TEAM_HOURS.0 || local >= TEAM_HOURS.1 {
        return Ok(());
    }
    let open = events::list_cases(db, None, Some(CaseState::Open), now).await?;
    let mut closed_by_queue: BTreeMap<String, usize> = BTreeMap::new();
    for case in open {
        let done = closed_by_queue.entry(case.queue.clone()).or_insert(0);
        if *done >= CASES_PER_TEAM_HOUR {
            continue;
        }
        let work = world.work_case(&case.account_id, &case.event_type, case.id);
        if case.opened_at + Duration::minutes(work.minutes) > now {
            continue;
        }
        let agent = format!("{}-team", case.queue);
        let note = format!("simulated: worked in {} min", work.minutes);
        let closed = events::close_case(db, case.id, &agent, Some(work.disposition.code()), Some(&note), now)
            .await
            .map_err(|error| anyhow::anyhow!("closing simulated case {}: {error}", case.id))?;
        *done += 1;
        tally.cases_closed += 1;
        tally.sla_met += u64::from(closed.sla_met == Some(true));
        *tally.dispositions.entry(work.disposition.code().to_string()).or_insert(0) += 1;
    }
    Ok(())
}
