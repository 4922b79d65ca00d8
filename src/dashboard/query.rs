//! The dashboard's query parameters: the period every page filters by (`from`, `to`, read as
//! `report::Period::parse` reads them), and the few others a page accepts (`strategy`,
//! `product`, the roll-matrix cell of the trend page). A parameter that is unknown or cannot be
//! understood is a [`BadParameter`] naming it, which the pages answer with a 400 page. No
//! query to the store and no rendering here.

use crate::report::Period;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;

/// A query parameter the page cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {message}")]
pub struct BadParameter {
    /// The parameter's name.
    pub parameter: String,
    /// What is wrong with it.
    pub message: String,
}

impl BadParameter {
    /// `parameter` is wrong because of `message`.
    pub fn new(parameter: impl Into<String>, message: impl Into<String>) -> Self {
        BadParameter { parameter: parameter.into(), message: message.into() }
    }
}

/// A page's parameters: the period's texts as given and the others by name. Empty values (an
/// empty field of the filter form) count as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// `from` as given.
    pub from: Option<String>,
    /// `to` as given.
    pub to: Option<String>,
    /// The page's other parameters.
    pub others: BTreeMap<String, String>,
}

impl Params {
    /// Reads a raw query string; `allowed` names the parameters the page takes besides `from`
    /// and `to`. A parameter given twice, or one not allowed, is an error naming it.
    pub fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Params, BadParameter> {
        let mut params = Params::default();
        let mut seen = std::collections::BTreeSet::new();
        for (key, value) in pairs(query.unwrap_or("")) {
            if !seen.insert(key.clone()) {
                return Err(BadParameter::new(key, "given more than once"));
            }
            let value = value.trim().to_string();
            let value = (!value.is_empty()).then_some(value);
            match key.as_str() {
                "from" => params.from = value,
                "to" => params.to = value,
                other if allowed.contains(&other) => {
                    if let Some(value) = value {
                        params.others.insert(key, value);
                    }
                }
                _ => {
                    let mut expected = vec!["from", "to"];
                    expected.extend_from_slice(allowed);
                    return Err(BadParameter::new(
                        key,
                        format!("unknown query parameter (expected {})", expected.join(", ")),
                    ));
                }
            }
        }
        Ok(params)
    }

    /// The period the parameters say, in the portfolio zone, `now` for a missing `to`.
    pub fn period(&self, zone: Tz, now: DateTime<Utc>) -> Result<Period, BadParameter> {
        Period::parse(self.from.as_deref(), self.to.as_deref(), zone, now)
            .map_err(|error| BadParameter::new(error.parameter(), error.to_string()))
    }

    /// Another parameter's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.others.get(name).map(String::as_str)
    }

    /// The key of these parameters in the cache: the texts as given (so a default period,
    /// which ends at "now", is one key however time moves).
    pub fn cache_key(&self, page: &str) -> String {
        let mut key =
            format!("{page}|from={}|to={}", self.from.as_deref().unwrap_or(""), self.to.as_deref().unwrap_or(""));
        for (name, value) in &self.others {
            key.push_str(&format!("|{name}={value}"));
        }
        key
    }

    /// The period's parameters as a query string (`from=…&to=…`, only those given), for links
    /// that keep the period.
    pub fn period_query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(from) = &self.from {
            query.append_pair("from", from);
        }
        if let Some(to) = &self.to {
            query.append_pair("to", to);
        }
        query.finish()
    }
}

/// `key=value` pairs of a query string, percent-decoded (`+` is a space).
fn pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes()).map(|(key, value)| (key.into_owned(), value.into_owned())).collect()
}

/// A query string of `pairs` (percent-encoded), without the `?`.
pub fn encode(pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        query.append_pair(key, value);
    }
    query.finish()
}

/// `path` with the query `pairs` (those with an empty value left out).
pub fn link(path: &str, pairs: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = pairs.iter().copied().filter(|(_, value)| !value.is_empty()).collect();
    if kept.is_empty() { path.to_string() } else { format!("{path}?{}", encode(&kept)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> Tz {
        "Asia/Shanghai".parse().unwrap()
    }

    #[test]
    fn unknown_repeated_and_bad_parameters_are_named() {
        let error = Params::parse(Some("form=2026-11-01"), &[]).unwrap_err();
        assert_eq!(error.parameter, "form");
        assert!(error.message.contains("expected from, to"), "{error}");
        assert_eq!(Params::parse(Some("from=a&from=b"), &[]).unwrap_err().parameter, "from");
        let params = Params::parse(Some("from=yesterday"), &[]).unwrap();
        let now = "2026-11-22T01:00:00Z".parse().unwrap();
        assert_eq!(params.period(zone(), now).unwrap_err().parameter, "from");
        let params = Params::parse(Some("from=2026-11-20&to=2026-11-19"), &[]).unwrap();
        assert_eq!(params.period(zone(), now).unwrap_err().parameter, "from");
    }

    #[test]
    fn empty_fields_are_absent_and_keys_keep_the_texts() {
        let params = Params::parse(Some("from=&to=2026-11-21&product=cash+loan"), &["product"]).unwrap();
        assert_eq!((params.from.as_deref(), params.to.as_deref()), (None, Some("2026-11-21")));
        assert_eq!(params.get("product"), Some("cash loan"));
        assert_eq!(params.cache_key("overview"), "overview|from=|to=2026-11-21|product=cash loan");
        assert_eq!(params.period_query(), "to=2026-11-21");
        assert_eq!(link("/x", &[("a", "1 2"), ("b", "")]), "/x?a=1+2");
    }
}
