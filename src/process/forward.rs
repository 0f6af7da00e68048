//! The `forward` processor: POSTs the original body to the operator's own service, signed
//! anew with the Standard Webhooks scheme so that service can verify hookd as the sender.
//!
//! The `webhook-id` is the event id on every attempt, so the receiving service can deduplicate
//! hookd's own retries: together that makes processing exactly-once in effect.

use super::{Job, ProcessError, Processor};
use crate::clock;
use crate::secret::Secret;
use crate::verify;
use futures_util::future::BoxFuture;
use std::time::Duration;

/// Forwards events to `url`.
pub struct ForwardProcessor {
    client: reqwest::Client,
    url: String,
    secret: Secret,
}

impl ForwardProcessor {
    /// A forwarder with its own HTTP client.
    pub fn new(url: String, secret: Secret, timeout: Duration) -> Result<ForwardProcessor, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("hookd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(ForwardProcessor {
            client,
            url,
            secret,
        })
    }
}

/// At most this much of an error response is kept in the attempt record.
const ERROR_BODY_CHARS: usize = 200;

impl Processor for ForwardProcessor {
    fn name(&self) -> &'static str {
        "forward"
    }

    fn process<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<String, ProcessError>> {
        Box::pin(async move {
            let ts = clock::system_secs();
            let signature = verify::sign(&self.secret, &job.event.event_id, ts, &job.payload);
            let response = self
                .client
                .post(&self.url)
                .header("content-type", "application/json")
                .header("webhook-id", &job.event.event_id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", signature)
                .body(job.payload.clone())
                .send()
                .await
                .map_err(|e| ProcessError::Retry(format!("POST {} failed: {e}", self.url)))?;
            let status = response.status();
            if status.is_success() {
                return Ok(format!(
                    "forwarded to {}: HTTP {}",
                    self.url,
                    status.as_u16()
                ));
            }
            let text = response.text().await.unwrap_or_default();
            let snippet: String = text.chars().take(ERROR_BODY_CHARS).collect();
            Err(ProcessError::Retry(format!(
                "{} answered HTTP {}: {snippet}",
                self.url,
                status.as_u16()
            )))
        })
    }
}
