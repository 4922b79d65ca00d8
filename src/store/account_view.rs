//! Reading one account with everything a person looking at it needs: its borrower and contact
//! points, open promises and tasks. Read-only; money is read exactly (see `sql::get_money`).

use super::StoreError;
use super::book::{ACCOUNTS_WITH_STAGES, split_list};
use super::sql::{Sql, get, get_money};
use crate::domain::{Flag, Flags, Money};
use chrono::{DateTime, NaiveDate, Utc};
use entity::{borrowers, contact_points, tasks};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use std::collections::BTreeMap;

/// One account as stored, with its borrower, contact points, open promises and tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountView {
    /// The account id.
    pub id: String,
    /// Its borrower's id.
    pub borrower_id: String,
    /// Product code.
    pub product: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Amount overdue now.
    pub amount_due: Money,
    /// Outstanding balance.
    pub balance: Money,
    /// Oldest unpaid due date.
    pub due_date: NaiveDate,
    /// Tags.
    pub tags: Vec<String>,
    /// The effective hard-stop flags (the union of the two below), in contract order.
    pub flags: Vec<Flag>,
    /// The flags the servicing system set (imports); only it can lift them.
    pub servicing_flags: Vec<Flag>,
    /// The flags the engine set (outcomes, operators); imports never remove them.
    pub engine_flags: Vec<Flag>,
    /// Model scores by name.
    pub scores: BTreeMap<String, f64>,
    /// String attributes by name.
    pub attrs: BTreeMap<String, String>,
    /// Promises broken so far.
    pub broken_promises: i32,
    /// Funding shares in canonical form (`bank-a:0.7;platform:0.3`); `None`: the lender's own.
    pub funders: Option<String>,
    /// The stage the last plan run put it in.
    pub stage: Option<String>,
    /// Last change by an import.
    pub updated_at: DateTime<Utc>,
    /// The borrower (absent only in a hand-edited database).
    pub borrower: Option<borrowers::Model>,
    /// The borrower's phones and e-mail addresses.
    pub contact_points: Vec<contact_points::Model>,
    /// Open promises, oldest first.
    pub open_promises: Vec<PromiseView>,
    /// Every task of the account, by local date and attempt.
    pub tasks: Vec<tasks::Model>,
}

/// An open promise to pay.
#[derive(Debug, Clone, PartialEq)]
pub struct PromiseView {
    /// Row id.
    pub id: i64,
    /// Promised amount.
    pub amount: Money,
    /// Promised day.
    pub due_on: NaiveDate,
    /// When it was made.
    pub made_at: DateTime<Utc>,
}

/// The account `id` with its borrower, contact points, open promises and tasks; `None` when
/// unknown.
pub async fn account_view(db: &impl ConnectionTrait, id: &str) -> Result<Option<AccountView>, StoreError> {
    let backend = db.get_database_backend();
    let mut sql = Sql::new(backend);
    sql.push(
        "SELECT id, borrower_id, product, currency, amount_due, balance, due_date, tags, flags, scores, \
         attrs, broken_promises, stage, updated_at, engine_flags, funders FROM ",
    );
    sql.push(ACCOUNTS_WITH_STAGES);
    sql.push(" WHERE id = ");
    sql.bind(id);
    let Some(row) = db.query_one_raw(sql.statement()).await? else {
        return Ok(None);
    };
    let corrupt = |message: String| StoreError::Corrupt { table: "accounts", id: id.to_string(), message };
    let tags: String = get(&row, 7, "accounts", id)?;
    let flags: String = get(&row, 8, "accounts", id)?;
    let engine_flags: String = get(&row, 14, "accounts", id)?;
    let servicing = Flags::parse_list(&flags).map_err(|error| corrupt(format!("flags: {error}")))?;
    let engine = Flags::parse_list(&engine_flags).map_err(|error| corrupt(format!("engine_flags: {error}")))?;
    let scores: String = get(&row, 9, "accounts", id)?;
    let attrs: String = get(&row, 10, "accounts", id)?;
    let borrower_id: String = get(&row, 1, "accounts", id)?;
    let mut view = AccountView {
        id: get(&row, 0, "accounts", id)?,
        product: get(&row, 2, "accounts", id)?,
        currency: get(&row, 3, "accounts", id)?,
        amount_due: get_money(&row, 4, backend, "accounts", id)?,
        balance: get_money(&row, 5, backend, "accounts", id)?,
        due_date: get(&row, 6, "accounts", id)?,
        tags: split_list(&tags).map(str::to_string).collect(),
        flags: servicing.union(engine).iter().collect(),
        servicing_flags: servicing.iter().collect(),
        engine_flags: engine.iter().collect(),
        scores: serde_json::from_str(&scores).map_err(|error| corrupt(format!("scores: {error}")))?,
        attrs: serde_json::from_str(&attrs).map_err(|error| corrupt(format!("attrs: {error}")))?,
        broken_promises: get(&row, 11, "accounts", id)?,
        funders: get(&row, 15, "accounts", id)?,
        stage: get(&row, 12, "accounts", id)?,
        updated_at: get(&row, 13, "accounts", id)?,
        borrower: borrowers::Entity::find_by_id(borrower_id.clone()).one(db).await?,
        contact_points: contact_points::Entity::find()
            .filter(contact_points::Column::BorrowerId.eq(borrower_id.as_str()))
            .order_by_asc(contact_points::Column::Id)
            .all(db)
            .await?,
        open_promises: Vec::new(),
        tasks: super::tasks_for_account(db, id).await?,
        borrower_id,
    };

    let mut sql = Sql::new(backend);
    sql.push("SELECT id, amount, due_on, made_at FROM promises WHERE status = 'open' AND account_id = ");
    sql.bind(id);
    sql.push(" ORDER BY made_at, id");
    for row in db.query_all_raw(sql.statement()).await? {
        let promise_id: i64 = get(&row, 0, "promises", id)?;
        let key = promise_id.to_string();
        view.open_promises.push(PromiseView {
            id: promise_id,
            amount: get_money(&row, 1, backend, "promises", &key)?,
            due_on: get(&row, 2, "promises", &key)?,
            made_at: get(&row, 3, "promises", &key)?,
        });
    }
    Ok(Some(view))
}
