//! Media routes: get one, list a source's media (newest first), delete one with its objects.
//! Also the media object's JSON shape, shared with the status route.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{TimeZone, Utc};
use serde_json::{Map, Value, json};

use super::{ApiError, AppState};
use crate::catalog::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};
use crate::ids::MediaId;
use crate::intake::SubmitError;
use crate::queue::{Media, MediaCursor};

/// The media object of the contract: ids, absolute URLs, displayed size, ratio, blurhash.
pub fn media_json(state: &AppState, media: &Media) -> Value {
    let urls: Map<String, Value> = media
        .variants
        .iter()
        .map(|(name, v)| {
            (
                name.clone(),
                Value::String(state.catalog.public_url(&v.key)),
            )
        })
        .collect();
    let variants: Map<String, Value> = media
        .variants
        .iter()
        .map(|(name, v)| {
            (
                name.clone(),
                json!({ "width": v.width, "height": v.height }),
            )
        })
        .collect();
    json!({
        "id": media.id,
        "sourceType": media.source_type,
        "sourceId": media.source_id,
        "urls": urls,
        "variants": variants,
        "originalUrl": media.original_key.as_deref().map(|k| state.catalog.public_url(k)),
        "width": media.width,
        "height": media.height,
        "aspectRatio": media.aspect_ratio,
        "blurhash": media.blurhash,
        "format": media.format,
        "createdAt": Utc.timestamp_millis_opt(media.created_at).single().map(|t| t.to_rfc3339()),
    })
}

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
    Ok(Json(media_json(&state, &media)))
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
    let items: Vec<Value> = page.media.iter().map(|m| media_json(&state, m)).collect();
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
