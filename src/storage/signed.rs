//! Signed `/files` URLs (`[auth] files = "signed"`): each URL in an answer carries its expiry
//! and an HMAC-SHA256 of the object key and that expiry, so `/files` can tell a link it gave
//! out, unaltered and still valid, from any other without storing anything.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Signs and checks URLs with one secret.
#[derive(Clone)]
pub struct UrlSigner {
    secret: Arc<[u8]>,
    ttl: Duration,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("UrlSigner").field("ttl", &self.ttl).finish()
    }
}

impl UrlSigner {
    /// A signer whose URLs live `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> UrlSigner {
        UrlSigner {
            secret: secret.into(),
            ttl,
        }
    }

    /// The query (`expires=…&signature=…`) that lets `key` be fetched for the next `ttl`.
    pub fn query(&self, key: &str) -> String {
        let expires = unix_now() + self.ttl.as_secs();
        let signature = hex::encode(self.mac(key, expires).finalize().into_bytes());
        format!("expires={expires}&signature={signature}")
    }

    /// How long a link to `key` with this `expires` and `signature` stays valid; `None` when
    /// it was not signed here, was altered, or has expired. Compared in constant time.
    pub fn check(&self, key: &str, expires: &str, signature: &str) -> Option<Duration> {
        let expires: u64 = expires.parse().ok()?;
        let signature = hex::decode(signature).ok()?;
        self.mac(key, expires).verify_slice(&signature).ok()?;
        let left = expires.checked_sub(unix_now())?;
        (left > 0).then(|| Duration::from_secs(left))
    }

    fn mac(&self, key: &str, expires: u64) -> Hmac<Sha256> {
        // An HMAC takes a key of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_valid_for_its_key_until_it_expires() {
        let signer = UrlSigner::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let query = signer.query("media/a/b/med_x/sm.webp");
        let (expires, signature) = query
            .strip_prefix("expires=")
            .and_then(|q| q.split_once("&signature="))
            .unwrap();
        let left = signer
            .check("media/a/b/med_x/sm.webp", expires, signature)
            .unwrap();
        assert!(left <= Duration::from_secs(60) && left >= Duration::from_secs(58));
        assert!(
            signer
                .check("media/a/b/med_y/sm.webp", expires, signature)
                .is_none()
        );
        let later = (expires.parse::<u64>().unwrap() + 1).to_string();
        assert!(
            signer
                .check("media/a/b/med_x/sm.webp", &later, signature)
                .is_none()
        );
        let other = UrlSigner::new(b"another secret, also 32 bytes...", Duration::from_secs(60));
        assert!(
            other
                .check("media/a/b/med_x/sm.webp", expires, signature)
                .is_none()
        );
        let expired = UrlSigner::new(b"0123456789abcdef0123456789abcdef", Duration::ZERO);
        let query = expired.query("k");
        let (expires, signature) = query
            .strip_prefix("expires=")
            .and_then(|q| q.split_once("&signature="))
            .unwrap();
        assert!(expired.check("k", expires, signature).is_none(), "expired");
    }
}
