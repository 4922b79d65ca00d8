//! Small helpers for hand-built, parameterised SQL: placeholders per backend, bind-limit
//! chunking and value decoding that is exact for money on SQLite.

use super::StoreError;
use crate::domain::Money;
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, TryGetable, Value};
use std::fmt::Write as _;
use std::str::FromStr;

/// SQLite's largest bind-parameter number (`SQLITE_MAX_VARIABLE_NUMBER`).
pub(crate) const SQLITE_MAX_BINDS: usize = 32_766;
/// PostgreSQL's bind-parameter limit (a 16-bit count in the wire protocol).
pub(crate) const POSTGRES_MAX_BINDS: usize = 65_535;
/// Rows read per page by the keyset-paginated loaders.
pub(crate) const PAGE_ROWS: u64 = 10_000;
/// Contact points read per page: a plan page's 10,000 borrowers have ~16,000 of them, all kept
/// in the page's portfolio anyway, so one larger page costs no memory the page does not need
/// and saves a second read of them and of the page's borrowers (on PostgreSQL ~20 ms a page).
pub(crate) const POINT_PAGE_ROWS: u64 = 4 * PAGE_ROWS;

/// ` AND id > after` where a read goes on from a key; nothing on its first page (ids start at
/// 1): given `id > 0`, PostgreSQL ANDed a bitmap of the whole primary key of `tasks` to the
/// borrower index's few rows (125 of a page's 190 ms at the end of a 1,000,000-account plan),
/// and filtered a page's 16,000 contact points by it (20 against 16 ms).
pub(crate) fn push_after_id(sql: &mut Sql, after: i64) {
    if after > 0 {
        sql.push(" AND id > ");
        sql.bind(after);
    }
}

/// Whether the connection speaks PostgreSQL (anything else is treated as SQLite).
pub(crate) fn is_postgres(backend: DbBackend) -> bool {
    matches!(backend, DbBackend::Postgres)
}

/// The bind-parameter limit of a backend.
pub(crate) fn max_binds(backend: DbBackend) -> usize {
    if is_postgres(backend) { POSTGRES_MAX_BINDS } else { SQLITE_MAX_BINDS }
}

/// How many rows of `per_row` parameters fit in one statement next to `fixed` other ones.
pub(crate) fn rows_per_statement(backend: DbBackend, per_row: usize, fixed: usize) -> usize {
    ((max_binds(backend) - fixed) / per_row).max(1)
}

/// A SQL text and its bound values. PostgreSQL gets numbered placeholders (`$n`, so a value
/// can be referenced again); SQLite gets plain `?` — its numbered `?NNN` placeholders cost a
/// linear search each while the statement is prepared, quadratic on a 30,000-value insert — so
/// a value used twice is bound twice there.
pub(crate) struct Sql {
    backend: DbBackend,
    text: String,
    values: Vec<Value>,
}

impl Sql {
    /// An empty statement.
    pub(crate) fn new(backend: DbBackend) -> Self {
        Sql { backend, text: String::new(), values: Vec::new() }
    }

    /// An empty statement with room for `text` bytes and `values` parameters.
    pub(crate) fn with_capacity(backend: DbBackend, text: usize, values: usize) -> Self {
        Sql { backend, text: String::with_capacity(text), values: Vec::with_capacity(values) }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.text.push_str(sql);
        self
    }

    /// Binds a new value and appends its placeholder; returns the parameter number.
    pub(crate) fn bind(&mut self, value: impl Into<Value>) -> usize {
        self.values.push(value.into());
        let number = self.values.len();
        if is_postgres(self.backend) {
            let _ = write!(self.text, "${number}");
        } else {
            self.text.push('?');
        }
        number
    }

    /// Refers to an already bound parameter again (SQLite: binds a copy).
    pub(crate) fn reuse(&mut self, number: usize) {
        if is_postgres(self.backend) {
            let _ = write!(self.text, "${number}");
        } else {
            let value = self.values[number - 1].clone();
            self.values.push(value);
            self.text.push('?');
        }
    }

    /// Appends `(p1, p2, ...)` binding every value of a row.
    pub(crate) fn bind_row<I>(&mut self, values: I)
    where
        I: IntoIterator<Item = Value>,
    {
        self.text.push('(');
        for (index, value) in values.into_iter().enumerate() {
            if index > 0 {
                self.text.push_str(", ");
            }
            self.bind(value);
        }
        self.text.push(')');
    }

