//! `arrears strategy check`: every kind of mistake a collections manager can make in a strategy
//! file is reported at its `file:line:col` with a message that says what is wrong, and the shipped
//! `strategies/` + `templates/` load cleanly.

use arrears::policy::PolicySettings;
use arrears::strategy::{LoadOptions, SourceFile, StrategyError, StrategyErrors, StrategySet, load_sources};
use std::path::Path;

/// A valid file head: 5 lines, so the first line after it is line 6.
const HEADER: &str = r#"name = "t"
policy = "cn-gbt-45251"
[stages]
pre-due = { dpd = [-3, -1] }
M1 = { dpd = [1, 30] }
"#;

/// The templates every test can name.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "sms/reminder",
        "Hello {{borrower.name}}, {{account.amount_due}} {{account.currency}} is due on {{account.due_date}}.",
    ),
    ("robot/early", "This is {{lender.name}} calling for {{borrower.name}}."),
];

fn write_templates(extra: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, text) in TEMPLATES.iter().chain(extra) {
        let path = dir.path().join(format!("{name}.hbs"));
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("template directory");
        std::fs::write(&path, text).expect("template file");
    }
    dir
}

fn load(files: &[(&str, &str)], templates_dir: &Path) -> Result<StrategySet, StrategyErrors> {
    let settings = PolicySettings::default();
    let options = LoadOptions {
        templates_dir,
        default_policy: "cn-gbt-45251",
        settings: &settings,
        capacities: &Default::default(),
    };
    let sources: Vec<SourceFile> =
        files.iter().map(|(name, text)| SourceFile { name: name.to_string(), text: text.to_string() }).collect();
    load_sources(&sources, &options)
}

/// The errors of loading `files` with the standard templates plus `extra_templates`.
fn errors_with(files: &[(&str, &str)], extra_templates: &[(&str, &str)]) -> Vec<StrategyError> {
    let dir = write_templates(extra_templates);
    match load(files, dir.path()) {
        Ok(set) => panic!("expected errors, but {} strategies loaded", set.strategies.len()),
        Err(errors) => errors.0,
    }
}

/// The one error of a single file `s.toml`.
fn only_error(text: &str) -> StrategyError {
    only_error_with(text, &[])
}

fn only_error_with(text: &str, extra_templates: &[(&str, &str)]) -> StrategyError {
    let errors = errors_with(&[("s.toml", text)], extra_templates);
    assert_eq!(errors.len(), 1, "expected exactly one error, got:\n{}", StrategyErrors(errors.clone()));
    errors.into_iter().next().expect("one error")
}

fn assert_at(error: &StrategyError, at: &str, fragment: &str) {
    assert_eq!(format!("{}:{}:{}", error.file, error.line, error.column), at, "wrong position for: {error}");
    assert!(error.message.contains(fragment), "`{}` does not mention `{fragment}`", error.message);
}

/// A complete rule (lines 6-10 after [`HEADER`]) with one extra line at line 11.
fn sms_rule_with(extra: &str) -> String {
    format!("{HEADER}[[rule]]\nname = \"r\"\nstage = \"M1\"\nchannel = \"sms\"\ntemplate = \"sms/reminder\"\n{extra}\n")
}

#[test]
fn a_valid_file_loads() {
    let dir = write_templates(&[]);
    let set = load(&[("s.toml", &sms_rule_with("windows = [\"09:00-12:00\"]"))], dir.path()).expect("valid");
    assert_eq!(set.strategies.len(), 1);
    assert_eq!(set.strategies[0].rules.len(), 1);
}

#[test]
fn toml_syntax_error() {
    let error = only_error("name = \"t\"\npolicy = \n[stages]\n");
    assert_at(&error, "s.toml:2:10", "string values must be quoted");
}

#[test]
fn unknown_top_level_key() {
    let error = only_error(&format!("colour = \"red\"\n{HEADER}"));
    assert_at(&error, "s.toml:1:1", "unknown field `colour`, expected one of `name`, `description`");
}

