//! The `arrears` binary: parses the command line and runs it.

/// The binary's allocator: mimalloc. A plan's reading, decoding and writing allocate and free
/// millions of small strings across threads; with glibc's allocator `malloc` and `free` were
/// ~14 % of a 1,000,000-account plan's CPU (docs/PERFORMANCE.md, step 11).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    arrears::cli::main()
}
