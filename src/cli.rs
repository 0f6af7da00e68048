//! The command line: `hookd [serve]`, `hookd check-config FILE`, `hookd send ...`,
//! `hookd backup --to DIR`, `hookd verify-data DIR`, `hookd compact`.

use crate::config::{Config, ConfigError};
use crate::secret::Secret;
use crate::{backup, send, server};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hookd",
    version,
    about = "Receives signed webhooks, stores them durably, processes them in the background"
)]
struct Cli {
    /// Configuration file (TOML); without one, hookd runs on embedded defaults.
    #[arg(long, global = true, env = "HOOKD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log as JSON lines instead of plain text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance (the default).
    Serve,
    /// Validate a configuration file and exit: 0 when valid, 2 with the key at fault when not.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Sign and send one event to a receiver endpoint, as a Standard Webhooks sender would.
    Send {
        /// The endpoint URL, e.g. http://127.0.0.1:8080/webhooks/default
        #[arg(long)]
        to: String,
        /// The signing secret (whsec_...).
        #[arg(
            long,
            conflicts_with = "secret_file",
            required_unless_present = "secret_file"
        )]
        secret: Option<String>,
        /// A file holding the signing secret.
        #[arg(long)]
        secret_file: Option<PathBuf>,
        /// The event type.
        #[arg(long = "type", default_value = "webhook.test")]
        event_type: String,
        /// The event id (default: a fresh UUID); resend an id to see deduplication.
        #[arg(long)]
        id: Option<String>,
        /// The event's `data`, as JSON.
        #[arg(long, default_value = r#"{"hello":"world"}"#)]
        data: String,
    },
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
}

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

fn fail(message: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("hookd: {message}");
    ExitCode::from(code)
}

/// Runs the command line; the binary's `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the async runtime: {e}"), 1),
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let config = match Config::load(cli.config.as_deref(), &Config::process_env()) {
                Ok(c) => c,
                Err(ConfigError(e)) => return fail(e, 2),
            };
            runtime.block_on(serve(config))
        }
        Command::CheckConfig { file } => check_config(&file),
        Command::Send {
            to,
            secret,
            secret_file,
            event_type,
            id,
            data,
        } => runtime.block_on(send_one(to, secret, secret_file, event_type, id, data)),
        Command::Backup { to, data_dir } => {
            let config = match Config::load(cli.config.as_deref(), &Config::process_env()) {
                Ok(c) => c,
                Err(ConfigError(e)) => return fail(e, 2),
            };
            report(runtime.block_on(backup::backup(&config, data_dir.as_deref(), &to)))
        }
        Command::VerifyData { dir } => match backup::verify(&dir) {
            Ok((text, consistent)) => {
                print!("{text}");
                if consistent {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => fail(e.message, 2),
        },
        Command::Compact { data_dir } => {
            let dir = match data_dir {
                Some(d) => d,
                None => match Config::load(cli.config.as_deref(), &Config::process_env()) {
                    Ok(c) => c.data_dir,
                    Err(ConfigError(e)) => return fail(e, 2),
                },
            };
            report(backup::compact(&dir))
        }
    }
}

fn report(result: Result<String, backup::Failure>) -> ExitCode {
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.message, if e.usage { 2 } else { 1 }),
    }
}

fn check_config(file: &Path) -> ExitCode {
    match Config::load(Some(file), &Config::process_env()) {
        Ok(c) => {
            println!(
                "{}: valid ({} endpoint{})",
                file.display(),
                c.endpoints.len(),
                if c.endpoints.len() == 1 { "" } else { "s" }
            );
            ExitCode::SUCCESS
        }
        Err(ConfigError(e)) => fail(e, 2),
    }
}

async fn serve(config: Config) -> ExitCode {
    let data_dir = config.data_dir.clone();
    let names: Vec<String> = config.endpoints.iter().map(|e| e.name.clone()).collect();
    let running = match server::start(config, None).await {
        Ok(r) => r,
        Err(e) => return fail(e, 1),
    };
    // Plain stdout, not the log: the one place a secret is shown, once, to whoever started it.
    println!(
        "hookd {} running; data in {}",
        env!("CARGO_PKG_VERSION"),
        data_dir.display()
    );
    for name in &names {
        println!(
            "  receiving: POST http://{}/webhooks/{name}",
            running.receiver_addr
        );
    }
    println!("  admin API: http://{}/api/stats", running.admin_addr);
    if let Some((path, secret)) = &running.new_secret {
        // Shown once, and only to a person at a terminal: under systemd stdout is the
        // journal, and secrets never go to logs.
        if std::io::stdout().is_terminal() || std::env::var_os("HOOKD_SHOW_SECRET").is_some() {
            println!(
                "  new signing secret for `default` (kept in {}):",
                path.display()
            );
            println!("    {}", secret.to_whsec());
        } else {
            println!(
                "  new signing secret for `default` generated; read it from {}",
                path.display()
            );
        }
    }
    if let Some(path) = &running.secret_file {
        println!(
            "  try it: hookd send --to http://{}/webhooks/default --secret-file {}",
            running.receiver_addr,
            path.display()
        );
    }
    println!(
        "listening receiver={} admin={}",
        running.receiver_addr, running.admin_addr
    );
    wait_for_signal().await;
    running.shutdown();
    running.wait().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("stop signal received");
}

async fn send_one(
    to: String,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    event_type: String,
    id: Option<String>,
    data: String,
) -> ExitCode {
    let text = match (secret, secret_file) {
        (Some(s), _) => s,
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => return fail(format!("cannot read {}: {e}", path.display()), 2),
        },
        (None, None) => return fail("give --secret or --secret-file", 2),
    };
    let secret = match Secret::parse(&text) {
        Ok(s) => s,
        Err(e) => return fail(format!("the secret {e}"), 2),
    };
    let data = match serde_json::from_str(&data) {
        Ok(d) => d,
        Err(e) => return fail(format!("--data is not JSON: {e}"), 2),
    };
    match send::send(send::SendArgs {
        to,
        secret,
        event_type,
        id,
        data,
    })
    .await
    {
        Ok((status, body)) => {
            println!("{status} {body}");
            if (200..300).contains(&status) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => fail(e, 1),
    }
}