#[test]
fn unknown_rule_key_and_every_broken_rule_is_reported() {
    let text = format!(
        "{HEADER}[[rule]]\nname = \"a\"\nchanel = \"sms\"\n\n[[rule]]\nname = \"b\"\nchannel = \"sms\"\ntemplat = \"sms/reminder\"\n"
    );
    let errors = errors_with(&[("s.toml", &text)], &[]);
    assert_eq!(errors.len(), 2, "{}", StrategyErrors(errors.clone()));
    assert_at(&errors[0], "s.toml:8:1", "rule `a`: unknown field `chanel`, expected one of `name`, `stage`");
    assert_at(&errors[1], "s.toml:13:1", "rule `b`: unknown field `templat`");
}

#[test]
fn wrong_type() {
    let error = only_error(&sms_rule_with("attempts_per_day = \"three\""));
    assert_at(&error, "s.toml:11:20", "rule `r`: attempts_per_day: expected a whole number, found string \"three\"");
}

#[test]
fn overlapping_stages() {
    let text = "name = \"t\"\n[stages]\nM1 = { dpd = [1, 30] }\nM2 = { dpd = [30, 60] }\n";
    let error = only_error(text);
    assert_at(&error, "s.toml:4:14", "stage `M2` [30, 60] overlaps stage `M1` [1, 30]");
}

#[test]
fn reversed_dpd_range() {
    let error = only_error("name = \"t\"\n[stages]\nM1 = { dpd = [30, 1] }\n");
    assert_at(&error, "s.toml:3:14", "stage `M1`: dpd range [30, 1] is reversed");
}

#[test]
fn rule_naming_an_unknown_stage() {
    let text = format!("{HEADER}[[rule]]\nname = \"r\"\nstage = [\"M1\", \"M9\"]\nchannel = \"human\"\n");
    let error = only_error(&text);
    assert_at(&error, "s.toml:8:9", "rule `r`: unknown stage `M9`");
}

#[test]
fn unknown_channel() {
    let text = format!("{HEADER}[[rule]]\nname = \"r\"\nchannel = \"fax\"\n");
    let error = only_error(&text);
    assert_at(&error, "s.toml:8:11", "rule `r`: unknown channel `fax`");
}

#[test]
fn window_outside_the_policy_hours_can_never_be_used() {
    let error = only_error(&sms_rule_with("windows = [\"22:30-23:30\"]"));
    assert_at(&error, "s.toml:11:12", "lies outside cn-gbt-45251's contact hours 08:00-22:00");
}

#[test]
fn window_outside_hours_tightened_by_limits() {
    let text = "name = \"t\"\npolicy = \"us-reg-f\"\n[limits]\nhours = \"09:00-20:00\"\n[stages]\nM1 = { dpd = [1, 30] }\n\
                [[rule]]\nname = \"r\"\nchannel = \"sms\"\ntemplate = \"sms/reminder\"\nwindows = [\"08:00-09:00\"]\n";
    let error = only_error(text);
    assert_at(&error, "s.toml:11:12", "outside us-reg-f's contact hours 09:00-20:00");
}

#[test]
fn malformed_window() {
    let error = only_error(&sms_rule_with("windows = [\"09:00-12:00\", \"9-12\"]"));
    assert_at(&error, "s.toml:11:27", "window `9-12`");
}

#[test]
fn overlapping_windows() {
    let error = only_error(&sms_rule_with("windows = [\"09:00-12:00\", \"11:00-13:00\"]"));
    assert_at(&error, "s.toml:11:11", "windows 09:00-12:00 and 11:00-13:00 overlap");
}

#[test]
fn unreadable_min_gap() {
    let error = only_error(&sms_rule_with("min_gap = \"two hours\""));
    assert_at(&error, "s.toml:11:11", "min_gap `two hours` is not a duration like \"2h\" or \"90m\"");
}

#[test]
fn attempts_that_cannot_fit_with_min_gap() {
    let error = only_error(&sms_rule_with("windows = [\"09:00-10:00\"]\nattempts_per_day = 3\nmin_gap = \"1h\""));
    assert_at(&error, "s.toml:11:11", "3 attempts 60 minutes apart do not fit in 60 minutes");
}

