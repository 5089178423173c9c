//! `GET /files/{*key}`: stored media and originals, when objects live on the local filesystem.
//!
//! Only keys under the media and originals prefixes are served (never staging), made only of
//! the characters our keys use, so no request can reach outside the storage root or name a
//! store's own files. Anything but an outage of the store is a 404: a client cannot make the
//! service report itself down.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::storage::{IMMUTABLE, Storage, content_type};

/// Streams one stored object with its type, `nosniff` and a year of immutable caching.
pub async fn serve(
    State(storage): State<Storage>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let Some(key) = storage.keys().public_object(&key) else {
        return Err(ApiError::NotFound);
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
            (header::CACHE_CONTROL, IMMUTABLE.to_owned()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
