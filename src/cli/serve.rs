//! `hookd serve` (the default command): start hookd, say where it listens, and run until a
//! stop signal.

use super::{Failure, Outcome};
use crate::config::Config;
use crate::server::{self, Running};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

/// Runs hookd on `config` until SIGTERM or Ctrl-C, then shuts it down gracefully.
pub(super) async fn run(config: Config) -> Outcome {
    // Before the listeners bind: a stop signal in the first milliseconds of serving must
    // drain like any other, not kill hookd with the default disposition.
    let signals = crate::shutdown::Signals::install();
    let data_dir = config.data_dir.clone();
    let names: Vec<String> = config.endpoints.iter().map(|e| e.name.clone()).collect();
    let running = server::start(config, None)
        .await
        .map_err(|e| Failure::Failed(e.to_string()))?;
    // Plain stdout, not the log: the one place a secret is shown, once, to whoever started it.
    println!(
        "hookd {} running; data in {}",
        env!("CARGO_PKG_VERSION"),
        data_dir.display()
    );
    println!("  web UI:    http://{}/", running.admin_addr);
    for name in &names {
        println!(
            "  receiving: POST http://{}/webhooks/{name}",
            running.receiver_addr
        );
    }
    println!("  admin API: http://{}/api/stats", running.admin_addr);
    show_secret(&running);
    // The log line, with its time and level, for the journal; then the machine-readable line
    // scripts and tests wait for (ports chosen with :0 included), last, so that whoever sees
    // it finds hookd ready and the log line written.
    tracing::info!(
        receiver = %running.receiver_addr,
        admin = %running.admin_addr,
        "listening"
    );
    println!(
        "listening receiver={} admin={}",
        running.receiver_addr, running.admin_addr
    );
    signals.recv().await;
    running.shutdown();
    running.wait().await;
    Ok(ExitCode::SUCCESS)
}

/// Tells where the default endpoint's secret is, and prints a newly generated one.
fn show_secret(running: &Running) {
    if let Some((path, secret)) = &running.new_secret {
        // Shown once, and only to a person at a terminal (or when HOOKD_SHOW_SECRET asks):
        // under systemd stdout is the journal, and secrets never go to logs.
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
            "  try it: {} send --to http://{}/webhooks/default --secret-file {}",
            runnable_name(),
            running.receiver_addr,
            path.display()
        );
    }
}

/// How to run this very binary from the current directory: `hookd` when that is what PATH
/// finds, its path otherwise (after `cargo run`, `hookd` is not on PATH and a hint saying
/// `hookd send` would fail).
fn runnable_name() -> String {
    let Ok(me) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "hookd".into();
    };
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("hookd"))
            .find(|candidate| candidate.is_file())
    });
    if on_path.and_then(|p| std::fs::canonicalize(p).ok()).as_ref() == Some(&me) {
        return "hookd".into();
    }
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| me.strip_prefix(cwd).ok().map(|r| Path::new(".").join(r)));
    relative.unwrap_or(me).display().to_string()
}
