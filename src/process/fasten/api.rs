//! The Fasten Connect API client: asking for an export, and fetching a download link by
//! following its redirects by hand.
//!
//! Redirects are never left to reqwest: each hop is checked against the download policy, and
//! the HTTP Basic credentials go only to the API host (scheme, host and port), never to the
//! signed-URL host a download link redirects to.

use super::download::check_url;
use super::{permanent, retry};
use crate::config::Fasten;
use crate::process::{chain, ProcessError, SetupError};
use reqwest::Url;
use std::sync::Arc;
use std::time::Duration;

/// Redirects followed per download.
const MAX_REDIRECTS: usize = 5;
/// At most this much of an error response is kept in the attempt record.
const ERROR_BODY_CHARS: usize = 200;

/// Talks to the Fasten API and the hosts its download links lead to.
pub struct ApiClient {
    config: Arc<Fasten>,
    http: reqwest::Client,
    api: Url,
}

/// The first [`ERROR_BODY_CHARS`] characters of a response body (empty if unreadable).
pub async fn snippet(response: reqwest::Response) -> String {
    let text = response.text().await.unwrap_or_default();
    text.chars().take(ERROR_BODY_CHARS).collect()
}

/// Fasten's answer to an export request, as [`ApiClient::request_export`] gives it and the
/// connection keeps it (`HTTP 200: {...}`), taken apart.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportAnswer {
    pub status: u16,
    /// The answer's JSON, or its text when it is not JSON (cut short, or another shape).
    pub body: serde_json::Value,
    /// The task the export request started, when the answer names one.
    pub task_id: Option<String>,
}

impl ExportAnswer {
    /// `None` when `text` is not of the `HTTP <status>: <body>` shape.
    pub fn parse(text: &str) -> Option<ExportAnswer> {
        let (status, body) = text.strip_prefix("HTTP ")?.split_once(':')?;
        let status = status.parse().ok()?;
        let body = body.trim_start();
        let body: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| body.into());
        let task_id = [&body["data"]["task_id"], &body["task_id"]]
            .into_iter()
            .find_map(|t| t.as_str().map(str::to_owned));
        Some(ExportAnswer {
            status,
            body,
            task_id,
        })
    }
}

/// Why a request failed, with every cause (refused, DNS, TLS, timeout). The URL is left out:
/// the caller's message names it.
pub fn send_error(e: reqwest::Error) -> String {
    chain(&e.without_url())
}

impl ApiClient {
    /// A client for the API at `config.api_base`.
    pub fn new(config: Arc<Fasten>) -> Result<ApiClient, SetupError> {
        let api = Url::parse(&config.api_base).map_err(|e| SetupError::ApiBase {
            url: config.api_base.clone(),
            reason: e.to_string(),
        })?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("hookd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(SetupError::HttpClient)?;
        Ok(ApiClient { config, http, api })
    }

    fn is_api_host(&self, url: &Url) -> bool {
        url.scheme() == self.api.scheme()
            && url.host_str() == self.api.host_str()
            && url.port_or_known_default() == self.api.port_or_known_default()
    }

    /// The API credentials; an event that needs them fails permanently without them, so
    /// the operator configures them and replays it.
    pub fn credentials(&self) -> Result<(&str, &str), ProcessError> {
        match (&self.config.public_id, &self.config.private_key) {
            (Some(id), Some(key)) => Ok((id, key)),
            _ => Err(permanent(
                "no Fasten API credentials: set fasten.public_id and fasten.private_key_file \
                 (or HOOKD_FASTEN_PRIVATE_KEY), then replay this event",
            )),
        }
    }

    /// Asks Fasten to export connection `conn` (idempotent on Fasten's side). Returns the
    /// answer, `HTTP <status>: <start of the body>`.
    pub async fn request_export(&self, conn: &str) -> Result<String, ProcessError> {
        let (id, key) = self.credentials()?;
        let url = format!("{}/bridge/fhir/ehi-export", self.config.api_base);
        let response = self
            .http
            .post(&url)
            .basic_auth(id, Some(key))
            .json(&serde_json::json!({ "org_connection_id": conn }))
            .send()
            .await
            .map_err(|e| retry(format!("POST {url} failed: {}", send_error(e))))?;
        let status = response.status();
        let snippet = snippet(response).await;
        if !status.is_success() {
            return Err(retry(format!(
                "export request for {conn}: POST {url} answered HTTP {}: {snippet}",
                status.as_u16()
            )));
        }
        Ok(format!("HTTP {}: {snippet}", status.as_u16()))
    }

    /// GETs `url`, following redirects by hand. Returns the final response and whether a
    /// redirect was followed (a signed URL).
    pub async fn fetch(&self, url: &Url) -> Result<(reqwest::Response, bool), ProcessError> {
        let mut current = url.clone();
        for hop in 0..=MAX_REDIRECTS {
            check_url(&self.config, &current)?;
            let mut request = self.http.get(current.clone());
            if self.is_api_host(&current) {
                let (id, key) = self.credentials()?;
                request = request.basic_auth(id, Some(key));
            }
            let response = request
                .send()
                .await
                .map_err(|e| retry(format!("GET {current} failed: {}", send_error(e))))?;
            if !response.status().is_redirection() {
                return Ok((response, hop > 0));
            }
            let location = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    retry(format!(
                        "GET {current}: HTTP {} without a Location",
                        response.status().as_u16()
                    ))
                })?;
            current = current
                .join(location)
                .map_err(|e| retry(format!("GET {current}: bad Location `{location}`: {e}")))?;
        }
        Err(retry(format!(
            "GET {url}: more than {MAX_REDIRECTS} redirects"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::collections::HashMap;

    #[test]
    fn credentials_go_only_to_the_api_scheme_host_and_port() {
        let config = Config::load(None, &HashMap::new()).unwrap().fasten;
        let api = ApiClient::new(Arc::new(config)).unwrap();
        let is_api = |u: &str| api.is_api_host(&Url::parse(u).unwrap());
        assert!(is_api(
            "https://api.connect.fastenhealth.com/v1/bridge/fhir/ehi-export/t/download/f.jsonl"
        ));
        assert!(is_api("https://API.connect.fastenhealth.com:443/other"));
        assert!(!is_api("http://api.connect.fastenhealth.com/v1/x"));
        assert!(!is_api("https://api.connect.fastenhealth.com:8443/v1/x"));
        assert!(!is_api("https://storage.example/signed?sig=1"));
    }

    #[test]
    fn a_bad_api_base_is_a_setup_error() {
        let mut config = Config::load(None, &HashMap::new()).unwrap().fasten;
        config.api_base = "not a url".into();
        let Err(err) = ApiClient::new(Arc::new(config)) else {
            panic!("accepted a bad api_base")
        };
        assert!(matches!(err, SetupError::ApiBase { .. }), "{err}");
        assert!(
            err.to_string().starts_with("fasten.api_base `not a url`: "),
            "{err}"
        );
    }
}
