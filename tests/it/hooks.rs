//! A local service that receives what hookd itself sends (alerts, push events): it checks
//! each request's Standard Webhooks signature with the reference crate, records it, and
//! answers 500 to the first `fail_first` requests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use warp::Filter;

/// One request received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    /// The signature verified with the secret the service was given.
    pub verified: bool,
    pub webhook_id: String,
    pub body: serde_json::Value,
    /// What the service answered.
    pub status: u16,
}

/// The running service.
pub struct Hooks {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Hooks {
    /// Starts a service verifying with `secret` (`whsec_...`).
    pub async fn start(secret: &str, fail_first: usize) -> Hooks {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let seen = received.clone();
        let webhook = Arc::new(standardwebhooks::Webhook::new(secret).unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let route = warp::post()
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .map(move |headers: http::HeaderMap, body: bytes::Bytes| {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let status = if n < fail_first { 500 } else { 200 };
                seen.lock().unwrap().push(Received {
                    at: Instant::now(),
                    verified: webhook.verify(&body, &headers).is_ok(),
                    webhook_id: headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string(),
                    body: serde_json::from_slice(&body).unwrap_or_default(),
                    status,
                });
                warp::http::Response::builder()
                    .status(status)
                    .body(String::new())
                    .unwrap()
            });
        tokio::spawn(warp::serve(route).incoming(listener).run());
        Hooks { addr, received }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// Everything received so far.
    pub fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits for a request that `pick` accepts, and returns it.
    pub async fn wait_for(&self, what: &str, pick: impl Fn(&Received) -> bool) -> Received {
        super::eventually(super::WAIT, what, || async {
            self.all().into_iter().find(|r| pick(r))
        })
        .await
    }
}
