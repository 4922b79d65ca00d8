//! The built-in compliance profiles and how a strategy or the configuration tightens them.

use super::TimeWindow;
use serde::{Deserialize, Serialize};

/// Settings the profiles leave to the lender (`[policy]` in `arrears.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// `uk-fca`: calls per account per day.
    #[serde(default = "PolicySettings::default_uk_calls")]
    pub uk_fca_calls_per_day: u32,
}

impl PolicySettings {
    fn default_uk_calls() -> u32 {
        3
    }
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings { uk_fca_calls_per_day: Self::default_uk_calls() }
    }
}

/// A compliance profile in force: contact hours, caps, cool-downs and consents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    /// Profile name (`us-reg-f`, ...).
    pub name: String,
    /// Contact hours, borrower local time, every channel.
    pub hours: TimeWindow,
    /// Calls per account in any 7 consecutive local days, across all numbers.
    pub calls_per_7_days: Option<u32>,
    /// Days without calls after a conversation, the conversation's day counting as day 1.
    pub cooldown_days: Option<u32>,
    /// Connected right-party calls per borrower per local day, across all accounts.
    pub rpc_per_day: Option<u32>,
    /// Unanswered call attempts per phone number per local day.
    pub unanswered_per_number_per_day: Option<u32>,
    /// Calls per account per local day.
    pub calls_per_day: Option<u32>,
    /// Robot calls need the borrower's `consent_robot`.
    pub robot_needs_consent: bool,
    /// Only the borrower's own numbers (never one marked `wrong_number`).
    pub own_numbers_only: bool,
}

/// The names of the built-in profiles.
pub const PROFILES: &[&str] = &["us-reg-f", "us-ma", "cn-gbt-45251", "uk-fca"];

/// What a strategy file (`[limits]`) or the configuration may change in a profile: only to tighten.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Narrower contact hours, "HH:MM-HH:MM" inside the profile's.
    pub hours: Option<String>,
    /// A lower cap on calls per account in 7 days.
    pub calls_per_7_days: Option<u32>,
    /// A longer cool-down after a conversation, in days.
    pub cooldown_days: Option<u32>,
    /// A lower cap on connected calls per borrower per day.
    pub rpc_per_day: Option<u32>,
    /// A lower cap on unanswered attempts per number per day.
    pub unanswered_per_number_per_day: Option<u32>,
    /// A lower cap on calls per account per day.
    pub calls_per_day: Option<u32>,
    /// Require robot consent even where the profile does not.
    pub robot_needs_consent: Option<bool>,
}

