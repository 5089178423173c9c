//! `[auth]`: API keys for the app's backend. Absent, the API is open, as the Fastify plugin
//! was (access control left to the host app); present, every upload, media read and delete
//! needs a key with the scope for it.

use super::raw::RawAuth;
use super::{ConfigError, invalid};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `POST {prefix}/upload`.
    Upload,
    /// The media routes' reads (and the status route with `protect_status`).
    Read,
    /// `DELETE {prefix}/media/{id}`.
    Delete,
    /// Operator routes.
    Admin,
}

impl Scope {
    /// The scope's name in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Upload => "upload",
            Scope::Read => "read",
            Scope::Delete => "delete",
            Scope::Admin => "admin",
        }
    }

    /// The scope of this name in the configuration, if any.
    pub fn parse(name: &str) -> Option<Scope> {
        [Scope::Upload, Scope::Read, Scope::Delete, Scope::Admin]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// One API key: only its SHA-256 is configured, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Who holds it, for the logs (`backend`, `backend-2025-rotation`).
    pub name: String,
    /// SHA-256 of the key as sent after `Bearer `.
    pub sha256: [u8; 32],
    /// What it may do.
    pub scopes: Vec<Scope>,
}

/// Who may fetch `/files` (stored variants and originals on local storage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilesAccess {
    /// Anyone with the URL (media ids are unguessable); what a CDN in front would do.
    Public,
    /// Only requests with a `read` key (a backend fetching for its users).
    Key,
    /// URLs in answers carry an expiry and an HMAC-SHA256 signature that `/files` checks.
    Signed {
        /// The signing secret (`[auth] url_secret`).
        secret: Vec<u8>,
        /// How long a signed URL stays valid from the answer that held it.
        ttl: std::time::Duration,
    },
}

/// The longest an upload token may live: long enough for a slow upload form, short enough that
/// a leaked token is soon worthless.
pub const MAX_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Upload tokens (`[auth] token_secret`): the backend mints them for browsers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadTokens {
    /// The signing secret.
    pub secret: Vec<u8>,
    /// How long a token lives unless its request says otherwise.
    pub ttl: std::time::Duration,
}

/// Access control, when `[auth]` is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Every valid key; several at once let a key be rotated without downtime.
    pub keys: Vec<ApiKey>,
    /// Whether reading a job's status needs a `read` key too (otherwise the unguessable job
    /// id, about 119 random bits, is the credential).
    pub protect_status: bool,
    /// Who may fetch `/files`.
    pub files: FilesAccess,
    /// Upload tokens, when a secret is configured.
    pub tokens: Option<UploadTokens>,
}

/// Reads `[auth]`; `None` when absent.
pub(super) fn read(raw: Option<RawAuth>) -> Result<Option<AuthConfig>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.keys.is_empty() {
        return Err(invalid(
            "auth.keys",
            "must hold at least one key ([[auth.keys]] with name, sha256 and scopes)",
        ));
    }
    let mut keys: Vec<ApiKey> = Vec::new();
    for key in raw.keys {
        if keys.iter().any(|k| k.name == key.name) {
            return Err(invalid("auth.keys", format!("names {:?} twice", key.name)));
        }
        let sha256 = hex::decode(key.sha256.trim())
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| {
                invalid(
                    "auth.keys.sha256",
                    format!("of key {:?} must be 64 hexadecimal digits", key.name),
                )
            })?;
        let scopes = key
            .scopes
            .iter()
            .map(|s| {
                Scope::parse(s).ok_or_else(|| {
                    invalid(
                        "auth.keys.scopes",
                        format!(
                            "of key {:?} holds {s:?}: upload, read, delete or admin",
                            key.name
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        keys.push(ApiKey {
            name: key.name,
            sha256,
            scopes,
        });
    }
    let files = match raw.files.as_str() {
        "public" => FilesAccess::Public,
        "key" => FilesAccess::Key,
        "signed" => {
            let secret = raw.url_secret.unwrap_or_default();
            if secret.len() < 32 {
                return Err(invalid(
                    "auth.url_secret",
                    "must be at least 32 characters when files = \"signed\" (openssl rand -hex 32)",
                ));
            }
            if raw.signed_url_ttl_secs == 0 {
                return Err(invalid("auth.signed_url_ttl_secs", "must be at least 1"));
            }
            FilesAccess::Signed {
                secret: secret.into_bytes(),
                ttl: std::time::Duration::from_secs(raw.signed_url_ttl_secs),
            }
        }
        other => {
            return Err(invalid(
                "auth.files",
                format!("is {other:?}: public, key or signed"),
            ));
        }
    };
    let tokens = match raw.token_secret {
        None => None,
        Some(secret) => {
            if secret.len() < 32 {
                return Err(invalid(
                    "auth.token_secret",
                    "must be at least 32 characters (openssl rand -hex 32)",
                ));
            }
            let max = MAX_TOKEN_TTL.as_secs();
            if raw.token_ttl_secs == 0 || raw.token_ttl_secs > max {
                return Err(invalid(
                    "auth.token_ttl_secs",
                    format!("must be from 1 to {max}"),
                ));
            }
            Some(UploadTokens {
                secret: secret.into_bytes(),
                ttl: std::time::Duration::from_secs(raw.token_ttl_secs),
            })
        }
    };
    Ok(Some(AuthConfig {
        keys,
        protect_status: raw.protect_status,
        files,
        tokens,
    }))
}
