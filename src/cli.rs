//! The command line: each subcommand parses its arguments and calls one function in `ops`.

use crate::config::Config;
use crate::import::ImportKind;
use crate::ops::tokens::Role;
use crate::ops::{self, PlanFormat, Settings};
use clap::{Parser, Subcommand};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// arrears: post-loan collections orchestration, strategies as code.
#[derive(Debug, Parser)]
#[command(name = "arrears", version, about)]
pub struct Cli {
    /// Database URL: sqlite://FILE?mode=rwc or postgres://...
    #[arg(long, global = true, env = "DATABASE_URL", default_value = "sqlite://arrears.db?mode=rwc")]
    pub database_url: String,
    /// Directory of strategy files.
    #[arg(long, global = true, default_value = "strategies")]
    pub strategies: PathBuf,
    /// Directory of templates.
    #[arg(long, global = true, default_value = "templates")]
    pub templates: PathBuf,
    /// Configuration file (optional unless given).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the database schema.
    Migrate,
    /// Import a CSV file: accounts, payments, attempts, promises or risk events. All rows or none.
    Import {
        /// accounts | payments | attempts | promises
        kind: ImportKind,
        /// The CSV file.
        file: PathBuf,
    },
    /// Check strategy files or print their JSON Schema.
    Strategy {
        #[command(subcommand)]
        command: StrategyCommand,
    },
    /// Plan each account's local day: tasks with windows, or a skip with its reason.
    Plan {
        /// Print the plan without saving it.
        #[arg(long)]
        dry_run: bool,
        /// Plan as of this instant (RFC 3339) instead of now.
        #[arg(long)]
        as_of: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// text (a summary) or jsonl (one JSON object per task or skip).
        #[arg(long, value_enum, default_value = "text")]
        format: PlanFormat,
        /// Planners in this process, each claiming shards of the run (default: `[plan] workers`,
        /// 1). More than one cuts the run into shards.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
        workers: Option<u16>,
    },
    /// Fit the probability of a right-party contact (segment, local hour, borrower) and store it.
    Learn {
        /// Learn as of this instant (RFC 3339) instead of now: the window ends here.
        #[arg(long)]
        as_of: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// How many days of attempts before --as-of to learn from.
        #[arg(long, default_value_t = ops::learn::DEFAULT_LOOKBACK_DAYS)]
        lookback_days: u32,
    },
    /// Why is this account (not) contacted today: stage, rules tried, caps, the decision, its tasks.
    Explain {
        /// The account id.
        account_id: String,
        /// Explain as of this instant (RFC 3339) instead of now.
        #[arg(long)]
        as_of: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The webhook outbox: list deliveries, replay dead letters, re-enable an endpoint.
    Deliveries {
        #[command(subcommand)]
        command: DeliveriesCommand,
    },
    /// Set or lift an engine-owned hard-stop flag on an account (audited; a reason is required).
    Flags {
        #[command(subcommand)]
        command: FlagsCommand,
    },
    /// KPIs of a period by stage, strategy, rule or experiment arm, and the stage roll rates.
    Report {
        /// Start: an RFC 3339 instant, or a YYYY-MM-DD date in the portfolio time zone (its
        /// start). Default: 7 days before --to.
        #[arg(long)]
        from: Option<String>,
        /// End (excluded): an RFC 3339 instant, or a YYYY-MM-DD date in the portfolio time zone
        /// (included: the period ends at the end of that day). Default: now.
        #[arg(long)]
        to: Option<String>,
        /// Group the KPIs by stage, strategy, rule or arm.
        #[arg(long, value_enum, default_value = "stage")]
        by: crate::report::GroupBy,
        /// A co-lending funder's share: only the accounts it holds a share of, every amount cut
        /// to its share (`(none)`: the accounts no funder holds a share of).
        #[arg(long)]
        funder: Option<String>,
        /// text (tables for people), json, or csv (one figure per line: a funder's daily file).
        #[arg(long, value_enum, default_value = "text")]
        format: ops::report::KpiFormat,
        /// Instead of the KPIs: per reaction to risk events, its events, cases, SLA met,
        /// dispositions, precision and lead time to the next missed payment (text or json).
        #[arg(long, conflicts_with_all = ["by", "funder"])]
        reactions: bool,
    },
    /// Read the champion/challenger experiments: each arm's metrics at the horizon with 95 %
    /// intervals, the always-valid comparison with the champion, the sample-ratio check, and
    /// whether the challenger won, in plain words.
    Experiments {
        /// One experiment (default: all).
        name: Option<String>,
        /// text (for people) or json (as `GET /v1/experiments` answers).
        #[arg(long, value_enum, default_value = "text")]
        format: ops::report::ReportFormat,
    },
    /// Serve the HTTP API (migrates first; SIGHUP reloads the strategies; SIGTERM/Ctrl-C stop).
    Serve,
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Run the engine over simulated days ending now, on a throw-away store, against a simulated
    /// call center; with --vs, two strategy sets side by side on the same book and draws.
    Simulate {
        /// Simulated days (they end now).
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// A synthetic book of this many accounts (the demo's; default 10000).
        #[arg(long, conflicts_with = "book")]
        accounts: Option<usize>,
        /// An accounts CSV to simulate instead of a synthetic book.
        #[arg(long)]
        book: Option<PathBuf>,
        /// Seed of the simulated borrowers (and of a synthetic book).
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Compare --strategies (A) with the strategies of this directory (B).
        #[arg(long, value_name = "DIR2")]
        vs: Option<PathBuf>,
        /// Robot calls the simulated dialler places per hour.
        #[arg(long, default_value_t = ops::simulate::DEFAULT_ROBOT_CALLS_PER_HOUR)]
        robot_calls_per_hour: u32,
        /// Arm B (the only arm without --vs) plans with the world's true contact curves instead
        /// of the nightly learned model: the upper bound of learned timing. Only rules with
        /// timing = "learned" read the model, so give that arm such strategies (e.g.
        /// --vs strategies-timing/).
        #[arg(long)]
        oracle: bool,
        /// text (tables) or json.
        #[arg(long, value_enum, default_value = "text")]
        format: ops::simulate::SimFormat,
    },
    /// Rebuild arrears.db: a synthetic portfolio and the simulated days that end now, run by the
    /// real engine; then today's plan and the KPIs.
    Demo {
        /// Number of accounts.
        #[arg(long, default_value_t = 10_000)]
        accounts: usize,
        /// Random seed (the same seed gives the same portfolio).
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Simulated days, ending now (at least 1). The default 8 gives the last 7 days (the
        /// KPIs' and the dashboard's default period) a day of history before them, so their
        /// roll matrix has states at its start.
        #[arg(long, default_value_t = 8)]
        days: u32,
    },
}

/// `arrears deliveries ...`.
#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// List deliveries in a state (default: the dead letters).
    List {
        /// pending | delivered | dead | disabled | void
        #[arg(long, default_value = "dead")]
        state: String,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Put dead letters back in the queue (all of them without ids), same webhook-id.
    Replay {
        /// Delivery ids (from `deliveries list`).
        ids: Vec<i64>,
    },
    /// Re-enable an endpoint that answered 410 Gone and requeue what waited for it.
    EnableEndpoint {
        /// The endpoint's name in arrears.toml (robot, sms, email, human).
        name: String,
    },
}

/// `arrears flags ...`.
#[derive(Debug, Subcommand)]
pub enum FlagsCommand {
    /// Set a flag as the engine's (an operator's decision; imports never remove it).
    Set {
        /// The account id.
        account_id: String,
        /// cease_contact | deceased | bankruptcy | attorney | breathing_space | dispute | do_not_call
        flag: String,
        /// Why (kept in the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// Lift a flag the engine set (an outcome or an operator). A flag the servicing system set is
    /// lifted only by its next import.
    Lift {
        /// The account id.
        account_id: String,
        /// The flag to lift.
        flag: String,
        /// Why (kept in the audit trail).
        #[arg(long)]
        reason: String,
    },
}

/// `arrears strategy ...`.
#[derive(Debug, Subcommand)]
pub enum StrategyCommand {
    /// Check every strategy file of a directory (default: --strategies).
    Check {
        /// Directory to check.
        dir: Option<PathBuf>,
    },
    /// Print the JSON Schema of strategy files.
    Schema,
}

/// `arrears token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (only the token, on stdout; it is never shown again).
    Create {
        /// What the token may do.
        #[arg(long, value_enum)]
        role: Role,
        /// The agent id (required for role agent, refused for the others).
        #[arg(long)]
        agent: Option<String>,
        /// The funder whose share the token reads (required for role funder, refused for the
        /// others).
        #[arg(long)]
        funder: Option<String>,
        /// A note for operators (who or what uses the token).
        #[arg(long)]
        label: Option<String>,
    },
}

/// Runs the command line; prints errors and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ARREARS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sqlx=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config_path = cli.config.clone().unwrap_or_else(|| PathBuf::from("arrears.toml"));
    let config = Config::load(&config_path, cli.config.is_some())?;
    let settings = Settings {
        database_url: cli.database_url,
        strategies_dir: cli.strategies,
        templates_dir: cli.templates,
        config,
    };
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Migrate => ops::migrate(&settings).await?,
        Command::Import { kind, file } => {
            let report = ops::import(&settings, kind, &file).await?;
            eprintln!("{}: {report}", file.display());
        }
        Command::Strategy { command: StrategyCommand::Schema } => ops::print_schema(&mut out)?,
        Command::Strategy { command: StrategyCommand::Check { dir } } => {
            let dir = dir.unwrap_or_else(|| settings.strategies_dir.clone());
            if !ops::check_strategies(&settings, &dir, &mut out)? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Plan { dry_run, as_of, format, workers } => {
            let now = as_of.map(|at| at.to_utc()).unwrap_or_else(chrono::Utc::now);
            let workers = workers.map(usize::from);
            ops::plan_command(&settings, now, dry_run, workers, format, &mut out).await?;
        }
        Command::Learn { as_of, lookback_days } => {
            let now = as_of.map(|at| at.to_utc()).unwrap_or_else(chrono::Utc::now);
            ops::learn::learn_command(&settings, now, lookback_days, &mut out).await?;
        }
        Command::Explain { account_id, as_of, json } => {
            let now = as_of.map(|at| at.to_utc()).unwrap_or_else(chrono::Utc::now);
            if !ops::explain_command(&settings, &account_id, now, json, &mut out).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Deliveries { command } => match command {
            DeliveriesCommand::List { state, limit } => {
                ops::deliveries::list_command(&settings, &state, limit, &mut out).await?
            }
            DeliveriesCommand::Replay { ids } => {
                let report = ops::deliveries::replay_command(&settings, ids, chrono::Utc::now()).await?;
                writeln!(out, "{} dead letter(s) requeued", report.requeued)?;
            }
            DeliveriesCommand::EnableEndpoint { name } => {
                let requeued = ops::deliveries::enable_endpoint_command(&settings, &name, chrono::Utc::now()).await?;
                writeln!(out, "endpoint `{name}` enabled; {requeued} delivery(ies) requeued")?;
            }
        },
        Command::Flags { command } => {
            let (action, account_id, flag, reason) = match command {
                FlagsCommand::Set { account_id, flag, reason } => {
                    (ops::flags::FlagAction::Set, account_id, flag, reason)
                }
                FlagsCommand::Lift { account_id, flag, reason } => {
                    (ops::flags::FlagAction::Lift, account_id, flag, reason)
                }
            };
            let now = chrono::Utc::now();
            ops::flags::flag_command(&settings, action, &account_id, &flag, &reason, &operator(), now, &mut out)
                .await?;
        }
        Command::Report { from, to, reactions: true, format, .. } => {
            let json = matches!(format, ops::report::KpiFormat::Json);
            if matches!(format, ops::report::KpiFormat::Csv) {
                anyhow::bail!("--reactions is written as text or json, not csv");
            }
            ops::report::reactions_command(
                &settings,
                from.as_deref(),
                to.as_deref(),
                json,
                chrono::Utc::now(),
                &mut out,
            )
            .await?;
        }
        Command::Report { from, to, by, funder, format, reactions: false } => {
            ops::report::report_command(
                &settings,
                from.as_deref(),
                to.as_deref(),
                by,
                funder.as_deref(),
                format,
                chrono::Utc::now(),
                &mut out,
            )
            .await?;
        }
        Command::Experiments { name, format } => {
            ops::experiments::experiments_command(&settings, name.as_deref(), format, chrono::Utc::now(), &mut out)
                .await?;
        }
        Command::Serve => crate::serve::serve(settings).await?,
        Command::Token { command: TokenCommand::Create { role, agent, funder, label } } => {
            let token =
                ops::tokens::create_command(&settings, role, agent.as_deref(), funder.as_deref(), label.as_deref())
                    .await?;
            writeln!(out, "{token}")?;
        }
        Command::Simulate { days, accounts, book, seed, vs, robot_calls_per_hour, oracle, format } => {
            let book = match book {
                Some(file) => ops::simulate::Book::File(file),
                None => ops::simulate::Book::Generated(accounts.unwrap_or(10_000)),
            };
            let options = ops::simulate::SimOptions {
                days,
                book,
                seed,
                end: chrono::Utc::now(),
                robot_calls_per_hour,
                store: None,
            };
            let args = ops::simulate::SimulateArgs { options, vs, oracle, format };
            ops::simulate::simulate_command(&settings, args, &mut out).await?;
        }
        Command::Demo { accounts, seed, days } => {
            crate::demo::run(&settings, accounts, seed, days, &mut out).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The audit actor of an operator's command: `cli:<login name>` (`cli` when the environment
/// names no user).
fn operator() -> String {
    match std::env::var("USER").or_else(|_| std::env::var("LOGNAME")) {
        Ok(user) if !user.trim().is_empty() => format!("cli:{}", user.trim()),
        _ => "cli".to_string(),
    }
}

/// A reader that stopped reading (`arrears plan --format jsonl | head`) is not an error.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let kind = cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            .or_else(|| cause.downcast_ref::<serde_json::Error>().and_then(serde_json::Error::io_error_kind));
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}
