//! The `arrears` binary: parses the command line and runs it. Owns the process's allocators;
//! decides nothing else.

/// The binary's allocator: mimalloc. A plan's reading, decoding and writing allocate and free
/// millions of small strings across threads; with glibc's allocator `malloc` and `free` were
/// ~14 % of a 1,000,000-account plan's CPU (docs/PERFORMANCE.md, step 11).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    trim_c_heap_every_second();
    arrears::cli::main()
}

/// SQLite is C: its page caches and statements are allocated by glibc's `malloc`, not by
/// mimalloc, each on the thread of the connection that asks, from that thread's arena. A plan
/// keeps filling and dropping those caches (a reader's cache is dropped whenever the writer
/// commits), and glibc hands freed memory back to the kernel only from the top of an arena:
/// the rest stayed in the process. The plan's live heap is flat in the book's size (141 MiB at
/// 1,000,000 accounts, 145 MiB at 10,000,000, by heaptrack), but its peak memory grew with the
/// run's length, to 325–350 MiB at 10,000,000 accounts. `malloc_trim` hands the free pages of
/// every arena back; called once a second from a thread of its own, it made no plan slower
/// that could be measured (docs/PERFORMANCE.md, step 12).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_c_heap_every_second() {
    let trimmer = std::thread::Builder::new().name("heap-trim".into()).spawn(|| {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
            // SAFETY: `malloc_trim` takes each arena's lock itself; any thread may call it.
            unsafe { libc::malloc_trim(0) };
        }
    });
    // Without it the process holds more memory, nothing else: not a reason to stop.
    drop(trimmer);
}

/// Other C libraries return freed memory by their own rules.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_c_heap_every_second() {}
