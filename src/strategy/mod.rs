//! Strategy files: read (strict TOML, unknown keys are errors), check, and compile into matchers.
//! Every error names `file:line:col`; a file with any error is never loaded. No clock here; the
//! only I/O is reading the strategy and template files.

mod compile;
mod compiled;
mod file;
mod reaction;
mod templates;

pub use compile::DEFAULT_HORIZON_DAYS;
pub use compiled::{
    Conditions, Experiment, Facts, Priority, Range, Rule, Stage, Strategy, StrategySet, Timing, Treatment, UNKNOWN,
};
pub use file::StrategyFile;
pub use reaction::{CaseRule, EventMatch, MAX_HOLD_DAYS, Miss, Reaction};
pub use templates::{
    AccountView, BorrowerView, LenderView, MessageContext, MessageTemplates, TaskView, TemplateChecker, TemplateError,
};

use crate::policy::PolicySettings;
use compile::{Context, Problems};
use file::{ExperimentDef, ReactionDef, RuleDef};
use serde::Deserialize;
use serde_spanned::Spanned;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// One problem in a strategy file, at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrategyError {
    /// The file, as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for StrategyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

impl std::error::Error for StrategyError {}

/// All the errors of a set of files, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrategyErrors(pub Vec<StrategyError>);

impl fmt::Display for StrategyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StrategyErrors {}

/// Where to find templates and which policy to start from.
#[derive(Debug, Clone)]
pub struct LoadOptions<'a> {
    /// `templates/`.
    pub templates_dir: &'a Path,
    /// The configured default profile, for files without `policy`.
    pub default_policy: &'a str,
    /// Profile settings from configuration.
    pub settings: &'a PolicySettings,
    /// Human queues' capacity (`[queues.<name>]`): the set carries it to the planner, and a
    /// catch-all human rule of a queue with a capacity does not hide the rules below it (they
    /// take what the queue cannot).
    pub capacities: &'a std::collections::BTreeMap<String, crate::domain::QueueCapacity>,
}

/// One strategy file's text, with its name for messages.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Display name (usually the path).
    pub name: String,
    /// Content.
    pub text: String,
}

struct Positions<'a> {
    file: &'a str,
    text: &'a str,
}

