//! `arrears.toml` and its `ARREARS_<KEY>` environment overrides. Read once at start-up.

use crate::policy::PolicySettings;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One webhook endpoint (used by dispatch).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Where to POST.
    pub url: String,
    /// `whsec_...` signing secret, or a list of them while rotating (each one signs).
    pub secret: Secrets,
    /// Request timeout (`10s`, `2s 500ms`).
    #[serde(default = "Endpoint::default_timeout")]
    pub timeout: String,
    /// Requests in flight to this endpoint at most.
    #[serde(default = "Endpoint::default_concurrency")]
    pub concurrency: usize,
}

impl Endpoint {
    fn default_timeout() -> String {
        "10s".into()
    }
    fn default_concurrency() -> usize {
        16
    }
}

/// One secret, or several during a rotation.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Secrets {
    /// One secret.
    One(String),
    /// Several, every one signing each message.
    Many(Vec<String>),
}

impl Secrets {
    /// The secrets as a list.
    pub fn all(&self) -> Vec<&str> {
        match self {
            Secrets::One(secret) => vec![secret.as_str()],
            Secrets::Many(secrets) => secrets.iter().map(String::as_str).collect(),
        }
    }
}

/// Cron schedules, in the portfolio time zone.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// When the daily plan runs.
    #[serde(default = "Schedule::default_plan")]
    pub plan: String,
    /// When expired leases go back to their queues.
    #[serde(default = "Schedule::default_reap")]
    pub reap: String,
    /// When open promises are checked (kept or broken).
    #[serde(default = "Schedule::default_promises")]
    pub promises: String,
    /// When the contact model is learned again (`arrears learn`, 90 days back).
    #[serde(default = "Schedule::default_learn")]
    pub learn: String,
}

impl Schedule {
    fn default_plan() -> String {
        "0 0 6 * * *".into()
    }
    fn default_reap() -> String {
        "*/15 * * * * *".into()
    }
    fn default_promises() -> String {
        "0 */5 * * * *".into()
    }
    fn default_learn() -> String {
        "0 0 2 * * *".into()
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            plan: Self::default_plan(),
            reap: Self::default_reap(),
            promises: Self::default_promises(),
            learn: Self::default_learn(),
        }
    }
}

/// `[plan]`: how the daily plan is shared out.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlanSettings {
    /// Planners per process (`arrears plan` and each `serve` instance), each planning shards of
    /// the run; more than one makes the run sharded.
    #[serde(default = "PlanSettings::default_workers")]
    pub workers: usize,
    /// Whether `serve` instances share the daily plan: the run is sharded and every instance's
    /// planners claim its shards (PostgreSQL: instances on several machines; see docs/operations.md).
    #[serde(default)]
    pub shared: bool,
    /// Accounts per shard of a sharded run.
    #[serde(default = "PlanSettings::default_shard_accounts")]
    pub shard_accounts: u64,
}

impl PlanSettings {
    fn default_workers() -> usize {
        1
    }
    fn default_shard_accounts() -> u64 {
        crate::ops::SHARD_ACCOUNTS
    }

    /// `options` with these settings applied.
    pub fn apply(&self, options: crate::ops::PlanOptions) -> crate::ops::PlanOptions {
        crate::ops::PlanOptions {
            workers: self.workers.max(1),
            shared: self.shared,
            shard_accounts: self.shard_accounts.max(1),
            ..options
        }
    }
}

impl Default for PlanSettings {
    fn default() -> Self {
        PlanSettings { workers: Self::default_workers(), shared: false, shard_accounts: Self::default_shard_accounts() }
    }
}

