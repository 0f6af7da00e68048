//! The receiver: `POST /webhooks/{endpoint}`.
//!
//! Checks run in a fixed order (404 → 413 → 401 → 400 → filtered → duplicate/accepted) and
//! every request, whatever its verdict, leaves a delivery record. A 200 is written only after
//! the store's group commit returned: an acknowledged event is on disk.

mod body;
pub mod listener;
mod record;

use crate::clock;
use crate::config::{Config, Endpoint, Profile};
use crate::ratelimit::TokenBucket;
use crate::store::{DeliveryDraft, NewEvent, ResponseLog, Store, Verdict};
use crate::verify;
use bytes::{Buf, Bytes};
use futures_util::Stream;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
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

/// An answer: status, JSON body, extra headers; also what the delivery log records.
struct Answer {
    status: StatusCode,
    body: String,
    headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn new(status: StatusCode, verdict: &str, reason: String) -> Answer {
        let body = serde_json::json!({ "status": verdict, "reason": reason }).to_string();
        Answer {
            status,
            body,
            headers: vec![("content-type", "application/json".to_string())],
        }
    }

    /// Adds the request id, so a sender's support ticket can be matched to the log.
    fn tagged(mut self, request: &Request) -> Answer {
        self.headers
            .push(("x-request-id", request.request_id.clone()));
        self
    }

    fn log(&self) -> ResponseLog {
        ResponseLog {
            status: self.status.as_u16(),
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            body: self.body.clone(),
        }
    }

    fn into_response(self) -> warp::reply::Response {
        let mut response = warp::reply::Response::new(self.body.into());
        *response.status_mut() = self.status;
        for (k, v) in self.headers {
            if let Ok(value) = http::HeaderValue::from_str(&v) {
                response.headers_mut().insert(k, value);
            }
        }
        response
    }
}

/// The two fields hookd needs from a body; the rest stays opaque.
#[derive(Deserialize)]
struct Envelope {
    id: Option<serde_json::Value>,
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
}

/// A rejection decided before anything was stored.
struct Refusal {
    status: StatusCode,
    reason: String,
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
            let refusal = refuse(StatusCode::NOT_FOUND, "unknown endpoint");
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
                format!("body is larger than {} bytes", endpoint.max_body_bytes),
            )
        };
        if declared.is_some_and(|n| n > endpoint.max_body_bytes as u64) {
            return self.reject(&request, &[], too_large(), None);
        }
        let over_budget = || {
            metrics::counter!("hookd_body_budget_refusals_total").increment(1);
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many request bodies in flight; retry later",
            )
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
                let refusal = refuse(StatusCode::BAD_REQUEST, "the body could not be read");
                return self.reject(&request, &[], refusal, None);
            }
            Err(body::BodyError::TooSlow) => {
                let refusal = refuse(
                    StatusCode::REQUEST_TIMEOUT,
                    "the body arrived too slowly or not in time",
                );
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
        let (id, kind) = envelope(body)
            .map_err(|()| refuse(StatusCode::BAD_REQUEST, "body is not a JSON object"))?;
        let event_type =
            kind.ok_or_else(|| refuse(StatusCode::BAD_REQUEST, "body has no string `type`"))?;
        let event_id = match (id, endpoint.profile) {
            (Some(id), _) => id,
            // A standard sender's body need not carry an id; the webhook-id is stable across
            // its retries, so it serves as the dedup key.
            (None, Profile::Standard) => signed.id,
            (None, Profile::Fasten) => {
                return Err(refuse(StatusCode::BAD_REQUEST, "body has no string `id`"))
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
            None => "(unknown)".to_string(),
        };
        metrics::counter!("hookd_deliveries_total", "endpoint" => endpoint, "verdict" => verdict.as_str())
            .increment(1);
        metrics::histogram!("hookd_ack_latency_seconds", "verdict" => verdict.as_str())
            .record(request.started.elapsed().as_secs_f64());
    }
}

/// The sender's `x-request-id` when it is a sane token, else a fresh one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
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

/// The body's `id` and `type` (each when a non-empty string), or `Err` when the body is not
/// a JSON object. An array would fill the fields by position, so it is refused up front.
fn envelope(body: &[u8]) -> Result<(Option<String>, Option<String>), ()> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(());
    }
    let envelope: Envelope = serde_json::from_slice(body).map_err(|_| ())?;
    Ok((as_text(envelope.id), as_text(envelope.kind)))
}

fn as_text(value: Option<serde_json::Value>) -> Option<String> {
    match value {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_array_body_has_no_envelope() {
        assert_eq!(envelope(br#"["evt_1", "a.type"]"#), Err(()));
        assert_eq!(
            envelope(br#" {"id": "evt_1", "type": "a.type", "data": [1]}"#),
            Ok((Some("evt_1".into()), Some("a.type".into())))
        );
    }

    proptest! {
        #[test]
        fn any_body_bytes_parse_without_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = envelope(&body);
        }

        #[test]
        fn deeply_nested_bodies_neither_overflow_nor_hide_the_fields(depth in 1usize..20_000) {
            let nest = |inner: &str| format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth));
            // Skipped, however deep: serde_json ignores a value without recursing into it.
            let ignored = format!("{{\"id\":\"e\",\"type\":\"t\",\"d\":{}}}", nest(""));
            prop_assert_eq!(
                envelope(ignored.as_bytes()),
                Ok((Some("e".to_string()), Some("t".to_string())))
            );
            // Parsed into a value: refused beyond serde_json's nesting limit (128).
            let parsed = format!("{{\"id\":{},\"type\":\"t\"}}", nest("\"e\""));
            let result = envelope(parsed.as_bytes());
            if depth > 130 {
                prop_assert!(result.is_err(), "depth {}", depth);
            } else if let Ok((id, _)) = result {
                prop_assert_eq!(id, None);
            }
        }

        #[test]
        fn string_fields_are_found_among_any_others(
            id in "\\PC{0,40}",
            kind in "\\PC{0,40}",
            other in proptest::collection::btree_map("[a-z]{1,8}", any::<i64>(), 0..5),
        ) {
            let mut object: serde_json::Map<String, serde_json::Value> =
                other.into_iter().map(|(k, v)| (k, v.into())).collect();
            object.insert("id".into(), id.clone().into());
            object.insert("type".into(), kind.clone().into());
            let body = serde_json::Value::Object(object).to_string();
            let non_empty = |s: String| (!s.is_empty()).then_some(s);
            prop_assert_eq!(envelope(body.as_bytes()), Ok((non_empty(id), non_empty(kind))));
        }

        #[test]
        fn a_request_id_is_always_a_short_safe_token(value in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut headers = HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_bytes(&value) {
                headers.insert("x-request-id", v);
            }
            let id = request_id(&headers);
            prop_assert!(!id.is_empty() && id.len() <= 64);
            prop_assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
        }
    }
}
