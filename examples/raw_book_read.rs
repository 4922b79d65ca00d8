//! The physical limit of reading the book at a period's bounds on SQLite (docs/PERFORMANCE.md,
//! step 8): the rows one pass of `store::book_states` reads — every account's id, currency,
//! balance, due date and funders in id order, every stage-history row, every paid-in-full audit
//! row and every payment — read and decoded by a plain rusqlite program, one scan per table,
//! nothing folded. `cargo run --release --example raw_book_read -- BOOK.db` prints the rows and
//! seconds of each scan and their sum.

use rusqlite::{Connection, OpenFlags};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: raw_book_read BOOK.db"))?;
    let db = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    // The page cache `arrears` gives each connection.
    db.pragma_update(None, "cache_size", -65536)?;
    let mut total = 0.0;
    let mut scan = |name: &str, sql: &str, read: &dyn Fn(&rusqlite::Row<'_>) -> rusqlite::Result<usize>| {
        let started = Instant::now();
        let mut statement = db.prepare(sql)?;
        let mut rows = statement.query([])?;
        let (mut count, mut bytes) = (0u64, 0usize);
        while let Some(row) = rows.next()? {
            bytes += read(row)?;
            count += 1;
        }
        let seconds = started.elapsed().as_secs_f64();
        total += seconds;
        println!("{name}: {count} rows ({bytes} bytes of text) in {seconds:.2} s");
        anyhow::Ok(())
    };
    scan(
        "accounts",
        "SELECT id, currency, CAST(balance AS TEXT), due_date, funders FROM accounts ORDER BY id",
        &|row| {
            let id: String = row.get(0)?;
            let currency: String = row.get(1)?;
            let balance: String = row.get(2)?;
            let due: String = row.get(3)?;
            let funders: Option<String> = row.get(4)?;
            Ok(id.len() + currency.len() + balance.len() + due.len() + funders.map_or(0, |text| text.len()))
        },
    )?;
    scan("stage_history", "SELECT account_id, to_stage, at, id FROM stage_history", &|row| {
        let account: String = row.get(0)?;
        let stage: String = row.get(1)?;
        let at: String = row.get(2)?;
        let _id: i64 = row.get(3)?;
        Ok(account.len() + stage.len() + at.len())
    })?;
    scan(
        "audit_log (paid in full)",
        "SELECT entity_id, at FROM audit_log WHERE action = 'account.paid_in_full' AND entity = 'account'",
        &|row| {
            let account: String = row.get(0)?;
            let at: String = row.get(1)?;
            Ok(account.len() + at.len())
        },
    )?;
    scan("payments", "SELECT id, account_id, CAST(amount AS TEXT), paid_at FROM payments", &|row| {
        let _id: i64 = row.get(0)?;
        let account: String = row.get(1)?;
        let amount: String = row.get(2)?;
        let at: String = row.get(3)?;
        Ok(account.len() + amount.len() + at.len())
    })?;
    println!("one pass of the book's rows: {total:.2} s");
    Ok(())
}
