//! `hookd send`: sign and send one event, as a Standard Webhooks sender would. Lets a new
//! user try a running hookd at once, and shows how senders sign.

use crate::clock;
use crate::secret::Secret;
use crate::verify;

/// What to send.
pub struct SendArgs {
    pub to: String,
    pub secret: Secret,
    pub event_type: String,
    pub id: Option<String>,
    pub data: serde_json::Value,
}

/// A fresh, random event id (a UUIDv4, as Fasten Connect uses).
pub fn new_event_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Sends the event; returns the HTTP status and body of the answer.
pub async fn send(args: SendArgs) -> Result<(u16, String), String> {
    let id = args.id.unwrap_or_else(new_event_id);
    let body = serde_json::json!({
        "id": id,
        "type": args.event_type,
        "data": args.data,
    })
    .to_string();
    let ts = clock::system_secs();
    let signature = verify::sign(&args.secret, &id, ts, body.as_bytes());
    let response = reqwest::Client::new()
        .post(&args.to)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("cannot send to {}: {e}", args.to))?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    Ok((status, text))
}
