//! The `arrears` binary: parses the command line and runs it.

/// mimalloc instead of the system allocator: the planner and the store allocate and free many
/// page-sized buffers from several threads, and glibc's per-thread arenas keep that memory
/// resident (it showed as peak memory growing with the book, not the page).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    arrears::cli::main()
}
