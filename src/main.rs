//! The `hookd` binary: parse the command line and hand over to [`hookd::cli`].

fn main() -> std::process::ExitCode {
    hookd::cli::main()
}
