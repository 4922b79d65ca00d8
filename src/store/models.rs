//! `contact_models` and the training read: storing and loading the learned contact models
//! (`crate::learn::ContactModel`, as JSON), and reading the attempts of a window page by page
//! as [`AttemptFact`]s. No fitting here (that is `crate::learn`), and no clock: `now` comes in.

use super::StoreError;
use super::book::unpack;
use super::sql::json_page;
use crate::domain::{Borrower, Channel, Outcome, parse_timezone};
use crate::learn::{AttemptFact, ContactModel};
use chrono::{DateTime, Datelike as _, Timelike as _, Utc};
use chrono_tz::Tz;
use entity::contact_models;
use rustc_hash::FxHashMap as HashMap;
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait, EntityTrait, QueryOrder, QuerySelect};
use std::borrow::Cow;

/// Attempts read per page by [`read_attempt_facts`].
pub const FACT_PAGE_ROWS: u64 = 50_000;

/// The stage of attempt `a`: its task's stage; else the last stage the account was put in at or
/// before the attempt (`stage_history`); else the account's stage stored now (`acs`, its row of
/// `account_stages`); else `unknown`.
const STAGE: &str = "COALESCE(t.stage, \
     (SELECT sh.to_stage FROM stage_history sh WHERE sh.account_id = a.account_id AND sh.at <= a.at \
      ORDER BY sh.at DESC, sh.id DESC LIMIT 1), \
     acs.stage, 'unknown')";

/// Stores a fitted model; returns its version (the row id).
pub async fn save_model(
    db: &impl ConnectionTrait,
    model: &ContactModel,
    lookback_days: u32,
    attempts: u64,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let body = serde_json::to_string(model).map_err(|error| StoreError::Corrupt {
        table: "contact_models",
        id: "new".to_string(),
        message: format!("cannot encode the model: {error}"),
    })?;
    let row = contact_models::ActiveModel {
        id: NotSet,
        created_at: Set(now),
        trained_from: Set(model.trained_from),
        trained_to: Set(model.trained_to),
        lookback_days: Set(i32::try_from(lookback_days).unwrap_or(i32::MAX)),
        attempts: Set(i64::try_from(attempts).unwrap_or(i64::MAX)),
        body: Set(body),
    };
    Ok(contact_models::Entity::insert(row).exec(db).await?.last_insert_id)
}

/// The latest stored model, its `version` the row id; `None` before the first training.
pub async fn load_latest_model(db: &impl ConnectionTrait) -> Result<Option<ContactModel>, StoreError> {
    let Some(row) = contact_models::Entity::find().order_by_desc(contact_models::Column::Id).limit(1).one(db).await?
    else {
        return Ok(None);
    };
    let mut model: ContactModel = serde_json::from_str(&row.body).map_err(|error| StoreError::Corrupt {
        table: "contact_models",
        id: row.id.to_string(),
        message: format!("the body is not a contact model: {error}"),
    })?;
    model.version = row.id;
    Ok(Some(model))
}

/// Reads every attempt made in `[from, to)` as an [`AttemptFact`] and hands it to `each`, in
/// pages of [`FACT_PAGE_ROWS`] by attempt id: one statement per page joining the attempt's
/// task, account (product, stage) and borrower (zones); the local weekday and hour are those of
/// the borrower's primary zone ([`Borrower::primary_timezone`]), a contact is a conversation
/// ([`Outcome::is_conversation`]). Returns the number of attempts read.
pub async fn read_attempt_facts(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    mut each: impl FnMut(AttemptFact<'_>),
) -> Result<u64, StoreError> {
    let mut zones: HashMap<String, Tz> = HashMap::default();
    let (mut after, mut read) = (0i64, 0u64);
    let columns = format!(
        "a.id AS attempt_id, a.borrower_id AS borrower_id, {STAGE} AS stage, a.channel AS channel, \
         COALESCE(ac.product, 'unknown') AS product, a.at AS at, a.outcome AS outcome, \
         COALESCE(b.timezones, '') AS timezones"
    );
    loop {
        // One packed page per statement: the driver's per-row cost is most of a plain read.
        let page = json_page(
            db,
            &columns,
            "attempt_id, borrower_id, stage, channel, product, at, outcome, timezones",
            "attempts a LEFT JOIN tasks t ON t.id = a.task_id LEFT JOIN accounts ac ON ac.id = a.account_id \
             LEFT JOIN account_stages acs ON acs.account_id = a.account_id LEFT JOIN borrowers b ON b.id = a.borrower_id",
            |sql| {
                sql.push("a.id > ");
                sql.bind(after);
                sql.push(" AND a.at >= ");
                sql.bind(from);
                sql.push(" AND a.at < ");
                sql.bind(to);
                // The contact model learns when calls placed to borrowers are answered.
                sql.push(" AND a.direction = ");
                sql.bind(crate::domain::Direction::Outbound.code());
            },
            "attempt_id",
            FACT_PAGE_ROWS,
        )
        .await?;
        let rows: Vec<FactRow<'_>> = unpack(&page, "attempts")?;
        let count = rows.len() as u64;
        for (id, borrower_id, stage, channel, product, at, outcome, timezones) in rows {
            let corrupt = |message: String| StoreError::Corrupt { table: "attempts", id: id.to_string(), message };
            let channel: Channel = channel.parse().map_err(|error| corrupt(format!("{error}")))?;
            let outcome: Outcome = outcome.parse().map_err(|error| corrupt(format!("{error}")))?;
            let at = DateTime::parse_from_rfc3339(&at)
                .map_err(|error| corrupt(format!("at `{at}`: {error}")))?
                .with_timezone(&Utc);
            let zone = match zones.get(timezones.as_ref()) {
                Some(zone) => *zone,
                None => {
                    let zone = primary_zone(&timezones);
                    zones.insert(timezones.into_owned(), zone);
                    zone
                }
            };
            let local = at.with_timezone(&zone);
            each(AttemptFact {
                borrower_id: &borrower_id,
                stage: &stage,
                channel,
                product: &product,
                weekday: local.weekday(),
                hour: local.hour(),
                contact: outcome.is_conversation(),
            });
            after = after.max(id);
        }
        read += count;
        if count < FACT_PAGE_ROWS {
            return Ok(read);
        }
    }
}

/// One attempt of a packed page: id, borrower, stage, channel, product, instant, outcome, zones.
type FactRow<'a> =
    (i64, Cow<'a, str>, Cow<'a, str>, Cow<'a, str>, Cow<'a, str>, Cow<'a, str>, Cow<'a, str>, Cow<'a, str>);

/// The primary zone of a stored `;`-joined zone list (UTC when it has none that parses).
pub(super) fn primary_zone(timezones: &str) -> Tz {
    let zones = timezones.split(';').filter_map(|zone| parse_timezone(zone).ok()).take(1).collect();
    Borrower {
        id: String::new(),
        name: String::new(),
        timezones: zones,
        contact_points: Vec::new(),
        consent_robot: false,
    }
    .primary_timezone()
}
