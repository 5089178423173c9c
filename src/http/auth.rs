//! API keys and upload tokens on the routes (`[auth]`): each route names the scope a key needs
//! and whether an upload token may stand in for one. Checked before the handler runs, so a
//! refused upload has not sent a byte to storage.
//!
//! A request that passes carries its [`Credential`] in its extensions: the upload handler
//! holds a token to its source, the status handler to its jobs. The upload route also lets a
//! request without `Authorization` through, to find a `token` field before the file.

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::config::{ApiKey, AuthConfig, Scope};
use crate::intake::Intake;
use crate::intake::tokens::{TOKEN_PREFIX, UploadGrant};

/// What let a request through its route's guard.
#[derive(Debug, Clone)]
pub enum Credential {
    /// An API key with the route's scope, known by its SHA-256 (an upload's idempotency keys
    /// are the key holder's own).
    Key {
        /// SHA-256 of the key.
        sha256: [u8; 32],
    },
    /// An upload token, which the handler holds to its source or its jobs.
    Token(UploadGrant),
}

/// What an upload token may stand in for a key on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    /// The upload route: a live token, as a Bearer credential or a `token` form field.
    Upload,
    /// The status route: a token up to its grace after expiry, as a Bearer credential or a
    /// `?token=` query parameter (a browser's `EventSource` sends no headers).
    Status,
}

/// What a route's guard holds: the keys, the scope the route needs, and whether upload tokens
/// (read by the intake) may stand in for a key.
#[derive(Clone)]
pub struct Required {
    keys: Arc<[ApiKey]>,
    /// A key needs one of these; the first is the one a refusal names.
    scopes: &'static [Scope],
    tokens: Option<(Intake, TokenUse)>,
}

impl Required {
    /// The guard of a route that needs one of `scopes`, or `None` when access control is off.
    pub fn any_of(auth: Option<&AuthConfig>, scopes: &'static [Scope]) -> Option<Required> {
        auth.map(|auth| Required {
            keys: auth.keys.as_slice().into(),
            scopes,
            tokens: None,
        })
    }

    /// The same guard, also taking the upload tokens `intake` reads, for `usage`.
    pub fn or_token(mut self, intake: Intake, usage: TokenUse) -> Required {
        self.tokens = Some((intake, usage));
        self
    }
}

/// The middleware: 401 `UNAUTHORIZED` without a known key or a valid token, 403 `FORBIDDEN`
/// for a key without the scope, else the route, with the [`Credential`] in the extensions.
pub async fn check(State(required): State<Required>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let credential = match presented(&parts, required.tokens.as_ref().map(|t| t.1)) {
        None if required
            .tokens
            .as_ref()
            .is_some_and(|t| t.1 == TokenUse::Upload) =>
        {
            None
        }
        None => return ApiError::Unauthorized.into_response(),
        Some(token) if token.starts_with(TOKEN_PREFIX) && required.tokens.is_some() => {
            let (intake, usage) = required.tokens.as_ref().expect("checked above");
            let read = match usage {
                TokenUse::Upload => intake.live_token(&token),
                TokenUse::Status => intake.status_token(&token),
            };
            match read {
                Ok(grant) => Some(Credential::Token(grant)),
                Err(e) => return ApiError::Token(e).into_response(),
            }
        }
        Some(key) => {
            let Some(found) = find(&required.keys, &key) else {
                return ApiError::Unauthorized.into_response();
            };
            if !required.scopes.iter().any(|s| found.scopes.contains(s)) {
                let scope = required.scopes[0];
                tracing::info!(key = %found.name, scope = scope.as_str(), "key lacks the scope");
                return ApiError::Forbidden(scope).into_response();
            }
            Some(Credential::Key {
                sha256: found.sha256,
            })
        }
    };
    if let Some(credential) = credential {
        parts.extensions.insert(credential);
    }
    next.run(Request::from_parts(parts, body)).await
}

/// A new API key (`xip_` and 64 hexadecimal digits: 256 random bits) and the SHA-256 that
/// goes in `[[auth.keys]]`; the key itself is stored nowhere.
///
/// # Errors
/// When the operating system gives no random bytes.
pub fn new_api_key() -> Result<(String, String), getrandom::Error> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)?;
    let key = format!("xip_{}", hex::encode(secret));
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    Ok((key, digest))
}

/// The credential after `Bearer ` (the scheme in any case), or for the status route the
/// `token` query parameter.
fn presented(parts: &Parts, usage: Option<TokenUse>) -> Option<String> {
    let bearer = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok()?.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, credential)| credential.trim().to_owned())
        .filter(|c| !c.is_empty());
    bearer.or_else(|| {
        #[derive(serde::Deserialize)]
        struct TokenQuery {
            token: Option<String>,
        }
        if usage != Some(TokenUse::Status) {
            return None;
        }
        let Query(query) = Query::<TokenQuery>::try_from_uri(&parts.uri).ok()?;
        query.token.filter(|t| !t.is_empty())
    })
}

/// The configured key whose digest is the presented key's. Every digest is compared in
/// constant time, so the time taken says nothing of how close a guess came.
fn find<'a>(keys: &'a [ApiKey], presented: &str) -> Option<&'a ApiKey> {
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    keys.iter().fold(None, |found, key| {
        let equal = bool::from(key.sha256.ct_eq(&digest));
        found.or(equal.then_some(key))
    })
}
