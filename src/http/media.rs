//! Media routes: get one, list a source's media (newest first), delete one with its objects.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::catalog::views::media_json;
use crate::catalog::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};
use crate::ids::MediaId;
use crate::intake::SubmitError;
use crate::queue::MediaCursor;

/// `GET {prefix}/media/{mediaId}`: 200 the media object, 404 `MEDIA_NOT_FOUND`.
pub async fn get(
    State(state): State<AppState>,
    Path(media_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let media = state
        .catalog
        .get_media(&MediaId::from_string(media_id))
        .await?
        .ok_or(ApiError::MediaNotFound)?;
    Ok(Json(media_json(&state.catalog, &media)))
}

/// `GET {prefix}/media?sourceType=&sourceId=[&limit=&cursor=]`: 200 `{"media": [...],
/// "nextCursor": C|null}`, newest first; `limit` 1–500, at most 1,000 without it.
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
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
    let items: Vec<Value> = page
        .media
        .iter()
        .map(|m| media_json(&state.catalog, m))
        .collect();
    let next = page.next.map(|c| c.to_string());
    Ok(Json(json!({ "media": items, "nextCursor": next })))
}

/// `DELETE {prefix}/media/{mediaId}`: 204 after removing every object and the row; 404 if unknown.
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
