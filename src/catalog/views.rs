//! The JSON the contract gives a job and a media, with their public URLs as of now: what the
//! status and media routes answer, server-sent events carry, and webhooks send.

use chrono::{TimeZone, Utc};
use serde_json::{Map, Value, json};

use super::Catalog;
use crate::queue::{JobErrorCode, JobReport, JobStatus, Media};

/// A job's status body: `jobId` and `status`, with `media` when COMPLETE, the moderation
/// details when REJECTED, the safe `error`, `code` and `attempts` when FAILED.
pub fn status_json(catalog: &Catalog, report: &JobReport) -> Value {
    let job = &report.job;
    let status = job.status.as_str();
    match job.status {
        JobStatus::Pending | JobStatus::Processing => json!({ "jobId": job.id, "status": status }),
        JobStatus::Complete => json!({
            "jobId": job.id,
            "status": status,
            "media": report.media.as_ref().map(|m| media_json(catalog, m)),
        }),
        JobStatus::Rejected => json!({
            "jobId": job.id,
            "status": status,
            "reason": "Content moderation failed",
            "moderationDetails": job.moderation_details,
        }),
        JobStatus::Failed => {
            // Every FAILED row has a code (migration 0002 gave old rows INTERNAL); the fallback
            // only keeps the body whole.
            let code = job.error_code.unwrap_or(JobErrorCode::Internal);
            json!({
                "jobId": job.id,
                "status": status,
                "error": job.error.clone().unwrap_or_else(|| code.sentence().to_owned()),
                "code": code.as_str(),
                "attempts": job.attempts,
            })
        }
    }
}

/// The media object of the contract: ids, absolute URLs, displayed size, ratio, blurhash.
pub fn media_json(catalog: &Catalog, media: &Media) -> Value {
    let urls: Map<String, Value> = media
        .variants
        .iter()
        .map(|(name, v)| (name.clone(), Value::String(catalog.public_url(&v.key))))
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
        "originalUrl": media.original_key.as_deref().map(|k| catalog.public_url(k)),
        "width": media.width,
        "height": media.height,
        "aspectRatio": media.aspect_ratio,
        "blurhash": media.blurhash,
        "format": media.format,
        "createdAt": Utc.timestamp_millis_opt(media.created_at).single().map(|t| t.to_rfc3339()),
    })
}
