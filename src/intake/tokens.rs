//! Upload tokens: what an app's backend hands a browser so that it uploads straight to us, into
//! one source, without an API key and without the app proxying the bytes.
//!
//! A token is `xipt_` + base64url(the grant as JSON) + `.` + base64url(HMAC-SHA256 of that text
//! under `[auth] token_secret`). It is checked without a lookup; only a single-use token's id is
//! written down, on its first use, so that a second use can be refused.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{SubmitError, UploadRules};
pub use crate::config::MAX_TOKEN_TTL;
use crate::ids::TokenId;

/// What every upload token starts with, telling it apart from an API key (`xip_`).
pub const TOKEN_PREFIX: &str = "xipt_";

/// How long after its expiry a token still reads the status of the jobs it created: an upload
/// that began just before the expiry must be followed to its end.
pub const STATUS_GRACE: Duration = Duration::from_secs(3600);

/// What a token allows: one upload route call (or several) into one source, until it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadGrant {
    /// Its id: the jobs it creates record it; a single-use token is spent under it.
    pub id: TokenId,
    /// The only `sourceType` it uploads into.
    #[serde(rename = "st")]
    pub source_type: String,
    /// The only `sourceId` it uploads into.
    #[serde(rename = "sid")]
    pub source_id: String,
    /// When it stops being valid, in Unix seconds.
    #[serde(rename = "exp")]
    pub expires_at: u64,
    /// A size limit below `max_file_size`, if the backend set one.
    #[serde(rename = "max", default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Whether it uploads once only.
    #[serde(rename = "once", default, skip_serializing_if = "std::ops::Not::not")]
    pub single_use: bool,
}

impl UploadGrant {
    /// Whether it may still upload at `now` (Unix seconds).
    pub fn is_live(&self, now: u64) -> bool {
        now < self.expires_at
    }

    /// Whether it may still read its jobs' status at `now`: until [`STATUS_GRACE`] after expiry.
    pub fn reads_status(&self, now: u64) -> bool {
        now < self.expires_at.saturating_add(STATUS_GRACE.as_secs())
    }

    /// Whether it is for this source.
    pub fn allows(&self, source_type: &str, source_id: &str) -> bool {
        self.source_type == source_type && self.source_id == source_id
    }
}

/// What the backend asks a token to allow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    /// The source type it uploads into.
    pub source_type: String,
    /// The source id it uploads into.
    pub source_id: String,
    /// How long it lives, in seconds; `[auth] token_ttl_secs` when absent.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// A size limit in bytes below `max_file_size`.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Whether it uploads once only.
    #[serde(default)]
    pub single_use: bool,
}

/// A token just made, and what it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedToken {
    /// The token, to hand to the browser.
    pub token: String,
    /// What it allows.
    pub grant: UploadGrant,
}

/// Why a token was not made, or not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// No `[auth] token_secret` is configured.
    #[error("Upload tokens are off: the server has no [auth] token_secret")]
    Off,
    /// The source is not one uploads may go to.
    #[error(transparent)]
    Fields(SubmitError),
    /// `ttlSecs` is out of range.
    #[error("ttlSecs must be from 1 to {max}")]
    Ttl {
        /// The longest allowed.
        max: u64,
    },
    /// `maxBytes` is out of range.
    #[error("maxBytes must be from 1 to maxFileSize ({max})")]
    MaxBytes {
        /// `max_file_size`.
        max: u64,
    },
    /// Not a token signed here, or altered.
    #[error("This upload token is not valid")]
    Invalid,
    /// Past its expiry.
    #[error("This upload token has expired: ask the app for a new one")]
    Expired,
    /// A single-use token used already.
    #[error("This upload token was for one upload and has been used")]
    Spent,
    /// It is for another source.
    #[error("This upload token is for another source")]
    OtherSource,
    /// It did not create the job whose status it asks for.
    #[error("This upload token did not create this job")]
    OtherJob,
    /// The database failed while a single-use token was being spent.
    #[error("The job database is unavailable")]
    Queue(#[source] crate::queue::QueueError),
}

/// Signs and reads upload tokens with one secret.
#[derive(Clone)]
pub struct TokenSigner {
    secret: Arc<[u8]>,
    default_ttl: Duration,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("TokenSigner")
            .field("default_ttl", &self.default_ttl)
            .finish()
    }
}

impl TokenSigner {
    /// A signer whose tokens live `default_ttl` unless asked otherwise.
    pub fn new(secret: &[u8], default_ttl: Duration) -> TokenSigner {
        TokenSigner {
            secret: secret.into(),
            default_ttl,
        }
    }

