//! `hookd send`: sign and send one event, as a Standard Webhooks sender would. Lets a new
//! user try a running hookd at once, and shows how senders sign. `hookd simulate` sends
//! through the same signed POST.

use super::{Failure, Outcome};
use crate::clock;
use crate::secret::Secret;
use crate::verify;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub(super) struct Args {
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
}

/// A signed POST that got no answer.
#[derive(Debug, thiserror::Error)]
#[error("cannot send to {to}: {source}")]
pub(super) struct SendError {
    to: String,
    source: reqwest::Error,
}

/// The receiver's answer to a signed POST.
pub(super) struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    /// Prints `STATUS BODY`; exit 0 for a 2xx answer, 1 otherwise.
    pub(super) fn report(&self) -> ExitCode {
        println!("{} {}", self.status, self.body);
        if (200..300).contains(&self.status) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    }
}

/// `hookd send`: builds `{id, type, data}`, signs it and prints the answer.
pub(super) async fn run(args: Args) -> Outcome {
    let secret = read_secret(args.secret, args.secret_file)?;
    let data: serde_json::Value = serde_json::from_str(&args.data)
        .map_err(|e| Failure::Usage(format!("--data is not JSON: {e}")))?;
    let id = args.id.unwrap_or_else(new_event_id);
    let body = serde_json::json!({
        "id": id,
        "type": args.event_type,
        "data": data,
    })
    .to_string();
    Ok(post_signed(&args.to, &secret, &id, &body).await?.report())
}

/// The signing secret from `--secret` or `--secret-file`.
pub(super) fn read_secret(
    secret: Option<String>,
    secret_file: Option<PathBuf>,
) -> Result<Secret, Failure> {
    let text = match (secret, secret_file) {
        (Some(s), _) => s,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?,
        (None, None) => return Err(Failure::Usage("give --secret or --secret-file".into())),
    };
    Secret::parse(&text).map_err(|e| Failure::Usage(format!("the secret {e}")))
}

/// A fresh, random event id (a UUIDv4, as Fasten Connect uses).
pub(super) fn new_event_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Signs `body` (Standard Webhooks, timestamped now) and POSTs it to `to`.
pub(super) async fn post_signed(
    to: &str,
    secret: &Secret,
    id: &str,
    body: &str,
) -> Result<Answer, SendError> {
    let ts = clock::system_secs();
    let signature = verify::sign(secret, id, ts, body.as_bytes());
    let response = reqwest::Client::new()
        .post(to)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .map_err(|source| SendError {
            to: to.to_owned(),
            source,
        })?;
    let status = response.status().as_u16();
    // An answer whose body cannot be read still has its status, which is what counts.
    let body = response.text().await.unwrap_or_default();
    Ok(Answer { status, body })
}
