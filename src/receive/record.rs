//! What a delivery record keeps of a request: headers redacted and capped in bytes, and the
//! sender's unverified claims (event id and type, endpoint name) cut short.
//!
//! Anyone can send a request before its signature is checked, so nothing here may grow with
//! what the sender chose to send: a rejected request costs the store a bounded record.

use http::HeaderMap;

/// What a redacted header's value is stored as.
pub(super) const REDACTED: &str = "<redacted>";
/// The pseudo-header that says how many headers were left out over the byte cap. Its name
/// is not a valid HTTP header name (`:`), so no sender can forge it.
pub(super) const DROPPED: &str = ":hookd-dropped";
/// Bytes kept of a text the sender chose and hookd did not verify.
pub(super) const UNVERIFIED_MAX_BYTES: usize = 128;

/// The request's headers in order, `redact`ed ones as [`REDACTED`], until their names and
/// values reach `cap` bytes; then one [`DROPPED`] entry counting the rest.
pub(super) fn headers(headers: &HeaderMap, redact: &[String], cap: usize) -> Vec<(String, String)> {
    let mut kept = Vec::new();
    let mut used = 0usize;
    let (mut dropped, mut dropped_bytes) = (0usize, 0usize);
    for (name, value) in headers {
        let value = if redact.iter().any(|r| r == name.as_str()) {
            REDACTED.to_string()
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        let size = name.as_str().len() + value.len();
        // Once one header is dropped, later ones are too: the kept list stays a prefix.
        if dropped == 0 && used + size <= cap {
            used += size;
            kept.push((name.as_str().to_string(), value));
        } else {
            dropped += 1;
            dropped_bytes += size;
        }
    }
    if dropped > 0 {
        kept.push((
            DROPPED.to_string(),
            format!("{dropped} headers ({dropped_bytes} bytes) over the {cap}-byte cap"),
        ));
    }
    kept
}

/// `text` cut to [`UNVERIFIED_MAX_BYTES`] on a character boundary, `…` marking a cut.
pub(super) fn short(text: &str) -> String {
    if text.len() <= UNVERIFIED_MAX_BYTES {
        return text.to_string();
    }
    let mut end = UNVERIFIED_MAX_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// About what a record of these parts costs on disk: its texts plus a fixed allowance for
/// the rest (ids, times, the response, encoding).
pub(super) fn cost(headers: &[(String, String)], texts: &[&str]) -> usize {
    const FIXED: usize = 512;
    let headers: usize = headers.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
    FIXED + headers + texts.iter().map(|t| t.len()).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn redacted_values_are_never_kept_and_the_signature_is() {
        let redact = ["x-api-key".to_string(), "authorization".to_string()];
        let h = map(&[
            ("X-Api-Key", "sk_live_secret"),
            ("webhook-signature", "v1,abc"),
            ("Authorization", "Bearer t"),
        ]);
        let kept = headers(&h, &redact, 10_000);
        assert_eq!(kept.len(), 3);
        assert!(kept
            .iter()
            .all(|(_, v)| !v.contains("secret") && v != "Bearer t"));
        assert!(kept.contains(&("x-api-key".into(), REDACTED.into())));
        assert!(kept.contains(&("webhook-signature".into(), "v1,abc".into())));
    }

    #[test]
    fn headers_over_the_cap_are_dropped_with_a_note() {
        let h = map(&[("a", "12345"), ("b", "12345"), ("c", "1")]);
        // a (6 bytes) fits in 10; b would not, and c is dropped after it so order holds.
        let kept = headers(&h, &[], 10);
        assert_eq!(kept[0], ("a".into(), "12345".into()));
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[1].0, DROPPED);
        assert!(
            kept[1].1.starts_with("2 headers (8 bytes)"),
            "{}",
            kept[1].1
        );
        assert_eq!(headers(&h, &[], 100).len(), 3);
    }

    #[test]
    fn short_texts_are_kept_and_long_ones_cut() {
        assert_eq!(short("evt_1"), "evt_1");
        let long = "é".repeat(100);
        let cut = short(&long);
        assert!(cut.ends_with('…'));
        assert!(cut.len() <= UNVERIFIED_MAX_BYTES + '…'.len_utf8());
    }

    proptest! {
        #[test]
        fn any_text_is_cut_to_a_bounded_prefix(text in "\\PC{0,200}") {
            let cut = short(&text);
            let kept = cut.strip_suffix('…').unwrap_or(&cut);
            prop_assert!(text.starts_with(kept));
            prop_assert!(kept.len() <= UNVERIFIED_MAX_BYTES);
        }

        #[test]
        fn kept_headers_fit_the_cap(
            values in proptest::collection::vec("[ -~]{0,300}", 0..40),
            cap in 0usize..4000,
        ) {
            let mut h = HeaderMap::new();
            for (i, v) in values.iter().enumerate() {
                h.append(
                    http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
                    http::HeaderValue::from_str(v).unwrap(),
                );
            }
            let kept = headers(&h, &[], cap);
            let used: usize = kept.iter().filter(|(k, _)| k != DROPPED).map(|(k, v)| k.len() + v.len()).sum();
            prop_assert!(used <= cap);
        }
    }
}
