//! A strategy's `[[reaction]]` tables: checked and compiled with their source spans (this
//! module), and matched against an account's facts and an event (`Reaction::first_failure`).
//! What a reaction does to the store is `ops::events`; this module reads and decides only.

use super::compile::{Problems, compile_conditions, number, range, strings};
use super::compiled::{Conditions, Facts, Range, Symbols};
use super::file::ReactionDef;
use crate::domain::EventKind;
use chrono::Duration;
use serde_spanned::Spanned;
use std::collections::HashMap;
use std::ops::Range as Span;
use std::sync::Arc;

/// The longest a reaction may hold contact, in days.
pub const MAX_HOLD_DAYS: i64 = 366;

/// A condition on one field of the event.
#[derive(Debug, Clone, PartialEq)]
pub enum EventMatch {
    /// A number within the range.
    Number(Range<f64>),
    /// A string (or a number or boolean as text) among these.
    OneOf(Vec<String>),
}

/// The case a reaction opens: a human task in a team's queue, due within the SLA.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRule {
    /// The human queue.
    pub queue: Arc<str>,
    /// How long after the event arrives the case must be closed.
    pub sla: Duration,
}

/// One compiled `[[reaction]]`.
#[derive(Debug, Clone)]
pub struct Reaction {
    /// Name, unique within the strategy.
    pub name: Arc<str>,
    /// The event types it reacts to.
    pub on: Vec<EventKind>,
    /// Bit set of the stages it applies to; 0 = every stage and accounts in none.
    pub stage_mask: u64,
    /// The usual conditions on the account.
    pub conditions: Conditions,
    /// `event.<field>` conditions.
    pub event_conditions: Vec<(String, EventMatch)>,
    /// The case it opens, if any.
    pub case: Option<CaseRule>,
    /// Engine tags it adds.
    pub add_tags: Vec<String>,
    /// Engine tags it removes.
    pub remove_tags: Vec<String>,
    /// Whole days it holds all contact, if it does.
    pub hold_days: Option<i64>,
    /// Whether it re-plans the account's day now.
    pub replan: bool,
    /// Whether it raises the account's open tasks to the top of their queues.
    pub raise_priority: bool,
}

/// Why a reaction does not act on an event for an account.
#[derive(Debug, Clone, PartialEq)]
pub enum Miss {
    /// It does not react to the event's type.
    Type,
    /// The account's stage is not one of the reaction's.
    Stage,
    /// A condition on the account failed (its name).
    Condition(&'static str),
    /// An `event.<field>` condition failed, or the event has no such field.
    EventField(String),
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Miss::Type => f.write_str("it does not react to this event type"),
            Miss::Stage => f.write_str("the account's stage is not one of its stages"),
            Miss::Condition(name) => write!(f, "when.{name} does not hold"),
            Miss::EventField(field) => write!(f, "when.event.{field} does not hold"),
        }
    }
}

impl Reaction {
    /// `None` when the reaction acts on an event of `kind` with `fields` for an account with
    /// `facts` in `stage`; else the first thing that failed, in this order: type, stage,
    /// the account's conditions, the event's.
    pub fn first_failure(
        &self,
        kind: &EventKind,
        fields: &serde_json::Map<String, serde_json::Value>,
        stage: Option<usize>,
        facts: &Facts,
    ) -> Option<Miss> {
        if !self.on.contains(kind) {
            return Some(Miss::Type);
        }
        if self.stage_mask != 0 && stage.is_none_or(|stage| self.stage_mask & (1 << stage) == 0) {
            return Some(Miss::Stage);
        }
        if let Some(name) = self.conditions.first_failure(facts) {
            return Some(Miss::Condition(name));
        }
        self.event_conditions
            .iter()
            .find(|(field, condition)| !event_holds(condition, fields.get(field)))
            .map(|(field, _)| Miss::EventField(field.clone()))
    }
}

fn event_holds(condition: &EventMatch, value: Option<&serde_json::Value>) -> bool {
    use serde_json::Value;
    match (condition, value) {
        (EventMatch::Number(range), Some(Value::Number(number))) => number
            .as_f64()
            .is_some_and(|value| range.min.is_none_or(|min| value >= min) && range.max.is_none_or(|max| value <= max)),
        (EventMatch::OneOf(values), Some(Value::String(text))) => values.contains(text),
        (EventMatch::OneOf(values), Some(Value::Bool(flag))) => values.contains(&flag.to_string()),
        (EventMatch::OneOf(values), Some(Value::Number(number))) => values.contains(&number.to_string()),
        _ => false,
    }
}

/// Parses a whole number of days or hours like "4h", "2d" or "90m" (at least a minute).
fn parse_span(text: &str) -> Result<Duration, String> {
    let parsed = humantime::parse_duration(text.trim()).map_err(|error| error.to_string())?;
    let duration = Duration::from_std(parsed).map_err(|error| error.to_string())?;
    if duration < Duration::minutes(1) {
        return Err("must be at least a minute".into());
    }
    Ok(duration)
}

