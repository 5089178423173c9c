//! `POST {prefix}/tokens`: the app's backend mints an upload token for a browser (a key with
//! the `upload` or `admin` scope). The same as [`crate::ImagePipeline::mint_upload_token`] and
//! `ximagepipeline token`.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use chrono::{TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{ApiError, AppState};
use crate::intake::tokens::{MintedToken, TokenRequest};

/// A minted upload token, as `POST {prefix}/tokens` and `ximagepipeline token` give it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadToken {
    /// `xipt_`, the grant, and its signature: send it as `Authorization: Bearer` or a `token`
    /// field before the file.
    pub token: String,
    /// When it stops being accepted (RFC 3339).
    pub expires_at: Option<String>,
    /// The one source type it may upload to.
    pub source_type: String,
    /// The one source id it may upload to.
    pub source_id: String,
    /// The largest file it may upload, if lower than `maxFileSize`.
    pub max_bytes: Option<u64>,
    /// Whether it is spent by its first upload.
    pub single_use: bool,
}

/// 201 with `token`, `expiresAt` and what it allows; 400 `INVALID_TOKEN_REQUEST` (or the
/// field's own code) for a request that cannot be granted.
#[utoipa::path(
    post,
    path = "/image-pipeline/tokens",
    tag = "uploads",
    operation_id = "mintToken",
    request_body = TokenRequest,
    responses(
        (status = 201, description = "The token and what it allows", body = UploadToken),
        (status = 400, description = "INVALID_TOKEN_REQUEST, MISSING_FIELDS, UNKNOWN_SOURCE_TYPE, INVALID_SOURCE_ID", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: the key lacks the upload or admin scope", body = ErrorBody),
        (status = 413, description = "FILE_TOO_LARGE: maxBytes over maxFileSize", body = ErrorBody),
        (status = 503, description = "QUEUE_UNAVAILABLE (with Retry-After)", body = ErrorBody),
    )
)]
pub async fn mint(
    State(state): State<AppState>,
    request: Result<Json<TokenRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<UploadToken>), ApiError> {
    let Json(request) = request.map_err(|e| ApiError::InvalidTokenRequest(e.body_text()))?;
    let minted = state.intake.mint_token(&request).map_err(ApiError::Token)?;
    Ok((StatusCode::CREATED, Json(UploadToken::from(&minted))))
}

impl From<&MintedToken> for UploadToken {
    fn from(minted: &MintedToken) -> Self {
        let grant = &minted.grant;
        UploadToken {
            token: minted.token.clone(),
            expires_at: i64::try_from(grant.expires_at)
                .ok()
                .and_then(|secs| Utc.timestamp_opt(secs, 0).single())
                .map(|t| t.to_rfc3339()),
            source_type: grant.source_type.clone(),
            source_id: grant.source_id.clone(),
            max_bytes: grant.max_bytes,
            single_use: grant.single_use,
        }
    }
}
