//! Reading one CSV file: the header against a column spec, the rows with their numbers, and
//! the field parsers whose messages name the bad value.

use super::{ImportError, MAX_ERRORS, RowError};
use chrono::{DateTime, NaiveDate, Timelike, Utc};
use indicatif::ProgressBar;
use std::fs::File;
use std::path::Path;

/// The columns a file may have.
pub(crate) struct ColumnSpec {
    /// Columns every file must have.
    pub required: &'static [&'static str],
    /// Columns a file may have.
    pub optional: &'static [&'static str],
    /// The prefixes of named columns allowed (`score.`, `attr.`, `field.`): `<prefix><name>`.
    pub dynamic: &'static [&'static str],
}

/// Where each column of the spec is in the file.
pub(crate) struct Header {
    /// The header's names, as written (trimmed).
    pub names: Vec<String>,
}

impl Header {
    /// The index of a (required or present optional) column.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|column| column == name)
    }

    /// `(index, suffix)` of every column named `prefix<suffix>`.
    pub fn with_prefix(&self, prefix: &str) -> Vec<(usize, String)> {
        self.names
            .iter()
            .enumerate()
            .filter_map(|(index, name)| name.strip_prefix(prefix).map(|rest| (index, rest.to_string())))
            .collect()
    }
}

/// Collects row errors, up to [`MAX_ERRORS`].
pub(crate) struct Errors {
    file: String,
    list: Vec<RowError>,
    truncated: bool,
}

impl Errors {
    /// No errors yet.
    pub fn new(file: &str) -> Self {
        Errors { file: file.to_string(), list: Vec::new(), truncated: false }
    }

    /// Records an error (beyond the limit, only that there were more).
    pub fn push(&mut self, error: RowError) {
        if self.list.len() < MAX_ERRORS {
            self.list.push(error);
        } else {
            self.truncated = true;
        }
    }

    /// Whether the limit was reached: reading may stop.
    pub fn full(&self) -> bool {
        self.list.len() >= MAX_ERRORS
    }

    /// Notes that reading stopped at the limit: there may be more errors.
    pub fn stopped(&mut self) {
        self.truncated = true;
    }

    /// Whether there is no error.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// `Ok` without errors, else the whole list (in file order) as [`ImportError::Invalid`].
    pub fn into_result(self) -> Result<(), ImportError> {
        if self.list.is_empty() { Ok(()) } else { Err(self.into_error()) }
    }

    /// The list (in file order) as [`ImportError::Invalid`], even when empty.
    pub fn into_error(mut self) -> ImportError {
        self.list.sort_by_key(|error| (error.row.unwrap_or(0), error.line));
        ImportError::Invalid { file: self.file, errors: self.list, truncated: self.truncated }
    }
}

/// One data row: its numbers and fields.
pub(crate) struct Row<'r> {
    /// The file name used in messages.
    pub file: &'r str,
    /// 1 = the first row after the header.
    pub number: u64,
    /// Physical line where the row starts.
    pub line: u64,
    header: &'r Header,
    record: &'r csv::StringRecord,
}

impl<'r> Row<'r> {
    /// The file's header.
    pub fn header(&self) -> &'r Header {
        self.header
    }

    /// The (trimmed) field at `index`.
    pub fn field(&self, index: usize) -> &'r str {
        self.record.get(index).unwrap_or("")
    }

    /// An error about the field at `index`; `message` follows the quoted value.
    pub fn error(&self, index: usize, value: &str, message: impl Into<String>) -> RowError {
        RowError {
            file: self.file.to_string(),
            row: Some(self.number),
            line: self.line,
            column: self.header.names.get(index).cloned(),
            value: Some(value.to_string()),
            message: message.into(),
        }
    }

    /// Parses the field at `index`, recording an error (and returning `None`) when it is bad.
    pub fn parse<T>(
        &self,
        index: usize,
        errors: &mut Errors,
        parser: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.field(index);
        match parser(value) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                errors.push(self.error(index, value, message));
                None
            }
        }
    }
}

