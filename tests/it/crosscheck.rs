//! hookd's verifier against the `standardwebhooks` reference crate on many random inputs.

use hookd::secret::Secret;
use hookd::verify;
use http::HeaderMap;
use rand::Rng;

fn headers(id: &str, ts: i64, sig: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("webhook-id", id.parse().unwrap());
    h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
    h.insert("webhook-signature", sig.parse().unwrap());
    h
}

#[test]
fn signatures_agree_with_the_reference_crate() {
    let mut rng = rand::rng();
    let now = hookd::clock::system_secs();
    for round in 0..500 {
        let key: Vec<u8> = (0..rng.random_range(16..64))
            .map(|_| rng.random())
            .collect();
        let whsec = format!("whsec_{}", base64_encode(&key));
        let ours = Secret::parse(&whsec).unwrap();
        let theirs = standardwebhooks::Webhook::new(&whsec).unwrap();
        let id = format!("msg_{}", rng.random::<u64>());
        let ts = now + rng.random_range(-250..250);
        let body: String = (0..rng.random_range(0..300))
            .map(|_| rng.random_range(' '..='\u{2FF}'))
            .collect();

        let our_sig = verify::sign(&ours, &id, ts, body.as_bytes());
        let their_sig = theirs.sign(&id, ts, body.as_bytes()).unwrap();
        assert_eq!(our_sig, their_sig, "round {round}");

        // Each side accepts what the other signed.
        assert!(theirs
            .verify(body.as_bytes(), &headers(&id, ts, &our_sig))
            .is_ok());
        let signed = verify::extract(&headers(&id, ts, &their_sig)).unwrap();
        assert_eq!(
            verify::verify(
                &signed,
                body.as_bytes(),
                std::slice::from_ref(&ours),
                300,
                now
            ),
            Ok(())
        );

        // And both refuse a tampered body.
        let tampered = format!("{body}!");
        assert!(theirs
            .verify(tampered.as_bytes(), &headers(&id, ts, &our_sig))
            .is_err());
        assert!(verify::verify(&signed, tampered.as_bytes(), &[ours], 300, now).is_err());
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