/// The whole configuration; every key is optional.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// HTTP bind address.
    #[serde(default = "Config::default_bind")]
    pub bind: String,
    /// Portfolio time zone: schedules and reports.
    #[serde(default = "Config::default_timezone")]
    pub timezone: String,
    /// Default compliance profile for strategies that name none.
    #[serde(default = "Config::default_policy")]
    pub policy: String,
    /// The lender's name in messages.
    #[serde(default = "Config::default_lender")]
    pub lender_name: String,
    /// Profile settings left to the lender.
    #[serde(default)]
    pub policies: PolicySettings,
    /// Schedules.
    #[serde(default)]
    pub schedule: Schedule,
    /// How the daily plan is shared out among planners and instances.
    #[serde(default)]
    pub plan: PlanSettings,
    /// How long an agent's lease lasts without a heartbeat (`15m`).
    #[serde(default = "Config::default_lease_ttl")]
    pub lease_ttl: String,
    /// How many lease requests one `serve` instance works on at once; more wait their turn in
    /// the instance (default: its cores, at least 2). See [`Config::lease_slots`].
    #[serde(default)]
    pub lease_concurrency: Option<usize>,
    /// Webhook endpoints by channel (`robot`, `sms`, `email`, `human`).
    #[serde(default)]
    pub endpoints: BTreeMap<String, Endpoint>,
    /// The engine's URL as diallers reach it (`callback_url` in `task.ready`); default
    /// `http://{bind}`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// How many days after the attempt a reported promise may fall due at most (default 60).
    #[serde(default = "Config::default_promise_max_days")]
    pub promise_max_days: u32,
    /// Human queues' capacity by queue name (`[queues.<name>]`); a queue not listed is not
    /// limited.
    #[serde(default)]
    pub queues: BTreeMap<String, Queue>,
}

/// `[queues.<name>]`: who works a human queue and how fast.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Queue {
    /// The zone the shifts are written in (default: the portfolio's `timezone`).
    #[serde(default)]
    pub zone: Option<String>,
    /// Calls (talk and wrap-up) one agent completes in an hour.
    pub calls_per_agent_hour: f64,
    /// The shifts: `{ hours = "09:00-18:00", agents = 8 }`; overlapping shifts add up.
    pub shifts: Vec<Shift>,
}

/// One shift of a queue.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Shift {
    /// Local hours on the hour, `"09:00-18:00"` (may cross midnight).
    pub hours: String,
    /// Agents at work during them.
    pub agents: u32,
}

impl Queue {
    /// The capacity this table describes, or what is wrong with it (naming the field).
    pub fn capacity(&self, default_zone: &str) -> Result<crate::domain::QueueCapacity, String> {
        let zone = crate::domain::parse_timezone(self.zone.as_deref().unwrap_or(default_zone))
            .map_err(|message| format!("zone: {message}"))?;
        if !self.calls_per_agent_hour.is_finite() || self.calls_per_agent_hour <= 0.0 {
            return Err(format!("calls_per_agent_hour: {} must be a positive number", self.calls_per_agent_hour));
        }
        let mut agents_by_hour = [0u32; 24];
        for (index, shift) in self.shifts.iter().enumerate() {
            let window: crate::policy::TimeWindow =
                shift.hours.parse().map_err(|message| format!("shifts[{index}].hours: {message}"))?;
            for (start, end) in window.pieces() {
                if start % 60 != 0 || end % 60 != 0 {
                    return Err(format!(
                        "shifts[{index}].hours: `{}` must start and end on the hour (like \"09:00-18:00\")",
                        shift.hours
                    ));
                }
                for hour in start / 60..end / 60 {
                    agents_by_hour[hour as usize] += shift.agents;
                }
            }
        }
        Ok(crate::domain::QueueCapacity { zone, calls_per_agent_hour: self.calls_per_agent_hour, agents_by_hour })
    }
}

impl Config {
    /// Lease requests worked on at once: `lease_concurrency`, or the cores this process may use
    /// (at least 2). A lease is CPU work in this process and in the store; claims of one
    /// queue's head beyond that only skip each other's locked rows and stretch every lease's
    /// latency (`docs/PERFORMANCE.md`, leasing).
    pub fn lease_slots(&self) -> usize {
        self.lease_concurrency.filter(|slots| *slots > 0).unwrap_or_else(|| {
            std::thread::available_parallelism().map(std::num::NonZeroUsize::get).unwrap_or(1).max(2)
        })
    }

    /// `lease_ttl` as a duration (at least one second).
    pub fn lease_duration(&self) -> Result<chrono::Duration, String> {
        let parsed =
            humantime::parse_duration(&self.lease_ttl).map_err(|error| format!("`{}`: {error}", self.lease_ttl))?;
        let duration = chrono::Duration::from_std(parsed).map_err(|error| error.to_string())?;
        if duration < chrono::Duration::seconds(1) {
            return Err(format!("`{}` is shorter than a second", self.lease_ttl));
        }
        Ok(duration)
    }