/// Opens `path`, checks its header against `spec` and calls `each_row` for every data row
/// until the end or until the error list is full. Progress is shown by bytes read.
pub(crate) fn read_file<F>(
    path: &Path,
    file: &str,
    spec: &ColumnSpec,
    progress: &ProgressBar,
    errors: &mut Errors,
    mut each_row: F,
) -> Result<Option<Header>, ImportError>
where
    F: FnMut(&Row<'_>, &mut Errors),
{
    let handle = File::open(path).map_err(|source| ImportError::Open { file: file.to_string(), source })?;
    if let Ok(metadata) = handle.metadata() {
        progress.set_length(metadata.len());
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(std::io::BufReader::with_capacity(1 << 20, handle));
    let headers = reader.headers().map_err(|error| csv_error(file, error))?.clone();
    let Some(header) = check_header(file, &headers, spec, errors) else {
        return Ok(None);
    };

    let mut record = csv::StringRecord::new();
    let mut number = 0u64;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(error) => {
                number += 1;
                match error.kind() {
                    csv::ErrorKind::Utf8 { pos, .. } => errors.push(RowError {
                        file: file.to_string(),
                        row: Some(number),
                        line: pos.as_ref().map_or(0, |pos| pos.line()),
                        column: None,
                        value: None,
                        message: "is not valid UTF-8".into(),
                    }),
                    _ => return Err(csv_error(file, error)),
                }
                if errors.full() {
                    errors.stopped();
                    break;
                }
                continue;
            }
        }
        number += 1;
        let line = record.position().map_or(0, |pos| pos.line());
        if number.is_multiple_of(8192) {
            progress.set_position(record.position().map_or(0, |pos| pos.byte()));
        }
        if record.len() != header.names.len() {
            errors.push(RowError {
                file: file.to_string(),
                row: Some(number),
                line,
                column: None,
                value: None,
                message: format!("has {} fields, the header has {}", record.len(), header.names.len()),
            });
        } else {
            let row = Row { file, number, line, header: &header, record: &record };
            each_row(&row, errors);
        }
        if errors.full() {
            errors.stopped();
            break;
        }
    }
    Ok(Some(header))
}

fn csv_error(file: &str, error: csv::Error) -> ImportError {
    ImportError::Read { file: file.to_string(), message: error.to_string() }
}

/// Checks the header: no unknown, repeated or missing column. Returns the header when good.
fn check_header(file: &str, headers: &csv::StringRecord, spec: &ColumnSpec, errors: &mut Errors) -> Option<Header> {
    let header_error = |column: Option<String>, message: String| RowError {
        file: file.to_string(),
        row: None,
        line: 1,
        column,
        value: None,
        message,
    };
    let names: Vec<String> = headers
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let name = if index == 0 { name.trim_start_matches('\u{feff}') } else { name };
            name.trim().to_string()
        })
        .collect();
    if names.is_empty() || names.iter().all(String::is_empty) {
        errors.push(header_error(None, "the file is empty: the first line must be the header".into()));
        return None;
    }
    let before = errors.is_empty();
    let mut expected: Vec<&str> = spec.required.iter().chain(spec.optional).copied().collect();
    let named: Vec<String> = spec.dynamic.iter().map(|prefix| format!("{prefix}<name>")).collect();
    expected.extend(named.iter().map(String::as_str));
    for (index, name) in names.iter().enumerate() {
        let known = spec.required.contains(&name.as_str())
            || spec.optional.contains(&name.as_str())
            || dynamic_column_ok(name, spec.dynamic);
        if !known {
            let message = if spec.dynamic.iter().any(|prefix| name.starts_with(prefix)) {
                "needs a name after the dot, made of letters, digits, `_` and `-`".to_string()
            } else {
                format!("is not a known column (expected: {})", expected.join(", "))
            };
            errors.push(header_error(Some(format!("{name:?}")), message));
        } else if names[..index].contains(name) {
            errors.push(header_error(Some(format!("{name:?}")), "appears twice".into()));
        }
    }
    for required in spec.required {
        if !names.iter().any(|name| name == required) {
            errors.push(header_error(None, format!("missing column {required:?}")));
        }
    }
    if before && errors.is_empty() { Some(Header { names }) } else { None }
}

