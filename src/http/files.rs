//! `GET /files/{*key}`: stored media and originals, when objects live on the local filesystem.
//!
//! Only keys under the media and originals prefixes are served (never staging), made only of
//! the characters our keys use, so no request can reach outside the storage root or name a
//! store's own files. Anything but an outage of the store is a 404: a client cannot make the
//! service report itself down.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::error::ErrorBody;
use crate::storage::{IMMUTABLE, Storage, content_type};

/// Streams one stored object with its type, `nosniff` and a year of immutable caching.
/// With signed links, only an unaltered, unexpired link is served (403 `FORBIDDEN` for any
/// other), cached privately and no longer than it lives.
#[utoipa::path(
    get,
    path = "/files/{key}",
    tag = "files",
    operation_id = "getFile",
    params(
        ("key" = String, Path, description = "The object's key, e.g. media/gallery/user-42/med_…/md.webp"),
        ("expires" = Option<u64>, Query, description = "With signed links: when the link ends (Unix seconds)"),
        ("signature" = Option<String>, Query, description = "With signed links: the link's signature"),
    ),
    responses(
        (status = 200, description = "The object, immutable", content(
            ("image/webp"), ("image/jpeg"), ("image/png"), ("image/gif"), ("image/avif"),
            ("image/heic"), ("image/tiff"), ("application/octet-stream"))),
        (status = 401, description = "UNAUTHORIZED (with `[auth] files = \"key\"`)", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: a signed link altered or expired, or a key without the read scope", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
        (status = 503, description = "STORAGE_UNAVAILABLE (with Retry-After)", body = ErrorBody),
    )
)]
pub async fn serve(
    State(storage): State<Storage>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let Some(key) = storage.keys().public_object(&key) else {
        return Err(ApiError::NotFound);
    };
    let cache_control = match storage.signer() {
        None => IMMUTABLE.to_owned(),
        Some(signer) => {
            let (expires, signature) = (query.get("expires"), query.get("signature"));
            let left = expires
                .zip(signature)
                .and_then(|(expires, signature)| signer.check(&key, expires, signature))
                .ok_or(ApiError::LinkNotValid)?;
            format!("private, max-age={}", left.as_secs())
        }
    };
    let (size, stream) = match storage.stream(&key).await {
        Ok(found) => found,
        Err(e) if e.is_outage() => return Err(e.into()),
        Err(_) => return Err(ApiError::NotFound),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type(&key).to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (header::CACHE_CONTROL, cache_control),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
