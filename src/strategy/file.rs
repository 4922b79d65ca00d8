//! The strategy file as written: serde structs with source spans, strict about unknown keys.
//! Meaning (stages, rules, conditions) is checked in `compile`; this module only reads.

use crate::policy::Limits;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_spanned::Spanned;
use std::collections::BTreeMap;

/// One strategy file. `rule` and `experiment` are read element by element (see `parse`), so each
/// broken rule is reported, not only the first.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "arrears strategy file")]
pub struct StrategyFile {
    /// Unique strategy name.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// What the strategy is for, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// Which accounts the strategy handles. Absent: every product no other strategy claims.
    #[serde(default)]
    #[schemars(with = "Option<AppliesTo>")]
    pub applies_to: Option<Spanned<AppliesTo>>,
    /// Built-in compliance profile (`us-reg-f`, `us-ma`, `cn-gbt-45251`, `uk-fca`). Absent: the
    /// configured default.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub policy: Option<Spanned<String>>,
    /// Tightenings of the profile; a value that would loosen it is an error.
    #[serde(default)]
    #[schemars(with = "Option<Limits>")]
    pub limits: Option<Spanned<Limits>>,
    /// Named inclusive DPD ranges.
    #[schemars(with = "BTreeMap<String, StageDef>")]
    pub stages: Spanned<BTreeMap<Spanned<String>, Spanned<StageDef>>>,
    /// Rules, tried in order; the first match decides.
    #[serde(default)]
    #[schemars(with = "Vec<RuleDef>")]
    pub rule: Vec<Spanned<RuleDef>>,
    /// Champion/challenger experiments.
    #[serde(default)]
    #[schemars(with = "Vec<ExperimentDef>")]
    pub experiment: Vec<Spanned<ExperimentDef>>,
    /// Reactions to risk events, each tried on every event of its types.
    #[serde(default)]
    #[schemars(with = "Vec<ReactionDef>")]
    pub reaction: Vec<Spanned<ReactionDef>>,
}

/// `applies_to = { products = [...] }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppliesTo {
    /// Product codes this strategy handles.
    #[schemars(with = "Vec<String>")]
    pub products: Vec<Spanned<String>>,
}

/// `M1 = { dpd = [8, 30] }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageDef {
    /// Inclusive `[first, last]` days past due.
    #[schemars(with = "[i32; 2]")]
    pub dpd: Spanned<Vec<i64>>,
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(value) => vec![value.clone()],
            OneOrMany::Many(values) => values.clone(),
        }
    }
}

/// A field name (`balance`, `amount_due`, `dpd`, `score.<model>`) or a constant.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PriorityDef {
    /// Serve larger values of this field first.
    Field(String),
    /// A constant priority.
    Constant(f64),
}

/// `escalate = { after_failed_attempts = 6, queue = "early" }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalateDef {
    /// Failed robot attempts (no answer, busy, voicemail, failed) after which a person takes over.
    pub after_failed_attempts: u32,
    /// The human queue that takes the account.
    pub queue: String,
}

/// One `[[rule]]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    /// Unique rule name within the strategy.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Stage or stages the rule applies to. Absent: every stage.
    #[serde(default)]
    #[schemars(with = "Option<OneOrMany>")]
    pub stage: Option<Spanned<OneOrMany>>,
    /// Conditions that must all hold.
    #[serde(default)]
    #[schemars(schema_with = "when_schema")]
    pub when: Option<Spanned<BTreeMap<Spanned<String>, Spanned<toml::Value>>>>,
    /// `sms`, `email`, `robot` or `human`.
    #[schemars(with = "String")]
    pub channel: Spanned<String>,
    /// Message or script template, `templates/<name>.hbs` (required for sms, email and robot).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub template: Option<Spanned<String>>,
    /// Local time windows, "HH:MM-HH:MM"; clipped to the policy's contact hours. Absent: the
    /// policy's hours.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub windows: Option<Spanned<Vec<Spanned<String>>>>,
    /// Contact attempts per local day (sms, email, robot). Default 1.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub attempts_per_day: Option<Spanned<i64>>,
    /// Minimum time between two attempts, like "2h" or "90m".
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub min_gap: Option<Spanned<String>>,
    /// Where the day's attempts go inside the windows: `spread` (evenly, the default) or
    /// `learned` (the hours of highest sampled contact probability under the latest model of
    /// `arrears learn`; sms, email and robot rules).
    #[serde(default)]
    #[schemars(with = "Option<TimingDef>")]
    pub timing: Option<Spanned<String>>,
    /// The least estimated probability of a right-party contact an attempt's hour must have
    /// (0 to 1): hours below it get no attempt. Needs a model; without one it has no effect.
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub min_p_contact: Option<Spanned<f64>>,
    /// Human work queue (human channel). Default "default".
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub queue: Option<Spanned<String>>,
    /// Calls an agent may place on the account that day (human channel). Default 1.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub calls_per_day: Option<Spanned<i64>>,
    /// What is served first: a field (`balance`, `amount_due`, `dpd`, `score.<model>`) or a number.
    #[serde(default)]
    #[schemars(with = "Option<PriorityDef>")]
    pub priority: Option<Spanned<PriorityDef>>,
    /// Robot to human escalation.
    #[serde(default)]
    #[schemars(with = "Option<EscalateDef>")]
    pub escalate: Option<Spanned<EscalateDef>>,
    /// The script the robot reads when a borrower whose day this rule decides calls in,
    /// `templates/<name>.hbs` (`POST /v1/inbound-calls`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub inbound_template: Option<Spanned<String>>,
}

