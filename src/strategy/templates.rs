//! Message templates (`templates/<name>.hbs`): the variables the engine provides, the check
//! that a template a rule names exists, compiles and uses only those variables, and the
//! registry the release loop renders messages with (strict, no HTML escaping). Reading the
//! template files is the only I/O here; nothing is sent or stored.

use handlebars::Handlebars;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The borrower as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct BorrowerView {
    /// Borrower id.
    pub id: String,
    /// Full name.
    pub name: String,
}

/// The account as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    /// Account id.
    pub id: String,
    /// Product code.
    pub product: String,
    /// ISO 4217 currency.
    pub currency: String,
    /// Amount due, as a decimal string.
    pub amount_due: String,
    /// Balance, as a decimal string.
    pub balance: String,
    /// Oldest unpaid due date, YYYY-MM-DD.
    pub due_date: String,
    /// Days past due.
    pub dpd: i32,
}

/// The task as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    /// Stage.
    pub stage: String,
    /// Strategy.
    pub strategy: String,
    /// Rule.
    pub rule: String,
    /// Channel code.
    pub channel: String,
    /// Attempt number within the day.
    pub attempt: u32,
    /// Earliest contact, RFC 3339 at the borrower's offset.
    pub not_before: String,
    /// Latest contact.
    pub not_after: String,
}

/// The lender, from configuration.
#[derive(Debug, Clone, Serialize)]
pub struct LenderView {
    /// The lender's name as borrowers know it.
    pub name: String,
}

/// Everything a message template may use: `{{borrower.name}}`, `{{account.amount_due}}`,
/// `{{task.attempt}}`, `{{lender.name}}`, ...
#[derive(Debug, Clone, Serialize)]
pub struct MessageContext {
    /// The borrower.
    pub borrower: BorrowerView,
    /// The account.
    pub account: AccountView,
    /// The task.
    pub task: TaskView,
    /// The lender.
    pub lender: LenderView,
}

impl MessageContext {
    /// A context with every variable set, used to check templates.
    pub fn sample() -> MessageContext {
        MessageContext {
            borrower: BorrowerView { id: "B1".into(), name: "Li Wei".into() },
            account: AccountView {
                id: "A1".into(),
                product: "cash".into(),
                currency: "CNY".into(),
                amount_due: "1200.00".into(),
                balance: "8000.00".into(),
                due_date: "2026-11-01".into(),
                dpd: 21,
            },
            task: TaskView {
                stage: "M1".into(),
                strategy: "consumer-cash".into(),
                rule: "early robot".into(),
                channel: "robot".into(),
                attempt: 1,
                not_before: "2026-11-22T09:00:00+08:00".into(),
                not_after: "2026-11-22T12:00:00+08:00".into(),
            },
            lender: LenderView { name: "Example Finance".into() },
        }
    }
}

/// Checks templates once each, remembering the verdicts.
pub struct TemplateChecker {
    dir: PathBuf,
    registry: Handlebars<'static>,
    verdicts: HashMap<String, Result<(), String>>,
}

impl TemplateChecker {
    /// A checker for the templates under `dir`.
    pub fn new(dir: &Path) -> TemplateChecker {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        TemplateChecker { dir: dir.to_path_buf(), registry, verdicts: HashMap::new() }
    }

    /// The file a template name refers to.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.hbs"))
    }

    /// Whether the template exists, compiles and renders with the engine's variables only.
    pub fn check(&mut self, name: &str) -> Result<(), String> {
        if let Some(verdict) = self.verdicts.get(name) {
            return verdict.clone();
        }
        let verdict = self.check_uncached(name);
        self.verdicts.insert(name.to_string(), verdict.clone());
        verdict
    }

    fn check_uncached(&mut self, name: &str) -> Result<(), String> {
        let valid_name = !name.is_empty()
            && name.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_/".contains(c));
        if !valid_name {
            return Err(format!("template name `{name}` must look like \"sms/reminder\""));
        }
        let path = self.path_of(name);
        let source = std::fs::read_to_string(&path)
            .map_err(|error| format!("template `{name}`: cannot read {}: {error}", path.display()))?;
        self.registry.register_template_string(name, source).map_err(|error| {
            format!("template `{name}` ({}) does not compile{}", path.display(), describe_syntax(&error))
        })?;
        self.registry
            .render(name, &MessageContext::sample())
            .map_err(|error| format!("template `{name}` ({}): {}", path.display(), describe(&error)))?;
        Ok(())
    }
}

