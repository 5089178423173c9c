//! Media routes: get one, list a source's media (newest first), delete one with its objects.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;

use super::error::ErrorBody;
use super::{ApiError, AppState};
use crate::catalog::views::{MediaPage, MediaView, media_view};
use crate::catalog::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};
use crate::ids::MediaId;
use crate::intake::SubmitError;
use crate::queue::MediaCursor;

/// `GET {prefix}/media/{mediaId}`: 200 the media object, 404 `MEDIA_NOT_FOUND`.
#[utoipa::path(
    get,
    path = "/image-pipeline/media/{mediaId}",
    tag = "media",
    operation_id = "getMedia",
    params(("mediaId" = String, Path, description = "`med_` and an id")),
    responses(
        (status = 200, description = "The media", body = MediaView),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: the key lacks the read scope", body = ErrorBody),
        (status = 404, description = "MEDIA_NOT_FOUND", body = ErrorBody),
        (status = 503, description = "QUEUE_UNAVAILABLE, STORAGE_UNAVAILABLE (with Retry-After)", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(media_id): Path<String>,
) -> Result<Json<MediaView>, ApiError> {
    let media = state
        .catalog
        .get_media(&MediaId::from_string(media_id))
        .await?
        .ok_or(ApiError::MediaNotFound)?;
    Ok(Json(media_view(&state.catalog, &media)))
}

/// `GET {prefix}/media?sourceType=&sourceId=[&limit=&cursor=]`: 200 `{"media": [...],
/// "nextCursor": C|null}`, newest first; `limit` 1–500, at most 1,000 without it.
#[utoipa::path(
    get,
    path = "/image-pipeline/media",
    tag = "media",
    operation_id = "listMedia",
    params(
        ("sourceType" = String, Query, description = "The source type"),
        ("sourceId" = String, Query, description = "The source id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500,
            description = "Page size; without it, at most 1,000"),
        ("cursor" = Option<String>, Query, description = "The previous page's nextCursor"),
    ),
    responses(
        (status = 200, description = "A page, newest first", body = MediaPage),
        (status = 400, description = "MISSING_FIELDS, INVALID_LIMIT, INVALID_CURSOR", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: the key lacks the read scope", body = ErrorBody),
        (status = 503, description = "QUEUE_UNAVAILABLE (with Retry-After)", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<MediaPage>, ApiError> {
    let (Some(source_type), Some(source_id)) = (query.get("sourceType"), query.get("sourceId"))
    else {
        // The same refusal, code and words as an upload without them.
        return Err(SubmitError::MissingFields.into());
    };
    if source_type.is_empty() || source_id.is_empty() {
        return Err(SubmitError::MissingFields.into());
    }
    let limit = match query.get("limit") {
        None => DEFAULT_PAGE_LIMIT,
        Some(text) => text
            .parse()
            .ok()
            .filter(|n| (1..=MAX_PAGE_LIMIT).contains(n))
            .ok_or(ApiError::InvalidLimit)?,
    };
    let after = match query.get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(text) => Some(MediaCursor::parse(text).ok_or(ApiError::InvalidCursor)?),
    };
    let page = state
        .catalog
        .media_page(source_type, source_id, after.as_ref(), limit)
        .await?;
    Ok(Json(MediaPage {
        media: page
            .media
            .iter()
            .map(|m| media_view(&state.catalog, m))
            .collect(),
        next_cursor: page.next.map(|c| c.to_string()),
    }))
}

/// `DELETE {prefix}/media/{mediaId}`: 204 after removing every object and the row; 404 if unknown.
#[utoipa::path(
    delete,
    path = "/image-pipeline/media/{mediaId}",
    tag = "media",
    operation_id = "deleteMedia",
    params(("mediaId" = String, Path, description = "`med_` and an id")),
    responses(
        (status = 204, description = "Deleted: every object and the row"),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: the key lacks the delete scope", body = ErrorBody),
        (status = 404, description = "MEDIA_NOT_FOUND", body = ErrorBody),
        (status = 503, description = "QUEUE_UNAVAILABLE, STORAGE_UNAVAILABLE (with Retry-After)", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(media_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state
        .catalog
        .delete_media(&MediaId::from_string(media_id))
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::MediaNotFound)
    }
}
