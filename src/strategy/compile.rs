//! Checks a parsed strategy file and compiles it: stages, rules, conditions, windows, templates,
//! experiments, and the policy it tightens. Every problem is collected with its source span.

use super::compiled::{
    Conditions, Experiment, Priority, Range, Rule, Stage, Strategy, Symbols, TagIndex, Timing, Treatment,
};
use super::file::{ExperimentDef, PriorityDef, ReactionDef, RuleDef, StrategyFile};
use super::templates::TemplateChecker;
use crate::domain::{Channel, Money};
use crate::policy::{Policy, PolicySettings, TimeWindow};
use serde_spanned::Spanned;
use std::collections::{HashMap, HashSet};
use std::ops::Range as Span;
use std::sync::Arc;

/// Problems found, each with the byte span it is about.
pub(crate) type Problems = Vec<(Span<usize>, String)>;

/// Everything `compile` needs besides the file.
pub(crate) struct Context<'a> {
    pub settings: &'a PolicySettings,
    pub default_policy: &'a str,
    pub templates: &'a mut TemplateChecker,
    pub symbols: &'a mut Symbols,
    pub capacities: &'a std::collections::BTreeMap<String, crate::domain::QueueCapacity>,
}

/// A file's list entries, read one by one.
pub(crate) struct Entries {
    pub rules: Vec<Spanned<RuleDef>>,
    pub experiments: Vec<Spanned<ExperimentDef>>,
    pub reactions: Vec<Spanned<ReactionDef>>,
}

