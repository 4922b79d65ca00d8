//! API tokens: `arrears token create` and the look-up behind `Authorization: Bearer`.
//!
//! A token is shown once, when created; the store keeps only its SHA-256 (hex). This module
//! owns the roles and what a token proves (a [`Principal`]); it does not decide which role may
//! call which endpoint (that is `http::auth` and the handlers).

use crate::store::{self, StoreError};
use chrono::{DateTime, Utc};
use rand::RngCore;
use sea_orm::ConnectionTrait;
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// The prefix of every token, so that a leaked one is easy to recognise in logs and scanners.
pub const TOKEN_PREFIX: &str = "arr_";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A human agent: leases tasks of a queue and records outcomes (tied to an agent id).
    Agent,
    /// The robot dialler / message gateway: reports attempts.
    Dialler,
    /// The servicing system: posts accounts and payments.
    Ingest,
    /// Operators: everything.
    Admin,
    /// Collections managers: read-only — the KPI report, account explanations and the
    /// dashboard; never leases, reports, ingests or reloads.
    Manager,
    /// A co-lending funder (tied to a funder name): reads only that funder's share of the KPI
    /// report and of the dashboard's overview — aggregates, never a borrower's name or number.
    Funder,
}

impl Role {
    /// Every role, in the order the documentation lists them.
    pub const ALL: &'static [Role] =
        &[Role::Agent, Role::Dialler, Role::Ingest, Role::Admin, Role::Manager, Role::Funder];

    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Dialler => "dialler",
            Role::Ingest => "ingest",
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Funder => "funder",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL.iter().copied().find(|role| role.code() == text).ok_or_else(|| {
            let codes: Vec<&str> = Role::ALL.iter().map(|role| role.code()).collect();
            format!("unknown role `{text}` (expected one of: {})", codes.join(", "))
        })
    }
}

/// Who is calling: what a valid token proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's row id: names the caller in the audit trail without revealing the token.
    pub token_id: i64,
    /// Its role.
    pub role: Role,
    /// The agent, for role `agent`.
    pub agent_id: Option<String>,
    /// The funder, for role `funder`.
    pub funder: Option<String>,
}

impl Principal {
    /// Whether the role is one of `roles`; `admin` may do everything.
    pub fn has_role(&self, roles: &[Role]) -> bool {
        self.role == Role::Admin || roles.contains(&self.role)
    }

    /// The actor written in audit rows: `token:<id>` (with the agent for agents).
    pub fn actor(&self) -> String {
        match (&self.agent_id, &self.funder) {
            (Some(agent), _) => format!("token:{}:agent:{agent}", self.token_id),
            (None, Some(funder)) => format!("token:{}:funder:{funder}", self.token_id),
            (None, None) => format!("token:{}:{}", self.token_id, self.role),
        }
    }
}

