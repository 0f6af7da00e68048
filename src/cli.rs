//! The command line: `hookd [serve]`, `hookd check-config FILE`, `hookd send ...`,
//! `hookd backup --to DIR`, `hookd verify-data DIR`, `hookd compact`, `hookd simulate ...`,
//! `hookd hash-password`.

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
    /// Read a password from standard input and print its argon2 hash for `admin.password_hash`.
    HashPassword,
    /// Act as Fasten Connect: send realistic signed events, or serve a local stand-in for
    /// the Fasten API (--serve-api) that hookd can download exports from.
    Simulate(SimulateArgs),
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// Serve the stand-in API on this address (e.g. 127.0.0.1:9090) until stopped.
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["to", "id"])]
    serve_api: Option<std::net::SocketAddr>,
    /// The endpoint URL to send an event to, e.g. http://127.0.0.1:8080/webhooks/fasten
    #[arg(long, required_unless_present = "serve_api")]
    to: Option<String>,
    /// The endpoint's signing secret (whsec_...).
    #[arg(long, conflicts_with = "secret_file")]
    secret: Option<String>,
    /// A file holding the signing secret.
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// The event type: one of the seven Fasten Connect types.
    #[arg(long, default_value = "webhook.test", value_parser = clap::builder::PossibleValuesParser::new(crate::simulate::EVENT_TYPES))]
    event: String,
    /// test or live.
    #[arg(long, default_value = "test", value_parser = ["test", "live"])]
    api_mode: String,
    /// Send the older single `download_link` instead of `download_links[]`.
    #[arg(long)]
    legacy_link: bool,
    /// Resend an event id (to see deduplication); default: a fresh UUID.
    #[arg(long)]
    id: Option<String>,
    /// The org_connection_id the event is about (default: a fresh UUID).
    #[arg(long)]
    connection: Option<String>,
    /// The task_id of an export event (default: a fresh UUID).
    #[arg(long)]
    task: Option<String>,
    /// The API base the download links point at (the stand-in's, e.g. http://127.0.0.1:9090/v1).
    #[arg(long, default_value = crate::config::defaults::FASTEN_API_BASE)]
    api_base: String,
    /// Resources per export file (the stand-in generates that many).
    #[arg(long, default_value_t = 50)]
    resources: u64,
    /// Files per export.
    #[arg(long, default_value_t = 1)]
    files: u32,
    /// Stand-in: the public id it requires (Basic auth); with --private-key.
    #[arg(long, requires = "private_key")]
    public_id: Option<String>,
    /// Stand-in: the private key it requires.
    #[arg(
        long,
        env = "HOOKD_FASTEN_PRIVATE_KEY",
        hide_env_values = true,
        requires = "public_id"
    )]
    private_key: Option<String>,
    /// Stand-in: how long a signed download URL stays valid.
    #[arg(long, default_value_t = 600)]
    url_ttl_secs: u64,
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
        Command::Simulate(args) => runtime.block_on(simulate(args)),
        Command::HashPassword => hash_password(),
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

fn read_secret(secret: Option<String>, secret_file: Option<PathBuf>) -> Result<Secret, ExitCode> {
    let text = match (secret, secret_file) {
        (Some(s), _) => s,
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => return Err(fail(format!("cannot read {}: {e}", path.display()), 2)),
        },
        (None, None) => return Err(fail("give --secret or --secret-file", 2)),
    };
    Secret::parse(&text).map_err(|e| fail(format!("the secret {e}"), 2))
}

async fn simulate(args: SimulateArgs) -> ExitCode {
    use crate::simulate::{self, api, EventSpec};
    if let Some(addr) = args.serve_api {
        let options = api::Options {
            public_id: args.public_id,
            private_key: args.private_key,
            url_ttl: std::time::Duration::from_secs(args.url_ttl_secs),
            default_resources: args.resources,
            ..api::Options::default()
        };
        let open = options.public_id.is_none();
        let stand_in = match api::start(addr, options).await {
            Ok(s) => s,
            Err(e) => return fail(format!("cannot listen on {addr}: {e}"), 1),
        };
        println!("Fasten API stand-in running");
        println!("  api_base:    {}", stand_in.api_base);
        println!(
            "  signed URLs: http://{} (valid {} s)",
            stand_in.files_addr, args.url_ttl_secs
        );
        println!(
            "  credentials: {}",
            if open {
                "none required"
            } else {
                "HTTP Basic public_id:private_key"
            }
        );
        println!(
            "  in hookd.toml: [fasten] api_base = \"{}\", download_hosts = [\"http://{}\"]",
            stand_in.api_base,
            stand_in.api_addr.ip()
        );
        wait_for_signal().await;
        stand_in.stop().await;
        return ExitCode::SUCCESS;
    }
    let Some(to) = args.to else {
        return fail("give --to URL (or --serve-api ADDR)", 2);
    };
    let secret = match read_secret(args.secret, args.secret_file) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut spec = EventSpec {
        event_type: args.event,
        api_mode: args.api_mode,
        api_base: args.api_base,
        resources: args.resources,
        files: args.files,
        legacy_link: args.legacy_link,
        ..EventSpec::default()
    };
    if let Some(c) = args.connection {
        spec.org_connection_id = c;
    }
    if let Some(t) = args.task {
        spec.task_id = t;
    }
    let id = args.id.unwrap_or_else(send::new_event_id);
    let body = simulate::event_body(&spec, &id);
    match simulate::send(&to, &secret, &id, &body).await {
        Ok((status, answer)) => {
            println!("{status} {answer}");
            println!(
                "event id {id} ({}), org_connection_id {}",
                spec.event_type, spec.org_connection_id
            );
            if (200..300).contains(&status) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => fail(e, 1),
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
    let signals = crate::shutdown::Signals::install();
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
    signals.recv().await;
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