/// Compiles one parsed file.
pub(crate) fn compile(
    file_name: &str,
    content_hash: String,
    content: String,
    file: StrategyFile,
    entries: Entries,
    context: &mut Context<'_>,
) -> Result<Strategy, Problems> {
    let Entries { rules, experiments, reactions } = entries;
    let mut problems = Problems::new();
    let name = file.name.get_ref().trim().to_string();
    if name.is_empty() {
        problems.push((file.name.span(), "name must not be empty".into()));
    }

    let products: Vec<String> = match &file.applies_to {
        Some(applies) => {
            if applies.get_ref().products.is_empty() {
                problems.push((applies.span(), "applies_to.products must name at least one product".into()));
            }
            applies.get_ref().products.iter().map(|p| p.get_ref().clone()).collect()
        }
        None => Vec::new(),
    };
    for product in &products {
        context.symbols.product(product);
    }

    let policy = compile_policy(&file, context, &mut problems);
    let stages = compile_stages(&file, &mut problems);
    let stage_index: HashMap<&str, usize> =
        stages.iter().enumerate().map(|(index, stage)| (&*stage.name, index)).collect();

    let mut compiled_rules = Vec::with_capacity(rules.len());
    let mut rule_names: HashMap<String, usize> = HashMap::new();
    for rule in &rules {
        let rule_name = rule.get_ref().name.get_ref().clone();
        if rule_names.insert(rule_name.clone(), compiled_rules.len()).is_some() {
            problems.push((rule.get_ref().name.span(), format!("rule `{rule_name}` is defined twice")));
        }
        if let Some(compiled) = compile_rule(rule, &stage_index, policy.as_ref(), context, &mut problems) {
            compiled_rules.push(compiled);
        }
    }

    let experiment_list =
        compile_experiments(&experiments, &stage_index, &rule_names, &mut compiled_rules, &mut problems);
    let reaction_list = super::reaction::compile_reactions(&reactions, &stage_index, context.symbols, &mut problems);

    if problems.is_empty() {
        check_reachable(&rules, &compiled_rules, &stages, context.capacities, &mut problems);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let policy = policy.expect("a policy exists when there are no problems");
    let mut experiment_by_stage = vec![None; stages.len()];
    for (index, experiment) in experiment_list.iter().enumerate() {
        experiment_by_stage[experiment.stage] = Some(index);
    }
    let rules_by_stage: Vec<Vec<usize>> = (0..stages.len())
        .map(|stage| {
            compiled_rules.iter().enumerate().filter(|(_, rule)| rule.covers_stage(stage)).map(|(i, _)| i).collect()
        })
        .collect();
    let tag_index = rules_by_stage
        .iter()
        .map(|indices| TagIndex::new(indices.iter().map(|index| &compiled_rules[*index])))
        .collect();
    Ok(Strategy {
        name: name.into(),
        file: file_name.to_string(),
        content_hash,
        content,
        products,
        policy,
        stages,
        rules: compiled_rules,
        experiments: experiment_list,
        reactions: reaction_list,
        experiment_by_stage,
        rules_by_stage,
        tag_index,
    })
}

/// A rule below a rule without conditions that covers all its stages (and applies to the same
/// accounts: not reserved for another experiment arm) can never match: the first match decides.
/// Called when every rule compiled, so `defs` and `rules` line up.
/// A human rule routing to a queue with a capacity hides nothing: what the queue cannot take
/// falls through.
fn check_reachable(
    defs: &[Spanned<RuleDef>],
    rules: &[Rule],
    stages: &[Stage],
    capacities: &std::collections::BTreeMap<String, crate::domain::QueueCapacity>,
    problems: &mut Problems,
) {
    let limited = |rule: &Rule| {
        rule.treatment.channel == crate::domain::Channel::Human
            && rule.treatment.queue.as_deref().is_some_and(|queue| capacities.contains_key(queue))
    };
    for (later, rule) in rules.iter().enumerate() {
        let shadow = rules[..later].iter().enumerate().find(|(earlier, above)| {
            defs[*earlier].get_ref().when.as_ref().is_none_or(|when| when.get_ref().is_empty())
                && !limited(above)
                && (above.reserved_for.is_none() || above.reserved_for == rule.reserved_for)
                && (above.stage_mask == 0 || (rule.stage_mask != 0 && rule.stage_mask & !above.stage_mask == 0))
        });
        if let Some((_, above)) = shadow {
            let covered = if rule.stage_mask == 0 {
                "every stage".to_string()
            } else {
                let names: Vec<&str> =
                    stages.iter().enumerate().filter(|(i, _)| rule.covers_stage(*i)).map(|(_, s)| &*s.name).collect();
                format!("stage {}", names.join(", "))
            };
            problems.push((
                defs[later].get_ref().name.span(),
                format!(
                    "rule `{}` can never match: rule `{}` above it has no `when` conditions and takes every account in {covered}",
                    rule.name, above.name
                ),
            ));
        }
    }
}

fn compile_policy(file: &StrategyFile, context: &Context<'_>, problems: &mut Problems) -> Option<Policy> {
    let (profile, span) = match &file.policy {
        Some(policy) => (policy.get_ref().as_str(), policy.span()),
        None => (context.default_policy, file.name.span()),
    };
    let base = match Policy::builtin(profile, context.settings) {
        Ok(base) => base,
        Err(error) => {
            problems.push((span, error.message));
            return None;
        }
    };
    match &file.limits {
        None => Some(base),
        Some(limits) => match base.tighten(limits.get_ref()) {
            Ok(policy) => Some(policy),
            Err(errors) => {
                problems.extend(errors.into_iter().map(|e| (limits.span(), format!("{}: {}", e.field, e.message))));
                None
            }
        },
    }
}

fn compile_stages(file: &StrategyFile, problems: &mut Problems) -> Vec<Stage> {
    let mut stages = Vec::new();
    let mut spans = Vec::new();
    if file.stages.get_ref().is_empty() {
        problems.push((file.stages.span(), "stages must define at least one stage".into()));
    }
    for (name, def) in file.stages.get_ref() {
        let range = def.get_ref().dpd.get_ref();
        let span = def.get_ref().dpd.span();
        if range.len() != 2 {
            problems.push((span, format!("stage `{}`: dpd must be [first, last]", name.get_ref())));
            continue;
        }
        let (first, last) = (range[0], range[1]);
        if first > last {
            problems.push((span, format!("stage `{}`: dpd range [{first}, {last}] is reversed", name.get_ref())));
            continue;
        }
        if first < -366 || last > 36_500 {
            problems.push((span, format!("stage `{}`: dpd range [{first}, {last}] is out of bounds", name.get_ref())));
            continue;
        }
        stages.push(Stage { name: name.get_ref().as_str().into(), first: first as i32, last: last as i32 });
        spans.push(span);
    }
    if stages.len() > 64 {
        problems.push((file.stages.span(), "a strategy may define at most 64 stages".into()));
    }
    let mut order: Vec<usize> = (0..stages.len()).collect();
    order.sort_by_key(|index| stages[*index].first);
    for pair in order.windows(2) {
        let (a, b) = (&stages[pair[0]], &stages[pair[1]]);
        if b.first <= a.last {
            problems.push((
                spans[pair[1]].clone(),
                format!(
                    "stage `{}` [{}, {}] overlaps stage `{}` [{}, {}]",
                    b.name, b.first, b.last, a.name, a.first, a.last
                ),
            ));
        }
    }
    stages
}

fn compile_rule(
    rule: &Spanned<RuleDef>,
    stage_index: &HashMap<&str, usize>,
    policy: Option<&Policy>,
    context: &mut Context<'_>,
    problems: &mut Problems,
) -> Option<Rule> {
    let def = rule.get_ref();
    let name = def.name.get_ref().as_str();
    let before = problems.len();
    let here = |span: Span<usize>, message: String| (span, format!("rule `{name}`: {message}"));

    let mut stage_mask = 0u64;
    if let Some(stage) = &def.stage {
        for stage_name in stage.get_ref().to_vec() {
            match stage_index.get(stage_name.as_str()) {
                Some(index) => stage_mask |= 1 << index,
                None => problems.push(here(stage.span(), format!("unknown stage `{stage_name}`"))),
            }
        }
    }

    let channel = match def.channel.get_ref().parse::<Channel>() {
        Ok(channel) => Some(channel),
        Err(error) => {
            problems.push(here(def.channel.span(), error.to_string()));
            None
        }
    };

    let conditions = match &def.when {
        Some(when) => compile_conditions(when, context.symbols, &format!("rule `{name}`"), false, problems),
        None => Conditions::default(),
    };

    let inbound_template = def.inbound_template.as_ref().map(|template| {
        if let Err(message) = context.templates.check(template.get_ref()) {
            problems.push(here(template.span(), format!("inbound_template: {message}")));
        }
        Arc::<str>::from(template.get_ref().as_str())
    });
    let template = def.template.as_ref().map(|template| {
        if let Err(message) = context.templates.check(template.get_ref()) {
            problems.push(here(template.span(), message));
        }
        Arc::<str>::from(template.get_ref().as_str())
    });
    if template.is_none() && matches!(channel, Some(Channel::Sms | Channel::Email | Channel::Robot)) {
        let channel = def.channel.get_ref();
        problems.push(here(
            rule.span(),
            format!("{channel} rules need a template, like template = \"{channel}/reminder\""),
        ));
    }

    let count = |value: &Option<Spanned<i64>>, key: &str, max: i64, problems: &mut Problems| -> u32 {
        match value {
            None => 1,
            Some(value) if (1..=max).contains(value.get_ref()) => *value.get_ref() as u32,
            Some(value) => {
                problems
                    .push(here(value.span(), format!("{key} must be between 1 and {max}, not {}", value.get_ref())));
                1
            }
        }
    };
    let attempts_per_day = count(&def.attempts_per_day, "attempts_per_day", 48, problems);
    let calls_per_day = count(&def.calls_per_day, "calls_per_day", 48, problems);
    let is_human = channel == Some(Channel::Human);
    if is_human && def.attempts_per_day.is_some() {
        problems.push(here(
            rule.span(),
            "attempts_per_day is for sms, email and robot rules; human rules use calls_per_day".into(),
        ));
    }
    if !is_human && channel.is_some() && (def.calls_per_day.is_some() || def.queue.is_some()) {
        problems.push(here(rule.span(), "queue and calls_per_day are for human rules".into()));
    }

    let timing = match def.timing.as_ref().map(|timing| (timing.span(), timing.get_ref().as_str())) {
        None | Some((_, "spread")) => Timing::Spread,
        Some((span, "learned")) => {
            if is_human {
                problems.push(here(
                    span,
                    "timing = \"learned\" is for sms, email and robot rules; a human task carries one window".into(),
                ));
            }
            Timing::Learned
        }
        Some((span, other)) => {
            problems.push(here(span, format!("timing `{other}` is not one of: spread, learned")));
            Timing::Spread
        }
    };
    let min_p_contact = match &def.min_p_contact {
        Some(value) if !(0.0..=1.0).contains(value.get_ref()) => {
            problems
                .push(here(value.span(), format!("min_p_contact must be between 0 and 1, not {}", value.get_ref())));
            None
        }
        Some(value) if channel.is_some_and(|channel| channel != Channel::Robot) => {
            problems
                .push(here(value.span(), "min_p_contact is for robot rules (calls placed by learned timing)".into()));
            None
        }
        Some(value) if timing != Timing::Learned => {
            problems.push(here(value.span(), "min_p_contact needs timing = \"learned\"".into()));
            None
        }
        value => value.as_ref().map(|value| *value.get_ref()),
    };

    let min_gap_minutes = match &def.min_gap {
        None => 0,
        Some(gap) => match humantime::parse_duration(gap.get_ref()) {
            Ok(duration) if duration.as_secs() % 60 == 0 && duration.as_secs() <= 24 * 3600 => {
                (duration.as_secs() / 60) as u32
            }
            Ok(_) => {
                problems
                    .push(here(gap.span(), format!("min_gap `{}` must be whole minutes, at most 24h", gap.get_ref())));
                0
            }
            Err(error) => {
                problems.push(here(
                    gap.span(),
                    format!("min_gap `{}` is not a duration like \"2h\" or \"90m\": {error}", gap.get_ref()),
                ));
                0
            }
        },
    };

    let mut windows = Vec::new();
    if let Some(policy) = policy {
        match &def.windows {
            None => windows.push(policy.hours),
            Some(list) => {
                if list.get_ref().is_empty() {
                    problems.push(here(
                        list.span(),
                        "windows must not be empty (leave it out for the policy's hours)".into(),
                    ));
                }
                for text in list.get_ref() {
                    match text.get_ref().parse::<TimeWindow>() {
                        Err(message) => problems.push(here(text.span(), message)),
                        Ok(window) => {
                            let clipped = window.clip_to(policy.hours);
                            if clipped.is_empty() {
                                problems.push(here(
                                    text.span(),
                                    format!("window {window} lies outside {}'s contact hours {}: no contact could ever happen", policy.name, policy.hours),
                                ));
                            }
                            windows.extend(clipped);
                        }
                    }
                }
                windows.sort_by_key(|window| window.start);
                for pair in windows.windows(2) {
                    if pair[1].start < pair[0].end {
                        problems.push(here(list.span(), format!("windows {} and {} overlap", pair[0], pair[1])));
                    }
                }
            }
        }
        // Also without `windows`: then the policy's contact hours are the window.
        let available: u32 = windows.iter().map(|w| w.minutes()).sum();
        if !is_human && attempts_per_day > 1 && min_gap_minutes * (attempts_per_day - 1) >= available && available > 0 {
            let (span, room) = match &def.windows {
                Some(list) => (list.span(), "of windows".to_string()),
                None => (
                    def.min_gap.as_ref().map_or(rule.span(), |gap| gap.span()),
                    format!("of {}'s contact hours {}", policy.name, policy.hours),
                ),
            };
            problems.push(here(
                span,
                format!("{attempts_per_day} attempts {min_gap_minutes} minutes apart do not fit in {available} minutes {room}"),
            ));
        }
    }

    let priority = match &def.priority {
        None => Priority::Constant(0.0),
        Some(priority) => match priority.get_ref() {
            PriorityDef::Constant(value) if value.is_finite() => Priority::Constant(*value),
            PriorityDef::Constant(_) => {
                problems.push(here(priority.span(), "priority must be a finite number".into()));
                Priority::Constant(0.0)
            }
            PriorityDef::Field(field) => match field.as_str() {
                "balance" => Priority::Balance,
                "amount_due" => Priority::AmountDue,
                "dpd" => Priority::Dpd,
                "expected_value" => Priority::ExpectedValue,
                other => match other.strip_prefix("score.") {
                    Some(model) if !model.is_empty() => Priority::Score(context.symbols.model(model)),
                    _ => {
                        problems.push(here(
                            priority.span(),
                            format!(
                                "priority `{other}` is not balance, amount_due, dpd, expected_value, score.<model> or a number"
                            ),
                        ));
                        Priority::Constant(0.0)
                    }
                },
            },
        },
    };

    let escalate = match &def.escalate {
        None => None,
        Some(escalate) => {
            if channel.is_some() && channel != Some(Channel::Robot) {
                problems.push(here(escalate.span(), "escalate is for robot rules".into()));
            }
            let value = escalate.get_ref();
            if value.after_failed_attempts == 0 || value.queue.trim().is_empty() {
                problems.push(here(escalate.span(), "escalate needs after_failed_attempts >= 1 and a queue".into()));
            }
            Some((value.after_failed_attempts, Arc::<str>::from(value.queue.as_str())))
        }
    };

    let queue = if is_human {
        let queue = def.queue.as_ref().map(|q| q.get_ref().as_str()).unwrap_or("default");
        if queue.trim().is_empty() {
            problems.push(here(rule.span(), "queue must not be empty".into()));
        }
        Some(Arc::<str>::from(queue))
    } else {
        None
    };

    if problems.len() > before {
        return None;
    }
    Some(Rule {
        name: name.into(),
        stage_mask,
        reserved_for: None,
        conditions,
        treatment: Treatment {
            channel: channel?,
            template,
            windows,
            attempts_per_day: if is_human { 1 } else { attempts_per_day },
            min_gap_minutes,
            timing,
            min_p_contact,
            queue,
            calls_per_day: if is_human { calls_per_day } else { 1 },
            priority,
            escalate,
            inbound_template,
        },
    })
}

fn compile_experiments(
    experiments: &[Spanned<ExperimentDef>],
    stage_index: &HashMap<&str, usize>,
    rule_names: &HashMap<String, usize>,
    rules: &mut [Rule],
    problems: &mut Problems,
) -> Vec<Experiment> {
    let mut compiled = Vec::new();
    let mut stages_taken = HashSet::new();
    let mut names = HashSet::new();
    for experiment in experiments {
        let def = experiment.get_ref();
        let name = def.name.get_ref().as_str();
        let here = |span: Span<usize>, message: String| (span, format!("experiment `{name}`: {message}"));
        if !names.insert(name.to_string()) {
            problems.push(here(def.name.span(), "defined twice".into()));
        }
        let Some(stage) = stage_index.get(def.stage.get_ref().as_str()).copied() else {
            problems.push(here(def.stage.span(), format!("unknown stage `{}`", def.stage.get_ref())));
            continue;
        };
        if !stages_taken.insert(stage) {
            problems.push(here(
                def.stage.span(),
                format!("stage `{}` already runs another experiment", def.stage.get_ref()),
            ));
        }
        if def.arms.get_ref().len() < 2 {
            problems.push(here(def.arms.span(), "an experiment needs at least two arms".into()));
        }
        let index = compiled.len();
        let mut arms = Vec::new();
        let mut arm_names = HashSet::new();
        let mut holdout = None;
        let horizon_days = match &def.horizon {
            None => DEFAULT_HORIZON_DAYS,
            Some(text) => match parse_horizon(text.get_ref()) {
                Ok(days) => days,
                Err(message) => {
                    problems.push(here(text.span(), message));
                    DEFAULT_HORIZON_DAYS
                }
            },
        };
        for (arm_index, arm) in def.arms.get_ref().iter().enumerate() {
            let arm = arm.get_ref();
            if !arm_names.insert(arm.name.get_ref().clone()) {
                problems.push(here(arm.name.span(), format!("arm `{}` is defined twice", arm.name.get_ref())));
            }
            if let Some(flag) = arm.holdout.as_ref().filter(|flag| *flag.get_ref()) {
                if arm_index == 0 {
                    problems.push(here(flag.span(), "the first arm is the champion and cannot be the holdout".into()));
                } else if holdout.replace(arm_index).is_some() {
                    problems.push(here(flag.span(), "an experiment has at most one holdout arm".into()));
                }
            }
            let weight = *arm.weight.get_ref();
            if !(1..=1_000_000).contains(&weight) {
                problems
                    .push(here(arm.weight.span(), format!("arm weight must be between 1 and 1000000, not {weight}")));
            }
            for rule_name in &arm.rules {
                if !rule_names.contains_key(rule_name.get_ref()) {
                    problems.push(here(rule_name.span(), format!("unknown rule `{}`", rule_name.get_ref())));
                    continue;
                }
                let Some(rule) = rules.iter_mut().find(|rule| *rule.name == **rule_name.get_ref()) else {
                    continue;
                };
                if rule.reserved_for.is_some() {
                    problems.push(here(
                        rule_name.span(),
                        format!("rule `{}` is already reserved for another arm", rule_name.get_ref()),
                    ));
                }
                if !rule.covers_stage(stage) {
                    problems.push(here(
                        rule_name.span(),
                        format!("rule `{}` does not cover stage `{}`", rule_name.get_ref(), def.stage.get_ref()),
                    ));
                }
                rule.reserved_for = Some((index, arm_index));
            }
            arms.push((Arc::<str>::from(arm.name.get_ref().as_str()), weight.clamp(1, 1_000_000) as u32));
        }
        compiled.push(Experiment { name: name.into(), stage, arms, holdout, horizon_days });
    }
    compiled
}

/// An experiment's horizon when its file names none.
pub const DEFAULT_HORIZON_DAYS: u32 = 30;

/// A horizon of whole days, 1 to 365 (`"30d"`, `"14 days"`, `"2w"`).
fn parse_horizon(text: &str) -> Result<u32, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|error| format!("horizon `{text}` is not a duration such as \"30d\": {error}"))?;
    let seconds = duration.as_secs();
    if seconds % 86_400 != 0 || duration.subsec_nanos() != 0 {
        return Err(format!("horizon `{text}` must be whole days"));
    }
    let days = seconds / 86_400;
    if !(1..=365).contains(&days) {
        return Err(format!("horizon `{text}` must be between 1 and 365 days"));
    }
    Ok(days as u32)
}

