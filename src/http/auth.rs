//! API keys on the routes (`[auth]`): each route names the scope it needs, and a request is
//! let through only with `Authorization: Bearer <key>` of a key that has it. Checked before
//! the handler runs, so a refused upload has not sent a byte to storage.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::config::{ApiKey, AuthConfig, Scope};

/// What a route's guard holds: the keys, and the scope the route needs.
#[derive(Clone)]
pub struct Required {
    keys: Arc<[ApiKey]>,
    scope: Scope,
}

impl Required {
    /// The guard of a route that needs `scope`, or `None` when access control is off.
    pub fn scope(auth: Option<&AuthConfig>, scope: Scope) -> Option<Required> {
        auth.map(|auth| Required {
            keys: auth.keys.as_slice().into(),
            scope,
        })
    }
}

/// The middleware: 401 `UNAUTHORIZED` without a known key, 403 `FORBIDDEN` for a key without
/// the scope, else the route.
pub async fn check(State(required): State<Required>, request: Request, next: Next) -> Response {
    let Some(key) = bearer(&request) else {
        return ApiError::Unauthorized.into_response();
    };
    let Some(found) = find(&required.keys, key) else {
        return ApiError::Unauthorized.into_response();
    };
    if !found.scopes.contains(&required.scope) {
        tracing::info!(key = %found.name, scope = required.scope.as_str(), "key lacks the scope");
        return ApiError::Forbidden(required.scope).into_response();
    }
    next.run(request).await
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

/// The credential after `Bearer ` (the scheme in any case), if any.
fn bearer(request: &Request) -> Option<&str> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
        .filter(|c| !c.is_empty())
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