#[test]
fn attempts_that_cannot_fit_in_the_policy_hours() {
    // No windows: the policy's 14 hours (08:00-22:00) are the window.
    let error = only_error(&sms_rule_with("attempts_per_day = 8\nmin_gap = \"2h\""));
    assert_at(&error, "s.toml:12:11", "8 attempts 120 minutes apart do not fit in 840 minutes");
}

#[test]
fn missing_template_file() {
    let text = format!("{HEADER}[[rule]]\nname = \"r\"\nchannel = \"sms\"\ntemplate = \"sms/nowhere\"\n");
    let error = only_error(&text);
    assert_at(&error, "s.toml:9:12", "template `sms/nowhere`: cannot read");
}

#[test]
fn template_that_does_not_compile() {
    let text = format!("{HEADER}[[rule]]\nname = \"r\"\nchannel = \"sms\"\ntemplate = \"sms/broken\"\n");
    let error = only_error_with(&text, &[("sms/broken", "Hello {{#if borrower.name}}unclosed")]);
    assert_at(&error, "s.toml:9:12", "template `sms/broken`");
    assert!(error.message.contains("does not compile"), "{error}");
}

#[test]
fn template_using_a_variable_the_engine_does_not_provide() {
    let text = format!("{HEADER}[[rule]]\nname = \"r\"\nchannel = \"sms\"\ntemplate = \"sms/iban\"\n");
    let error = only_error_with(&text, &[("sms/iban", "Pay to {{account.iban}} please")]);
    assert_at(&error, "s.toml:9:12", "uses `account.iban`, which the engine does not provide");
}

#[test]
fn sms_rule_without_template() {
    let text = format!("{HEADER}[[rule]]\nname = \"r\"\nchannel = \"sms\"\n");
    let error = only_error(&text);
    assert_at(&error, "s.toml:6:1", "rule `r`: sms rules need a template, like template = \"sms/reminder\"");
}

#[test]
fn unknown_condition_key() {
    let error = only_error(&sms_rule_with("when = { colour = \"red\" }"));
    assert_at(&error, "s.toml:11:10", "rule `r`: unknown condition `colour`");
}

#[test]
fn money_condition_written_as_a_float() {
    let error = only_error(&sms_rule_with("when = { balance = { min = 1.5 } }"));
    assert_at(&error, "s.toml:11:20", "when.balance: min: write amounts as text");
}

#[test]
fn tags_condition_that_is_not_a_list() {
    let error = only_error(&sms_rule_with("when = { tags_any = \"vip\" }"));
    assert_at(&error, "s.toml:11:21", "when.tags_any: expected a list of tags");
}

#[test]
fn unknown_profile() {
    let text = "name = \"t\"\npolicy = \"eu-gdpr\"\n[stages]\nM1 = { dpd = [1, 30] }\n";
    let error = only_error(text);
    assert_at(&error, "s.toml:2:10", "unknown compliance profile `eu-gdpr`");
}

#[test]
fn limits_that_would_loosen_the_profile() {
    let text =
        "name = \"t\"\npolicy = \"us-reg-f\"\n\n[limits]\ncalls_per_7_days = 8\n[stages]\nM1 = { dpd = [1, 30] }\n";
    let error = only_error(text);
    assert_at(&error, "s.toml:4:1", "limits.calls_per_7_days: 8 would loosen us-reg-f's cap of 7");
}

#[test]
fn experiment_naming_an_unknown_rule() {
    let text = format!(
        "{}\n[[experiment]]\nname = \"x\"\nstage = \"M1\"\narms = [{{ name = \"a\", weight = 1 }}, {{ name = \"b\", weight = 1, rules = [\"ghost\"] }}]\n",
        sms_rule_with("")
    );
    let error = only_error(&text);
    assert_at(&error, "s.toml:16:72", "experiment `x`: unknown rule `ghost`");
}