/// Why a token cannot be created or checked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Role `agent` without `--agent`.
    #[error("a token of role agent needs --agent ID")]
    AgentRequired,
    /// `--agent` with another role.
    #[error("--agent is only for tokens of role agent (this one is {0})")]
    AgentNotAllowed(Role),
    /// An empty agent id.
    #[error("the agent id must not be empty")]
    EmptyAgent,
    /// Role `funder` without `--funder`.
    #[error("a token of role funder needs --funder NAME")]
    FunderRequired,
    /// `--funder` with another role.
    #[error("--funder is only for tokens of role funder (this one is {0})")]
    FunderNotAllowed(Role),
    /// Not a funder's name.
    #[error("--funder `{0}`: a funder name is lower-case letters, digits, - and _")]
    BadFunder(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The agent id a token of `role` carries: required (and not empty) for agents, refused for
/// the other roles.
pub fn check_agent(role: Role, agent_id: Option<&str>) -> Result<Option<&str>, TokenError> {
    match (role, agent_id.map(str::trim)) {
        (Role::Agent, None) => Err(TokenError::AgentRequired),
        (Role::Agent, Some("")) => Err(TokenError::EmptyAgent),
        (Role::Agent, Some(agent)) => Ok(Some(agent)),
        (other, Some(_)) => Err(TokenError::AgentNotAllowed(other)),
        (_, None) => Ok(None),
    }
}

/// The funder a token of `role` carries: required (a valid funder name) for funders, refused
/// for the other roles.
pub fn check_funder(role: Role, funder: Option<&str>) -> Result<Option<&str>, TokenError> {
    match (role, funder.map(str::trim)) {
        (Role::Funder, None) => Err(TokenError::FunderRequired),
        (Role::Funder, Some(name)) if !crate::domain::is_funder_name(name) => Err(TokenError::BadFunder(name.into())),
        (Role::Funder, Some(name)) => Ok(Some(name)),
        (other, Some(_)) => Err(TokenError::FunderNotAllowed(other)),
        (_, None) => Ok(None),
    }
}

/// The hex SHA-256 of a token: what the store keeps.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token (`arr_` and 64 hex digits from the operating system's CSPRNG via `rand`),
/// stores only its hash, and returns the token, which is never shown again.
pub async fn create_token(
    db: &impl ConnectionTrait,
    role: Role,
    agent_id: Option<&str>,
    label: Option<&str>,
    now: DateTime<Utc>,
) -> Result<String, TokenError> {
    create_token_for(db, role, agent_id, None, label, now).await
}

/// [`create_token`] for any role, `funder` naming the funder of a `funder` token.
pub async fn create_token_for(
    db: &impl ConnectionTrait,
    role: Role,
    agent_id: Option<&str>,
    funder: Option<&str>,
    label: Option<&str>,
    now: DateTime<Utc>,
) -> Result<String, TokenError> {
    let agent_id = check_agent(role, agent_id)?;
    let funder = check_funder(role, funder)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let subject = store::TokenSubject { agent_id, funder };
    store::insert_token(db, &hash_token(&token), role.code(), subject, label, now).await?;
    Ok(token)
}

/// The principal a bearer token proves, or `None` when the token is unknown or revoked (or its
/// stored role is not one this version knows).
pub async fn authenticate(db: &impl ConnectionTrait, token: &str) -> Result<Option<Principal>, StoreError> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let Some(stored) = store::find_token(db, &hash_token(token)).await? else {
        return Ok(None);
    };
    let Ok(role) = stored.role.parse::<Role>() else {
        tracing::warn!(token_id = stored.id, role = %stored.role, "token with an unknown role refused");
        return Ok(None);
    };
    Ok(Some(Principal { token_id: stored.id, role, agent_id: stored.agent_id, funder: stored.funder }))
}

/// How long a proven token is believed without reading the store again: a revoked token is
/// refused at the latest this long after its revocation.
pub const TOKEN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// Tokens proven recently, by their hash (never the token itself), so that an agent's lease,
/// heartbeats, reports and completion do not each read the token table: [`authenticate`] at
/// most once per token every [`TOKEN_CACHE_TTL`]. Unknown tokens are not remembered.
#[derive(Debug, Default)]
pub struct TokenCache {
    proven: std::sync::Mutex<std::collections::HashMap<String, (Principal, std::time::Instant)>>,
}

/// Tokens remembered at most; beyond, the cache starts over.
const TOKEN_CACHE_SIZE: usize = 10_000;

impl TokenCache {
    /// The principal `token` proves, from the cache when proven less than [`TOKEN_CACHE_TTL`]
    /// ago, else from the store (see [`authenticate`]).
    pub async fn authenticate(&self, db: &impl ConnectionTrait, token: &str) -> Result<Option<Principal>, StoreError> {
        let hash = hash_token(token);
        let now = std::time::Instant::now();
        {
            let proven = self.proven.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some((principal, at)) = proven.get(&hash)
                && now.duration_since(*at) < TOKEN_CACHE_TTL
            {
                return Ok(Some(principal.clone()));
            }
        }
        let principal = authenticate(db, token).await?;
        if let Some(principal) = &principal {
            let mut proven = self.proven.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if proven.len() >= TOKEN_CACHE_SIZE {
                proven.clear();
            }
            proven.insert(hash, (principal.clone(), now));
        }
        Ok(principal)
    }
}

/// `arrears token create`: connects (migrating first) and creates a token; returns it.
pub async fn create_command(
    settings: &super::Settings,
    role: Role,
    agent_id: Option<&str>,
    funder: Option<&str>,
    label: Option<&str>,
) -> anyhow::Result<String> {
    check_agent(role, agent_id)?;
    check_funder(role, funder)?;
    let db = super::connect(settings).await?;
    let token = create_token_for(&db, role, agent_id, funder, label, Utc::now()).await?;
    db.close().await.ok();
    Ok(token)
}
