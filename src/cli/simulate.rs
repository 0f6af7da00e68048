//! `hookd simulate`: act as Fasten Connect — send one realistic signed event, or serve the
//! local stand-in for the Fasten API (`--serve-api`) until stopped.

use super::send::{new_event_id, parse_event_id, post_signed, read_secret};
use super::{Failure, Outcome};
use crate::simulate::{self, api, EventSpec};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub(super) struct Args {
    /// Serve the stand-in API on this address (e.g. 127.0.0.1:9090) until stopped.
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["to", "id"])]
    serve_api: Option<SocketAddr>,
    /// Stand-in: the port its signed download URLs point at (same address as --serve-api;
    /// default: a free one). Fix it when a firewall or download_hosts must name it.
    #[arg(long, value_name = "PORT", requires = "serve_api")]
    signed_url_port: Option<u16>,
    /// Stand-in: announce each export it is asked for to this endpoint URL, as Fasten does
    /// once an export is ready (a signed patient.ehi_export_success; needs --secret-file
    /// or --secret).
    #[arg(long, value_name = "URL", requires = "serve_api")]
    announce_to: Option<String>,
    /// Stand-in: seconds from an export request to its announcement.
    #[arg(long, default_value_t = 2, requires = "announce_to")]
    announce_after_secs: u64,
    /// The endpoint URL to send an event to, e.g. http://127.0.0.1:8080/webhooks/fasten
    #[arg(long)]
    to: Option<String>,
    /// The endpoint's signing secret (whsec_...).
    #[arg(long, conflicts_with = "secret_file")]
    secret: Option<String>,
    /// A file holding the signing secret.
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// The event type: one of the seven Fasten Connect types.
    #[arg(long, default_value = "webhook.test", value_parser = clap::builder::PossibleValuesParser::new(simulate::EVENT_TYPES))]
    event: String,
    /// test or live.
    #[arg(long, default_value = "test", value_parser = ["test", "live"])]
    api_mode: String,
    /// Send the older single `download_link` instead of `download_links[]`.
    #[arg(long)]
    legacy_link: bool,
    /// Resend an event id (to see deduplication); default: a fresh UUID.
    #[arg(long, value_parser = parse_event_id)]
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
    /// Resources per export file (the stand-in generates that many, and announces exports
    /// of that many).
    #[arg(long, default_value_t = 50)]
    resources: u64,
    /// Files per export.
    #[arg(long, default_value_t = 1)]
    files: u32,
    /// Stand-in: the public id it requires (Basic auth); with --private-key.
    #[arg(long, requires = "serve_api")]
    public_id: Option<String>,
    // Not a clap `requires`: a value from the environment counts as given, so an exported
    // key would make every `simulate --to` ask for --public-id. `serve_api` checks the pair.
    /// Stand-in: the private key it requires, with --public-id.
    #[arg(long, env = "HOOKD_FASTEN_PRIVATE_KEY", hide_env_values = true)]
    private_key: Option<String>,
    /// Stand-in: how long a signed download URL stays valid.
    #[arg(long, default_value_t = 600)]
    url_ttl_secs: u64,
}

/// `hookd simulate`: the stand-in with `--serve-api`, one event otherwise.
pub(super) async fn run(args: Args) -> Outcome {
    match args.serve_api {
        Some(addr) => serve_api(addr, args).await,
        None => send_event(args).await,
    }
}

/// Serves the Fasten API stand-in on `addr` until a stop signal, after printing how to
/// point hookd at it.
async fn serve_api(addr: SocketAddr, args: Args) -> Outcome {
    if args.public_id.is_some() != args.private_key.is_some() {
        return Err(Failure::Usage(
            "the stand-in requires credentials as a pair: --public-id with --private-key (or \
             HOOKD_FASTEN_PRIVATE_KEY), or neither for an open stand-in"
                .into(),
        ));
    }
    let deliver = match &args.announce_to {
        Some(to) => Some(api::Deliver {
            to: to.clone(),
            secret: read_secret(args.secret.clone(), args.secret_file.clone())?,
            after: std::time::Duration::from_secs(args.announce_after_secs),
            files: args.files,
            resources: args.resources,
        }),
        None => None,
    };
    let options = api::Options {
        deliver,
        public_id: args.public_id,
        private_key: args.private_key,
        url_ttl: std::time::Duration::from_secs(args.url_ttl_secs),
        files_port: args.signed_url_port.unwrap_or(0),
        default_resources: args.resources,
        ..api::Options::default()
    };
    let open = options.public_id.is_none();
    let signals = crate::shutdown::Signals::install();
    let stand_in = api::start(addr, options).await.map_err(|e| {
        let port = match args.signed_url_port {
            Some(p) => format!(" and {}:{p} (--signed-url-port)", addr.ip()),
            None => String::new(),
        };
        Failure::Failed(format!("cannot listen on {addr}{port}: {e}"))
    })?;
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
    if let Some(to) = &args.announce_to {
        println!(
            "  exports:     each one requested is announced to {to} after {} s",
            args.announce_after_secs
        );
    }
    println!("  each request it serves is logged on stderr");
    signals.recv().await;
    stand_in.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// Sends one Fasten-shaped event to `--to` and prints the answer and what it was about.
async fn send_event(args: Args) -> Outcome {
    let Some(to) = args.to else {
        return Err(Failure::Usage(
            "hookd simulate either sends one Fasten event (--to URL --secret-file FILE \
             [--event TYPE]) or serves a stand-in for the Fasten API (--serve-api ADDR); \
             see `hookd simulate --help`"
                .into(),
        ));
    };
    let secret = read_secret(args.secret, args.secret_file)?;
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
    let id = args.id.unwrap_or_else(new_event_id);
    let body = simulate::event_body(&spec, &id);
    let answer = post_signed(&to, &secret, &id, &body).await?;
    let code = answer.report();
    // The ids the payload carries (a support request or a test event names no connection).
    let data = simulate::event_data(&spec);
    let mut sent = format!("event id {id} ({})", spec.event_type);
    for key in ["org_connection_id", "task_id"] {
        if let Some(value) = data[key].as_str() {
            sent.push_str(&format!(", {key} {value}"));
        }
    }
    println!("{sent}");
    Ok(code)
}