    fn default_promise_max_days() -> u32 {
        crate::ops::work::PROMISE_MAX_DAYS
    }

    fn default_bind() -> String {
        "127.0.0.1:8080".into()
    }
    fn default_timezone() -> String {
        "UTC".into()
    }
    fn default_policy() -> String {
        "us-reg-f".into()
    }
    fn default_lease_ttl() -> String {
        "15m".into()
    }
    fn default_lender() -> String {
        "Example Finance".into()
    }

    /// Every `[queues.<name>]` as a capacity, or the first error naming its queue and field.
    pub fn queue_capacities(&self) -> Result<BTreeMap<String, crate::domain::QueueCapacity>, String> {
        self.queues
            .iter()
            .map(|(name, queue)| {
                queue
                    .capacity(&self.timezone)
                    .map(|capacity| (name.clone(), capacity))
                    .map_err(|m| format!("queues.{name}.{m}"))
            })
            .collect()
    }

    /// The base URL diallers post attempts to: `public_url` without a trailing `/`, or
    /// `http://{bind}`.
    pub fn public_base_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.bind),
        }
    }

    /// Reads `path` (when it exists; `arrears.toml` is optional) and applies `ARREARS_BIND`,
    /// `ARREARS_TIMEZONE`, `ARREARS_POLICY` and `ARREARS_LENDER_NAME` on top.
    pub fn load(path: &Path, explicit: bool) -> anyhow::Result<Config> {
        let mut config: Config = match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|error| {
                let position = error
                    .span()
                    .map(|span| {
                        let before = &text[..span.start.min(text.len())];
                        let line = before.matches('\n').count() + 1;
                        let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
                        format!("{line}:{column}: ")
                    })
                    .unwrap_or_default();
                anyhow::anyhow!("{}:{position}{}", path.display(), error.message())
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !explicit => toml::from_str("")?,
            Err(error) => anyhow::bail!("cannot read {}: {error}", path.display()),
        };
        let overrides: [(&str, &mut String); 4] = [
            ("ARREARS_BIND", &mut config.bind),
            ("ARREARS_TIMEZONE", &mut config.timezone),
            ("ARREARS_POLICY", &mut config.policy),
            ("ARREARS_LENDER_NAME", &mut config.lender_name),
        ];
        for (name, slot) in overrides {
            if let Ok(value) = std::env::var(name) {
                *slot = value;
            }
        }
        config.lease_duration().map_err(|message| anyhow::anyhow!("lease_ttl: {message}"))?;
        crate::domain::parse_timezone(&config.timezone).map_err(|message| anyhow::anyhow!("timezone: {message}"))?;
        crate::policy::Policy::builtin(&config.policy, &config.policies)
            .map_err(|error| anyhow::anyhow!("policy: {}", error.message))?;
        config.queue_capacities().map_err(|message| anyhow::anyhow!("{}: {message}", path.display()))?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    /// The example in docs/operations.md is a valid configuration, queues included.
    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("../docs/operations.md");
        let start = doc.find("```toml\nbind = ").expect("the example") + "```toml\n".len();
        let text = &doc[start..start + doc[start..].find("```").expect("its end")];
        let config: Config = toml::from_str(text).unwrap_or_else(|error| panic!("{error}"));
        let queues = config.queue_capacities().unwrap();
        assert_eq!(queues["m2"].calls_per_day(), (10 * 3 + 6 * 8) * 8);
        assert_eq!(config.promise_max_days, 60);
        assert_eq!(config.schedule.learn, "0 0 2 * * *");
        assert_eq!(config.lease_slots(), 2);
    }

    /// Unset (or 0), lease requests are worked on as many at once as the process has cores,
    /// and never fewer than two.
    #[test]
    fn lease_slots_default_to_the_cores() {
        let mut config: Config = toml::from_str("").unwrap();
        let cores = std::thread::available_parallelism().map(std::num::NonZeroUsize::get).unwrap();
        assert_eq!(config.lease_slots(), cores.max(2));
        config.lease_concurrency = Some(0);
        assert_eq!(config.lease_slots(), cores.max(2));
        config.lease_concurrency = Some(7);
        assert_eq!(config.lease_slots(), 7);
    }
}
