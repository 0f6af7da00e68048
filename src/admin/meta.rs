//! `GET /api/meta`: the vocabulary the UI shows, from the server's own types and config, so
//! the page never carries its own copy: the verdicts, the event states, and each endpoint
//! with its profile and processor.

use super::Admin;
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

/// `{"verdicts": [...], "states": [...], "endpoints": [{"name", "profile", "processor"}]}`.
pub fn meta(admin: &Admin) -> Value {
    let mut endpoints: Vec<Value> = admin
        .config
        .endpoints
        .iter()
        .map(|e| {
            json!({
                "name": e.name,
                "profile": profile_name(e.profile),
                "processor": processor_name(&e.processor),
            })
        })
        .collect();
    // hookd's own push events (see `process::push`), so they can be filtered for too.
    if admin.config.push.is_some() {
        endpoints.push(json!({
            "name": crate::process::push::ENDPOINT,
            "profile": "internal",
            "processor": "forward",
        }));
    }
    json!({
        "verdicts": Verdict::ALL.map(Verdict::as_str),
        "states": EventState::ALL.map(EventState::as_str),
        "endpoints": endpoints,
    })
}