    /// Appends another statement's text and values; `self` must have no values bound yet (the
    /// other's placeholders keep their numbers).
    pub(crate) fn append(&mut self, other: Sql) {
        debug_assert!(self.values.is_empty(), "append renumbers no placeholders");
        self.text.push_str(&other.text);
        self.values.extend(other.values);
    }

    /// The backend the statement is for.
    pub(crate) fn backend(&self) -> DbBackend {
        self.backend
    }

    /// The finished statement.
    pub(crate) fn statement(self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.text, self.values)
    }
}

/// Runs `head VALUES (shared..., row...), ... tail` for `rows`, in as many statements as the
/// bind limit requires; returns the summed affected-row count. `row_values` pushes exactly
/// `per_row` values for one row.
pub(crate) async fn insert_values<R, F>(
    db: &impl ConnectionTrait,
    head: &str,
    shared: &[Value],
    per_row: usize,
    rows: &[R],
    row_values: F,
    tail: &str,
) -> Result<u64, StoreError>
where
    F: Fn(&R, &mut Vec<Value>),
{
    let backend = db.get_database_backend();
    let mut affected = 0;
    for chunk in rows.chunks(values_rows_per_statement(backend, per_row, shared.len())) {
        let statement = values_statement(backend, head, shared, per_row, chunk, &row_values, tail);
        affected += db.execute_raw(statement).await?.rows_affected();
    }
    Ok(affected)
}

/// Rows per [`values_statement`] below the backend's bind limit.
pub(crate) fn values_rows_per_statement(backend: DbBackend, per_row: usize, shared: usize) -> usize {
    if is_postgres(backend) {
        rows_per_statement(backend, per_row, shared)
    } else {
        // SQLite binds the shared values again in every row (see [`Sql`]).
        rows_per_statement(backend, per_row + shared, 0)
    }
}

/// `head VALUES (shared..., row...), ... tail` for one chunk of rows. The `shared` values are
/// bound once (in the first row) and referred to again in the others.
pub(crate) fn values_statement<R, F>(
    backend: DbBackend,
    head: &str,
    shared: &[Value],
    per_row: usize,
    chunk: &[R],
    row_values: &F,
    tail: &str,
) -> Statement
where
    F: Fn(&R, &mut Vec<Value>),
{
    let mut buffer = Vec::with_capacity(per_row);
    let mut sql = Sql::with_capacity(
        backend,
        head.len() + tail.len() + chunk.len() * (per_row + shared.len()) * 8,
        shared.len() + chunk.len() * per_row,
    );
    sql.push(head);
    sql.push(" VALUES ");
    let mut shared_numbers = Vec::with_capacity(shared.len());
    for (index, row) in chunk.iter().enumerate() {
        sql.push(if index == 0 { "(" } else { ", (" });
        let mut first = true;
        for (position, value) in shared.iter().enumerate() {
            if !first {
                sql.push(", ");
            }
            first = false;
            if index == 0 {
                shared_numbers.push(sql.bind(value.clone()));
            } else {
                sql.reuse(shared_numbers[position]);
            }
        }
        row_values(row, &mut buffer);
        debug_assert_eq!(buffer.len(), per_row);
        for value in buffer.drain(..) {
            if !first {
                sql.push(", ");
            }
            first = false;
            sql.bind(value);
        }
        sql.push(")");
    }
    sql.push(tail);
    sql.statement()
}

/// Appends `column IN (...)` (SQLite) or `column = ANY($n)` (PostgreSQL, one array parameter).
pub(crate) fn push_in_list(sql: &mut Sql, column: &str, keys: &[&str]) {
    sql.push(column);
    if is_postgres(sql.backend) {
        sql.push(" = ANY(");
        sql.bind(keys.iter().map(|key| key.to_string()).collect::<Vec<String>>());
        sql.push(")");
    } else {
        sql.push(" IN (");
        for (index, key) in keys.iter().enumerate() {
            if index > 0 {
                sql.push(", ");
            }
            sql.bind(*key);
        }
        sql.push(")");
    }
}

/// How many keys one [`push_in_list`] may carry next to `fixed` other parameters.
pub(crate) fn in_list_chunk(backend: DbBackend, fixed: usize) -> usize {
    if is_postgres(backend) { 20_000 } else { SQLITE_MAX_BINDS - fixed }
}

