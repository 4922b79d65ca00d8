//! The `arrears` binary: parses the command line and runs it.

fn main() -> std::process::ExitCode {
    arrears::cli::main()
}