impl Positions<'_> {
    fn error(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> StrategyError {
        let offset = span.start.min(self.text.len());
        let before = &self.text[..self.text.floor_char_boundary(offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before[line_start..].chars().count() + 1;
        StrategyError { file: self.file.to_string(), line, column, message: message.into() }
    }
}

type Parsed = (StrategyFile, Vec<Spanned<RuleDef>>, Vec<Spanned<ExperimentDef>>, Vec<Spanned<ReactionDef>>);

/// Reads a file's TOML. `rule`, `experiment` and `reaction` entries are read one by one so that every broken
/// entry is reported.
fn parse(text: &str) -> Result<Parsed, Problems> {
    let root =
        DeTable::parse(text).map_err(|error| vec![(error.span().unwrap_or(0..0), error.message().to_string())])?;
    let span = root.span();
    let mut table = root.into_inner();
    let rule_values = table.remove("rule");
    let experiment_values = table.remove("experiment");
    let reaction_values = table.remove("reaction");
    let mut problems = Problems::new();
    let header = StrategyFile::deserialize(ValueDeserializer::from(Spanned::new(span, DeValue::Table(table))))
        .map_err(|error| {
            let at = error.span().unwrap_or(0..0);
            problems.push((at.clone(), readable(text, &at, error.message())))
        })
        .ok();
    let rules = read_entries::<RuleDef>(text, rule_values, "rule", &mut problems);
    let experiments = read_entries::<ExperimentDef>(text, experiment_values, "experiment", &mut problems);
    let reactions = read_entries::<ReactionDef>(text, reaction_values, "reaction", &mut problems);
    match header {
        Some(header) if problems.is_empty() => Ok((header, rules, experiments, reactions)),
        _ => Err(problems),
    }
}

fn read_entries<T: for<'de> Deserialize<'de>>(
    text: &str,
    value: Option<Spanned<DeValue<'_>>>,
    key: &str,
    problems: &mut Problems,
) -> Vec<Spanned<T>> {
    let Some(value) = value else { return Vec::new() };
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => items
            .into_iter()
            .filter_map(|item| {
                let item_span = item.span();
                Spanned::<T>::deserialize(ValueDeserializer::from(item))
                    .map_err(|error| {
                        let at = error.span().unwrap_or(item_span);
                        problems.push((at.clone(), readable(text, &at, error.message())))
                    })
                    .ok()
            })
            .collect(),
        _ => {
            problems.push((span, format!("`{key}` must be a list of tables, written [[{key}]]")));
            Vec::new()
        }
    }
}

/// One step of the way to a value: a key, or a position in a list.
enum Step {
    Key(String),
    Index(usize),
}

/// A serde message made readable for the people who write strategies: it says which rule (by
/// name) and which key it is about, and "a whole number" rather than "i64".
fn readable(text: &str, at: &std::ops::Range<usize>, message: &str) -> String {
    let mut message = plain_words(message);
    let Ok(root) = DeTable::parse(text) else { return message };
    let mut path = Vec::new();
    if !find_path(root.get_ref(), at, &mut path) || path.is_empty() {
        return message;
    }
    let mut rest = path.as_slice();
    let mut parts = Vec::new();
    if let [Step::Key(list), Step::Index(index), tail @ ..] = rest
        && (list == "rule" || list == "experiment")
    {
        parts.push(match entry_name(root.get_ref(), list, *index) {
            Some(name) => format!("{list} `{name}`"),
            None => format!("{list} #{}", index + 1),
        });
        rest = tail;
    }
    // A table written as a list (`applies_to = ["cash"]`): serde reads the list as the table's
    // fields in order and complains about its first element; say what was meant instead.
    for (end, step) in rest.iter().enumerate() {
        if let (Step::Index(_), Some(example)) = (step, table_example(&rest[..end])) {
            rest = &rest[..end];
            message = format!("expected a table like {example}, found a list");
            break;
        }
    }
    let mut keys = String::new();
    for step in rest {
        match step {
            Step::Key(key) if keys.is_empty() => keys.push_str(key),
            Step::Key(key) => {
                keys.push('.');
                keys.push_str(key);
            }
            Step::Index(index) => keys.push_str(&format!("[{index}]")),
        }
    }
    if !keys.is_empty() {
        parts.push(keys);
    }
    parts.push(std::mem::take(&mut message));
    parts.join(": ")
}

/// An example for the keys whose value must be a table.
fn table_example(path: &[Step]) -> Option<&'static str> {
    match path {
        [Step::Key(key)] if key == "applies_to" => Some("{ products = [\"cash\"] }"),
        [Step::Key(key)] if key == "escalate" => Some("{ after_failed_attempts = 6, queue = \"early\" }"),
        [Step::Key(key)] if key == "limits" => Some("{ hours = \"09:00-20:00\" }"),
        [Step::Key(key), Step::Key(_)] if key == "stages" => Some("{ dpd = [1, 30] }"),
        [Step::Key(key), Step::Index(_)] if key == "arms" => Some("{ name = \"champion\", weight = 80 }"),
        _ => None,
    }
}

/// The keys and list positions leading to the value (or the key) at `at`, outermost first.
fn find_path(table: &DeTable<'_>, at: &std::ops::Range<usize>, path: &mut Vec<Step>) -> bool {
    for (key, value) in table.iter() {
        if key.span() == *at {
            return true;
        }
        path.push(Step::Key(key.get_ref().to_string()));
        if find_in_value(value, at, path) || value.span() == *at {
            return true;
        }
        path.pop();
    }
    false
}

fn find_in_value(value: &Spanned<DeValue<'_>>, at: &std::ops::Range<usize>, path: &mut Vec<Step>) -> bool {
    match value.get_ref() {
        DeValue::Table(table) => find_path(table, at, path),
        DeValue::Array(items) => items.iter().enumerate().any(|(index, item)| {
            path.push(Step::Index(index));
            let found = find_in_value(item, at, path) || item.span() == *at;
            if !found {
                path.pop();
            }
            found
        }),
        _ => false,
    }
}

/// The `name` of the `index`th `[[rule]]` or `[[experiment]]`, when it is text.
fn entry_name(root: &DeTable<'_>, list: &str, index: usize) -> Option<String> {
    let DeValue::Array(items) = root.get(list)?.get_ref() else { return None };
    let DeValue::Table(entry) = items.get(index)?.get_ref() else { return None };
    match entry.get("name")?.get_ref() {
        DeValue::String(name) => Some(name.to_string()),
        _ => None,
    }
}