/// One page of rows, packed by the database into a single JSON text: an array with one array
/// of `fields` per row — `json_group_array(json_array(...))` on SQLite,
/// `json_agg(json_build_array(...) ORDER BY ...)` on PostgreSQL.
///
/// Runs `SELECT <columns> FROM <from> WHERE <filter> ORDER BY <order> LIMIT <limit>` as the
/// page; `fields` are expressions over its `columns`. One value per page instead of one per
/// column and row spares the SQLite driver (which copies every value into an allocation of its
/// own and hands rows one by one to another thread) most of its work: several times faster on
/// a million rows. PostgreSQL keeps the rows' order inside the array; on SQLite the array
/// follows the page's order in practice, and callers do not rely on it beyond the page's
/// greatest key (see [`page_key`]).
pub(crate) async fn json_page(
    db: &impl ConnectionTrait,
    columns: &str,
    fields: &str,
    from: &str,
    filter: impl FnOnce(&mut Sql),
    order: &str,
    limit: u64,
) -> Result<String, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT ");
    push_json_page(&mut sql, columns, fields, from, filter, Some(order), limit);
    let row = db.query_one_raw(sql.statement()).await?;
    match row {
        Some(row) => Ok(get::<Option<String>>(&row, 0, "page", from)?.unwrap_or_else(|| "[]".into())),
        None => Ok("[]".into()),
    }
}

/// The scalar sub-query of [`json_page`], `(SELECT <packed page>)`, pushed into `sql`: several
/// of them in one `SELECT` read several pages in one round trip (see [`json_pages`]). Without
/// an `order` the page is any `limit` of the matching rows, in no order: complete only when
/// fewer than `limit` come back.
pub(crate) fn push_json_page(
    sql: &mut Sql,
    columns: &str,
    fields: &str,
    from: &str,
    filter: impl FnOnce(&mut Sql),
    order: Option<&str>,
    limit: u64,
) {
    if is_postgres(sql.backend) {
        sql.push("(SELECT COALESCE(json_agg(json_build_array(");
        sql.push(fields);
        sql.push(")");
        if let Some(order) = order {
            sql.push(" ORDER BY ");
            sql.push(order);
        }
        sql.push(")::text, '[]') FROM (SELECT ");
    } else {
        sql.push("(SELECT json_group_array(json_array(");
        sql.push(fields);
        sql.push(")) FROM (SELECT ");
    }
    sql.push(columns);
    sql.push(" FROM ");
    sql.push(from);
    sql.push(" WHERE ");
    filter(sql);
    if let Some(order) = order {
        sql.push(" ORDER BY ");
        sql.push(order);
    }
    sql.push(" LIMIT ");
    sql.bind(i64::try_from(limit).unwrap_or(i64::MAX));
    sql.push(") AS page)");
}

/// A page sub-query to push into a statement (see [`json_pages`]).
pub(crate) type PushPage<'a> = Box<dyn FnOnce(&mut Sql) + Send + 'a>;

/// Runs `SELECT <page 1>, <page 2>, ...` (each pushed by [`push_json_page`] through one of
/// `pages`) and returns the packed pages in order: many reads, one round trip.
pub(crate) async fn json_pages(db: &impl ConnectionTrait, pages: Vec<PushPage<'_>>) -> Result<Vec<String>, StoreError> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT ");
    let count = pages.len();
    for (index, page) in pages.into_iter().enumerate() {
        if index > 0 {
            sql.push(", ");
        }
        page(&mut sql);
    }
    let Some(row) = db.query_one_raw(sql.statement()).await? else {
        return Ok(vec!["[]".to_string(); count]);
    };
    (0..count)
        .map(|index| Ok(get::<Option<String>>(&row, index, "page", "pages")?.unwrap_or_else(|| "[]".into())))
        .collect()
}

/// The key to continue after a page: its greatest key in the database's order. PostgreSQL's
/// arrays are ordered, so that is the last row's; SQLite compares text byte-wise (the same
/// order as Rust), so the greatest is safe whatever the array order.
pub(crate) fn page_key<'a, K: Ord + ?Sized + 'a>(
    backend: DbBackend,
    keys: impl DoubleEndedIterator<Item = &'a K>,
) -> Option<&'a K> {
    if is_postgres(backend) { keys.last() } else { keys.max() }
}

