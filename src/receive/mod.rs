//! The receiver: `POST /webhooks/{endpoint}`.
//!
//! Checks run in a fixed order (404 → 413 → 401 → 400 → filtered → duplicate/accepted) and
//! every request, whatever its verdict, leaves a delivery record. A 200 is written only after
//! the store's group commit returned: an acknowledged event is on disk.

mod answer;
mod body;
mod envelope;
pub mod listener;
mod record;

use crate::clock;
use crate::config::{Config, Endpoint, Profile};
use crate::ratelimit::TokenBucket;
use crate::store::{DeliveryDraft, NewEvent, ResponseLog, Store, Verdict};
use crate::verify;
use answer::Answer;
use bytes::{Buf, Bytes};
use envelope::{envelope, request_id};
use futures_util::Stream;
use http::{HeaderMap, StatusCode};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;
use warp::Filter;

/// What a 503 asks the sender to wait, in seconds.
const RETRY_AFTER_SECS: &str = "30";

/// Shared state of the receiver routes.
pub struct Receiver {
    config: Arc<Config>,
    store: Arc<Store>,
    rejected_log: TokenBucket,
    /// The same budget in bytes, so a flood of large rejected requests stays small on disk.
    rejected_log_bytes: TokenBucket,
    /// Body bytes that requests may hold at once: charged as bytes arrive, and a body whose
    /// declared length does not fit is refused before a byte of it is read.
    body_budget: body::Budget,
    pace: body::Pace,
}

impl Receiver {
    /// A receiver over `store` for the endpoints in `config`.
    pub fn new(config: Arc<Config>, store: Arc<Store>) -> Arc<Receiver> {
        let rate = config.receive.rejected_log_per_sec;
        let bytes = config.receive.rejected_log_bytes_per_sec;
        Arc::new(Receiver {
            rejected_log: TokenBucket::new(rate, (rate * 10.0).max(1.0)),
            rejected_log_bytes: TokenBucket::new(bytes, bytes * 10.0),
            body_budget: body::Budget::new(config.receive.body_budget_bytes),
            pace: body::Pace {
                deadline: Duration::from_secs(config.receive.body_timeout_secs),
                min_bytes_per_sec: config.receive.body_min_bytes_per_sec,
            },
            config,
            store,
        })
    }
}

/// The receiver's routes, with JSON answers for unknown paths and methods.
pub fn routes(
    receiver: Arc<Receiver>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
    let webhook = warp::path!("webhooks" / String)
        .and(warp::post())
        .and(warp::any().map(move || receiver.clone()))
        .and(warp::header::headers_cloned())
        .and(listener::remote())
        .and(warp::body::stream())
        .then(
            |name: String, receiver: Arc<Receiver>, headers, remote, body| async move {
                receiver.handle(name, headers, remote, body).await
            },
        );
    webhook.recover(json_rejection).unify()
}

/// Turns warp's rejections (no route, wrong method) into the same JSON shape as every answer.
pub async fn json_rejection(
    rejection: warp::Rejection,
) -> Result<warp::reply::Response, Infallible> {
    let (status, reason) = if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    } else if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "no such path")
    } else {
        (StatusCode::BAD_REQUEST, "bad request")
    };
    Ok(Answer::new(status, "rejected", reason.to_string()).into_response())
}

/// A rejection decided before anything was stored.
struct Refusal {
    status: StatusCode,
    reason: String,
}

// The reasons of refusals made before the body is read, or while it is read (what was read
// is then dropped): such a delivery keeps no body. [`body_not_read`] tells them apart.
const UNKNOWN_ENDPOINT: &str = "unknown endpoint";
const TOO_LARGE: &str = "body is larger than";
const OVER_BUDGET: &str = "too many request bodies in flight; retry later";
const UNREADABLE: &str = "the body could not be read";
const TOO_SLOW: &str = "the body arrived too slowly or not in time";

/// Why a rejected delivery whose reason is `reason` kept no body, in a few words; `None`
/// when its body was read (and kept up to `receive.rejected_body_bytes`). A request to an
/// unknown endpoint is refused unread, so that a scanner costs next to nothing.
pub fn body_not_read(reason: &str) -> Option<&'static str> {
    match reason {
        UNKNOWN_ENDPOINT => Some("unknown endpoint"),
        OVER_BUDGET => Some("too many bodies in flight"),
        UNREADABLE => Some("the request broke off"),
        TOO_SLOW => Some("it arrived too slowly"),
        r if r.starts_with(TOO_LARGE) => Some("over max_body_bytes"),
        _ => None,
    }
}

