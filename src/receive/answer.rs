//! The receiver's answer: status, JSON body and headers, which is also what the delivery log
//! records as the response given.

use super::Request;
use crate::store::ResponseLog;
use warp::http::StatusCode;

/// An answer: status, JSON body, extra headers; also what the delivery log records.
pub(super) struct Answer {
    status: StatusCode,
    body: String,
    pub(super) headers: Vec<(&'static str, String)>,
}

impl Answer {
    pub(super) fn new(status: StatusCode, verdict: &str, reason: String) -> Answer {
        let body = serde_json::json!({ "status": verdict, "reason": reason }).to_string();
        Answer {
            status,
            body,
            headers: vec![("content-type", "application/json".to_string())],
        }
    }

    /// Adds the request id, so a sender's support ticket can be matched to the log.
    pub(super) fn tagged(mut self, request: &Request) -> Answer {
        self.headers
            .push(("x-request-id", request.request_id.clone()));
        self
    }

    pub(super) fn log(&self) -> ResponseLog {
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

    pub(super) fn into_response(self) -> warp::reply::Response {
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