#[test]
fn two_strategies_claiming_the_same_product() {
    let first = "name = \"a\"\napplies_to = { products = [\"cash\"] }\n[stages]\nM1 = { dpd = [1, 30] }\n";
    let second = "name = \"b\"\napplies_to = { products = [\"card\", \"cash\"] }\n[stages]\nM1 = { dpd = [1, 30] }\n";
    let errors = errors_with(&[("a.toml", first), ("b.toml", second)], &[]);
    assert_eq!(errors.len(), 1, "{}", StrategyErrors(errors.clone()));
    assert_at(&errors[0], "b.toml:2:36", "product `cash` is already handled by strategy `a`");
}

#[test]
fn duplicate_rule_name() {
    let text = format!("{}\n[[rule]]\nname = \"r\"\nchannel = \"human\"\n", sms_rule_with(""));
    let error = only_error(&text);
    assert_at(&error, "s.toml:14:8", "rule `r` is defined twice");
}

#[test]
fn rule_below_a_catch_all_rule_can_never_match() {
    let text = format!(
        "{}[[rule]]\nname = \"vip\"\nstage = \"M1\"\nwhen = {{ tags_any = [\"vip\"] }}\nchannel = \"human\"\n",
        sms_rule_with("")
    );
    let error = only_error(&text);
    assert_at(
        &error,
        "s.toml:13:8",
        "rule `vip` can never match: rule `r` above it has no `when` conditions and takes every account in stage M1",
    );
}

#[test]
fn errors_display_as_file_line_col_lines() {
    let text = format!(
        "{HEADER}[[rule]]\nname = \"r\"\nstage = \"M9\"\nchannel = \"sms\"\ntemplate = \"sms/reminder\"\nwindows = [\"9-12\"]\n"
    );
    let errors = StrategyErrors(errors_with(&[("strategies/s.toml", &text)], &[]));
    assert_eq!(
        errors.to_string(),
        "strategies/s.toml:8:9: rule `r`: unknown stage `M9`\n\
         strategies/s.toml:11:12: rule `r`: window `9-12`: `9` is not a time HH:MM (00:00 to 23:59)"
    );
}

#[test]
fn shipped_strategies_and_templates_load_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let settings = PolicySettings::default();
    let options = LoadOptions {
        templates_dir: &root.join("templates"),
        default_policy: "cn-gbt-45251",
        settings: &settings,
        capacities: &Default::default(),
    };
    let set = match arrears::strategy::load_dir(&root.join("strategies"), &options) {
        Ok(set) => set,
        Err(errors) => panic!("the shipped strategies do not load:\n{errors}"),
    };
    let names: Vec<&str> = set.strategies.iter().map(|s| &*s.name).collect();
    assert_eq!(names, ["consumer-cash", "us-cards"]);
    assert_eq!(set.strategy_for("cash").map(|s| &*s.name), Some("consumer-cash"));
    assert_eq!(set.strategy_for("installment").map(|s| &*s.name), Some("consumer-cash"));
    assert_eq!(set.strategy_for("card").map(|s| &*s.name), Some("us-cards"));
    assert!(set.strategy_for("mortgage").is_none(), "no shipped strategy takes every other product");
    let cards = set.strategy_for("card").expect("us-cards");
    assert_eq!(cards.policy.hours.to_string(), "09:00-20:00");
    assert_eq!(cards.policy.calls_per_7_days, Some(6));
    let cash = set.strategy_for("cash").expect("consumer-cash");
    assert_eq!(cash.experiments.len(), 1);
    assert_eq!(cash.policy.name, "cn-gbt-45251");
}

#[test]
fn json_schema_describes_rules() {
    let schema = arrears::strategy::json_schema();
    assert!(schema.is_object(), "{schema}");
    let text = schema.to_string();
    for key in [
        "\"rule\"",
        "\"channel\"",
        "\"template\"",
        "\"windows\"",
        "\"attempts_per_day\"",
        "\"min_gap\"",
        "\"queue\"",
        "\"calls_per_day\"",
        "\"priority\"",
        "\"escalate\"",
        "\"when\"",
        "\"tags_any\"",
        "\"days_since_rpc\"",
        "\"experiment\"",
        "\"limits\"",
    ] {
        assert!(text.contains(key), "the schema does not mention {key}");
    }
}
