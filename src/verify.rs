//! Standard Webhooks signature verification (the scheme Fasten Connect signs with).
//!
//! Signed content is `{id}.{timestamp}.{raw body}`; the signature header is a space-separated
//! list of `version,base64` entries and the delivery is authentic if any `v1` entry matches
//! any configured secret. Several secrets are how rotation works: during the switch, both the
//! old and the new one verify. Comparison is constant-time (`Mac::verify_slice`).

use crate::secret::Secret;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The three signature headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `webhook-id`: the sender's message id.
    pub id: String,
    /// `webhook-timestamp`: unix seconds when the sender signed.
    pub timestamp: i64,
    /// `webhook-signature`: the raw list of signatures.
    pub signature: String,
}

/// Why a request's signature was not accepted; each maps to a 401 with this text as reason.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("missing header {0} (or its svix- alias)")]
    MissingHeader(&'static str),
    #[error("malformed header {0}")]
    MalformedHeader(&'static str),
    #[error("timestamp is {0} s in the past, beyond the tolerance")]
    TooOld(i64),
    #[error("timestamp is {0} s in the future, beyond the tolerance")]
    TooNew(i64),
    #[error("no v1 signature matches a configured secret")]
    NoMatch,
}

fn header<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
    alias: &'static str,
) -> Result<&'a str, VerifyError> {
    let value = headers
        .get(name)
        .or_else(|| headers.get(alias))
        .ok_or(VerifyError::MissingHeader(name))?;
    let text = value
        .to_str()
        .map_err(|_| VerifyError::MalformedHeader(name))?
        .trim();
    if text.is_empty() {
        return Err(VerifyError::MalformedHeader(name));
    }
    Ok(text)
}

/// Reads `webhook-id`, `webhook-timestamp` and `webhook-signature` (or the `svix-` aliases).
pub fn extract(headers: &HeaderMap) -> Result<SignedHeaders, VerifyError> {
    let id = header(headers, "webhook-id", "svix-id")?;
    let timestamp = header(headers, "webhook-timestamp", "svix-timestamp")?;
    let signature = header(headers, "webhook-signature", "svix-signature")?;
    let timestamp = timestamp
        .parse::<i64>()
        .map_err(|_| VerifyError::MalformedHeader("webhook-timestamp"))?;
    Ok(SignedHeaders {
        id: id.to_owned(),
        timestamp,
        signature: signature.to_owned(),
    })
}

fn mac_for(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret.key()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks the timestamp against `tolerance_secs` (both directions) and the signatures
/// against every secret. `now` is unix seconds.
pub fn verify(
    signed: &SignedHeaders,
    body: &[u8],
    secrets: &[Secret],
    tolerance_secs: u64,
    now: i64,
) -> Result<(), VerifyError> {
    let skew = now.saturating_sub(signed.timestamp);
    let tolerance = tolerance_secs.min(i64::MAX as u64) as i64;
    if skew > tolerance {
        return Err(VerifyError::TooOld(skew));
    }
    // `skew` can be i64::MIN (a timestamp far in the future of a negative `now`): negate
    // without overflowing.
    if skew.saturating_neg() > tolerance {
        return Err(VerifyError::TooNew(skew.saturating_neg()));
    }
    let candidates: Vec<Vec<u8>> = signed
        .signature
        .split_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, sig)| STANDARD.decode(sig).ok())
        .collect();
    if candidates.is_empty() {
        return Err(VerifyError::MalformedHeader("webhook-signature"));
    }
    for secret in secrets {
        let mac = mac_for(secret, &signed.id, signed.timestamp, body);
        if candidates
            .iter()
            .any(|candidate| mac.clone().verify_slice(candidate).is_ok())
        {
            return Ok(());
        }
    }
    Err(VerifyError::NoMatch)
}

