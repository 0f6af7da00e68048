//! `hookd serve` (the default command): start hookd, say where it listens, and run until a
//! stop signal.

use super::{Failure, Outcome};
use crate::config::Config;
use crate::server::{self, Running};
use std::io::IsTerminal;
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
    for name in &names {
        println!(
            "  receiving: POST http://{}/webhooks/{name}",
            running.receiver_addr
        );
    }
    println!("  admin API: http://{}/api/stats", running.admin_addr);
    show_secret(&running);
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
            "  try it: hookd send --to http://{}/webhooks/default --secret-file {}",
            running.receiver_addr,
            path.display()
        );
    }
}

/// Waits for SIGTERM (systemd's stop) or Ctrl-C.
pub(super) async fn wait_for_signal() {
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
