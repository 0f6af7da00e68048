//! The command line: the clap definitions and the dispatch to one file per command —
//! `hookd [serve]`, `hookd check-config FILE`, `hookd send ...`, `hookd backup --to DIR`,
//! `hookd verify-data DIR`, `hookd compact`, `hookd simulate ...`, `hookd hash-password`.
//!
//! Besides the configuration's own variables, the command line reads `HOOKD_CONFIG`
//! (`--config`), `HOOKD_LOG` (the log filter), `HOOKD_SHOW_SECRET` (`serve`) and
//! `HOOKD_FASTEN_PRIVATE_KEY` (`simulate --serve-api`).

mod backup;
mod check_config;
mod compact;
mod hash_password;
mod send;
mod serve;
mod simulate;
mod umask;
mod verify_data;

use crate::config::{Config, ConfigError};
use clap::{Parser, Subcommand};
use send::SendError;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hookd",
    version,
    about = "Receives signed webhooks, stores them durably, processes them in the background",
    after_help = "Environment: HOOKD_CONFIG (--config), HOOKD_LOG (log filter, default `info`), \
                  HOOKD_SHOW_SECRET (serve: print a generated secret even without a terminal), \
                  HOOKD_FASTEN_PRIVATE_KEY (simulate --serve-api), and the configuration's \
                  HOOKD_* overrides (see the README)."
)]
struct Cli {
    /// Configuration file (TOML); without one, hookd runs on embedded defaults.
    #[arg(long, global = true, env = "HOOKD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log as JSON lines instead of plain text; HOOKD_LOG sets the filter (default `info`).
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance (the default).
    ///
    /// A signing secret generated at the first start is printed only to a terminal, or when
    /// HOOKD_SHOW_SECRET is set (under systemd stdout is the journal); otherwise read it from
    /// the file named.
    Serve,
    /// Validate a configuration file and exit: 0 when valid, 2 with the key at fault when not.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Sign and send one event to a receiver endpoint, as a Standard Webhooks sender would.
    Send(send::Args),
    /// Write a consistent copy of the data directory into a new directory. Asks the running
    /// hookd (admin API) when it answers; copies the stopped data directory otherwise.
    Backup {
        /// The new directory (must not exist); it becomes a complete data directory.
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Back up this stopped data directory instead of the configured hookd.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Check that a stopped data directory's indexes agree; prints counts. Exit 1 when not.
    VerifyData {
        /// The data directory (or its `db` directory).
        dir: PathBuf,
    },
    /// Rewrite a stopped data directory's store into a fresh one, giving back disk space.
    Compact {
        /// The data directory (default: the configured one).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Read a password from standard input and print its argon2 hash for `admin.password_hash`.
    HashPassword,
    /// Act as Fasten Connect: send realistic signed events, or serve a local stand-in for
    /// the Fasten API (--serve-api) that hookd can download exports from.
    Simulate(simulate::Args),
}

/// Why a command failed: what to print, and the exit code that tells a script which kind.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// The command line, a file it names or the configuration is wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The configuration does not load (exit 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Sending an event failed (exit 1).
    #[error(transparent)]
    Send(#[from] SendError),
    /// The work itself failed (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl Failure {
    /// 2 for the caller's mistakes, 1 for everything else.
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) | Failure::Config(_) => 2,
            Failure::Send(_) | Failure::Failed(_) => 1,
        }
    }
}

/// What a command that succeeded ends with: exit 0, or 1 when its answer says "not quite"
/// (a non-2xx answer, an inconsistent store).
type Outcome = Result<ExitCode, Failure>;

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOOKD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.with_ansi(false).init();
    }
}

/// Runs the command line; the binary's `main`.
pub fn main() -> ExitCode {
    umask::make_private();
    let cli = Cli::parse();
    init_logging(cli.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return exit(Err(Failure::Failed(format!(
                "cannot start the async runtime: {e}"
            ))))
        }
    };
    let config = cli.config.as_deref();
    exit(match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => load(config).and_then(|c| {
            for warning in c.warnings() {
                tracing::warn!("{warning}");
            }
            runtime.block_on(serve::run(c))
        }),
        Command::CheckConfig { file } => check_config::run(&file),
        Command::Send(args) => runtime.block_on(send::run(args)),
        Command::Backup { to, data_dir } => {
            load(config).and_then(|c| runtime.block_on(backup::run(&c, data_dir.as_deref(), &to)))
        }
        Command::VerifyData { dir } => verify_data::run(&dir),
        Command::Compact { data_dir } => match data_dir {
            Some(dir) => compact::run(&dir),
            None => load(config).and_then(|c| compact::run(&c.data_dir)),
        },
        Command::Simulate(args) => runtime.block_on(simulate::run(args)),
        Command::HashPassword => hash_password::run(),
    })
}

/// The configuration: the file given (or embedded defaults), then the environment.
fn load(file: Option<&Path>) -> Result<Config, Failure> {
    Ok(Config::load(file, &Config::process_env())?)
}

/// The process's exit: a failure is printed to stderr, prefixed with `hookd:`.
fn exit(outcome: Outcome) -> ExitCode {
    outcome.unwrap_or_else(|failure| {
        eprintln!("hookd: {failure}");
        ExitCode::from(failure.exit_code())
    })
}

/// Prints a command's result on stdout and exits 0.
fn done(text: impl std::fmt::Display) -> Outcome {
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// The store directory inside a data directory (or the store directory itself).
fn db_dir(dir: &Path) -> PathBuf {
    if dir.join("db").join("conf").exists() {
        dir.join("db")
    } else {
        dir.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_flag_definitions_agree_with_each_other() {
        // Catches a `conflicts_with`/`requires` naming a flag that does not exist.
        Cli::command().debug_assert();
    }

    #[test]
    fn help_names_every_variable_the_command_line_reads() {
        let mut cli = Cli::command();
        let top = cli.render_long_help().to_string();
        for var in [
            "HOOKD_CONFIG",
            "HOOKD_LOG",
            "HOOKD_SHOW_SECRET",
            "HOOKD_FASTEN_PRIVATE_KEY",
        ] {
            assert!(top.contains(var), "{var} missing from:\n{top}");
        }
        let serve = cli
            .find_subcommand_mut("serve")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(serve.contains("HOOKD_SHOW_SECRET"), "{serve}");
    }

    #[test]
    fn the_callers_mistakes_exit_2_and_failed_work_exits_1() {
        assert_eq!(Failure::Usage("bad flag".into()).exit_code(), 2);
        assert_eq!(Failure::Failed("disk full".into()).exit_code(), 1);
    }
}
