//! The `[[endpoints]]` list: names, secrets, event filters and each endpoint's processor.

use super::build::{parse_secrets, read_secret_file};
use super::defaults;
use super::env::secrets_var;
use super::error::{ConfigError, Invalid, Origin, Problems};
use super::plain::did_you_mean;
use super::raw::{RawEndpoint, RawForward};
use super::types::{Endpoint, ProcessorConfig, Profile};
use crate::secret::Secret;
use crate::simulate::EVENT_TYPES;
use std::collections::BTreeSet;

/// Builds and checks every endpoint. The made-up `default` endpoint (`default_endpoint`)
/// may have no secret: one is generated in the data directory at start-up.
pub(super) fn build(
    raw: Vec<RawEndpoint>,
    default_endpoint: bool,
    origin: &Origin,
) -> Result<Vec<Endpoint>, ConfigError> {
    let mut problems = Problems::default();
    let mut endpoints: Vec<Endpoint> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, e) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("endpoints[{i}].{field}");
        if !valid_name(&e.name) {
            problems.add(origin.err(&at("name"), Invalid::EndpointName(e.name.clone())));
        } else if e.name == crate::process::push::ENDPOINT {
            problems.add(origin.err(&at("name"), Invalid::ReservedEndpoint(e.name.clone())));
        } else if names.contains(&e.name) {
            problems.add(origin.err(&at("name"), Invalid::DuplicateEndpoint(e.name.clone())));
        }
        names.push(e.name.clone());
        let Some(endpoint) = problems.ok(build_one(e, &at, origin)) else {
            continue;
        };
        if endpoint.secrets.is_empty() && !default_endpoint {
            problems.add(origin.err(
                &at("secrets"),
                Invalid::NoSecret {
                    var: secrets_var(&endpoint.name),
                    endpoint: endpoint.name.clone(),
                },
            ));
        }
        endpoints.push(endpoint);
    }
    problems.finish(Some(endpoints))
}

/// One endpoint; `at` turns a field into its key (`endpoints[i].field`).
fn build_one(
    e: RawEndpoint,
    at: &dyn Fn(&str) -> String,
    origin: &Origin,
) -> Result<Endpoint, ConfigError> {
    let mut problems = Problems::default();
    let mut secrets = match &e.secrets {
        Some(list) => problems
            .ok(parse_secrets(origin, &at("secrets"), list))
            .unwrap_or_default(),
        None => Vec::new(),
    };
    if let Some(path) = &e.secrets_file {
        if let Some(text) = problems.ok(read_secret_file(origin, &at("secrets_file"), path)) {
            let lines: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect();
            secrets.extend(
                problems
                    .ok(parse_secrets(origin, &at("secrets_file"), &lines))
                    .unwrap_or_default(),
            );
        }
    }
    let processor = problems.ok(processor(
        e.profile,
        e.processor.as_deref(),
        e.forward,
        at,
        origin,
    ));
    let events = e.events.map(|list| {
        let fasten =
            e.profile == Profile::Fasten || processor.as_ref() == Some(&ProcessorConfig::Fasten);
        if fasten {
            check_fasten_events(&list, at, origin, &mut problems);
        }
        list.into_iter().collect::<BTreeSet<_>>()
    });
    if matches!(&events, Some(set) if set.is_empty()) {
        problems.add(origin.err(&at("events"), Invalid::NoEvents));
    }
    let max_body_bytes = e.max_body_bytes.unwrap_or(defaults::MAX_BODY_BYTES);
    if max_body_bytes == 0 {
        problems.add(origin.err(&at("max_body_bytes"), Invalid::Zero));
    }
    let endpoint = processor.map(|processor| Endpoint {
        name: e.name,
        profile: e.profile,
        secrets,
        events,
        tolerance_secs: e.tolerance_secs.unwrap_or(defaults::TOLERANCE_SECS),
        max_body_bytes,
        processor,
    });
    problems.finish(endpoint)
}

/// A Fasten endpoint only ever receives the seven Fasten types, so any other name in its
/// `events` is a typo, and one that silently drops every event of the intended type.
fn check_fasten_events(
    list: &[String],
    at: &dyn Fn(&str) -> String,
    origin: &Origin,
    problems: &mut Problems,
) {
    for (i, event) in list.iter().enumerate() {
        if !EVENT_TYPES.contains(&event.as_str()) {
            problems.add(origin.err(
                &format!("{}[{i}]", at("events")),
                Invalid::UnknownEvent {
                    value: event.clone(),
                    suggestion: did_you_mean(event, EVENT_TYPES),
                },
            ));
        }
    }
}

/// The processor: named, implied by a forward table, or by the profile.
fn processor(
    profile: Profile,
    name: Option<&str>,
    forward: Option<RawForward>,
    at: &dyn Fn(&str) -> String,
    origin: &Origin,
) -> Result<ProcessorConfig, ConfigError> {
    match (name, forward) {
        (None, None) if profile == Profile::Fasten => Ok(ProcessorConfig::Fasten),
        (Some("fasten"), None) => Ok(ProcessorConfig::Fasten),
        (None | Some("log"), None) => Ok(ProcessorConfig::Log),
        (Some("forward") | None, Some(f)) => build_forward(f, at, origin),
        (Some("forward"), None) => Err(origin.err(&at("forward"), Invalid::ForwardTableMissing)),
        (Some("log"), Some(_)) => Err(origin.err(&at("forward"), Invalid::ForwardWithLog)),
        (Some(other), _) => Err(origin.err(
            &at("processor"),
            Invalid::NotOneOf {
                value: other.to_owned(),
                choices: "log, forward, fasten",
            },
        )),
    }
}

fn build_forward(
    f: RawForward,
    at: &dyn Fn(&str) -> String,
    origin: &Origin,
) -> Result<ProcessorConfig, ConfigError> {
    let mut problems = Problems::default();
    let secret_text = match (f.secret, f.secret_file) {
        (Some(s), None) => Some(s),
        (None, Some(path)) => {
            problems.ok(read_secret_file(origin, &at("forward.secret_file"), &path))
        }
        _ => {
            problems.add(origin.err(
                &at("forward.secret"),
                Invalid::Exclusive("exactly one of forward.secret or forward.secret_file"),
            ));
            None
        }
    };
    let secret = secret_text.and_then(|text| {
        problems.ok(Secret::parse(&text).map_err(|e| origin.err(&at("forward.secret"), e)))
    });
    if !(f.url.starts_with("http://") || f.url.starts_with("https://")) {
        problems.add(origin.err(&at("forward.url"), Invalid::NotHttpUrl(f.url.clone())));
    }
    problems.finish(secret.map(|secret| ProcessorConfig::Forward {
        url: f.url,
        secret,
        timeout_secs: f.timeout_secs.unwrap_or(defaults::FORWARD_TIMEOUT_SECS),
    }))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