/// Compiles a `when` table; `owner` names its rule or reaction in messages ("rule `early`").
/// Keys starting with `event.` are left to the caller (a reaction's event conditions).
pub(crate) fn compile_conditions(
    when: &Spanned<std::collections::BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
    symbols: &mut Symbols,
    owner: &str,
    allow_event: bool,
    problems: &mut Problems,
) -> Conditions {
    let mut conditions = Conditions::default();
    for (key, value) in when.get_ref() {
        let span = value.span();
        let key_name = key.get_ref().as_str();
        if allow_event && key_name.starts_with("event.") {
            continue;
        }
        let mut problem =
            |message: String| problems.push((span.clone(), format!("{owner}: when.{key_name}: {message}")));
        match key_name {
            "product" => match strings(value.get_ref()) {
                Ok(list) => conditions.products = Some(list.iter().map(|p| symbols.product(p)).collect()),
                Err(message) => problem(message),
            },
            "funder" => match strings(value.get_ref()) {
                Ok(list) if !list.is_empty() => match list.iter().find(|name| !crate::domain::is_funder_name(name)) {
                    Some(bad) => problem(format!("`{bad}` is not a funder name (lower-case letters, digits, - and _)")),
                    None => {
                        let mut ids: Vec<u32> = list.iter().map(|f| symbols.funder(f)).collect();
                        ids.sort_unstable();
                        conditions.funders = Some(tag_ids(&ids));
                    }
                },
                Ok(_) => problem("list at least one funder".into()),
                Err(message) => problem(message),
            },
            "dpd" => match range(value.get_ref(), integer) {
                Ok(r) => conditions.dpd = Some(map_range(r, |v| v as i32)),
                Err(message) => problem(message),
            },
            "amount_due" | "balance" => match range(value.get_ref(), money) {
                Ok(r) => {
                    if key_name == "balance" {
                        conditions.balance = Some(r)
                    } else {
                        conditions.amount_due = Some(r)
                    }
                }
                Err(message) => problem(message),
            },
            "broken_promises" | "attempts_7d" | "days_since_rpc" => match range(value.get_ref(), count) {
                Ok(r) => {
                    let r = map_range(r, |v| v as u32);
                    match key_name {
                        "broken_promises" => conditions.broken_promises = Some(r),
                        "attempts_7d" => conditions.attempts_7d = Some(r),
                        _ => conditions.days_since_rpc = Some(r),
                    }
                }
                Err(message) => problem(message),
            },
            "tags_any" | "tags_all" | "tags_none" => match value.get_ref() {
                toml::Value::Array(_) => match strings(value.get_ref()) {
                    Ok(list) if !list.is_empty() => {
                        let mut ids: Vec<u32> = list.iter().map(|t| symbols.tag(t)).collect();
                        ids.sort_unstable();
                        let slot = match key_name {
                            "tags_any" => &mut conditions.tags_any,
                            "tags_all" => &mut conditions.tags_all,
                            _ => &mut conditions.tags_none,
                        };
                        *slot = Some(tag_ids(&ids));
                    }
                    Ok(_) => problem("list at least one tag".into()),
                    Err(message) => problem(message),
                },
                _ => problem("expected a list of tags, like [\"vip\"]".into()),
            },
            other => {
                if let Some(model) = other.strip_prefix("score.").filter(|m| !m.is_empty()) {
                    match range(value.get_ref(), number) {
                        Ok(r) => conditions.scores.push((symbols.model(model), r)),
                        Err(message) => problem(message),
                    }
                } else if let Some(attr) = other.strip_prefix("attr.").filter(|a| !a.is_empty()) {
                    match strings(value.get_ref()) {
                        Ok(list) => {
                            let id = symbols.attr(attr);
                            conditions.attrs.push((id, list.iter().map(|v| symbols.attr_value(v)).collect()));
                        }
                        Err(message) => problem(message),
                    }
                } else {
                    problems.push((
                        key.span(),
                        format!(
                            "{owner}: unknown condition `{other}` (expected product, funder, dpd, amount_due, \
                             balance, score.<model>, tags_any, tags_all, tags_none, attr.<name>, broken_promises, attempts_7d, days_since_rpc{})",
                            if allow_event { ", event.<field>" } else { "" }
                        ),
                    ));
                }
            }
        }
    }
    conditions
}

