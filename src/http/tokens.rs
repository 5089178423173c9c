//! `POST {prefix}/tokens`: the app's backend mints an upload token for a browser (a key with
//! the `upload` or `admin` scope). The same as [`crate::ImagePipeline::mint_upload_token`] and
//! `ximagepipeline token`.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::intake::tokens::{MintedToken, TokenRequest};

/// 201 with `token`, `expiresAt` and what it allows; 400 `INVALID_TOKEN_REQUEST` (or the
/// field's own code) for a request that cannot be granted.
pub async fn mint(
    State(state): State<AppState>,
    request: Result<Json<TokenRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(request) = request.map_err(|e| ApiError::InvalidTokenRequest(e.body_text()))?;
    let minted = state.intake.mint_token(&request).map_err(ApiError::Token)?;
    Ok((StatusCode::CREATED, Json(token_json(&minted))))
}

/// A minted token as the route answers it.
pub fn token_json(minted: &MintedToken) -> Value {
    let grant = &minted.grant;
    let expires_at = i64::try_from(grant.expires_at)
        .ok()
        .and_then(|secs| Utc.timestamp_opt(secs, 0).single())
        .map(|t| t.to_rfc3339());
    json!({
        "token": minted.token,
        "expiresAt": expires_at,
        "sourceType": grant.source_type,
        "sourceId": grant.source_id,
        "maxBytes": grant.max_bytes,
        "singleUse": grant.single_use,
    })
}
