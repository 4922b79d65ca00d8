//! Writes the benchmark book of `docs/PERFORMANCE.md` for trying the release binary on it:
//! `cargo run --release --example benchmark_book -- DIR [ACCOUNTS]` writes `DIR/accounts.csv`
//! (1,000,000 rows by default), `DIR/strategies/bench.toml` (600 rules, 300 tags) and
//! `DIR/templates/`; then `arrears --database-url sqlite://DIR/book.db?mode=rwc import accounts
//! DIR/accounts.csv` and `arrears ... --strategies DIR/strategies --templates DIR/templates plan`.

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir =
        std::path::PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!("usage: benchmark_book DIR [ACCOUNTS]"))?);
    let accounts: usize = match args.next() {
        Some(text) => text.parse().map_err(|_| anyhow::anyhow!("ACCOUNTS: `{text}` is not a number"))?,
        None => 1_000_000,
    };
    let now: chrono::DateTime<chrono::Utc> = "2026-11-22T01:00:00Z".parse()?;
    std::fs::create_dir_all(&dir)?;
    arrears::ops::synthetic::write_benchmark_book(&dir, accounts, now)?;
    println!(
        "wrote the benchmark book of {accounts} accounts into {} (plan it --as-of {})",
        dir.display(),
        now.to_rfc3339()
    );
    Ok(())
}