fn refuse(status: StatusCode, reason: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
    }
}

/// What the request carried, for the delivery log.
struct Request {
    request_id: String,
    endpoint: String,
    headers: HeaderMap,
    remote: Option<SocketAddr>,
    received_at_ms: u64,
    started: Instant,
}

impl Receiver {
    async fn handle<S, B>(
        &self,
        name: String,
        headers: HeaderMap,
        remote: Option<SocketAddr>,
        body: S,
    ) -> warp::reply::Response
    where
        S: Stream<Item = Result<B, warp::Error>>,
        B: Buf,
    {
        let request_id = request_id(&headers);
        // Every log line of this request carries its id (and never its body or secrets).
        let span = tracing::info_span!("request", request_id = %request_id, endpoint = %name);
        self.handle_in_span(request_id, name, headers, remote, body)
            .instrument(span)
            .await
    }

    async fn handle_in_span<S, B>(
        &self,
        request_id: String,
        name: String,
        headers: HeaderMap,
        remote: Option<SocketAddr>,
        body: S,
    ) -> warp::reply::Response
    where
        S: Stream<Item = Result<B, warp::Error>>,
        B: Buf,
    {
        let request = Request {
            request_id,
            endpoint: name,
            headers,
            remote,
            received_at_ms: clock::now_ms(),
            started: Instant::now(),
        };
        let Some(endpoint) = self.config.endpoint(&request.endpoint) else {
            let refusal = refuse(StatusCode::NOT_FOUND, UNKNOWN_ENDPOINT);
            return self.reject(&request, &[], refusal, None);
        };
        let declared = request
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let too_large = || {
            refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("{TOO_LARGE} {} bytes", endpoint.max_body_bytes),
            )
        };
        if declared.is_some_and(|n| n > endpoint.max_body_bytes as u64) {
            return self.reject(&request, &[], too_large(), None);
        }
        let over_budget = || {
            metrics::counter!("hookd_body_budget_refusals_total").increment(1);
            refuse(StatusCode::SERVICE_UNAVAILABLE, OVER_BUDGET)
        };
        // Checked above: `declared` is at most the endpoint's maximum.
        if !self.body_budget.admits(declared.unwrap_or(0) as usize) {
            return self.reject(&request, &[], over_budget(), None);
        }
        let read = body::read_limited(body, endpoint.max_body_bytes, self.pace, &self.body_budget);
        // `_held` keeps the body's bytes charged to the budget until the answer is sent.
        let (body, _held) = match read.await {
            Ok(b) => b,
            Err(body::BodyError::OverBudget) => {
                return self.reject(&request, &[], over_budget(), None)
            }
            Err(body::BodyError::TooLarge) => return self.reject(&request, &[], too_large(), None),
            Err(body::BodyError::Read) => {
                let refusal = refuse(StatusCode::BAD_REQUEST, UNREADABLE);
                return self.reject(&request, &[], refusal, None);
            }
            Err(body::BodyError::TooSlow) => {
                let refusal = refuse(StatusCode::REQUEST_TIMEOUT, TOO_SLOW);
                return self.reject(&request, &[], refusal, None);
            }
        };
        match self.check(endpoint, &request, &body) {
            Err(refusal) => {
                let known = envelope(&body).ok();
                self.reject(&request, &body, refusal, known)
            }
            Ok((event_id, event_type)) => {
                self.store_event(endpoint, &request, body, event_id, event_type)
                    .await
            }
        }
    }

    /// Signature, body shape: the event id and type, or why not.
    fn check(
        &self,
        endpoint: &Endpoint,
        request: &Request,
        body: &[u8],
    ) -> Result<(String, String), Refusal> {
        let signed = verify::extract(&request.headers)
            .map_err(|e| refuse(StatusCode::UNAUTHORIZED, e.to_string()))?;
        verify::verify(
            &signed,
            body,
            &endpoint.secrets,
            endpoint.tolerance_secs,
            clock::system_secs(),
        )
        .map_err(|e| refuse(StatusCode::UNAUTHORIZED, e.to_string()))?;
        let (id, kind) =
            envelope(body).map_err(|reason| refuse(StatusCode::BAD_REQUEST, reason))?;
        let event_type = kind.ok_or_else(|| {
            refuse(
                StatusCode::BAD_REQUEST,
                "body has no `type` (a non-empty string)",
            )
        })?;
        let event_id = match (id, endpoint.profile) {
            (Some(id), _) => id,
            // A standard sender's body need not carry an id; the webhook-id is stable across
            // its retries, so it serves as the dedup key.
            (None, Profile::Standard) => signed.id,
            (None, Profile::Fasten) => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "body has no `id` (a non-empty string)",
                ))
            }
        };
        Ok((event_id, event_type))
    }

    fn draft(
        &self,
        request: &Request,
        body: &[u8],
        cap: usize,
        answer: &Answer,
        verdict: Verdict,
        reason: &str,
    ) -> DeliveryDraft {
        let kept = &body[..body.len().min(cap)];
        DeliveryDraft {
            received_at_ms: request.received_at_ms,
            endpoint: request.endpoint.clone(),
            remote_addr: request.remote.map(|a| a.to_string()),
            request_headers: record::headers(
                &request.headers,
                &self.config.receive.redact_headers,
                self.config.receive.log_header_bytes,
            ),
            body: String::from_utf8_lossy(kept).into_owned(),
            body_bytes: body.len(),
            body_truncated: kept.len() < body.len(),
            verdict,
            reason: reason.to_string(),
            response: answer.log(),
            event_id: None,
            event_type: None,
        }
    }

    /// The record of a rejected delivery, when the rejected-logging budget (records and
    /// bytes) has room for it. What the sender claimed (endpoint name, event id and type) is
    /// unverified, so it is kept short.
    fn rejected_draft(
        &self,
        request: &Request,
        body: &[u8],
        answer: &Answer,
        refusal: &Refusal,
        known: Option<(Option<String>, Option<String>)>,
    ) -> Option<DeliveryDraft> {
        if !self.rejected_log.try_take() {
            return None;
        }
        let cap = self.config.receive.rejected_body_bytes;
        let mut draft = self.draft(
            request,
            body,
            cap,
            answer,
            Verdict::Rejected,
            &refusal.reason,
        );
        draft.endpoint = record::short(&draft.endpoint);
        if let Some((id, kind)) = known {
            draft.event_id = id.as_deref().map(record::short);
            draft.event_type = kind.as_deref().map(record::short);
        }
        let texts = [
            draft.endpoint.as_str(),
            draft.body.as_str(),
            draft.reason.as_str(),
            draft.event_id.as_deref().unwrap_or(""),
            draft.event_type.as_deref().unwrap_or(""),
        ];
        let cost = record::cost(&draft.request_headers, &texts);
        self.rejected_log_bytes
            .try_take_n(cost as f64)
            .then_some(draft)
    }

    /// Answers a refusal and logs it, within the rejected-logging rate.
    fn reject(
        &self,
        request: &Request,
        body: &[u8],
        refusal: Refusal,
        known: Option<(Option<String>, Option<String>)>,
    ) -> warp::reply::Response {
        let mut answer = Answer::new(
            refusal.status,
            Verdict::Rejected.as_str(),
            refusal.reason.clone(),
        )
        .tagged(request);
        if refusal.status == StatusCode::SERVICE_UNAVAILABLE {
            answer
                .headers
                .push(("retry-after", RETRY_AFTER_SECS.to_string()));
        }
        tracing::info!(status = refusal.status.as_u16(), reason = %refusal.reason, "delivery rejected");
        self.observe(request, Verdict::Rejected);
        let logged = match self.rejected_draft(request, body, &answer, &refusal, known) {
            Some(draft) => self.store.record(draft).map(|id| {
                let _ = self
                    .store
                    .set_latency(id, request.started.elapsed().as_micros() as u64);
            }),
            None => self.store.count_unlogged_rejection(),
        };
        if let Err(e) = logged {
            tracing::warn!(error = %e, "could not log a rejected delivery");
        }
        answer.into_response()
    }

    async fn store_event(
        &self,
        endpoint: &Endpoint,
        request: &Request,
        body: Bytes,
        event_id: String,
        event_type: String,
    ) -> warp::reply::Response {
        let cap = self.config.receive.log_body_bytes;
        let selected = endpoint
            .events
            .as_ref()
            .is_none_or(|set| set.contains(&event_type));
        // Every 200 below waits for its flush, filtered and duplicate too: a duplicate's 200
        // must not overtake the flush of the original it stands for.
        let result = if !selected {
            let reason = format!("event type {event_type} is not selected on this endpoint");
            let answer = Answer::new(StatusCode::OK, Verdict::Filtered.as_str(), reason.clone())
                .tagged(request);
            let mut draft = self.draft(request, &body, cap, &answer, Verdict::Filtered, &reason);
            draft.event_id = Some(event_id);
            draft.event_type = Some(event_type);
            self.store
                .record_durable(draft)
                .await
                .map(|id| (id, answer, Verdict::Filtered))
        } else if self.store.backlog() >= self.config.receive.queue_high_water
            // A redelivery of a stored event adds nothing to the queue: it is answered
            // `duplicate` whatever the backlog.
            && !matches!(self.store.find_event(&request.endpoint, &event_id), Ok(Some(_)))
        {
            let refusal = refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue is above its high-water mark; retry later",
            );
            return self.reject(
                request,
                &body,
                refusal,
                Some((Some(event_id), Some(event_type))),
            );
        } else {
            // The writer fills in verdict, reason and body; the headers are these.
            let placeholder = Answer::new(StatusCode::OK, "", String::new()).tagged(request);
            let mut draft = self.draft(request, &body, cap, &placeholder, Verdict::Accepted, "");
            draft.event_id = Some(event_id.clone());
            draft.event_type = Some(event_type.clone());
            let event = NewEvent {
                event_id,
                event_type,
                payload: body.clone(),
            };
            self.store.accept(draft, event, respond).await.map(|a| {
                let (reason, _) = respond(a.verdict);
                let answer = Answer::new(StatusCode::OK, a.verdict.as_str(), reason);
                (a.delivery_id, answer.tagged(request), a.verdict)
            })
        };
        let (delivery_id, answer, verdict) = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, endpoint = %request.endpoint, "cannot store delivery; answering 503");
                let refusal = refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cannot persist the event; retry later",
                );
                return self.reject(request, &body, refusal, None);
            }
        };
        let _ = self
            .store
            .set_latency(delivery_id, request.started.elapsed().as_micros() as u64);
        self.observe(request, verdict);
        answer.into_response()
    }

    /// Counts the answer and its latency. Unknown endpoint names share one label, so a
    /// scanner cannot grow the metrics without bound.
    fn observe(&self, request: &Request, verdict: Verdict) {
        let endpoint = match self.config.endpoint(&request.endpoint) {
            Some(e) => e.name.clone(),
            None => crate::telemetry::UNKNOWN_ENDPOINT.to_string(),
        };
        metrics::counter!("hookd_deliveries_total", "endpoint" => endpoint, "verdict" => verdict.as_str())
            .increment(1);
        metrics::histogram!("hookd_ack_latency_seconds", "verdict" => verdict.as_str())
            .record(request.started.elapsed().as_secs_f64());
    }
}

/// The recorded reason and response of an accepted or duplicate delivery.
fn respond(verdict: Verdict) -> (String, ResponseLog) {
    let reason = match verdict {
        Verdict::Duplicate => "event id already accepted on this endpoint",
        _ => "stored and queued",
    };
    let answer = Answer::new(StatusCode::OK, verdict.as_str(), reason.to_string());
    (reason.to_string(), answer.log())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_before_the_body_is_read_say_why_it_was_not() {
        assert_eq!(body_not_read(UNKNOWN_ENDPOINT), Some("unknown endpoint"));
        let too_large = format!("{TOO_LARGE} 1048576 bytes");
        assert_eq!(body_not_read(&too_large), Some("over max_body_bytes"));
        for reason in [OVER_BUDGET, UNREADABLE, TOO_SLOW] {
            assert!(body_not_read(reason).is_some(), "{reason}");
        }
        // Refused after reading: the body is kept.
        assert_eq!(
            body_not_read("no v1 signature matches a configured secret"),
            None
        );
        assert_eq!(
            body_not_read("queue is above its high-water mark; retry later"),
            None
        );
    }
}
