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
mod copy_store;
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
    after_help = "Environment: HOOKD_CONFIG (--config), HOOKD_LOG (log filter, default \
                  `info,tokio_cron_scheduler=warn`), \
                  HOOKD_SHOW_SECRET (serve: print a generated secret even without a terminal), \
                  HOOKD_FASTEN_PRIVATE_KEY (simulate --serve-api), and the configuration's \
                  HOOKD_* overrides (see the README)."
)]
struct Cli {
    /// Configuration file (TOML) of `serve`, `check-config`, `backup` and `compact`
    /// (default: HOOKD_CONFIG, else embedded defaults).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log as JSON lines instead of plain text (`serve`, `simulate`); HOOKD_LOG sets the
    /// filter (default `info,tokio_cron_scheduler=warn`).
    #[arg(long)]
    log_json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

/// `--config`, for the commands that read the configuration.
#[derive(clap::Args, Default)]
struct ConfigFlag {
    /// Configuration file (TOML); default: HOOKD_CONFIG, else embedded defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// `--log-json`, for the commands that run and log.
#[derive(clap::Args, Default)]
struct LogFlag {
    /// Log as JSON lines instead of plain text; HOOKD_LOG sets the filter (default
    /// `info,tokio_cron_scheduler=warn`).
    #[arg(long)]
    log_json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance (the default).
    ///
    /// A signing secret generated at the first start is printed only to a terminal, or when
    /// HOOKD_SHOW_SECRET is set (under systemd stdout is the journal); otherwise read it from
    /// the file named.
    Serve {
        #[command(flatten)]
        config: ConfigFlag,
        #[command(flatten)]
        log: LogFlag,
    },
    /// Validate a configuration file and exit: 0 when valid, 2 with the key at fault when not.
    CheckConfig {
        /// The file to check (default: --config, else HOOKD_CONFIG).
        file: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigFlag,
    },
    /// Sign and send one event to a receiver endpoint, as a Standard Webhooks sender would.
    Send(send::Args),
    /// Write a consistent copy of the data directory into a new directory. Asks the running
    /// hookd (admin API) when it answers; copies the stopped data directory otherwise.
    Backup {
        /// The new directory (must not exist); it becomes a complete data directory. A bare
        /// NAME goes into admin.backup_dir when that is set.
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Back up this stopped data directory instead of the configured hookd.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigFlag,
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
        #[command(flatten)]
        config: ConfigFlag,
    },
    /// Copy a stopped appliance's data directory (its store) into an empty PostgreSQL
    /// database, for cluster mode (docs/cluster.md).
    CopyStore {
        /// The stopped hookd's data directory.
        #[arg(long, value_name = "DATA_DIR")]
        from: PathBuf,
        /// The database: postgres://user:password@host/dbname (visible to `ps`: prefer --to-file).
        #[arg(long, value_name = "URL")]
        to: Option<String>,
        /// A file holding the connection string.
        #[arg(long, value_name = "FILE")]
        to_file: Option<PathBuf>,
        /// The CA certificate (PEM) that signed the database's TLS certificate, as
        /// `postgres.ca_file` in the cluster's configuration (a private CA).
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
    },
    /// Print the argon2 hash of a password for `admin.password_hash`. At a terminal it asks
    /// twice without echo; otherwise it reads one line from standard input.
    HashPassword,
    /// Act as Fasten Connect: send realistic signed events (--to), or serve a local stand-in
    /// for the Fasten API (--serve-api ADDR) that hookd can download exports from.
    Simulate {
        // Boxed: the largest of the commands' arguments by far.
        #[command(flatten)]
        args: Box<simulate::Args>,
        #[command(flatten)]
        log: LogFlag,
    },
}

impl Command {
    /// The command's name as typed.
    fn name(&self) -> &'static str {
        match self {
            Command::Serve { .. } => "serve",
            Command::CheckConfig { .. } => "check-config",
            Command::Send(_) => "send",
            Command::Backup { .. } => "backup",
            Command::VerifyData { .. } => "verify-data",
            Command::Compact { .. } => "compact",
            Command::CopyStore { .. } => "copy-store",
            Command::HashPassword => "hash-password",
            Command::Simulate { .. } => "simulate",
        }
    }

    /// Its own `--config`, if it reads the configuration at all.
    fn config_flag(&mut self) -> Option<&mut ConfigFlag> {
        match self {
            Command::Serve { config, .. }
            | Command::CheckConfig { config, .. }
            | Command::Backup { config, .. }
            | Command::Compact { config, .. } => Some(config),
            _ => None,
        }
    }

