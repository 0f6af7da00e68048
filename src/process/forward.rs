//! The `forward` processor: POSTs the original body to the operator's own service, signed
//! anew with the Standard Webhooks scheme so that service can verify hookd as the sender.
//!
//! The `webhook-id` is the event id on every attempt, so the receiving service can deduplicate
//! hookd's own retries: together that makes processing exactly-once in effect.
//!
//! Redirects are never followed: following one would re-POST the body and a valid signature
//! to a host the operator never named. A 3xx is a failed attempt that says where it pointed.
//! The URL is shown as its scheme, host and port only: its credentials (`user:pass@`), and a
//! path or query that may carry a token (a chat service's incoming-webhook URL is its own
//! secret), never reach a log line, an attempt record or the UI.

use super::{chain, Job, ProcessError, Processor};
use crate::config::shown_url;
use crate::secret::Secret;
use crate::verify;
use futures_util::future::BoxFuture;
use std::time::Duration;

/// Forwards events to `url`.
pub struct ForwardProcessor {
    client: reqwest::Client,
    url: String,
    /// `url` as [`shown_url`] shows it: the only form that is ever shown.
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
            shown: shown_url(&url),
            url,
            secret,
        })
    }
}

/// Where a redirect pointed, for the operator to fix `forward.url`: scheme, host, port and
/// path. Its credentials, query and fragment are dropped, as they may carry a token.
fn shown_location(location: &reqwest::Url) -> String {
    let mut shown = format!("{}://", location.scheme());
    shown.push_str(location.host_str().unwrap_or(""));
    if let Some(port) = location.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(location.path());
    shown
}

/// At most this much of an error response is kept in the attempt record.
const ERROR_BODY_CHARS: usize = 200;

impl Processor for ForwardProcessor {
    fn name(&self) -> &'static str {
        "forward"
    }

    fn process<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<String, ProcessError>> {
        Box::pin(async move {
            let response = verify::signed_post(
                &self.client,
                &self.url,
                &self.secret,
                &job.event.event_id,
                job.payload.clone(),
            )
            .send()
            .await
            // reqwest's message would repeat the URL, credentials and all; its causes
            // (refused, DNS, TLS, timeout) are what the operator needs.
            .map_err(|e| {
                ProcessError::Retry(format!(
                    "POST {} failed: {}",
                    self.shown,
                    chain(&e.without_url())
                ))
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
                        Ok(absolute) => shown_location(&absolute),
                        Err(_) => "an address that is not a URL".to_string(),
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
        let forward = forwarder(format!("http://alice:s3cret@{addr}/moved?token=t0k"));
        let Err(ProcessError::Retry(reason)) = forward.process(&job()).await else {
            panic!("a redirect must fail the attempt");
        };
        assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect was followed");
        assert!(reason.contains("HTTP 307"), "{reason}");
        assert!(reason.contains(&format!("{addr}/elsewhere")), "{reason}");
        for secret in ["s3cret", "alice", "t0k", "/moved"] {
            assert!(!reason.contains(secret), "{secret} shown: {reason}");
        }
    }

    #[tokio::test]
    async fn credentials_stay_out_of_connection_errors() {
        // A port that was free a moment ago: the connection is refused.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let forward = forwarder(format!("http://alice:s3cret@{addr}/T0/B0/k3y?token=t0k"));
        let Err(ProcessError::Retry(reason)) = forward.process(&job()).await else {
            panic!("a refused connection must fail the attempt");
        };
        assert!(
            reason.contains(&format!("POST http://{addr}/... failed")),
            "{reason}"
        );
        // The cause, not only reqwest's "error sending request".
        assert!(reason.contains("Connection refused"), "{reason}");
        for secret in ["s3cret", "alice", "t0k", "k3y"] {
            assert!(!reason.contains(secret), "{secret} shown: {reason}");
        }
    }

    #[test]
    fn a_redirect_target_is_shown_without_credentials_or_query() {
        let shown = |u: &str| shown_location(&reqwest::Url::parse(u).unwrap());
        assert_eq!(
            shown("https://alice:s3cret@example.org/hook?x=1#f"),
            "https://example.org/hook"
        );
        assert_eq!(shown("http://10.0.0.1:81/a/b"), "http://10.0.0.1:81/a/b");
    }
}
