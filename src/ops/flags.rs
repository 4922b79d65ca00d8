//! Engine-set flags as an operator's explicit, audited action: `arrears flags set|lift` and
//! `POST /v1/accounts/{id}/flags`, `POST /v1/accounts/{id}/flags/{flag}/lift`.
//!
//! A flag has an owner (see `docs/import.md`): the servicing system's flags come with every
//! import and only an import lifts them; the engine's flags are set by outcomes (`do_not_call`,
//! `dispute`) or here by an operator, and only an operator lifts them, here. The effective set
//! is the union. Every change writes an audit row naming the actor, the flag and the reason.

use super::Settings;
use crate::domain::{Flag, Flags, TaskState};
use crate::store::{self, AccountFlags, StoreError};
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde::Serialize;
use std::io::Write;
use utoipa::ToSchema;

/// The longest reason kept (characters).
pub const MAX_REASON_CHARS: usize = 1000;

/// Setting or lifting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagAction {
    /// Add the flag to the engine's set.
    Set,
    /// Remove it from the engine's set.
    Lift,
}

/// What setting or lifting a flag did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FlagChange {
    /// The account.
    pub account_id: String,
    /// The flag.
    #[schema(example = "do_not_call")]
    pub flag: String,
    /// `set` or `lifted`.
    #[schema(example = "lifted")]
    pub action: String,
    /// Whether the engine's flags changed (false when setting a flag the engine had already set).
    pub changed: bool,
    /// The effective flags afterwards (what the planner and every hand-off see).
    pub flags: Vec<String>,
    /// The servicing system's flags (only an import changes them).
    pub servicing_flags: Vec<String>,
    /// The engine's flags afterwards.
    pub engine_flags: Vec<String>,
    /// Open tasks cancelled because the flag now stops them (setting only).
    pub tasks_cancelled: Vec<i64>,
}

/// Why a flag was not set or lifted. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    /// Bad input, one line per field: `flag: ...`, `reason: ...`.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// No such account.
    #[error("no account {0:?}")]
    UnknownAccount(String),
    /// The change is not possible in the account's state (a flag the servicing system owns,
    /// a flag that is not set).
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sea_orm::DbErr> for FlagError {
    fn from(error: sea_orm::DbErr) -> Self {
        FlagError::Store(StoreError::Db(error))
    }
}

/// Checks the flag and the reason together, so that both problems are reported at once.
fn check(flag: &str, reason: &str) -> Result<(Flag, String), FlagError> {
    let mut errors = Vec::new();
    let flag = match flag.trim().parse::<Flag>() {
        Ok(flag) => Some(flag),
        Err(_) if flag.trim().is_empty() => {
            errors.push(format!("flag: is required (one of: {})", flag_list()));
            None
        }
        Err(error) => {
            errors.push(format!("flag: {:?} is not a flag (expected one of: {})", error.value, error.expected));
            None
        }
    };
    let reason = reason.trim();
    if reason.is_empty() {
        errors.push("reason: is required: say why, for the audit trail".to_string());
    } else if reason.chars().count() > MAX_REASON_CHARS {
        errors.push(format!("reason: is longer than {MAX_REASON_CHARS} characters"));
    }
    match flag {
        Some(flag) if errors.is_empty() => Ok((flag, reason.to_string())),
        _ => Err(FlagError::Invalid(errors)),
    }
}

fn flag_list() -> String {
    Flag::ALL.iter().map(|flag| flag.code()).collect::<Vec<_>>().join(", ")
}

fn codes(flags: Flags) -> Vec<String> {
    flags.iter().map(|flag| flag.code().to_string()).collect()
}

fn change(account_id: &str, flag: Flag, action: FlagAction, changed: bool, flags: AccountFlags) -> FlagChange {
    FlagChange {
        account_id: account_id.to_string(),
        flag: flag.code().to_string(),
        action: match action {
            FlagAction::Set => "set",
            FlagAction::Lift => "lifted",
        }
        .to_string(),
        changed,
        flags: codes(flags.effective()),
        servicing_flags: codes(flags.servicing),
        engine_flags: codes(flags.engine),
        tasks_cancelled: Vec::new(),
    }
}

