//! `events.csv`: risk events from the lender's monitoring — `id,type,account_id,borrower_id,at`
//! and one `field.<name>` column per event field (a number when it reads as one, `true` /
//! `false`, else text; empty = absent). Rows are checked like the API's items
//! (`ops::events::check_event`) and every error names its row and column; what the events do is
//! `ops::events::apply_events`, shared with `POST /v1/events`.

use super::csvfile::{ColumnSpec, Header};
use super::events::read_rows;
use super::{ImportError, RowError};
use crate::ops::events::{EventIn, NewEvent, check_event};
use chrono::{DateTime, Utc};
use indicatif::ProgressBar;
use std::path::Path;

static EVENTS: ColumnSpec =
    ColumnSpec { required: &["id", "type", "at"], optional: &["account_id", "borrower_id"], dynamic: &["field."] };

fn value_of(text: &str) -> serde_json::Value {
    if let Ok(number) = text.parse::<i64>() {
        return number.into();
    }
    if let Some(number) = text.parse::<f64>().ok().filter(|n| n.is_finite()).and_then(serde_json::Number::from_f64) {
        return serde_json::Value::Number(number);
    }
    match text {
        "true" => true.into(),
        "false" => false.into(),
        _ => text.into(),
    }
}

/// Reads and checks `events.csv`; returns the events and a label per event (`FILE row N`).
pub async fn read_events(
    path: &Path,
    progress: &ProgressBar,
    now: DateTime<Utc>,
) -> Result<(Vec<NewEvent>, Vec<String>), ImportError> {
    let (file, rows, _) = read_rows(path, &EVENTS, progress, move |row, header: &Header, errors| {
        let get = |name: &str| header.index(name).map(|index| row.field(index).to_string());
        let fields = header
            .with_prefix("field.")
            .into_iter()
            .filter(|(index, _)| !row.field(*index).is_empty())
            .map(|(index, name)| (name, value_of(row.field(index))))
            .collect();
        let item = EventIn {
            id: get("id").unwrap_or_default(),
            kind: get("type").unwrap_or_default(),
            account_id: get("account_id"),
            borrower_id: get("borrower_id"),
            at: get("at").unwrap_or_default(),
            fields,
        };
        match check_event(&item, now) {
            Ok(event) => Some(event),
            Err(problems) => {
                for (field, _, message) in problems {
                    let column = if field == "fields" { "field.*" } else { field };
                    let index = header.index(column).unwrap_or(usize::MAX);
                    let value = header.index(column).map(|index| row.field(index)).unwrap_or("");
                    let mut error: RowError = row.error(index, value, message);
                    error.column = Some(column.to_string());
                    errors.push(error);
                }
                None
            }
        }
    })
    .await?;
    let labels = rows.iter().map(|row| format!("{file} row {}", row.row)).collect();
    Ok((rows.into_iter().map(|row| row.item).collect(), labels))
}