/// Signs `body` as a Standard Webhooks sender would: returns the `v1,<base64>` entry.
pub fn sign(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac_for(secret, id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// A POST of the JSON `body` to `url`, signed now as a Standard Webhooks sender signs: what
/// hookd sends as a sender (forwards, pushes, alerts, `hookd send`, the Fasten stand-in).
pub fn signed_post(
    client: &reqwest::Client,
    url: &str,
    secret: &Secret,
    id: &str,
    body: impl Into<bytes::Bytes>,
) -> reqwest::RequestBuilder {
    let body = body.into();
    let ts = crate::clock::system_secs();
    let signature = sign(secret, id, ts, &body);
    client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const A_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const A_TS: i64 = 1614265330;
    const A_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const A_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn signed(id: &str, ts: i64, sig: &str) -> SignedHeaders {
        SignedHeaders {
            id: id.into(),
            timestamp: ts,
            signature: sig.into(),
        }
    }

    fn secret(s: &str) -> Secret {
        Secret::parse(s).unwrap()
    }

    #[test]
    fn official_vector_a_verifies_and_signs() {
        let s = secret(A_SECRET);
        assert_eq!(sign(&s, A_ID, A_TS, A_BODY), A_SIG);
        assert_eq!(
            verify(&signed(A_ID, A_TS, A_SIG), A_BODY, &[s], 300, A_TS),
            Ok(())
        );
    }

    #[test]
    fn official_vector_b_verifies_and_signs() {
        let s = secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let sig = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
        assert_eq!(
            sign(&s, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body),
            sig
        );
        let h = signed("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, sig);
        assert_eq!(verify(&h, body, &[s], 300, 1649367553), Ok(()));
    }

    #[test]
    fn changed_last_character_fails() {
        let h = signed(
            A_ID,
            A_TS,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=",
        );
        assert_eq!(
            verify(&h, A_BODY, &[secret(A_SECRET)], 300, A_TS),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn any_v1_entry_may_match_and_other_versions_are_ignored() {
        let list = format!("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,xyz {A_SIG}");
        let h = signed(A_ID, A_TS, &list);
        assert_eq!(verify(&h, A_BODY, &[secret(A_SECRET)], 300, A_TS), Ok(()));
        // The valid tag under another version label does not count.
        let h = signed(A_ID, A_TS, &A_SIG.replacen("v1,", "v1a,", 1));
        assert!(verify(&h, A_BODY, &[secret(A_SECRET)], 300, A_TS).is_err());
    }

    #[test]
    fn body_is_signed_byte_for_byte() {
        let h = signed(A_ID, A_TS, A_SIG);
        let reformatted = br#"{"test":2432232314}"#;
        assert_eq!(
            verify(&h, reformatted, &[secret(A_SECRET)], 300, A_TS),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn either_secret_verifies_during_rotation() {
        let old = Secret::generate();
        let new = Secret::generate();
        for signer in [&old, &new] {
            let sig = sign(signer, "msg_1", 100, b"{}");
            let h = signed("msg_1", 100, &sig);
            assert_eq!(
                verify(&h, b"{}", &[old.clone(), new.clone()], 300, 100),
                Ok(())
            );
        }
        let other = Secret::generate();
        let h = signed("msg_1", 100, &sign(&other, "msg_1", 100, b"{}"));
        assert_eq!(
            verify(&h, b"{}", &[old, new], 300, 100),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn tolerance_applies_in_both_directions() {
        let s = secret(A_SECRET);
        let h = signed(A_ID, A_TS, A_SIG);
        assert_eq!(
            verify(&h, A_BODY, std::slice::from_ref(&s), 300, A_TS + 300),
            Ok(())
        );
        assert_eq!(
            verify(&h, A_BODY, std::slice::from_ref(&s), 300, A_TS - 300),
            Ok(())
        );
        assert_eq!(
            verify(&h, A_BODY, std::slice::from_ref(&s), 300, A_TS + 301),
            Err(VerifyError::TooOld(301))
        );
        assert_eq!(
            verify(&h, A_BODY, &[s], 300, A_TS - 301),
            Err(VerifyError::TooNew(301))
        );
    }

    #[test]
    fn headers_and_svix_aliases_are_read() {
        let mut map = HeaderMap::new();
        map.insert("svix-id", A_ID.parse().unwrap());
        map.insert("svix-timestamp", A_TS.to_string().parse().unwrap());
        map.insert("svix-signature", A_SIG.parse().unwrap());
        assert_eq!(extract(&map).unwrap(), signed(A_ID, A_TS, A_SIG));
        map.remove("svix-id");
        assert_eq!(extract(&map), Err(VerifyError::MissingHeader("webhook-id")));
        map.insert("webhook-id", A_ID.parse().unwrap());
        map.insert("webhook-timestamp", "soon".parse().unwrap());
        assert_eq!(
            extract(&map),
            Err(VerifyError::MalformedHeader("webhook-timestamp"))
        );
    }

    #[test]
    fn signature_header_without_v1_entries_is_malformed() {
        let h = signed(A_ID, A_TS, "v2,abc garbage");
        assert_eq!(
            verify(&h, A_BODY, &[secret(A_SECRET)], 300, A_TS),
            Err(VerifyError::MalformedHeader("webhook-signature"))
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn header_map(pairs: &[(&'static str, Vec<u8>)]) -> HeaderMap {
            let mut h = HeaderMap::new();
            for (name, value) in pairs {
                // Bytes no header can carry never reach the verifier.
                if let Ok(v) = http::HeaderValue::from_bytes(value) {
                    h.insert(*name, v);
                }
            }
            h
        }

        /// A signature header: `v1,` entries (valid base64 or not), other versions, junk.
        fn signature_header() -> impl Strategy<Value = String> {
            let entry = prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..40)
                    .prop_map(|b| format!("v1,{}", STANDARD.encode(b))),
                "v[0-9],[A-Za-z0-9+/=]{0,50}",
                "[ -~]{0,30}",
            ];
            proptest::collection::vec(entry, 0..5).prop_map(|e| e.join(" "))
        }

        proptest! {
            #[test]
            fn extracting_any_header_bytes_never_panics(
                id in proptest::collection::vec(any::<u8>(), 0..80),
                ts in proptest::collection::vec(any::<u8>(), 0..30),
                sig in proptest::collection::vec(any::<u8>(), 0..200),
                svix in any::<bool>(),
            ) {
                let names = if svix {
                    ["svix-id", "svix-timestamp", "svix-signature"]
                } else {
                    ["webhook-id", "webhook-timestamp", "webhook-signature"]
                };
                let h = header_map(&[(names[0], id), (names[1], ts), (names[2], sig)]);
                if let Ok(signed) = extract(&h) {
                    prop_assert!(!signed.id.is_empty() && !signed.signature.is_empty());
                }
            }

            #[test]
            fn verifying_any_input_never_panics(
                ts in any::<i64>(),
                now in any::<i64>(),
                tolerance in any::<u64>(),
                sig in signature_header(),
                body in proptest::collection::vec(any::<u8>(), 0..200),
            ) {
                let signed = SignedHeaders { id: "msg_1".into(), timestamp: ts, signature: sig };
                let _ = verify(&signed, &body, &[secret(A_SECRET)], tolerance, now);
            }

            /// Within the reference crate's fixed 5-minute tolerance, and on UTF-8 bodies (it
            /// refuses others), hookd and the `standardwebhooks` crate accept the same requests.
            #[test]
            fn verdicts_agree_with_the_reference_crate(
                key in proptest::collection::vec(any::<u8>(), 24..64),
                id in "[A-Za-z0-9_.-]{1,40}",
                offset in -290i64..290,
                body in "\\PC{0,200}",
                forged in signature_header(),
                sign_it in any::<bool>(),
                tamper in any::<bool>(),
            ) {
                let whsec = format!("whsec_{}", STANDARD.encode(&key));
                let ours = Secret::parse(&whsec).unwrap();
                let theirs = standardwebhooks::Webhook::new(&whsec).unwrap();
                let now = crate::clock::system_secs();
                let ts = now + offset;
                let mut sig = if sign_it { sign(&ours, &id, ts, body.as_bytes()) } else { forged.clone() };
                if sign_it && !forged.is_empty() {
                    sig = format!("{forged} {sig}");
                }
                let sent = if tamper { format!("{body}.") } else { body };
                let mut h = HeaderMap::new();
                h.insert("webhook-id", id.parse().unwrap());
                h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
                let Ok(value) = http::HeaderValue::from_str(&sig) else { return Ok(()) };
                h.insert("webhook-signature", value);
                let reference = theirs.verify(sent.as_bytes(), &h).is_ok();
                let hookd = extract(&h)
                    .and_then(|signed| verify(&signed, sent.as_bytes(), &[ours], 300, now))
                    .is_ok();
                prop_assert_eq!(hookd, reference, "signature {:?}", sig);
                prop_assert_eq!(hookd, sign_it && !tamper);
            }
        }
    }
}