/// `<prefix><name>` for one of `prefixes`: a non-empty name of letters, digits, `_` and `-`.
fn dynamic_column_ok(name: &str, prefixes: &[&str]) -> bool {
    let rest = prefixes.iter().find_map(|prefix| name.strip_prefix(prefix));
    rest.is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
}

/// Turns a domain parser's message (which starts with the value in backticks) into the part
/// that follows the quoted value in a row error.
pub(crate) fn reason(value: &str, message: String) -> String {
    let prefix = format!("`{}` ", value.trim());
    match message.strip_prefix(&prefix) {
        Some(rest) => rest.to_string(),
        None => format!("is invalid: {message}"),
    }
}

/// A calendar date written `YYYY-MM-DD`.
pub(crate) fn parse_date(value: &str) -> Result<NaiveDate, String> {
    let bytes = value.as_bytes();
    let shaped = bytes.len() == 10 && bytes[4] == b'-' && bytes[7] == b'-';
    match NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        Ok(date) if shaped => Ok(date),
        _ => Err("is not a date (YYYY-MM-DD)".into()),
    }
}

/// An RFC 3339 instant, in UTC, to the microsecond (what both stores keep).
pub(crate) fn parse_instant(value: &str) -> Result<DateTime<Utc>, String> {
    let instant = DateTime::parse_from_rfc3339(value)
        .map_err(|_| "is not an RFC 3339 date and time (like 2026-11-22T09:30:00+08:00)".to_string())?
        .with_timezone(&Utc);
    let micros = instant.nanosecond() / 1_000 * 1_000;
    Ok(instant.with_nanosecond(micros).unwrap_or(instant))
}

/// `true` or `false` (any case).
pub(crate) fn parse_bool(value: &str) -> Result<bool, String> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err("is not a boolean (true or false)".into())
    }
}

/// An amount of money, more than zero.
pub(crate) fn parse_positive_money(value: &str) -> Result<crate::domain::Money, String> {
    let amount = crate::domain::parse_money(value).map_err(|message| reason(value, message))?;
    if amount.is_zero() {
        return Err("is zero; the amount must be more than zero".into());
    }
    Ok(amount)
}

/// An amount of money, zero or more.
pub(crate) fn parse_amount(value: &str) -> Result<crate::domain::Money, String> {
    crate::domain::parse_money(value).map_err(|message| reason(value, message))
}

/// A non-empty text.
pub(crate) fn parse_required(value: &str) -> Result<String, String> {
    if value.is_empty() { Err("is empty; a value is required".into()) } else { Ok(value.to_string()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_must_be_complete_and_real() {
        assert!(parse_date("2026-11-22").is_ok());
        assert!(parse_date("2026-13-01").is_err());
        assert!(parse_date("2026-1-5").is_err());
        assert!(parse_date("22/11/2026").is_err());
    }

    #[test]
    fn instants_are_utc_to_the_microsecond() {
        let instant = parse_instant("2026-11-22T09:30:00.123456789+08:00").unwrap();
        assert_eq!(instant.to_rfc3339(), "2026-11-22T01:30:00.123456+00:00");
        assert!(parse_instant("2026-11-22 09:30").is_err());
    }

    #[test]
    fn domain_messages_lose_their_value_prefix() {
        let message = crate::domain::parse_money("abc").unwrap_err();
        assert_eq!(reason("abc", message), "is not a decimal amount (write it like 1234.50)");
        assert_eq!(parse_positive_money("0").unwrap_err(), "is zero; the amount must be more than zero");
    }

    #[test]
    fn dynamic_columns_need_a_name() {
        assert!(dynamic_column_ok("score.loss", &["score.", "attr."]));
        assert!(dynamic_column_ok("attr.branch_code", &["score.", "attr."]));
        assert!(!dynamic_column_ok("score.", &["score.", "attr."]));
        assert!(!dynamic_column_ok("attr.a b", &["score.", "attr."]));
        assert!(!dynamic_column_ok("scores.loss", &["score.", "attr."]));
    }
}
