//! The `forward` processor: POSTs the original body to the operator's own service, signed
//! anew with the Standard Webhooks scheme so that service can verify hookd as the sender.
//!
//! The `webhook-id` is the event id on every attempt, so the receiving service can deduplicate
//! hookd's own retries: together that makes processing exactly-once in effect.
//!
//! Redirects are never followed: following one would re-POST the body and a valid signature
//! to a host the operator never named. A 3xx is a failed attempt that says where it pointed.
//! Credentials in the URL (`user:pass@`) never reach a log line or an attempt record.

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
    /// `url` with any credentials masked: the only form that is ever shown.
    shown: String,
    secret: Secret,
}

impl ForwardProcessor {
    /// A forwarder with its own HTTP client.
    pub fn new(
        url: String,
        secret: Secret,
        timeout: Duration,
    ) -> Result<ForwardProcessor, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("hookd/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(ForwardProcessor {
            client,
            shown: redact_url(&url),
            url,
            secret,
        })
    }
}

/// `url` with the user and password replaced by `***`; a URL that does not parse is shown
/// only up to its host part's start, since its credentials cannot be located reliably.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.username().is_empty() && parsed.password().is_none() {
                return parsed.to_string();
            }
            if parsed.set_username("***").is_err() || parsed.set_password(None).is_err() {
                return format!("{}://***", parsed.scheme());
            }
            parsed.to_string()
        }
        Err(_) => match url.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://***"),
            None => "***".to_string(),
        },
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
                // reqwest's message would repeat the URL, credentials and all.
                .map_err(|e| {
                    ProcessError::Retry(format!("POST {} failed: {}", self.shown, e.without_url()))
                })?;
            let status = response.status();
            if status.is_success() {
                return Ok(format!(
                    "forwarded to {}: HTTP {}",
                    self.shown,
                    status.as_u16()
                ));
            }
            if status.is_redirection() {
                let target = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    // A relative Location is shown as the absolute URL it names.
                    .map(|l| match response.url().join(l) {
                        Ok(absolute) => redact_url(absolute.as_str()),
                        Err(_) => redact_url(l),
                    })
                    .map(|l| l.chars().take(ERROR_BODY_CHARS).collect::<String>())
                    .unwrap_or_else(|| "nowhere".to_string());
                return Err(ProcessError::Retry(format!(
                    "{} answered HTTP {} redirecting to {target}: redirects are not followed; \
                     set forward.url to the final address",
                    self.shown,
                    status.as_u16()
                )));
            }
            let text = response.text().await.unwrap_or_default();
            let snippet: String = text.chars().take(ERROR_BODY_CHARS).collect();
            Err(ProcessError::Retry(format!(
                "{} answered HTTP {}: {snippet}",
                self.shown,
                status.as_u16()
            )))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Event, EventState};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use warp::Filter;

    fn job() -> Job {
        Job {
            event: Event {
                seq: 1,
                endpoint: "std".into(),
                event_id: "evt-1".into(),
                event_type: "webhook.test".into(),
                received_at_ms: 0,
                delivery_id: 1,
                state: EventState::Processing,
                attempts: 0,
                next_attempt_at_ms: None,
                last_error: None,
                replays: 0,
                attempts_before_replay: 0,
            },
            payload: bytes::Bytes::from_static(b"{\"id\":\"evt-1\"}"),
        }
    }

    fn forwarder(url: String) -> ForwardProcessor {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        ForwardProcessor::new(url, secret, Duration::from_secs(5)).unwrap()
    }

    /// A local service: `/moved` redirects (307) to `/elsewhere`, which counts its hits.
    async fn redirecting_service() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let moved = warp::path("moved").map(move || {
            warp::http::Response::builder()
                .status(307)
                .header("location", "/elsewhere")
                .body(String::new())
                .unwrap()
        });
        let elsewhere = warp::path("elsewhere").map(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            warp::http::Response::new(String::from("ok"))
        });
        tokio::spawn(warp::serve(moved.or(elsewhere)).incoming(listener).run());
        (addr, hits)
    }

    #[tokio::test]
    async fn a_redirect_is_a_failed_attempt_and_never_followed() {
        let (addr, hits) = redirecting_service().await;
        let forward = forwarder(format!("http://alice:s3cret@{addr}/moved"));
        let Err(ProcessError::Retry(reason)) = forward.process(&job()).await else {
            panic!("a redirect must fail the attempt");
        };
        assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect was followed");
        assert!(reason.contains("HTTP 307"), "{reason}");
        assert!(reason.contains(&format!("{addr}/elsewhere")), "{reason}");
        assert!(
            !reason.contains("s3cret") && !reason.contains("alice"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn credentials_stay_out_of_connection_errors() {
        // A port that was free a moment ago: the connection is refused.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let forward = forwarder(format!("http://alice:s3cret@{addr}/hook"));
        let Err(ProcessError::Retry(reason)) = forward.process(&job()).await else {
            panic!("a refused connection must fail the attempt");
        };
        assert!(
            reason.contains(&format!("http://***@{addr}/hook")),
            "{reason}"
        );
        assert!(
            !reason.contains("s3cret") && !reason.contains("alice"),
            "{reason}"
        );
    }

    #[test]
    fn credentials_in_a_url_are_masked() {
        assert_eq!(
            redact_url("https://alice:s3cret@example.org/hook?x=1"),
            "https://***@example.org/hook?x=1"
        );
        assert_eq!(
            redact_url("http://token@10.0.0.1:81/"),
            "http://***@10.0.0.1:81/"
        );
        assert_eq!(redact_url("http://example.org/a"), "http://example.org/a");
        assert!(!redact_url("http://u:p@[bad/").contains("p@"));
    }
}