    /// A token for `request`, checked against `rules` (the source must be one uploads may go
    /// to, the size limit below theirs), valid from `now` (Unix seconds).
    ///
    /// # Errors
    /// `Fields`, `Ttl` or `MaxBytes` for a request that cannot be granted.
    pub fn mint(
        &self,
        request: &TokenRequest,
        rules: &UploadRules,
        now: u64,
    ) -> Result<MintedToken, TokenError> {
        rules
            .check_fields(Some(&request.source_type), Some(&request.source_id))
            .map_err(TokenError::Fields)?;
        let ttl = request.ttl_secs.unwrap_or(self.default_ttl.as_secs());
        if ttl == 0 || ttl > MAX_TOKEN_TTL.as_secs() {
            return Err(TokenError::Ttl {
                max: MAX_TOKEN_TTL.as_secs(),
            });
        }
        if let Some(max) = request.max_bytes
            && (max == 0 || max > rules.max_file_size)
        {
            return Err(TokenError::MaxBytes {
                max: rules.max_file_size,
            });
        }
        let grant = UploadGrant {
            id: TokenId::generate(),
            source_type: request.source_type.clone(),
            source_id: request.source_id.clone(),
            expires_at: now + ttl,
            max_bytes: request.max_bytes,
            single_use: request.single_use,
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&grant).expect("plain data"));
        let signature = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        Ok(MintedToken {
            token: format!("{TOKEN_PREFIX}{payload}.{signature}"),
            grant,
        })
    }

    /// The grant of a token signed here and unaltered, expired or not. The signature is
    /// checked (in constant time) before the payload is parsed.
    ///
    /// # Errors
    /// `Invalid` for anything else.
    pub fn read(&self, token: &str) -> Result<UploadGrant, TokenError> {
        let (payload, signature) = token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|rest| rest.split_once('.'))
            .ok_or(TokenError::Invalid)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Invalid)?;
        self.mac(payload)
            .verify_slice(&signature)
            .map_err(|_| TokenError::Invalid)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Invalid)?;
        serde_json::from_slice(&json).map_err(|_| TokenError::Invalid)
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        // An HMAC takes a key of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(TOKEN_PREFIX.as_bytes());
        mac.update(payload.as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn rules() -> UploadRules {
        UploadRules::from_config(&Config::embedded("./unused").unwrap())
    }

    fn request() -> TokenRequest {
        TokenRequest {
            source_type: "avatar".to_owned(),
            source_id: "user-1".to_owned(),
            ..TokenRequest::default()
        }
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_token_reads_back_as_its_grant_and_only_here() {
        let signer = TokenSigner::new(SECRET, Duration::from_secs(600));
        let minted = signer.mint(&request(), &rules(), 1_000).unwrap();
        assert!(minted.token.starts_with(TOKEN_PREFIX));
        let grant = signer.read(&minted.token).unwrap();
        assert_eq!(grant, minted.grant);
        assert_eq!(grant.expires_at, 1_600);
        assert!(grant.allows("avatar", "user-1"));
        assert!(!grant.allows("avatar", "user-2"));
        assert!(grant.is_live(1_599) && !grant.is_live(1_600));
        assert!(grant.reads_status(1_600 + 3_599) && !grant.reads_status(1_600 + 3_600));

        let other = TokenSigner::new(b"another secret, also 32 bytes...", Duration::from_secs(60));
        assert!(matches!(
            other.read(&minted.token),
            Err(TokenError::Invalid)
        ));
        // A payload changed to another source keeps the old signature: refused.
        let (_, signature) = minted.token.rsplit_once('.').unwrap();
        let mut forged = grant.clone();
        forged.source_id = "victim".to_owned();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let forged = format!("{TOKEN_PREFIX}{payload}.{signature}");
        assert!(matches!(signer.read(&forged), Err(TokenError::Invalid)));
        for junk in [
            "",
            "xipt_",
            "xipt_a.b",
            "xip_abc",
            "xipt_..",
            &minted.token[1..],
        ] {
            assert!(
                matches!(signer.read(junk), Err(TokenError::Invalid)),
                "{junk}"
            );
        }
    }

    #[test]
    fn a_request_is_checked_before_it_is_signed() {
        let signer = TokenSigner::new(SECRET, Duration::from_secs(600));
        let rules = rules();
        let refused = |r: TokenRequest| signer.mint(&r, &rules, 0).unwrap_err();
        assert!(matches!(
            refused(TokenRequest {
                source_type: "nope".to_owned(),
                ..request()
            }),
            TokenError::Fields(SubmitError::UnknownSourceType(_))
        ));
        assert!(matches!(
            refused(TokenRequest {
                source_id: "../x".to_owned(),
                ..request()
            }),
            TokenError::Fields(SubmitError::InvalidSourceId)
        ));
        for ttl in [0, MAX_TOKEN_TTL.as_secs() + 1] {
            assert!(matches!(
                refused(TokenRequest {
                    ttl_secs: Some(ttl),
                    ..request()
                }),
                TokenError::Ttl { .. }
            ));
        }
        for max in [0, rules.max_file_size + 1] {
            assert!(matches!(
                refused(TokenRequest {
                    max_bytes: Some(max),
                    ..request()
                }),
                TokenError::MaxBytes { .. }
            ));
        }
        let minted = signer
            .mint(
                &TokenRequest {
                    ttl_secs: Some(30),
                    max_bytes: Some(1000),
                    single_use: true,
                    ..request()
                },
                &rules,
                0,
            )
            .unwrap();
        let grant = signer.read(&minted.token).unwrap();
        assert_eq!(
            (grant.expires_at, grant.max_bytes, grant.single_use),
            (30, Some(1000), true)
        );
    }
}