/// A profile name that does not exist, or a limit that would loosen its profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ProfileError {
    /// The offending key (`policy`, `limits.hours`, ...).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Policy {
    /// A built-in profile by name.
    pub fn builtin(name: &str, settings: &PolicySettings) -> Result<Policy, ProfileError> {
        let us = |name: &str, calls: u32| Policy {
            name: name.to_string(),
            hours: TimeWindow::new(8 * 60, 21 * 60),
            calls_per_7_days: Some(calls),
            cooldown_days: Some(7),
            rpc_per_day: None,
            unanswered_per_number_per_day: None,
            calls_per_day: None,
            robot_needs_consent: true,
            own_numbers_only: false,
        };
        match name {
            "us-reg-f" => Ok(us(name, 7)),
            "us-ma" => Ok(us(name, 2)),
            "cn-gbt-45251" => Ok(Policy {
                name: name.to_string(),
                hours: TimeWindow::new(8 * 60, 22 * 60),
                calls_per_7_days: None,
                cooldown_days: None,
                rpc_per_day: Some(3),
                unanswered_per_number_per_day: Some(6),
                calls_per_day: None,
                robot_needs_consent: false,
                own_numbers_only: true,
            }),
            "uk-fca" => Ok(Policy {
                name: name.to_string(),
                hours: TimeWindow::new(8 * 60, 21 * 60),
                calls_per_7_days: None,
                cooldown_days: None,
                rpc_per_day: None,
                unanswered_per_number_per_day: None,
                calls_per_day: Some(settings.uk_fca_calls_per_day),
                robot_needs_consent: false,
                own_numbers_only: false,
            }),
            other => Err(ProfileError {
                field: "policy".into(),
                message: format!("unknown compliance profile `{other}` (expected one of: {})", PROFILES.join(", ")),
            }),
        }
    }

    /// This policy with `limits` applied. Every limit must be at least as strict as the
    /// profile's; each one that is not is an error, so a file can never loosen the law.
    pub fn tighten(&self, limits: &Limits) -> Result<Policy, Vec<ProfileError>> {
        let mut policy = self.clone();
        let mut errors = Vec::new();
        if let Some(text) = &limits.hours {
            match text.parse::<TimeWindow>() {
                Err(message) => errors.push(ProfileError { field: "limits.hours".into(), message }),
                Ok(hours)
                    if hours.crosses_midnight() || hours.start < self.hours.start || hours.end > self.hours.end =>
                {
                    errors.push(ProfileError {
                        field: "limits.hours".into(),
                        message: format!("{hours} is not inside {}'s contact hours {}", self.name, self.hours),
                    })
                }
                Ok(hours) => policy.hours = hours,
            }
        }
        let mut cap = |field: &str, current: &mut Option<u32>, wanted: Option<u32>| {
            if let Some(wanted) = wanted {
                match *current {
                    Some(limit) if wanted > limit => errors.push(ProfileError {
                        field: format!("limits.{field}"),
                        message: format!("{wanted} would loosen {}'s cap of {limit}", self.name),
                    }),
                    _ => *current = Some(wanted),
                }
            }
        };
        cap("calls_per_7_days", &mut policy.calls_per_7_days, limits.calls_per_7_days);
        cap("rpc_per_day", &mut policy.rpc_per_day, limits.rpc_per_day);
        cap(
            "unanswered_per_number_per_day",
            &mut policy.unanswered_per_number_per_day,
            limits.unanswered_per_number_per_day,
        );
        cap("calls_per_day", &mut policy.calls_per_day, limits.calls_per_day);
        if let Some(days) = limits.cooldown_days {
            match self.cooldown_days {
                Some(current) if days < current => errors.push(ProfileError {
                    field: "limits.cooldown_days".into(),
                    message: format!("{days} would shorten {}'s cool-down of {current} days", self.name),
                }),
                _ => policy.cooldown_days = Some(days),
            }
        }
        match limits.robot_needs_consent {
            Some(false) if self.robot_needs_consent => errors.push(ProfileError {
                field: "limits.robot_needs_consent".into(),
                message: format!("{} requires robot consent; it cannot be lifted", self.name),
            }),
            Some(value) => policy.robot_needs_consent = policy.robot_needs_consent || value,
            None => {}
        }
        if errors.is_empty() { Ok(policy) } else { Err(errors) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin(name: &str) -> Policy {
        Policy::builtin(name, &PolicySettings::default()).unwrap()
    }

    #[test]
    fn profiles_carry_the_law() {
        let us = builtin("us-reg-f");
        assert_eq!(
            (us.hours.to_string(), us.calls_per_7_days, us.cooldown_days),
            ("08:00-21:00".into(), Some(7), Some(7))
        );
        assert_eq!(builtin("us-ma").calls_per_7_days, Some(2));
        let cn = builtin("cn-gbt-45251");
        assert_eq!(
            (cn.hours.to_string(), cn.rpc_per_day, cn.unanswered_per_number_per_day),
            ("08:00-22:00".into(), Some(3), Some(6))
        );
        assert_eq!(builtin("uk-fca").calls_per_day, Some(3));
        assert!(Policy::builtin("eu-gdpr", &PolicySettings::default()).is_err());
    }

    #[test]
    fn limits_only_tighten() {
        let us = builtin("us-reg-f");
        let tighter = us
            .tighten(&Limits {
                hours: Some("09:00-20:00".into()),
                calls_per_7_days: Some(5),
                cooldown_days: Some(10),
                ..Limits::default()
            })
            .unwrap();
        assert_eq!(
            (tighter.hours.to_string(), tighter.calls_per_7_days, tighter.cooldown_days),
            ("09:00-20:00".into(), Some(5), Some(10))
        );
        let errors = us
            .tighten(&Limits {
                hours: Some("07:00-20:00".into()),
                calls_per_7_days: Some(8),
                cooldown_days: Some(3),
                robot_needs_consent: Some(false),
                ..Limits::default()
            })
            .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["limits.hours", "limits.calls_per_7_days", "limits.cooldown_days", "limits.robot_needs_consent"]
        );
        assert_eq!(
            builtin("cn-gbt-45251")
                .tighten(&Limits { calls_per_7_days: Some(10), ..Limits::default() })
                .unwrap()
                .calls_per_7_days,
            Some(10)
        );
    }
}