/// The message templates the loaded rules name, compiled once for rendering: strict mode (a
/// missing variable is an error, as `strategy check` enforces) and no HTML escaping (the text
/// goes into SMS, e-mail and robot scripts, and into JSON bodies that escape it themselves).
#[derive(Debug)]
pub struct MessageTemplates {
    registry: Handlebars<'static>,
}

/// A template that cannot be loaded or rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("template `{name}`: {message}")]
pub struct TemplateError {
    /// The template's name (`sms/reminder`).
    pub name: String,
    /// What is wrong.
    pub message: String,
}

impl MessageTemplates {
    /// Compiles every template a rule of `strategies` names, from `dir`.
    pub fn load(dir: &Path, strategies: &super::StrategySet) -> Result<MessageTemplates, TemplateError> {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        let mut names: Vec<&str> = strategies
            .strategies
            .iter()
            .flat_map(|strategy| strategy.rules.iter())
            .flat_map(|rule| [rule.treatment.template.as_deref(), rule.treatment.inbound_template.as_deref()])
            .flatten()
            .collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let error = |message: String| TemplateError { name: name.to_string(), message };
            let path = dir.join(format!("{name}.hbs"));
            let source =
                std::fs::read_to_string(&path).map_err(|e| error(format!("cannot read {}: {e}", path.display())))?;
            registry
                .register_template_string(name, source)
                .map_err(|e| error(format!("does not compile{}", describe_syntax(&e))))?;
        }
        Ok(MessageTemplates { registry })
    }

    /// Reads, compiles and renders the one template `name` of `dir` (the inbound script, read
    /// fresh at each call, as the strategies' files are).
    pub fn render_file(dir: &Path, name: &str, context: &MessageContext) -> Result<String, TemplateError> {
        let error = |message: String| TemplateError { name: name.to_string(), message };
        let path = dir.join(format!("{name}.hbs"));
        let source =
            std::fs::read_to_string(&path).map_err(|e| error(format!("cannot read {}: {e}", path.display())))?;
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        registry
            .register_template_string(name, source)
            .map_err(|e| error(format!("does not compile{}", describe_syntax(&e))))?;
        MessageTemplates { registry }.render(name, context)
    }

    /// Renders template `name` with `context`.
    pub fn render(&self, name: &str, context: &MessageContext) -> Result<String, TemplateError> {
        if !self.registry.has_template(name) {
            return Err(TemplateError { name: name.to_string(), message: "is not loaded".into() });
        }
        self.registry
            .render(name, context)
            .map_err(|error| TemplateError { name: name.to_string(), message: describe(&error) })
    }
}

/// A template syntax error on one line: where, and what (without the parser's grammar list).
fn describe_syntax(error: &handlebars::TemplateError) -> String {
    let at = error.pos().map(|(line, column)| format!(" at line {line}, column {column}")).unwrap_or_default();
    let reason = match error.reason() {
        handlebars::TemplateErrorReason::InvalidSyntax(_) => {
            "invalid handlebars syntax (look for an unclosed {{...}} or {{#block}} without its {{/block}})".to_string()
        }
        other => other.to_string(),
    };
    format!("{at}: {reason}")
}

fn describe(error: &handlebars::RenderError) -> String {
    match error.reason() {
        handlebars::RenderErrorReason::MissingVariable(Some(variable)) => format!(
            "uses `{variable}`, which the engine does not provide (it provides borrower.id, borrower.name, \
             account.id, account.product, account.currency, account.amount_due, account.balance, account.due_date, \
             account.dpd, task.stage, task.strategy, task.rule, task.channel, task.attempt, task.not_before, \
             task.not_after, lender.name)"
        ),
        _ => error.to_string(),
    }
}