/// Serde's type names in words, and "expected X, found Y" rather than "invalid type: Y, expected X".
fn plain_words(message: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        ("expected i64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected f64", "expected a number"),
        ("expected a string", "expected text in quotes"),
        ("expected a sequence", "expected a list"),
        ("expected a boolean", "expected true or false"),
        ("expected struct StageDef", "expected a table like { dpd = [1, 30] }"),
        ("expected struct AppliesTo", "expected a table like { products = [\"cash\"] }"),
        ("expected struct EscalateDef", "expected a table like { after_failed_attempts = 6, queue = \"early\" }"),
        ("expected struct ArmDef", "expected a table like { name = \"champion\", weight = 80 }"),
        ("expected struct Limits", "expected a table of limits"),
        ("expected struct RuleDef", "expected a table"),
        ("expected struct ExperimentDef", "expected a table"),
        (
            "data did not match any variant of untagged enum OneOrMany",
            "expected a name or a list of names, like \"M1\" or [\"M1\", \"M2\"]",
        ),
        (
            "data did not match any variant of untagged enum PriorityDef",
            "expected balance, amount_due, dpd, score.<model> or a number",
        ),
    ];
    let mut text = message.trim().to_string();
    for (from, to) in WORDS {
        if text.contains(from) {
            text = text.replace(from, to);
        }
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((found, expected)) = text.strip_prefix(prefix).and_then(|rest| rest.split_once(", expected ")) {
            text = format!("expected {expected}, found {found}");
        }
    }
    text
}

/// Loads and checks every `*.toml` file of a directory (in file-name order).
pub fn load_dir(dir: &Path, options: &LoadOptions<'_>) -> Result<StrategySet, StrategyErrors> {
    let unreadable = |message: String| {
        StrategyErrors(vec![StrategyError { file: dir.display().to_string(), line: 1, column: 1, message }])
    };
    let entries =
        std::fs::read_dir(dir).map_err(|error| unreadable(format!("cannot read the strategies directory: {error}")))?;
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    let mut sources = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .map_err(|error| unreadable(format!("cannot read {}: {error}", path.display())))?;
        sources.push(SourceFile { name: path.display().to_string(), text });
    }
    if sources.is_empty() {
        return Err(unreadable("no strategy files (*.toml) found".into()));
    }
    load_sources(&sources, options)
}

/// Loads and checks strategy sources; all errors of all files come back at once.
pub fn load_sources(sources: &[SourceFile], options: &LoadOptions<'_>) -> Result<StrategySet, StrategyErrors> {
    let mut set = StrategySet { capacities: options.capacities.clone(), ..StrategySet::default() };
    let mut errors = Vec::new();
    let mut templates = TemplateChecker::new(options.templates_dir);
    let mut names: HashMap<String, String> = HashMap::new();
    for source in sources {
        let positions = Positions { file: &source.name, text: &source.text };
        let (file, rules, experiments, reactions) = match parse(&source.text) {
            Ok(parsed) => parsed,
            Err(problems) => {
                errors.extend(problems.into_iter().map(|(span, message)| positions.error(span, message)));
                continue;
            }
        };
        let name_span = file.name.span();
        let claimed: Vec<(String, std::ops::Range<usize>)> = file
            .applies_to
            .as_ref()
            .map(|applies| applies.get_ref().products.iter().map(|p| (p.get_ref().clone(), p.span())).collect())
            .unwrap_or_default();
        let hash = hex::encode(Sha256::digest(source.text.as_bytes()));
        let mut context = Context {
            settings: options.settings,
            default_policy: options.default_policy,
            templates: &mut templates,
            symbols: &mut set.symbols,
            capacities: options.capacities,
        };
        let entries = compile::Entries { rules, experiments, reactions };
        let strategy = match compile::compile(&source.name, hash, source.text.clone(), file, entries, &mut context) {
            Ok(strategy) => strategy,
            Err(problems) => {
                errors.extend(problems.into_iter().map(|(span, message)| positions.error(span, message)));
                continue;
            }
        };
        let index = set.strategies.len();
        if let Some(other) = names.insert(strategy.name.to_string(), source.name.clone()) {
            errors.push(
                positions.error(name_span.clone(), format!("strategy `{}` is also defined in {other}", strategy.name)),
            );
        }
        if claimed.is_empty() {
            match set.catch_all {
                Some(other) => errors.push(positions.error(
                    name_span,
                    format!(
                        "strategy `{}` has no applies_to, and neither has `{}`: only one strategy may take every other product",
                        strategy.name, set.strategies[other].name
                    ),
                )),
                None => set.catch_all = Some(index),
            }
        }
        for (product, span) in claimed {
            if let Some(other) = set.by_product.insert(product.clone(), index) {
                errors.push(positions.error(
                    span,
                    format!("product `{product}` is already handled by strategy `{}`", set.strategies[other].name),
                ));
            }
        }
        set.strategies.push(strategy);
    }
    if errors.is_empty() { Ok(set) } else { Err(StrategyErrors(errors)) }
}

/// The JSON Schema of strategy files, for editors.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(StrategyFile)).unwrap_or_default()
}
