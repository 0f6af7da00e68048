//! The Fasten Connect event payloads, parsed once from the stored body into one typed value
//! per event type. Both the processor and the admin API read events through these types.
//!
//! Only the fields hookd acts on are typed. `ehi_export_success` is parsed strictly (a wrong
//! field type fails the event, which cannot be stored otherwise); the other shapes are lenient:
//! a missing or non-string field reads as absent, so an event from a newer sender still gets
//! recorded.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::BTreeMap;

/// A Fasten event, by type, with its `data`.
#[derive(Debug)]
pub enum FastenEvent {
    /// `patient.ehi_export_success`: an export is ready for download.
    ExportSuccess(ExportSuccess),
    /// `patient.ehi_export_failed`.
    ExportFailed(ExportFailed),
    /// `patient.connection_success`: a patient connected a health system.
    ConnectionSuccess(ConnectionSuccess),
    /// `patient.authorization_revoked`.
    AuthorizationRevoked(AuthorizationRevoked),
    /// `patient.request_health_system`, `patient.request_support`, `webhook.test`: recorded
    /// and nothing more.
    Informational,
    /// Any other type.
    Unknown(String),
}

/// Why a body could not be read as a Fasten event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("body is not a JSON event: {0}")]
    Body(#[source] serde_json::Error),
    #[error("data is not an ehi_export_success payload: {0}")]
    ExportSuccess(#[source] serde_json::Error),
}

/// The envelope every event shares; only `data` matters here (the type and id are stored
/// with the event).
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Value,
}

/// One entry of `download_links`.
#[derive(Debug, Deserialize)]
pub struct Link {
    pub url: String,
}

/// The `stats` an export announces, compared with what was stored.
#[derive(Debug, Deserialize, Default)]
pub struct Stats {
    pub total_resources: Option<u64>,
    #[serde(default)]
    pub total_by_resource_type: BTreeMap<String, u64>,
}

/// `data` of `patient.ehi_export_success`.
#[derive(Debug, Deserialize)]
pub struct ExportSuccess {
    pub org_connection_id: Option<String>,
    pub task_id: Option<String>,
    pub download_links: Option<Vec<Link>>,
    /// The single link older senders (and Fasten's portal simulator) send instead.
    pub download_link: Option<String>,
    pub stats: Option<Stats>,
}

/// `data` of `patient.ehi_export_failed`.
#[derive(Debug, Deserialize, Default)]
pub struct ExportFailed {
    #[serde(default, deserialize_with = "lenient")]
    pub org_connection_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub task_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub failure_reason: Option<String>,
}

/// `data` of `patient.connection_success`.
#[derive(Debug, Deserialize, Default)]
pub struct ConnectionSuccess {
    #[serde(default, deserialize_with = "lenient")]
    pub org_connection_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub endpoint_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub brand_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub portal_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub platform_type: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub connection_status: Option<String>,
}

/// `data` of `patient.authorization_revoked`.
#[derive(Debug, Deserialize, Default)]
pub struct AuthorizationRevoked {
    #[serde(default, deserialize_with = "lenient")]
    pub org_connection_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub connection_status: Option<String>,
}

impl FastenEvent {
    /// Reads the body of an event of type `event_type`.
    pub fn parse(event_type: &str, body: &[u8]) -> Result<FastenEvent, EventError> {
        let data = serde_json::from_slice::<Envelope>(body)
            .map_err(EventError::Body)?
            .data;
        Ok(match event_type {
            "patient.ehi_export_success" => FastenEvent::ExportSuccess(
                serde_json::from_value(data).map_err(EventError::ExportSuccess)?,
            ),
            "patient.ehi_export_failed" => FastenEvent::ExportFailed(lenient_data(data)),
            "patient.connection_success" => FastenEvent::ConnectionSuccess(lenient_data(data)),
            "patient.authorization_revoked" => {
                FastenEvent::AuthorizationRevoked(lenient_data(data))
            }
            "patient.request_health_system" | "patient.request_support" | "webhook.test" => {
                FastenEvent::Informational
            }
            other => FastenEvent::Unknown(other.to_string()),
        })
    }

    /// The export task the event names, if any.
    pub fn task_id(&self) -> Option<&str> {
        match self {
            FastenEvent::ExportSuccess(d) => d.task_id.as_deref(),
            FastenEvent::ExportFailed(d) => d.task_id.as_deref(),
            _ => None,
        }
    }
}

impl ExportSuccess {
    /// Every download link, `download_links[]` first, then the legacy `download_link` unless
    /// it repeats one of them.
    pub fn urls(&self) -> Vec<String> {
        let mut urls: Vec<String> = self
            .download_links
            .iter()
            .flatten()
            .map(|l| l.url.clone())
            .collect();
        if let Some(u) = &self.download_link {
            if !urls.contains(u) {
                urls.push(u.clone());
            }
        }
        urls
    }
}

/// A lenient shape from `data`: anything but an object reads as all fields absent (an array
/// must not fill fields by position).
fn lenient_data<T: DeserializeOwned + Default>(data: Value) -> T {
    if data.is_object() {
        serde_json::from_value(data).unwrap_or_default()
    } else {
        T::default()
    }
}