/// Tag bit sets sized for every tag interned so far; they are re-sized at lookup (missing words are 0).
fn tag_ids(ids: &[u32]) -> Vec<u64> {
    let words = ids.iter().map(|id| *id as usize / 64 + 1).max().unwrap_or(0);
    let mut mask = vec![0u64; words];
    for id in ids {
        mask[*id as usize / 64] |= 1 << (id % 64);
    }
    mask
}

fn map_range<T: Copy, U>(range: Range<T>, f: impl Fn(T) -> U) -> Range<U> {
    Range { min: range.min.map(&f), max: range.max.map(&f) }
}

pub(crate) fn strings(value: &toml::Value) -> Result<Vec<String>, String> {
    match value {
        toml::Value::String(text) => Ok(vec![text.clone()]),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str().map(str::to_string).ok_or_else(|| format!("expected text, found {}", item.type_str()))
            })
            .collect(),
        other => Err(format!("expected text or a list of text, found {}", other.type_str())),
    }
}

pub(crate) fn range<T: PartialOrd + Copy + std::fmt::Display>(
    value: &toml::Value,
    read: fn(&toml::Value) -> Result<T, String>,
) -> Result<Range<T>, String> {
    let table =
        value.as_table().ok_or_else(|| format!("expected {{ min = ..., max = ... }}, found {}", value.type_str()))?;
    let mut result = Range { min: None, max: None };
    for (key, bound) in table {
        let parsed = read(bound).map_err(|message| format!("{key}: {message}"))?;
        match key.as_str() {
            "min" => result.min = Some(parsed),
            "max" => result.max = Some(parsed),
            other => return Err(format!("unknown key `{other}` (expected min, max)")),
        }
    }
    if let (Some(min), Some(max)) = (result.min, result.max)
        && min > max
    {
        return Err(format!("min {min} is greater than max {max}"));
    }
    if result.min.is_none() && result.max.is_none() {
        return Err("give min, max or both".into());
    }
    Ok(result)
}

fn integer(value: &toml::Value) -> Result<i64, String> {
    value.as_integer().ok_or_else(|| format!("expected a whole number, found {}", value.type_str()))
}

fn count(value: &toml::Value) -> Result<i64, String> {
    match value.as_integer() {
        Some(n) if (0..=i64::from(u32::MAX)).contains(&n) => Ok(n),
        Some(n) => Err(format!("{n} must be zero or more")),
        None => Err(format!("expected a whole number, found {}", value.type_str())),
    }
}

pub(crate) fn number(value: &toml::Value) -> Result<f64, String> {
    match value {
        toml::Value::Float(f) if f.is_finite() => Ok(*f),
        toml::Value::Integer(i) => Ok(*i as f64),
        other => Err(format!("expected a number, found {}", other.type_str())),
    }
}

fn money(value: &toml::Value) -> Result<Money, String> {
    match value {
        toml::Value::String(text) => crate::domain::parse_money(text),
        toml::Value::Integer(i) => Ok(Money::from(*i)),
        toml::Value::Float(_) => Err("write amounts as text, like \"20000.00\", so no rounding creeps in".into()),
        other => Err(format!("expected an amount like \"20000\", found {}", other.type_str())),
    }
}
