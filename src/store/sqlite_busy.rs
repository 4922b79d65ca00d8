//! SQLite's wait for the write lock, made fair to short writers.
//!
//! SQLite has no queue for its one write lock: a writer that finds it taken calls the busy
//! handler and tries again. The handler `busy_timeout` installs sleeps longer and longer between
//! tries (up to 100 ms each), so a writer arriving while another connection writes transaction
//! after transaction (a plan run saving its pages) only gets in if one of its rare tries falls
//! in the short moment between two of them — it may wait seconds and fail with `database is
//! locked`. This handler tries again every millisecond (for [`BUSY_WAIT`] in all), so a writer
//! gets the lock at the holder's next pause (the plan run pauses a few milliseconds between its
//! transactions). Every connection `store::connect` opens gets it, in `serve` and in `arrears
//! plan` alike, so both sides of a contention wait the same way.

use sea_orm::sqlx::sqlite::SqliteConnection;
use std::os::raw::{c_int, c_void};
use std::time::Duration;

/// How long a statement waits for a lock before it fails with `SQLITE_BUSY` (at least: a try
/// every [`BUSY_POLL`], counted, so a slow machine waits longer rather than shorter).
pub(crate) const BUSY_WAIT: Duration = Duration::from_secs(5);

/// The pause between two tries.
const BUSY_POLL: Duration = Duration::from_millis(1);

/// SQLite's busy handler: `tries` is how many times it was called for this wait; a non-zero
/// answer means "try again".
extern "C" fn try_again(_: *mut c_void, tries: c_int) -> c_int {
    let limit = BUSY_WAIT.as_micros() / BUSY_POLL.as_micros();
    if u128::try_from(tries).unwrap_or(u128::MAX) >= limit {
        return 0;
    }
    std::thread::sleep(BUSY_POLL);
    1
}

/// Replaces the connection's `busy_timeout` handler with [`try_again`].
pub(crate) async fn install(connection: &mut SqliteConnection) -> Result<(), sea_orm::sqlx::Error> {
    let mut handle = connection.lock_handle().await?;
    let db = handle.as_raw_handle();
    // SAFETY: `lock_handle` gives this task the connection's handle exclusively (its worker
    // thread makes no call meanwhile); the handler is a plain function that keeps no state and
    // ignores its (null) argument. Returns SQLITE_OK for an open handle.
    unsafe {
        libsqlite3_sys::sqlite3_busy_handler(db.as_ptr(), Some(try_again), std::ptr::null_mut());
    }
    Ok(())
}
