//! What the receiver reads from a request before anything about it is trusted: the body's
//! `id` and `type`, and the request id that tags its log lines and answer.

use http::HeaderMap;
use serde::Deserialize;

/// The two fields hookd needs from a body; the rest stays opaque.
#[derive(Deserialize)]
struct Envelope {
    id: Option<serde_json::Value>,
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
}

/// The body's `id` and `type` (each when a non-empty string), or `Err` with the one-line
/// reason when the body is not a UTF-8 JSON object (serde_json's own words say where: a
/// duplicate `id`, a number out of range). An array would fill the fields by position, so
/// it is refused up front. The rest is not parsed (a skipped value's escapes, such as an
/// unpaired surrogate `\ud800`, are not checked): whoever reads `data` parses it.
pub(super) fn envelope(body: &[u8]) -> Result<(Option<String>, Option<String>), String> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err("body is not a JSON object".into());
    }
    // JSON exchanged between systems is UTF-8 (RFC 8259, 8.1). serde_json checks only the
    // strings it reads, not those it skips, so a bad byte in `data` would be stored and
    // forwarded, and fail later at whoever parses it; the sender hears of it now instead.
    if let Err(e) = std::str::from_utf8(body) {
        return Err(format!(
            "body is not UTF-8 (JSON text must be): invalid byte at offset {}",
            e.valid_up_to()
        ));
    }
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| format!("body is not a valid JSON object: {e}"))?;
    Ok((as_text(envelope.id), as_text(envelope.kind)))
}

fn as_text(value: Option<serde_json::Value>) -> Option<String> {
    match value {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// The sender's `x-request-id` when it is a sane token, else a fresh one.
pub(super) fn request_id(headers: &HeaderMap) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_array_body_has_no_envelope() {
        assert_eq!(
            envelope(br#"["evt_1", "a.type"]"#),
            Err("body is not a JSON object".into())
        );
        // Not UTF-8, in a value serde_json would only skip.
        assert_eq!(
            envelope(b"{\"type\":\"t.x\",\"data\":\"\xff\xfe\"}"),
            Err("body is not UTF-8 (JSON text must be): invalid byte at offset 22".into())
        );
        // A body that is an object but not valid says why, and where.
        let duplicate = envelope(br#"{"type":"t.x","id":"a1","id":"a2"}"#).unwrap_err();
        assert!(
            duplicate.contains("duplicate field `id`") && duplicate.contains("column"),
            "{duplicate}"
        );
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
