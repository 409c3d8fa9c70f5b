//! The `hookd` binary.

fn main() -> std::process::ExitCode {
    hookd_server::cli::main()
}