    /// Its own `--log-json`, if it logs.
    fn log_flag(&mut self) -> Option<&mut LogFlag> {
        match self {
            Command::Serve { log, .. } | Command::Simulate { log, .. } => Some(log),
            _ => None,
        }
    }
}

impl Cli {
    /// The command to run, with `--config`/`--log-json` given before it moved into it
    /// (`hookd --config FILE backup ...` reads as `hookd backup --config FILE ...`); an error
    /// when the command has no use for them, rather than silently ignoring them.
    fn into_command(self) -> Result<Command, Failure> {
        let mut command = self.command.unwrap_or(Command::Serve {
            config: ConfigFlag::default(),
            log: LogFlag::default(),
        });
        let name = command.name();
        if let Some(file) = self.config {
            match command.config_flag() {
                Some(flag) => {
                    flag.config.get_or_insert(file);
                }
                None => {
                    return Err(Failure::Usage(format!(
                    "--config means nothing to `hookd {name}` (serve, check-config, backup and compact read it)"
                )))
                }
            }
        }
        if self.log_json {
            match command.log_flag() {
                Some(flag) => flag.log_json = true,
                None => {
                    return Err(Failure::Usage(format!(
                        "--log-json means nothing to `hookd {name}` (serve and simulate log)"
                    )))
                }
            }
        }
        Ok(command)
    }
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

/// The log filter when HOOKD_LOG does not set one: `info`, but the cron scheduler's
/// per-start chatter only from warnings up.
const DEFAULT_LOG_FILTER: &str = "info,tokio_cron_scheduler=warn";

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOOKD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.with_ansi(false).init();
    }
}