/// Compiles a file's reactions; every problem is pushed with its span.
pub(crate) fn compile_reactions(
    reactions: &[Spanned<ReactionDef>],
    stage_index: &HashMap<&str, usize>,
    symbols: &mut Symbols,
    problems: &mut Problems,
) -> Vec<Reaction> {
    let mut names: HashMap<String, ()> = HashMap::new();
    let mut compiled = Vec::with_capacity(reactions.len());
    for reaction in reactions {
        let def = reaction.get_ref();
        let name = def.name.get_ref().trim().to_string();
        let before = problems.len();
        let here = |span: Span<usize>, message: String| (span, format!("reaction `{name}`: {message}"));
        if name.is_empty() {
            problems.push((def.name.span(), "reaction name must not be empty".into()));
        }
        if names.insert(name.clone(), ()).is_some() {
            problems.push(here(def.name.span(), "is defined twice".into()));
        }
        let mut on = Vec::new();
        for text in def.on.get_ref().to_vec() {
            match text.parse::<EventKind>() {
                Ok(kind) => on.push(kind),
                Err(error) => problems.push(here(def.on.span(), format!("on: {error}"))),
            }
        }
        if on.is_empty() && problems.len() == before {
            problems.push(here(def.on.span(), "on: name at least one event type".into()));
        }
        let mut stage_mask = 0u64;
        if let Some(stage) = &def.stage {
            for stage_name in stage.get_ref().to_vec() {
                match stage_index.get(stage_name.as_str()) {
                    Some(index) => stage_mask |= 1 << index,
                    None => problems.push(here(stage.span(), format!("unknown stage `{stage_name}`"))),
                }
            }
        }
        let owner = format!("reaction `{name}`");
        let conditions = match &def.when {
            Some(when) => compile_conditions(when, symbols, &owner, true, problems),
            None => Conditions::default(),
        };
        let mut event_conditions = Vec::new();
        for (key, value) in def.when.iter().flat_map(|when| when.get_ref()) {
            let Some(field) = key.get_ref().strip_prefix("event.") else { continue };
            if field.is_empty() {
                problems.push(here(key.span(), "when.event.: name the event's field, like event.score_delta".into()));
                continue;
            }
            let condition = match value.get_ref() {
                toml::Value::Table(_) => range(value.get_ref(), number).map(EventMatch::Number),
                other => strings(other).map(EventMatch::OneOf),
            };
            match condition {
                Ok(condition) => event_conditions.push((field.to_string(), condition)),
                Err(message) => problems.push(here(value.span(), format!("when.event.{field}: {message}"))),
            }
        }
        let case = match (&def.queue, &def.sla) {
            (Some(queue), Some(sla)) => {
                let queue_name = queue.get_ref().trim();
                if queue_name.is_empty() {
                    problems.push(here(queue.span(), "queue must not be empty".into()));
                }
                match parse_span(sla.get_ref()) {
                    Ok(sla) => Some(CaseRule { queue: queue_name.into(), sla }),
                    Err(error) => {
                        problems.push(here(
                            sla.span(),
                            format!("sla `{}` is not a duration like \"4h\" or \"2d\": {error}", sla.get_ref()),
                        ));
                        None
                    }
                }
            }
            (Some(queue), None) => {
                problems.push(here(queue.span(), "a case needs a deadline: add sla = \"4h\" (or \"2d\")".into()));
                None
            }
            (None, Some(sla)) => {
                problems.push(here(sla.span(), "sla without a queue: name the queue that works the case".into()));
                None
            }
            (None, None) => None,
        };
        let mut tags = |list: &Option<Spanned<Vec<String>>>, key: &str, problems: &mut Problems| -> Vec<String> {
            let Some(list) = list else { return Vec::new() };
            let mut tags = Vec::new();
            for tag in list.get_ref() {
                let tag = tag.trim();
                if tag.is_empty() || tag.contains(';') {
                    problems.push(here(list.span(), format!("{key}: `{tag}` is not a tag (no empty tags, no `;`)")));
                } else {
                    symbols.tag(tag);
                    tags.push(tag.to_string());
                }
            }
            tags
        };
        let add_tags = tags(&def.add_tags, "add_tags", problems);
        let remove_tags = tags(&def.remove_tags, "remove_tags", problems);
        let hold_days = def.hold.as_ref().and_then(|hold| {
            let days = parse_span(hold.get_ref()).ok().filter(|span| span.num_seconds() % 86_400 == 0);
            match days.map(|span| span.num_days()) {
                Some(days) if (1..=MAX_HOLD_DAYS).contains(&days) => Some(days),
                _ => {
                    problems.push(here(
                        hold.span(),
                        format!(
                            "hold `{}` must be whole days between 1 and {MAX_HOLD_DAYS}, like \"14d\"",
                            hold.get_ref()
                        ),
                    ));
                    None
                }
            }
        });
        let raise_priority = match &def.priority {
            Some(priority) if priority.get_ref() == "now" => true,
            Some(priority) => {
                problems.push(here(
                    priority.span(),
                    format!("priority `{}`: the only priority a reaction sets is \"now\"", priority.get_ref()),
                ));
                false
            }
            None => false,
        };
        let replan = def.replan.as_ref().is_some_and(|replan| *replan.get_ref());
        let acts = case.is_some()
            || !add_tags.is_empty()
            || !remove_tags.is_empty()
            || hold_days.is_some()
            || replan
            || raise_priority;
        if !acts && problems.len() == before {
            problems.push(here(
                reaction.span(),
                "does nothing: give it a queue and sla, add_tags, remove_tags, hold, replan or priority".into(),
            ));
        }
        if problems.len() == before {
            compiled.push(Reaction {
                name: name.as_str().into(),
                on,
                stage_mask,
                conditions,
                event_conditions,
                case,
                add_tags,
                remove_tags,
                hold_days,
                replan,
                raise_priority,
            });
        }
    }
    compiled
}