/// Sets or lifts an engine flag on an account, in one transaction, signed by `actor`.
///
/// - Setting adds the flag to the engine's set (nothing changes when it is already there), writes
///   an `account.flag_set` audit row (actor, flag, reason) and cancels the account's open tasks
///   the flag now stops (calls for `do_not_call`, everything for the others), with a
///   `task.cancelled` message for each one already sent out.
/// - Lifting removes it from the engine's set and writes an `account.flag_lifted` audit row. A
///   flag only the servicing system set is a [`FlagError::Conflict`]: the servicing system owns
///   it and lifts it by sending the account without it. A flag set by both is lifted from the
///   engine's set and stays in effect while the servicing system keeps sending it.
pub async fn change_flag(
    db: &DatabaseConnection,
    action: FlagAction,
    account_id: &str,
    flag: &str,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<FlagChange, FlagError> {
    let (flag, reason) = check(flag, reason)?;
    let txn = store::begin_write(db).await?;
    let Some(mut flags) = store::account_flags(&txn, account_id, true).await? else {
        return Err(FlagError::UnknownAccount(account_id.to_string()));
    };
    let result = match action {
        FlagAction::Set => {
            if flags.engine.contains(flag) {
                return Ok(change(account_id, flag, action, false, flags));
            }
            flags.engine.insert(flag);
            store::set_engine_flags(&txn, account_id, flags.engine, now).await?;
            let detail = serde_json::json!({"flag": flag.code(), "reason": reason, "owner": "engine"});
            store::record_audit_at(&txn, now, actor, "account.flag_set", "account", account_id, detail).await?;
            let (cancels, cause) = crate::domain::effects::cancels_for(flag);
            let cause = cause.to_string();
            let audit = store::Audit::new(actor, serde_json::json!({"flag_reason": reason}));
            let closed = crate::dispatch::close_tasks(
                &txn,
                &[account_id],
                cancels.into(),
                None,
                TaskState::Cancelled,
                &cause,
                audit,
                now,
            )
            .await?;
            let mut result = change(account_id, flag, action, true, flags);
            result.tasks_cancelled = closed.iter().map(|task| task.id).collect();
            result
        }
        FlagAction::Lift => {
            if !flags.engine.contains(flag) {
                return Err(FlagError::Conflict(if flags.servicing.contains(flag) {
                    format!(
                        "flag `{flag}` on account {account_id} was set by the servicing system, which owns it: \
                         it is lifted when the servicing system sends the account without it (accounts.csv \
                         or POST /v1/accounts), not here"
                    )
                } else {
                    format!("flag `{flag}` is not set on account {account_id}")
                }));
            }
            flags.engine.remove(flag);
            store::set_engine_flags(&txn, account_id, flags.engine, now).await?;
            let still_servicing = flags.servicing.contains(flag);
            let detail = serde_json::json!({
                "flag": flag.code(),
                "reason": reason,
                "owner": "engine",
                "still_set_by_servicing": still_servicing,
            });
            store::record_audit_at(&txn, now, actor, "account.flag_lifted", "account", account_id, detail).await?;
            change(account_id, flag, action, true, flags)
        }
    };
    txn.commit().await?;
    Ok(result)
}

/// `arrears flags set|lift ACCOUNT_ID FLAG --reason TEXT`: prints what changed.
#[allow(clippy::too_many_arguments)]
pub async fn flag_command(
    settings: &Settings,
    action: FlagAction,
    account_id: &str,
    flag: &str,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let db = super::connect(settings).await?;
    let change = change_flag(&db, action, account_id, flag, reason, actor, now).await?;
    let list = |flags: &[String]| if flags.is_empty() { "none".to_string() } else { flags.join(", ") };
    let what = match (action, change.changed) {
        (FlagAction::Set, true) => format!("`{}` set by the engine", change.flag),
        (FlagAction::Set, false) => format!("`{}` was already set by the engine; nothing changed", change.flag),
        (FlagAction::Lift, _) => format!("`{}` lifted", change.flag),
    };
    writeln!(out, "{}: {what}", change.account_id)?;
    writeln!(
        out,
        "  effective flags: {} (servicing system: {}; engine: {})",
        list(&change.flags),
        list(&change.servicing_flags),
        list(&change.engine_flags)
    )?;
    if !change.tasks_cancelled.is_empty() {
        writeln!(out, "  {} open task(s) cancelled", change.tasks_cancelled.len())?;
    }
    Ok(())
}