/// Reads column `index` of a row, mapping a decoding failure to [`StoreError::Corrupt`].
pub(crate) fn get<T: TryGetable>(
    row: &QueryResult,
    index: usize,
    table: &'static str,
    id: &str,
) -> Result<T, StoreError> {
    row.try_get_by_index::<T>(index).map_err(|error| StoreError::Corrupt {
        table,
        id: id.to_string(),
        message: format!("column {index}: {error}"),
    })
}

/// Reads a money column exactly. PostgreSQL returns `numeric`; SQLite stores `decimal(20,4)` as
/// a REAL, which is read back through its shortest round-trip decimal form (exact for up to 15
/// significant digits) instead of a binary float conversion.
pub(crate) fn get_money(
    row: &QueryResult,
    index: usize,
    backend: DbBackend,
    table: &'static str,
    id: &str,
) -> Result<Money, StoreError> {
    if is_postgres(backend) {
        return get::<Money>(row, index, table, id).map(|value| value.normalize());
    }
    let value: f64 = get(row, index, table, id)?;
    money_from_f64(value).ok_or_else(|| StoreError::Corrupt {
        table,
        id: id.to_string(),
        message: format!("column {index}: {value} is not an amount of money"),
    })
}

/// The exact sum of a money column over a group, as SQL: PostgreSQL sums its `numeric`; on
/// SQLite, where money is a REAL, each amount is rounded to ten-thousandths (what
/// [`get_money`] reads it as) and summed as an integer, which SQLite adds exactly (it fails
/// loudly, "integer overflow", past 922 trillion per group). Read it with [`get_money_sum`].
pub(crate) fn exact_money_sum(backend: DbBackend, column: &str) -> String {
    if is_postgres(backend) {
        format!("COALESCE(SUM({column}), 0)")
    } else {
        format!("COALESCE(SUM(CAST(ROUND({column} * 10000) AS INTEGER)), 0)")
    }
}

/// Reads an [`exact_money_sum`].
pub(crate) fn get_money_sum(
    row: &QueryResult,
    index: usize,
    backend: DbBackend,
    table: &'static str,
    id: &str,
) -> Result<Money, StoreError> {
    if is_postgres(backend) {
        return get_money(row, index, backend, table, id);
    }
    let ten_thousandths: i64 = get(row, index, table, id)?;
    Ok(Money::new(ten_thousandths, 4).normalize())
}

/// The decimal a stored REAL stands for (see [`get_money`]).
pub(crate) fn money_from_f64(value: f64) -> Option<Money> {
    if !value.is_finite() {
        return None;
    }
    Money::from_str(&value.to_string()).ok().map(|money| money.round_dp(4).normalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_backend() {
        let mut sql = Sql::new(DbBackend::Postgres);
        sql.push("SELECT ");
        sql.bind(1i64);
        sql.push(", ");
        sql.reuse(1);
        let statement = sql.statement();
        assert_eq!(statement.sql, "SELECT $1, $1");
        assert_eq!(statement.values.map(|values| values.0.len()), Some(1));

        let mut sql = Sql::new(DbBackend::Sqlite);
        sql.push("VALUES ");
        sql.bind_row([Value::from(1i64), Value::from("a")]);
        sql.push(", ");
        sql.reuse(1);
        let statement = sql.statement();
        assert_eq!(statement.sql, "VALUES (?, ?), ?");
        assert_eq!(statement.values.map(|values| values.0.len()), Some(3));
    }

    #[test]
    fn money_survives_a_real_column() {
        assert_eq!(money_from_f64(1234.5).unwrap().to_string(), "1234.5");
        assert_eq!(money_from_f64(0.1 + 0.2).unwrap().to_string(), "0.3");
        assert_eq!(money_from_f64(99_999_999_999.999_9).unwrap().to_string(), "99999999999.9999");
        assert!(money_from_f64(f64::NAN).is_none());
    }

    #[test]
    fn chunks_stay_below_the_bind_limits() {
        assert_eq!(rows_per_statement(DbBackend::Sqlite, 18, 0), 1820);
        assert!(rows_per_statement(DbBackend::Postgres, 12, 0) * 12 <= POSTGRES_MAX_BINDS);
    }
}
