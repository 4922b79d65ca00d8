//! PostgreSQL's planner statistics for the tables a plan reads. Without them — a book imported
//! a moment ago, a server whose autovacuum is off or has not come round yet — PostgreSQL
//! misjudges every page's queries and reads whole tables: a 1,000,000-account plan took more
//! than ten minutes instead of 34 s. Owns the staleness check and the `ANALYZE`; does nothing
//! on SQLite (its planner uses no statistics unless asked to).

use super::StoreError;
use super::sql::{Sql, get, is_postgres};
use sea_orm::ConnectionTrait;

/// The tables a plan reads page by page.
pub const PLAN_TABLES: &[&str] = &["accounts", "borrowers", "contact_points", "attempts", "promises", "tasks"];

/// Analyzes those of `tables` (in the current schema) that were never analyzed or had more than
/// a tenth of their rows (at least 1,000) changed since; returns their names. Nothing on SQLite.
pub async fn analyze_stale(db: &impl ConnectionTrait, tables: &[&str]) -> Result<Vec<String>, StoreError> {
    let backend = db.get_database_backend();
    if !is_postgres(backend) || tables.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(backend);
    sql.push("SELECT relname::text FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = ANY(");
    sql.bind(tables.iter().map(|table| table.to_string()).collect::<Vec<String>>());
    sql.push(
        "::text[]) AND (COALESCE(last_analyze, last_autoanalyze) IS NULL \
         OR n_mod_since_analyze > GREATEST(1000, n_live_tup / 10)) ORDER BY relname",
    );
    let mut stale = Vec::new();
    for row in db.query_all_raw(sql.statement()).await? {
        let name: String = get(&row, 0, "pg_stat_user_tables", "relname")?;
        // Only names of `tables` come back: quoting them keeps any other text out of the statement.
        if let Some(table) = tables.iter().find(|table| **table == name) {
            stale.push((*table).to_string());
        }
    }
    if !stale.is_empty() {
        let list: Vec<String> = stale.iter().map(|table| format!("\"{table}\"")).collect();
        db.execute_unprepared(&format!("ANALYZE {}", list.join(", "))).await?;
    }
    Ok(stale)
}
