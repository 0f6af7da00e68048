//! `hookd send`: sign and send one event, as a Standard Webhooks sender would. Lets a new
//! user try a running hookd at once, and shows how senders sign. `hookd simulate` sends
//! through the same signed POST.

use super::{Failure, Outcome};
use crate::secret::Secret;
use crate::verify;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("signing").required(true).args(["secret", "secret_file"])))]
pub(super) struct Args {
    /// The endpoint URL, e.g. http://127.0.0.1:8080/webhooks/default
    #[arg(long)]
    to: String,
    /// The signing secret (whsec_...); visible to other users in the process list, so prefer
    /// --secret-file.
    #[arg(long)]
    secret: Option<String>,
    /// A file holding the signing secret, e.g. ./hookd-data/secrets/default.secret
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// The event type.
    #[arg(long = "type", default_value = "webhook.test")]
    event_type: String,
    /// The event id (default: a fresh UUID); resend an id to see deduplication. Printable
    /// ASCII without spaces, at most 255 characters (it also goes in the webhook-id header).
    #[arg(long, value_parser = parse_event_id)]
    id: Option<String>,
    /// The event's `data`: JSON, `@FILE` to read it from a file, or `-` for standard input.
    #[arg(long, default_value = r#"{"hello":"world"}"#)]
    data: String,
}

/// The longest event id `--id` takes.
const MAX_ID_LEN: usize = 255;

/// An event id a receiver can take as a `webhook-id` header and show back: printable ASCII,
/// no spaces, 1 to [`MAX_ID_LEN`] characters.
pub(super) fn parse_event_id(id: &str) -> Result<String, String> {
    if id.is_empty() {
        return Err("the event id is empty".into());
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!(
            "the event id is {} characters long; at most {MAX_ID_LEN} are allowed",
            id.len()
        ));
    }
    if let Some((i, c)) = id.char_indices().find(|(_, c)| !c.is_ascii_graphic()) {
        return Err(format!(
            "the event id has {c:?} at byte {i}; only printable ASCII without spaces is allowed"
        ));
    }
    Ok(id.to_owned())
}

/// The text of `--data`: inline, `@FILE`, or `-` (standard input).
fn data_text(arg: &str) -> Result<String, Failure> {
    if arg == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| Failure::Usage(format!("cannot read --data from standard input: {e}")))?;
        Ok(text)
    } else if let Some(path) = arg.strip_prefix('@') {
        std::fs::read_to_string(path)
            .map_err(|e| Failure::Usage(format!("cannot read --data file {path}: {e}")))
    } else {
        Ok(arg.to_owned())
    }
}

/// A signed POST that got no answer: `reason` is the whole chain of causes (refused, DNS,
/// TLS, timeout), which reqwest's own message leaves out.
#[derive(Debug, thiserror::Error)]
#[error("cannot send to {to}: {reason}")]
pub(super) struct SendError {
    to: String,
    reason: String,
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
    let data: serde_json::Value = serde_json::from_str(&data_text(&args.data)?)
        .map_err(|e| Failure::Usage(format!("--data is not JSON: {e}")))?;
    let id = args.id.unwrap_or_else(|| {
        // Made up here: say it, so the event can be looked up (/api/events/ID).
        let id = new_event_id();
        eprintln!("event id {id}");
        id
    });
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
    let response = verify::signed_post(&reqwest::Client::new(), to, secret, id, body.to_owned())
        .send()
        .await
        .map_err(|e| SendError {
            to: to.to_owned(),
            reason: crate::process::chain(&e.without_url()),
        })?;
    let status = response.status().as_u16();
    // An answer whose body cannot be read still has its status, which is what counts.
    let body = response.text().await.unwrap_or_default();
    Ok(Answer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn event_ids_must_be_printable_and_bounded() {
        assert_eq!(parse_event_id("evt-1").unwrap(), "evt-1");
        assert!(parse_event_id("").unwrap_err().contains("empty"));
        assert!(parse_event_id("evt 1").unwrap_err().contains("' '"));
        assert!(parse_event_id("evt\n1").unwrap_err().contains("printable"));
        assert!(parse_event_id("é").is_err());
        assert!(parse_event_id(&"a".repeat(255)).is_ok());
        assert!(parse_event_id(&"a".repeat(256))
            .unwrap_err()
            .contains("at most 255"));
    }

    #[test]
    fn data_comes_inline_or_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data.json");
        std::fs::write(&file, r#"{"from":"file"}"#).unwrap();
        assert_eq!(
            data_text(&format!("@{}", file.display())).unwrap(),
            r#"{"from":"file"}"#
        );
        assert_eq!(data_text("{}").unwrap(), "{}");
        assert!(matches!(
            data_text("@/nonexistent/data.json"),
            Err(Failure::Usage(_))
        ));
    }

    #[test]
    fn usage_names_both_ways_to_give_the_secret() {
        let usage = <Cmd as clap::CommandFactory>::command()
            .render_usage()
            .to_string();
        assert!(usage.contains("--secret-file"), "{usage}");
        assert!(Cmd::try_parse_from(["send", "--to", "u"]).is_err());
        assert!(
            Cmd::try_parse_from(["send", "--to", "u", "--secret", "a", "--secret-file", "f"])
                .is_err()
        );
        assert!(Cmd::try_parse_from(["send", "--to", "u", "--secret-file", "f"]).is_ok());
    }
}
