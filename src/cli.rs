//! The command line: `hookd [serve]`, `hookd check-config FILE`, `hookd send ...`,
//! `hookd hash-password`.

use crate::config::{Config, ConfigError};
use crate::secret::Secret;
use crate::{send, server};
use clap::{Parser, Subcommand};
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
    /// Read a password from standard input and print its argon2 hash for `admin.password_hash`.
    HashPassword,
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
        Command::HashPassword => hash_password(),
    }
}

fn hash_password() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        return fail(
            format!("cannot read the password from standard input: {e}"),
            1,
        );
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.len() < 8 {
        return fail("the password must be at least 8 characters", 2);
    }
    match crate::admin::auth::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("cannot hash the password: {e}"), 1),
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
        println!(
            "  new signing secret for `default` (kept in {}):",
            path.display()
        );
        println!("    {}", secret.to_whsec());
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