/// A string field that reads as absent when it holds anything but a string.
fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(data: &str) -> ExportSuccess {
        let body = format!(r#"{{"api_mode":"test","id":"e1","type":"x","data":{data}}}"#);
        match FastenEvent::parse("patient.ehi_export_success", body.as_bytes()).unwrap() {
            FastenEvent::ExportSuccess(d) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn export_success_with_download_links_is_read() {
        let d = export(
            r#"{"download_links":[
                {"url":"https://h/v1/bridge/fhir/ehi-export/t1/download/a.jsonl",
                 "export_type":"jsonl","content_type":"application/fhir+ndjson"},
                {"url":"https://h/v1/bridge/fhir/ehi-export/t1/download/b.jsonl"}],
              "org_connection_id":"c1","task_id":"t1","org_id":"o1",
              "stats":{"total_resources":3,"total_by_resource_type":{"Patient":1,"Observation":2}}}"#,
        );
        assert_eq!(d.org_connection_id.as_deref(), Some("c1"));
        assert_eq!(d.task_id.as_deref(), Some("t1"));
        assert_eq!(
            d.urls(),
            [
                "https://h/v1/bridge/fhir/ehi-export/t1/download/a.jsonl",
                "https://h/v1/bridge/fhir/ehi-export/t1/download/b.jsonl"
            ]
        );
        let stats = d.stats.unwrap();
        assert_eq!(stats.total_resources, Some(3));
        assert_eq!(stats.total_by_resource_type["Observation"], 2);
    }

    #[test]
    fn export_success_with_the_legacy_download_link_is_read() {
        let d = export(
            r#"{"download_link":"https://h/x/a.jsonl","org_connection_id":"c","task_id":"t"}"#,
        );
        assert_eq!(d.urls(), ["https://h/x/a.jsonl"]);
        assert!(d.stats.is_none());
        // Both shapes at once: the legacy link is added unless it repeats one.
        let d = export(
            r#"{"download_links":[{"url":"https://h/a"}],"download_link":"https://h/a","task_id":"t"}"#,
        );
        assert_eq!(d.urls(), ["https://h/a"]);
        let d =
            export(r#"{"download_links":[{"url":"https://h/a"}],"download_link":"https://h/b"}"#);
        assert_eq!(d.urls(), ["https://h/a", "https://h/b"]);
    }

    #[test]
    fn a_malformed_export_success_is_an_error() {
        let err = FastenEvent::parse("patient.ehi_export_success", br#"{"data":{"task_id":7}}"#)
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("data is not an ehi_export_success payload"),
            "{err}"
        );
        let err = FastenEvent::parse("webhook.test", b"not json").unwrap_err();
        assert!(
            err.to_string().starts_with("body is not a JSON event"),
            "{err}"
        );
    }

    #[test]
    fn other_shapes_ignore_fields_that_are_not_strings() {
        let body = br#"{"data":{"org_connection_id":"c1","brand_id":5,"platform_type":"epic"}}"#;
        let FastenEvent::ConnectionSuccess(d) =
            FastenEvent::parse("patient.connection_success", body).unwrap()
        else {
            panic!("not a connection event")
        };
        assert_eq!(d.org_connection_id.as_deref(), Some("c1"));
        assert_eq!(d.brand_id, None);
        assert_eq!(d.platform_type.as_deref(), Some("epic"));
        let FastenEvent::AuthorizationRevoked(d) =
            FastenEvent::parse("patient.authorization_revoked", br#"{"data":["c1","x"]}"#).unwrap()
        else {
            panic!("not a revocation")
        };
        assert_eq!(d.org_connection_id, None);
    }

    #[test]
    fn types_without_an_action_are_told_apart() {
        assert!(matches!(
            FastenEvent::parse("webhook.test", br#"{"data":{"hello":"world"}}"#).unwrap(),
            FastenEvent::Informational
        ));
        assert!(matches!(
            FastenEvent::parse("patient.something_new", b"{}").unwrap(),
            FastenEvent::Unknown(t) if t == "patient.something_new"
        ));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// Any JSON value, nested a few levels, with the field names Fasten's payloads use so
    /// that the typed readers meet them in the wrong shapes too.
    fn json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("task_id".to_string()),
            Just("org_connection_id".to_string()),
            Just("download_link".to_string()),
            Just("download_links".to_string()),
            Just("url".to_string()),
            Just("stats".to_string()),
            Just("total_resources".to_string()),
            Just("total_by_resource_type".to_string()),
            "[a-z_]{1,12}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,20}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::btree_map(key.clone(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn event_type() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(crate::simulate::EVENT_TYPES.to_vec()).prop_map(String::from),
            "\\PC{0,30}",
        ]
    }

    /// Everything a caller may ask of a parsed event.
    fn touch(event: &FastenEvent) {
        let _ = event.task_id();
        if let FastenEvent::ExportSuccess(d) = event {
            let _ = d.urls();
        }
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panic(
            kind in event_type(),
            body in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            if let Ok(event) = FastenEvent::parse(&kind, &body) {
                touch(&event);
            }
        }

        #[test]
        fn any_data_shape_parses_without_panic_and_lenient_types_always_read(
            kind in event_type(),
            data in json(),
        ) {
            let body = serde_json::json!({"id": "e", "type": kind, "data": data}).to_string();
            let parsed = FastenEvent::parse(&kind, body.as_bytes());
            if let Ok(event) = &parsed {
                touch(event);
            }
            // Only an export's download instructions are strict: without them nothing can
            // be done, and the failure must say so rather than read as an empty export.
            if kind != "patient.ehi_export_success" {
                prop_assert!(parsed.is_ok(), "{:?}", parsed.err());
            }
        }
    }
}
