//! The `Ximagepipeline-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<raw body>">` under `[webhooks] secret`. The time is signed with the body, so a
//! receiver that refuses old timestamps cannot be fed a recorded delivery again later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header value for `body` sent at `t`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex::encode(mac(secret, t, body)))
}

/// Whether `header` signs `body` under `secret` with a time within `tolerance_secs` of `now`:
/// what a receiver written in Rust checks (README, "Webhooks").
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > tolerance_secs {
        return false;
    }
    v1.iter().any(|given| {
        let mut expected = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
        expected.update(format!("{t}.").as_bytes());
        expected.update(body);
        expected.verify_slice(given).is_ok()
    })
}

fn mac(secret: &str, t: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signature_verifies_only_for_its_body_secret_and_time() {
        let body = br#"{"event":"job.completed"}"#;
        let header = signature(SECRET, 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert!(verify(SECRET, &header, body, 1_700_000_100, 300));
        assert!(
            !verify(SECRET, &header, b"{}", 1_700_000_100, 300),
            "another body"
        );
        assert!(!verify(
            "another secret of 32 characters!!",
            &header,
            body,
            1_700_000_100,
            300
        ));
        assert!(
            !verify(SECRET, &header, body, 1_700_000_301, 300),
            "too old: a replay"
        );
        let moved = header.replace("t=1700000000", "t=1700000200");
        assert!(
            !verify(SECRET, &moved, body, 1_700_000_200, 300),
            "the time is signed"
        );
        assert!(!verify(SECRET, "v1=00", body, 1_700_000_000, 300));
    }

    /// The same bytes as the JavaScript example in the README computes.
    #[test]
    fn the_mac_is_hmac_sha256_of_time_dot_body() {
        let header = signature("key", 1, b"body");
        // HMAC-SHA256(key="key", "1.body")
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
        mac.update(b"1.body");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(header, format!("t=1,v1={expected}"));
    }

    /// The README's receiver-side check, as written there: it must agree with `signature`.
    fn readme_verified(raw_body: &[u8], header: &str, secret: &str, now_unix_secs: i64) -> bool {
        let field = |key: &str| header.split(',').find_map(|part| part.strip_prefix(key));
        let (Some(t), Some(v1)) = (field("t="), field("v1=")) else {
            return false;
        };
        let (Ok(t), Ok(v1)) = (t.parse::<i64>(), hex::decode(v1)) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(format!("{t}.").as_bytes());
        mac.update(raw_body);
        (now_unix_secs - t).abs() <= 300 && mac.verify_slice(&v1).is_ok()
    }

    #[test]
    fn the_readme_check_accepts_a_signature_and_refuses_a_replay() {
        let header = signature(SECRET, 1_000, b"{}");
        assert!(readme_verified(b"{}", &header, SECRET, 1_100));
        assert!(!readme_verified(b"{ }", &header, SECRET, 1_100));
        assert!(!readme_verified(b"{}", &header, SECRET, 1_400));
    }
}
