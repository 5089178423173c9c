//! `GET /files/{*key}`: stored media and originals, when objects live on the local filesystem.
//!
//! Only keys under the media and originals prefixes are served (never staging), and object
//! paths refuse `..`, so no request can reach outside the storage root.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::storage::{Storage, StorageError, content_type};

/// Streams one stored object with its type, `nosniff` and a year of immutable caching.
pub async fn serve(
    State(storage): State<Storage>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    if !storage.keys().is_public(&key) {
        return Err(ApiError::NotFound);
    }
    let (size, stream) = match storage.stream(&key).await {
        Ok(found) => found,
        Err(StorageError::NotFound(_) | StorageError::InvalidKey(_)) => {
            return Err(ApiError::NotFound);
        }
        Err(e) => return Err(e.into()),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type(&key).to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (
                header::CACHE_CONTROL,
                "public, max-age=31536000, immutable".to_owned(),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