/// A command whose output is piped into `head` stops quietly when the pipe closes, as Unix
/// tools do, instead of panicking on the failed write. Rust starts with SIGPIPE ignored;
/// the default action is restored for the one-shot commands only: the server keeps it
/// ignored (and sockets never raise it: writes to them pass MSG_NOSIGNAL).
fn quiet_on_closed_stdout() {
    // SAFETY: signal(2) with SIG_DFL installs no handler, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Runs the command line; the binary's `main`.
pub fn main() -> ExitCode {
    umask::make_private();
    let mut command = match Cli::parse().into_command() {
        Ok(command) => command,
        Err(failure) => return exit(Err(failure)),
    };
    init_logging(command.log_flag().is_some_and(|l| l.log_json));
    if !matches!(command, Command::Serve { .. }) {
        quiet_on_closed_stdout();
    }
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
    exit(match command {
        Command::Serve { config, .. } => load(config).and_then(|c| {
            for warning in c.warnings() {
                tracing::warn!("{warning}");
            }
            runtime.block_on(serve::run(c))
        }),
        Command::CheckConfig { file, config } => file
            .or(config.config)
            .or_else(|| std::env::var_os("HOOKD_CONFIG").map(PathBuf::from))
            .ok_or_else(|| {
                Failure::Usage(
                    "check-config needs a FILE (or --config FILE, or HOOKD_CONFIG)".into(),
                )
            })
            .and_then(|file| check_config::run(&file)),
        Command::Send(args) => runtime.block_on(send::run(args)),
        Command::Backup {
            to,
            data_dir,
            config,
        } => match data_dir {
            Some(dir) => backup::offline_only(&dir, &to),
            None => load(config).and_then(|c| runtime.block_on(backup::run(&c, &to))),
        },
        Command::VerifyData { dir } => verify_data::run(&dir),
        Command::Compact { data_dir, config } => match data_dir {
            Some(dir) => compact::run(&dir),
            None => load(config).and_then(|c| compact::run(&c.data_dir)),
        },
        Command::Simulate { args, .. } => runtime.block_on(simulate::run(*args)),
        Command::CopyStore {
            from,
            to,
            to_file,
            ca_file,
        } => copy_store::run(&from, to, to_file, ca_file),
        Command::HashPassword => hash_password::run(),
    })
}

/// The configuration: the file given (`--config`, else HOOKD_CONFIG, else embedded
/// defaults), then the environment.
fn load(flag: ConfigFlag) -> Result<Config, Failure> {
    let file = flag
        .config
        .or_else(|| std::env::var_os("HOOKD_CONFIG").map(PathBuf::from));
    load_file(file.as_deref())
}

/// The configuration from `file` (or embedded defaults), then the environment.
fn load_file(file: Option<&Path>) -> Result<Config, Failure> {
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

/// The store directory inside the existing data directory `dir` (or `dir` itself when it is
/// the store directory). A missing directory, or one without a store, is the caller's
/// mistake, said plainly: opening it would create an empty store instead.
fn db_dir(dir: &Path) -> Result<PathBuf, Failure> {
    if !dir.is_dir() {
        return Err(Failure::Usage(format!(
            "{}: no such directory",
            dir.display()
        )));
    }
    if dir.join("db").join("conf").exists() {
        Ok(dir.join("db"))
    } else if dir.join("conf").exists() {
        Ok(dir.to_path_buf())
    } else {
        Err(Failure::Usage(format!(
            "{} is not a hookd data directory (it has no store: no db/ inside)",
            dir.display()
        )))
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

    fn help_of(name: &str) -> String {
        Cli::command()
            .find_subcommand_mut(name)
            .unwrap()
            .render_long_help()
            .to_string()
    }

    #[test]
    fn subcommands_list_config_and_log_json_only_where_they_mean_something() {
        for (name, config, log_json) in [
            ("serve", true, true),
            ("backup", true, false),
            ("compact", true, false),
            ("simulate", false, true),
            ("send", false, false),
            ("check-config", true, false),
            ("verify-data", false, false),
            ("hash-password", false, false),
        ] {
            let help = help_of(name);
            assert_eq!(help.contains("--config"), config, "{name}:\n{help}");
            assert_eq!(help.contains("--log-json"), log_json, "{name}:\n{help}");
        }
    }

    fn parsed(args: &[&str]) -> Result<Command, Failure> {
        Cli::try_parse_from(args).unwrap().into_command()
    }

    #[test]
    fn config_before_the_command_reaches_the_commands_that_read_it() {
        let Ok(Command::Backup { config, .. }) =
            parsed(&["hookd", "--config", "a.toml", "backup", "--to", "x"])
        else {
            panic!("not a backup");
        };
        assert_eq!(config.config, Some(PathBuf::from("a.toml")));
        let Ok(Command::Serve { config, log }) =
            parsed(&["hookd", "--config", "a.toml", "--log-json"])
        else {
            panic!("not serve");
        };
        assert_eq!(config.config, Some(PathBuf::from("a.toml")));
        assert!(log.log_json);
        let Ok(Command::Serve { config, .. }) = parsed(&["hookd", "serve", "--config", "b.toml"])
        else {
            panic!("not serve");
        };
        assert_eq!(config.config, Some(PathBuf::from("b.toml")));
    }

    #[test]
    fn config_or_log_json_given_to_a_command_that_ignores_them_is_refused() {
        for args in [
            &[
                "hookd", "--config", "a.toml", "send", "--to", "u", "--secret", "s",
            ][..],
            &["hookd", "--log-json", "check-config", "a.toml"][..],
            &["hookd", "--config", "a.toml", "hash-password"][..],
        ] {
            match parsed(args) {
                Err(Failure::Usage(text)) => assert!(text.contains("means nothing"), "{text}"),
                _ => panic!("{args:?} accepted"),
            }
        }
        assert!(Cli::try_parse_from(["hookd", "send", "--config", "a.toml"]).is_err());
    }

    #[test]
    fn the_default_log_filter_quiets_the_cron_scheduler_only() {
        let filter = tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER).to_string();
        assert!(filter.contains("tokio_cron_scheduler=warn"), "{filter}");
        assert!(filter.split(',').any(|d| d == "info"), "{filter}");
        // The help says the same.
        let help = <Cli as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        assert!(help.contains(DEFAULT_LOG_FILTER), "{help}");
        assert!(!help.contains("default `info`)"), "{help}");
    }

    #[test]
    fn help_speaks_to_users_not_of_the_code() {
        let mut cli = <Cli as clap::CommandFactory>::command();
        for sub in cli.get_subcommands_mut() {
            let help = sub.render_long_help().to_string();
            assert!(!help.contains("clap"), "{}: {help}", sub.get_name());
        }
    }

    #[test]
    fn a_missing_data_directory_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        match db_dir(&missing) {
            Err(Failure::Usage(text)) => assert!(text.ends_with("no such directory"), "{text}"),
            _ => panic!("accepted"),
        }
        match db_dir(dir.path()) {
            Err(Failure::Usage(text)) => {
                assert!(text.contains("not a hookd data directory"), "{text}")
            }
            _ => panic!("accepted"),
        }
        std::fs::create_dir_all(dir.path().join("db")).unwrap();
        std::fs::write(dir.path().join("db/conf"), "").unwrap();
        assert_eq!(db_dir(dir.path()).unwrap(), dir.path().join("db"));
    }

    #[test]
    fn the_callers_mistakes_exit_2_and_failed_work_exits_1() {
        assert_eq!(Failure::Usage("bad flag".into()).exit_code(), 2);
        assert_eq!(Failure::Failed("disk full".into()).exit_code(), 1);
    }
}
