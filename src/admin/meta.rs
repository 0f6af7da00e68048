//! `GET /api/meta`: the vocabulary the UI shows, from the server's own types and config, so
//! the page never carries its own copy: the verdicts, the event states, each endpoint with
//! its profile, processor and receiving path, the event types seen so far, and where the
//! receiver listens.

use super::{Admin, ApiError};
use crate::config::{ProcessorConfig, Profile};
use crate::store::{EventState, Verdict};
use serde_json::{json, Value};

/// The profile's name in the config file.
fn profile_name(profile: Profile) -> &'static str {
    match profile {
        Profile::Standard => "standard",
        Profile::Fasten => "fasten",
    }
}

/// The processor's name in the config file.
fn processor_name(processor: &ProcessorConfig) -> &'static str {
    match processor {
        ProcessorConfig::Log => "log",
        ProcessorConfig::Forward { .. } => "forward",
        ProcessorConfig::Fasten => "fasten",
    }
}

/// `{"verdicts": [...], "states": [...], "endpoints": [{"name", "profile", "processor",
/// "path"}], "event_types": [...], "receiver": "host:port"}`.
pub fn meta(admin: &Admin) -> Result<Value, ApiError> {
    let mut endpoints: Vec<Value> = admin
        .config
        .endpoints
        .iter()
        .map(|e| {
            json!({
                "name": e.name,
                "profile": profile_name(e.profile),
                "processor": processor_name(&e.processor),
                "path": format!("/webhooks/{}", e.name),
            })
        })
        .collect();
    // hookd's own push events (see `process::push`), so they can be filtered for too; they
    // are not received over HTTP, so they have no path.
    if admin.config.push.is_some() {
        endpoints.push(json!({
            "name": crate::process::push::ENDPOINT,
            "profile": "internal",
            "processor": "forward",
            "path": null,
        }));
    }
    Ok(json!({
        "verdicts": Verdict::ALL.map(Verdict::as_str),
        "states": EventState::ALL.map(EventState::as_str),
        "endpoints": endpoints,
        "event_types": admin.store.event_types()?,
        "receiver": admin.receiver_addr.unwrap_or(admin.config.listen).to_string(),
    }))
}