/// A rule's `timing`.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum TimingDef {
    /// Evenly over the windows.
    Spread,
    /// At the hours of highest sampled contact probability.
    Learned,
}

/// One arm of an experiment.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArmDef {
    /// Arm name, reported with each task.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Relative share of accounts.
    #[schemars(with = "u32")]
    pub weight: Spanned<i64>,
    /// Rules reserved for this arm: only its accounts may match them.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub rules: Vec<Spanned<String>>,
    /// The holdout arm: business as usual (or the minimal rules it names), reported beside the
    /// experiment as the baseline the champion's lift is measured against; at most one, never
    /// the first arm.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub holdout: Option<Spanned<bool>>,
}

/// One `[[experiment]]`: a sticky, deterministic split of a stage's accounts.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentDef {
    /// Experiment name (also the assignment salt: renaming reshuffles accounts).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// The stage whose accounts are split.
    #[schemars(with = "String")]
    pub stage: Spanned<String>,
    /// The arms; the first is the champion.
    #[schemars(with = "Vec<ArmDef>")]
    pub arms: Spanned<Vec<Spanned<ArmDef>>>,
    /// How long after entering each account's outcomes are read, in whole days (`"30d"`,
    /// the default; 1 to 365 days).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub horizon: Option<Spanned<String>>,
}

/// One `[[reaction]]`: what happens when a risk event of its types arrives for an account of the
/// strategy and its conditions hold. Every matching reaction acts (not only the first).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReactionDef {
    /// Unique reaction name within the strategy, reported with its cases.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// The event type or types it reacts to (`score_change`, `missed_payment_elsewhere`,
    /// `contact_changed`, `fraud_alert`, `legal_notice`, `custom:<name>`).
    #[schemars(with = "OneOrMany")]
    pub on: Spanned<OneOrMany>,
    /// Stage or stages of the account it applies to. Absent: every stage (and accounts in none).
    #[serde(default)]
    #[schemars(with = "Option<OneOrMany>")]
    pub stage: Option<Spanned<OneOrMany>>,
    /// Conditions that must all hold: a rule's `when` vocabulary plus `event.<field>` (a range
    /// `{ min, max }` for numbers, a string or list of strings otherwise).
    #[serde(default)]
    #[schemars(schema_with = "reaction_when_schema")]
    pub when: Option<Spanned<BTreeMap<Spanned<String>, Spanned<toml::Value>>>>,
    /// Opens a case in this human queue, to be closed with a disposition (`confirmed`,
    /// `false_alarm`, `resolved`, `escalated`) within `sla`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub queue: Option<Spanned<String>>,
    /// The case's deadline after the event arrives, like "4h" or "2d" (required with `queue`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub sla: Option<Spanned<String>>,
    /// Tags the engine adds to the account (kept across imports until a reaction removes them).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub add_tags: Option<Spanned<Vec<String>>>,
    /// Engine tags the reaction removes.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub remove_tags: Option<Spanned<Vec<String>>>,
    /// Holds all contact with the account for this many whole days, like "14d": through the
    /// borrower's local day that many days after the event arrives.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub hold: Option<Spanned<String>>,
    /// Re-plans the account's day now, under the tags and hold the reaction just set.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub replan: Option<Spanned<bool>>,
    /// `"now"`: the account's open tasks go to the top of their queues (below callbacks and
    /// transfers).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub priority: Option<Spanned<String>>,
}

fn reaction_when_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = when_schema(generator);
    let event_value = serde_json::json!({"anyOf": [
        {"type": "string"}, {"type": "array", "items": {"type": "string"}},
        {"type": "object", "additionalProperties": false,
         "properties": {"min": {"type": "number"}, "max": {"type": "number"}}}
    ]});
    if let Some(patterns) = schema.get_mut("patternProperties").and_then(|value| value.as_object_mut()) {
        patterns.insert("^event\\.[A-Za-z0-9_-]+$".into(), event_value);
    }
    schema
}

fn when_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let range_int = serde_json::json!({"type": "object", "additionalProperties": false,
        "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}}});
    let range_num = serde_json::json!({"type": "object", "additionalProperties": false,
        "properties": {"min": {"type": "number"}, "max": {"type": "number"}}});
    let range_money = serde_json::json!({"type": "object", "additionalProperties": false,
        "properties": {"min": {"type": ["string", "number"]}, "max": {"type": ["string", "number"]}}});
    let strings = serde_json::json!({"type": "array", "items": {"type": "string"}});
    let one_or_many = serde_json::json!({"anyOf": [{"type": "string"}, strings.clone()]});
    serde_json::json!({
        "type": "object",
        "description": "Conditions; all must hold.",
        "additionalProperties": false,
        "properties": {
            "product": one_or_many,
            "funder": one_or_many,
            "dpd": range_int,
            "amount_due": range_money,
            "balance": range_money,
            "broken_promises": range_int,
            "attempts_7d": range_int,
            "days_since_rpc": range_int,
            "tags_any": strings,
            "tags_all": strings,
            "tags_none": strings
        },
        "patternProperties": {
            "^score\\.[A-Za-z0-9_-]+$": range_num,
            "^attr\\.[A-Za-z0-9_-]+$": one_or_many
        }
    })
    .try_into()
    .unwrap_or_default()
}
